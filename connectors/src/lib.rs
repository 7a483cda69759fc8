//! The upstream side of the county gateway.
//!
//! - [`definition`]: connector definition files (YAML) and their own checks: a
//!   kind-neutral definition and the settings of its kind;
//! - [`mapping`]: the declarative department-record → canonical-record mapping;
//! - [`Connector`]: the trait every connector kind implements, called with a
//!   [`FetchContext`]; [`http`] is the first kind, with its client TLS settings in
//!   [`tls`], and [`sql`] the second (front databases, 前置库);
//! - [`dns`]: name resolution that keeps connectors off loopback and metadata addresses;
//! - [`error`]: how building a connector and an upstream call fail, without echoing
//!   upstream content;
//! - [`files`]: reading files a configuration names (regular, bounded, confined);
//! - [`subject`]: resident ID numbers (GB 11643).
//!
//! The simulated department systems the demo, tests and benches call are the `sim` crate,
//! not part of the product.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

pub mod definition;
pub mod dns;
pub mod error;
pub mod files;
pub mod http;
pub mod mapping;
pub mod sql;
pub mod subject;
pub mod tls;

pub use definition::ConnectorDef;
pub use error::{BuildError, FetchError};

/// A canonical record fetched from a department, mapped but not yet schema-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub record: serde_json::Value,
    /// Time from sending the request to having the whole answer.
    pub latency: Duration,
}

/// What the caller knows about one upstream call, whatever the connector's kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchContext {
    /// When the answer stops being useful: the connector gives up then, or at its own
    /// time limit if that comes first. `None`: the connector's own limits only.
    pub deadline: Option<Instant>,
    /// The gateway request the call serves, for the department's logs and the
    /// gateway's to meet (the HTTP kind sends it as `X-Request-Id`).
    pub request_id: Option<String>,
    /// A W3C Trace Context `traceparent` value, when the call is traced (the HTTP kind
    /// sends it as the `traceparent` header).
    pub trace_context: Option<String>,
}

impl FetchContext {
    /// How long a call may take: the earlier of the connector's own time limit and
    /// the caller's deadline; a deadline already past is a timeout.
    pub fn time_limit(&self, timeouts: &definition::Timeouts) -> Result<Duration, FetchError> {
        let limit = timeouts.total();
        match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(FetchError::Timeout)
                } else {
                    Ok(limit.min(left))
                }
            }
            None => Ok(limit),
        }
    }
}

/// One department system. A connector kind implements this; the gateway never needs
/// to know which kind it talks to.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The definition this connector was built from.
    fn definition(&self) -> &Arc<ConnectorDef>;

    /// Looks one subject up with one operation. `key` is the subject key the operation
    /// declares (an ID number or a household number); it never travels in a URL.
    fn fetch<'a>(
        &'a self,
        operation: &'a str,
        key: &'a str,
        context: &'a FetchContext,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>>;
}

/// Makes aws-lc-rs the process-wide rustls crypto provider (no OpenSSL), so that
/// every HTTPS client in the process — reqwest's default included — works. Idempotent.
pub fn install_crypto_provider() {
    // Fails only if a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Builds the connector for a definition, choosing its kind. Relative paths in the
/// definition (its TLS files) resolve against `base_dir`, the connector file's directory,
/// and files are read only as `roots` allows.
pub fn build(
    def: Arc<ConnectorDef>,
    base_dir: &Path,
    roots: &files::FileRoots,
) -> Result<Arc<dyn Connector>, BuildError> {
    match def.transport {
        definition::Transport::Http(_) => {
            Ok(Arc::new(http::HttpConnector::new(def, base_dir, roots)?))
        }
        // The front database's connection is the operator's: the gateway builds a
        // front-database connector with [`sql::SqlConnector::new`].
        definition::Transport::Sql(_) => Err(BuildError::Client {
            kind: "SQL",
            problem: "a front-database connector is built with its department's front database"
                .into(),
        }),
    }
}
