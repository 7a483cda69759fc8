//! `POST /v1/query`: one lookup of one subject through one connector operation, for a
//! purpose and a case. The pipeline, in order: authenticate the bearer token → parse
//! and validate the request (the ID number before any upstream call) → resolve
//! connector, operation and purpose → decide which fields may leave (or refuse) →
//! fetch → check the record against its schema (fail closed) → check row conditions,
//! minimize and mask → respond.
//!
//! Every authenticated lookup — answered, refused or failed — leaves one audit event,
//! made durable BEFORE the answer is sent; if it cannot be, the caller gets 503 and
//! nothing else (no audit, no data). The request is parsed in [`request`]; department
//! failures become problems in [`upstream`]; the audit facts gather in [`trail`].

mod request;
mod trail;
mod upstream;

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::auth::Caller;
use crate::mask::MaskContext;
use crate::policy::Refusal;
use crate::problem::{Problem, ProblemKind};
use crate::server::{App, Peer, RequestId};
use request::{check_case_id, parse, subject_key};
use trail::Trail;
use upstream::fetch_problem;

pub(crate) async fn query(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match app.auth.authenticate(&headers, &uri).await {
        Ok(caller) => caller,
        Err(e) => return crate::server::unauthenticated(e, &request_id),
    };
    let mut trail = Trail::default();
    let answer = run(&app, &caller, &request_id, &headers, body, &mut trail).await;
    let (status, problem) = match &answer {
        Ok(_) => (200, None),
        Err(p) => (p.kind.status().as_u16(), Some(p.kind.slug())),
    };
    let event = trail.event(&request_id, &caller, peer, status, problem);
    if let Err(e) = app.audit.append(event).await {
        tracing::error!(request_id, error = %e, "the audit log could not record a lookup; nothing was returned");
        return Problem::new(
            ProblemKind::AuditUnavailable,
            "The audit log could not record this request, so nothing was returned.",
        )
        .for_request(&request_id)
        .into_response();
    }
    match answer {
        Ok(response) => response,
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}

/// A policy refusal as a 403 naming the deciding rule.
fn forbidden(refusal: Refusal) -> Problem {
    Problem::new(ProblemKind::Forbidden, refusal.detail)
        .with("rule", refusal.rule)
        .with("reason", refusal.reason.as_str())
}

async fn run(
    app: &App,
    caller: &Caller,
    request_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    trail: &mut Trail,
) -> Result<Response, Problem> {
    let request = parse(headers, body)?;
    let config = app.config.load_full();
    trail.policy_version = Some(config.policies.version.clone());
    // Only names the gateway knows are recorded: a caller could put anything, even an
    // ID number, where a connector, operation or purpose should be.

    let connector = config.connectors.get(&request.connector).ok_or_else(|| {
        Problem::new(
            ProblemKind::UnknownConnector,
            "No connector with this id is configured.",
        )
    })?;
    let operation = connector
        .operations
        .get(&request.operation)
        .ok_or_else(|| {
            Problem::new(
                ProblemKind::UnknownOperation,
                "The connector has no operation with this name.",
            )
            .with("connector", connector.def.id.clone())
            .with(
                "operations",
                connector.operations.keys().cloned().collect::<Vec<_>>(),
            )
        })?;
    let purpose = config.purposes.get(&request.purpose).ok_or_else(|| {
        Problem::new(
            ProblemKind::UnknownPurpose,
            "The purpose code is not in the purpose catalog.",
        )
    })?;
    trail.connector = Some(connector.def.id.clone());
    trail.operation = Some(request.operation.clone());
    trail.purpose = Some(purpose.code.clone());
    // A case id that fails its checks is not recorded: it may carry an ID number.
    check_case_id(&request.case_id)?;
    trail.case_id = Some(request.case_id.clone());
    let subject = subject_key(operation.subject, request.subject)?;
    trail.subject_pseudonym = Some(app.pseudonym.pseudonym(subject.as_str()));
    trail.subject_masked = Some(subject.masked());

    let today = crate::policy::china_today();
    let plan = config
        .policies
        .decide(
            caller,
            &connector.def.id,
            &request.operation,
            &operation.leaves,
            &purpose.code,
            today,
        )
        .map_err(|refusal| {
            trail.refused_by(&refusal.rule);
            forbidden(refusal)
        })?;
    let started = Instant::now();
    let fetched = connector
        .connector
        .fetch(&request.operation, subject.as_str())
        .await;
    trail.upstream_latency_ms = Some(started.elapsed().as_millis() as u64);
    let connector_id = connector.def.id.as_str();
    let outcome = |outcome: &str| {
        tracing::info!(
            request_id,
            user = %caller.user,
            connector = connector_id,
            operation = %request.operation,
            purpose = %purpose.code,
            subject = %subject.masked(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome,
            "lookup"
        );
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let problem = fetch_problem(connector_id, e);
            outcome(problem.kind.slug());
            return Err(problem);
        }
    };
    if let Err(violation) = operation.schema.check(&fetched.record) {
        outcome(ProblemKind::UpstreamSchemaViolation.slug());
        return Err(Problem::new(
            ProblemKind::UpstreamSchemaViolation,
            "The department's record violates the connector's schema; nothing of it was returned.",
        )
        .with("connector", connector_id)
        .with("schema_path", violation.schema_path)
        .with("instance_path", violation.instance_path));
    }
    let ctx = MaskContext {
        key: &app.pseudonym,
        today,
    };
    let result = match plan.apply(&fetched.record, caller, &operation.fields, &ctx) {
        Ok(result) => result,
        Err(refusal) => {
            outcome(ProblemKind::Forbidden.slug());
            trail.refused_by(&refusal.rule);
            return Err(forbidden(refusal));
        }
    };
    trail.decided(&result);
    outcome("ok");

    Ok(Json(json!({
        "request_id": request_id,
        "connector": connector_id,
        "operation": request.operation,
        "department": {"id": connector.def.department.id, "name": connector.def.department.name},
        "purpose": {"code": purpose.code, "name": purpose.name},
        "case_id": request.case_id,
        "fetched_at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": result.data,
        "fields": result.fields,
        "withheld": result.withheld,
        "decision": {
            "rules": result.rules,
            "policy_version": plan.policy_version,
            "config_version": config.version,
        },
    }))
    .into_response())
}
