//! `POST /v1/admin/connectors/{id}/versions/{n}/test`: a version's trial calls to the
//! department, one per operation, with the admin's sample subject, in the
//! configuration the version would make (not put in force). Each call is audited
//! with the subject's pseudonym, like a lookup; the answer says per operation whether
//! the department's answer fits — never the data.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ID, VERSION, number};
use crate::admin::{
    self, Ownership, may_administer, not_admin, not_owner, short, state, unknown_connector,
    unknown_version,
};
use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent};
use crate::http::admin::answers::VersionTest;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::{Authenticated, Peer, RequestId};

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
        example = crate::http::openapi::examples::version_test),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "Every operation's trial call.", body = VersionTest),
        VersionTestProblems),
)]
pub(super) async fn test_version(
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
        match crate::http::body::json(&headers, body, "{subject: {id_number, household_number}}") {
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
            return crate::http::error::audit_unavailable(&request_id, &e);
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
