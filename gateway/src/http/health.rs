//! Liveness and readiness. `/healthz` answers 200 while the process runs;
//! `/readyz` answers 200 only when the gateway can answer *and audit*: the
//! configuration is loaded, the audit log's writer runs and its file takes a write
//! (and the privacy officer's reader can read it), the registry can be read and the
//! daily quota counts can be kept. Otherwise it answers 503
//! (problem+json) naming which part is not ready — load balancers route on it.

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
    let (audit, reader, registry, day_counts) = tokio::join!(
        app.audit.ready(),
        app.audit_reader.ready(),
        app.live.registry().ready(),
        app.limits.ready()
    );
    let mut failed = Vec::new();
    if let Err(e) = audit {
        tracing::error!(error = %e, "readiness probe: the audit log cannot record");
        failed.push("audit");
    } else if let Err(e) = reader {
        tracing::error!(error = %e, "readiness probe: the audit log cannot be read");
        failed.push("audit");
    }
    if let Err(e) = registry {
        tracing::error!(error = %e, "readiness probe: the registry cannot be read");
        failed.push("registry");
    }
    if let Err(e) = day_counts {
        tracing::error!(error = %e, "readiness probe: the daily quota counts cannot be kept");
        failed.push("day_counts");
    }
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
