//! Bearer-JWT authentication: who is calling.
//!
//! A request's token comes only from `Authorization: Bearer …` (`token`); the
//! [`Authenticator`] (`verify`) picks the issuer by the unverified `iss`, refuses
//! any `alg` outside that issuer's allowlist (and `none`) before verifying, selects
//! the key by `kid` (`keys`, `issuer`, refreshed from JWKS URLs by `jwks`),
//! checks the signature, then the claims (`caller`) and yields a [`Caller`].
//! Verified tokens are remembered by digest until they expire (`cache`).
//! [`Authenticator::verify_id_token`] runs the same checks on a console sign-in's
//! OpenID Connect ID token (audience = the console's client, plus its `nonce`).
//! `config` is the `auth:` section; `mint` signs tokens for demos and tests; `ecdsa`
//! keeps ECDSA signatures in their one canonical (low-S) form.
//!
//! Secrets — HS256 secrets, private keys, tokens — never appear in logs, `Debug`
//! output or errors. How an [`AuthError`] becomes an HTTP answer is the server's
//! business: each has a stable [`AuthError::reason`].

mod cache;
mod caller;
mod clock;
mod config;
mod ecdsa;
mod issuer;
mod jwks;
mod keys;
mod mint;
mod token;
mod verify;

#[cfg(test)]
mod tests;

pub use caller::{Caller, MAX_VILLAGES, Role, VillagesProblem, check_villages};
pub use config::{AuthConfig, CacheConfig, IssuerConfig, JwksUrlConfig, KeySource, PemKeyConfig};
pub use mint::{MintClaims, MintError, SigningKey, mint};
pub use verify::Authenticator;

pub(crate) use caller::{ClaimRules, check_claims};
pub(crate) use config::check_jwks_url as check_fetch_url;
pub(crate) use token::{bearer_token, looks_like_jwt, parse as parse_token, refuse_token_in_query};

/// Why a request was not authenticated. Carries nothing from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the bearer token or Authorization header is malformed")]
    Malformed,
    #[error("tokens are not accepted in the query string")]
    TokenInQuery,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's algorithm is not allowed for its issuer")]
    AlgorithmNotAllowed,
    #[error("the token's signing key is not known")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this gateway")]
    WrongAudience,
    /// The claim named is absent (or empty) and required — by the gateway, or by
    /// one of the caller's roles (`township`, `department`).
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    #[error("the token has an invalid claim")]
    InvalidClaim,
    /// The `villages` claim breaks a rule (which one, never the codes).
    #[error("the token's `villages` claim is invalid: {0}")]
    InvalidVillages(VillagesProblem),
    /// An ID token's `nonce` is not the one its sign-in was started with.
    #[error("the ID token's nonce does not match the sign-in")]
    WrongNonce,
}

impl AuthError {
    /// A stable snake_case code for problem details and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TokenInQuery => "token_in_query",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::UnknownKey => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim => "invalid_claim",
            AuthError::InvalidVillages(_) => "invalid_villages",
            AuthError::WrongNonce => "wrong_nonce",
        }
    }

    /// The reason with the claim it concerns, when there is one: `missing_claim:
    /// township` (for people and the `WWW-Authenticate` header; [`reason`](Self::reason)
    /// is the stable code for metrics).
    pub fn described(&self) -> String {
        match self {
            AuthError::MissingClaim(claim) => format!("{}: {claim}", self.reason()),
            AuthError::InvalidVillages(problem) => {
                format!("{}: {}", self.reason(), problem.as_str())
            }
            _ => self.reason().to_owned(),
        }
    }

    /// The claim a refusal concerns, if it concerns one.
    pub fn claim(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingClaim(claim) => Some(claim),
            AuthError::InvalidVillages(_) => Some("villages"),
            _ => None,
        }
    }
}
