//! The HTTP/JSON connector kind: calls a department system with reqwest over rustls
//! (no OpenSSL), with pooled connections, connect and total timeouts and a response
//! size limit, unwraps the department's envelope and applies the declarative mapping.
//! Which roots it trusts and which client certificate it presents come from the
//! definition's `tls` section (see [`crate::tls`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::definition::{ConnectorDef, SUBJECT_PLACEHOLDER};
use crate::error::FetchError;
use crate::files::FileRoots;
use crate::mapping::map_record;
use crate::tls::{TlsError, client_config};
use crate::{Connector, Fetched};

/// A connector to one department system over HTTP/JSON.
#[derive(Debug)]
pub struct HttpConnector {
    def: Arc<ConnectorDef>,
    client: reqwest::Client,
    /// Each operation's method and URL, parsed once here rather than per call.
    endpoints: BTreeMap<String, (reqwest::Method, reqwest::Url)>,
}

/// Why an HTTP connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("TLS settings: {0}")]
    Tls(#[from] TlsError),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("operation `{operation}`: {problem}")]
    Endpoint { operation: String, problem: String },
}

impl HttpConnector {
    /// Builds the connector and its HTTP client. Relative paths in the definition's
    /// `tls` section are resolved against `base_dir`, the connector file's directory.
    pub fn new(
        def: Arc<ConnectorDef>,
        base_dir: &Path,
        roots: &FileRoots,
    ) -> Result<HttpConnector, BuildError> {
        let tls = client_config(def.tls.as_ref(), base_dir, roots)?;
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
            .map_err(|e| BuildError::Client(e.to_string()))?;
        let endpoints = def
            .operations
            .iter()
            .map(|(name, op)| {
                let problem = |problem: String| BuildError::Endpoint {
                    operation: name.clone(),
                    problem,
                };
                let method =
                    reqwest::Method::from_bytes(op.request.method.as_bytes()).map_err(|_| {
                        problem(format!("`{}` is not an HTTP method", op.request.method))
                    })?;
                let url = endpoint_url(&def.base_url, &op.request.path)
                    .map_err(|e| problem(format!("the URL is not valid: {e}")))?;
                Ok((name.clone(), (method, url)))
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(HttpConnector {
            def,
            client,
            endpoints,
        })
    }

    async fn call(&self, operation: &str, key: &str) -> Result<Fetched, FetchError> {
        let (Some(op), Some((method, url))) = (
            self.def.operations.get(operation),
            self.endpoints.get(operation),
        ) else {
            return Err(FetchError::UnknownOperation);
        };
        let body = fill_subject(&op.request.body, key);
        let started = Instant::now();
        let mut response = self
            .client
            .request(method.clone(), url.clone())
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

/// The URL an operation calls: the base URL and the operation's path, parsed (so `.`
/// and `..` segments are resolved). This is the URL the department's upstream
/// allow-list is checked against, exactly as it will be called.
pub fn endpoint_url(base_url: &str, path: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(&format!("{}{}", base_url.trim_end_matches('/'), path))
        .map_err(|e| e.to_string())
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

    mod over_tls {
        use super::*;
        use crate::tls::tests::{Ca, Department, TempDir};
        use std::sync::atomic::Ordering;

        const ANSWER: &str = r#"{"code":0,"data":{"sfzh":"110101199003070012","xm":"张三"}}"#;

        fn connector(port: u16, tls: &str, dir: &TempDir) -> Result<HttpConnector, BuildError> {
            let text = format!(
                r#"
id: psb
title: 公安
department: {{ id: psb, name: 公安局 }}
base_url: https://localhost:{port}
envelope: {{ status: /code, ok: [0], not_found: [404], data: /data }}
operations:
  person_by_id:
    title: 按身份证号查询
    request: {{ path: /person, body: {{ sfzh: "$subject" }} }}
    schema: psb/person.schema.json
    record:
      id_number: {{ from: /sfzh, pii: id_number, sharing: open }}
      name: {{ from: /xm, pii: name, sharing: conditional }}
{tls}
"#
            );
            let def = ConnectorDef::from_yaml(&text).unwrap();
            assert_eq!(def.validate(), vec![]);
            HttpConnector::new(Arc::new(def), &dir.0, &FileRoots::within([&dir.0]))
        }

        struct Setup {
            dir: TempDir,
            department: Department,
        }

        fn setup() -> Setup {
            crate::install_crypto_provider();
            let server_ca = Ca::new("PSB Server CA");
            let client_ca = Ca::new("PSB Client CA");
            let department = Department::start(&server_ca, &client_ca, ANSWER);
            let dir = TempDir::new();
            let (cert, key) = client_ca.leaf(&[], false);
            dir.write("certs/psb-ca.pem", &server_ca.pem);
            dir.write("certs/gateway-psb.pem", &cert);
            dir.write("certs/gateway-psb.key", &key);
            let (rogue_cert, rogue_key) = Ca::new("Rogue CA").leaf(&[], false);
            dir.write("certs/rogue.pem", &rogue_cert);
            dir.write("certs/rogue.key", &rogue_key);
            Setup { dir, department }
        }

        #[tokio::test]
        async fn mtls_with_the_department_ca_fetches_a_record() {
            let Setup { dir, department } = setup();
            let tls = "tls: { ca_bundle: certs/psb-ca.pem, client_cert: certs/gateway-psb.pem, client_key: certs/gateway-psb.key }";
            let connector = connector(department.port, tls, &dir).unwrap();
            let fetched = connector
                .fetch("person_by_id", "110101199003070012")
                .await
                .unwrap();
            assert_eq!(
                fetched.record,
                serde_json::json!({"id_number": "110101199003070012", "name": "张三"})
            );
            assert_eq!(department.served.load(Ordering::SeqCst), 1);
        }

        #[tokio::test]
        async fn without_a_client_certificate_the_department_refuses() {
            let Setup { dir, department } = setup();
            for tls in [
                "tls: { ca_bundle: certs/psb-ca.pem }",
                "tls: { ca_bundle: certs/psb-ca.pem, client_cert: certs/rogue.pem, client_key: certs/rogue.key }",
            ] {
                let connector = connector(department.port, tls, &dir).unwrap();
                let result = connector.fetch("person_by_id", "110101199003070012").await;
                assert_eq!(result, Err(FetchError::Unavailable), "{tls}");
            }
            assert_eq!(department.served.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn the_public_web_roots_do_not_trust_a_department_ca() {
            let Setup { dir, department } = setup();
            for tls in [
                "",
                "tls: { client_cert: certs/gateway-psb.pem, client_key: certs/gateway-psb.key }",
            ] {
                let connector = connector(department.port, tls, &dir).unwrap();
                let result = connector.fetch("person_by_id", "110101199003070012").await;
                assert_eq!(result, Err(FetchError::Unavailable), "{tls:?}");
            }
            assert_eq!(department.served.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn a_missing_file_fails_the_build_naming_it() {
            let Setup { dir, department } = setup();
            let err =
                connector(department.port, "tls: { ca_bundle: certs/nope.pem }", &dir).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("TLS settings: tls.ca_bundle: "), "{text}");
            assert!(text.contains("nope.pem"), "{text}");
        }
    }

    // The definition's own checks refuse such a definition first; a connector built
    // without them still fails at build, naming the operation, not on every call.
    #[test]
    fn an_operation_that_cannot_be_called_fails_the_build_naming_it() {
        let text =
            crate::definition::tests::MINIMAL.replace("http://127.0.0.1:1", "http://exa mple");
        let def = ConnectorDef::from_yaml(&text).unwrap();
        let Err(err) = HttpConnector::new(Arc::new(def), Path::new("."), &FileRoots::anywhere())
        else {
            panic!("an unparseable URL was accepted");
        };
        let message = err.to_string();
        assert!(
            message.starts_with("operation `person_by_id`: the URL is not valid"),
            "{message}"
        );
    }

    #[test]
    fn the_subject_fills_every_placeholder_and_nothing_else() {
        let body = json!({"sfzh": "$subject", "ywlx": "query", "list": ["$subject", 1]});
        assert_eq!(
            fill_subject(&body, "K"),
            json!({"sfzh": "K", "ywlx": "query", "list": ["K", 1]})
        );
    }
}
