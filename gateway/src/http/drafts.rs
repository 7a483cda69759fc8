//! Connector versions as drafts: a version saved through the admin API
//! (`PUT /v1/admin/connectors/{id}`, in [`super::admin`]) serves nothing until it is
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
//! Every change is an admin event in the audit log. The rules and the actions are the
//! domain's ([`crate::admin`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::answers::{ConnectorStatus, FullVersion, InForce, VersionDiff, VersionTest};
use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Who;
use crate::admin::{
    self, Ownership, may_administer, not_admin, not_owner, readable, short, state,
    unknown_connector, unknown_version,
};
use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent};
use crate::registry::ConnectorVersion;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(show_version))
        .routes(routes!(diff))
        .routes(routes!(test_version))
        .routes(routes!(activate))
        .routes(routes!(rollback))
}

/// The path parameters.
const ID: &str = "The connector's id.";
const VERSION: &str = "A version number: 1, 2, …";

crate::problems!(
    /// Reading a connector's versions.
    ReadProblems = [
        Unauthenticated, Forbidden, UnknownConnector, UnknownVersion, RegistryUnavailable,
    ]
);

crate::problems!(
    /// Putting a version in force.
    InForceProblems = [
        Unauthenticated, Forbidden, UnknownConnector, UnknownVersion, FileManaged,
        AwaitingReview, UnsupportedMediaType, PayloadTooLarge, InvalidConfig,
        ConfigCheckTooSlow, RegistryConflict, AlreadyDecided, RegistryUnavailable,
        AuditUnavailable,
    ]
);

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

/// A version number from a URL: 1, 2, ….
fn number(text: &str) -> Option<u32> {
    text.parse().ok().filter(|n| *n > 0)
}

/// A connector's administration.
#[utoipa::path(
    get,
    path = "/v1/admin/connectors/{id}",
    tag = "connectors",
    operation_id = "showConnector",
    summary = "A connector: the version in force and the drafts",
    description = "The version in force in full (definition and schemas), whether it is \
        enabled, and the versions waiting to be put in force. For `gateway.yaml`'s connectors, \
        the definition in force. Its department admin or an operator.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "The connector.", body = ConnectorStatus), ReadProblems),
)]
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
    let current = owned.current();
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

/// One version in full.
#[utoipa::path(
    get,
    path = "/v1/admin/connectors/{id}/versions/{version}",
    tag = "connectors",
    operation_id = "showConnectorVersion",
    summary = "One version of a connector, in full",
    params(
        ("id" = String, Path, description = ID, example = "hukou-residence"),
        ("version" = u32, Path, description = VERSION, example = 1),
    ),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "The version.", body = FullVersion), ReadProblems),
)]
async fn show_version(
    State(app): State<App>,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (owned, versions) = readable(&app, &caller, &id).await?;
    let found = number(&version).and_then(|n| versions.iter().find(|v| v.version == n));
    let v = found.ok_or_else(unknown_version)?;
    Ok(axum::Json(full(v, owned.current())).into_response())
}

/// What changed between two versions.
#[utoipa::path(
    get,
    path = "/v1/admin/connectors/{id}/versions/{from}/diff/{to}",
    tag = "connectors",
    operation_id = "diffConnectorVersions",
    summary = "What changed from one version to another",
    description = "Fields added, removed, reclassified (sharing type or kind of personal data, \
        before and after) or remapped (another source field or transform); operations added, \
        removed or changed; top-level settings; schemas.",
    params(
        ("id" = String, Path, description = ID, example = "hukou-residence"),
        ("from" = u32, Path, description = VERSION, example = 1),
        ("to" = u32, Path, description = VERSION, example = 1),
    ),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "The differences.", body = VersionDiff), ReadProblems),
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Rollback)]
struct RollbackBody {
    /// An earlier version that served before.
    #[schema(example = 1)]
    version: u32,
}

/// Puts a version in force.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/versions/{version}/activate",
    tag = "connectors",
    operation_id = "activateConnectorVersion",
    summary = "Put a version in force",
    description = "The version serves from the next request on (enabled). A version that \
        would loosen the classification in force needs the data-governance office's approval \
        (409 `awaiting-review`). Its department admin or an operator; audited.",
    params(
        ("id" = String, Path, description = ID, example = "hukou-residence"),
        ("version" = u32, Path, description = VERSION, example = 1),
    ),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "In force (or it was already: `unchanged`).",
        body = InForce), InForceProblems),
)]
async fn activate(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    let who = Who {
        request_id,
        caller,
        peer,
    };
    in_force(admin::versions::put_in_force(&app, &who, &id, number(&version), false).await)
}

/// Puts an earlier version back in force.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/rollback",
    tag = "connectors",
    operation_id = "rollbackConnector",
    summary = "Put an earlier version back in force",
    description = "One call, no new version: a version that served before. Refused like an \
        activation when it would loosen the classification in force. Its department admin or \
        an operator; audited.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    request_body(content = RollbackBody, content_type = "application/json",
        example = super::openapi::examples::rollback),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "In force (or it was already: `unchanged`).",
        body = InForce), InForceProblems),
)]
async fn rollback(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = Who {
        request_id,
        caller,
        peer,
    };
    let refused = |problem: Problem| async {
        let operation = format!("connector.rollback {}", short(&id));
        who.start(&app, &operation)
            .refuse(problem)
            .await
            .into_response()
    };
    if !admin::administers(&who.caller) {
        return refused(not_admin()).await;
    }
    let body: RollbackBody = match super::body::json(&headers, body, "{version}") {
        Ok(body) => body,
        Err(p) => return refused(p).await,
    };
    in_force(admin::versions::put_in_force(&app, &who, &id, Some(body.version), true).await)
}

/// The answer to an activation or a rollback.
fn in_force(done: Result<admin::versions::InForce, Problem>) -> Response {
    match done {
        Ok(done) if done.unchanged => axum::Json(json!({
            "connector": done.connector,
            "version": done.version,
            "active": done.version,
            "unchanged": true,
        }))
        .into_response(),
        Ok(done) => axum::Json(json!({
            "connector": done.connector,
            "version": done.version,
            "active": done.version,
            "previous": done.previous,
            "unchanged": false,
            "config_version": done.config_version,
        }))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The admin's sample subject: the key each operation takes (at least one).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SampleSubject)]
struct TestSubject {
    /// For the operations that take an ID number.
    #[serde(default)]
    #[schema(example = "13990119750327229X")]
    id_number: Option<String>,
    /// For the operations that take a household number.
    #[serde(default)]
    #[schema(example = "205000006")]
    household_number: Option<String>,
}

impl std::fmt::Debug for TestSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestSubject(..)")
    }
}

/// Trial calls of a version.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VersionTestRequest)]
struct TestBody {
    subject: TestSubject,
}

/// Tests a version against the department.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/versions/{version}/test",
    tag = "connectors",
    operation_id = "testConnectorVersion",
    summary = "Call the department once per operation of a version",
    description = "Builds the configuration the version would make (without putting it in \
        force) and calls the department once for every operation with the sample subject \
        (household operations take `household_number`): per operation whether the answer \
        fits, the outcome, the latency and the problem — never the data. Each call is an audit \
        event with the subject's pseudonym. Its department admin or an operator.",
    params(
        ("id" = String, Path, description = ID, example = "hukou-residence"),
        ("version" = u32, Path, description = VERSION, example = 1),
    ),
    request_body(content = TestBody, content_type = "application/json",
        example = super::openapi::examples::version_test),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "Every operation's trial call.", body = VersionTest),
        VersionTestProblems),
)]
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
    let mut act = crate::action::Action::start(&app, &request_id, &caller, peer, &operation);
    if !admin::administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let owned = match admin::ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let problem = match &owned {
        Ownership::Unknown => Some(unknown_connector()),
        Ownership::MainFile { .. } => Some(admin::file_managed("gateway.yaml")),
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
        Err(e) => return admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let Some(target) = number.and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return act.refuse(unknown_version()).await.into_response();
    };
    // The configuration the version would make if it were in force, built aside.
    let snapshot = match app.live.registry().snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => return admin::registry_unavailable(&request_id, &e).into_response(),
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
        let tried = admin::try_operation(&app, connector, name, op, subject, &mut call)
            .await
            .to_json();
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
        "state": state(&target, owned.current()),
        "ok": all_ok,
        "operations": results,
    }))
    .into_response()
}

crate::problems!(
    VersionTestProblems = [
        Unauthenticated,
        Forbidden,
        UnknownConnector,
        UnknownVersion,
        FileManaged,
        InvalidIdNumber,
        UnsupportedMediaType,
        PayloadTooLarge,
        InvalidConfig,
        RegistryUnavailable,
        AuditUnavailable,
    ]
);
