//! Connector versions as drafts: a version saved through the admin API
//! (`PUT /v1/admin/connectors/{id}`, in [`crate::admin`]) serves nothing until it is
//! activated. This module owns what a department admin does with versions after that:
//!
//! - `GET /v1/admin/connectors/{id}` — the definition in force, which version that is,
//!   and the drafts;
//! - `GET /v1/admin/connectors/{id}/versions/{n}` — one version in full;
//! - `GET /v1/admin/connectors/{id}/versions/{a}/diff/{b}` — what changed from `a` to
//!   `b` (fields added, removed, reclassified, remapped; operations changed);
//! - `POST /v1/admin/connectors/{id}/versions/{n}/test` — calls the department once
//!   per operation of version `n` (household operations too) with the admin's sample
//!   subject, answering per operation whether the answer fits — never the data; each
//!   call is audited with the subject's pseudonym, like a lookup;
//! - `POST /v1/admin/connectors/{id}/versions/{n}/activate` — puts version `n` in
//!   force;
//! - `POST /v1/admin/connectors/{id}/rollback` — `{version}`: puts an earlier version
//!   that served before back in force, in one call.
//!
//! A draft that loosens the county's classification is not activated by its
//! department: the data-governance office's approval ([`crate::review`]) puts it in
//! force, and until then activation is refused (`awaiting-review`). Activating any
//! version that would loosen the classification in force needs that approval too.
//! Every change is an admin event in the audit log.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::admin::{
    Ownership, administers, may_administer, not_admin, not_owner, ownership, registry_unavailable,
    short, unknown_connector,
};
use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Action;
use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent};
use crate::auth::Caller;
use crate::registry::{Change, ConnectorVersion, ReviewState};

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v1/admin/connectors/{id}", get(show))
        .route(
            "/v1/admin/connectors/{id}/versions/{version}",
            get(show_version),
        )
        .route(
            "/v1/admin/connectors/{id}/versions/{from}/diff/{to}",
            get(diff),
        )
        .route(
            "/v1/admin/connectors/{id}/versions/{version}/test",
            post(test_version),
        )
        .route(
            "/v1/admin/connectors/{id}/versions/{version}/activate",
            post(activate),
        )
        .route("/v1/admin/connectors/{id}/rollback", post(rollback))
}

/// Where a version stands: `active` (the one in force), `draft` (never served),
/// `awaiting_review`, `refused`, `superseded` (a later version came first while it
/// waited for review) or `previous` (served before).
pub(crate) fn state(version: &ConnectorVersion, current: Option<u32>) -> &'static str {
    if Some(version.version) == current {
        return "active";
    }
    match version.review.as_ref().map(|r| r.state) {
        Some(ReviewState::Pending) => "awaiting_review",
        Some(ReviewState::Refused) => "refused",
        Some(ReviewState::Superseded) => "superseded",
        _ if version.activated_at.is_some() => "previous",
        _ => "draft",
    }
}

/// Whether a version can no longer be put in force: its review was refused or
/// superseded.
pub(crate) fn closed(version: &ConnectorVersion) -> bool {
    matches!(
        version.review.as_ref().map(|r| r.state),
        Some(ReviewState::Refused | ReviewState::Superseded)
    )
}

/// A version without its content (for lists).
fn summary(version: &ConnectorVersion, current: Option<u32>) -> serde_json::Value {
    json!({
        "version": version.version,
        "state": state(version, current),
        "created_at": version.created_at,
        "created_by": version.created_by,
        "activated_at": version.activated_at,
        "origin": version.origin,
        "content": version.content_digest(),
        "review": version.review,
    })
}

/// A version in full: its summary, definition and schemas.
fn full(version: &ConnectorVersion, current: Option<u32>) -> serde_json::Value {
    let mut out = summary(version, current);
    out["definition"] = json!(version.definition);
    let schemas: serde_json::Map<String, serde_json::Value> = version
        .schemas
        .iter()
        .map(|(path, text)| {
            let schema = serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
            (path.clone(), schema)
        })
        .collect();
    out["schemas"] = serde_json::Value::Object(schemas);
    out
}

fn unknown_version() -> Problem {
    Problem::new(
        ProblemKind::UnknownVersion,
        "The connector has no version with this number.",
    )
}

/// A version number from a URL: 1, 2, ….
fn number(text: &str) -> Option<u32> {
    text.parse().ok().filter(|n| *n > 0)
}

/// The connector a read is about, with its versions, if `caller` may read it.
async fn readable(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<(Ownership, Vec<ConnectorVersion>), Problem> {
    if !administers(caller) {
        return Err(not_admin());
    }
    let owned = ownership(app, id).await?;
    let department = owned.department().ok_or_else(unknown_connector)?;
    if !may_administer(caller, department) {
        return Err(not_owner());
    }
    if matches!(owned, Ownership::MainFile { .. }) {
        return Ok((owned, Vec::new()));
    }
    let versions = app.live.registry().connector_versions(id).await?;
    Ok((owned, versions))
}

fn current_of(owned: &Ownership) -> Option<u32> {
    match owned {
        Ownership::Registered(c) => Some(c.current.version),
        _ => None,
    }
}

async fn show(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (owned, versions) = readable(&app, &caller, &id).await?;
    if let Ownership::MainFile { department } = &owned {
        let config = app.config.load();
        let definition = config
            .connectors
            .get(&id)
            .and_then(|c| serde_yaml_ng::to_string(&*c.def).ok());
        return Ok(axum::Json(json!({
            "connector": id,
            "department": department,
            "origin": "gateway.yaml",
            "enabled": true,
            "active": null,
            "definition": definition,
            "drafts": [],
        }))
        .into_response());
    }
    let current = current_of(&owned);
    let (enabled, in_force) = match &owned {
        Ownership::Registered(c) => (c.enabled, Some(full(&c.current, current))),
        _ => (false, None),
    };
    let drafts: Vec<serde_json::Value> = versions
        .iter()
        .filter(|v| matches!(state(v, current), "draft" | "awaiting_review"))
        .map(|v| summary(v, current))
        .collect();
    Ok(axum::Json(json!({
        "connector": id,
        "department": owned.department(),
        "origin": versions.last().map(|v| &v.origin),
        "enabled": enabled,
        "active": current,
        "in_force": in_force,
        "drafts": drafts,
        "versions": versions.len(),
    }))
    .into_response())
}

async fn show_version(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (owned, versions) = readable(&app, &caller, &id).await?;
    let found = number(&version).and_then(|n| versions.iter().find(|v| v.version == n));
    let v = found.ok_or_else(unknown_version)?;
    Ok(axum::Json(full(v, current_of(&owned))).into_response())
}

async fn diff(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path((id, from, to)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let (_, versions) = readable(&app, &caller, &id).await?;
    let find = |text: &str| number(text).and_then(|n| versions.iter().find(|v| v.version == n));
    let (Some(old), Some(new)) = (find(&from), find(&to)) else {
        return Err(unknown_version());
    };
    let parse = |v: &ConnectorVersion| connectors::ConnectorDef::from_yaml(&v.definition).ok();
    let (Some(old_def), Some(new_def)) = (parse(old), parse(new)) else {
        tracing::error!(request_id, connector = %id, "a stored connector version does not parse");
        return Err(Problem::new(
            ProblemKind::Internal,
            "A stored version cannot be read.",
        ));
    };
    let changes = crate::classification::diff(&old_def, &new_def);
    let mut schemas_changed: Vec<&String> = old
        .schemas
        .keys()
        .chain(new.schemas.keys())
        .filter(|path| old.schemas.get(*path) != new.schemas.get(*path))
        .collect();
    schemas_changed.dedup();
    Ok(axum::Json(json!({
        "connector": id,
        "from": old.version,
        "to": new.version,
        "same_content": old.same_content(new),
        "connector_changed": changes.connector,
        "operations": {
            "added": changes.operations_added,
            "removed": changes.operations_removed,
            "changed": changes.operations_changed,
        },
        "fields": {
            "added": changes.fields_added,
            "removed": changes.fields_removed,
            "reclassified": changes.fields_reclassified,
            "remapped": changes.fields_remapped,
        },
        "schemas_changed": schemas_changed,
    }))
    .into_response())
}

/// `{version}` for a rollback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: u32,
}

async fn activate(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    let act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!(
            "connector.activate {} v{}",
            short(&id),
            number(&version).map_or_else(|| "?".to_owned(), |n| n.to_string())
        ),
    );
    put_in_force(
        &app,
        &request_id,
        &caller,
        &id,
        number(&version),
        false,
        act,
    )
    .await
}

async fn rollback(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("connector.rollback {}", short(&id)),
    );
    if !administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let body: RollbackBody = match super::body::json(&headers, body, "{version}") {
        Ok(body) => body,
        Err(p) => return act.refuse(p).await.into_response(),
    };
    put_in_force(
        &app,
        &request_id,
        &caller,
        &id,
        Some(body.version),
        true,
        act,
    )
    .await
}

/// Puts version `number` of connector `id` in force (a rollback only to a version that
/// served before), checked like any change and recorded as `event`.
async fn put_in_force(
    app: &App,
    request_id: &str,
    caller: &Caller,
    id: &str,
    number: Option<u32>,
    rollback: bool,
    mut act: Action,
) -> Response {
    if !administers(caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let owned = match ownership(app, id).await {
        Ok(owned) => owned,
        Err(e) => return registry_unavailable(request_id, &e),
    };
    if !matches!(owned, Ownership::Unknown) {
        act.event.connector = Some(id.to_owned());
    }
    if let Some(problem) = owned.refuse_change(caller) {
        return act.refuse(problem).await.into_response();
    }
    let versions = match app.live.registry().connector_versions(id).await {
        Ok(versions) => versions,
        Err(e) => return registry_unavailable(request_id, &e),
    };
    let Some(target) = number.and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return act.refuse(unknown_version()).await.into_response();
    };
    let (current, enabled) = match &owned {
        Ownership::Registered(c) => (Some(c.current.clone()), c.enabled),
        _ => (None, false),
    };
    let current_number = current.as_ref().map(|c| c.version);
    let action = if rollback { "rollback" } else { "activate" };
    act.event.operation = Some(format!(
        "connector.{action} {id} v{} from={} content={}",
        target.version,
        current_number.map_or_else(|| "none".to_owned(), |n| format!("v{n}")),
        target.content_digest()
    ));
    if current_number == Some(target.version) && enabled {
        let answer = json!({
            "connector": id,
            "version": target.version,
            "active": target.version,
            "unchanged": true,
        });
        return match act.commit(Vec::new()).await {
            Ok(_) => axum::Json(answer).into_response(),
            Err(problem) => problem.into_response(),
        };
    }
    if let Some(problem) = not_activatable(&target, current.as_ref(), rollback) {
        return act.refuse(problem).await.into_response();
    }
    let target = ConnectorVersion {
        activated_at: Some(crate::access::now_rfc3339()),
        ..target
    };
    let number = target.version;
    match act.commit(vec![Change::ActivateVersion(target)]).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, connector = %id, version = number, "connector version put in force ({action})");
            axum::Json(json!({
                "connector": id,
                "version": number,
                "active": number,
                "previous": current_number,
                "unchanged": false,
                "config_version": changed.version,
            }))
            .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// Why `target` may not be put in force over `current`, if it may not.
fn not_activatable(
    target: &ConnectorVersion,
    current: Option<&ConnectorVersion>,
    rollback: bool,
) -> Option<Problem> {
    let review = target.review.as_ref().map(|r| r.state);
    if review == Some(ReviewState::Pending) {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "This version loosens the county's classification; the data-governance office's approval puts it in force.",
            )
            .with("version", target.version),
        );
    }
    if matches!(review, Some(ReviewState::Refused | ReviewState::Superseded)) {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "This version's classification review was refused or superseded; it cannot be put in force. Save it again to have it reviewed.",
            )
            .with("version", target.version),
        );
    }
    if rollback && target.activated_at.is_none() {
        return Some(
            Problem::new(
                ProblemKind::InvalidRequest,
                "A rollback goes back to a version that served before; this one never did. Activate it instead.",
            )
            .with("at", "version"),
        );
    }
    if review == Some(ReviewState::Approved) {
        return None;
    }
    let in_force = current.and_then(|c| connectors::ConnectorDef::from_yaml(&c.definition).ok());
    let target_def = connectors::ConnectorDef::from_yaml(&target.definition).ok()?;
    let loosenings = crate::classification::loosenings(in_force.as_ref(), &target_def);
    if current.is_some() && !loosenings.is_empty() {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "Putting this version in force would loosen the classification in force; save it again as a new version for the data-governance office's review.",
            )
            .with("version", target.version)
            .with("loosenings", serde_json::to_value(&loosenings).unwrap_or_default()),
        );
    }
    None
}

/// The admin's sample subject: the key each operation takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSubject {
    #[serde(default)]
    id_number: Option<String>,
    #[serde(default)]
    household_number: Option<String>,
}

impl std::fmt::Debug for TestSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestSubject(..)")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    subject: TestSubject,
}

async fn test_version(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let number = number(&version);
    let operation = format!(
        "connector.test {} v{}",
        short(&id),
        number.map_or_else(|| "?".to_owned(), |n| n.to_string())
    );
    let mut act = Action::start(&app, &request_id, &caller, peer, &operation);
    if !administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let owned = match ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let problem = match &owned {
        Ownership::Unknown => Some(unknown_connector()),
        Ownership::MainFile { .. } => Some(super::admin::file_managed("gateway.yaml")),
        known => known
            .department()
            .filter(|d| !may_administer(&caller, d))
            .map(|_| not_owner()),
    };
    if !matches!(owned, Ownership::Unknown) {
        act.event.connector = Some(id.clone());
    }
    if let Some(problem) = problem {
        return act.refuse(problem).await.into_response();
    }
    let body: TestBody =
        match super::body::json(&headers, body, "{subject: {id_number, household_number}}") {
            Ok(body) => body,
            Err(p) => return act.refuse(p).await.into_response(),
        };
    let id_number = match body.subject.id_number.map(|text| {
        connectors::subject::IdNumber::parse(&text).map(crate::lookup::SubjectKeyValue::Id)
    }) {
        Some(Err(_)) => {
            let p = Problem::new(
                ProblemKind::InvalidIdNumber,
                "The test subject's ID number fails the GB 11643 check; no department was called.",
            )
            .with("at", "subject.id_number");
            return act.refuse(p).await.into_response();
        }
        Some(Ok(key)) => Some(key),
        None => None,
    };
    let household = match body
        .subject
        .household_number
        .map(|h| crate::lookup::household_number(h).map_err(Problem::from))
    {
        Some(Err(p)) => return act.refuse(p).await.into_response(),
        Some(Ok(key)) => Some(key),
        None => None,
    };
    if id_number.is_none() && household.is_none() {
        let p = Problem::new(
            ProblemKind::InvalidRequest,
            "Give a sample subject: subject.id_number, subject.household_number or both.",
        )
        .with("at", "subject");
        return act.refuse(p).await.into_response();
    }
    let versions = match app.live.registry().connector_versions(&id).await {
        Ok(versions) => versions,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let Some(target) = number.and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return act.refuse(unknown_version()).await.into_response();
    };
    // The configuration the version would make if it were in force, built aside.
    let snapshot = match app.live.registry().snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let mut trial = snapshot;
    trial.connectors.insert(
        id.clone(),
        crate::registry::RegisteredConnector {
            current: target.clone(),
            enabled: true,
        },
    );
    let config = match app.live.build(trial).await {
        Ok(config) => config,
        Err(e) => {
            let p = Problem::new(
                ProblemKind::InvalidConfig,
                "This version does not load in the current configuration; no department was called.",
            )
            .with(
                "problems",
                match e {
                    crate::live::ChangeError::Invalid(problems) => problems
                        .iter()
                        .map(|p| json!({"file": p.file.display().to_string(), "path": p.path, "message": p.message}))
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                },
            );
            return act.refuse(p).await.into_response();
        }
    };
    let Some(connector) = config.connectors.get(&id) else {
        return act.refuse(unknown_version()).await.into_response();
    };
    let mut results = Vec::new();
    for (name, op) in &connector.operations {
        let subject = match op.subject {
            connectors::definition::SubjectKey::IdNumber => id_number.as_ref(),
            connectors::definition::SubjectKey::HouseholdNumber => household.as_ref(),
        };
        let Some(subject) = subject else {
            results.push(json!({
                "operation": name,
                "ok": false,
                "outcome": "not_tested",
                "problem": format!("This operation takes subject.{}; none was given.", op.subject.as_str()),
            }));
            continue;
        };
        let mut call = AuditEvent::admin(
            &request_id,
            AuditCaller::of(&caller, peer),
            &format!("connector.test {id} v{} {name}", target.version),
        );
        call.connector = Some(id.clone());
        let tried = try_operation(&app, connector, name, op, subject, &mut call).await;
        if let Err(e) = app.audit.append(call).await {
            return super::error::audit_unavailable(&request_id, &e);
        }
        let mut result = tried;
        result["operation"] = json!(name);
        results.push(result);
    }
    let all_ok = results.iter().all(|r| r["ok"] == true);
    axum::Json(json!({
        "connector": id,
        "version": target.version,
        "state": state(&target, current_of(&owned)),
        "ok": all_ok,
        "operations": results,
    }))
    .into_response()
}

/// Calls the department once for `operation` with `subject` and says whether the
/// answer fits the mapping and schema, and how long it took — never the data. Fills
/// `event` (the subject's pseudonym and masked form, latency, outcome) for the audit
/// log.
pub(crate) async fn try_operation(
    app: &App,
    connector: &crate::config::ActiveConnector,
    operation: &str,
    op: &crate::config::ActiveOperation,
    subject: &crate::lookup::SubjectKeyValue,
    event: &mut AuditEvent,
) -> serde_json::Value {
    event.subject_pseudonym = Some(app.pseudonym.pseudonym(subject.as_str()));
    event.subject_masked = Some(subject.masked());
    let started = std::time::Instant::now();
    let context = connectors::FetchContext::default();
    let fetched = connector
        .connector
        .fetch(operation, subject.as_str(), &context)
        .await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    event.upstream_latency_ms = u64::try_from(elapsed.as_millis()).ok();
    let (outcome, violation) = match &fetched {
        Ok(f) => match op.schema.check(&f.record) {
            Ok(()) => ("conforms", None),
            Err(v) => (
                "schema_violation",
                Some(json!({ "schema_path": v.schema_path, "instance_path": v.instance_path })),
            ),
        },
        Err(connectors::FetchError::NotFound) => ("not_found", None),
        Err(connectors::FetchError::Mapping(_)) => ("mapping_violation", None),
        Err(connectors::FetchError::Timeout) => ("timed_out", None),
        Err(connectors::FetchError::Malformed) => ("malformed", None),
        Err(connectors::FetchError::Oversize { .. }) => ("oversize", None),
        Err(_) => ("upstream_error", None),
    };
    if let Some(operation) = &event.operation {
        event.operation = Some(format!("{operation} outcome={outcome}"));
    }
    // `not_found` is an answer that fits: the department does not know the sample.
    let ok = outcome == "conforms" || outcome == "not_found";
    let mut answer = json!({
        "ok": ok,
        "outcome": outcome,
        "latency_ms": (latency_ms * 10.0).round() / 10.0,
    });
    if let Some(violation) = violation {
        answer["violation"] = violation;
    }
    if let Err(e) = &fetched {
        answer["problem"] = json!(e.to_string());
    }
    answer
}
