//! The HTTP/JSON connector kind (`kind: http`): its settings in the definition
//! (`config`) and the connector that calls a department system with them
//! (`connector`).

mod config;
mod connector;
#[cfg(test)]
mod tests;

pub(crate) use config::default_max_response_bytes;
pub use config::{Envelope, HttpSettings, RequestDef, SUBJECT_PLACEHOLDER, endpoint_url};
pub use connector::{HttpConnector, read_answer};
