//! What a handler takes from a request besides its body: the request id, the peer's
//! address and the authenticated caller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::unauthenticated;
use super::problem::{Problem, ProblemKind};
use crate::app::App;

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
        let span = tracing::info_span!("auth", outcome = tracing::field::Empty);
        let caller = app
            .auth
            .authenticate(&parts.headers, &parts.uri)
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            if caller.is_ok() {
                "ok"
            } else {
                "unauthenticated"
            },
        );
        caller
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
