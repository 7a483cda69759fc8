//! How a connector fails, whatever its kind: building it from its definition
//! ([`BuildError`]) and calling its department ([`FetchError`]). Neither echoes
//! anything the department sent: the gateway turns fetch errors into problem responses
//! that a clerk can act on (the department's system failed, not their request).

use crate::mapping::MappingError;
use crate::tls::TlsError;

/// The failure of one upstream call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the connector has no operation of that name")]
    UnknownOperation,
    #[error("the department has no record for this subject")]
    NotFound,
    #[error("the department did not answer in time")]
    Timeout,
    #[error("the department's system could not be reached")]
    Unavailable,
    /// The department's system refused the call with a status code of its protocol
    /// (for the HTTP kind, the response status).
    #[error("the department's system refused the call with status {0}")]
    Status(u16),
    #[error("the department's system reported an error in its answer")]
    Rejected,
    #[error("the department's answer exceeded {limit} bytes")]
    Oversize { limit: u64 },
    #[error("the department's answer is not in the form its connector declares")]
    Malformed,
    #[error("the department's record does not fit the connector's mapping: {0}")]
    Mapping(MappingError),
    /// The department's front database (`kind: sql`) failed; the fault's kind only.
    #[error("the department's front database: {0}")]
    FrontDatabase(crate::sql::FrontError),
}

/// Why a connector could not be built from its definition.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// The kind's client could not be set up (`kind` names the kind's client, e.g.
    /// `HTTP`).
    #[error("{kind} client: {problem}")]
    Client { kind: &'static str, problem: String },
    #[error("operation `{operation}`: {problem}")]
    Operation { operation: String, problem: String },
}
