//! The data catalog (共享目录) as JSON, `GET /v1/catalog`: what [`crate::catalog`]
//! describes — every connector's fields with title, `pii` kind, sharing type, default
//! mask and terms, the purposes, the code tables (`code_tables`; a coded field names
//! its table in `code_table`). Never data: any authenticated caller may read it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Authenticated;
use crate::app::App;
use crate::catalog::Catalog;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(catalog))
}

/// The catalog.
#[utoipa::path(
    get,
    path = "/v1/catalog",
    tag = "catalog",
    operation_id = "catalog",
    summary = "What each connector can share, and on what terms",
    description = "Every connector in force with its department, operations and fields — each \
        field's title, kind of personal data (`pii`), sharing type, default mask and, for \
        conditional fields, the legal basis and method — a disabled connector by its id only; \
        the purposes; and every code table with its labels. Never data: any authenticated \
        caller may read it.",
    security(("bearer" = [])),
    responses((status = 200, description = "The catalog.", body = Catalog), CatalogProblems),
)]
async fn catalog(State(app): State<App>, Authenticated(_caller): Authenticated) -> Response {
    axum::Json(crate::catalog::describe(&app.config.load_full())).into_response()
}

crate::problems!(CatalogProblems = [Unauthenticated]);
