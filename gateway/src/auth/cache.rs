//! The verified-token cache: SHA-256 of the token → the [`Caller`] it proved.
//!
//! The token itself is never stored. Each entry lives no longer than the token's
//! `exp` (and never more than [`MAX_TTL`], so that a key withdrawn by its issuer
//! stops being trusted soon even for cached tokens); the cache holds at most the
//! configured number of entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use sha2::{Digest, Sha256};

use super::caller::Caller;
use super::clock::Clock;

/// The longest a verified token is trusted without checking its signature again.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(300);

/// The cache key: SHA-256 of the token bytes.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Verified tokens, shared by clones.
#[derive(Clone)]
pub(crate) struct TokenCache {
    inner: moka::sync::Cache<TokenDigest, Arc<Caller>>,
    clock: Clock,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

/// Each entry expires at its token's `exp`, or after [`MAX_TTL`].
struct UntilExp {
    clock: Clock,
}

impl UntilExp {
    fn ttl(&self, caller: &Caller) -> Duration {
        let left = caller.expires_at.saturating_sub(self.clock.now());
        Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(MAX_TTL)
    }
}

impl Expiry<TokenDigest, Arc<Caller>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        value: &Arc<Caller>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }

    fn expire_after_update(
        &self,
        _key: &TokenDigest,
        value: &Arc<Caller>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }
}

impl TokenCache {
    pub(crate) fn new(max_entries: u64, clock: Clock) -> TokenCache {
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(UntilExp {
                clock: clock.clone(),
            })
            .build();
        TokenCache { inner, clock }
    }

    pub(crate) fn get(&self, key: &TokenDigest) -> Option<Arc<Caller>> {
        self.inner.get(key)
    }

    /// Remembers a verified caller, unless its token expires now.
    pub(crate) fn insert(&self, key: TokenDigest, caller: Arc<Caller>) {
        if caller.expires_at > self.clock.now() {
            self.inner.insert(key, caller);
        }
    }

    pub(crate) fn remove(&self, key: &TokenDigest) {
        self.inner.invalidate(key);
    }

    pub(crate) fn clear(&self) {
        self.inner.invalidate_all();
    }

    /// Entries held, after pending maintenance.
    pub(crate) fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::Role;

    fn caller(expires_at: i64) -> Arc<Caller> {
        Arc::new(Caller {
            user: "u".to_owned(),
            issuer: "i".to_owned(),
            roles: BTreeSet::from([Role::Operator]),
            township: None,
            county: None,
            villages: BTreeSet::new(),
            department: None,
            app: None,
            expires_at,
        })
    }

    #[test]
    fn entries_never_outlive_the_token() {
        let clock = Clock::default();
        let expiry = UntilExp {
            clock: clock.clone(),
        };
        let now = clock.now();
        assert!(expiry.ttl(&caller(now + 10)) <= Duration::from_secs(10));
        assert_eq!(expiry.ttl(&caller(now + 100_000)), MAX_TTL);
        assert_eq!(expiry.ttl(&caller(now - 5)), Duration::ZERO);

        let cache = TokenCache::new(10, clock.clone());
        cache.insert(digest("expired"), caller(now - 1));
        cache.insert(digest("expires-now"), caller(now));
        assert_eq!(cache.len(), 0, "expired tokens are not cached");
        cache.insert(digest("live"), caller(now + 60));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&digest("live")).is_some());
    }

    #[test]
    fn the_cache_is_bounded_and_keyed_by_digest() {
        let clock = Clock::default();
        let cache = TokenCache::new(3, clock.clone());
        for i in 0..50 {
            cache.insert(digest(&format!("token-{i}")), caller(clock.now() + 60));
        }
        assert!(cache.len() <= 3, "{}", cache.len());
        assert_eq!(digest("abc"), digest("abc"));
        assert_ne!(digest("abc"), digest("abd"));
    }
}
