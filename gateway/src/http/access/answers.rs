//! The wire shapes of the access API's answers, for the API document: requests and
//! grants are answered as JSON ([`crate::access`]'s views); these types say what they
//! hold, and the truthfulness test holds the answers to them.

#![allow(dead_code, reason = "schemas: only their shapes are used")]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::policy::Quota;
use crate::registry::Revocation;

/// Where a request stands (`revoked`: approved, and its grant since revoked).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RequestState {
    Pending,
    Approved,
    Refused,
    /// Withdrawn by its township before a decision.
    Withdrawn,
    Revoked,
}

/// A township's request for fields of a connector, for purposes (乡镇"点菜").
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessRequestView {
    #[schema(example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")]
    id: String,
    #[schema(example = "139901101")]
    township: String,
    /// The township lead who asked.
    #[schema(example = "lead-dongling")]
    requested_by: String,
    #[schema(example = "hukou")]
    connector: String,
    /// The connector's department, which decides.
    #[schema(example = "county-psb")]
    department: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    /// Leaf field path → the mask asked for (`default`, or a mask).
    #[schema(value_type = Object, example = json!({"name": "default", "birth_date": "default"}))]
    fields: Value,
    /// The township's roles that would use the grant.
    roles: Vec<String>,
    justification: String,
    /// The last day the grant is wanted for (a China date).
    #[schema(required = true)]
    valid_until: Option<String>,
    /// RFC 3339, UTC.
    created_at: String,
    /// The day by which the department should answer: working days from creation, in
    /// the county's working-day calendar (public holidays off, 调休 make-up days worked).
    deadline: String,
    state: RequestState,
    #[schema(required = true)]
    decided_at: Option<String>,
    #[schema(required = true)]
    decided_by: Option<String>,
    /// A refusal's reason, or the approver's note.
    #[schema(required = true)]
    decision_note: Option<String>,
    /// The grant an approval made (its id is the request's).
    #[schema(required = true)]
    grant_id: Option<String>,
    /// Pending past its deadline.
    overdue: bool,
    /// When the grant it made was revoked, and by whom.
    #[schema(required = true)]
    revoked: Option<RevokedAt>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokedAt {
    at: String,
    by: String,
}

/// Requests, oldest first, one page.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestList {
    requests: Vec<AccessRequestView>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// Where a grant stands today.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GrantState {
    Active,
    NotYetValid,
    Expired,
    Revoked,
}

/// Where a grant comes from: the county's policy files, or an approved request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GrantOrigin {
    File,
    Api,
}

/// A grant: who may see which fields of which connector, for which purposes, on what
/// terms. An API grant (an approved request) has the registry's members as well.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantView {
    #[schema(example = "hukou-birth-registration")]
    id: String,
    state: GrantState,
    origin: GrantOrigin,
    description: String,
    /// Who it is for: `roles`, `townships`, `counties`, `apps`.
    #[schema(value_type = Object)]
    consumers: Value,
    connector: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    /// Field path → mask.
    #[schema(value_type = Object)]
    fields: Value,
    /// The row condition it enforces, when it has one.
    #[schema(required = true)]
    row: Option<String>,
    #[schema(required = true)]
    valid_from: Option<String>,
    #[schema(required = true)]
    valid_until: Option<String>,
    #[schema(required = true)]
    quota: Option<Quota>,
    legal_basis: String,
    approver: String,
    /// API grants: the department that granted it.
    department: Option<String>,
    /// API grants: the township it was granted to.
    township: Option<String>,
    /// API grants: the access request it came from.
    request_id: Option<String>,
    created_at: Option<String>,
    created_by: Option<String>,
    /// API grants: its revocation.
    revoked: Option<Revocation>,
}

/// Grants, oldest first, one page.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantList {
    grants: Vec<GrantView>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// An approval: the request, the grant it wrote, and the configuration now in force.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approved {
    request: AccessRequestView,
    #[schema(required = true)]
    grant: Option<GrantView>,
    config_version: String,
}

/// A refusal.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refused {
    request: AccessRequestView,
    config_version: String,
}

/// A revocation: the grant, and the configuration now in force.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoked {
    grant: GrantView,
    config_version: String,
}
