//! Misbehaviour switches for the simulated department systems, changeable at run time.
//!
//! This module owns the [`Faults`] settings, the shared [`FaultHandle`] a server reads
//! them from, the [`Rendezvous`] tests make several servers' answers wait at, and the `GET`/`PUT /__sim/faults` control endpoints. How a fault changes
//! a response is in `respond.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// How a simulated system misbehaves. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every answer.
    pub latency_ms: u64,
    /// Share of requests (0.0..=1.0) answered with HTTP 500, spread evenly and
    /// deterministically: request n fails iff floor(n·rate) > floor((n−1)·rate).
    pub error_rate: f64,
    /// Answer HTTP 200 with a truncated JSON body.
    pub malformed_json: bool,
    /// Answer with one value that breaks the department's record schema.
    pub schema_violation: bool,
    /// Add undeclared internal fields to the record and its list items.
    pub extra_fields: bool,
    /// Pad a found record so the body is at least this many bytes (0 = off).
    pub oversized_bytes: u64,
    /// Never answer.
    pub hang: bool,
    /// Put markup before every name (`xm`), as a compromised system might: what
    /// shows a department's values must show them as text.
    pub markup_in_names: bool,
}

/// Why a [`Faults`] value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FaultsError {
    /// `error_rate` is not a number between 0 and 1.
    #[error("error_rate must be between 0.0 and 1.0")]
    ErrorRate,
}

impl Faults {
    /// Checks the values a request body could get wrong.
    pub fn validate(&self) -> Result<(), FaultsError> {
        if (0.0..=1.0).contains(&self.error_rate) {
            Ok(())
        } else {
            Err(FaultsError::ErrorRate)
        }
    }
}

/// The live faults of one server, shared by its handlers and whoever controls it.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    current: Arc<ArcSwap<Faults>>,
    /// Data requests counted since the faults were last set (for `error_rate`).
    requests: Arc<AtomicU64>,
    /// Data requests received since the server started (never reset).
    received: Arc<AtomicU64>,
    /// Where this server's answers wait for other servers' requests, if anywhere.
    rendezvous: Arc<ArcSwapOption<Rendezvous>>,
    /// The last `X-Request-Id` a caller sent.
    last_request_id: Arc<ArcSwapOption<String>>,
    /// The last W3C `traceparent` a caller sent (where a department's own tracing
    /// would join the caller's trace).
    last_traceparent: Arc<ArcSwapOption<String>>,
}

/// A meeting point for several servers' first requests: each holds its answer until
/// `expected` requests have arrived across all of them, then every one answers (and
/// later requests pass straight on). Tests use it to prove that a caller asks
/// several departments at once: asked one after another, the first never answers.
#[derive(Debug)]
pub struct Rendezvous {
    expected: u64,
    arrived: AtomicU64,
    all_here: tokio::sync::watch::Sender<bool>,
}

impl Rendezvous {
    /// A meeting of `expected` requests.
    pub fn new(expected: u64) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            expected,
            arrived: AtomicU64::new(0),
            all_here: tokio::sync::watch::Sender::new(expected == 0),
        })
    }

    /// Requests that have arrived so far.
    pub fn arrived(&self) -> u64 {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Arrives, and returns once everyone expected has.
    pub(crate) async fn meet(&self) {
        let mut here = self.all_here.subscribe();
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 >= self.expected {
            self.all_here.send_replace(true);
        }
        let _ = here.wait_for(|all| *all).await;
    }
}

impl FaultHandle {
    /// A handle starting with these faults.
    pub fn new(faults: Faults) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(faults)),
            requests: Arc::new(AtomicU64::new(0)),
            received: Arc::new(AtomicU64::new(0)),
            rendezvous: Arc::new(ArcSwapOption::empty()),
            last_request_id: Arc::new(ArcSwapOption::empty()),
            last_traceparent: Arc::new(ArcSwapOption::empty()),
        }
    }

    /// Makes this server's answers wait at `rendezvous` (`None`: answer at once).
    pub fn meet_at(&self, rendezvous: Option<Arc<Rendezvous>>) {
        self.rendezvous.store(rendezvous);
    }

    /// The last `X-Request-Id` a caller sent, if any did.
    pub fn last_request_id(&self) -> Option<String> {
        self.last_request_id
            .load_full()
            .map(|id| String::clone(&id))
    }

    pub(crate) fn saw_request_id(&self, id: &str) {
        self.last_request_id.store(Some(Arc::new(id.to_owned())));
    }

    /// The last `traceparent` a caller sent, if any did.
    pub fn last_traceparent(&self) -> Option<String> {
        self.last_traceparent
            .load_full()
            .map(|value| String::clone(&value))
    }

    pub(crate) fn saw_traceparent(&self, value: &str) {
        self.last_traceparent
            .store(Some(Arc::new(value.to_owned())));
    }

    /// Where this server's answers wait, if anywhere.
    pub(crate) fn rendezvous(&self) -> Option<Arc<Rendezvous>> {
        self.rendezvous.load_full()
    }

    /// Data requests received since the server started, whatever their outcome.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Counts one data request as received.
    pub(crate) fn count_received(&self) {
        self.received.fetch_add(1, Ordering::SeqCst);
    }

    /// The faults now in force.
    pub fn get(&self) -> Faults {
        Faults::clone(&self.current.load())
    }

    /// Replaces the faults; the `error_rate` request count starts again from zero.
    pub fn set(&self, faults: Faults) {
        self.current.store(Arc::new(faults));
        self.requests.store(0, Ordering::SeqCst);
    }

    /// Counts one data request and says whether it must fail under `rate`.
    pub(crate) fn next_fails(&self, rate: f64) -> bool {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        // Exact for the request counts a simulator sees (far below 2^52).
        let (now, before) = ((n as f64 * rate).floor(), ((n - 1) as f64 * rate).floor());
        now > before
    }
}

/// `GET /__sim/faults` and `PUT /__sim/faults` for one server.
pub(crate) fn control_routes(faults: FaultHandle) -> Router {
    Router::new()
        .route("/__sim/faults", get(current).put(replace))
        .with_state(faults)
}

async fn current(State(faults): State<FaultHandle>) -> Response {
    axum::Json(faults.get()).into_response()
}

async fn replace(State(faults): State<FaultHandle>, body: Bytes) -> Response {
    let refused = |message: String| {
        let body = serde_json::json!({ "error": message });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    let new: Faults = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(err) => return refused(format!("invalid faults: {err}")),
    };
    if let Err(err) = new.validate() {
        return refused(err.to_string());
    }
    faults.set(new.clone());
    axum::Json(new).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_spreads_failures_evenly() {
        let handle = FaultHandle::default();
        let half: Vec<bool> = (0..10).map(|_| handle.next_fails(0.5)).collect();
        assert_eq!(half.iter().filter(|&&f| f).count(), 5);
        assert_eq!(half[..2], [false, true]);

        handle.set(Faults::default());
        let tenth = (0..100).filter(|_| handle.next_fails(0.1)).count();
        assert_eq!(tenth, 10);
        handle.set(Faults::default());
        assert!((0..50).all(|_| handle.next_fails(1.0)));
        assert!((0..50).all(|_| !handle.next_fails(0.0)));
    }

    #[test]
    fn faults_parse_strictly() {
        let parsed: Faults = serde_json::from_str(r#"{"latency_ms":20}"#).unwrap();
        assert_eq!(parsed.latency_ms, 20);
        assert!(!parsed.hang);
        assert!(serde_json::from_str::<Faults>(r#"{"latency":20}"#).is_err());
        let too_high = Faults {
            error_rate: 1.5,
            ..Faults::default()
        };
        assert_eq!(too_high.validate(), Err(FaultsError::ErrorRate));
        let nan = Faults {
            error_rate: f64::NAN,
            ..Faults::default()
        };
        assert!(nan.validate().is_err());
    }
}
