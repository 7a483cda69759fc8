//! Fetching an issuer's JWKS over HTTP(S): one client with short timeouts, no
//! redirects and a 1 MiB answer limit, the lock that serialises fetches and
//! remembers the last on-demand refetch (the rate limit shared by all requests), and
//! the background refresh task.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{JwksUrlConfig, check_jwks_url};
use super::issuer::Issuer;

/// Largest accepted JWKS answer.
pub(crate) const MAX_JWKS_BYTES: u64 = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A JWKS URL and how it may be fetched.
#[derive(Debug)]
pub(crate) struct JwksUrl {
    url: reqwest::Url,
    client: reqwest::Client,
    pub(crate) refresh: Duration,
    pub(crate) min_refetch: Duration,
    /// Held during every fetch; holds when the last on-demand refetch started.
    gate: Mutex<Option<Instant>>,
}

impl JwksUrl {
    pub(crate) fn new(config: &JwksUrlConfig) -> Result<JwksUrl, String> {
        let url = check_jwks_url(&config.url)?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("county-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(JwksUrl {
            url,
            client,
            refresh: Duration::from_secs(config.refresh_s),
            min_refetch: Duration::from_secs(config.min_refetch_s),
            gate: Mutex::new(None),
        })
    }

    /// Waits for any fetch in progress, then holds off others.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.gate.lock().await
    }

    /// Whether an on-demand refetch is allowed now; if so, records it. Called with
    /// the guard from [`JwksUrl::lock`].
    pub(crate) fn take_refetch_slot(&self, last: &mut Option<Instant>) -> bool {
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.min_refetch) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The JWKS document, or why it could not be had. Call with the lock held.
    pub(crate) async fn fetch(&self) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP status {}", status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES)
        {
            return Err(format!("answer larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if (body.len() + chunk.len()) as u64 > MAX_JWKS_BYTES {
                return Err(format!("answer larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.without_url().to_string()
    }
}

/// Refreshes an issuer's keys, first after `first`, then every `period`; after a
/// failure it tries again after `retry` (at most `period`). Ends when the issuer is
/// dropped.
pub(crate) fn spawn_refresh(
    issuer: Weak<Issuer>,
    first: Duration,
    period: Duration,
    retry: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = first;
        loop {
            tokio::time::sleep(wait).await;
            let Some(issuer) = issuer.upgrade() else {
                return;
            };
            wait = match issuer.refresh().await {
                Ok(_) => period,
                Err(_) => retry.min(period),
            };
        }
    })
}
