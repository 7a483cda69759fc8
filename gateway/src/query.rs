//! `POST /v1/query`: one lookup of one subject through one connector operation, for a
//! purpose and a case. The pipeline, in order: authenticate the bearer token → parse
//! and validate the request (the ID number before any upstream call) → resolve
//! connector, operation and purpose → decide which fields may leave (or refuse) →
//! fetch → check the record against its schema (fail closed) → check row conditions,
//! minimize and mask → respond.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use connectors::FetchError;
use connectors::definition::SubjectKey;
use connectors::subject::IdNumber;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::mask::MaskContext;
use crate::policy::Refusal;
use crate::problem::{Problem, ProblemKind};
use crate::server::{App, RequestId};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    connector: String,
    operation: String,
    subject: SubjectIn,
    purpose: String,
    case_id: String,
}

/// Who the lookup is about. Exactly one key, the one the operation takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectIn {
    id_number: Option<String>,
    household_number: Option<String>,
}

impl std::fmt::Debug for SubjectIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectIn(..)")
    }
}

/// The validated subject key.
enum SubjectKeyValue {
    Id(IdNumber),
    Household(String),
}

impl SubjectKeyValue {
    fn as_str(&self) -> &str {
        match self {
            SubjectKeyValue::Id(id) => id.as_str(),
            SubjectKeyValue::Household(h) => h,
        }
    }

    /// A form safe for logs.
    fn masked(&self) -> String {
        match self {
            SubjectKeyValue::Id(id) => id.masked(),
            SubjectKeyValue::Household(h) => {
                let keep = h.len().min(4);
                format!("{}{}", "*".repeat(h.len() - keep), &h[h.len() - keep..])
            }
        }
    }
}

pub(crate) async fn query(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match app.auth.authenticate(&headers, &uri).await {
        Ok(caller) => caller,
        Err(e) => return crate::server::unauthenticated(e, &request_id),
    };
    match run(&app, &caller, &request_id, &headers, body).await {
        Ok(response) => response,
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}

/// A policy refusal as a 403 naming the deciding rule.
fn forbidden(refusal: Refusal) -> Problem {
    Problem::new(ProblemKind::Forbidden, refusal.detail)
        .with("rule", refusal.rule)
        .with(
            "reason",
            serde_json::to_value(refusal.reason).unwrap_or_default(),
        )
}

async fn run(
    app: &App,
    caller: &Caller,
    request_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request = parse(headers, body)?;
    let config = app.config.load_full();

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
    check_case_id(&request.case_id)?;
    let subject = subject_key(operation.subject, request.subject)?;

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
        .map_err(forbidden)?;
    let started = Instant::now();
    let fetched = connector
        .connector
        .fetch(&request.operation, subject.as_str())
        .await;
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
            outcome(fetch_outcome(&e));
            return Err(fetch_problem(connector_id, e));
        }
    };
    if let Err(violation) = operation.schema.check(&fetched.record) {
        outcome("schema_violation");
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
            outcome("forbidden_row_condition");
            return Err(forbidden(refusal));
        }
    };
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

fn parse(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<QueryRequest, Problem> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "Send the request body as application/json.",
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                ProblemKind::PayloadTooLarge,
                "The request body is too large.",
            )
        } else {
            Problem::new(
                ProblemKind::InvalidRequest,
                "The request body could not be read.",
            )
        }
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Name where the body went wrong and what kind of error it is; never echo
        // the body (serde's messages can quote the offending value).
        let at = e.path().to_string();
        let what = match e.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the body is not well-formed JSON"
            }
            _ => "the body does not have the expected fields and types",
        };
        Problem::new(
            ProblemKind::InvalidRequest,
            format!(
                "Expected {{connector, operation, subject: {{id_number}}, purpose, case_id}}: {what}."
            ),
        )
        .with("at", if at == "." { String::new() } else { at })
    })
}

fn subject_key(key: SubjectKey, subject: SubjectIn) -> Result<SubjectKeyValue, Problem> {
    match (key, subject.id_number, subject.household_number) {
        (SubjectKey::IdNumber, Some(id), None) => {
            IdNumber::parse(&id).map(SubjectKeyValue::Id).map_err(|e| {
                Problem::new(ProblemKind::InvalidIdNumber, e.to_string()).with("check", e.code())
            })
        }
        (SubjectKey::HouseholdNumber, None, Some(h)) => {
            if (6..=20).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit()) {
                Ok(SubjectKeyValue::Household(h))
            } else {
                Err(Problem::new(
                    ProblemKind::InvalidRequest,
                    "A household number is 6 to 20 digits.",
                )
                .with("at", "subject.household_number"))
            }
        }
        (key, _, _) => Err(Problem::new(
            ProblemKind::InvalidRequest,
            format!(
                "This operation takes exactly one subject key: subject.{}.",
                key.as_str()
            ),
        )
        .with("at", "subject")),
    }
}

/// A case id names the clerk's case (办件编号). It is required, short, and may not
/// carry an ID number: it is logged and audited in clear.
fn check_case_id(case_id: &str) -> Result<(), Problem> {
    let invalid = |detail: &str| {
        Err(Problem::new(ProblemKind::InvalidRequest, detail.to_owned()).with("at", "case_id"))
    };
    let trimmed = case_id.trim();
    if trimmed.is_empty() || case_id.chars().count() > 64 {
        return invalid("case_id is required and at most 64 characters.");
    }
    if case_id.chars().any(char::is_control) {
        return invalid("case_id may not contain control characters.");
    }
    let chars: Vec<char> = case_id.chars().collect();
    let looks_like_id = chars.windows(18).any(|w| {
        let candidate: String = w.iter().collect();
        IdNumber::parse(&candidate).is_ok()
    });
    if looks_like_id {
        return invalid("case_id may not contain an ID number.");
    }
    Ok(())
}

fn fetch_outcome(e: &FetchError) -> &'static str {
    match e {
        FetchError::UnknownOperation => "unknown_operation",
        FetchError::NotFound => "not_found",
        FetchError::Timeout => "upstream_timeout",
        FetchError::Unavailable => "upstream_unavailable",
        FetchError::Status(_) | FetchError::Rejected => "upstream_error",
        FetchError::Oversize { .. } => "upstream_oversize",
        FetchError::Malformed => "upstream_malformed",
        FetchError::Mapping(_) => "schema_violation",
    }
}

fn fetch_problem(connector: &str, e: FetchError) -> Problem {
    let problem = match &e {
        FetchError::UnknownOperation => Problem::new(
            ProblemKind::UnknownOperation,
            "The connector has no operation with this name.",
        ),
        FetchError::NotFound => Problem::new(
            ProblemKind::SubjectNotFound,
            "The department has no record for this subject.",
        ),
        FetchError::Timeout => Problem::new(
            ProblemKind::UpstreamTimeout,
            "The department's system did not answer within the connector's time limit.",
        ),
        FetchError::Unavailable => Problem::new(
            ProblemKind::UpstreamUnavailable,
            "The department's system could not be reached.",
        ),
        FetchError::Status(status) => Problem::new(
            ProblemKind::UpstreamError,
            "The department's system answered with an HTTP error.",
        )
        .with("upstream_status", *status),
        FetchError::Rejected => Problem::new(
            ProblemKind::UpstreamError,
            "The department's system reported an error in its answer.",
        ),
        FetchError::Oversize { limit } => Problem::new(
            ProblemKind::UpstreamOversize,
            "The department's answer exceeded the connector's size limit and was discarded.",
        )
        .with("limit_bytes", *limit),
        FetchError::Malformed => Problem::new(
            ProblemKind::UpstreamMalformed,
            "The department's answer is not well-formed JSON in the declared envelope.",
        ),
        FetchError::Mapping(m) => Problem::new(
            ProblemKind::UpstreamSchemaViolation,
            "The department's record does not fit the connector's mapping; nothing of it was returned.",
        )
        .with("field", m.field.clone())
        .with("upstream_path", m.from.clone())
        .with("rule", m.rule.clone()),
    };
    problem.with("connector", connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_bounded_and_free_of_id_numbers() {
        assert!(check_case_id("低保-2026-0012").is_ok());
        assert!(check_case_id("").is_err());
        assert!(check_case_id("   ").is_err());
        assert!(check_case_id(&"x".repeat(65)).is_err());
        assert!(check_case_id("a\nb").is_err());
        let id = IdNumber::build(
            "139901",
            chrono::NaiveDate::from_ymd_opt(1990, 3, 7).unwrap(),
            123,
        )
        .unwrap();
        assert!(check_case_id(&format!("case-{}", id.as_str())).is_err());
    }

    #[test]
    fn household_numbers_are_masked_in_logs() {
        let h = SubjectKeyValue::Household("139901000123".to_owned());
        assert_eq!(h.masked(), "********0123");
    }
}
