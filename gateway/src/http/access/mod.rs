//! Access requests and the grants they become (乡镇"点菜", 部门审批, 收回).
//!
//! A township lead asks a department for conditional fields of one of its connectors,
//! for purposes, for the township's clerks or grid workers
//! (`POST /v1/access-requests`). The department's own admin — never an operator, never
//! another department, never the person who asked — approves it, possibly narrowing
//! the fields, masking them more, shortening the validity or adding a quota
//! (`…/{id}/approve`), or refuses it with a reason (`…/{id}/refuse`). An approval
//! writes a grant into the registry as a one-grant policy file, compiled exactly as
//! `policies/*.yaml` are, and the configuration it makes is in force when the answer
//! is sent. The department (or an operator) revokes (收回) an API grant with
//! `POST /v1/grants/{id}/revoke`; grants from the county's files are changed by editing
//! the files. `GET /v1/access-requests` (and `/overdue`, `/{id}`) and `GET /v1/grants`
//! list what the caller may see.
//!
//! A department should answer within `access_requests.deadline_working_days` working
//! days of `gateway.yaml` ([`DEADLINE_WORKING_DAYS`] by default); a pending request
//! past its deadline is overdue. A grant's validity is enforced by every
//! policy decision, so an expired grant needs no job to retire it.
//!
//! Every change, allowed or is an admin event in the audit log naming what
//! changed (ids, connector, fields and masks); justifications, notes and reasons are
//! free text and stay in the registry, out of the log.

mod decisions;
mod grants;
mod requests;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::NaiveDate;
use connectors::definition::{LeafField, Sharing};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{administers, may_administer, short};

/// The answer when the registry cannot be read.
pub(crate) fn registry_unavailable(
    request_id: &str,
    error: &crate::registry::RegistryError,
) -> Response {
    crate::admin::registry_unavailable(request_id, error).into_response()
}
use super::lists::ListQuery;
use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::access::*;
use crate::action::Action;
use crate::app::App;
use crate::auth::{Caller, Role};
use crate::config::{ActiveConfig, ActiveConnector};
use crate::mask::Mask;
use crate::policy::{Grant, Quota, china_today};
use crate::registry::{
    AccessRequest, Change, GrantRecord, Origin, RequestState, Revocation, Snapshot,
};
use decisions::*;
use grants::*;
use requests::*;
use views::*;

/// The rule named when a caller's role may not use the access-request API.
const ACCESS_RULE: &str = "access-roles";
/// The rule named when a caller may not decide on a department's fields.
const OWNER_RULE: &str = "grant-owner";
/// The rule named when a caller would decide on their own request.
const FOUR_EYES_RULE: &str = "four-eyes";
/// The longest justification, note or reason, in characters.
const MAX_TEXT: usize = 2000;
/// The roles a request may ask fields for.
const TOWNSHIP_ROLES: [Role; 3] = [Role::Clerk, Role::GridWorker, Role::TownshipLead];

/// Decisions (approve, refuse, revoke) run one at a time in this process, so two
/// admins deciding the same request at once cannot both succeed.
static DECISIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/access-requests",
            get(list_requests).post(create_request),
        )
        .route("/v1/access-requests/overdue", get(list_overdue))
        .route("/v1/access-requests/{id}", get(show_request))
        .route("/v1/access-requests/{id}/approve", post(approve))
        .route("/v1/access-requests/{id}/refuse", post(refuse))
        .route("/v1/access-requests/{id}/withdraw", post(withdraw))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}/revoke", post(revoke))
}

/// Whether `caller` may approve or refuse a request of `requested_by` for fields of
/// `department`: only that department's own admin (operators administer the gateway,
/// they do not grant a department's data), and never the person who asked.
fn may_decide(caller: &Caller, department: &str, requested_by: &str) -> Result<(), Problem> {
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
fn field_at(key: &str) -> String {
    if nameable(key) {
        format!("fields.{key}")
    } else {
        "fields".to_owned()
    }
}

/// A field's mask as written: `"default"` (`None`) or a mask.
fn parse_mask(value: &Value) -> Result<Option<Mask>, ()> {
    if value.as_str() == Some("default") {
        return Ok(None);
    }
    serde_json::from_value::<Mask>(value.clone())
        .map(Some)
        .map_err(|_| ())
}

/// The leaf at `path` in each of `operations` of the connector (`None` where an
/// operation lacks it or is unknown).
fn leaves<'c>(
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

fn invalid(problems: &[(String, String)], what: &str) -> Problem {
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

fn not_listed() -> Problem {
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

/// Reads an optional JSON body: an empty one is `T::default()`.
fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, Problem> {
    if matches!(&body, Ok(b) if b.is_empty()) {
        return Ok(T::default());
    }
    crate::http::body::json(headers, body, expected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn caller(user: &str, roles: &[Role], township: Option<&str>, dept: Option<&str>) -> Caller {
        Caller {
            user: user.to_owned(),
            issuer: "test".to_owned(),
            roles: roles.iter().copied().collect(),
            township: township.map(str::to_owned),
            county: township.map(|t| t[..6].to_owned()),
            department: dept.map(str::to_owned),
            app: None,
            expires_at: 0,
        }
    }

    fn request(created: &str, state: RequestState) -> AccessRequest {
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
            deadline: add_working_days(created, DEADLINE_WORKING_DAYS).to_string(),
            state,
            decided_at: None,
            decided_by: None,
            decision_note: None,
            grant_id: None,
        }
    }

    #[test]
    fn ten_working_days_from_a_friday_is_the_friday_two_weeks_later() {
        // 2026-05-08 is a Friday.
        assert_eq!(day("2026-05-08").weekday(), Weekday::Fri);
        assert_eq!(add_working_days(day("2026-05-08"), 10), day("2026-05-22"));
        // From a Saturday or a Sunday the count starts on Monday.
        assert_eq!(add_working_days(day("2026-05-09"), 1), day("2026-05-11"));
        assert_eq!(add_working_days(day("2026-05-10"), 10), day("2026-05-22"));
        // From a Wednesday: two weekends are skipped.
        assert_eq!(add_working_days(day("2026-05-13"), 10), day("2026-05-27"));
        assert_eq!(add_working_days(day("2026-05-13"), 0), day("2026-05-13"));
    }

    #[test]
    fn a_pending_request_past_its_deadline_is_overdue_and_listed() {
        let old = request("2026-05-08", RequestState::Pending);
        assert_eq!(old.deadline, "2026-05-22");
        assert!(
            !is_overdue(&old, day("2026-05-22")),
            "due on the day itself"
        );
        assert!(is_overdue(&old, day("2026-05-25")));
        let decided = request("2026-05-08", RequestState::Approved);
        assert!(!is_overdue(&decided, day("2026-05-25")));
        let fresh = AccessRequest {
            id: "ar-fresh".to_owned(),
            ..request("2026-05-20", RequestState::Pending)
        };

        let all = [old, decided, fresh];
        let listed = request_page(
            &all,
            day("2026-05-25"),
            true,
            &ListQuery::all(),
            &BTreeMap::new(),
        );
        let ids: Vec<&str> = listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ar-test"]);
        assert_eq!(listed["requests"][0]["overdue"], true);
        let everything = request_page(
            &all,
            day("2026-05-25"),
            false,
            &ListQuery::all(),
            &BTreeMap::new(),
        );
        assert_eq!(everything["requests"].as_array().unwrap().len(), 3);
        assert_eq!(everything["requests"][2]["overdue"], false);
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
