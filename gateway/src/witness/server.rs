//! The witness's HTTP API, served only over TLS with client certificates
//! ([`crate::tls::serve_tls`]); a client whose certificate is not on the allow-list
//! gets 403 for everything.
//!
//! - `POST /v1/checkpoints` — a body (`text/plain`, at most 1 MiB and 1,000
//!   checkpoints) of v2 checkpoints of one log, oldest first: a chain's checkpoints,
//!   or county checkpoints (a log of many chains on PostgreSQL; see
//!   [`entry`](super::entry) for what a log is). Each must carry a valid
//!   signature of its key, which the client must be allowed to submit for (else 400
//!   or 403, and nothing is kept); then each is kept if it extends the log's head
//!   ([`WitnessStore::submit`]). 200 when all were kept or already held; 409 at the
//!   first that does not extend the head (those before it are kept). The answer is
//!   JSON: `accepted`, `already_held`, `head` (`seq`, `hash`) and, on 409, `refused`
//!   (`seq`, `reason`).
//! - `GET /v1/logs/{key}/head` — the newest checkpoint held for the log whose key is
//!   `{key}` (64 hex digits of the raw public key), as text; 404 when none.
//! - `GET /v1/logs/{key}/checkpoints?after=SEQ` — the checkpoints held after `SEQ`
//!   (default 0), oldest first, at most 1,000, one after the other as text. A page
//!   of fewer than 1,000 is the last.
//! - `GET /v1/logs/{key}/county/head` and `GET /v1/logs/{key}/county/checkpoints` —
//!   the same for the county checkpoints signed with `{key}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::config::AllowedClient;
use super::entry::{Entry, EntryError};
use super::store::{Submission, WitnessStore};
use crate::audit::checkpoint::{WitnessedKind, split_texts};
use crate::tls::ClientCert;

/// The largest submission body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most checkpoints in one submission, and on one page served.
pub const PAGE: usize = 1000;
/// The longest checkpoint text accepted.
const MAX_CHECKPOINT_BYTES: usize = 4096;

/// What the handlers share.
#[derive(Debug)]
pub struct WitnessState {
    pub store: WitnessStore,
    pub clients: Vec<AllowedClient>,
}

/// The witness's routes.
pub fn router(state: Arc<WitnessState>) -> Router {
    Router::new()
        .route("/v1/checkpoints", post(submit))
        .route("/v1/logs/{key}/head", get(chain_head))
        .route("/v1/logs/{key}/checkpoints", get(chain_checkpoints))
        .route("/v1/logs/{key}/county/head", get(county_head))
        .route("/v1/logs/{key}/county/checkpoints", get(county_checkpoints))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A problem answer (RFC 9457); `detail` is written by the witness, never copied
/// from a request.
#[derive(Debug, Clone, Copy)]
struct Problem {
    status: StatusCode,
    slug: &'static str,
    detail: &'static str,
}

fn problem(status: StatusCode, slug: &'static str, detail: &'static str) -> Problem {
    Problem {
        status,
        slug,
        detail,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("/problems/witness-{}", self.slug),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// The allow-listed client of this connection.
fn client<'a>(
    state: &'a WitnessState,
    cert: Option<&ClientCert>,
) -> Result<&'a AllowedClient, Problem> {
    let refused = || {
        problem(
            StatusCode::FORBIDDEN,
            "client-not-allowed",
            "This client certificate is not on the witness's allow-list.",
        )
    };
    let cert = cert.ok_or_else(refused)?;
    state
        .clients
        .iter()
        .find(|client| client.certificate_sha256 == cert.sha256)
        .ok_or_else(|| {
            tracing::warn!(fingerprint = %cert.sha256, "a client not on the allow-list was refused");
            refused()
        })
}

fn log_key(hex_key: &str) -> Result<Vec<u8>, Problem> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut key).map_err(|_| {
        problem(
            StatusCode::NOT_FOUND,
            "unknown-log",
            "A log is named by 64 hex digits of its checkpoint key.",
        )
    })?;
    Ok(key.to_vec())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, super::store::StoreError> + Send + 'static,
) -> Result<T, Problem> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::error!(%error, "the witness store failed");
            Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The witness cannot read or write its store right now.",
            ))
        }
        Err(_) => Err(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The witness failed.",
        )),
    }
}

async fn submit(
    State(state): State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    body: String,
) -> Response {
    let client = match client(&state, cert.as_deref()) {
        Ok(client) => client.clone(),
        Err(problem) => return problem.into_response(),
    };
    let (kind, key, submissions) = match read_submission(&client, &body) {
        Ok(read) => read,
        Err(problem) => return problem.into_response(),
    };
    let name = client.name.clone();
    let store_state = state.clone();
    let outcome =
        match blocking(move || store_state.store.submit(kind, &key, &submissions, &name)).await {
            Ok(outcome) => outcome,
            Err(problem) => return problem.into_response(),
        };
    let head = outcome
        .head
        .as_ref()
        .map(|(seq, hash)| json!({"seq": seq, "hash": hash}));
    let mut answer = json!({
        "accepted": outcome.accepted,
        "already_held": outcome.already_held,
        "head": head,
    });
    let status = match &outcome.refused {
        None => {
            tracing::info!(
                client = %client.name,
                accepted = outcome.accepted,
                head = outcome.head.as_ref().map_or(0, |(seq, _)| *seq),
                "checkpoints witnessed"
            );
            StatusCode::OK
        }
        Some((seq, reason)) => {
            tracing::warn!(client = %client.name, seq, reason = %reason, "a checkpoint was refused");
            answer["refused"] = json!({"seq": seq, "reason": reason});
            answer["type"] = json!("/problems/witness-does-not-extend");
            StatusCode::CONFLICT
        }
    };
    (status, axum::Json(answer)).into_response()
}

/// The checkpoints of a submission, all of one log the client may submit for, each
/// signed by its key.
fn read_submission(
    client: &AllowedClient,
    body: &str,
) -> Result<(WitnessedKind, Vec<u8>, Vec<Submission>), Problem> {
    let bad = |detail: &'static str| problem(StatusCode::BAD_REQUEST, "invalid-checkpoint", detail);
    let texts = split_texts(body);
    if texts.is_empty() {
        return Err(bad("The body holds no checkpoint."));
    }
    if texts.len() > PAGE {
        return Err(bad("At most 1,000 checkpoints are taken at once."));
    }
    let mut log: Option<(WitnessedKind, Vec<u8>)> = None;
    let mut submissions = Vec::with_capacity(texts.len());
    for text in texts {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(bad("A checkpoint text is longer than any checkpoint."));
        }
        let entry = Entry::parse(text).map_err(|e| match e {
            EntryError::Malformed => bad("A checkpoint is not in the v2 checkpoint format."),
            EntryError::TooOld => {
                bad("Only v2 checkpoints (naming their previous checkpoint) are kept.")
            }
            EntryError::Signature => bad("A checkpoint's signature is not valid for its key."),
        })?;
        match &log {
            None => log = Some((entry.kind, entry.key.clone())),
            Some((kind, key)) if *kind != entry.kind || *key != entry.key => {
                return Err(bad("The checkpoints of one submission must be of one log."));
            }
            Some(_) => {}
        }
        if !client.keys.contains(&entry.key) {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "key-not-allowed",
                "This client may not submit checkpoints for this key.",
            ));
        }
        submissions.push(Submission {
            text: text.to_owned(),
            entry,
        });
    }
    let (kind, key) = log.unwrap_or((WitnessedKind::Chain, Vec::new()));
    Ok((kind, key, submissions))
}

async fn chain_head(
    state: State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    key: Path<String>,
) -> Response {
    head(WitnessedKind::Chain, state, cert, key).await
}

async fn county_head(
    state: State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    key: Path<String>,
) -> Response {
    head(WitnessedKind::County, state, cert, key).await
}

async fn chain_checkpoints(
    state: State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    key: Path<String>,
    query: Query<HashMap<String, String>>,
) -> Response {
    checkpoints(WitnessedKind::Chain, state, cert, key, query).await
}

async fn county_checkpoints(
    state: State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    key: Path<String>,
    query: Query<HashMap<String, String>>,
) -> Response {
    checkpoints(WitnessedKind::County, state, cert, key, query).await
}

async fn head(
    kind: WitnessedKind,
    State(state): State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    Path(hex_key): Path<String>,
) -> Response {
    if let Err(problem) = client(&state, cert.as_deref()) {
        return problem.into_response();
    }
    let key = match log_key(&hex_key) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    let store_state = state.clone();
    match blocking(move || store_state.store.head(kind, &key)).await {
        Ok(Some(text)) => text_response(text),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "unknown-log",
            "The witness holds no checkpoint of this log.",
        )
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn checkpoints(
    kind: WitnessedKind,
    State(state): State<Arc<WitnessState>>,
    cert: Option<Extension<ClientCert>>,
    Path(hex_key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(problem) = client(&state, cert.as_deref()) {
        return problem.into_response();
    }
    let key = match log_key(&hex_key) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    let after = match query.get("after").map(|after| after.parse::<u64>()) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "`after` is a sequence number.",
            )
            .into_response();
        }
    };
    let store_state = state.clone();
    match blocking(move || store_state.store.after(kind, &key, after, PAGE)).await {
        Ok(texts) => text_response(texts.concat()),
        Err(problem) => problem.into_response(),
    }
}

fn text_response(text: String) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
