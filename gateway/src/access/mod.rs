//! Access requests and the grants they become (乡镇"点菜", 部门审批, 收回): the rules
//! and the use cases both front ends run — the JSON API ([`crate::http`]'s access
//! routes) and the console's access desks ([`crate::console`]) call the same
//! functions here, so policy, department scope and the audit event are one.
//!
//! - the rules: deadlines in working days, who sees which requests, where a grant
//!   stands on a day, and the one-grant policy file an approval writes (a typed
//!   [`PolicyFile`], compiled exactly as `policies/*.yaml` are);
//! - [`requests`]: a township lead asks ([`create`]), lists and shows requests
//!   ([`list_requests`], [`show_request`]), withdraws one ([`withdraw`]);
//! - [`decisions`]: the owning department approves, possibly narrowed
//!   ([`approve`]), or refuses with a reason ([`refuse`]);
//! - [`grants`]: the grants a caller may see ([`list_grants`]) and taking one back
//!   with a reason ([`revoke`]);
//! - [`views`]: requests and grants as the API answers them.
//!
//! Every use case takes a [`Who`] (request id, caller, peer) and answers a
//! [`Problem`] when refused; every change, allowed or refused, is an admin event in
//! the audit log ([`crate::action::Action`]) naming ids, connector, fields and masks —
//! justifications, notes and reasons are free text and stay in the registry, out of
//! the log. A department admin sees only their own department's requests and grants
//! (another's is unknown, 404) and acts only on them (403).

mod decisions;
mod grants;
mod requests;
mod views;

pub use decisions::{APPROVAL_SHAPE, Approval, Decision, REASON_SHAPE, Reason, approve, refuse};
pub use grants::{GrantFilter, ListedGrant, Revoked, list_grants, revoke};
pub(crate) use requests::check_request;
pub use requests::{
    NEW_REQUEST_SHAPE, NewRequest, Visible, create, list_requests, show_request, withdraw,
};
pub use views::{
    GrantView, api_grant_view, approved_as_asked, file_grant_view, request_view, shown_state,
};

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use connectors::definition::LeafField;
use serde_json::{Value, json};

pub use crate::action::Who;
use crate::admin::{administers, may_administer, registry_unavailable, short};
use crate::auth::{Caller, Role};
use crate::config::{ActiveConfig, ActiveConnector};
use crate::mask::Mask;
use crate::policy::file::{ConsumersDef, GrantDef, MaskDef, PolicyFile, RowDef, ValidityDef};
use crate::policy::{Jurisdiction, Quota, RowRule};
use crate::problem::{Problem, ProblemKind};
use crate::registry::{AccessRequest, RequestState};

/// How many working days a department has to answer a request, unless `gateway.yaml`
/// says otherwise (`access_requests.deadline_working_days`). They are counted in the
/// configuration's working-day calendar ([`ActiveConfig::calendar`]: public holidays
/// off, 调休 make-up days worked; Monday to Friday without one).
pub const DEADLINE_WORKING_DAYS: u32 = 10;

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

/// The rule named when a caller's role may not use access requests.
pub const ACCESS_RULE: &str = "access-roles";
/// The rule named when a caller may not decide on a department's fields.
pub const OWNER_RULE: &str = "grant-owner";
/// The rule named when a caller would decide on their own request.
pub const FOUR_EYES_RULE: &str = "four-eyes";
/// The longest justification, note or reason, in characters.
pub const MAX_TEXT: usize = 2000;
/// The roles a request may ask fields for.
pub const TOWNSHIP_ROLES: [Role; 3] = [Role::Clerk, Role::GridWorker, Role::TownshipLead];

/// Decisions (approve, refuse, revoke, withdraw) run one at a time in this process,
/// so two admins deciding the same request at once cannot both succeed.
static DECISIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether `caller` may approve or refuse a request of `requested_by` for fields of
/// `department`: only that department's own admin (operators administer the gateway,
/// they do not grant a department's data), and never the person who asked.
pub fn may_decide(caller: &Caller, department: &str, requested_by: &str) -> Result<(), Problem> {
    if !caller.has_role(Role::DeptAdmin) {
        return Err(not_decider());
    }
    if caller.department.as_deref() != Some(department) {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "A department decides only on its own connectors' fields.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role"));
    }
    if caller.user == requested_by {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "Nobody decides on their own access request (four eyes).",
        )
        .with("rule", FOUR_EYES_RULE)
        .with("reason", "role"));
    }
    Ok(())
}

/// Whether a field key from a request looks like a field path, so it may be named
/// back in a problem (anything else — say, an ID number typed by mistake — is not
/// echoed).
fn nameable(path: &str) -> bool {
    path.len() <= 64
        && path.starts_with(|c: char| c.is_ascii_lowercase())
        && path
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]".contains(c))
}

/// Where a field key is in a body, for a problem.
pub fn field_at(key: &str) -> String {
    if nameable(key) {
        format!("fields.{key}")
    } else {
        "fields".to_owned()
    }
}

/// A value that is neither `"default"` nor a mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAMask;

/// A field's mask as written: `"default"` (`None`) or a mask.
pub fn parse_mask(value: &Value) -> Result<Option<Mask>, NotAMask> {
    if value.as_str() == Some("default") {
        return Ok(None);
    }
    serde_json::from_value::<Mask>(value.clone())
        .map(Some)
        .map_err(|_| NotAMask)
}

/// The leaf at `path` in each of `operations` of the connector (`None` where an
/// operation lacks it or is unknown).
pub fn leaves<'c>(
    connector: &'c ActiveConnector,
    operations: &[String],
    path: &str,
) -> Vec<Option<&'c LeafField>> {
    operations
        .iter()
        .map(|op| {
            connector
                .operations
                .get(op)
                .and_then(|o| o.leaves.iter().find(|l| l.path == path))
        })
        .collect()
}

/// A list of (path, message) problems as the answer's `problems` member.
fn problem_list(problems: &[(String, String)]) -> Value {
    Value::Array(
        problems
            .iter()
            .map(|(path, message)| json!({ "path": path, "message": message }))
            .collect(),
    )
}

/// An invalid request or approval: every problem with its path.
pub fn invalid(problems: &[(String, String)], what: &str) -> Problem {
    Problem::new(
        ProblemKind::InvalidRequest,
        format!(
            "The {what} has {} problem(s); nothing was changed.",
            problems.len()
        ),
    )
    .with("problems", problem_list(problems))
}

fn not_decider() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Only the owning department's admin decides on access requests.",
    )
    .with("rule", OWNER_RULE)
    .with("reason", "role")
}

/// The refusal of a caller whose role does not use access requests.
pub fn not_listed() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Township leads, department admins, operators and privacy officers use access requests.",
    )
    .with("rule", ACCESS_RULE)
    .with("reason", "role")
}

fn unknown_request() -> Problem {
    Problem::new(
        ProblemKind::UnknownRequest,
        "No access request with this id exists, or it is not one you may see.",
    )
}

fn unknown_grant() -> Problem {
    Problem::new(
        ProblemKind::UnknownGrant,
        "No grant with this id exists, or it is not one you may act on.",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
pub(crate) mod tests {
    use super::*;
    use crate::calendar::Calendar;

    pub(crate) fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn caller(user: &str, roles: &[Role], township: Option<&str>, dept: Option<&str>) -> Caller {
        Caller {
            user: user.to_owned(),
            issuer: "test".to_owned(),
            roles: roles.iter().copied().collect(),
            township: township.map(str::to_owned),
            county: township.map(|t| t[..6].to_owned()),
            villages: Default::default(),
            department: dept.map(str::to_owned),
            app: None,
            expires_at: 0,
        }
    }

    /// A request of 东岭镇 for hukou, made on `created`.
    pub(crate) fn request(created: &str, state: RequestState) -> AccessRequest {
        let created = day(created);
        AccessRequest {
            id: "ar-test".to_owned(),
            township: "139901101".to_owned(),
            requested_by: "lead".to_owned(),
            connector: "hukou".to_owned(),
            department: "county-psb".to_owned(),
            operations: vec!["person_by_id".to_owned()],
            purposes: vec!["elderly_allowance".to_owned()],
            fields: BTreeMap::from([("birth_date".to_owned(), json!("default"))]),
            roles: vec!["clerk".to_owned()],
            justification: "why".to_owned(),
            valid_until: None,
            created_at: format!("{created}T02:00:00.000Z"),
            // Counted Monday to Friday: the calendar's own counting is tested with it.
            deadline: Calendar::default()
                .add_working_days(created, DEADLINE_WORKING_DAYS)
                .to_string(),
            state,
            decided_at: None,
            decided_by: None,
            decision_note: None,
            grant_id: None,
        }
    }

    #[test]
    fn grant_states_follow_validity_and_revocation() {
        let today = day("2026-06-10");
        let (from, until) = (Some(day("2026-06-01")), Some(day("2026-06-10")));
        assert_eq!(grant_state(false, from, until, today), GrantState::Active);
        assert_eq!(
            grant_state(false, from, until, day("2026-06-11")),
            GrantState::Expired
        );
        assert_eq!(
            grant_state(false, from, until, day("2026-05-31")),
            GrantState::NotYetValid
        );
        assert_eq!(grant_state(true, from, until, today), GrantState::Revoked);
        assert_eq!(grant_state(false, None, None, today), GrantState::Active);
        assert_eq!(GrantState::Expired.as_str(), "expired");
    }

    #[test]
    fn each_role_sees_its_own_requests() {
        let r = request("2026-05-08", RequestState::Pending);
        let lead = caller("l", &[Role::TownshipLead], Some("139901101"), None);
        let other_lead = caller("l2", &[Role::TownshipLead], Some("139901201"), None);
        let admin = caller("a", &[Role::DeptAdmin], None, Some("county-psb"));
        let other_admin = caller("a2", &[Role::DeptAdmin], None, Some("county-hrss"));
        let operator = caller("o", &[Role::Operator], None, None);
        let officer = caller("p", &[Role::PrivacyOfficer], None, None);
        let clerk = caller("c", &[Role::Clerk], Some("139901101"), None);
        assert!(request_visible(&lead, &r));
        assert!(!request_visible(&other_lead, &r));
        assert!(request_visible(&admin, &r));
        assert!(!request_visible(&other_admin, &r));
        assert!(request_visible(&operator, &r));
        assert!(request_visible(&officer, &r));
        assert!(!may_list(&clerk));
    }

    #[test]
    fn only_the_owning_department_decides_and_never_on_its_own_request() {
        let admin = caller("a", &[Role::DeptAdmin], None, Some("county-psb"));
        assert!(may_decide(&admin, "county-psb", "lead").is_ok());
        let rule = |p: Problem| p.extensions["rule"].clone();
        assert_eq!(
            rule(may_decide(&admin, "county-hrss", "lead").unwrap_err()),
            "grant-owner"
        );
        assert_eq!(
            rule(may_decide(&admin, "county-psb", "a").unwrap_err()),
            "four-eyes"
        );
        let operator = caller("o", &[Role::Operator], None, None);
        assert_eq!(
            rule(may_decide(&operator, "county-psb", "lead").unwrap_err()),
            "grant-owner"
        );
    }

    #[test]
    fn a_request_id_is_a_rule_id() {
        let id = new_request_id();
        assert!(id.starts_with("ar-") && id.len() <= 80, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{id}"
        );
    }

    #[test]
    fn grants_reach_the_townships_they_name() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let t = "139901101";
        assert!(reaches_township(&set(&[t]), &set(&[]), t, Some("139901")));
        assert!(!reaches_township(
            &set(&["139901201"]),
            &set(&["139901"]),
            t,
            Some("139901")
        ));
        assert!(reaches_township(
            &set(&[]),
            &set(&["139901"]),
            t,
            Some("139901")
        ));
        assert!(!reaches_township(
            &set(&[]),
            &set(&["139902"]),
            t,
            Some("139901")
        ));
        assert!(reaches_township(&set(&[]), &set(&[]), t, Some("139901")));
    }

    #[test]
    fn only_field_paths_are_named_back() {
        assert_eq!(
            field_at("children[].birth_date"),
            "fields.children[].birth_date"
        );
        assert_eq!(field_at("11010519491231002X"), "fields");
        assert_eq!(field_at("张三"), "fields");
    }
}
