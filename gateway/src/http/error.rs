//! Where every error becomes an answer: the one place a domain error turns into a
//! [`Problem`] (RFC 9457), and a `Problem` into an HTTP response.
//!
//! Which to use when: a handler returns `Result<_, Problem>` and uses `?` on domain
//! errors, which convert here (`From` impls). A lookup's failures are
//! [`LookupError`](crate::lookup::LookupError); the caller's and the department's
//! limits are [`Limited`](crate::limits::Limited); a department's failure is a
//! [`FetchError`](connectors::FetchError); authentication failures answer 401 with a
//! challenge ([`unauthenticated`]); an audit log that cannot record answers 503 and
//! nothing else ([`audit_unavailable`]). Every `detail` is written here or by the
//! gateway, never copied from the request or a department.

use std::fmt::Write as _;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use connectors::FetchError;

use super::problem::{PROBLEM_JSON, Problem, ProblemKind};
use crate::auth::AuthError;
use crate::limits::{self, Limited};
use crate::lookup::{LookupError, SubjectError};
use crate::policy::Refusal;

impl IntoResponse for Problem {
    /// The answer. A problem made without its request's id (a handler returning
    /// `Err(problem)` through `?`) is kept in the response's extensions, and the
    /// request context writes it again with the id ([`with_request_id`]).
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), self.body().to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        if self.request_id.is_none() {
            response.extensions_mut().insert(Unidentified(self));
        }
        response
    }
}

/// The registry cannot be read or written: 503 (the cause goes to the log).
impl From<crate::registry::RegistryError> for Problem {
    fn from(error: crate::registry::RegistryError) -> Problem {
        tracing::error!(error = %error, "the registry cannot be read");
        Problem::new(
            ProblemKind::RegistryUnavailable,
            "The registry cannot be read right now.",
        )
    }
}

/// A problem answered without its request's id.
#[derive(Debug, Clone)]
struct Unidentified(Problem);

/// The response again with the request's id in its problem body, if it is a problem
/// that was answered without one; otherwise unchanged.
pub(crate) fn with_request_id(response: Response, request_id: &str) -> Response {
    match response.extensions().get::<Unidentified>() {
        Some(Unidentified(problem)) => problem.clone().for_request(request_id).into_response(),
        None => response,
    }
}

/// The answer when the audit log cannot record a request: 503 and nothing else.
pub(crate) fn audit_unavailable(request_id: &str, error: &dyn std::fmt::Display) -> Response {
    crate::action::audit_unavailable(request_id, error).into_response()
}

/// A 401 answer: which check failed, never the token.
pub(crate) fn unauthenticated(error: AuthError, request_id: &str) -> Response {
    let detail = match error {
        AuthError::MissingClaim(claim) => format!(
            "Send a valid bearer token in the Authorization header: this one lacks the `{claim}` claim."
        ),
        AuthError::InvalidVillages(problem) => format!(
            "Send a valid bearer token in the Authorization header: its `villages` claim is refused ({problem})."
        ),
        _ => "Send a valid bearer token in the Authorization header.".to_owned(),
    };
    let mut problem =
        Problem::new(ProblemKind::Unauthenticated, detail).with("reason", error.described());
    if let Some(claim) = error.claim() {
        problem = problem.with("claim", claim);
    }
    let mut response = problem.for_request(request_id).into_response();
    // RFC 6750 §3.1: a request without credentials gets a bare challenge.
    let challenge = if error == AuthError::Missing {
        "Bearer".to_owned()
    } else {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            error.described()
        )
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The 429 answer: `department-capacity` for a connector's capacity, `rate-limited`
/// otherwise; members `limit`, `retry_after_s` and, for a request of several
/// lookups, `lookups`; headers `Retry-After`, `RateLimit-Policy` and `RateLimit`.
pub(crate) fn limited(limited: &Limited) -> Problem {
    let this = limited;
    let secs = this.retry_after_s();
    if this.is_unavailable() {
        return Problem::new(
            ProblemKind::RateLimitUnavailable,
            format!(
                "The gateway cannot check its rate limits right now, so nothing was looked up. \
                 Try again in {secs} s."
            ),
        )
        .with("retry_after_s", secs)
        .header(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    let rate = this.rate.describe();
    let (kind, detail) = if let Some(connector) = this.limit.strip_prefix(limits::CONNECTOR_PREFIX)
    {
        (
            ProblemKind::DepartmentCapacity,
            format!(
                "The department's system behind connector `{connector}` takes at most \
                 {rate} through the gateway, and that capacity is in use. This is not \
                 a limit on you. Try again in {secs} s."
            ),
        )
    } else {
        let which = match this.limit.as_str() {
            "user" => "your own rate limit".to_owned(),
            "township" => "your township's rate limit, shared by its users".to_owned(),
            limits::MISMATCHES_SUBJECT_LIMIT => "the limit on verifications of this person \
                that do not match (guessing and checking again is refused)"
                .to_owned(),
            limits::MISMATCHES_USER_LIMIT => "your own limit on verifications that do not \
                match"
                .to_owned(),
            other => match other.strip_prefix(limits::GRANT_PREFIX) {
                Some(grant) => match grant.strip_suffix(limits::USER_SHARE_SUFFIX) {
                    Some(grant) => format!(
                        "your own share of the daily quota of grant `{grant}` (one user \
                         may not use up the township's quota)"
                    ),
                    None => format!("the quota of grant `{grant}`"),
                },
                None => format!("the `{other}` limit"),
            },
        };
        // A grant's daily quota is a calendar day; a rate of N per day is a bucket.
        let reset = if this.rate.window_s == limits::DAY_S
            && this.limit.starts_with(limits::GRANT_PREFIX)
        {
            " Daily quotas start again at midnight, China Standard Time."
        } else {
            ""
        };
        let cost = if this.cost > this.rate.burst {
            format!(
                " This request needs {} department lookups at once, more than the limit \
                 ever allows at once; the operator must raise its burst.",
                this.cost
            )
        } else if this.cost > 1 {
            format!(" This request needs {} department lookups.", this.cost)
        } else {
            String::new()
        };
        (
            ProblemKind::RateLimited,
            format!("You have reached {which} ({rate}).{cost}{reset} Try again in {secs} s."),
        )
    };
    let mut problem = Problem::new(kind, detail)
        .with("limit", this.limit.as_str())
        .with("retry_after_s", secs)
        .header(header::RETRY_AFTER, HeaderValue::from(secs));
    if this.cost > 1 {
        problem = problem.with("lookups", this.cost);
    }
    // RateLimit header fields, draft-ietf-httpapi-ratelimit-headers-11 (§3, §4):
    // `RateLimit-Policy` is a List of Items whose value is an sf-string naming the
    // policy, with `q` (quota) and `w` (window, seconds); `RateLimit` names the same
    // policy with `r` (available quota) and `t` (seconds within which no more than
    // `r` is available).
    let name = sf_string(&this.limit);
    let policy = format!("{name};q={};w={}", this.rate.count, this.rate.window_s);
    let current = format!("{name};r=0;t={secs}");
    for (field, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            problem = problem.header(HeaderName::from_static(field), value);
        }
    }
    problem
}

impl From<Limited> for Problem {
    fn from(limited: Limited) -> Problem {
        self::limited(&limited)
    }
}

/// `s` as a Structured Field String (RFC 9651 §3.3.3): quoted, `"` and `\` escaped.
/// An sf-string holds printable ASCII only, so any other character is written as the
/// percent-encoded bytes of its UTF-8 (the `limit` body member keeps the name as is).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// A department's failure: names the connector, never echoes its answer.
pub(crate) fn fetch_problem(connector: &str, e: &FetchError) -> Problem {
    let problem = match e {
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
        FetchError::FrontDatabase(fault) => Problem::new(
            ProblemKind::FrontDatabase,
            "Reading the department's front database failed; nothing of it was returned.",
        )
        .with("fault", fault.code()),
    };
    problem.with("connector", connector)
}

impl From<LookupError> for Problem {
    fn from(error: LookupError) -> Problem {
        match error {
            LookupError::Refused(refusal) => forbidden(refusal),
            LookupError::Limited(limited) => limited.into(),
            LookupError::Busy { connector, limited } => {
                self::limited(&limited).with("connector", connector)
            }
            LookupError::NotFound { connector } => {
                fetch_problem(&connector, &FetchError::NotFound)
            }
            LookupError::Upstream { connector, error } => fetch_problem(&connector, &error),
            LookupError::Schema {
                connector,
                violation,
            } => Problem::new(
                ProblemKind::UpstreamSchemaViolation,
                "The department's record violates the connector's schema; nothing of it was returned.",
            )
            .with("connector", connector)
            .with("schema_path", violation.schema_path)
            .with("instance_path", violation.instance_path),
            LookupError::Disabled {
                connector,
                department,
            } => {
                let mut problem = Problem::new(
                    ProblemKind::ConnectorDisabled,
                    "The department has switched this connector off for now; nothing was looked up.",
                )
                .with("connector", connector);
                if let Some((id, name)) = department {
                    problem = problem.with("department", serde_json::json!({"id": id, "name": name}));
                }
                problem
            }
            LookupError::NotConfigured { .. } => Problem::new(
                ProblemKind::Internal,
                "The form names a connector operation that is not configured.",
            ),
        }
    }
}

impl From<crate::fill::Refused> for Problem {
    fn from(refused: crate::fill::Refused) -> Problem {
        use crate::fill::Refused;
        match refused {
            Refused::Limited(limited) => limited.into(),
            Refused::UnknownForm => Problem::new(
                ProblemKind::UnknownForm,
                "No form template with this id is configured; GET /v1/forms lists yours.",
            ),
            Refused::NotGranted => Problem::new(
                ProblemKind::Forbidden,
                "No grant in force gives this caller the form's purpose.",
            )
            .with("reason", "not_granted")
            .with("rule", "forms"),
            Refused::Subject(error) => error.into(),
            Refused::NoPurpose => Problem::new(
                ProblemKind::Internal,
                "The form's purpose is not configured.",
            ),
            Refused::Stated(error) => Problem::new(ProblemKind::InvalidRequest, error.to_string()),
        }
    }
}

impl From<crate::fill::Unfilled> for Problem {
    fn from(unfilled: crate::fill::Unfilled) -> Problem {
        match unfilled {
            crate::fill::Unfilled::Lookup(error) => error.into(),
            crate::fill::Unfilled::PersonUnknown => Problem::new(
                ProblemKind::PersonUnknown,
                "No department this form asks holds a record of this person; check the ID number with the citizen.",
            ),
        }
    }
}

impl From<crate::lookup::single::AskError> for Problem {
    fn from(error: crate::lookup::single::AskError) -> Problem {
        use crate::lookup::single::AskError;
        match error {
            AskError::UnknownConnector => Problem::new(
                ProblemKind::UnknownConnector,
                "No connector with this id is configured.",
            ),
            AskError::UnknownOperation {
                connector,
                operations,
            } => Problem::new(
                ProblemKind::UnknownOperation,
                "The connector has no operation with this name.",
            )
            .with("connector", connector)
            .with("operations", operations),
            AskError::UnknownPurpose => Problem::new(
                ProblemKind::UnknownPurpose,
                "The purpose code is not in the purpose catalog.",
            ),
            AskError::Subject(error) => error.into(),
            AskError::Lookup(error) => error.into(),
        }
    }
}

/// A policy refusal as a 403 naming the deciding rule.
pub(crate) fn forbidden(refusal: Refusal) -> Problem {
    Problem::new(ProblemKind::Forbidden, refusal.detail)
        .with("rule", refusal.rule)
        .with("reason", refusal.reason.as_str())
}

impl From<SubjectError> for Problem {
    fn from(error: SubjectError) -> Problem {
        let kind = match error {
            SubjectError::IdNumber(_) => ProblemKind::InvalidIdNumber,
            _ => ProblemKind::InvalidRequest,
        };
        let mut problem = Problem::new(kind, error.to_string());
        if let SubjectError::IdNumber(e) = &error {
            problem = problem.with("check", e.code());
        }
        if let Some(at) = error.at() {
            problem = problem.with("at", at);
        }
        problem
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::limits::Rate;
    use crate::policy::RefusalReason;
    use crate::schema::Violation;

    /// A problem as the caller receives it: status, body and the headers it adds.
    fn answered(problem: Problem) -> Value {
        let headers: Vec<Value> = problem
            .headers
            .iter()
            .map(|(name, value)| json!([name.as_str(), value.to_str().unwrap_or("?")]))
            .collect();
        json!({
            "status": problem.kind.status().as_u16(),
            "body": problem.body(),
            "headers": headers,
        })
    }

    fn limited(limit: &str, rate: Rate, cost: u32) -> Limited {
        Limited {
            limit: limit.to_owned(),
            rate,
            retry_after: Duration::from_millis(1500),
            cost,
        }
    }

    #[test]
    fn lookup_failures_answer_with_these_bodies() {
        let cases = [
            (
                "refused",
                LookupError::Refused(Refusal {
                    rule: "hukou-birth-registration".to_owned(),
                    reason: RefusalReason::Jurisdiction,
                    detail: "Grant `hukou-birth-registration` applies only to residents of the caller's township.".to_owned(),
                }),
            ),
            (
                "grant_quota",
                LookupError::Limited(limited("grant:hukou-birth-registration", Rate::per_day(300), 1)),
            ),
            (
                "department_busy",
                LookupError::Busy {
                    connector: "hukou".to_owned(),
                    limited: limited("connector:hukou", Rate::per_second(50, 10), 1),
                },
            ),
            ("not_found", LookupError::NotFound { connector: "hukou".to_owned() }),
            (
                "timeout",
                LookupError::Upstream {
                    connector: "shebao".to_owned(),
                    error: FetchError::Timeout,
                },
            ),
            (
                "oversize",
                LookupError::Upstream {
                    connector: "shebao".to_owned(),
                    error: FetchError::Oversize { limit: 65536 },
                },
            ),
            (
                "schema",
                LookupError::Schema {
                    connector: "jisheng".to_owned(),
                    violation: Violation {
                        schema_path: "/properties/township_code/pattern".to_owned(),
                        instance_path: "/township_code".to_owned(),
                    },
                },
            ),
            (
                "disabled",
                LookupError::Disabled {
                    connector: "jisheng".to_owned(),
                    department: Some(("county-hfpc".to_owned(), Some("县卫生健康委员会".to_owned()))),
                },
            ),
        ];
        for (name, error) in cases {
            let kind = error.kind();
            let problem = Problem::from(error);
            assert_eq!(problem.kind, kind, "{name}");
            insta::assert_json_snapshot!(format!("lookup_{name}"), answered(problem));
        }
    }

    #[test]
    fn a_callers_own_limits_answer_429_with_retry_headers() {
        let form = limited("user", Rate::per_minute(120), 11);
        insta::assert_json_snapshot!("limited_form", answered(Problem::from(form)));
    }

    #[test]
    fn a_bad_subject_names_the_check_not_the_number() {
        let id = connectors::subject::IdNumber::parse("13990119750327229Y")
            .expect_err("a wrong check digit");
        let cases = [
            ("id_number", SubjectError::IdNumber(id)),
            ("household", SubjectError::HouseholdNumber),
            (
                "one_key",
                SubjectError::OneKey(connectors::definition::SubjectKey::HouseholdNumber),
            ),
        ];
        for (name, error) in cases {
            insta::assert_json_snapshot!(format!("subject_{name}"), answered(Problem::from(error)));
        }
    }
}
