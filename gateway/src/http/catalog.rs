//! The data catalog (共享目录) as JSON, `GET /v1/catalog`: what [`crate::catalog`]
//! describes — every connector's fields with title, `pii` kind, sharing type, default
//! mask and terms, the purposes, the code tables (`code_tables`; a coded field names
//! its table in `code_table`). Never data: any authenticated caller may read it.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Authenticated;
use crate::app::App;

pub(crate) fn routes() -> Router<App> {
    Router::new().route("/v1/catalog", get(catalog))
}

async fn catalog(State(app): State<App>, Authenticated(_caller): Authenticated) -> Response {
    axum::Json(crate::catalog::describe(&app.config.load_full())).into_response()
}
