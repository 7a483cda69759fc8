//! Access requests and the grants they become (乡镇"点菜", 部门审批, 收回): the rules
//! both front ends follow — deadlines in working days, who sees which requests,
//! where a grant stands on a day, and the one-grant policy file an approval writes
//! (a typed [`PolicyFile`], compiled exactly as `policies/*.yaml` are). The HTTP
//! routes are in [`crate::http::access`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};

use crate::auth::{Caller, Role};
use crate::config::ActiveConfig;
use crate::policy::file::{ConsumersDef, GrantDef, MaskDef, PolicyFile, RowDef, ValidityDef};
use crate::policy::{Jurisdiction, Quota, RowRule};
use crate::registry::{AccessRequest, RequestState};

/// How many working days (Monday to Friday) a department has to answer a request,
/// unless `gateway.yaml` says otherwise (`access_requests.deadline_working_days`).
/// Public holidays are not counted as non-working days: the calendar of 法定节假日 and
/// 调休 changes every year and is not configured, so a deadline over a holiday comes
/// early rather than late.
pub const DEADLINE_WORKING_DAYS: u32 = 10;

/// The day `n` working days (Monday to Friday) after `start`; public holidays are not
/// counted (see [`DEADLINE_WORKING_DAYS`]).
pub fn add_working_days(start: NaiveDate, n: u32) -> NaiveDate {
    let mut day = start;
    let mut left = n;
    while left > 0 {
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    day
}

/// Whether a request is pending past its deadline on `today`.
pub fn is_overdue(request: &AccessRequest, today: NaiveDate) -> bool {
    request.state == RequestState::Pending
        && parse_date(&request.deadline).is_some_and(|deadline| deadline < today)
}

/// Whether the caller may list access requests and grants at all.
pub fn may_list(caller: &Caller) -> bool {
    [
        Role::TownshipLead,
        Role::DeptAdmin,
        Role::Operator,
        Role::PrivacyOfficer,
    ]
    .iter()
    .any(|r| caller.has_role(*r))
}

/// Whether the caller sees everything (operators and privacy officers).
pub fn sees_all(caller: &Caller) -> bool {
    caller.has_role(Role::Operator) || caller.has_role(Role::PrivacyOfficer)
}

/// Whether a request is one the caller may see: their township's (a township lead),
/// their department's (a department admin), or any (operators, privacy officers).
pub fn request_visible(caller: &Caller, request: &AccessRequest) -> bool {
    sees_all(caller)
        || (caller.has_role(Role::TownshipLead)
            && caller.township.as_deref() == Some(request.township.as_str()))
        || (caller.has_role(Role::DeptAdmin)
            && caller.department.as_deref() == Some(request.department.as_str()))
}

/// Where a grant stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    Active,
    NotYetValid,
    Expired,
    Revoked,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Active => "active",
            GrantState::NotYetValid => "not_yet_valid",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

/// A grant's state on `today` from its validity (inclusive dates) and revocation.
pub fn grant_state(
    revoked: bool,
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    today: NaiveDate,
) -> GrantState {
    if revoked {
        GrantState::Revoked
    } else if until.is_some_and(|u| u < today) {
        GrantState::Expired
    } else if from.is_some_and(|f| today < f) {
        GrantState::NotYetValid
    } else {
        GrantState::Active
    }
}

/// Whether a grant's consumers reach a township: they name it, or name its county
/// without naming townships, or name no place at all.
pub fn reaches_township(
    townships: &BTreeSet<String>,
    counties: &BTreeSet<String>,
    township: &str,
    county: Option<&str>,
) -> bool {
    if !townships.is_empty() {
        return townships.contains(township);
    }
    counties.is_empty() || county.is_some_and(|c| counties.contains(c))
}

pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new request id: `ar-` and a UUIDv7 in lowercase hex (a valid rule id).
pub fn new_request_id() -> String {
    format!("ar-{}", uuid::Uuid::now_v7().simple())
}

/// The record field that says which township a subject lives in.
pub const TOWNSHIP_FIELD: &str = "township_code";

/// The condition a grant in force is held to, in words: its row condition, or the
/// caller's jurisdiction.
pub fn enforced(grant: &crate::policy::Grant) -> Option<String> {
    grant.row.as_ref().map(|r| r.describe()).or_else(|| {
        grant
            .jurisdiction
            .map(|j| format!("only {}, as the household register says", j.describe()))
    })
}

/// How an approved grant is held to the requesting township's own residents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnResidents {
    /// `jurisdiction: township`: the county's authority for residence says where
    /// the subject lives, whatever the department's record carries.
    Jurisdiction,
    /// A row condition on the record's own township field (no authority named).
    Row,
    /// Neither can be asked: the grant holds for every subject.
    Unbounded,
}

/// How the request's grant can be held to the township's own residents, as the
/// county's file grants are: by jurisdiction where the county names an authority
/// that answers for every operation's subject key, else by the record's township.
pub fn own_residents_only(request: &AccessRequest, config: &ActiveConfig) -> OwnResidents {
    let Some(connector) = config.connectors.get(&request.connector) else {
        return OwnResidents::Unbounded;
    };
    let ops = || {
        request
            .operations
            .iter()
            .map(|op| connector.operations.get(op))
    };
    if let Some(authority) = &config.jurisdiction
        && ops().all(|o| o.is_some_and(|o| authority.operation_for(o.subject).is_some()))
    {
        return OwnResidents::Jurisdiction;
    }
    if ops().all(|o| o.is_some_and(|o| o.fields.contains_key(TOWNSHIP_FIELD))) {
        OwnResidents::Row
    } else {
        OwnResidents::Unbounded
    }
}

/// What an approval decided, beside the request it approves.
#[derive(Debug, Clone)]
pub struct Approved<'a> {
    /// Path → the mask as a policy file takes it (a mask, or `default`).
    pub fields: BTreeMap<String, MaskDef>,
    pub valid_until: Option<NaiveDate>,
    pub quota: Option<Quota>,
    pub legal_basis: &'a str,
    pub approver: &'a str,
}

/// The one-grant policy file an approval writes, as a typed policy file (compiled
/// exactly as `policies/*.yaml` are). With `own_residents`, the grant holds only for
/// subjects registered in the requesting township.
pub fn grant_file(
    request: &AccessRequest,
    approved: Approved<'_>,
    today: NaiveDate,
    own_residents: OwnResidents,
) -> PolicyFile {
    let roles = request
        .roles
        .iter()
        .filter_map(|r| serde_json::from_value(serde_json::Value::String(r.clone())).ok())
        .collect();
    let grant = GrantDef {
        id: request.id.clone(),
        description: format!(
            "乡镇 {} 的数据申请 {}：{}",
            request.township, request.id, request.justification
        ),
        consumers: ConsumersDef {
            roles,
            townships: vec![request.township.clone()],
            ..ConsumersDef::default()
        },
        connector: request.connector.clone(),
        operations: request.operations.clone(),
        purposes: request.purposes.clone(),
        fields: approved.fields,
        row: (own_residents == OwnResidents::Row).then(|| RowDef {
            field: TOWNSHIP_FIELD.to_owned(),
            equals: RowRule::CallerTownship,
        }),
        jurisdiction: (own_residents == OwnResidents::Jurisdiction)
            .then_some(Jurisdiction::Township),
        valid: Some(ValidityDef {
            from: Some(today),
            until: approved.valid_until,
        }),
        quota: approved.quota,
        disclosure: None,
        legal_basis: approved.legal_basis.to_owned(),
        approver: approved.approver.to_owned(),
    };
    PolicyFile {
        grants: vec![grant],
        denies: Vec::new(),
    }
}

/// The grant an API grant's stored policy file holds (`None` if it does not parse).
pub fn stored_grant(policy: &str) -> Option<GrantDef> {
    serde_yaml_ng::from_str::<PolicyFile>(policy)
        .ok()
        .and_then(|f| f.grants.into_iter().next())
}
