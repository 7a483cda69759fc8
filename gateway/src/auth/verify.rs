//! The [`Authenticator`]: builds the issuers from [`AuthConfig`] and verifies
//! bearer tokens — cache, structure, issuer, algorithm allowlist, key, signature,
//! then claims, in that order, so that nothing a token says about itself is
//! believed before its signature is checked (except `iss`, `alg` and `kid`, which
//! only choose *how* to check it).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use super::AuthError;
use super::cache::{self, TokenCache};
use super::caller::{Caller, ClaimRules, check_claims};
use super::clock::Clock;
use super::config::{AuthConfig, IssuerConfig, KeySource, MIN_HS256_SECRET_BYTES};
use super::issuer::Issuer;
use super::jwks::{JwksUrl, spawn_refresh};
use super::keys::{KeySet, VerifyKey, hs256_key, key_from_pem, keys_from_jwks};
use super::token::{self, MAX_TOKEN_BYTES};

/// Verifies bearer tokens. Cheap to clone; clones share keys, cache and refresh
/// tasks, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    audience: String,
    leeway_s: i64,
    issuers: HashMap<String, Arc<Issuer>>,
    cache: TokenCache,
    clock: Clock,
    /// Signatures checked so far (cache hits skip the check).
    signature_checks: AtomicU64,
    refreshers: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.refreshers {
            task.abort();
        }
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<_> = self
            .inner
            .issuers
            .values()
            .map(|i| IssuerSummary(i))
            .collect();
        issuers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        f.debug_struct("Authenticator")
            .field("audience", &self.inner.audience)
            .field("leeway_s", &self.inner.leeway_s)
            .field("issuers", &issuers)
            .field("cache", &self.inner.cache)
            .finish()
    }
}

struct IssuerSummary<'a>(&'a Issuer);

impl fmt::Debug for IssuerSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.0.name)
            .field("algorithms", &self.0.algorithms)
            .field("keys", &self.0.key_count())
            .field("jwks_url", &self.0.jwks.is_some())
            .finish()
    }
}

/// Reads an environment variable's raw bytes.
type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<Vec<u8>> + Sync);

impl Authenticator {
    /// Loads every issuer's keys (reading PEM/JWKS files now, fetching JWKS URLs now
    /// if reachable — an unreachable URL is not fatal: that issuer has no keys until
    /// a refresh succeeds) and starts the background refresh of JWKS URLs. Must be
    /// called inside a Tokio runtime. Returns every problem at once, as (path in the
    /// configuration, message).
    pub async fn new(
        config: &AuthConfig,
        base_dir: &Path,
    ) -> Result<Authenticator, Vec<(String, String)>> {
        Self::with_env(config, base_dir, &|name| {
            std::env::var_os(name).map(|v| v.into_encoded_bytes())
        })
        .await
    }

    /// [`Authenticator::new`] with the environment given by `env`.
    pub(crate) async fn with_env(
        config: &AuthConfig,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Authenticator, Vec<(String, String)>> {
        let mut problems = config.validate();
        let clock = Clock::default();
        let cache = TokenCache::new(config.cache.max_entries.max(1), clock.clone());
        let mut issuers = HashMap::new();
        for (i, issuer_config) in config.issuers.iter().enumerate() {
            let [source] = issuer_config.keys.as_slice() else {
                continue; // reported by validate()
            };
            let at = format!("auth.issuers[{i}].keys");
            match load_source(issuer_config, source, base_dir, env, &at).await {
                Ok((keys, jwks)) => {
                    let issuer = Issuer::new(
                        issuer_config.issuer.clone(),
                        issuer_config.algorithms.clone(),
                        keys,
                        jwks,
                        cache.clone(),
                    );
                    issuers.insert(issuer_config.issuer.clone(), Arc::new(issuer));
                }
                Err(mut found) => problems.append(&mut found),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }

        // Fetch every JWKS URL now, concurrently; failures are warnings.
        let fetches = issuers.values().filter(|i| i.jwks.is_some()).map(|issuer| {
            let issuer = Arc::clone(issuer);
            async move {
                let ok = issuer.refresh().await.is_ok();
                if !ok {
                    tracing::warn!(
                        issuer = %issuer.name,
                        "JWKS unreachable at start: this issuer's tokens are refused until a refresh succeeds"
                    );
                }
                (issuer, ok)
            }
        });
        let mut refreshers = Vec::new();
        for (issuer, ok) in futures::future::join_all(fetches).await {
            let Some(jwks) = &issuer.jwks else { continue };
            let retry = jwks.min_refetch.max(Duration::from_secs(1));
            let first = if ok { jwks.refresh } else { retry };
            refreshers.push(spawn_refresh(
                Arc::downgrade(&issuer),
                first,
                jwks.refresh,
                retry,
            ));
        }

        Ok(Authenticator {
            inner: Arc::new(Inner {
                audience: config.audience.clone(),
                leeway_s: i64::try_from(config.leeway_s).unwrap_or(i64::MAX),
                issuers,
                cache,
                clock,
                signature_checks: AtomicU64::new(0),
                refreshers,
            }),
        })
    }

    /// Authenticates a request. The token must come in `Authorization: Bearer
    /// <token>` and nowhere else: a token-looking query parameter (`access_token`,
    /// `token`, `jwt`, `id_token`, or any value that parses as a JWT) is refused
    /// with [`AuthError::TokenInQuery`], even when the header is present too.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        uri: &http::Uri,
    ) -> Result<Arc<Caller>, AuthError> {
        token::refuse_token_in_query(uri)?;
        let token = token::bearer_token(headers)?;
        self.verify(token).await
    }

    /// Verifies a bare token (as `policy explain --token` does).
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        let result = self.verify_inner(token).await;
        if let Err(e) = &result {
            tracing::debug!(reason = e.reason(), "bearer token refused");
        }
        result
    }

    async fn verify_inner(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        let inner = &*self.inner;
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let digest = cache::digest(token);
        let now = inner.clock.now();
        if let Some(caller) = inner.cache.get(&digest) {
            // The entry expires with the token, but the cache's clock is coarse.
            if now > caller.expires_at.saturating_add(inner.leeway_s) {
                inner.cache.remove(&digest);
                return Err(AuthError::Expired);
            }
            return Ok(caller);
        }

        let (caller, _claims) = self.verify_signed(token, &inner.audience, now).await?;
        let caller = Arc::new(caller);
        inner.cache.insert(digest, Arc::clone(&caller));
        Ok(caller)
    }

    /// Verifies an OpenID Connect ID token for a console sign-in: the same issuers,
    /// algorithm allowlists, keys and claim rules as bearer tokens (so a person's
    /// console can never see more than their API calls), but the audience is the
    /// console's OAuth `client_id`, `azp` (when present, or when there are several
    /// audiences) must be that client, and `nonce` must equal the one the sign-in
    /// was started with. Not cached: an ID token is used once.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Arc<Caller>, AuthError> {
        let result = self.verify_id_token_inner(token, client_id, nonce).await;
        if let Err(e) = &result {
            tracing::debug!(reason = e.reason(), "ID token refused");
        }
        result
    }

    async fn verify_id_token_inner(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Arc<Caller>, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        if client_id.is_empty() {
            return Err(AuthError::WrongAudience);
        }
        let now = self.inner.clock.now();
        let (caller, claims) = self.verify_signed(token, client_id, now).await?;
        // OpenID Connect Core 1.0 §3.1.3.7, items 4 and 5.
        let several_audiences = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        match claims.get("azp") {
            None | Some(Value::Null) if several_audiences => {
                return Err(AuthError::MissingClaim("azp"));
            }
            None | Some(Value::Null) => {}
            Some(Value::String(azp)) if azp == client_id => {}
            Some(Value::String(_)) => return Err(AuthError::WrongAudience),
            Some(_) => return Err(AuthError::InvalidClaim),
        }
        match claims.get("nonce") {
            None | Some(Value::Null) => Err(AuthError::MissingClaim("nonce")),
            Some(Value::String(got))
                if !nonce.is_empty()
                    && aws_lc_rs::constant_time::verify_slices_are_equal(
                        got.as_bytes(),
                        nonce.as_bytes(),
                    )
                    .is_ok() =>
            {
                Ok(Arc::new(caller))
            }
            Some(Value::String(_)) => Err(AuthError::WrongNonce),
            Some(_) => Err(AuthError::InvalidClaim),
        }
    }

    /// The checks every token goes through, in this order: structure, issuer (by the
    /// unverified `iss`), algorithm allowlist, key (by `kid`), signature, then the
    /// claims against `audience`. Returns the caller and the verified claims.
    async fn verify_signed(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<(Caller, Map<String, Value>), AuthError> {
        let inner = &*self.inner;
        let unverified = token::parse(token)?;
        // `none` and names we do not know are refused before anything else.
        let alg: Algorithm = unverified
            .alg
            .parse()
            .map_err(|_| AuthError::AlgorithmNotAllowed)?;
        let issuer = match unverified.claims.get("iss") {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("iss")),
            Some(Value::String(iss)) => inner.issuers.get(iss).ok_or(AuthError::UnknownIssuer)?,
            Some(_) => return Err(AuthError::InvalidClaim),
        };
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let key = issuer
            .select_key(alg, unverified.kid.as_deref())
            .await
            .ok_or(AuthError::UnknownKey)?;
        inner.signature_checks.fetch_add(1, Ordering::Relaxed);
        check_signature(&key, alg, unverified.signing_input, unverified.signature)?;

        let caller = check_claims(
            &unverified.claims,
            &issuer.name,
            ClaimRules {
                audience,
                leeway_s: inner.leeway_s,
                now,
            },
        )?;
        Ok((caller, unverified.claims))
    }

    /// Whether `issuer` is one of the trusted issuers (exactly as tokens write `iss`).
    pub fn trusts_issuer(&self, issuer: &str) -> bool {
        self.inner.issuers.contains_key(issuer)
    }

    /// Tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.len()
    }

    /// Fetches every JWKS URL now, not rate-limited (e.g. on an operator's request).
    /// A failure keeps that issuer's last good keys; failures are returned as
    /// (issuer, reason).
    pub async fn refresh_jwks(&self) -> Result<(), Vec<(String, String)>> {
        let fetches = self
            .inner
            .issuers
            .values()
            .filter(|i| i.jwks.is_some())
            .map(|issuer| async move { (issuer.name.clone(), issuer.refresh().await) });
        let failures: Vec<(String, String)> = futures::future::join_all(fetches)
            .await
            .into_iter()
            .filter_map(|(name, r)| r.err().map(|e| (name, e)))
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// How many signatures were checked (cache hits check none).
    #[cfg(test)]
    pub(crate) fn signature_checks(&self) -> u64 {
        self.inner.signature_checks.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    #[cfg(test)]
    pub(crate) fn issuer_kids(&self, issuer: &str) -> Vec<String> {
        self.inner
            .issuers
            .get(issuer)
            .map(|i| i.kids())
            .unwrap_or_default()
    }
}

fn check_signature(
    key: &VerifyKey,
    alg: Algorithm,
    signing_input: &str,
    signature: &str,
) -> Result<(), AuthError> {
    // select_key only hands out keys of the token's family; check again anyway.
    if key.family != alg.family() {
        return Err(AuthError::BadSignature);
    }
    if !super::ecdsa::is_canonical(alg, signature) {
        return Err(AuthError::BadSignature);
    }
    match jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.key, alg) {
        Ok(true) => Ok(()),
        _ => Err(AuthError::BadSignature),
    }
}

/// Loads one issuer's key source. A JWKS URL is only prepared here; it is fetched
/// once the whole configuration is known to be good.
async fn load_source(
    issuer: &IssuerConfig,
    source: &KeySource,
    base_dir: &Path,
    env: EnvLookup<'_>,
    at: &str,
) -> Result<(KeySet, Option<JwksUrl>), Vec<(String, String)>> {
    let mut problems = Vec::new();
    let algorithms = &issuer.algorithms;
    match source {
        KeySource::Pem(entries) => {
            let mut keys = Vec::new();
            for (j, entry) in entries.iter().enumerate() {
                let here = format!("{at}.pem[{j}].path");
                let path = base_dir.join(&entry.path);
                let bytes = match read_key_file(&path).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        problems.push((here, format!("{}: {e}", path.display())));
                        continue;
                    }
                };
                match key_from_pem(&bytes, entry.kid.clone()) {
                    Ok(key) => {
                        if !algorithms
                            .iter()
                            .any(|a| a.family() == key.family && key.alg.is_none_or(|k| k == *a))
                        {
                            problems.push((
                                here,
                                format!(
                                    "{}: a {} key, but none of the issuer's algorithms uses it",
                                    path.display(),
                                    key_kind(&key)
                                ),
                            ));
                        }
                        keys.push(key);
                    }
                    Err(e) => problems.push((here, format!("{}: {e}", path.display()))),
                }
            }
            if problems.is_empty() {
                Ok((KeySet::new(keys), None))
            } else {
                Err(problems)
            }
        }
        KeySource::JwksFile(file) => {
            let here = format!("{at}.jwks_file");
            let path = base_dir.join(file);
            let bytes = read_key_file(&path)
                .await
                .map_err(|e| vec![(here.clone(), format!("{}: {e}", path.display()))])?;
            match keys_from_jwks(&bytes, algorithms) {
                Ok((set, _)) if !set.is_empty() => Ok((set, None)),
                Ok((_, skipped)) => Err(vec![(
                    here,
                    format!(
                        "{}: no usable keys ({skipped} skipped: not for signing, symmetric, \
                         or not of the issuer's algorithms)",
                        path.display()
                    ),
                )]),
                Err(e) => Err(vec![(here, format!("{}: {e}", path.display()))]),
            }
        }
        KeySource::JwksUrl(url) => match JwksUrl::new(url) {
            Ok(jwks) => Ok((KeySet::default(), Some(jwks))),
            Err(e) => Err(vec![(format!("{at}.jwks_url.url"), e)]),
        },
        KeySource::Hs256SecretEnv(name) => {
            let here = format!("{at}.hs256_secret_env");
            match env(name) {
                None => Err(vec![(
                    here,
                    format!("environment variable {name} is not set"),
                )]),
                Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => Err(vec![(
                    here,
                    format!(
                        "environment variable {name} holds {} bytes; an HS256 secret needs \
                         at least {MIN_HS256_SECRET_BYTES}",
                        secret.len()
                    ),
                )]),
                Some(secret) => hs256_key(&secret)
                    .map(|key| (KeySet::new(vec![key]), None))
                    .map_err(|e| vec![(here, e)]),
            }
        }
    }
}

fn key_kind(key: &VerifyKey) -> String {
    match key.alg {
        Some(alg) => format!("{alg:?}"),
        None => format!("{:?}", key.family),
    }
}

/// A key file's bytes (PEM or JWKS): a regular file of at most 1 MiB, read off the
/// async workers.
async fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        connectors::files::FileRoots::anywhere().read(&path, 1024 * 1024)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}
