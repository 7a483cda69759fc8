//! `POST /v1/query`: one lookup of one subject through one connector operation, for a
//! purpose and a case. The handler authenticates the bearer token, takes from the
//! caller's own rate limits, parses and validates the request (the ID number before
//! any upstream call), resolves connector, operation and purpose, and runs the shared
//! `lookup` pipeline: decide → quota → cache or fetch → schema → mask.
//!
//! Every authenticated lookup — answered, refused or failed — leaves one audit event,
//! made durable BEFORE the answer is sent; if it cannot be, the caller gets 503 and
//! nothing else (no audit, no data). An answer names its event in the
//! [`super::receipt`] header. The request is parsed in [`super::request`].

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::SecondsFormat;
use serde::Serialize;
use tracing::Instrument;

use super::error::audit_unavailable;
use super::problem::Problem;
use super::request::parse;
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::lookup::Trail;
use crate::lookup::single::{self, Ask};
use crate::policy::{Returned, Withheld};

/// One lookup.
#[utoipa::path(
    post,
    path = "/v1/query",
    tag = "lookups",
    operation_id = "lookup",
    summary = "Look up one person's record at one department",
    description = "Runs the pipeline for one subject: the ID number is checked (GB 11643) \
        before any department is called; then the caller's limits, the policy decision for \
        (caller, connector, operation, purpose), the record from the cache or the department, \
        its schema, the row condition, minimization and masks. The answer lists every field \
        returned (with its mask and the rule that allowed it) and every field withheld (with \
        why). Every authenticated lookup, answered or not, is recorded in the audit log \
        before the answer is sent; an answer that released data names its event in \
        `Audit-Event`.",
    request_body(content = super::request::QueryRequest, content_type = "application/json",
        example = super::openapi::examples::lookup),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The record as the policy releases it to this caller.",
            body = Answer<'_>, content_type = "application/json",
            headers(
                ("Audit-Event" = String, description = "The audit event recording this answer: `<chain id>/<seq>/<hash>`."),
                ("Content-Language" = String, description = "The labels' language, when labels were asked for."),
            )),
        QueryProblems,
    ),
)]
pub(crate) async fn query(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut trail = Trail::default();
    let answer = run(&app, &caller, &request_id, &headers, body, &mut trail).await;
    let (status, problem) = match &answer {
        Ok(_) => (200, None),
        Err(p) => (p.kind.status().as_u16(), Some(p.kind.slug())),
    };
    let event = trail.event(&request_id, &caller, peer, status, problem);
    let commit = tracing::info_span!(
        "audit.commit",
        audit.seq = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let recorded = match app.audit.append(event).instrument(commit.clone()).await {
        Ok(recorded) => recorded,
        Err(e) => {
            commit.record("otel.status_code", "ERROR");
            return audit_unavailable(&request_id, &e);
        }
    };
    commit.record("audit.seq", recorded.seq);
    match answer {
        Ok(mut response) => {
            super::receipt::attach(&mut response, std::slice::from_ref(&recorded));
            response
        }
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}

async fn run(
    app: &App,
    caller: &Caller,
    request_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    trail: &mut Trail,
) -> Result<Response, Problem> {
    // One department lookup.
    single::admit(app.services(request_id), caller)
        .instrument(tracing::info_span!("limits"))
        .await
        .map_err(Problem::from)?;
    let (request, lang) = tracing::info_span!("validate").in_scope(|| {
        let request = parse(headers, body)?;
        let lang = super::labels::requested(request.labels.as_deref(), headers)?;
        Ok::<_, Problem>((request, lang))
    })?;
    let config = app.config.load_full();
    let (id_number, household_number) = request.subject.into_parts();
    let ask = Ask {
        connector: request.connector,
        operation: request.operation,
        purpose: request.purpose,
        case_id: request.case_id.clone(),
        id_number,
        household_number,
    };
    let answered = single::ask(app.services(request_id), &config, caller, ask, trail)
        .await
        .map_err(|e| naming_department(Problem::from(e), &config))?;
    let (found, connector, operation, purpose) = (
        &answered.found,
        answered.connector,
        answered.operation,
        answered.purpose,
    );
    let _respond = tracing::info_span!("respond").entered();
    let result = &found.outcome;
    let fetched_at = found.record.fetched_at();
    let department = &connector.def.department;
    // Written straight from borrowed parts: no `Value` tree is built per answer
    // (unless labels are asked for).
    let answer = Answer {
        request_id,
        connector: &connector.def.id,
        operation,
        department: Named {
            id: &department.id,
            name: &department.name,
        },
        purpose: Coded {
            code: &purpose.code,
            name: &purpose.name,
        },
        case_id: &request.case_id,
        fetched_at: fetched_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        age_s: (app.clock.now() - fetched_at).num_seconds().max(0),
        cache_hit: found.cache_hit,
        data: &result.data,
        fields: &result.fields,
        withheld: &result.withheld,
        decision: Decision {
            rules: &result.rules,
            policy_version: &config.policies.version,
            config_version: &config.version,
        },
    };
    Ok(super::labels::respond(&answer, lang))
}

/// A department's failure names the department, as its answer would have: the
/// connector's department from the configuration, never anything the department sent.
pub(crate) fn naming_department(problem: Problem, config: &ActiveConfig) -> Problem {
    if problem.kind.blame() != crate::problem::Blame::Department
        || problem.extensions.contains_key("department")
    {
        return problem;
    }
    let department = problem
        .extensions
        .get("connector")
        .and_then(|c| c.as_str())
        .and_then(|c| config.connectors.get(c))
        .map(|c| &c.def.department);
    match department {
        Some(d) => problem.with(
            "department",
            serde_json::json!({"id": d.id, "name": d.name}),
        ),
        None => problem,
    }
}

crate::problems!(
    /// What a lookup can answer besides its record.
    QueryProblems = [
        Unauthenticated, InvalidIdNumber, UnsupportedMediaType, PayloadTooLarge,
        UnknownPurpose, UnknownConnector, UnknownOperation, Forbidden, SubjectNotFound,
        RateLimited, DepartmentCapacity, ConnectorDisabled, RateLimitUnavailable,
        UpstreamTimeout, UpstreamUnavailable, UpstreamError, UpstreamMalformed,
        UpstreamOversize, UpstreamSchemaViolation, FrontDatabase, AuditUnavailable,
    ]
);

/// The answer to a lookup.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = LookupAnswer)]
struct Answer<'a> {
    /// The request's id (also `x-request-id`, and in the audit event).
    request_id: &'a str,
    #[schema(example = "hukou")]
    connector: &'a str,
    #[schema(example = "person_by_id")]
    operation: &'a str,
    /// The department that holds the record.
    department: Named<'a>,
    purpose: Coded<'a>,
    case_id: &'a str,
    /// When the department answered (RFC 3339, UTC, milliseconds).
    fetched_at: String,
    /// Seconds since then (a cached record is older than the request).
    age_s: i64,
    /// Whether the record came from the gateway's cache of the department's answers.
    cache_hit: bool,
    /// The record as released: only the fields in `fields`, each masked as it says;
    /// with labels asked for, `<field>_label` beside each coded field.
    #[schema(value_type = Object)]
    data: &'a serde_json::Value,
    /// Every field released (dotted path → its mask and the rule that allowed it).
    fields: &'a BTreeMap<String, Returned>,
    /// Every field the connector has that was not released, and why.
    withheld: &'a [Withheld],
    decision: Decision<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DepartmentName)]
struct Named<'a> {
    #[schema(example = "county-psb")]
    id: &'a str,
    #[schema(example = "县公安局")]
    name: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PurposeName)]
struct Coded<'a> {
    #[schema(example = "birth_registration")]
    code: &'a str,
    #[schema(example = "生育登记")]
    name: &'a str,
}

/// What decided the answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = LookupDecision)]
struct Decision<'a> {
    /// The grants and rules that applied.
    rules: &'a BTreeSet<String>,
    policy_version: &'a str,
    config_version: &'a str,
}
