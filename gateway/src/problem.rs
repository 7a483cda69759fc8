//! The catalogue of problem types: every kind of error the gateway answers with, its
//! stable slug (the `type` URI is `/problems/<slug>`, documented at that path by the
//! gateway itself), its HTTP status, a fixed title, and who failed — the caller's
//! request, the department's system, or the gateway. The audit log records the slug
//! of each failed request. Domain errors name their kind here; the HTTP layer turns
//! them into RFC 9457 bodies ([`crate::http::problem`]).

use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

/// Who a problem is attributed to, so a clerk knows where to turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request was wrong; the caller can fix it.
    Caller,
    /// The department's system failed or answered something unusable.
    Department,
    /// The gateway itself failed or is not ready.
    Gateway,
}

impl Blame {
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Caller => "caller",
            Blame::Department => "department",
            Blame::Gateway => "gateway",
        }
    }
}

macro_rules! problem_kinds {
    ($($variant:ident => ($slug:literal, $status:expr, $blame:expr, $title:literal, $about:literal),)*) => {
        /// Every kind of error the gateway answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemKind { $($variant,)* }

        impl ProblemKind {
            pub const ALL: &'static [ProblemKind] = &[$(ProblemKind::$variant,)*];
            /// The stable part of the `type` URI.
            pub fn slug(self) -> &'static str { match self { $(ProblemKind::$variant => $slug,)* } }
            pub fn status(self) -> StatusCode { match self { $(ProblemKind::$variant => $status,)* } }
            pub fn blame(self) -> Blame { match self { $(ProblemKind::$variant => $blame,)* } }
            pub fn title(self) -> &'static str { match self { $(ProblemKind::$variant => $title,)* } }
            /// A longer explanation served at the `type` URI.
            pub fn about(self) -> &'static str { match self { $(ProblemKind::$variant => $about,)* } }
        }
    };
}

problem_kinds! {
    InvalidRequest => ("invalid-request", StatusCode::BAD_REQUEST, Blame::Caller,
        "The request is not valid",
        "The body is not the JSON the endpoint expects, a field is missing or malformed, or the URL carries a query string (personal data travels only in request bodies)."),
    InvalidIdNumber => ("invalid-id-number", StatusCode::BAD_REQUEST, Blame::Caller,
        "The ID number is not valid",
        "The subject's resident ID number fails a GB 11643 check: length, characters, region code, birth date or check digit. No department was called."),
    Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED, Blame::Caller,
        "Authentication required",
        "The request carries no valid bearer token in its Authorization header; `reason` says what was wrong with it. Tokens are never accepted in URLs."),
    Forbidden => ("forbidden", StatusCode::FORBIDDEN, Blame::Caller,
        "Not allowed by policy",
        "The policy refuses this lookup for this caller; `rule` names the deciding rule and `reason` its kind (role, denied_by_rule, row_condition, jurisdiction). A grant that holds only for residents of the caller's township refuses with `jurisdiction` alike for a person registered elsewhere and for a person the county does not know."),
    UnknownPurpose => ("unknown-purpose", StatusCode::BAD_REQUEST, Blame::Caller,
        "Unknown purpose",
        "The purpose code is not in the county's purpose catalog (事项目录)."),
    UnknownConnector => ("unknown-connector", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown connector",
        "No connector with this id is configured."),
    UnknownOperation => ("unknown-operation", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown operation",
        "The connector has no operation with this name."),
    SubjectNotFound => ("subject-not-found", StatusCode::NOT_FOUND, Blame::Caller,
        "No record for this subject",
        "The department has no record for the subject."),
    PersonUnknown => ("person-unknown", StatusCode::NOT_FOUND, Blame::Caller,
        "No department holds this person",
        "A form was filled and every department it asked answered that it has no record of this person: check the ID number with the citizen. The lookups are recorded in the audit log."),
    ConnectorDisabled => ("connector-disabled", StatusCode::SERVICE_UNAVAILABLE, Blame::Department,
        "The connector is switched off for now",
        "The department that owns this connector (`department`) has disabled it for the time being; nothing was looked up. Try again later or ask the department."),
    NotFound => ("not-found", StatusCode::NOT_FOUND, Blame::Caller,
        "No such resource",
        "Nothing is served at this path."),
    MethodNotAllowed => ("method-not-allowed", StatusCode::METHOD_NOT_ALLOWED, Blame::Caller,
        "Method not allowed",
        "This path does not accept this HTTP method."),
    PayloadTooLarge => ("payload-too-large", StatusCode::PAYLOAD_TOO_LARGE, Blame::Caller,
        "Request body too large",
        "The request body exceeds the gateway's limit."),
    UnsupportedMediaType => ("unsupported-media-type", StatusCode::UNSUPPORTED_MEDIA_TYPE, Blame::Caller,
        "Unsupported media type",
        "Request bodies must be application/json."),
    UpstreamTimeout => ("upstream-timeout", StatusCode::GATEWAY_TIMEOUT, Blame::Department,
        "The department's system did not answer in time",
        "The connector's time limit passed before the department's system answered."),
    UpstreamUnavailable => ("upstream-unavailable", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's system could not be reached",
        "The connection to the department's system failed."),
    UpstreamError => ("upstream-error", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's system reported an error",
        "The department's system answered with an HTTP error or an error status in its envelope."),
    UpstreamMalformed => ("upstream-malformed", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's answer is malformed",
        "The department's answer is not well-formed JSON in the envelope its connector declares."),
    FrontDatabase => ("front-database", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's front database failed",
        "Reading the department's front database (前置库) failed. `fault` says how, never in the database's words: `unreachable`, `credentials_refused`, `statement_timeout`, `pool_exhausted`, `schema_drift` (a table, view or column is not what the connector declares), `statement_refused`, `duplicate_rows` (two rows for one person: the export is broken) or `too_many_rows`. Nothing of any row is returned."),
    UpstreamOversize => ("upstream-oversize", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's answer is too large",
        "The department's answer exceeds the connector's response size limit and was discarded unread."),
    UpstreamSchemaViolation => ("upstream-schema-violation", StatusCode::BAD_GATEWAY, Blame::Department,
        "The department's record violates its schema",
        "The department's record does not fit the connector's mapping or its JSON Schema. Nothing of it was returned (fail closed); `schema_path` or `field` names the rule that failed."),
    AuditUnavailable => ("audit-unavailable", StatusCode::SERVICE_UNAVAILABLE, Blame::Gateway,
        "The audit log cannot record this request",
        "Every answer is recorded in the tamper-evident audit log before it is sent; the log could not make this record durable, so nothing was returned (no audit, no data)."),
    RateLimited => ("rate-limited", StatusCode::TOO_MANY_REQUESTS, Blame::Caller,
        "Too many requests",
        "The caller went over one of its own limits, counted in department lookups (a form fill counts the most lookups its form makes, `lookups`): its user's rate, its township's rate, a grant's quota (`grant:<id>`) or the user's share of a grant's daily quota (`grant:<id>:user`). `limit` names which; `Retry-After` and the `RateLimit` header say when to try again (a daily quota at midnight, China Standard Time)."),
    RateLimitUnavailable => ("rate-limit-unavailable", StatusCode::SERVICE_UNAVAILABLE, Blame::Gateway,
        "Rate limits cannot be checked right now",
        "The gateway keeps its rate limits on a shared store (Redis) that cannot be reached, and this deployment refuses rather than serve unlimited (`fallback: closed`). Nothing was looked up. `Retry-After` says when to try again."),
    DepartmentCapacity => ("department-capacity", StatusCode::TOO_MANY_REQUESTS, Blame::Department,
        "The department's system is at its configured capacity",
        "The department sets how many calls per second its system takes through the gateway; that rate is reached, so the gateway did not call it. `limit` names the connector; `Retry-After` says when to try again. Not the caller's fault."),
    UnknownForm => ("unknown-form", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown form",
        "No form template with this id is configured."),
    InvalidConfig => ("invalid-config", StatusCode::UNPROCESSABLE_ENTITY, Blame::Caller,
        "The change would make the configuration invalid",
        "The change was checked by loading the whole configuration it would make, exactly as `gateway check` does, and that failed. `problems` lists every problem with its file (registry objects appear under /@registry/) and its path. Nothing was changed."),
    FileManaged => ("file-managed", StatusCode::CONFLICT, Blame::Caller,
        "Managed by files",
        "This object came from the county's reviewed files (`gateway.yaml` or `gateway apply`); edit the file and apply it instead. `origin` names the file."),
    RegistryConflict => ("registry-conflict", StatusCode::CONFLICT, Blame::Caller,
        "The registry changed meanwhile",
        "Another change was committed between checking this one and committing it; nothing was changed. Send the request again."),
    UnknownRequest => ("unknown-access-request", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown access request",
        "No access request with this id exists, or it is not one the caller may see."),
    UnknownCorrection => ("unknown-correction", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown correction",
        "No correction with this id exists, or it is not one the caller may see: another township's, or another department's."),
    UnknownGrant => ("unknown-grant", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown grant",
        "No grant with this id is in force, or it is not one the caller may act on."),
    AlreadyDecided => ("already-decided", StatusCode::CONFLICT, Blame::Caller,
        "Already decided",
        "The access request was already approved or refused, or the grant already revoked."),
    ConfigCheckTooSlow => ("config-check-too-slow", StatusCode::UNPROCESSABLE_ENTITY, Blame::Caller,
        "The change could not be checked in time",
        "Every change is checked by loading the configuration it would make; that took longer than the gateway allows, so nothing was changed. A connector's files (TLS material) may be the cause."),
    UnknownReview => ("unknown-review", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown classification review",
        "No connector version with this id and number waits for, or had, a classification review."),
    DuplicateRequest => ("duplicate-request", StatusCode::CONFLICT, Blame::Caller,
        "A pending request asks for the same",
        "The township already has a pending access request for the same connector, operations, fields, purposes, roles and validity; `duplicate_of` names it. Wait for its decision, or withdraw it first."),
    UnknownVersion => ("unknown-connector-version", StatusCode::NOT_FOUND, Blame::Caller,
        "Unknown connector version",
        "The connector has no version with this number (see `GET /v1/admin/connectors/{id}/versions`)."),
    AwaitingReview => ("awaiting-review", StatusCode::CONFLICT, Blame::Caller,
        "Not approved by the classification review",
        "The version loosens the county's classification (compared with the version in force) and the data-governance office has not approved it: a pending review's approval puts it in force; a refused or superseded one, or a rollback that would loosen, needs the version saved again for review."),
    RegistryUnavailable => ("registry-unavailable", StatusCode::SERVICE_UNAVAILABLE, Blame::Gateway,
        "The registry cannot be read or written",
        "The registry (connectors, grants, access requests) could not be read or written; nothing was changed."),
    NotReady => ("not-ready", StatusCode::SERVICE_UNAVAILABLE, Blame::Gateway,
        "The gateway is not ready",
        "The gateway's configuration is not loaded or its store is not writable."),
    Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, Blame::Gateway,
        "Internal error",
        "The gateway failed; the details are in its log under the request id."),
}

impl ProblemKind {
    /// The `type` member: a path the gateway itself serves a description at.
    pub fn type_uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    pub fn from_slug(slug: &str) -> Option<ProblemKind> {
        ProblemKind::ALL.iter().copied().find(|k| k.slug() == slug)
    }
}

/// An error answer. Build with [`Problem::new`] and add members with [`Problem::with`].
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Written by the gateway; never contains request data or upstream content.
    pub detail: String,
    pub extensions: Map<String, Value>,
    pub request_id: Option<String>,
    /// Extra response headers (`Retry-After`, `RateLimit`), written by the gateway.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            extensions: Map::new(),
            request_id: None,
            headers: Vec::new(),
        }
    }

    /// Adds an extension member (a gateway-made value such as a connector id or a
    /// schema path).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    pub fn for_request(mut self, request_id: &str) -> Problem {
        self.request_id = Some(request_id.to_owned());
        self
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": self.kind.status().as_u16(),
            "detail": self.detail,
            "blame": self.kind.blame().as_str(),
        });
        if let Some(id) = &self.request_id {
            body["instance"] = Value::String(format!("urn:uuid:{id}"));
            body["request_id"] = Value::String(id.clone());
        }
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extensions {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in ProblemKind::ALL {
            assert!(seen.insert(kind.slug()), "duplicate slug {}", kind.slug());
            assert_eq!(ProblemKind::from_slug(kind.slug()), Some(*kind));
        }
    }
}
