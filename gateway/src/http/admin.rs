//! The admin API's routes for connectors on the running gateway: save a new version
//! (`PUT /v1/admin/connectors/{id}`: a draft each time it changes, checked exactly as
//! `gateway check` checks files, serving nothing until it is activated — see
//! [`super::drafts`]), list its versions, disable and enable it, test it against the
//! department without returning data, and purge its record cache. Disable, enable
//! and purge take an optional `{reason}` for the audit event. The rules and the
//! actions are the domain's ([`crate::admin`]): this module reads requests and writes
//! answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Who;
use crate::admin::{self, Ownership, may_administer, not_admin, not_owner, unknown_connector};
use crate::app::App;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v1/admin/connectors", get(super::lists::connectors))
        .route("/v1/admin/connectors/{id}", put(put_connector))
        .route("/v1/admin/connectors/{id}/versions", get(versions))
        .route("/v1/admin/connectors/{id}/disable", post(disable))
        .route("/v1/admin/connectors/{id}/enable", post(enable))
        .route("/v1/admin/connectors/{id}/test", post(test_connector))
        .route("/v1/admin/connectors/{id}/cache/purge", post(purge_cache))
}

/// `{reason}`, optional, for disable, enable and purge: why, in the person's words
/// (kept in the audit event).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The optional `{reason}` body of an action; an empty body is no reason.
fn reason_of(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, Problem> {
    match &body {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        _ => super::body::json::<ReasonBody>(headers, body, "{reason}").map(|b| b.reason),
    }
}

/// Records a request refused before the domain was asked (its body unreadable).
async fn refuse(app: &App, who: &Who, operation: &str, problem: Problem) -> Response {
    who.start(app, operation)
        .refuse(problem)
        .await
        .into_response()
}

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
        Ok(purged) => axum::Json(json!({
            "connector": purged.connector,
            "cache": if purged.cache { "purged" } else { "off" },
            "entries_purged": purged.entries,
        }))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// A connector as the admin API takes it: the definition (YAML text, or the same as a
/// JSON object) and the schemas its operations name (path → schema, JSON object or
/// text).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorBody {
    definition: serde_json::Value,
    #[serde(default)]
    schemas: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The text of a definition or schema sent as a string or an object; `None` for
/// anything else (the error says so without quoting it).
fn as_text(value: &serde_json::Value, yaml: bool) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(_) if yaml => serde_yaml_ng::to_string(value).ok(),
        serde_json::Value::Object(_) => serde_json::to_string_pretty(value).ok(),
        _ => None,
    }
}

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
        Ok(config_version) => axum::Json(json!({
            "connector": id,
            "enabled": enabled,
            "config_version": config_version,
        }))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    operation: String,
    subject: TestSubject,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSubject {
    id_number: String,
}

impl std::fmt::Debug for TestSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestSubject(..)")
    }
}

/// Makes one call to the department with a test subject and says whether the answer
/// fits the connector's mapping and schema, and how long it took — never the data.
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
