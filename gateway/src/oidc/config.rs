//! The `console:` section of `gateway.yaml` and its `oidc:` part: which trusted
//! issuer the console signs people in with, as which OAuth client, where the
//! provider sends them back, and where the client secret is read from.
//!
//! The secret itself is never written in the file: `client_secret` names an
//! environment variable or a file, and an inline value is refused without being
//! echoed. [`ConsoleConfig::validate`] reports every problem at once, each with its
//! path in the file (`console.oidc.issuer`, …).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::auth::AuthConfig;

/// The `console:` section. The console's other settings (sessions, …) belong here
/// too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Sign-in with OpenID Connect against a trusted issuer; without it the console
    /// offers no OpenID Connect sign-in.
    pub oidc: Option<OidcConfig>,
}

/// `console.oidc`: the console as an OAuth client of one of `auth.issuers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider: exactly one of `auth.issuers[].issuer`. Its discovery document is
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub issuer: String,
    /// The console's OAuth client id: the `aud` of its ID tokens. Must differ from
    /// `auth.audience`, so that an ID token is never an API token nor the reverse.
    #[serde(default)]
    pub client_id: String,
    /// Where the client secret is read from (`{ env: NAME }` or `{ file: PATH }`).
    #[serde(default, deserialize_with = "deserialize_secret_source")]
    pub client_secret: ClientSecretSource,
    /// The console's callback, registered with the provider, e.g.
    /// `https://gw.example/console/oidc/callback`.
    #[serde(default)]
    pub redirect_url: String,
    /// The scopes asked for; must include `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned()]
}

/// Where the OAuth client secret comes from: exactly one of an environment variable
/// or a file (relative to the configuration's directory; its content trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecretSource {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `client_secret` must be a map: a plain value would be the secret itself, and is
/// refused without repeating it (serde's own message would).
fn deserialize_secret_source<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<ClientSecretSource, D::Error> {
    struct SourceVisitor;
    const HOW: &str = "write `client_secret: { env: VARIABLE }` or `{ file: PATH }`; \
                       the secret itself is never written in this file";
    impl<'de> Visitor<'de> for SourceVisitor {
        type Value = ClientSecretSource;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("`{ env: VARIABLE }` or `{ file: PATH }`")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            ClientSecretSource::deserialize(de::value::MapAccessDeserializer::new(map))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(HOW))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(HOW))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(HOW))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(HOW))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(HOW))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(HOW))
        }
    }
    d.deserialize_any(SourceVisitor)
}

impl ConsoleConfig {
    /// Every problem of this section, each as (path in the file, message). `auth` is
    /// the `auth:` section in force (the issuer must be one of its issuers).
    pub fn validate(&self, auth: &AuthConfig) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(oidc) = &self.oidc {
            oidc.validate("console.oidc", auth, &mut problems);
        }
        problems
    }
}

impl OidcConfig {
    fn validate(&self, at: &str, auth: &AuthConfig, problems: &mut Vec<(String, String)>) {
        let mut push =
            |path: &str, message: String| problems.push((format!("{at}.{path}"), message));

        if self.issuer.trim().is_empty() {
            push(
                "issuer",
                "required: one of auth.issuers[].issuer".to_owned(),
            );
        } else if !auth.issuers.iter().any(|i| i.issuer == self.issuer) {
            let known: Vec<&str> = auth.issuers.iter().map(|i| i.issuer.as_str()).collect();
            push(
                "issuer",
                format!(
                    "`{}` is not a trusted issuer; use one of auth.issuers[].issuer ({})",
                    self.issuer,
                    known.join(", ")
                ),
            );
        } else if let Err(message) = crate::auth::check_fetch_url(&self.issuer) {
            push(
                "issuer",
                format!("its discovery document is fetched from it: {message}"),
            );
        }

        if self.client_id.trim().is_empty() {
            push(
                "client_id",
                "required: the console's OAuth client id".to_owned(),
            );
        } else if self.client_id.len() > 256 || self.client_id.chars().any(char::is_control) {
            push(
                "client_id",
                "at most 256 characters, no control characters".to_owned(),
            );
        } else if self.client_id == auth.audience {
            push(
                "client_id",
                "must differ from auth.audience: an ID token must never pass as an API token"
                    .to_owned(),
            );
        }

        match (&self.client_secret.env, &self.client_secret.file) {
            (Some(name), None) => {
                if !is_env_name(name) {
                    push(
                        "client_secret.env",
                        "the name of an environment variable (A-Z, 0-9, '_')".to_owned(),
                    );
                }
            }
            (None, Some(path)) => {
                if path.as_os_str().is_empty() {
                    push("client_secret.file", "required".to_owned());
                }
            }
            _ => push(
                "client_secret",
                "exactly one of `env` (a variable's name) or `file` (a path)".to_owned(),
            ),
        }

        if self.redirect_url.trim().is_empty() {
            push(
                "redirect_url",
                "required: the console's callback, e.g. https://gw.example/console/oidc/callback"
                    .to_owned(),
            );
        } else if let Err(message) = check_redirect_url(&self.redirect_url) {
            push("redirect_url", message);
        }

        if !self.scopes.iter().any(|s| s == "openid") {
            push("scopes", "must include `openid`".to_owned());
        }
        let mut seen = BTreeSet::new();
        for (i, scope) in self.scopes.iter().enumerate() {
            if !is_scope_token(scope) {
                push(
                    &format!("scopes[{i}]"),
                    "a scope is printable ASCII without spaces, quotes or backslashes".to_owned(),
                );
            } else if !seen.insert(scope.as_str()) {
                push(
                    &format!("scopes[{i}]"),
                    format!("`{scope}` is listed twice"),
                );
            }
        }
    }
}

/// A redirect URL: `https://`, or `http://` to a loopback host; no credentials, no
/// fragment.
pub(crate) fn check_redirect_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = crate::auth::check_fetch_url(url)?;
    if parsed.fragment().is_some() {
        return Err("a redirect URL has no fragment (#…)".to_owned());
    }
    Ok(parsed)
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 6749 §3.3 `scope-token`: %x21 / %x23-5B / %x5D-7E.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}
