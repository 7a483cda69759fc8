//! Test fixtures: key pairs, claims, configurations, hand-built tokens and a JWKS
//! server whose answers, status and request count the test controls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::auth::{AuthConfig, Authenticator, MintClaims, Role, SigningKey};

pub(super) const ISS: &str = "https://idp.county.example";
pub(super) const AUD: &str = "county-gateway";
pub(super) const TOWNSHIP: &str = "330106001";

/// A key pair: the signing key and the public key PEM.
pub(super) struct Pair {
    pub(super) signer: SigningKey,
    pub(super) public_pem: String,
}

pub(super) fn es256(kid: &str) -> Pair {
    let (signer, _private, public_pem) = SigningKey::generate_es256(kid).unwrap();
    Pair { signer, public_pem }
}

pub(super) fn rsa(kid: &str) -> Pair {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let signer = SigningKey::from_pem(
        pair.serialize_pem().as_bytes(),
        Algorithm::RS256,
        Some(kid.to_owned()),
    )
    .unwrap();
    Pair {
        signer,
        public_pem: pair.public_key_pem(),
    }
}

pub(super) fn ed25519(kid: &str) -> Pair {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let signer = SigningKey::from_pem(
        pair.serialize_pem().as_bytes(),
        Algorithm::EdDSA,
        Some(kid.to_owned()),
    )
    .unwrap();
    Pair {
        signer,
        public_pem: pair.public_key_pem(),
    }
}

/// A clerk of township 330106001, valid for five minutes.
pub(super) fn clerk() -> MintClaims {
    MintClaims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: "clerk-001".to_owned(),
        roles: vec![Role::Clerk],
        township: Some(TOWNSHIP.to_owned()),
        villages: Vec::new(),
        department: None,
        app: None,
        ttl_s: 300,
        not_before_s: None,
    }
}

/// Raw claims a valid clerk token carries, for hand-built tokens.
pub(super) fn clerk_json() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": ISS, "aud": AUD, "sub": "clerk-001", "roles": ["clerk"],
        "township": TOWNSHIP, "iat": now, "nbf": now, "exp": now + 300,
    })
}

/// A token from raw header and claims, with the given base64url signature.
pub(super) fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

pub(super) fn config(yaml: &str) -> AuthConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// Writes files into `dir`.
pub(super) fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// An authenticator with the given environment (no process environment is read).
pub(super) async fn build(
    yaml: &str,
    dir: &Path,
    env: &[(&str, &[u8])],
) -> Result<Authenticator, Vec<(String, String)>> {
    let env: HashMap<String, Vec<u8>> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect();
    Authenticator::with_env(&config(yaml), dir, &move |name| env.get(name).cloned()).await
}

/// A JWKS document publishing these keys.
pub(super) fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk().unwrap()).collect::<Vec<_>>() })
}

/// A JWKS endpoint on 127.0.0.1 whose document and status the test sets, counting
/// the requests it answers.
pub(super) struct JwksServer {
    pub(super) addr: SocketAddr,
    state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct ServerState {
    doc: ArcSwap<Value>,
    status: AtomicU16,
    hits: watch::Sender<u64>,
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> axum::response::Response {
    let status = http::StatusCode::from_u16(state.status.load(Ordering::SeqCst))
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = if status.is_success() {
        state.doc.load().to_string()
    } else {
        "{\"error\":\"down\"}".to_owned()
    };
    state.hits.send_modify(|h| *h += 1);
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

impl JwksServer {
    pub(super) async fn start(doc: Value) -> JwksServer {
        install_crypto();
        let state = Arc::new(ServerState {
            doc: ArcSwap::from_pointee(doc),
            status: AtomicU16::new(200),
            hits: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        JwksServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub(super) fn publish(&self, doc: Value) {
        self.state.doc.store(Arc::new(doc));
    }

    pub(super) fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub(super) fn hits(&self) -> u64 {
        *self.state.hits.borrow()
    }

    pub(super) fn watch_hits(&self) -> watch::Receiver<u64> {
        self.state.hits.subscribe()
    }

    /// Stops listening and closes open connections; returns once it has.
    pub(super) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// The configuration of one issuer served by a JWKS URL.
pub(super) fn jwks_url_yaml(url: &str, refresh_s: u64, min_refetch_s: u64) -> String {
    format!(
        r#"
audience: {AUD}
issuers:
  - issuer: {ISS}
    algorithms: [ES256]
    keys:
      jwks_url: {{ url: "{url}", refresh_s: {refresh_s}, min_refetch_s: {min_refetch_s} }}
"#
    )
}

pub(super) fn install_crypto() {
    connectors::install_crypto_provider();
}
