//! Tests of the `tls` module against real sockets: [`ServerTlsConfig::load`] and its
//! problem reports, [`serve_tls`] with HTTP/1.1, HTTP/2, mTLS and graceful shutdown,
//! and [`ClientCert`]. Certificates come from the shared test PKI (`testkit::pki`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ConnectInfo;
use axum::routing::get;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use testkit::pki::{Ca, DnType, Leaf, Usage, rustls_client_config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use super::*;

/// Certificates for one test, written to a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: Ca,
    client_ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        connectors::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("County Server CA");
        let client_ca = Ca::new("Townships CA");
        let server = server_ca.leaf(
            &["localhost", "127.0.0.1"],
            "gateway.county.test",
            Usage::Server,
        );
        let pki = Pki {
            dir,
            server_ca,
            client_ca,
        };
        pki.write("server.pem", &server.cert_pem);
        pki.write("server.key", &server.key_pem);
        pki.write("townships-ca.pem", pki.client_ca.pem());
        pki
    }

    fn config(&self, client_ca: bool, require: bool) -> ServerTlsConfig {
        ServerTlsConfig {
            cert: "server.pem".into(),
            key: "server.key".into(),
            client_ca: client_ca.then(|| "townships-ca.pem".into()),
            require_client_cert: require,
        }
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    /// A client trusting the server CA, optionally presenting a certificate.
    fn client(&self, identity: Option<&Leaf>, alpn: &[&str]) -> reqwest::Client {
        let config = rustls_client_config(&self.server_ca, identity, alpn);
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
            .unwrap()
    }
}

async fn whoami(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    cert: Option<Extension<ClientCert>>,
) -> String {
    let subject = cert.map_or_else(|| "anonymous".to_owned(), |Extension(c)| c.subject);
    format!("{subject} from {}", peer.ip())
}

/// A running server and the means to stop it.
struct Running {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(config: Arc<ServerConfig>, router: axum::Router) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_tls(listener, router, config, async move {
            let _ = stopped.await;
        }));
        Running {
            url: format!("https://localhost:{port}"),
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("serve_tls did not finish after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn router() -> axum::Router {
    axum::Router::new().route("/whoami", get(whoami))
}

#[tokio::test]
async fn serves_http1_and_http2_over_tls() {
    let pki = Pki::new();
    let config = pki.config(false, false).load(pki.dir.path()).unwrap();
    let server = Running::start(config, router()).await;
    let url = format!("{}/whoami", server.url);

    let h2 = pki.client(None, &["h2", "http/1.1"]);
    let response = h2.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "anonymous from 127.0.0.1");

    let h1 = pki.client(None, &["http/1.1"]);
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);

    // A client that does not trust the county CA refuses the server.
    let stranger = reqwest::Client::builder().build().unwrap();
    assert!(stranger.get(&url).send().await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn mtls_admits_only_clients_of_the_township_ca() {
    let pki = Pki::new();
    let config = pki.config(true, true).load(pki.dir.path()).unwrap();
    let server = Running::start(config, router()).await;
    let url = format!("{}/whoami", server.url);

    let no_cert = pki.client(None, &["h2", "http/1.1"]);
    assert!(no_cert.get(&url).send().await.is_err());

    let rogue = Ca::new("Rogue CA").leaf(&[], "sanhe-app", Usage::Client);
    let wrong_ca = pki.client(Some(&rogue), &["h2", "http/1.1"]);
    assert!(wrong_ca.get(&url).send().await.is_err());

    let identity = pki
        .client_ca
        .leaf_builder(&[], Usage::Client)
        .subject(&[
            (DnType::OrganizationName, "三河镇人民政府"),
            (DnType::CommonName, "sanhe-app, desk 2"),
        ])
        .sign();
    for alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
        let township = pki.client(Some(&identity), alpn);
        let response = township.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.text().await.unwrap(),
            "CN=sanhe-app\\, desk 2,O=三河镇人民政府 from 127.0.0.1"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn client_ca_without_requirement_serves_both() {
    let pki = Pki::new();
    let config = pki.config(true, false).load(pki.dir.path()).unwrap();
    let server = Running::start(config, router()).await;
    let url = format!("{}/whoami", server.url);

    let anonymous = pki.client(None, &["h2"]);
    let text = anonymous
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "anonymous from 127.0.0.1");

    let identity = pki.client_ca.leaf(&[], "app", Usage::Client);
    let township = pki.client(Some(&identity), &["h2"]);
    let text = township
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "CN=app from 127.0.0.1");

    let rogue = Ca::new("Rogue CA").leaf(&[], "app", Usage::Client);
    let wrong_ca = pki.client(Some(&rogue), &["h2"]);
    assert!(wrong_ca.get(&url).send().await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn the_fingerprint_is_the_sha256_of_the_leaf() {
    let pki = Pki::new();
    let leaf = pki.client_ca.leaf(&[], "app", Usage::Client);
    let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    let client = ClientCert::from_der(&der);
    assert_eq!(client.subject, "CN=app");
    assert_eq!(client.sha256, hex::encode(Sha256::digest(der.as_ref())));
    assert_eq!(client.sha256.len(), 64);
}

#[tokio::test]
async fn a_failed_handshake_does_not_stop_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = Pki::new();
    let config = pki.config(false, false).load(pki.dir.path()).unwrap();
    let server = Running::start(config, router()).await;
    let addr = server.url.trim_start_matches("https://").to_owned();

    // Plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink).await;

    let client = pki.client(None, &["h2"]);
    let response = client
        .get(format!("{}/whoami", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let pki = Pki::new();
    let config = pki.config(false, false).load(pki.dir.path()).unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let router = axum::Router::new().route(
        "/slow",
        get({
            let (entered, release) = (entered.clone(), release.clone());
            move || async move {
                entered.notify_one();
                release.notified().await;
                "done"
            }
        }),
    );
    let mut server = Running::start(config, router).await;
    let url = server.url.clone();
    let client = pki.client(None, &["h2", "http/1.1"]);
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}/slow");
        async move { client.get(url).send().await?.text().await }
    });
    entered.notified().await;

    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    // The listener closes: new connections are refused.
    let addr = url.trim_start_matches("https://").to_owned();
    let mut refused = false;
    for _ in 0..1000 {
        if TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the listener still accepts after shutdown");

    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), "done");
    server.stop().await;
}

#[test]
fn load_reports_every_problem_at_once() {
    let pki = Pki::new();
    let config = ServerTlsConfig {
        cert: "missing.pem".into(),
        key: "missing.key".into(),
        client_ca: None,
        require_client_cert: true,
    };
    let problems = config.load(pki.dir.path()).unwrap_err();
    let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["tls.cert", "tls.key", "tls.require_client_cert"]);
    assert!(problems[0].1.contains("missing.pem"), "{problems:?}");

    // A key from another certificate, a CA file that holds no certificate.
    let other = pki.server_ca.leaf(&["localhost"], "x", Usage::Server);
    pki.write("other.key", &other.key_pem);
    pki.write("not-a-ca.pem", "hello\n");
    let config = ServerTlsConfig {
        cert: "server.pem".into(),
        key: "other.key".into(),
        client_ca: Some("not-a-ca.pem".into()),
        require_client_cert: true,
    };
    let problems = config.load(pki.dir.path()).unwrap_err();
    let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["tls.key", "tls.client_ca"], "{problems:?}");
    assert!(problems[0].1.contains("does not belong"), "{problems:?}");

    // Files that are not what they claim to be; no key material in any message.
    let key_pem = std::fs::read_to_string(pki.dir.path().join("server.key")).unwrap();
    pki.write("swapped.pem", &key_pem);
    pki.write("broken.key", "-----BEGIN PRIVATE KEY-----\nnot base64!\n");
    let config = ServerTlsConfig {
        cert: "swapped.pem".into(),
        key: "broken.key".into(),
        client_ca: None,
        require_client_cert: false,
    };
    let problems = config.load(pki.dir.path()).unwrap_err();
    let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["tls.cert", "tls.key"], "{problems:?}");
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for (_, message) in &problems {
        assert!(!message.contains(&key_body[..16]), "{message}");
        assert!(!message.contains("not base64"), "{message}");
    }

    // Well-formed PEM around something that is no certificate: one problem.
    pki.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let config = ServerTlsConfig {
        cert: "junk.pem".into(),
        key: "server.key".into(),
        client_ca: None,
        require_client_cert: false,
    };
    let problems = config.load(pki.dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "tls.cert");
}

#[test]
fn an_expired_certificate_is_a_problem() {
    let pki = Pki::new();
    let old = pki
        .server_ca
        .leaf_builder(&["localhost"], Usage::Server)
        .valid_between((2000, 1, 1), (2001, 1, 1))
        .sign();
    pki.write("old.pem", &old.cert_pem);
    pki.write("old.key", &old.key_pem);
    let config = ServerTlsConfig {
        cert: "old.pem".into(),
        key: "old.key".into(),
        client_ca: None,
        require_client_cert: false,
    };
    let problems = config.load(pki.dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "tls.cert");
    assert!(
        problems[0].1.contains("expired at 2001-01-01T00:00:00Z"),
        "{problems:?}"
    );
}

#[test]
fn the_section_parses_with_defaults_and_rejects_unknown_keys() {
    let config: ServerTlsConfig =
        serde_yaml_ng::from_str("{ cert: server.pem, key: server.key }").unwrap();
    assert_eq!(config.client_ca, None);
    assert!(!config.require_client_cert);
    assert!(
        serde_yaml_ng::from_str::<ServerTlsConfig>("{ cert: a, key: b, password: c }").is_err()
    );
}
