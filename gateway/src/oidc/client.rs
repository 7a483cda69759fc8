//! The [`OidcClient`]: the console as an OAuth client of one trusted issuer. It
//! builds the authorization URL of a new sign-in and, when the provider sends the
//! browser back, redeems the code at the token endpoint and hands the ID token to
//! the gateway's [`Authenticator`], which turns it into a [`Caller`] exactly as it
//! does a bearer token.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::config::{ClientSecretSource, OidcConfig, check_redirect_url};
use super::discovery::{self, ClientAuth, Discovery};
use super::login::{Callback, PendingLogin};
use super::{OidcError, TokenError};
use crate::auth::{Authenticator, Caller};

/// Largest accepted client-secret file.
const MAX_SECRET_FILE_BYTES: usize = 4096;

/// The console's OpenID Connect client. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct OidcClient {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    client_id: String,
    secret: ClientSecret,
    redirect_url: reqwest::Url,
    scope: String,
    discovery: Discovery,
    authenticator: Authenticator,
    http: reqwest::Client,
}

impl fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("OidcClient")
            .field("issuer", &inner.issuer)
            .field("client_id", &inner.client_id)
            .field("redirect_url", &inner.redirect_url.as_str())
            .field("scope", &inner.scope)
            .field("discovery", &inner.discovery)
            .finish_non_exhaustive()
    }
}

/// The client secret: never printed.
struct ClientSecret(String);

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenRefusal {
    #[serde(default)]
    error: Option<String>,
}

impl OidcClient {
    /// Reads the client secret (`base_dir` is where a relative secret file is), checks
    /// that `authenticator` trusts the issuer, and fetches and checks the provider's
    /// discovery document. Call after [`ConsoleConfig::validate`](super::ConsoleConfig::validate)
    /// passed; an unreachable provider is an error (the caller decides whether the
    /// console starts without OpenID Connect sign-in).
    pub async fn new(
        config: &OidcConfig,
        authenticator: Authenticator,
        base_dir: &Path,
    ) -> Result<OidcClient, OidcError> {
        let secret = read_secret(&config.client_secret, base_dir).await?;
        if !authenticator.trusts_issuer(&config.issuer) {
            return Err(OidcError::UntrustedIssuer);
        }
        let redirect_url = check_redirect_url(&config.redirect_url).map_err(OidcError::Config)?;
        if config.client_id.is_empty() {
            return Err(OidcError::Config("client_id is required".to_owned()));
        }
        if !config.scopes.iter().any(|s| s == "openid") {
            return Err(OidcError::Config("scopes must include `openid`".to_owned()));
        }
        let http = discovery::http_client()?;
        let discovery = discovery::discover(&http, &config.issuer).await?;
        Ok(OidcClient {
            inner: Arc::new(Inner {
                issuer: config.issuer.clone(),
                client_id: config.client_id.clone(),
                secret,
                redirect_url,
                scope: config.scopes.join(" "),
                discovery,
                authenticator,
                http,
            }),
        })
    }

    /// The issuer this client signs people in with.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Starts a sign-in: the provider URL to send the browser to (`302 Location`),
    /// and the [`PendingLogin`] to keep server-side under its
    /// [`state`](PendingLogin::state) until the callback.
    pub fn begin(&self) -> (reqwest::Url, PendingLogin) {
        let inner = &*self.inner;
        let pending = PendingLogin::new(now());
        let mut url = inner.discovery.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &inner.client_id)
            .append_pair("redirect_uri", inner.redirect_url.as_str())
            .append_pair("scope", &inner.scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pending.code_challenge())
            .append_pair("code_challenge_method", "S256");
        (url, pending)
    }

    /// Finishes a sign-in: checks the callback against `pending` (its `state`, the
    /// provider's `iss`, the sign-in's age), redeems the code with the PKCE verifier
    /// and the client secret, and verifies the ID token with the gateway's
    /// [`Authenticator`] (the issuer's keys, its algorithm allowlist, audience = this
    /// client, the sign-in's `nonce`, the API's claim rules). `pending` is consumed:
    /// remove it from the store before calling, whatever the outcome.
    pub async fn finish(
        &self,
        pending: PendingLogin,
        callback: &Callback,
    ) -> Result<Arc<Caller>, OidcError> {
        let inner = &*self.inner;
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            callback.state.as_bytes(),
            pending.state.as_bytes(),
        )
        .is_err()
        {
            return Err(OidcError::WrongState);
        }
        match &callback.iss {
            Some(iss) if *iss != inner.issuer => return Err(OidcError::IssuerMismatch),
            None if inner.discovery.iss_in_response => return Err(OidcError::IssuerMismatch),
            _ => {}
        }
        if pending.is_expired(now()) {
            return Err(OidcError::Expired);
        }
        let id_token = self.redeem(&pending, &callback.code).await?;
        inner
            .authenticator
            .verify_id_token(&id_token, &inner.client_id, &pending.nonce)
            .await
            .map_err(OidcError::IdToken)
    }

    /// Exchanges the code at the token endpoint; returns the ID token.
    async fn redeem(&self, pending: &PendingLogin, code: &str) -> Result<String, OidcError> {
        let inner = &*self.inner;
        // Built in a block that ends before the await: the serializer is not `Send`.
        let (request, body) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", inner.redirect_url.as_str())
                .append_pair("code_verifier", &pending.code_verifier);
            let mut request = inner
                .http
                .post(inner.discovery.token_endpoint.clone())
                .header(http::header::ACCEPT, "application/json")
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
            match inner.discovery.client_auth {
                ClientAuth::Basic => {
                    // RFC 6749 §2.3.1: each part form-urlencoded, then Basic.
                    let encode = |s: &str| {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                    };
                    let credentials =
                        format!("{}:{}", encode(&inner.client_id), encode(&inner.secret.0));
                    request = request.header(
                        http::header::AUTHORIZATION,
                        format!("Basic {}", STANDARD.encode(credentials)),
                    );
                }
                ClientAuth::Post => {
                    form.append_pair("client_id", &inner.client_id)
                        .append_pair("client_secret", &inner.secret.0);
                }
            }
            (request, form.finish())
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(discovery::describe(&e)))?;
        let status = response.status();
        let body = discovery::read_bounded(response)
            .await
            .map_err(|_| OidcError::BadTokenResponse(TokenError::Unreadable))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<TokenRefusal>(&body)
                .ok()
                .and_then(|r| r.error)
                .map_or("other", |e| super::login::oauth_error_code(&e));
            return Err(OidcError::CodeRefused {
                status: status.as_u16(),
                error,
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| OidcError::BadTokenResponse(TokenError::NotJson))?;
        answer
            .id_token
            .filter(|t| !t.is_empty())
            .ok_or(OidcError::BadTokenResponse(TokenError::NoIdToken))
    }
}

/// The client secret from its environment variable or file (trimmed), never empty.
async fn read_secret(
    source: &ClientSecretSource,
    base_dir: &Path,
) -> Result<ClientSecret, OidcError> {
    let secret = match (&source.env, &source.file) {
        (Some(name), None) => std::env::var(name).map_err(|_| {
            OidcError::ClientSecret(format!(
                "environment variable {name} is not set (or not UTF-8)"
            ))
        })?,
        (None, Some(file)) => {
            let path = base_dir.join(file);
            let shown = path.display().to_string();
            let bytes = tokio::task::spawn_blocking(move || {
                connectors::files::FileRoots::anywhere().read(&path, MAX_SECRET_FILE_BYTES as u64)
            })
            .await
            .map_err(|_| OidcError::ClientSecret(format!("{shown}: cannot be read")))?
            .map_err(|e| OidcError::ClientSecret(format!("{shown}: {e}")))?;
            String::from_utf8(bytes)
                .map_err(|_| OidcError::ClientSecret(format!("{shown}: not UTF-8")))?
        }
        _ => {
            return Err(OidcError::ClientSecret(
                "exactly one of `env` or `file` is required".to_owned(),
            ));
        }
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(OidcError::ClientSecret("the secret is empty".to_owned()));
    }
    Ok(ClientSecret(secret.to_owned()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
