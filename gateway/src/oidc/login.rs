//! One sign-in in progress: the [`PendingLogin`] a front end keeps server-side
//! (keyed by its `state`) between sending the browser to the provider and the
//! provider sending it back, and the [`Callback`] the provider sends it back with.
//!
//! `state`, `nonce` and the PKCE `code_verifier` are 256-bit random values from the
//! operating system-seeded CSPRNG, base64url-encoded (43 characters). Only `state`
//! and the PKCE challenge travel in URLs; the verifier and the nonce stay here.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::OidcError;

/// How long a sign-in may take from [`begin`](super::OidcClient::begin) to
/// [`finish`](super::OidcClient::finish), in seconds.
pub const PENDING_LOGIN_TTL_S: i64 = 600;

/// Longest accepted `code` or `state` in a callback.
const MAX_CALLBACK_VALUE: usize = 2048;

/// A sign-in started by [`OidcClient::begin`](super::OidcClient::begin). Keep it on
/// the server (never in a cookie or a URL), look it up by [`state`](Self::state)
/// when the provider sends the browser back, and hand it to
/// [`OidcClient::finish`](super::OidcClient::finish) once: it is consumed.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub(super) state: String,
    pub(super) nonce: String,
    pub(super) code_verifier: String,
    pub(super) created_at: i64,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// A fresh sign-in started at `now` (Unix seconds).
    pub(super) fn new(now: i64) -> PendingLogin {
        PendingLogin {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
            created_at: now,
        }
    }

    /// The `state` sent to the provider and returned in the callback: the key to
    /// store this sign-in under.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// When the sign-in started (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Whether the sign-in is older than [`PENDING_LOGIN_TTL_S`] at `now` (Unix
    /// seconds), so a front end can drop it from its store.
    pub fn is_expired(&self, now: i64) -> bool {
        now.saturating_sub(self.created_at) > PENDING_LOGIN_TTL_S || now < self.created_at
    }

    /// The PKCE `code_challenge` (method S256) of this sign-in's verifier.
    pub(super) fn code_challenge(&self) -> String {
        pkce_challenge(&self.code_verifier)
    }
}

/// 32 random bytes, base64url without padding.
pub(super) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 §4.2, S256: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub(super) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the provider sent the browser back with: the authorization `code`, the
/// `state`, and (RFC 9207) the `iss` it claims to be. The code is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    pub(super) code: String,
    pub(super) state: String,
    pub(super) iss: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// A callback from its parts (e.g. a front end's own query extractor).
    pub fn new(code: impl Into<String>, state: impl Into<String>, iss: Option<String>) -> Self {
        Callback {
            code: code.into(),
            state: state.into(),
            iss,
        }
    }

    /// Reads the callback's query string (without the `?`). A provider's refusal
    /// (`error=access_denied`, …) is [`OidcError::Provider`] with the standard code
    /// only; a missing, repeated, overlong or non-printable `code` or `state` is
    /// [`OidcError::BadCallback`].
    pub fn from_query(query: &str) -> Result<Callback, OidcError> {
        let (mut code, mut state, mut iss, mut error) = (None, None, None, None);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "code" => &mut code,
                "state" => &mut state,
                "iss" => &mut iss,
                "error" => &mut error,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(OidcError::BadCallback);
            }
        }
        if let Some(error) = error {
            return Err(OidcError::Provider(oauth_error_code(&error)));
        }
        let (Some(code), Some(state)) = (code, state) else {
            return Err(OidcError::BadCallback);
        };
        for value in [&code, &state] {
            if value.is_empty()
                || value.len() > MAX_CALLBACK_VALUE
                || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(OidcError::BadCallback);
            }
        }
        Ok(Callback { code, state, iss })
    }

    /// The `state` to look the [`PendingLogin`] up by.
    pub fn state(&self) -> &str {
        &self.state
    }
}

/// The standard OAuth 2.0 / OpenID Connect error codes; anything else is `other`, so
/// that nothing a provider writes is repeated verbatim.
pub(super) fn oauth_error_code(code: &str) -> &'static str {
    const KNOWN: [&str; 19] = [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
    ];
    KNOWN.into_iter().find(|k| *k == code).unwrap_or("other")
}
