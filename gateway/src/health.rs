//! Liveness and readiness. `/healthz` answers 200 while the process runs;
//! `/readyz` answers 200 only when the configuration is loaded and the store can
//! commit a write, and 503 (problem+json) otherwise — load balancers route on it.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::problem::{Problem, ProblemKind};
use crate::server::App;

pub(crate) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub(crate) async fn readyz(State(app): State<App>) -> Response {
    let config = app.config.load();
    match app.store.probe().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "config_version": config.version,
            "connectors": config.connectors.len(),
            "purposes": config.purposes.len(),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness probe: the store is not writable");
            Problem::new(ProblemKind::NotReady, "The store is not writable.").into_response()
        }
    }
}
