//! The `auth:` section of `gateway.yaml`: the audience every token must carry, the
//! clock leeway, the verified-token cache bound and the trusted issuers with their
//! algorithm allowlists and key sources.
//!
//! Parsing is lenient about *combinations* (two key sources, a missing audience, …)
//! so that [`AuthConfig::validate`] can report every problem at once, each with its
//! path inside the file (`auth.issuers[0].keys`, …).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

/// Largest accepted `leeway_s`.
pub(crate) const MAX_LEEWAY_S: u64 = 60;
/// Smallest HS256 secret, in bytes.
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;

/// The `auth:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `aud` every token must carry (required).
    #[serde(default)]
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (at most 60).
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// The verified-token cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The identity providers whose tokens are accepted.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

fn default_leeway_s() -> u64 {
    30
}

/// Bounds of the verified-token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most tokens held at once.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 100_000,
        }
    }
}

/// One trusted issuer (identity provider).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` of its tokens.
    #[serde(default)]
    pub issuer: String,
    /// Accepted `alg` values; nothing else is ever tried.
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// HS256 (a shared secret) is refused unless this is set.
    #[serde(default)]
    pub allow_hs256: bool,
    /// Where the verification keys come from. Written as a map with exactly one of
    /// `pem`, `jwks_file`, `jwks_url`, `hs256_secret_env`; every entry present in the
    /// file is kept here so that [`AuthConfig::validate`] can complain about extras.
    #[serde(default, deserialize_with = "deserialize_key_sources")]
    pub keys: Vec<KeySource>,
}

/// One source of verification keys.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Public keys in PEM files (RSA, EC P-256/P-384 or Ed25519 `PUBLIC KEY`).
    Pem(Vec<PemKeyConfig>),
    /// A JWKS document on disk, read at start.
    JwksFile(PathBuf),
    /// A JWKS document fetched over HTTPS and refreshed in the background.
    JwksUrl(JwksUrlConfig),
    /// The name of the environment variable that holds an HS256 secret.
    Hs256SecretEnv(String),
}

impl KeySource {
    /// The key of this source in the configuration file.
    pub fn name(&self) -> &'static str {
        match self {
            KeySource::Pem(_) => "pem",
            KeySource::JwksFile(_) => "jwks_file",
            KeySource::JwksUrl(_) => "jwks_url",
            KeySource::Hs256SecretEnv(_) => "hs256_secret_env",
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Pem(keys) => f.debug_tuple("Pem").field(keys).finish(),
            KeySource::JwksFile(path) => f.debug_tuple("JwksFile").field(path).finish(),
            KeySource::JwksUrl(url) => f.debug_tuple("JwksUrl").field(url).finish(),
            // The variable's name is not the secret, but say so plainly.
            KeySource::Hs256SecretEnv(name) => f
                .debug_tuple("Hs256SecretEnv")
                .field(&format_args!("${name}"))
                .finish(),
        }
    }
}

/// One public key file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PemKeyConfig {
    /// The `kid` tokens signed with it carry; optional when it is the only key.
    #[serde(default)]
    pub kid: Option<String>,
    /// The PEM file, relative to the configuration's base directory.
    pub path: PathBuf,
}

/// A JWKS URL and its refresh schedule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksUrlConfig {
    /// `https://…` (plain `http://` only for a loopback host).
    pub url: String,
    /// Background refresh period, in seconds.
    #[serde(default = "default_refresh_s")]
    pub refresh_s: u64,
    /// An unknown `kid` triggers at most one refetch per this many seconds.
    #[serde(default = "default_min_refetch_s")]
    pub min_refetch_s: u64,
}

fn default_refresh_s() -> u64 {
    300
}

fn default_min_refetch_s() -> u64 {
    30
}

/// The `keys:` map as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysMap {
    #[serde(default)]
    pem: Option<Vec<PemKeyConfig>>,
    #[serde(default)]
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    jwks_url: Option<JwksUrlConfig>,
    #[serde(default)]
    hs256_secret_env: Option<String>,
}

fn deserialize_key_sources<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeySource>, D::Error> {
    let map = KeysMap::deserialize(d)?;
    let mut out = Vec::new();
    if let Some(pem) = map.pem {
        out.push(KeySource::Pem(pem));
    }
    if let Some(path) = map.jwks_file {
        out.push(KeySource::JwksFile(path));
    }
    if let Some(url) = map.jwks_url {
        out.push(KeySource::JwksUrl(url));
    }
    if let Some(env) = map.hs256_secret_env {
        out.push(KeySource::Hs256SecretEnv(env));
    }
    Ok(out)
}

impl AuthConfig {
    /// Every problem of this section, each as (path in the file, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |path: String, message: String| problems.push((path, message));
        if self.audience.trim().is_empty() {
            push(
                "auth.audience".to_owned(),
                "required: the `aud` every accepted token must carry".to_owned(),
            );
        }
        if self.leeway_s > MAX_LEEWAY_S {
            push(
                "auth.leeway_s".to_owned(),
                format!(
                    "{} s is too lenient; at most {MAX_LEEWAY_S} s",
                    self.leeway_s
                ),
            );
        }
        if self.cache.max_entries == 0 {
            push(
                "auth.cache.max_entries".to_owned(),
                "must be at least 1".to_owned(),
            );
        }
        if self.issuers.is_empty() {
            push(
                "auth.issuers".to_owned(),
                "define at least one trusted issuer".to_owned(),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}]");
            if issuer.issuer.trim().is_empty() {
                push(
                    format!("{at}.issuer"),
                    "required: the `iss` of this issuer's tokens".to_owned(),
                );
            } else if !seen.insert(issuer.issuer.as_str()) {
                push(
                    format!("{at}.issuer"),
                    format!("issuer `{}` is listed twice", issuer.issuer),
                );
            }
            issuer.validate(&at, &mut push);
        }
        problems
    }
}

impl IssuerConfig {
    fn validate(&self, at: &str, push: &mut impl FnMut(String, String)) {
        let algs = format!("{at}.algorithms");
        if self.algorithms.is_empty() {
            push(
                algs.clone(),
                "list the accepted algorithms (e.g. [ES256])".to_owned(),
            );
        }
        let hs256 = self.algorithms.contains(&Algorithm::HS256);
        for alg in &self.algorithms {
            match alg {
                Algorithm::HS256 if !self.allow_hs256 => push(
                    algs.clone(),
                    "HS256 (a shared secret) is refused unless `allow_hs256: true`".to_owned(),
                ),
                Algorithm::HS384 | Algorithm::HS512 => push(
                    algs.clone(),
                    format!("{alg:?} is not supported; the only HMAC algorithm is HS256"),
                ),
                _ => {}
            }
        }
        let keys = format!("{at}.keys");
        match self.keys.as_slice() {
            [] => push(
                keys,
                "exactly one of pem, jwks_file, jwks_url, hs256_secret_env is required".to_owned(),
            ),
            [source] => {
                let asymmetric: Vec<String> = self
                    .algorithms
                    .iter()
                    .filter(|a| {
                        !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
                    })
                    .map(|a| format!("{a:?}"))
                    .collect();
                if let KeySource::Hs256SecretEnv(name) = source {
                    validate_env_name(&format!("{keys}.hs256_secret_env"), name, push);
                    if !self.allow_hs256 {
                        push(
                            format!("{keys}.hs256_secret_env"),
                            "an HS256 secret needs `allow_hs256: true`".to_owned(),
                        );
                    }
                    if !hs256 {
                        push(
                            algs.clone(),
                            "an HS256 secret is configured but HS256 is not listed".to_owned(),
                        );
                    }
                    if !asymmetric.is_empty() {
                        push(
                            algs.clone(),
                            format!(
                                "{} cannot be verified with an HS256 secret; give this \
                                 issuer a public key source instead",
                                asymmetric.join(", ")
                            ),
                        );
                    }
                } else if hs256 {
                    push(
                        algs.clone(),
                        format!(
                            "HS256 needs `keys.hs256_secret_env`; it is never verified \
                             with keys from `{}`",
                            source.name()
                        ),
                    );
                }
                source.validate(&keys, push);
            }
            many => push(
                keys,
                format!(
                    "exactly one key source is allowed, found {}",
                    many.iter()
                        .map(KeySource::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
}

impl KeySource {
    fn validate(&self, at: &str, push: &mut impl FnMut(String, String)) {
        match self {
            KeySource::Pem(keys) => {
                let at = format!("{at}.pem");
                if keys.is_empty() {
                    push(at.clone(), "list at least one public key".to_owned());
                }
                let mut kids = BTreeSet::new();
                for (j, key) in keys.iter().enumerate() {
                    let here = format!("{at}[{j}]");
                    if key.path.as_os_str().is_empty() {
                        push(format!("{here}.path"), "required".to_owned());
                    }
                    match &key.kid {
                        None if keys.len() > 1 => push(
                            format!("{here}.kid"),
                            "required when the issuer has more than one key".to_owned(),
                        ),
                        None => {}
                        Some(kid) if kid.is_empty() => {
                            push(format!("{here}.kid"), "must not be empty".to_owned());
                        }
                        Some(kid) if !kids.insert(kid.as_str()) => {
                            push(format!("{here}.kid"), format!("duplicate kid `{kid}`"));
                        }
                        Some(_) => {}
                    }
                }
            }
            KeySource::JwksFile(path) => {
                if path.as_os_str().is_empty() {
                    push(format!("{at}.jwks_file"), "required".to_owned());
                }
            }
            KeySource::JwksUrl(url) => {
                let at = format!("{at}.jwks_url");
                if let Err(message) = check_jwks_url(&url.url) {
                    push(format!("{at}.url"), message);
                }
                if !(1..=86_400).contains(&url.refresh_s) {
                    push(
                        format!("{at}.refresh_s"),
                        "between 1 and 86400 seconds".to_owned(),
                    );
                }
                if !(1..=3_600).contains(&url.min_refetch_s) {
                    push(
                        format!("{at}.min_refetch_s"),
                        "between 1 and 3600 seconds (it protects the issuer from refetch storms)"
                            .to_owned(),
                    );
                }
            }
            // Checked by the issuer, which knows about allow_hs256.
            KeySource::Hs256SecretEnv(_) => {}
        }
    }
}

fn validate_env_name(at: &str, name: &str, push: &mut impl FnMut(String, String)) {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        push(
            at.to_owned(),
            "the name of an environment variable (A-Z, 0-9, '_')".to_owned(),
        );
    }
}

/// A JWKS URL must be `https://`, or `http://` to a loopback host (tests, a local
/// sidecar): keys fetched in the clear could be replaced on the way.
pub(crate) fn check_jwks_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not allowed".to_owned());
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err("use https:// (plain http only for a loopback host)".to_owned()),
        other => Err(format!("unsupported scheme `{other}`; use https://")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}
