//! The HTTP server: shared state, the router, and the request context every route
//! runs in (request id, no query strings, access log without personal data).
//!
//! [`serve`] takes an already bound listener and a shutdown future, so tests bind
//! port 0 and the binary binds what the config or `--listen` says.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::audit::{AuditLog, AuditReader};
use crate::auth::{AuthError, Authenticator};
use crate::config::ActiveConfig;
use crate::limits::{GovernorState, RateLimits};
use crate::live::Live;
use crate::mask::PseudonymKey;
use crate::problem::{Problem, ProblemKind};
use crate::store::Store;
use crate::{health, query};

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct App {
    /// The active configuration; swapped whole, read without locks.
    pub config: Arc<ArcSwap<ActiveConfig>>,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// The key of subject pseudonyms and the `pseudonym` mask.
    pub pseudonym: Arc<PseudonymKey>,
    /// Where every answer is recorded before it is sent.
    pub audit: Arc<dyn AuditLog>,
    /// Where the privacy officer's API reads the log.
    pub audit_reader: Arc<dyn AuditReader>,
    /// The callers' rate limits, grant quotas and departments' capacities.
    pub limits: Arc<RateLimits>,
    /// Where the configuration comes from; changes go through it.
    pub live: Arc<Live>,
    /// How far each witness is behind (none when no witness is configured).
    pub witnesses: Arc<[Arc<crate::witness::sender::WitnessStatus>]>,
}

impl App {
    pub fn new(
        config: ActiveConfig,
        live: Arc<Live>,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        pseudonym: Arc<PseudonymKey>,
        audit: Arc<dyn AuditLog>,
        audit_reader: Arc<dyn AuditReader>,
    ) -> App {
        let limits = Arc::new(RateLimits::new(
            &config.rate_limits,
            Arc::new(GovernorState::new()),
            store.day_counts(),
        ));
        App {
            config: Arc::new(ArcSwap::from_pointee(config)),
            store,
            auth,
            pseudonym,
            audit,
            audit_reader,
            limits,
            live,
            witnesses: Arc::new([]),
        }
    }

    /// The app with the witnesses' statuses shown in `/metrics`.
    pub fn with_witnesses(
        mut self,
        witnesses: Vec<Arc<crate::witness::sender::WitnessStatus>>,
    ) -> App {
        self.witnesses = witnesses.into();
        self
    }

    /// Checks `changes`, records `event`, commits them and puts the configuration
    /// they make in force (see [`Live::change`]).
    pub async fn change(
        &self,
        changes: Vec<crate::registry::Change>,
        event: crate::audit::AuditEvent,
    ) -> Result<crate::live::Changed, crate::live::ChangeError> {
        self.live
            .change(&self.config, &*self.audit, changes, event)
            .await
    }
}

/// The answer when the audit log cannot record a request: 503 and nothing else.
pub(crate) fn audit_unavailable(request_id: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(request_id, error = %error, "the audit log could not record a request; nothing was returned");
    Problem::new(
        ProblemKind::AuditUnavailable,
        "The audit log could not record this request, so nothing was returned.",
    )
    .for_request(request_id)
    .into_response()
}

/// A 401 answer: which check failed, never the token.
pub(crate) fn unauthenticated(error: AuthError, request_id: &str) -> Response {
    let detail = match error.claim() {
        Some(claim) => format!(
            "Send a valid bearer token in the Authorization header: this one lacks the `{claim}` claim."
        ),
        None => "Send a valid bearer token in the Authorization header.".to_owned(),
    };
    let mut problem =
        Problem::new(ProblemKind::Unauthenticated, detail).with("reason", error.described());
    if let Some(claim) = error.claim() {
        problem = problem.with("claim", claim);
    }
    let mut response = problem.for_request(request_id).into_response();
    // RFC 6750 §3.1: a request without credentials gets a bare challenge.
    let challenge = if error == AuthError::Missing {
        "Bearer".to_owned()
    } else {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            error.described()
        )
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The request's id (a UUIDv7), also sent back as `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(|| Problem::new(ProblemKind::Internal, "The request has no context."))
    }
}

/// The caller of a request, authenticated from its bearer token. A request without a
/// valid one is answered 401 (with the reason and a Bearer challenge) before the
/// handler runs.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<crate::auth::Caller>);

impl FromRequestParts<App> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        app.auth
            .authenticate(&parts.headers, &parts.uri)
            .await
            .map(Authenticated)
            .map_err(|e| unauthenticated(e, &request_id))
    }
}

/// The peer's address, when the server knows it (recorded in the audit log).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The gateway's routes. Also starts sweeping the rate limiters' idle buckets (the
/// sweeper ends by itself when the app is dropped). Call inside a Tokio runtime.
pub fn router(app: App) -> Router {
    let max_body = app.config.load().limits.max_request_bytes;
    drop(app.limits.spawn_sweeper());
    drop(Live::spawn_watcher(&app.live, &app.config, &app.audit));
    Router::new()
        .route("/v1/query", post(query::query))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/problems/{slug}", get(problem_doc))
        .merge(crate::privacy::routes())
        .merge(crate::forms::routes())
        .merge(crate::admin::routes())
        .merge(crate::drafts::routes())
        .merge(crate::review::routes())
        .merge(crate::access::routes())
        .merge(crate::catalog::routes())
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(request_context))
        .with_state(app)
}

/// The metrics listener's routes: `/metrics` without a token, nothing else.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::exposition))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_context))
        .with_state(app)
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn request_context(mut request: Request, next: Next) -> Response {
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
    } else if let Err(problem) = crate::lists::check(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    ) {
        // Only listed routes take a query string, and only their parameters.
        problem.for_request(&id).into_response()
    } else {
        request.extensions_mut().insert(RequestId(id.clone()));
        next.run(request).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
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

/// Documents a problem type at its own `type` URI.
async fn problem_doc(Path(slug): Path<String>, RequestId(id): RequestId) -> Response {
    match ProblemKind::from_slug(&slug) {
        Some(kind) => (
            StatusCode::OK,
            axum::Json(json!({
                "type": kind.type_uri(),
                "title": kind.title(),
                "status": kind.status().as_u16(),
                "about": kind.about(),
            })),
        )
            .into_response(),
        None => not_found(RequestId(id)).await,
    }
}
