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
use serde::Serialize;

use super::problem::{Problem, ProblemKind};
use crate::app::App;

/// The process runs. (Members in the byte order of their names, as `json!` wrote
/// them.)
#[derive(Serialize, utoipa::ToSchema)]
struct Alive {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// The gateway can answer and audit.
#[derive(Serialize, utoipa::ToSchema)]
struct Ready {
    /// The configuration in force.
    #[schema(example = "5f0c3a9e27d1b844")]
    config_version: String,
    /// Connectors in force.
    connectors: usize,
    /// Purposes in the catalog.
    purposes: usize,
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
}

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "healthz",
    summary = "Liveness",
    description = "200 while the process runs. No token needed.",
    responses((status = 200, description = "The process runs.", body = Alive), HealthProblems),
)]
pub(crate) async fn healthz() -> Response {
    Json(Alive { status: "ok" }).into_response()
}

crate::problems!(HealthProblems = []);

/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "readyz",
    summary = "Readiness: can the gateway answer and audit",
    description = "200 when the configuration is loaded, the audit log takes a write and can \
        be read, the registry can be read and the daily quota counts can be kept; 503 \
        `not-ready` naming what is not (`not_ready`) otherwise. Load balancers route on it. \
        No token needed.",
    responses((status = 200, description = "Ready.", body = Ready), ReadyProblems),
)]
pub(crate) async fn readyz(State(app): State<App>) -> Response {
    let config = app.config.load();
    let failed = crate::status::readiness(&app).await;
    if failed.is_empty() {
        Json(Ready {
            config_version: config.version.clone(),
            connectors: config.connectors.len(),
            purposes: config.purposes.len(),
            status: "ready",
        })
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

crate::problems!(ReadyProblems = [NotReady]);
