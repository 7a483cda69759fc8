//! The provider's discovery document (OpenID Connect Discovery 1.0): fetched once
//! from `{issuer}/.well-known/openid-configuration`, refused unless its `issuer` is
//! exactly the configured one, its endpoints are `https://` (or `http://` on a
//! loopback host) and it can do what the console needs (the code flow, PKCE S256,
//! a client-secret authentication). Also the HTTP client every provider request
//! goes through: short timeouts, no redirects, bounded answers.

use std::time::Duration;

use serde::Deserialize;

use super::OidcError;

/// Largest accepted discovery document or token answer.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How the console authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// What the console uses of the discovery document.
#[derive(Debug, Clone)]
pub(super) struct Discovery {
    pub(super) authorization_endpoint: reqwest::Url,
    pub(super) token_endpoint: reqwest::Url,
    pub(super) client_auth: ClientAuth,
    /// RFC 9207: the provider puts `iss` in every authorization response, so one
    /// without it is refused.
    pub(super) iss_in_response: bool,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    response_types_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The HTTP client for the provider.
pub(super) fn http_client() -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("county-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OidcError::Unreachable(e.without_url().to_string()))
}

/// Fetches and checks the discovery document of `issuer`.
pub(super) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<Discovery, OidcError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let url = crate::auth::check_fetch_url(&url).map_err(OidcError::Discovery)?;
    let response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OidcError::Discovery(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::Discovery(format!(
            "HTTP status {}",
            status.as_u16()
        )));
    }
    let body = read_bounded(response).await.map_err(OidcError::Discovery)?;
    let doc: Document = serde_json::from_slice(&body).map_err(|_| {
        OidcError::Discovery(
            "not a discovery document (issuer, authorization_endpoint and token_endpoint)"
                .to_owned(),
        )
    })?;
    check(doc, issuer)
}

/// Checks a parsed document against the configured issuer.
fn check(doc: Document, issuer: &str) -> Result<Discovery, OidcError> {
    // OpenID Connect Discovery §4.3: exactly the URL it was fetched for.
    if doc.issuer != issuer {
        return Err(OidcError::IssuerMismatch);
    }
    let endpoint = |name: &str, url: &str| {
        crate::auth::check_fetch_url(url).map_err(|e| OidcError::Discovery(format!("{name}: {e}")))
    };
    let authorization_endpoint = endpoint("authorization_endpoint", &doc.authorization_endpoint)?;
    let token_endpoint = endpoint("token_endpoint", &doc.token_endpoint)?;
    if doc
        .response_types_supported
        .is_some_and(|types| !types.iter().any(|t| t == "code"))
    {
        return Err(OidcError::Discovery(
            "the provider does not offer the authorization-code flow".to_owned(),
        ));
    }
    // Absent means the provider does not say; PKCE is sent anyway and a provider
    // that ignores it still gets a one-time code bound to the client's secret.
    if doc
        .code_challenge_methods_supported
        .is_some_and(|methods| !methods.iter().any(|m| m == "S256"))
    {
        return Err(OidcError::NoPkce);
    }
    // Absent means client_secret_basic (OpenID Connect Discovery §3).
    let client_auth = match doc.token_endpoint_auth_methods_supported {
        None => ClientAuth::Basic,
        Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => ClientAuth::Basic,
        Some(methods) if methods.iter().any(|m| m == "client_secret_post") => ClientAuth::Post,
        Some(_) => return Err(OidcError::NoClientAuth),
    };
    Ok(Discovery {
        authorization_endpoint,
        token_endpoint,
        client_auth,
        iss_in_response: doc.authorization_response_iss_parameter_supported,
    })
}

/// A response's body, at most [`MAX_ANSWER_BYTES`].
pub(super) async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("answer larger than {MAX_ANSWER_BYTES} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error, without its URL (which could carry a code).
pub(super) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the answer could not be read".to_owned()
    }
}

#[cfg(test)]
pub(super) fn check_for_test(doc: serde_json::Value, issuer: &str) -> Result<Discovery, OidcError> {
    let doc: Document =
        serde_json::from_value(doc).map_err(|e| OidcError::Discovery(e.to_string()))?;
    check(doc, issuer)
}
