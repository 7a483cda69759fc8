//! Liveness and readiness. `/healthz` answers 200 while the process runs;
//! `/readyz` answers 200 only when the gateway can answer *and audit*: the
//! configuration is loaded, the audit log's writer runs and its file takes a write
//! (and the privacy officer's reader can read it), the registry can be read and the
//! daily quota counts can be kept. Otherwise it answers 503
//! (problem+json) naming which part is not ready — load balancers route on it. The
//! checks are [`crate::status::readiness`].

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::problem::{Problem, ProblemKind};
use crate::app::App;

pub(crate) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub(crate) async fn readyz(State(app): State<App>) -> Response {
    let config = app.config.load();
    let failed = crate::status::readiness(&app).await;
    if failed.is_empty() {
        Json(json!({
            "status": "ready",
            "config_version": config.version,
            "connectors": config.connectors.len(),
            "purposes": config.purposes.len(),
        }))
        .into_response()
    } else {
        Problem::new(
            ProblemKind::NotReady,
            "The gateway cannot answer and audit right now.",
        )
        .with("not_ready", failed)
        .into_response()
    }
}
