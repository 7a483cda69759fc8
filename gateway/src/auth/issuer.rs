//! One trusted issuer at run time: its `iss`, its algorithm allowlist and its
//! current [`KeySet`] (swapped whole, read without locks), plus, for a JWKS URL,
//! the refetch on an unknown `kid` (rate-limited) and the refresh that keeps the
//! last good key set when the issuer is down.

use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;

use super::cache::TokenCache;
use super::jwks::JwksUrl;
use super::keys::{KeySet, VerifyKey, keys_from_jwks};

/// A trusted issuer.
#[derive(Debug)]
pub(crate) struct Issuer {
    pub(crate) name: String,
    pub(crate) algorithms: Vec<Algorithm>,
    keys: ArcSwap<KeySet>,
    pub(crate) jwks: Option<JwksUrl>,
    /// Cleared when a refresh withdraws a key, so that tokens it signed are checked
    /// again (and refused).
    cache: TokenCache,
}

impl Issuer {
    pub(crate) fn new(
        name: String,
        algorithms: Vec<Algorithm>,
        keys: KeySet,
        jwks: Option<JwksUrl>,
        cache: TokenCache,
    ) -> Issuer {
        Issuer {
            name,
            algorithms,
            keys: ArcSwap::from_pointee(keys),
            jwks,
            cache,
        }
    }

    /// The key for this `alg` and `kid`. With a JWKS URL, a miss triggers one
    /// refetch (unless one happened less than `min_refetch_s` ago; concurrent misses
    /// share it) and the lookup is tried once more.
    pub(crate) async fn select_key(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Option<Arc<VerifyKey>> {
        if let Some(key) = self.keys.load().select(alg, kid) {
            return Some(key);
        }
        let jwks = self.jwks.as_ref()?;
        {
            let mut last = jwks.lock().await;
            if jwks.take_refetch_slot(&mut last) {
                tracing::debug!(issuer = %self.name, "unknown key id: refetching the issuer's JWKS");
                // A failure is logged inside and leaves the last good keys.
                let _ = self.fetch_locked(jwks).await;
            }
        }
        self.keys.load().select(alg, kid)
    }

    /// Fetches the JWKS now (not rate-limited). Without a JWKS URL this does nothing.
    /// Returns the number of keys held afterwards.
    pub(crate) async fn refresh(&self) -> Result<usize, String> {
        let Some(jwks) = &self.jwks else {
            return Ok(self.keys.load().len());
        };
        let _fetching = jwks.lock().await;
        self.fetch_locked(jwks).await
    }

    async fn fetch_locked(&self, jwks: &JwksUrl) -> Result<usize, String> {
        let outcome = match jwks.fetch().await {
            Ok(body) => keys_from_jwks(&body, &self.algorithms),
            Err(e) => Err(e),
        };
        let (set, skipped) = match outcome {
            Ok((set, _)) if set.is_empty() => Err("the JWKS has no usable keys".to_owned()),
            other => other,
        }
        .inspect_err(|e| {
            tracing::warn!(
                issuer = %self.name,
                error = %e,
                keys_kept = self.keys.load().len(),
                "JWKS fetch failed; keeping the last good keys"
            );
        })?;
        let held = set.len();
        let old = self.keys.swap(Arc::new(set));
        if old.loses_keys_in(&self.keys.load()) {
            self.cache.clear();
        }
        tracing::debug!(issuer = %self.name, keys = held, skipped, "JWKS loaded");
        Ok(held)
    }

    pub(crate) fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    #[cfg(test)]
    pub(crate) fn kids(&self) -> Vec<String> {
        self.keys.load().kids()
    }
}
