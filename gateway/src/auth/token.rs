//! Getting a token out of a request and taking it apart *before* anything is
//! trusted: the `Authorization: Bearer` header (the only accepted carrier), the
//! refusal of tokens in query strings, and the unverified header and claims that
//! pick the issuer, the algorithm and the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::AuthError;

/// Longest accepted token. Real access tokens are well under 4 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Query parameter names that carry tokens by convention.
const TOKEN_PARAMS: [&str; 4] = ["access_token", "token", "jwt", "id_token"];

/// Refuses a request whose query string carries a token: a parameter named like
/// one, or any value that parses as a JWT. URLs end up in logs and browser history.
pub(crate) fn refuse_token_in_query(uri: &http::Uri) -> Result<(), AuthError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for pair in query.split(['&', ';']) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        if TOKEN_PARAMS
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.trim()))
        {
            return Err(AuthError::TokenInQuery);
        }
        if looks_like_jwt(&name) || looks_like_jwt(&percent_decode(value)) {
            return Err(AuthError::TokenInQuery);
        }
    }
    Ok(())
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty()
        || token.len() > MAX_TOKEN_BYTES
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// A compact JWS taken apart, nothing verified.
#[derive(Debug)]
pub(crate) struct Unverified<'t> {
    /// The `alg` header, exactly as written.
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'t str,
    /// The signature, base64url.
    pub(crate) signature: &'t str,
}

/// Splits and decodes a compact JWS. Anything but three base64url parts with JSON
/// objects in the first two is `Malformed`.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header = decode_object(header_b64)?;
    let claims = decode_object(payload_b64)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(AuthError::Malformed),
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    // `crit` names extensions the verifier must understand (RFC 7515 §4.1.11); we
    // understand none, so such a token cannot be verified as its issuer meant.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Unverified {
        alg,
        kid,
        claims,
        signing_input,
        signature,
    })
}

fn decode_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed),
    }
}

/// Whether `s` is shaped like a JWS or JWE: dot-separated base64url parts whose
/// first part is a JSON object naming an `alg`.
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    let s = s.trim();
    let parts = s.split('.').count();
    if parts != 3 && parts != 5 {
        return false;
    }
    let Some(first) = s.split('.').next() else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(first.trim_end_matches('=')) else {
        return false;
    };
    matches!(
        serde_json::from_slice::<Value>(&bytes),
        Ok(Value::Object(map)) if map.contains_key("alg")
    )
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte;
/// malformed escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
