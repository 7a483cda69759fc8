//! Department and operator actions on connectors, on the running gateway: save a new
//! version of a connector (`PUT /v1/admin/connectors/{id}`: a draft each time it
//! changes, checked exactly as `gateway check` checks files, serving nothing until it
//! is activated — see [`crate::drafts`]), list its versions,
//! disable and enable it, test it against the department without returning data, and
//! purge its record cache (for example after the department corrected a record that
//! must not be served stale). A department admin acts on their own department's
//! connectors only; an operator on any. Connectors that came from files are changed
//! by editing the files. Every attempt, allowed or not, is an admin event in the audit
//! log; the shared helpers for committing registry changes ([`commit`]) live here.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Action;
use crate::app::App;
use crate::audit::AuditOutcome;
use crate::auth::{Caller, Role};

/// The rule named when a caller may not act on a connector.
const OWNER_RULE: &str = "connector-owner";

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

/// Whether `caller` may administer connectors of `department`: its own department
/// admin, or an operator.
/// Whether the caller administers connectors at all: an operator, or a department's
/// admin (for their own department's, see [`may_administer`]).
pub(crate) fn administers(caller: &Caller) -> bool {
    caller.has_role(Role::Operator) || caller.has_role(Role::DeptAdmin)
}

pub(crate) fn may_administer(caller: &Caller, department: &str) -> bool {
    caller.has_role(Role::Operator)
        || (caller.has_role(Role::DeptAdmin) && caller.department.as_deref() == Some(department))
}

async fn purge_cache(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let config = app.config.load_full();
    let connector = config.connectors.get(&id);
    let answer = match connector {
        _ if !administers(&caller) => Err(Problem::new(
            ProblemKind::Forbidden,
            "Only department admins and operators administer connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role")),
        None => Err(Problem::new(
            ProblemKind::UnknownConnector,
            "No connector with this id is configured.",
        )),
        Some(c) if !may_administer(&caller, &c.def.department.id) => Err(Problem::new(
            ProblemKind::Forbidden,
            "A department admin administers only their own department's connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role")),
        Some(c) => {
            let entries = match &c.cache {
                Some(cache) => {
                    let before = cache.stats().await.entries;
                    cache.purge();
                    Some(before)
                }
                None => None,
            };
            Ok(json!({
                "connector": c.def.id,
                "cache": if entries.is_some() { "purged" } else { "off" },
                "entries_purged": entries.unwrap_or(0),
            }))
        }
    };
    let mut act = Action::start(&app, &request_id, &caller, peer, "connector.cache.purge");
    // Only a connector id the gateway knows is recorded.
    act.event.connector = connector.map(|c| c.def.id.clone());
    if let Err(p) = &answer {
        act.event.outcome = AuditOutcome {
            status: p.kind.status().as_u16(),
            problem: Some(p.kind.slug().to_owned()),
        };
    }
    if let Err(response) = act.record().await {
        return response.into_response();
    }
    match answer {
        Ok(body) => {
            tracing::info!(request_id, user = %caller.user, connector = %id, "connector cache purged");
            axum::Json(body).into_response()
        }
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}

/// The answer when the registry cannot be read.
pub(crate) fn registry_unavailable(
    request_id: &str,
    error: &crate::registry::RegistryError,
) -> Response {
    tracing::error!(request_id, error = %error, "the registry cannot be read");
    Problem::new(
        ProblemKind::RegistryUnavailable,
        "The registry cannot be read right now.",
    )
    .for_request(request_id)
    .into_response()
}

/// Who may act on a connector, and where it came from.
pub(crate) enum Ownership {
    /// Not configured anywhere.
    Unknown,
    /// Listed in `gateway.yaml`'s files.
    MainFile { department: String },
    /// In the registry, with a version in force.
    Registered(Box<crate::registry::RegisteredConnector>),
    /// In the registry with versions but none in force: drafts of a new connector
    /// (or the versions of one `gateway apply` removed); the last version.
    Drafts(Box<crate::registry::ConnectorVersion>),
}

impl Ownership {
    /// The owning department, when the connector is known.
    pub(crate) fn department(&self) -> Option<&str> {
        match self {
            Ownership::Unknown => None,
            Ownership::MainFile { department } => Some(department),
            Ownership::Registered(c) => Some(&c.current.department),
            Ownership::Drafts(v) => Some(&v.department),
        }
    }

    /// The problem when `caller` may not change the connector's versions: unknown,
    /// managed by files, or another department's.
    pub(crate) fn refuse_change(&self, caller: &Caller) -> Option<Problem> {
        match self {
            Ownership::Unknown => Some(unknown_connector()),
            Ownership::MainFile { .. } => Some(file_managed("gateway.yaml")),
            Ownership::Registered(c) if !may_administer(caller, &c.current.department) => {
                Some(not_owner())
            }
            Ownership::Registered(c) if c.current.origin.is_file() => {
                Some(file_managed(&c.current.origin.describe()))
            }
            Ownership::Drafts(v) if !may_administer(caller, &v.department) => Some(not_owner()),
            Ownership::Drafts(v) if v.origin.is_file() => Some(file_managed(&v.origin.describe())),
            _ => None,
        }
    }
}

pub(crate) async fn ownership(
    app: &App,
    id: &str,
) -> Result<Ownership, crate::registry::RegistryError> {
    let snapshot = app.live.registry().snapshot().await?;
    if let Some(c) = snapshot.connectors.get(id) {
        return Ok(Ownership::Registered(Box::new(c.clone())));
    }
    if let Some(c) = app.config.load().connectors.get(id) {
        return Ok(Ownership::MainFile {
            department: c.def.department.id.clone(),
        });
    }
    let versions = app.live.registry().connector_versions(id).await?;
    Ok(match versions.into_iter().last() {
        Some(last) => Ownership::Drafts(Box::new(last)),
        None => Ownership::Unknown,
    })
}

pub(crate) fn not_admin() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Only department admins and operators administer connectors.",
    )
    .with("rule", OWNER_RULE)
    .with("reason", "role")
}

pub(crate) fn not_owner() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "A department admin administers only their own department's connectors.",
    )
    .with("rule", OWNER_RULE)
    .with("reason", "role")
}

pub(crate) fn file_managed(origin: &str) -> Problem {
    Problem::new(
        ProblemKind::FileManaged,
        "This connector is managed by the county's files; edit the file and apply it.",
    )
    .with("origin", origin)
}

pub(crate) fn unknown_connector() -> Problem {
    Problem::new(
        ProblemKind::UnknownConnector,
        "No connector with this id is configured.",
    )
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

/// Where a definition that does not parse went wrong, said without quoting it: the
/// parser's own message can quote what was sent, and a key the sender wrote can be
/// anything (an ID number), so only the leading path of names a definition could
/// declare (a letter, then letters, digits, `_` or `-`) and list positions is kept.
fn unparsed(problem: &connectors::definition::DefinitionProblem) -> serde_json::Value {
    let mut path = Vec::new();
    for segment in problem.path.split('.').filter(|s| !s.is_empty()) {
        let name = segment.split('[').next().unwrap_or_default();
        let positions = &segment[name.len()..];
        let declarable = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let indexed = positions
            .chars()
            .all(|c| c.is_ascii_digit() || c == '[' || c == ']');
        if !declarable || !indexed {
            break;
        }
        path.push(segment);
    }
    json!({
        "path": path.join("."),
        "message": "is not well-formed YAML, or does not have the fields and types a connector definition takes",
    })
}

async fn put_connector(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("connector.put {}", short(&id)),
    );
    if !administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let invalid = |detail: String| Problem::new(ProblemKind::InvalidRequest, detail);
    let body: ConnectorBody =
        match super::body::json(&headers, body, "{definition, schemas: {path: schema}}") {
            Ok(body) => body,
            Err(p) => return act.refuse(p).await.into_response(),
        };
    let Some(definition) = as_text(&body.definition, true) else {
        let p = invalid("definition must be an object or a string.".to_owned())
            .with("at", "definition");
        return act.refuse(p).await.into_response();
    };
    let mut schemas = std::collections::BTreeMap::new();
    for (path, schema) in &body.schemas {
        let Some(text) = as_text(schema, false) else {
            // The path is the sender's own key: not echoed.
            let p = invalid("Each schema must be an object or a string.".to_owned())
                .with("at", "schemas");
            return act.refuse(p).await.into_response();
        };
        schemas.insert(path.clone(), text);
    }
    let def = match connectors::ConnectorDef::from_yaml(&definition) {
        Ok(def) => def,
        Err(p) => {
            let problem = invalid("The definition does not parse.".to_owned())
                .with("problems", vec![unparsed(&p)]);
            return act.refuse(problem).await.into_response();
        }
    };
    if def.id != id {
        let p = invalid("The definition's id differs from the one in the URL.".to_owned());
        return act.refuse(p).await.into_response();
    }
    act.event.connector = Some(def.id.clone());
    let department = def.department.id.clone();
    let owned = match ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let problem = match &owned {
        Ownership::Unknown if !may_administer(&caller, &department) => Some(not_owner()),
        Ownership::Unknown => None,
        known => known.refuse_change(&caller),
    };
    if let Some(problem) = problem {
        return act.refuse(problem).await.into_response();
    }
    let version = crate::registry::ConnectorVersion {
        id: id.clone(),
        version: 1,
        department,
        definition,
        schemas,
        origin: crate::registry::Origin::Api,
        created_at: crate::access::now_rfc3339(),
        created_by: caller.user.clone(),
        review: None,
        activated_at: None,
    };
    save_draft(&app, &request_id, &caller, owned, version, &def, act).await
}

/// Keeps a new version as a draft (nothing changes in force); one that loosens the
/// county's classification waits for the data-governance office as well (202). The
/// same content as the version in force, or as the last draft, makes no new version.
async fn save_draft(
    app: &App,
    request_id: &str,
    caller: &Caller,
    owned: Ownership,
    mut version: crate::registry::ConnectorVersion,
    def: &connectors::ConnectorDef,
    mut act: Action,
) -> Response {
    let id = version.id.clone();
    let content = version.content_digest();
    let (current, last) = match &owned {
        Ownership::Registered(c) => {
            let versions = match app.live.registry().connector_versions(&id).await {
                Ok(versions) => versions,
                Err(e) => return registry_unavailable(request_id, &e),
            };
            (Some(c.current.clone()), versions.into_iter().last())
        }
        Ownership::Drafts(v) => (None, Some((**v).clone())),
        _ => (None, None),
    };
    let current_number = current.as_ref().map(|c| c.version);
    let same = [current.as_ref(), last.as_ref()]
        .into_iter()
        .flatten()
        .find(|v| v.same_content(&version) && !super::drafts::closed(v))
        .cloned();
    if let Some(same) = same {
        act.event.operation = Some(format!(
            "connector.put {id} content={content} unchanged=v{}",
            same.version
        ));
        return match act.commit(Vec::new()).await {
            Ok(_) => axum::Json(json!({
                "connector": id,
                "version": same.version,
                "state": super::drafts::state(&same, current_number),
                "active": current_number,
                "unchanged": true,
                "content": content,
            }))
            .into_response(),
            Err(problem) => problem.into_response(),
        };
    }
    let in_force = current
        .as_ref()
        .and_then(|c| connectors::ConnectorDef::from_yaml(&c.definition).ok());
    // A version that loosens the county's classification waits for its review.
    let loosenings = crate::classification::loosenings(in_force.as_ref(), def);
    if !loosenings.is_empty() {
        version.review = Some(crate::registry::Review {
            state: crate::registry::ReviewState::Pending,
            base_version: current_number,
            loosenings: loosenings.clone(),
            decided_at: None,
            decided_by: None,
            note: None,
        });
        act.event.operation = Some(format!(
            "connector.propose {id} content={content} loosens={}",
            loosenings.len()
        ));
    } else {
        act.event.operation = Some(format!("connector.draft {id} content={content}"));
    }
    let change = crate::registry::Change::SaveDraft(version);
    if let Err(response) = act.commit(vec![change]).await {
        return response.into_response();
    }
    let saved = match app.live.registry().connector_versions(&id).await {
        Ok(list) => list.last().map(|v| v.version),
        Err(_) => None,
    };
    let number = saved.map(|n| n.to_string()).unwrap_or_else(|| "N".into());
    if !loosenings.is_empty() {
        tracing::info!(request_id, user = %caller.user, connector = %id, "connector version kept for classification review");
        return (
            axum::http::StatusCode::ACCEPTED,
            axum::Json(json!({
                "connector": id,
                "version": saved,
                "state": "awaiting_review",
                "active": current_number,
                "unchanged": false,
                "content": content,
                "detail": "This draft loosens the county's classification; the data-governance office's approval puts it in force.",
                "loosenings": loosenings,
                "test": format!("/v1/admin/connectors/{id}/versions/{number}/test"),
            })),
        )
            .into_response();
    }
    tracing::info!(request_id, user = %caller.user, connector = %id, "connector draft saved");
    (
        axum::http::StatusCode::CREATED,
        axum::Json(json!({
            "connector": id,
            "version": saved,
            "state": "draft",
            "active": current_number,
            "unchanged": false,
            "content": content,
            "detail": "Saved as a draft; nothing serves it yet. Test it, then activate it.",
            "test": format!("/v1/admin/connectors/{id}/versions/{number}/test"),
            "activate": format!("/v1/admin/connectors/{id}/versions/{number}/activate"),
        })),
    )
        .into_response()
}

/// An id from a URL as it may appear in an audit record: an id's shape (a lowercase
/// letter, then lowercase letters, digits, `-` and `_`, at most 80), or `?`. Anything
/// else is not recorded: a mistyped path could hold an ID number.
pub(crate) fn short(id: &str) -> String {
    let shaped = id.len() <= 80
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if shaped {
        id.to_owned()
    } else {
        "?".to_owned()
    }
}

async fn versions(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    if !administers(&caller) {
        return not_admin().for_request(&request_id).into_response();
    }
    let owned = match ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return registry_unavailable(&request_id, &e),
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
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let versions: Vec<serde_json::Value> = list
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "current": Some(v.version) == current,
                "state": super::drafts::state(v, current),
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
) -> Response {
    set_enabled(app, request_id, peer, caller, id, false).await
}

async fn enable(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    set_enabled(app, request_id, peer, caller, id, true).await
}

async fn set_enabled(
    app: App,
    request_id: String,
    peer: Option<std::net::SocketAddr>,
    caller: std::sync::Arc<Caller>,
    id: String,
    enabled: bool,
) -> Response {
    let action = if enabled { "enable" } else { "disable" };
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("connector.{action} {}", short(&id)),
    );
    if !administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let owned = match ownership(&app, &id).await {
        Ok(owned) => owned,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let problem = match &owned {
        Ownership::Drafts(v) if may_administer(&caller, &v.department) => Some(Problem::new(
            ProblemKind::UnknownVersion,
            "No version of this connector is in force yet; activate a draft first.",
        )),
        known => known.refuse_change(&caller),
    };
    if !matches!(owned, Ownership::Unknown) {
        act.event.connector = Some(id.clone());
    }
    if let Some(problem) = problem {
        return act.refuse(problem).await.into_response();
    }
    let change = crate::registry::Change::SetConnectorEnabled {
        id: id.clone(),
        enabled,
    };
    match act.commit(vec![change]).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, connector = %id, enabled, "connector {action}d");
            axum::Json(json!({
                "connector": id,
                "enabled": enabled,
                "config_version": changed.version,
            }))
            .into_response()
        }
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
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("connector.test {}", short(&id)),
    );
    if !administers(&caller) {
        return act.refuse(not_admin()).await.into_response();
    }
    let config = app.config.load_full();
    let Some(connector) = config.connectors.get(&id) else {
        return act.refuse(unknown_connector()).await.into_response();
    };
    act.event.connector = Some(id.clone());
    if !may_administer(&caller, &connector.def.department.id) {
        return act.refuse(not_owner()).await.into_response();
    }
    let body: TestBody =
        match super::body::json(&headers, body, "{operation, subject: {id_number}}") {
            Ok(body) => body,
            Err(p) => return act.refuse(p).await.into_response(),
        };
    let Some(operation) = connector.operations.get(&body.operation) else {
        let p = Problem::new(
            ProblemKind::UnknownOperation,
            "The connector has no operation with this name.",
        );
        return act.refuse(p).await.into_response();
    };
    act.event.operation = Some(format!("connector.test {id}.{}", body.operation));
    let subject = if operation.subject == connectors::definition::SubjectKey::IdNumber {
        connectors::subject::IdNumber::parse(&body.subject.id_number)
            .map(crate::lookup::SubjectKeyValue::Id)
            .map_err(|_| {
                Problem::new(
                    ProblemKind::InvalidIdNumber,
                    "The test subject's ID number fails the GB 11643 check; no department was called.",
                )
            })
    } else {
        crate::lookup::household_number(body.subject.id_number.clone()).map_err(Problem::from)
    };
    let subject = match subject {
        Ok(subject) => subject,
        Err(p) => return act.refuse(p).await.into_response(),
    };
    let mut answer = super::drafts::try_operation(
        &app,
        connector,
        &body.operation,
        operation,
        &subject,
        &mut act.event,
    )
    .await;
    if let Err(response) = act.record().await {
        return response.into_response();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_shaped_path_segments_reach_the_audit_log() {
        assert_eq!(short("jisheng2"), "jisheng2");
        assert_eq!(
            short("ar-0193a2b4c5d67e8f9a0b1c2d3e4f5a6b"),
            "ar-0193a2b4c5d67e8f9a0b1c2d3e4f5a6b"
        );
        // An ID number pasted into a URL is not recorded.
        assert_eq!(short("13990119750327229X"), "?");
        assert_eq!(short("139901197503272291"), "?");
        assert_eq!(short("Hukou"), "?");
        assert_eq!(short(&"a".repeat(81)), "?");
    }

    #[test]
    fn a_definition_that_does_not_parse_is_not_quoted_back() {
        let id = "13990119750327229X";
        for text in [
            format!("id: hukou\ntimeout_ms: \"{id}\"\n"),
            format!("id: hukou\noperations:\n  \"{id}\": [1\n"),
            format!("id: hukou\n{id}: 1\n"),
        ] {
            let problem = connectors::ConnectorDef::from_yaml(&text)
                .expect_err("the definition does not parse");
            let shown = unparsed(&problem).to_string();
            assert!(!shown.contains(id), "{shown}");
            assert!(!shown.contains("29X"), "{shown}");
        }
    }
}
