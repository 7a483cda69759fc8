//! How a lookup fails, as a type callers match on: a form reads the reason for a
//! missing field from it, `/v1/query` turns it into a problem (in
//! [`crate::http::error`]). Each failure knows its problem kind, which the audit log
//! records.

use connectors::FetchError;

use crate::limits::Limited;
use crate::policy::{Refusal, RefusalReason};
use crate::problem::ProblemKind;
use crate::schema::Violation;

/// Why a lookup released nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupError {
    /// The policy refuses it (403 naming the rule).
    Refused(Refusal),
    /// A grant's quota, or the caller's own limit, is used up.
    Limited(Limited),
    /// The department's capacity through the gateway is in use.
    Busy { connector: String, limited: Limited },
    /// The department has no record for this subject.
    NotFound { connector: String },
    /// The department's system failed or answered something unusable.
    Upstream {
        connector: String,
        error: FetchError,
    },
    /// The department's record violates the connector's schema.
    Schema {
        connector: String,
        violation: Violation,
    },
    /// The department has switched the connector off; its department, when known,
    /// as id and display name.
    Disabled {
        connector: String,
        department: Option<(String, Option<String>)>,
    },
    /// A form names a connector operation this configuration lacks (the template
    /// was checked when it loaded, so this is the gateway's fault).
    NotConfigured { connector: String },
}

impl LookupError {
    /// The problem type this failure answers with (and the audit log records).
    pub fn kind(&self) -> ProblemKind {
        match self {
            LookupError::Refused(_) => ProblemKind::Forbidden,
            LookupError::Limited(limited) | LookupError::Busy { limited, .. } => {
                if limited.is_department() {
                    ProblemKind::DepartmentCapacity
                } else {
                    ProblemKind::RateLimited
                }
            }
            LookupError::NotFound { .. } => ProblemKind::SubjectNotFound,
            LookupError::Upstream { error, .. } => fetch_kind(error),
            LookupError::Schema { .. } => ProblemKind::UpstreamSchemaViolation,
            LookupError::Disabled { .. } => ProblemKind::ConnectorDisabled,
            LookupError::NotConfigured { .. } => ProblemKind::Internal,
        }
    }

    /// The policy's reason, for a refusal.
    pub fn refusal_reason(&self) -> Option<RefusalReason> {
        match self {
            LookupError::Refused(refusal) => Some(refusal.reason),
            _ => None,
        }
    }

    /// The connector that failed, for a department's failure.
    pub fn connector(&self) -> Option<&str> {
        match self {
            LookupError::Busy { connector, .. }
            | LookupError::NotFound { connector }
            | LookupError::Upstream { connector, .. }
            | LookupError::Schema { connector, .. }
            | LookupError::Disabled { connector, .. }
            | LookupError::NotConfigured { connector } => Some(connector),
            LookupError::Refused(_) | LookupError::Limited(_) => None,
        }
    }
}

/// The problem kind of a department's failure.
pub fn fetch_kind(error: &FetchError) -> ProblemKind {
    match error {
        FetchError::UnknownOperation => ProblemKind::UnknownOperation,
        FetchError::NotFound => ProblemKind::SubjectNotFound,
        FetchError::Timeout => ProblemKind::UpstreamTimeout,
        FetchError::Unavailable => ProblemKind::UpstreamUnavailable,
        FetchError::Status(_) | FetchError::Rejected => ProblemKind::UpstreamError,
        FetchError::Oversize { .. } => ProblemKind::UpstreamOversize,
        FetchError::Malformed => ProblemKind::UpstreamMalformed,
        FetchError::Mapping(_) => ProblemKind::UpstreamSchemaViolation,
        FetchError::FrontDatabase(_) => ProblemKind::FrontDatabase,
    }
}
