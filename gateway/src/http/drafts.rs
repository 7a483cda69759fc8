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

use super::admin::answers::{ConnectorStatus, FullVersion, InForce, VersionDiff};
use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Who;
use crate::admin::{self, Ownership, not_admin, readable, short, state, unknown_version};
use crate::app::App;
use crate::registry::ConnectorVersion;

mod trial;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(show_version))
        .routes(routes!(diff))
        .routes(routes!(trial::test_version))
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
    /// Putting a version in force (activation takes no body).
    ActivateProblems = [
        Unauthenticated, Forbidden, UnknownConnector, UnknownVersion, FileManaged,
        AwaitingReview, InvalidConfig, ConfigCheckTooSlow, RegistryConflict, AlreadyDecided,
        RegistryUnavailable, AuditUnavailable,
    ]
);

crate::problems!(
    /// Putting an earlier version back in force.
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
        body = InForce), ActivateProblems),
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
