//! The HTTP front end: the router, the request context every route runs in (request
//! id, no query strings, access log without personal data, the RED counters of
//! [`crate::traffic`] by route template), and one file of routes
//! per area. It depends on the domain; the domain never depends on it.
//!
//! - [`extract`]: request id, peer, authenticated caller; [`body`]: the one JSON body
//!   reader; [`error`]: domain errors into [`problem`]s into responses;
//! - [`receipt`]: the `Audit-Event` header binding an answer to its audit events;
//! - routes: [`query`] (`/v1/query`), [`verify`] (`/v1/verify`), [`forms`],
//!   [`privacy`], [`admin`], [`drafts`], [`review`], [`access`], [`corrections`],
//!   [`catalog`], [`lists`] (query strings of list routes),
//!   [`health`], [`metrics`].
//!
//! [`serve`] takes an already bound listener and a shutdown future, so tests bind
//! port 0 and the binary binds what the config or `--listen` says. Background tasks
//! (rate-limit sweeper, configuration watcher) are started by
//! [`crate::startup`], not here.

pub mod access;
pub mod admin;
pub(crate) mod body;
pub mod catalog;
pub mod corrections;
pub mod drafts;
pub mod error;
pub mod extract;
pub mod forms;
pub mod health;
pub(crate) mod labels;
pub mod lists;
pub mod metrics;
pub mod openapi;
pub mod privacy;
pub mod problem;
pub mod query;
pub mod verify;
pub mod receipt;
pub(crate) mod request;
pub mod review;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::App;
use error::unauthenticated;
pub use extract::{Authenticated, Peer, RequestId};
pub use problem::{Problem, ProblemKind};

/// The gateway's routes (routes only: [`crate::startup`] starts the background tasks).
pub fn router(app: App) -> Router {
    router_with(app, Router::new())
}

/// The gateway's routes and `pages` (the console's), all in the same request
/// context. `pages` has no fallback of its own at the top level.
pub fn router_with(app: App, pages: Router) -> Router {
    let max_body = app.config.load().limits.max_request_bytes;
    // Every route of the API, exactly as `/openapi.json` documents it.
    openapi::routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app.clone())
        .merge(pages)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(app, request_context))
}

/// The metrics listener's routes: `/metrics` without a token, nothing else.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics::exposition))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app)
}

/// Serves `router` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn request_context(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let method = request.method().clone();
    // Log the route template, never the raw path or query: they could carry data.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let mut response = if let Err(e) = crate::auth::refuse_token_in_query(request.uri()) {
        // A token in a URL is an authentication failure, whatever else the URL says.
        unauthenticated(e, &id)
    } else if let Err(problem) = lists::check(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    ) {
        // Only listed routes take a query string, and only their parameters.
        problem.for_request(&id).into_response()
    } else {
        request.extensions_mut().insert(RequestId(id.clone()));
        // One trace per request, joining the caller's if it sent a `traceparent`.
        let span = tracing::info_span!(
            "request",
            otel.name = %format_args!("{} {route}", crate::traffic::method_name(&method)),
            otel.kind = "server",
            http.request.method = crate::traffic::method_name(&method),
            http.route = %route,
            request_id = %id,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        crate::telemetry::join(&span, request.headers());
        let incoming = crate::telemetry::incoming(request.headers());
        let serving = crate::telemetry::carrying(incoming, next.run(request));
        let response = serving.instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        error::with_request_id(response, &id)
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    app.traffic
        .request(&route, &method, status, started.elapsed());
    tracing::debug!(
        request_id = %id,
        %method,
        route,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "http"
    );
    response
}

async fn not_found(RequestId(id): RequestId) -> Response {
    Problem::new(ProblemKind::NotFound, "Nothing is served at this path.")
        .for_request(&id)
        .into_response()
}

async fn method_not_allowed(RequestId(id): RequestId) -> Response {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        "This path does not accept this method.",
    )
    .for_request(&id)
    .into_response()
}

/// A problem type as documented at its URI. (Members in the byte order of their
/// names, as `json!` wrote them.)
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ProblemType {
    /// What it means and what to do.
    about: &'static str,
    /// The HTTP status it answers with.
    #[schema(example = 400)]
    status: u16,
    #[schema(example = "The ID number is not valid")]
    title: &'static str,
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-id-number")]
    type_uri: String,
}

/// Documents a problem type at its own `type` URI.
#[utoipa::path(
    get,
    path = "/problems/{slug}",
    tag = "service",
    operation_id = "problemType",
    summary = "A problem type's documentation",
    description = "What a problem `type` means: the document at the URI every problem names. \
        No token needed.",
    params(("slug" = String, Path, description = "The type's slug: the `type` URI's last segment.",
        example = "invalid-id-number")),
    responses((status = 200, description = "The problem type.", body = ProblemType), ProblemDocProblems),
)]
async fn problem_doc(Path(slug): Path<String>, RequestId(id): RequestId) -> Response {
    match ProblemKind::from_slug(&slug) {
        Some(kind) => (
            StatusCode::OK,
            axum::Json(ProblemType {
                about: kind.about(),
                status: kind.status().as_u16(),
                title: kind.title(),
                type_uri: kind.type_uri(),
            }),
        )
            .into_response(),
        None => not_found(RequestId(id)).await,
    }
}

crate::problems!(ProblemDocProblems = [NotFound]);
