//! What can go wrong when a connector calls its department, told without echoing
//! anything the department sent: the gateway turns these into problem responses that a
//! clerk can act on (the department's system failed, not their request).

use crate::mapping::MappingError;

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
    #[error("the department answered with HTTP status {0}")]
    Status(u16),
    #[error("the department answered with an error status in its envelope")]
    Rejected,
    #[error("the department's answer exceeded {limit} bytes")]
    Oversize { limit: u64 },
    #[error("the department's answer is not well-formed JSON in the expected envelope")]
    Malformed,
    #[error("the department's record does not fit the connector's mapping: {0}")]
    Mapping(MappingError),
}
