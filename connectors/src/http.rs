//! The HTTP/JSON connector kind: calls a department system with reqwest over rustls
//! (no OpenSSL), with pooled connections, connect and total timeouts and a response
//! size limit, unwraps the department's envelope and applies the declarative mapping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::definition::{ConnectorDef, SUBJECT_PLACEHOLDER};
use crate::error::FetchError;
use crate::mapping::map_record;
use crate::{Connector, Fetched};

/// A connector to one department system over HTTP/JSON.
#[derive(Debug)]
pub struct HttpConnector {
    def: Arc<ConnectorDef>,
    client: reqwest::Client,
}

/// Why an HTTP connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("HTTP client: {0}")]
    Client(String),
}

impl HttpConnector {
    pub fn new(def: Arc<ConnectorDef>) -> Result<HttpConnector, BuildError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(def.timeouts.connect())
            .timeout(def.timeouts.total())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("county-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        Ok(HttpConnector { def, client })
    }

    async fn call(&self, operation: &str, key: &str) -> Result<Fetched, FetchError> {
        let op = self
            .def
            .operations
            .get(operation)
            .ok_or(FetchError::UnknownOperation)?;
        let url = format!(
            "{}{}",
            self.def.base_url.trim_end_matches('/'),
            op.request.path
        );
        let method = reqwest::Method::from_bytes(op.request.method.as_bytes())
            .map_err(|_| FetchError::UnknownOperation)?;
        let body = fill_subject(&op.request.body, key);
        let started = Instant::now();
        let mut response = self
            .client
            .request(method, url)
            .json(&body)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let limit = self.def.max_response_bytes;
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
        let envelope = &self.def.envelope;
        let code = answer
            .pointer(&envelope.status)
            .ok_or(FetchError::Malformed)?;
        if envelope.not_found.contains(code) {
            return Err(FetchError::NotFound);
        }
        if !envelope.ok.contains(code) {
            tracing::debug!(connector = %self.def.id, operation, "department envelope reports an error");
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
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(self.call(operation, key))
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

fn fill_subject(template: &Value, key: &str) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subject_fills_every_placeholder_and_nothing_else() {
        let body = json!({"sfzh": "$subject", "ywlx": "query", "list": ["$subject", 1]});
        assert_eq!(
            fill_subject(&body, "K"),
            json!({"sfzh": "K", "ywlx": "query", "list": ["K", 1]})
        );
    }
}
