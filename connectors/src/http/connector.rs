//! The HTTP/JSON connector: calls a department system with hyper's own client
//! (HTTP/1.1, or HTTP/2 where TLS negotiates it) over rustls (no OpenSSL), with pooled
//! connections, connect and total timeouts (and the caller's deadline) and a response
//! size limit, unwraps the department's envelope and applies the declarative mapping.
//! Which roots it trusts and which certificate it presents come from the definition's
//! `tls` section (see [`crate::tls`]); names are resolved by
//! [`crate::dns::UpstreamResolver`].
//!
//! Everything about an operation's request that does not depend on the subject — its
//! method, URL and the JSON of its body around the subject — is prepared once, when
//! the connector is built; a call only writes the subject's key into the body.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use super::config::{Envelope, SUBJECT_PLACEHOLDER, endpoint_url};
use crate::definition::{ConnectorDef, FieldDef, OperationCall, Transport};
use crate::dns::UpstreamResolver;
use crate::error::{BuildError, FetchError};
use crate::files::FileRoots;
use crate::mapping::map_record;
use crate::tls::client_config;
use crate::{Connector, FetchContext, Fetched};

/// A department's whole answer read as its connector declares: JSON, the envelope's
/// status (a "not found" status or no record is [`FetchError::NotFound`], any other
/// status than an `ok` one [`FetchError::Rejected`]), then the record the envelope
/// holds, mapped by `fields` to the canonical record.
pub fn read_answer(
    def: &ConnectorDef,
    envelope: &Envelope,
    fields: &BTreeMap<String, FieldDef>,
    bytes: &[u8],
) -> Result<Value, FetchError> {
    let answer: Value = serde_json::from_slice(bytes).map_err(|_| FetchError::Malformed)?;
    let code = answer
        .pointer(&envelope.status)
        .ok_or(FetchError::Malformed)?;
    if envelope.not_found.contains(code) {
        return Err(FetchError::NotFound);
    }
    if !envelope.ok.contains(code) {
        return Err(FetchError::Rejected);
    }
    let data = match answer.pointer(&envelope.data) {
        Some(Value::Null) | None => return Err(FetchError::NotFound),
        Some(data @ Value::Object(_)) => data,
        Some(_) => return Err(FetchError::Malformed),
    };
    map_record(def, fields, data).map_err(FetchError::Mapping)
}

/// The header that carries the gateway's request id to the department.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C Trace Context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// What the gateway says it is.
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("county-gateway/", env!("CARGO_PKG_VERSION")));
const JSON: HeaderValue = HeaderValue::from_static("application/json");

type HttpsConnector = hyper_rustls::HttpsConnector<TcpConnector<UpstreamResolver>>;

/// A connector to one department system over HTTP/JSON.
#[derive(Debug)]
pub struct HttpConnector {
    def: Arc<ConnectorDef>,
    client: Client<HttpsConnector, Full<Bytes>>,
    envelope: Envelope,
    max_response_bytes: u64,
    /// Each operation's method, URL and body template, prepared once here rather than
    /// per call.
    endpoints: BTreeMap<String, Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    method: Method,
    uri: Uri,
    body: BodyTemplate,
}

impl HttpConnector {
    /// Builds the connector and its HTTP client. Relative paths in the definition's
    /// `tls` section are resolved against `base_dir`, the connector file's directory.
    pub fn new(
        def: Arc<ConnectorDef>,
        base_dir: &Path,
        roots: &FileRoots,
    ) -> Result<HttpConnector, BuildError> {
        let Transport::Http(settings) = &def.transport else {
            return Err(BuildError::Client {
                kind: "HTTP",
                problem: "the definition is not of kind http".into(),
            });
        };
        let tls = client_config(settings.tls.as_ref(), base_dir, roots)?;
        let mut tcp = TcpConnector::new_with_resolver(UpstreamResolver);
        // The scheme is the TLS layer's to check (https) or allow (http).
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(def.timeouts.connect()));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        let endpoints = def
            .operations
            .iter()
            .map(|(name, op)| {
                let problem = |problem: String| BuildError::Operation {
                    operation: name.clone(),
                    problem,
                };
                let OperationCall::Http(request) = &op.call else {
                    return Err(problem("has no `request`".into()));
                };
                let method = Method::from_bytes(request.method.as_bytes())
                    .map_err(|_| problem(format!("`{}` is not an HTTP method", request.method)))?;
                let url = endpoint_url(&settings.base_url, &request.path)
                    .map_err(|e| problem(format!("the URL is not valid: {e}")))?;
                let uri = Uri::try_from(url.as_str())
                    .map_err(|e| problem(format!("the URL is not valid: {e}")))?;
                let body = BodyTemplate::new(&request.body)
                    .map_err(|e| problem(format!("the body cannot be written as JSON: {e}")))?;
                Ok((name.clone(), Endpoint { method, uri, body }))
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
        let limit = context.time_limit(&self.def.timeouts)?;
        let body = endpoint.body.fill(key).map_err(|_| FetchError::Malformed)?;
        let mut request = Request::builder()
            .method(endpoint.method.clone())
            .uri(endpoint.uri.clone())
            .header(CONTENT_TYPE, JSON)
            .header(USER_AGENT, AGENT);
        for (name, value) in [
            (REQUEST_ID, context.request_id.as_deref()),
            (TRACEPARENT, context.trace_context.as_deref()),
        ] {
            // A value that cannot be a header is left out: it only helps correlate logs.
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| FetchError::Unavailable)?;
        let started = Instant::now();
        let bytes = tokio::time::timeout(limit, self.exchange(request))
            .await
            .map_err(|_| FetchError::Timeout)??;
        let latency = started.elapsed();
        let record =
            read_answer(&self.def, &self.envelope, &op.record, &bytes).inspect_err(|e| {
                if *e == FetchError::Rejected {
                    tracing::debug!(
                        connector = %self.def.id,
                        operation,
                        request_id = context.request_id.as_deref(),
                        "department envelope reports an error"
                    );
                }
            })?;
        Ok(Fetched { record, latency })
    }

    /// Sends `request` and reads the whole answer of a success, within the response
    /// size limit.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Bytes, FetchError> {
        let response = self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                tracing::debug!(connector = %self.def.id, "the department cannot be reached");
            }
            FetchError::Unavailable
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let limit = self.max_response_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(FetchError::Oversize { limit });
        }
        let body = Limited::new(
            response.into_body(),
            usize::try_from(limit).unwrap_or(usize::MAX),
        );
        match body.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(FetchError::Oversize { limit })
            }
            Err(_) => Err(FetchError::Malformed),
        }
    }
}

/// An operation's request body with its subject left open: the JSON text around each
/// place the template says `$subject`, written once when the connector is built.
#[derive(Debug)]
pub(super) struct BodyTemplate {
    /// The text before, between and after the subject's places (one more than them).
    parts: Vec<String>,
}

impl BodyTemplate {
    pub(super) fn new(template: &Value) -> Result<BodyTemplate, serde_json::Error> {
        // A stand-in for the subject that the template's own text does not hold.
        let plain = serde_json::to_string(template)?;
        let mut stand_in = String::from("subject");
        while plain.contains(&stand_in) {
            stand_in.push('_');
        }
        let marked = serde_json::to_string(&fill_subject(template, &stand_in))?;
        let quoted = serde_json::to_string(&stand_in)?;
        Ok(BodyTemplate {
            parts: marked.split(&quoted).map(str::to_owned).collect(),
        })
    }

    /// The body for `key`, written as a JSON string wherever the template says so.
    pub(super) fn fill(&self, key: &str) -> Result<Vec<u8>, serde_json::Error> {
        let quoted = serde_json::to_string(key)?;
        Ok(self.parts.join(quoted.as_str()).into_bytes())
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
