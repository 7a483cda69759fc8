//! `POST /v1/verify`: verification without disclosure (核验) — the caller states values
//! of one person's record and gets, per field, `match`, `mismatch` or `cannot_verify`
//! with why, never a value ([`crate::verification`]).
//!
//! Like a lookup, every authenticated verification leaves one audit event (kind
//! `verification`: the fields compared and their results, never the stated values),
//! made durable before the answer is sent, or the caller gets 503 and nothing else.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::error::audit_unavailable;
use super::problem::Problem;
use super::request::SubjectIn;
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::auth::Caller;
use crate::lookup::Trail;
use crate::lookup::single::{self, Ask};
use crate::problem::ProblemKind;
use crate::verification::{self, FieldResult, VerifyAsk, VerifyError};

/// A verification: stated values of one subject's record at one connector
/// operation, for a purpose and a case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// The connector's id (`GET /v1/catalog` lists them, with the fields each
    /// purpose may verify).
    #[schema(example = "hukou")]
    connector: String,
    #[schema(example = "person_by_id")]
    operation: String,
    subject: SubjectIn,
    #[schema(example = "elderly_allowance")]
    purpose: String,
    /// The case (办件) the verification is for: free text without personal data.
    #[schema(example = "DEMO-0003")]
    case_id: String,
    /// What the citizen states, shaped like the record: each field's value (a
    /// string or number; a date as `YYYY-MM-DD`); an address as text or as the
    /// division it lies in (`{"village_code": …}`, `township_code`, `county_code`).
    /// At most 20 fields, none inside a list.
    #[schema(value_type = Object)]
    claims: serde_json::Value,
}

/// One verification.
#[utoipa::path(
    post,
    path = "/v1/verify",
    tag = "lookups",
    operation_id = "verify",
    summary = "Verify what a citizen states against a department's record (核验)",
    description = "Compares stated values with one person's record at one department, \
        inside the gateway, and answers per field `match`, `mismatch` or `cannot_verify` \
        (with the reason: `not_granted`, `never_shared`, `denied_by_rule`, `row_condition`, \
        `jurisdiction`, `not_found`, `department_unavailable`) — never the value held, nor \
        how it differs. A field may be verified under a grant that reads it or grants it \
        at level `verify`. Names and addresses are compared after normalization \
        (full-width/half-width, spaces), dates and codes exactly, amounts as numbers; an \
        address stated as a division matches every address in it. Verifications that \
        find a mismatch are limited per person and per user \
        (`rate_limits.verify_mismatches_*`: 429 `rate-limited`). Every verification is \
        recorded in the audit log (fields and results, not the stated values) before the \
        answer is sent.",
    request_body(content = VerifyRequest, content_type = "application/json",
        example = super::openapi::examples::verify),
    security(("bearer" = ["clerk", "grid_worker", "township_lead"])),
    responses(
        (status = 200, description = "What each stated field came to.",
            body = VerifyAnswer<'_>, content_type = "application/json",
            headers(
                ("Audit-Event" = String, description = "The audit event recording this verification: `<chain id>/<seq>/<hash>`."),
            )),
        VerifyProblems,
    ),
)]
pub(crate) async fn verify(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut trail = Trail::verification();
    let answer = run(&app, &caller, &request_id, &headers, body, &mut trail).await;
    let (status, problem) = match &answer {
        Ok(_) => (200, None),
        Err(p) => (p.kind.status().as_u16(), Some(p.kind.slug())),
    };
    let event = trail.event(&request_id, &caller, peer, status, problem);
    let recorded = match app
        .audit
        .append(event)
        .instrument(tracing::info_span!("audit.commit"))
        .await
    {
        Ok(recorded) => recorded,
        Err(e) => return audit_unavailable(&request_id, &e),
    };
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
    // One department lookup, as for `/v1/query`.
    single::admit(app.services(request_id), caller)
        .await
        .map_err(Problem::from)?;
    let request: VerifyRequest = super::body::json(
        headers,
        body,
        "{connector, operation, subject: {id_number}, purpose, case_id, claims}",
    )?;
    let config = app.config.load_full();
    let (id_number, household_number) = request.subject.into_parts();
    let ask = VerifyAsk {
        lookup: Ask {
            connector: request.connector,
            operation: request.operation,
            purpose: request.purpose,
            case_id: request.case_id.clone(),
            id_number,
            household_number,
        },
        claims: request.claims,
    };
    let verified = verification::verify(app.services(request_id), &config, caller, ask, trail)
        .await
        .map_err(|e| match e {
            VerifyError::Ask(e) => super::query::naming_department(Problem::from(e), &config),
            VerifyError::Claims(e) => {
                Problem::new(ProblemKind::InvalidRequest, format!("{e}.")).with("at", "claims")
            }
        })?;
    let department = config
        .departments
        .get(verified.department)
        .map_or(verified.department, |d| d.name.as_str());
    let answer = VerifyAnswer {
        request_id,
        connector: verified.resolved_connector,
        operation: verified.operation,
        department: Department {
            id: verified.department,
            name: department,
        },
        purpose: verified.purpose,
        case_id: &request.case_id,
        fields: &verified.fields,
        policy_version: &verified.policy_version,
    };
    Ok(axum::Json(answer).into_response())
}

crate::problems!(
    /// What a verification can answer besides its results.
    VerifyProblems = [
        Unauthenticated, InvalidRequest, InvalidIdNumber, UnsupportedMediaType,
        PayloadTooLarge, UnknownPurpose, UnknownConnector, UnknownOperation, Forbidden,
        RateLimited, RateLimitUnavailable, ConnectorDisabled, AuditUnavailable,
    ]
);

/// The answer to a verification: per stated field, what it came to. Never a value.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct VerifyAnswer<'a> {
    /// The request's id (also `x-request-id`, and in the audit event).
    request_id: &'a str,
    #[schema(example = "hukou")]
    connector: &'a str,
    #[schema(example = "person_by_id")]
    operation: &'a str,
    /// The department whose record was compared.
    department: Department<'a>,
    #[schema(example = "elderly_allowance")]
    purpose: &'a str,
    case_id: &'a str,
    /// Each stated field (dotted path) → `{result}` (`match`, `mismatch`) or
    /// `{result: cannot_verify, reason}`.
    fields: &'a BTreeMap<String, FieldResult>,
    policy_version: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VerifyDepartment)]
struct Department<'a> {
    #[schema(example = "county-psb")]
    id: &'a str,
    #[schema(example = "县公安局")]
    name: &'a str,
}
