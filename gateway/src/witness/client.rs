//! Talking to a witness: HTTPS with the gateway's client certificate (the rustls
//! configuration of [`connectors::tls::client_config`]), short time limits, answers
//! read up to a bound. Used by the sender (submit, ask the head) and by `gateway
//! audit verify --witness` (read everything held).

use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::entry::{Entry, path_part};
use super::server::{MAX_BODY_BYTES, PAGE};
use crate::audit::checkpoint::WitnessedKind;
use crate::audit::checkpoint::split_texts;
use crate::audit::settings::{WitnessTarget, witness_url};

/// The most bytes read from one answer (a full page of checkpoints fits).
const MAX_ANSWER_BYTES: usize = 2 * MAX_BODY_BYTES;

/// Why talking to a witness failed. Messages never carry what the witness sent
/// beyond its own short refusal reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// Connecting, TLS, a time limit, an answer cut short.
    #[error("the witness cannot be reached: {0}")]
    Unreachable(String),
    /// The witness refused a checkpoint: it does not extend what it holds.
    #[error("the witness refused checkpoint {seq}: {reason}")]
    Refused { seq: u64, reason: String },
    /// Any other answer than the protocol's.
    #[error("the witness answered {0}")]
    Status(u16),
    /// An answer that is not what the protocol says.
    #[error("the witness's answer cannot be read")]
    Malformed,
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Submitted {
    pub accepted: u64,
    pub already_held: u64,
    pub head: Option<WitnessHead>,
}

/// A witness's head of a log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WitnessHead {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Deserialize)]
struct RefusedAnswer {
    refused: RefusedCheckpoint,
}

#[derive(Debug, Deserialize)]
struct RefusedCheckpoint {
    seq: u64,
    reason: String,
}

/// One witness, ready to call.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    pub name: String,
    base: Url,
    http: reqwest::Client,
}

impl WitnessClient {
    /// The client for `target`; its TLS files are relative to `base_dir`.
    pub fn new(target: &WitnessTarget, base_dir: &Path) -> Result<WitnessClient, String> {
        let mut base = witness_url(&target.url)?;
        if !base.path().ends_with('/') {
            // The API's paths go under the URL's own path.
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let tls = connectors::tls::client_config(
            Some(&target.tls),
            base_dir,
            &connectors::files::FileRoots::anywhere(),
        )
        .map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("county-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(WitnessClient {
            name: target.name.clone(),
            base,
            http,
        })
    }

    fn url(&self, path: &str) -> Result<Url, WitnessError> {
        self.base
            .join(path)
            .map_err(|_| WitnessError::Unreachable("the witness URL cannot be joined".into()))
    }

    /// The newest checkpoint the witness holds of the log of `kind` and `key`, if any.
    pub async fn head(
        &self,
        kind: WitnessedKind,
        key: &[u8],
    ) -> Result<Option<String>, WitnessError> {
        let url = self.url(&format!(
            "v1/logs/{}/{}head",
            hex::encode(key),
            path_part(kind)
        ))?;
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        match response.status().as_u16() {
            200 => Ok(Some(read_text(response).await?)),
            404 => Ok(None),
            status => Err(WitnessError::Status(status)),
        }
    }

    /// Sends checkpoints of one log, oldest first.
    pub async fn submit(&self, texts: &[String]) -> Result<Submitted, WitnessError> {
        let url = self.url("v1/checkpoints")?;
        let response = self
            .http
            .post(url)
            .header("content-type", "text/plain; charset=utf-8")
            .body(texts.concat())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = read_text(response).await?;
        match status {
            200 => serde_json::from_str(&text).map_err(|_| WitnessError::Malformed),
            409 => {
                let refused: RefusedAnswer =
                    serde_json::from_str(&text).map_err(|_| WitnessError::Malformed)?;
                // The witness's reason, cut short: it is shown in logs.
                let reason: String = refused.refused.reason.chars().take(200).collect();
                Err(WitnessError::Refused {
                    seq: refused.refused.seq,
                    reason,
                })
            }
            status => Err(WitnessError::Status(status)),
        }
    }

    /// Every checkpoint the witness holds of the log of `kind` and `key`, oldest
    /// first (read page by page, at most `max` of them).
    pub async fn all(
        &self,
        kind: WitnessedKind,
        key: &[u8],
        max: usize,
    ) -> Result<Vec<String>, WitnessError> {
        let mut texts: Vec<String> = Vec::new();
        let mut after = 0u64;
        loop {
            let mut url = self.url(&format!(
                "v1/logs/{}/{}checkpoints",
                hex::encode(key),
                path_part(kind)
            ))?;
            url.query_pairs_mut()
                .append_pair("after", &after.to_string());
            let response = self.http.get(url).send().await.map_err(unreachable)?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(WitnessError::Status(status));
            }
            let page = read_text(response).await?;
            let page: Vec<String> = split_texts(&page).into_iter().map(str::to_owned).collect();
            let full = page.len() >= PAGE;
            let Some(last) = page.last() else {
                break;
            };
            let next = Entry::parse(last).map_err(|_| WitnessError::Malformed)?.seq;
            if next <= after {
                return Err(WitnessError::Malformed);
            }
            after = next;
            texts.extend(page);
            if !full || texts.len() >= max {
                break;
            }
        }
        Ok(texts)
    }
}

fn unreachable(error: reqwest::Error) -> WitnessError {
    // Without the URL (it is the operator's, but keep messages short) and the chain.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    WitnessError::Unreachable(kind.into())
}

async fn read_text(mut response: reqwest::Response) -> Result<String, WitnessError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(WitnessError::Malformed);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(WitnessError::Malformed);
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| WitnessError::Malformed)
}
