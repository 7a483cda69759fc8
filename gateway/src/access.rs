//! Access requests and the grants they become (placeholder; being written).

use axum::Router;

use crate::server::App;

pub(crate) fn routes() -> Router<App> {
    Router::new()
}
