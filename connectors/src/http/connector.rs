//! The HTTP/JSON connector: calls a department system with reqwest over rustls (no
//! OpenSSL), with pooled connections, connect and total timeouts (and the caller's
//! deadline) and a response size limit, unwraps the department's envelope and applies
//! the declarative mapping. Which roots it trusts and which client certificate it
//! presents come from the definition's `tls` section (see [`crate::tls`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::config::{Envelope, SUBJECT_PLACEHOLDER, endpoint_url};
use crate::definition::{ConnectorDef, OperationCall, Transport};
use crate::error::{BuildError, FetchError};
use crate::files::FileRoots;
use crate::mapping::map_record;
use crate::tls::client_config;
use crate::{Connector, FetchContext, Fetched};

/// The header that carries the gateway's request id to the department.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C Trace Context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A connector to one department system over HTTP/JSON.
#[derive(Debug)]
pub struct HttpConnector {
    def: Arc<ConnectorDef>,
    client: reqwest::Client,
    envelope: Envelope,
    max_response_bytes: u64,
    /// Each operation's method, URL and body template, parsed once here rather than
    /// per call.
    endpoints: BTreeMap<String, Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    method: reqwest::Method,
    url: reqwest::Url,
    body: Value,
}

impl HttpConnector {
    /// Builds the connector and its HTTP client. Relative paths in the definition's
    /// `tls` section are resolved against `base_dir`, the connector file's directory.
    pub fn new(
        def: Arc<ConnectorDef>,
        base_dir: &Path,
        roots: &FileRoots,
    ) -> Result<HttpConnector, BuildError> {
        let Transport::Http(settings) = &def.transport;
        let tls = client_config(settings.tls.as_ref(), base_dir, roots)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(def.timeouts.connect())
            .timeout(def.timeouts.total())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(crate::dns::UpstreamResolver)
            .user_agent(concat!("county-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client {
                kind: "HTTP",
                problem: e.to_string(),
            })?;
        let endpoints = def
            .operations
            .iter()
            .map(|(name, op)| {
                let problem = |problem: String| BuildError::Operation {
                    operation: name.clone(),
                    problem,
                };
                let OperationCall::Http(request) = &op.call;
                let method = reqwest::Method::from_bytes(request.method.as_bytes())
                    .map_err(|_| problem(format!("`{}` is not an HTTP method", request.method)))?;
                let url = endpoint_url(&settings.base_url, &request.path)
                    .map_err(|e| problem(format!("the URL is not valid: {e}")))?;
                let endpoint = Endpoint {
                    method,
                    url,
                    body: request.body.clone(),
                };
                Ok((name.clone(), endpoint))
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(HttpConnector {
            envelope: settings.envelope.clone(),
            max_response_bytes: settings.max_response_bytes,
            def,
            client,
            endpoints,
        })
    }

    async fn call(
        &self,
        operation: &str,
        key: &str,
        context: &FetchContext,
    ) -> Result<Fetched, FetchError> {
        let (Some(op), Some(endpoint)) = (
            self.def.operations.get(operation),
            self.endpoints.get(operation),
        ) else {
            return Err(FetchError::UnknownOperation);
        };
        let mut request = self
            .client
            .request(endpoint.method.clone(), endpoint.url.clone())
            .json(&fill_subject(&endpoint.body, key));
        if let Some(deadline) = context.deadline {
            // The earlier of the connector's own time limit and the caller's deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FetchError::Timeout);
            }
            request = request.timeout(left.min(self.def.timeouts.total()));
        }
        for (name, value) in [
            (REQUEST_ID, context.request_id.as_deref()),
            (TRACEPARENT, context.trace_context.as_deref()),
        ] {
            // A value that cannot be a header is left out: it only helps correlate logs.
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                request = request.header(name, value);
            }
        }
        let started = Instant::now();
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::Oversize { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(FetchError::Oversize { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        let latency = started.elapsed();
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| FetchError::Malformed)?;
        let envelope = &self.envelope;
        let code = answer
            .pointer(&envelope.status)
            .ok_or(FetchError::Malformed)?;
        if envelope.not_found.contains(code) {
            return Err(FetchError::NotFound);
        }
        if !envelope.ok.contains(code) {
            tracing::debug!(
                connector = %self.def.id,
                operation,
                request_id = context.request_id.as_deref(),
                "department envelope reports an error"
            );
            return Err(FetchError::Rejected);
        }
        let data = match answer.pointer(&envelope.data) {
            Some(Value::Null) | None => return Err(FetchError::NotFound),
            Some(data @ Value::Object(_)) => data,
            Some(_) => return Err(FetchError::Malformed),
        };
        let record = map_record(&self.def, &op.record, data).map_err(FetchError::Mapping)?;
        Ok(Fetched { record, latency })
    }
}

impl Connector for HttpConnector {
    fn definition(&self) -> &Arc<ConnectorDef> {
        &self.def
    }

    fn fetch<'a>(
        &'a self,
        operation: &'a str,
        key: &'a str,
        context: &'a FetchContext,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(self.call(operation, key, context))
    }
}

fn classify(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        FetchError::Timeout
    } else if err.is_connect() {
        FetchError::Unavailable
    } else if err.is_body() || err.is_decode() {
        FetchError::Malformed
    } else {
        FetchError::Unavailable
    }
}

pub(super) fn fill_subject(template: &Value, key: &str) -> Value {
    match template {
        Value::String(s) if s == SUBJECT_PLACEHOLDER => Value::String(key.to_owned()),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_subject(v, key)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_subject(v, key)))
                .collect(),
        ),
        other => other.clone(),
    }
}
