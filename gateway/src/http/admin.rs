//! The admin API's routes for connectors on the running gateway: save a new version
//! (`PUT /v1/admin/connectors/{id}`: a draft each time it changes, checked exactly as
//! `gateway check` checks files, serving nothing until it is activated — see
//! [`super::drafts`]), list its versions, disable and enable it, test it against the
//! department without returning data, and purge its record cache. Disable, enable
//! and purge take an optional `{reason}` for the audit event. The rules and the
//! actions are the domain's ([`crate::admin`]): this module reads requests and writes
//! answers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Who;
use crate::admin::{self, Ownership, may_administer, not_admin, not_owner, unknown_connector};
use crate::app::App;
use answers::{ConnectorTest, Purged, SavedConnector, Switched, VersionList};
use bodies::{ConnectorBody, ReasonBody, TestBody, as_text, reason_of};

pub(crate) mod answers;
mod bodies;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(super::lists::connectors))
        .routes(routes!(put_connector))
        .routes(routes!(versions))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(test_connector))
        .routes(routes!(purge_cache))
}

/// The path parameter of every connector route.
const ID: &str = "The connector's id.";

crate::problems!(
    /// A connector action refused before or at its change, or failed.
    ActionProblems = [
        Unauthenticated, Forbidden, UnknownConnector, UnknownVersion, FileManaged,
        UnsupportedMediaType, PayloadTooLarge, InvalidConfig, ConfigCheckTooSlow,
        RegistryConflict, AlreadyDecided, RegistryUnavailable, AuditUnavailable,
    ]
);

/// Records a request refused before the domain was asked (its body unreadable).
async fn refuse(app: &App, who: &Who, operation: &str, problem: Problem) -> Response {
    who.start(app, operation)
        .refuse(problem)
        .await
        .into_response()
}

/// Purges a connector's record cache.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/cache/purge",
    tag = "connectors",
    operation_id = "purgeConnectorCache",
    summary = "Drop every cached record of a connector",
    description = "For example after the department corrected a record that must not be \
        served stale; every replica drops its copy. The connector's department admin or an \
        operator; audited with the optional reason.",
    params(("id" = String, Path, description = ID, example = "hukou")),
    request_body(content = Option<ReasonBody>, content_type = "application/json",
        example = super::openapi::examples::reason),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "The cache was purged (or the connector keeps none).",
        body = Purged), PurgeProblems),
)]
async fn purge_cache(
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
    let reason = match reason_of(&headers, body) {
        Ok(reason) => reason,
        Err(p) => return refuse(&app, &who, "connector.cache.purge", p).await,
    };
    match admin::purge_cache(&app, &who, &id, reason.as_deref()).await {
        Ok(purged) => axum::Json(Purged {
            cache: if purged.cache { "purged" } else { "off" },
            connector: purged.connector,
            entries_purged: purged.entries,
        })
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

crate::problems!(
    /// Saving a version: refused, invalid, or failed at its change.
    PutProblems = [
        Unauthenticated, Forbidden, FileManaged, UnsupportedMediaType, PayloadTooLarge,
        InvalidConfig, ConfigCheckTooSlow, RegistryConflict, AlreadyDecided,
        RegistryUnavailable, AuditUnavailable,
    ]
);

crate::problems!(
    PurgeProblems = [
        Unauthenticated,
        Forbidden,
        UnknownConnector,
        UnsupportedMediaType,
        PayloadTooLarge,
        AuditUnavailable,
    ]
);

/// Saves a connector version as a draft.
#[utoipa::path(
    put,
    path = "/v1/admin/connectors/{id}",
    tag = "connectors",
    operation_id = "putConnector",
    summary = "Save a new version of a connector (a draft)",
    description = "Checks the version by loading the whole configuration it would make, as \
        `gateway check` does (every problem at once: 422 `invalid-config`), and keeps it as a \
        draft that serves nothing until it is activated (201). A version that loosens the \
        county's classification (a new connector's fields, a lower sharing type, …) waits for \
        the data-governance office's review instead (202 `awaiting_review`). The same content \
        as the version in force or the last draft makes no new version (200 `unchanged`). The \
        department admin of the definition's department, or an operator; connectors from the \
        county's files are refused (409 `file-managed`).",
    params(("id" = String, Path, description = "The connector's id (the definition's `id`).",
        example = "hukou-residence")),
    request_body(content = ConnectorBody, content_type = "application/json",
        example = super::openapi::examples::connector),
    security(("bearer" = ["dept_admin", "operator"])),
    responses(
        (status = 200, description = "Unchanged: the same content as an existing version.", body = SavedConnector),
        (status = 201, description = "Saved as a draft.", body = SavedConnector),
        (status = 202, description = "Saved; it loosens the classification and waits for review.", body = SavedConnector),
        PutProblems,
    ),
)]
async fn put_connector(
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
    let operation = format!("connector.put {}", admin::short(&id));
    if !admin::administers(&who.caller) {
        return refuse(&app, &who, &operation, not_admin()).await;
    }
    let invalid = |detail: &str| Problem::new(ProblemKind::InvalidRequest, detail.to_owned());
    let body: ConnectorBody =
        match super::body::json(&headers, body, "{definition, schemas: {path: schema}}") {
            Ok(body) => body,
            Err(p) => return refuse(&app, &who, &operation, p).await,
        };
    let Some(definition) = as_text(&body.definition, true) else {
        let p = invalid("definition must be an object or a string.").with("at", "definition");
        return refuse(&app, &who, &operation, p).await;
    };
    let mut schemas = std::collections::BTreeMap::new();
    for (path, schema) in &body.schemas {
        let Some(text) = as_text(schema, false) else {
            // The path is the sender's own key: not echoed.
            let p = invalid("Each schema must be an object or a string.").with("at", "schemas");
            return refuse(&app, &who, &operation, p).await;
        };
        schemas.insert(path.clone(), text);
    }
    let saved = match admin::versions::save(&app, &who, Some(&id), definition, schemas).await {
        Ok(saved) => saved,
        Err(problem) => return problem.into_response(),
    };
    let number = saved
        .version
        .map_or_else(|| "N".to_owned(), |n| n.to_string());
    let mut body = json!({
        "connector": saved.connector,
        "version": saved.version,
        "state": saved.state,
        "active": saved.active,
        "unchanged": saved.unchanged,
        "content": saved.content,
    });
    if saved.unchanged {
        return axum::Json(body).into_response();
    }
    body["test"] = json!(format!("/v1/admin/connectors/{id}/versions/{number}/test"));
    if !saved.loosenings.is_empty() {
        body["detail"] = json!(
            "This draft loosens the county's classification; the data-governance office's approval puts it in force."
        );
        body["loosenings"] = json!(saved.loosenings);
        return (axum::http::StatusCode::ACCEPTED, axum::Json(body)).into_response();
    }
    body["detail"] = json!("Saved as a draft; nothing serves it yet. Test it, then activate it.");
    body["activate"] = json!(format!(
        "/v1/admin/connectors/{id}/versions/{number}/activate"
    ));
    (axum::http::StatusCode::CREATED, axum::Json(body)).into_response()
}

/// A connector's versions.
#[utoipa::path(
    get,
    path = "/v1/admin/connectors/{id}/versions",
    tag = "connectors",
    operation_id = "connectorVersions",
    summary = "Every version of a connector",
    description = "Each version with its state (`active`, `draft`, `awaiting_review`, \
        `refused`, `superseded`, `previous`), who made it and when, its content digest, \
        review, definition and schema paths. `gateway.yaml`'s connectors have none.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "The versions.", body = VersionList), ReadProblems),
)]
async fn versions(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    if !admin::administers(&caller) {
        return not_admin().for_request(&request_id).into_response();
    }
    let owned = match admin::ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let Some(department) = owned.department() else {
        return unknown_connector().for_request(&request_id).into_response();
    };
    if !may_administer(&caller, department) {
        return not_owner().for_request(&request_id).into_response();
    }
    let (current, enabled) = match &owned {
        Ownership::MainFile { .. } => {
            return axum::Json(json!({
                "connector": id,
                "origin": "gateway.yaml",
                "enabled": true,
                "versions": [],
            }))
            .into_response();
        }
        Ownership::Registered(c) => (Some(c.current.version), c.enabled),
        _ => (None, false),
    };
    let list = match app.live.registry().connector_versions(&id).await {
        Ok(list) => list,
        Err(e) => return admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let versions: Vec<serde_json::Value> = list
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "current": Some(v.version) == current,
                "state": admin::state(v, current),
                "created_at": v.created_at,
                "created_by": v.created_by,
                "activated_at": v.activated_at,
                "origin": v.origin,
                "content": v.content_digest(),
                "review": v.review,
                "definition": v.definition,
                "schemas": v.schemas.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({
        "connector": id,
        "origin": list.last().map(|v| &v.origin),
        "enabled": enabled,
        "current": current,
        "versions": versions,
    }))
    .into_response()
}

crate::problems!(
    /// Reading a connector's administration.
    ReadProblems = [Unauthenticated, Forbidden, UnknownConnector, RegistryUnavailable]
);

/// Switches a connector off.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/disable",
    tag = "connectors",
    operation_id = "disableConnector",
    summary = "Switch a connector off",
    description = "Its lookups answer 503 `connector-disabled` naming the department until it \
        is enabled again. A registered connector in force (those from the county's files are \
        switched off in the files); its department admin or an operator; audited with the \
        optional reason.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    request_body(content = Option<ReasonBody>, content_type = "application/json",
        example = super::openapi::examples::reason),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "Switched off.", body = Switched), ActionProblems),
)]
async fn disable(
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
    set_enabled(app, who, id, false, reason_of(&headers, body)).await
}

/// Switches a connector on.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/enable",
    tag = "connectors",
    operation_id = "enableConnector",
    summary = "Switch a connector on again",
    description = "A registered connector in force; its department admin or an operator; \
        audited with the optional reason.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    request_body(content = Option<ReasonBody>, content_type = "application/json",
        example = super::openapi::examples::reason),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "Switched on.", body = Switched), ActionProblems),
)]
async fn enable(
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
    set_enabled(app, who, id, true, reason_of(&headers, body)).await
}

async fn set_enabled(
    app: App,
    who: Who,
    id: String,
    enabled: bool,
    reason: Result<Option<String>, Problem>,
) -> Response {
    let reason = match reason {
        Ok(reason) => reason,
        Err(p) => {
            let action = if enabled { "enable" } else { "disable" };
            let operation = format!("connector.{action} {}", admin::short(&id));
            return refuse(&app, &who, &operation, p).await;
        }
    };
    match admin::set_enabled(&app, &who, &id, enabled, reason.as_deref()).await {
        Ok(config_version) => axum::Json(Switched {
            config_version,
            connector: id,
            enabled,
        })
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Makes one call to the department with a test subject and says whether the answer
/// fits the connector's mapping and schema, and how long it took — never the data.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/test",
    tag = "connectors",
    operation_id = "testConnector",
    summary = "Call the department once, to see whether its answer fits",
    description = "One call of one operation of the version in force with a sample subject: \
        whether the answer fits the connector's mapping and schema, and how long it took — \
        never the data. Audited like a lookup (the subject's pseudonym). Its department admin \
        or an operator.",
    params(("id" = String, Path, description = ID, example = "hukou-residence")),
    request_body(content = TestBody, content_type = "application/json",
        example = super::openapi::examples::connector_test),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "How the call went.", body = ConnectorTest),
        TestProblems),
)]
async fn test_connector(
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
    let body: TestBody =
        match super::body::json(&headers, body, "{operation, subject: {id_number}}") {
            Ok(body) => body,
            Err(p) => {
                let operation = format!("connector.test {}", admin::short(&id));
                return refuse(&app, &who, &operation, p).await;
            }
        };
    match admin::test(&app, &who, &id, &body.operation, &body.subject.id_number).await {
        Ok(tried) => {
            let mut answer = tried.to_json();
            if let Some(map) = answer.as_object_mut() {
                map.remove("ok");
                if let Some(problem) = map.remove("problem") {
                    map.insert("error".to_owned(), problem);
                }
                map.insert("connector".to_owned(), json!(id));
                map.insert("operation".to_owned(), json!(body.operation));
            }
            axum::Json(answer).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

crate::problems!(
    TestProblems = [
        Unauthenticated,
        Forbidden,
        UnknownConnector,
        UnknownOperation,
        InvalidIdNumber,
        UnsupportedMediaType,
        PayloadTooLarge,
        AuditUnavailable,
    ]
);
