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
//! Every change, allowed or refused, is an admin event in the audit log naming what
//! changed (ids, connector, fields and masks); justifications, notes and reasons are
//! free text and stay in the registry, out of the log.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{Datelike, NaiveDate, Weekday};
use connectors::definition::{LeafField, Sharing};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{commit, may_administer, refused, registry_unavailable, short};
use super::lists::ListQuery;
use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent};
use crate::auth::{Caller, Role};
use crate::config::{ActiveConfig, ActiveConnector};
use crate::mask::Mask;
use crate::policy::{Grant, Quota, china_today};
use crate::registry::{
    AccessRequest, Change, GrantRecord, Origin, RequestState, Revocation, Snapshot,
};

/// How many working days (Monday to Friday) a department has to answer a request,
/// unless `gateway.yaml` says otherwise (`access_requests.deadline_working_days`).
/// Public holidays are not counted as non-working days: the calendar of 法定节假日 and
/// 调休 changes every year and is not configured, so a deadline over a holiday comes
/// early rather than late.
pub const DEADLINE_WORKING_DAYS: u32 = 10;

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

// ---------------------------------------------------------------------------------
// Pure rules

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
fn may_list(caller: &Caller) -> bool {
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
fn sees_all(caller: &Caller) -> bool {
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
fn reaches_township(
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

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new request id: `ar-` and a UUIDv7 in lowercase hex (a valid rule id).
fn new_request_id() -> String {
    format!("ar-{}", uuid::Uuid::now_v7().simple())
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
    super::body::json(headers, body, expected)
}

fn admin_event(
    request_id: &str,
    caller: &Caller,
    peer: Option<std::net::SocketAddr>,
    operation: &str,
) -> AuditEvent {
    AuditEvent::admin(request_id, AuditCaller::of(caller, peer), operation)
}

// ---------------------------------------------------------------------------------
// Views

/// A request as answered. An approved request whose grant was revoked shows
/// `state: revoked` and `revoked: {at, by}`.
fn request_view(request: &AccessRequest, today: NaiveDate, revoked: Option<&Revocation>) -> Value {
    let mut view = serde_json::to_value(request).unwrap_or_default();
    if let Value::Object(map) = &mut view {
        map.insert("overdue".into(), Value::Bool(is_overdue(request, today)));
        match revoked {
            Some(r) if request.state == RequestState::Approved => {
                map.insert("state".into(), json!("revoked"));
                map.insert("revoked".into(), json!({"at": r.at, "by": r.by}));
            }
            _ => {
                map.insert("revoked".into(), Value::Null);
            }
        }
    }
    view
}

/// The revocation of each revoked API grant, by grant id.
async fn revocations(
    app: &App,
    request_id: &str,
) -> Result<BTreeMap<String, Revocation>, Response> {
    let grants = app
        .live
        .registry()
        .grants()
        .await
        .map_err(|e| registry_unavailable(request_id, &e))?;
    Ok(grants
        .into_iter()
        .filter_map(|g| g.revoked.map(|r| (g.id, r)))
        .collect())
}

/// The state a request shows (`revoked` for an approved one whose grant was revoked).
fn shown_state(request: &AccessRequest, revoked: &BTreeMap<String, Revocation>) -> &'static str {
    let revoked = request
        .grant_id
        .as_ref()
        .is_some_and(|g| revoked.contains_key(g));
    match request.state {
        RequestState::Approved if revoked => "revoked",
        RequestState::Pending => "pending",
        RequestState::Approved => "approved",
        RequestState::Refused => "refused",
        RequestState::Withdrawn => "withdrawn",
    }
}

/// A grant as answered: the same members for file and API grants.
struct GrantView {
    id: String,
    description: String,
    consumers: Value,
    connector: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    fields: Value,
    row: Option<String>,
    valid_from: Option<NaiveDate>,
    valid_until: Option<NaiveDate>,
    quota: Option<Quota>,
    legal_basis: String,
    approver: String,
}

impl GrantView {
    fn of_grant(g: &Grant) -> GrantView {
        let mut consumers = serde_json::Map::new();
        let roles: Vec<&str> = g.consumers.roles.iter().map(|r| r.as_str()).collect();
        for (key, list) in [
            ("roles", json!(roles)),
            ("townships", json!(g.consumers.townships)),
            ("counties", json!(g.consumers.counties)),
            ("apps", json!(g.consumers.apps)),
        ] {
            if list.as_array().is_some_and(|a| !a.is_empty()) {
                consumers.insert(key.to_owned(), list);
            }
        }
        GrantView {
            id: g.id.clone(),
            description: g.description.clone(),
            consumers: Value::Object(consumers),
            connector: g.connector.clone(),
            operations: g.operations.clone(),
            purposes: g.purposes.clone(),
            fields: serde_json::to_value(&g.fields).unwrap_or_default(),
            row: enforced(g),
            valid_from: g.valid.from,
            valid_until: g.valid.until,
            quota: g.quota,
            legal_basis: g.legal_basis.clone(),
            approver: g.approver.clone(),
        }
    }

    /// An API grant, from the policy file the registry holds for it.
    fn of_record(record: &GrantRecord) -> GrantView {
        #[derive(Deserialize)]
        struct File {
            grants: Vec<Stored>,
        }
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Stored {
            description: String,
            consumers: Value,
            operations: Vec<String>,
            purposes: Vec<String>,
            fields: Value,
            valid: Option<Valid>,
            quota: Option<Quota>,
            legal_basis: String,
            approver: String,
        }
        #[derive(Deserialize)]
        struct Valid {
            from: Option<NaiveDate>,
            until: Option<NaiveDate>,
        }
        let stored = serde_yaml_ng::from_str::<File>(&record.policy)
            .ok()
            .and_then(|f| f.grants.into_iter().next())
            .unwrap_or_else(|| {
                tracing::error!(grant = %record.id, "a stored grant's policy does not parse");
                Stored::default()
            });
        let (valid_from, valid_until) = stored
            .valid
            .as_ref()
            .map_or((None, None), |v| (v.from, v.until));
        GrantView {
            id: record.id.clone(),
            description: stored.description,
            consumers: stored.consumers,
            connector: record.connector.clone(),
            operations: stored.operations,
            purposes: stored.purposes,
            fields: stored.fields,
            row: None,
            valid_from,
            valid_until,
            quota: stored.quota,
            legal_basis: stored.legal_basis,
            approver: stored.approver,
        }
    }

    fn to_json(&self, state: GrantState) -> Value {
        json!({
            "id": self.id,
            "state": state.as_str(),
            "description": self.description,
            "consumers": self.consumers,
            "connector": self.connector,
            "operations": self.operations,
            "purposes": self.purposes,
            "fields": self.fields,
            "row": self.row,
            "valid_from": self.valid_from.map(|d| d.to_string()),
            "valid_until": self.valid_until.map(|d| d.to_string()),
            "quota": self.quota,
            "legal_basis": self.legal_basis,
            "approver": self.approver,
        })
    }
}

fn file_grant_view(grant: &Grant, today: NaiveDate) -> Value {
    let view = GrantView::of_grant(grant);
    let state = grant_state(false, view.valid_from, view.valid_until, today);
    let mut out = view.to_json(state);
    out["origin"] = json!("file");
    out
}

/// An API grant as answered; `in_force` is the grant as the running policy loaded it
/// (for the row condition it enforces), when it is in force.
fn api_grant_view(record: &GrantRecord, today: NaiveDate, in_force: Option<&Grant>) -> Value {
    let mut view = GrantView::of_record(record);
    view.row = in_force.and_then(enforced);
    let state = grant_state(
        record.revoked.is_some(),
        view.valid_from,
        view.valid_until,
        today,
    );
    let mut out = view.to_json(state);
    out["origin"] = json!("api");
    out["department"] = json!(record.department);
    out["township"] = json!(record.township);
    out["request_id"] = json!(record.request_id);
    out["created_at"] = json!(record.created_at);
    out["created_by"] = json!(record.created_by);
    out["revoked"] = serde_json::to_value(&record.revoked).unwrap_or_default();
    out
}

// ---------------------------------------------------------------------------------
// Requests

/// `POST /v1/access-requests` as a township lead sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    connector: String,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    purposes: Vec<String>,
    /// Leaf path → `"default"` or a mask.
    #[serde(default)]
    fields: BTreeMap<String, Value>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    valid_until: Option<String>,
}

const NEW_REQUEST_SHAPE: &str = "{connector, operations: [...], purposes: [...], fields: {path: mask}, roles?, justification, valid_until?}";

/// What a valid request asks for.
#[derive(Debug)]
struct Asked {
    connector: String,
    department: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    fields: BTreeMap<String, Value>,
    roles: Vec<String>,
    valid_until: Option<NaiveDate>,
}

/// Checks a request against the configuration, reporting every problem.
fn check_request(
    body: &NewRequest,
    config: &ActiveConfig,
    today: NaiveDate,
) -> Result<Asked, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |path: String, message: &str| problems.push((path, message.to_owned()));

    let connector = config.connectors.get(&body.connector);
    if connector.is_none() {
        problem("connector".into(), "is not a configured connector");
    }
    let mut operations: Vec<String> = Vec::new();
    if body.operations.is_empty() {
        problem(
            "operations".into(),
            "list the operations the fields come from",
        );
    }
    for (i, op) in body.operations.iter().enumerate() {
        if let Some(c) = connector
            && !c.operations.contains_key(op)
        {
            problem(
                format!("operations[{i}]"),
                "is not an operation of the connector",
            );
        } else if !operations.contains(op) {
            operations.push(op.clone());
        }
    }
    let mut purposes: Vec<String> = Vec::new();
    if body.purposes.is_empty() {
        problem(
            "purposes".into(),
            "list the purposes (事项) the fields are needed for",
        );
    }
    for (i, p) in body.purposes.iter().enumerate() {
        if config.purposes.get(p).is_none() {
            problem(
                format!("purposes[{i}]"),
                "is not in the purpose catalog (事项目录)",
            );
        } else if !purposes.contains(p) {
            purposes.push(p.clone());
        }
    }

    let mut fields = BTreeMap::new();
    if body.fields.is_empty() {
        problem("fields".into(), "request at least one field");
    }
    for (path, mask_value) in &body.fields {
        let at = field_at(path);
        let mask = match parse_mask(mask_value) {
            Ok(mask) => mask,
            Err(()) => {
                problem(
                    at,
                    "is not a mask: write \"default\" or a mask as policy files do",
                );
                continue;
            }
        };
        let Some(c) = connector else { continue };
        if operations.is_empty() {
            continue;
        }
        let found = leaves(c, &operations, path);
        if found.iter().all(Option::is_none) {
            problem(at, "is not a field of the connector's operations");
            continue;
        }
        let found: Vec<&LeafField> = found.into_iter().flatten().collect();
        if found.len() != operations.len() {
            problem(at, "is not a field of every operation requested");
            continue;
        }
        if found.iter().any(|l| l.sharing == Sharing::Never) {
            problem(at, "never shared; cannot be requested");
            continue;
        }
        if found.iter().all(|l| l.sharing == Sharing::Open) {
            problem(
                at,
                "is open (无条件共享) and needs no grant; request only conditional fields",
            );
            continue;
        }
        if let Some(m) = &mask
            && found.iter().any(|l| !m.fits(l.pii))
        {
            problem(at, "the mask does not fit the field's kind");
            continue;
        }
        let value = match &mask {
            None => json!("default"),
            Some(m) => serde_json::to_value(m).unwrap_or_else(|_| json!("default")),
        };
        fields.insert(path.clone(), value);
    }

    let roles = body
        .roles
        .clone()
        .unwrap_or_else(|| vec![Role::Clerk.as_str().to_owned()]);
    if roles.is_empty() {
        problem("roles".into(), "name at least one township role");
    }
    let mut wanted: Vec<String> = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        match Role::parse(r) {
            Some(role) if TOWNSHIP_ROLES.contains(&role) => {
                if !wanted.contains(r) {
                    wanted.push(r.clone());
                }
            }
            _ => problem(
                format!("roles[{i}]"),
                "only township roles may be named: clerk, grid_worker, township_lead",
            ),
        }
    }

    match crate::text::free_text(&body.justification, MAX_TEXT, true) {
        Ok(_) => {}
        Err(crate::text::TextError::Empty) => problem(
            "justification".into(),
            "say why the township needs these fields",
        ),
        Err(e) => problem("justification".into(), &e.to_string()),
    }

    let valid_until = match &body.valid_until {
        None => None,
        Some(text) => match parse_date(text) {
            None => {
                problem("valid_until".into(), "is not a date YYYY-MM-DD");
                None
            }
            Some(day) if day < today => {
                problem("valid_until".into(), "is in the past");
                None
            }
            Some(day) => Some(day),
        },
    };

    match connector {
        Some(c) if problems.is_empty() => Ok(Asked {
            connector: c.def.id.clone(),
            department: c.def.department.id.clone(),
            operations,
            purposes,
            fields,
            roles: wanted,
            valid_until,
        }),
        _ => Err(problems),
    }
}

async fn create_request(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut event = admin_event(&request_id, &caller, peer, "access.request");
    let township = match (&caller.township, caller.has_role(Role::TownshipLead)) {
        (Some(t), true) => t.clone(),
        _ => {
            let p = Problem::new(
                ProblemKind::Forbidden,
                "Only a township lead requests access for their township.",
            )
            .with("rule", ACCESS_RULE)
            .with("reason", "role");
            return refused(&app, &request_id, event, p).await;
        }
    };
    let body: NewRequest = match super::body::json(&headers, body, NEW_REQUEST_SHAPE) {
        Ok(body) => body,
        Err(p) => return refused(&app, &request_id, event, p).await,
    };
    let config = app.config.load_full();
    // Only a connector id the gateway knows is recorded.
    event.connector = config
        .connectors
        .get(&body.connector)
        .map(|c| c.def.id.clone());
    let today = china_today();
    let asked = match check_request(&body, &config, today) {
        Ok(asked) => asked,
        Err(problems) => {
            let p = invalid(&problems, "access request");
            return refused(&app, &request_id, event, p).await;
        }
    };
    let existing = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let duplicate = existing.iter().find(|r| {
        r.state == RequestState::Pending
            && r.township == township
            && r.connector == asked.connector
            && r.operations == asked.operations
            && r.purposes == asked.purposes
            && r.fields == asked.fields
            && r.roles == asked.roles
            && r.valid_until == asked.valid_until.map(|d| d.to_string())
    });
    if let Some(first) = duplicate {
        let p = Problem::new(
            ProblemKind::DuplicateRequest,
            "The township already has a pending request for exactly this; wait for its decision or withdraw it.",
        )
        .with("duplicate_of", first.id.clone());
        return refused(&app, &request_id, event, p).await;
    }
    let id = new_request_id();
    let request = AccessRequest {
        id: id.clone(),
        township,
        requested_by: caller.user.clone(),
        connector: asked.connector,
        department: asked.department,
        operations: asked.operations,
        purposes: asked.purposes,
        fields: asked.fields,
        roles: asked.roles,
        justification: crate::text::normalize(&body.justification),
        valid_until: asked.valid_until.map(|d| d.to_string()),
        created_at: now_rfc3339(),
        deadline: add_working_days(today, config.access_requests.deadline_working_days).to_string(),
        state: RequestState::Pending,
        decided_at: None,
        decided_by: None,
        decision_note: None,
        grant_id: None,
    };
    event.operation = Some(format!(
        "access.request {id} {} ops={} purposes={} fields={} roles={}",
        request.connector,
        request.operations.join(","),
        request.purposes.join(","),
        request.fields.keys().cloned().collect::<Vec<_>>().join(","),
        request.roles.join(","),
    ));
    match commit(
        &app,
        &request_id,
        vec![Change::AddRequest(request.clone())],
        event,
    )
    .await
    {
        Ok(_) => {
            tracing::info!(request_id, user = %caller.user, access_request = %id, connector = %request.connector, "access requested");
            (
                StatusCode::CREATED,
                axum::Json(request_view(&request, today, None)),
            )
                .into_response()
        }
        Err(response) => response,
    }
}

/// The requests the caller may see, oldest first.
async fn visible_requests(
    app: &App,
    request_id: &str,
    caller: &Caller,
) -> Result<Vec<AccessRequest>, Response> {
    if !may_list(caller) {
        return Err(not_listed().for_request(request_id).into_response());
    }
    let all = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(request_id, &e))?;
    Ok(all
        .into_iter()
        .filter(|r| request_visible(caller, r))
        .collect())
}

async fn list_requests(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match ListQuery::of(
        raw.as_deref(),
        &["pending", "approved", "refused", "withdrawn", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    list_of(&app, &request_id, &caller, &query, false).await
}

async fn list_overdue(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
) -> Response {
    list_of(&app, &request_id, &caller, &ListQuery::all(), true).await
}

/// The visible requests that pass `query`'s filters, oldest first, one page.
async fn list_of(
    app: &App,
    request_id: &str,
    caller: &Caller,
    query: &ListQuery,
    only_overdue: bool,
) -> Response {
    let list = match visible_requests(app, request_id, caller).await {
        Ok(list) => list,
        Err(response) => return response,
    };
    let revoked = match revocations(app, request_id).await {
        Ok(revoked) => revoked,
        Err(response) => return response,
    };
    axum::Json(request_page(
        &list,
        china_today(),
        only_overdue,
        query,
        &revoked,
    ))
    .into_response()
}

/// One page of `requests` (oldest first) that pass `query` (and are overdue on
/// `today`, with `only_overdue`), with the cursor of the next page.
fn request_page(
    requests: &[AccessRequest],
    today: NaiveDate,
    only_overdue: bool,
    query: &ListQuery,
    revoked: &BTreeMap<String, Revocation>,
) -> Value {
    let filtered: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| !only_overdue || is_overdue(r, today))
        .filter(|r| ListQuery::matches(&query.state, shown_state(r, revoked)))
        .filter(|r| ListQuery::matches(&query.township, &r.township))
        .filter(|r| ListQuery::matches(&query.connector, &r.connector))
        .collect();
    let (page, next) = query.page(filtered, |r| r.id.clone());
    let views: Vec<Value> = page
        .into_iter()
        .map(|r| {
            let revocation = r.grant_id.as_ref().and_then(|g| revoked.get(g));
            request_view(r, today, revocation)
        })
        .collect();
    json!({ "requests": views, "next_cursor": next })
}

async fn show_request(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let list = match visible_requests(&app, &request_id, &caller).await {
        Ok(list) => list,
        Err(response) => return response,
    };
    let revoked = match revocations(&app, &request_id).await {
        Ok(revoked) => revoked,
        Err(response) => return response,
    };
    match list.iter().find(|r| r.id == id) {
        Some(r) => {
            let revocation = r.grant_id.as_ref().and_then(|g| revoked.get(g));
            axum::Json(request_view(r, china_today(), revocation)).into_response()
        }
        None => unknown_request().for_request(&request_id).into_response(),
    }
}

/// `POST /v1/access-requests/{id}/withdraw`: the township's lead takes back a request
/// that is still pending. Audited like a decision.
async fn withdraw(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let mut event = admin_event(
        &request_id,
        &caller,
        peer,
        &format!("access.withdraw {}", short(&id)),
    );
    let township = match (&caller.township, caller.has_role(Role::TownshipLead)) {
        (Some(t), true) => t.clone(),
        _ => {
            let p = Problem::new(
                ProblemKind::Forbidden,
                "Only the township's lead withdraws its access request.",
            )
            .with("rule", ACCESS_RULE)
            .with("reason", "role");
            return refused(&app, &request_id, event, p).await;
        }
    };
    let _one_at_a_time = DECISIONS.lock().await;
    let all = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let Some(request) = all
        .into_iter()
        .find(|r| r.id == id && r.township == township)
    else {
        return refused(&app, &request_id, event, unknown_request()).await;
    };
    event.connector = Some(request.connector.clone());
    if request.state != RequestState::Pending {
        let p = Problem::new(
            ProblemKind::AlreadyDecided,
            "Only a pending request can be withdrawn; this one is already decided.",
        );
        return refused(&app, &request_id, event, p).await;
    }
    let withdrawn = AccessRequest {
        state: RequestState::Withdrawn,
        decided_at: Some(now_rfc3339()),
        decided_by: Some(caller.user.clone()),
        ..request
    };
    event.operation = Some(format!("access.withdraw {}", withdrawn.id));
    match commit(
        &app,
        &request_id,
        vec![Change::DecideRequest(withdrawn.clone())],
        event,
    )
    .await
    {
        Ok(_) => {
            tracing::info!(request_id, user = %caller.user, access_request = %withdrawn.id, "access request withdrawn");
            axum::Json(request_view(&withdrawn, china_today(), None)).into_response()
        }
        Err(response) => response,
    }
}

/// The request `id`, checked for the caller's authority to decide it and pending; a
/// refusal is recorded (with `event`) and is the answer.
async fn decidable(
    app: &App,
    request_id: &str,
    caller: &Caller,
    id: &str,
    event: &mut AuditEvent,
) -> Result<AccessRequest, Response> {
    let all = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return Err(registry_unavailable(request_id, &e)),
    };
    let problem = match all.into_iter().find(|r| r.id == id) {
        _ if !caller.has_role(Role::DeptAdmin) => not_decider(),
        None => unknown_request(),
        Some(request) => {
            event.connector = Some(request.connector.clone());
            // The connector's current owner decides; the request's department if the
            // connector is gone.
            let department = app
                .config
                .load()
                .connectors
                .get(&request.connector)
                .map_or(request.department.clone(), |c| c.def.department.id.clone());
            match may_decide(caller, &department, &request.requested_by) {
                Err(p) => p,
                Ok(()) if request.state != RequestState::Pending => Problem::new(
                    ProblemKind::AlreadyDecided,
                    "The access request was already decided.",
                )
                .with("state", json!(request.state)),
                Ok(()) => return Ok(request),
            }
        }
    };
    Err(refused(app, request_id, event.clone(), problem).await)
}

/// `POST /v1/access-requests/{id}/approve`; every member optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    /// A subset of the requested fields, each with its mask (`"default"` or a mask).
    #[serde(default)]
    fields: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    quota: Option<Quota>,
    #[serde(default)]
    legal_basis: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

const APPROVAL_SHAPE: &str = "{fields?: {path: mask}, valid_until?, quota?: {per_minute?, per_day?, per_user_per_day?}, legal_basis?, note?}";

/// What an approval grants.
#[derive(Debug)]
struct Granted {
    /// Path → the mask as a policy file takes it.
    fields: BTreeMap<String, Value>,
    /// Path → mask operator, for the audit record.
    operators: BTreeMap<String, String>,
    valid_until: Option<NaiveDate>,
    legal_basis: String,
    note: Option<String>,
}

/// Checks an approval against its request: the fields may only narrow (fewer fields,
/// never unmasked when the township named a mask; a `"default"` in the request
/// leaves the mask to the department), the validity only shorten.
fn check_approval(
    request: &AccessRequest,
    approval: &Approval,
    config: &ActiveConfig,
    today: NaiveDate,
) -> Result<Granted, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |path: String, message: &str| problems.push((path, message.to_owned()));
    let connector = config.connectors.get(&request.connector);
    // The mask a field's value gives, "default" resolved on the connector's field.
    let resolve = |path: &str, mask: Option<Mask>| -> Option<Mask> {
        mask.or_else(|| {
            let c = connector?;
            let leaf = leaves(c, &request.operations, path)
                .into_iter()
                .flatten()
                .next()?;
            Some(Mask::default_for(leaf.pii))
        })
    };
    let chosen = approval.fields.as_ref().unwrap_or(&request.fields);
    if chosen.is_empty() {
        problem(
            "fields".into(),
            "approve at least one field, or refuse the request",
        );
    }
    let mut fields = BTreeMap::new();
    let mut operators = BTreeMap::new();
    for (path, value) in chosen {
        let at = field_at(path);
        let Some(asked) = request.fields.get(path) else {
            problem(
                at,
                "was not requested; an approval can only narrow the request",
            );
            continue;
        };
        let Ok(mask) = parse_mask(value) else {
            problem(
                at,
                "is not a mask: write \"default\" or a mask as policy files do",
            );
            continue;
        };
        // A request's "default" leaves the mask to the department; a mask the
        // township named is the most it asked to see.
        let requested = parse_mask(asked).ok().flatten();
        let approved = resolve(path, mask.clone());
        if approved == Some(Mask::Keep) && requested.as_ref().is_some_and(|m| *m != Mask::Keep) {
            problem(
                at,
                "was requested masked; an approval may not show it unmasked",
            );
            continue;
        }
        let written = match &approved {
            Some(m) => serde_json::to_value(m).unwrap_or_else(|_| json!("default")),
            None => json!("default"),
        };
        operators.insert(
            path.clone(),
            approved
                .as_ref()
                .map_or("default".to_owned(), |m| m.operator().to_owned()),
        );
        fields.insert(path.clone(), written);
    }

    let requested_until = request.valid_until.as_deref().and_then(parse_date);
    let valid_until = match &approval.valid_until {
        None => requested_until,
        Some(text) => match parse_date(text) {
            None => {
                problem("valid_until".into(), "is not a date YYYY-MM-DD");
                None
            }
            Some(day) if day < today => {
                problem(
                    "valid_until".into(),
                    "is in the past; a grant is valid from today",
                );
                None
            }
            Some(day) if requested_until.is_some_and(|r| day > r) => {
                problem(
                    "valid_until".into(),
                    "is later than the request asked for; an approval can only shorten it",
                );
                None
            }
            Some(day) => Some(day),
        },
    };
    let legal_basis = match &approval.legal_basis {
        Some(text) if text.trim().is_empty() => {
            problem(
                "legal_basis".into(),
                "must not be empty (leave it out for the purposes' own)",
            );
            String::new()
        }
        Some(text) => match crate::text::free_text(text, MAX_TEXT, true) {
            Ok(text) => text,
            Err(e) => {
                problem("legal_basis".into(), &e.to_string());
                String::new()
            }
        },
        None => {
            let mut bases: Vec<&str> = Vec::new();
            for p in &request.purposes {
                if let Some(purpose) = config.purposes.get(p)
                    && !bases.contains(&purpose.legal_basis.as_str())
                {
                    bases.push(&purpose.legal_basis);
                }
            }
            bases.join("；")
        }
    };
    let note = match approval
        .note
        .as_deref()
        .map(|n| crate::text::free_text(n, MAX_TEXT, false))
    {
        Some(Ok(note)) if !note.is_empty() => Some(note),
        Some(Err(e)) => {
            problem("note".into(), &e.to_string());
            None
        }
        _ => None,
    };
    if problems.is_empty() {
        Ok(Granted {
            fields,
            operators,
            valid_until,
            legal_basis,
            note,
        })
    } else {
        Err(problems)
    }
}

/// The record field that says which township a subject lives in.
const TOWNSHIP_FIELD: &str = "township_code";

/// The condition a grant in force is held to, in words: its row condition, or the
/// caller's jurisdiction.
fn enforced(grant: &crate::policy::Grant) -> Option<String> {
    grant.row.as_ref().map(|r| r.describe()).or_else(|| {
        grant
            .jurisdiction
            .map(|j| format!("only {}, as the household register says", j.describe()))
    })
}

/// How an approved grant is held to the requesting township's own residents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnResidents {
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
fn own_residents_only(request: &AccessRequest, config: &ActiveConfig) -> OwnResidents {
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

/// The one-grant policy file an approval writes. With `own_residents`, the grant
/// holds only for subjects registered in the requesting township.
fn grant_policy(
    request: &AccessRequest,
    granted: &Granted,
    quota: Option<Quota>,
    approver: &str,
    today: NaiveDate,
    own_residents: OwnResidents,
) -> Result<String, serde_yaml_ng::Error> {
    let mut valid = serde_json::Map::new();
    valid.insert("from".into(), json!(today.to_string()));
    if let Some(until) = granted.valid_until {
        valid.insert("until".into(), json!(until.to_string()));
    }
    let mut grant = json!({
        "id": request.id,
        "description": format!(
            "乡镇 {} 的数据申请 {}：{}",
            request.township, request.id, request.justification
        ),
        "consumers": { "roles": request.roles, "townships": [request.township] },
        "connector": request.connector,
        "operations": request.operations,
        "purposes": request.purposes,
        "fields": granted.fields,
        "valid": valid,
        "legal_basis": granted.legal_basis,
        "approver": approver,
    });
    match own_residents {
        OwnResidents::Jurisdiction => grant["jurisdiction"] = json!("township"),
        OwnResidents::Row => {
            grant["row"] = json!({ "field": TOWNSHIP_FIELD, "equals": "caller_township" });
        }
        OwnResidents::Unbounded => {}
    }
    if let Some(q) = quota {
        let mut quota = serde_json::Map::new();
        if let Some(n) = q.per_minute {
            quota.insert("per_minute".into(), json!(n));
        }
        if let Some(n) = q.per_day {
            quota.insert("per_day".into(), json!(n));
        }
        if let Some(n) = q.per_user_per_day {
            quota.insert("per_user_per_day".into(), json!(n));
        }
        grant["quota"] = Value::Object(quota);
    }
    serde_yaml_ng::to_string(&json!({ "grants": [grant] }))
}

async fn approve(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut event = admin_event(
        &request_id,
        &caller,
        peer,
        &format!("access.approve {}", short(&id)),
    );
    let _one_at_a_time = DECISIONS.lock().await;
    let request = match decidable(&app, &request_id, &caller, &id, &mut event).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let approval: Approval = match body_or_default(&headers, body, APPROVAL_SHAPE) {
        Ok(a) => a,
        Err(p) => return refused(&app, &request_id, event, p).await,
    };
    let config = app.config.load_full();
    let today = china_today();
    let granted = match check_approval(&request, &approval, &config, today) {
        Ok(g) => g,
        Err(problems) => {
            let p = invalid(&problems, "approval");
            return refused(&app, &request_id, event, p).await;
        }
    };
    let own_residents = own_residents_only(&request, &config);
    let policy = match grant_policy(
        &request,
        &granted,
        approval.quota,
        &caller.user,
        today,
        own_residents,
    ) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(request_id, error = %e, "a grant could not be written as YAML");
            let p = Problem::new(ProblemKind::Internal, "The grant could not be written.");
            return refused(&app, &request_id, event, p).await;
        }
    };
    let now = now_rfc3339();
    let record = GrantRecord {
        id: request.id.clone(),
        department: request.department.clone(),
        connector: request.connector.clone(),
        township: request.township.clone(),
        policy,
        request_id: Some(request.id.clone()),
        created_at: now.clone(),
        created_by: caller.user.clone(),
        revoked: None,
    };
    let decided = AccessRequest {
        state: RequestState::Approved,
        decided_at: Some(now),
        decided_by: Some(caller.user.clone()),
        decision_note: granted.note.clone(),
        grant_id: Some(record.id.clone()),
        ..request
    };
    let fields: Vec<String> = granted
        .operators
        .iter()
        .map(|(path, op)| format!("{path}:{op}"))
        .collect();
    event.operation = Some(format!(
        "access.approve {} grant={} fields={} valid_until={}{}",
        decided.id,
        record.id,
        fields.join(","),
        granted
            .valid_until
            .map_or("none".to_owned(), |d| d.to_string()),
        approval.quota.map_or(String::new(), |q| format!(
            " quota={}/min,{}/day{}",
            q.per_minute.map_or("-".to_owned(), |n| n.to_string()),
            q.per_day.map_or("-".to_owned(), |n| n.to_string()),
            q.per_user_per_day
                .map_or(String::new(), |n| format!(",{n}/user/day"))
        )),
    ));
    let changes = vec![
        Change::AddGrant(record.clone()),
        Change::DecideRequest(decided.clone()),
    ];
    match commit(&app, &request_id, changes, event).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, access_request = %decided.id, connector = %decided.connector, "access request approved");
            axum::Json(json!({
                "request": request_view(&decided, today, None),
                "grant": api_grant_view(&record, today, app.config.load().policies.grants().iter().find(|g| g.id == record.id)),
                "config_version": changed.version,
            }))
            .into_response()
        }
        Err(response) => response,
    }
}

/// `POST /v1/access-requests/{id}/refuse` and `POST /v1/grants/{id}/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

const REASON_SHAPE: &str = "{reason}";

fn check_reason(reason: &Reason) -> Result<String, Problem> {
    let problem = match crate::text::free_text(&reason.reason, MAX_TEXT, true) {
        Ok(text) => return Ok(text),
        Err(crate::text::TextError::Empty) => "say why".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(invalid(&[("reason".to_owned(), problem)], "request"))
}

async fn refuse(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut event = admin_event(
        &request_id,
        &caller,
        peer,
        &format!("access.refuse {}", short(&id)),
    );
    let _one_at_a_time = DECISIONS.lock().await;
    let request = match decidable(&app, &request_id, &caller, &id, &mut event).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let reason = match body_or_default::<Reason>(&headers, body, REASON_SHAPE)
        .and_then(|r| check_reason(&r))
    {
        Ok(reason) => reason,
        Err(p) => return refused(&app, &request_id, event, p).await,
    };
    let decided = AccessRequest {
        state: RequestState::Refused,
        decided_at: Some(now_rfc3339()),
        decided_by: Some(caller.user.clone()),
        decision_note: Some(reason),
        ..request
    };
    event.operation = Some(format!("access.refuse {}", decided.id));
    match commit(
        &app,
        &request_id,
        vec![Change::DecideRequest(decided.clone())],
        event,
    )
    .await
    {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, access_request = %decided.id, "access request refused");
            axum::Json(json!({
                "request": request_view(&decided, china_today(), None),
                "config_version": changed.version,
            }))
            .into_response()
        }
        Err(response) => response,
    }
}

// ---------------------------------------------------------------------------------
// Grants

async fn list_grants(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    if !may_list(&caller) {
        return not_listed().for_request(&request_id).into_response();
    }
    let query = match ListQuery::of(
        raw.as_deref(),
        &["active", "not_yet_valid", "expired", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let records = match app.live.registry().grants().await {
        Ok(records) => records,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let config = app.config.load_full();
    let today = china_today();
    let api_ids: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let department_of = |connector: &str| {
        config
            .connectors
            .get(connector)
            .map(|c| c.def.department.id.clone())
    };
    let own_department = |department: Option<&str>| {
        caller.has_role(Role::DeptAdmin)
            && department.is_some()
            && caller.department.as_deref() == department
    };
    let township = caller
        .township
        .as_deref()
        .filter(|_| caller.has_role(Role::TownshipLead));
    let mut list: Vec<Value> = config
        .policies
        .grants()
        .iter()
        .filter(|g| !api_ids.contains(g.id.as_str()))
        .filter(|g| {
            sees_all(&caller)
                || own_department(department_of(&g.connector).as_deref())
                || township.is_some_and(|t| {
                    reaches_township(
                        &g.consumers.townships,
                        &g.consumers.counties,
                        t,
                        caller.county.as_deref(),
                    )
                })
        })
        .map(|g| file_grant_view(g, today))
        .collect();
    list.extend(
        records
            .iter()
            .filter(|r| {
                sees_all(&caller)
                    || own_department(Some(&r.department))
                    || township == Some(r.township.as_str())
            })
            .map(|r| {
                let in_force = config.policies.grants().iter().find(|g| g.id == r.id);
                api_grant_view(r, today, in_force)
            }),
    );
    let township_of = |grant: &Value| -> Vec<String> {
        match grant["township"].as_str() {
            Some(t) => vec![t.to_owned()],
            None => grant["consumers"]["townships"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let filtered: Vec<Value> = list
        .into_iter()
        .filter(|g| ListQuery::matches(&query.state, g["state"].as_str().unwrap_or("")))
        .filter(|g| ListQuery::matches(&query.connector, g["connector"].as_str().unwrap_or("")))
        .filter(|g| {
            query
                .township
                .as_ref()
                .is_none_or(|t| township_of(g).contains(t))
        })
        .collect();
    let (page, next) = query.page(filtered, |g| g["id"].as_str().unwrap_or("").to_owned());
    axum::Json(json!({ "grants": page, "next_cursor": next })).into_response()
}

/// Where a file grant came from, for a `file-managed` answer: the applied policy file
/// that holds it, or the files named in `gateway.yaml`.
fn file_origin(snapshot: &Snapshot, id: &str) -> String {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(default)]
        grants: Vec<Id>,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    snapshot
        .policy_files
        .values()
        .find(|f| {
            serde_yaml_ng::from_str::<Ids>(&f.text)
                .is_ok_and(|ids| ids.grants.iter().any(|g| g.id == id))
        })
        .map_or("gateway.yaml".to_owned(), |f| {
            Origin::File {
                path: f.path.clone(),
            }
            .describe()
        })
}

async fn revoke(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut event = admin_event(
        &request_id,
        &caller,
        peer,
        &format!("grant.revoke {}", short(&id)),
    );
    if !caller.has_role(Role::DeptAdmin) && !caller.has_role(Role::Operator) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "Only the granting department's admin or an operator revokes a grant.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return refused(&app, &request_id, event, p).await;
    }
    let _one_at_a_time = DECISIONS.lock().await;
    let snapshot = match app.live.registry().snapshot().await {
        Ok(s) => s,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let records = match app.live.registry().grants().await {
        Ok(records) => records,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let config = app.config.load_full();
    let Some(record) = records.into_iter().find(|r| r.id == id) else {
        let problem = match config.policies.grants().iter().find(|g| g.id == id) {
            Some(g) => {
                event.connector = Some(g.connector.clone());
                Problem::new(
                    ProblemKind::FileManaged,
                    "This grant is in the county's policy files; edit the file and apply it.",
                )
                .with("origin", file_origin(&snapshot, &id))
            }
            None => unknown_grant(),
        };
        return refused(&app, &request_id, event, problem).await;
    };
    event.connector = Some(record.connector.clone());
    let department = config
        .connectors
        .get(&record.connector)
        .map_or(record.department.clone(), |c| c.def.department.id.clone());
    if !may_administer(&caller, &department) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "A department revokes only grants of its own connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return refused(&app, &request_id, event, p).await;
    }
    if record.revoked.is_some() {
        let p = Problem::new(ProblemKind::AlreadyDecided, "The grant is already revoked.");
        return refused(&app, &request_id, event, p).await;
    }
    let reason = match body_or_default::<Reason>(&headers, body, REASON_SHAPE)
        .and_then(|r| check_reason(&r))
    {
        Ok(reason) => reason,
        Err(p) => return refused(&app, &request_id, event, p).await,
    };
    let revocation = Revocation {
        at: now_rfc3339(),
        by: caller.user.clone(),
        reason,
    };
    event.operation = Some(format!("grant.revoke {}", record.id));
    let change = Change::RevokeGrant {
        id: record.id.clone(),
        revocation: revocation.clone(),
    };
    match commit(&app, &request_id, vec![change], event).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, grant = %record.id, "grant revoked");
            let revoked = GrantRecord {
                revoked: Some(revocation),
                ..record
            };
            axum::Json(json!({
                "grant": api_grant_view(&revoked, china_today(), None),
                "config_version": changed.version,
            }))
            .into_response()
        }
        Err(response) => response,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

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
