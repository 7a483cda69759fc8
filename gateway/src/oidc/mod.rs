//! OpenID Connect sign-in for the web console: the authorization-code flow with
//! PKCE (S256), `state` and `nonce`, against one of the issuers the gateway already
//! trusts for API tokens (`auth.issuers`).
//!
//! This module owns the `console.oidc` configuration ([`ConsoleConfig`],
//! [`OidcConfig`]), the provider's discovery document, the sign-in in progress
//! ([`PendingLogin`], [`Callback`]) and the token request ([`OidcClient`]). It does
//! not own the ID token's verification: that is [`Authenticator::verify_id_token`]
//! — the same issuer keys (PEM, JWKS file or JWKS URL), algorithm allowlist and
//! claim rules as for bearer tokens, with the console's `client_id` as audience — so
//! a person's roles, township and department in the console come from the same
//! claims as in their API calls, and the console never sees more. Nor does it own
//! HTTP routes, cookies or sessions (the console does); it never depends on
//! `crate::http`.
//!
//! # How a front end uses it
//!
//! 1. At start: [`ConsoleConfig::validate`] (done by `config::load`), then
//!    `OidcClient::new(&oidc_config, authenticator.clone(), &config.base_dir).await`.
//! 2. `GET /console/oidc/start`: `let (url, pending) = client.begin();` store
//!    `pending` server-side under `pending.state()` (bounded, dropping entries for
//!    which [`PendingLogin::is_expired`]), and answer `302 Location: url`. Nothing but
//!    the `state` and the PKCE challenge goes into the URL.
//! 3. `GET /console/oidc/callback?code=…&state=…`: `let callback =
//!    Callback::from_query(query)?;` *remove* the pending login stored under
//!    `callback.state()` (unknown state: refuse), then `client.finish(pending,
//!    &callback).await` gives the [`Caller`] to open a session for (bounded by
//!    [`Caller::expires_at`], the ID token's `exp`, or shorter). The callback's query
//!    string carries a one-time code: do not log it.
//!
//! Every [`OidcError`] has a stable [`reason`](OidcError::reason) and carries no
//! code, token or secret; show people a generic "sign-in failed" and log the reason.

mod client;
mod config;
mod discovery;
mod login;

#[cfg(test)]
mod tests;

pub use client::OidcClient;
pub use config::{ClientSecretSource, ConsoleConfig, OidcConfig};
pub use login::{Callback, PENDING_LOGIN_TTL_S, PendingLogin};

use crate::auth::AuthError;
#[cfg(doc)]
use crate::auth::{Authenticator, Caller};

/// Why a sign-in (or the client's start) failed. Carries no code, token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The `console.oidc` settings are not usable (see [`ConsoleConfig::validate`]).
    #[error("the console.oidc settings are not usable: {0}")]
    Config(String),
    /// The client secret could not be read; says which variable or file, never the
    /// value.
    #[error("the OpenID Connect client secret cannot be read: {0}")]
    ClientSecret(String),
    /// The issuer is not one of the authenticator's.
    #[error("the OpenID Connect issuer is not one the gateway trusts for API tokens")]
    UntrustedIssuer,
    /// The discovery document could not be fetched or is unusable.
    #[error("the provider's discovery document is unusable: {0}")]
    Discovery(String),
    /// The discovery document, or the callback's `iss`, names another issuer (or the
    /// callback lacks the `iss` the provider promised).
    #[error("the provider answered as another issuer")]
    IssuerMismatch,
    /// The provider does not offer PKCE with S256.
    #[error("the provider does not support PKCE with S256")]
    NoPkce,
    /// The provider accepts neither `client_secret_basic` nor `client_secret_post`.
    #[error("the provider supports neither client_secret_basic nor client_secret_post")]
    NoClientAuth,
    /// The callback lacks `code` or `state`, repeats one, or carries an unusable one.
    #[error("the sign-in callback is malformed")]
    BadCallback,
    /// The provider sent the browser back with an error (the standard code only, or
    /// `other`): e.g. `access_denied` when the person cancelled.
    #[error("the provider refused the sign-in: {0}")]
    Provider(&'static str),
    /// The callback's `state` is not the pending sign-in's.
    #[error("the sign-in callback's state does not match")]
    WrongState,
    /// The sign-in is older than [`PENDING_LOGIN_TTL_S`].
    #[error("the sign-in took too long")]
    Expired,
    /// The provider could not be reached.
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
    /// The token endpoint refused the code (already used, expired, wrong verifier,
    /// wrong client secret, …): its HTTP status and standard error code.
    #[error("the provider refused the code (HTTP {status}, {error})")]
    CodeRefused { status: u16, error: &'static str },
    /// The token endpoint's answer is unusable.
    #[error("the provider's token answer is unusable: {0}")]
    BadTokenResponse(TokenError),
    /// The ID token was refused by the gateway's authenticator.
    #[error("the ID token was refused: {}", .0.described())]
    IdToken(AuthError),
}

/// What is wrong with a token endpoint's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("unreadable or too large")]
    Unreadable,
    #[error("not JSON")]
    NotJson,
    #[error("no id_token")]
    NoIdToken,
}

impl OidcError {
    /// A stable snake_case code for logs, metrics and problem details.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Config(_) => "config",
            OidcError::ClientSecret(_) => "client_secret",
            OidcError::UntrustedIssuer => "untrusted_issuer",
            OidcError::Discovery(_) => "discovery",
            OidcError::IssuerMismatch => "issuer_mismatch",
            OidcError::NoPkce => "no_pkce",
            OidcError::NoClientAuth => "no_client_auth",
            OidcError::BadCallback => "bad_callback",
            OidcError::Provider(_) => "provider_error",
            OidcError::WrongState => "wrong_state",
            OidcError::Expired => "expired",
            OidcError::Unreachable(_) => "unreachable",
            OidcError::CodeRefused { .. } => "code_refused",
            OidcError::BadTokenResponse(_) => "bad_token_response",
            OidcError::IdToken(_) => "id_token",
        }
    }

    /// The authenticator's refusal, when the ID token was refused.
    pub fn auth_error(&self) -> Option<AuthError> {
        match self {
            OidcError::IdToken(e) => Some(*e),
            _ => None,
        }
    }
}
