//! Where bucket state lives: the [`LimiterState`] trait and its in-memory
//! implementation, [`GovernorState`].
//!
//! A request's buckets are taken in one call, [`LimiterState::take_all`]: every one
//! of them or none (a refused request costs nothing of the buckets it would have
//! taken with the one that refused it), and [`LimiterState::give_back`] returns
//! takes when a limit kept elsewhere (a daily count) refuses after them. Keys reach
//! the state already hashed ([`KeyHasher`]): a shared store (Redis, for many
//! replicas) never sees a user id or a township code.

use super::Rate;
use futures::future::BoxFuture;
use governor::clock::{Clock, MonotonicClock, Reference};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
#[allow(
    clippy::disallowed_types,
    reason = "the buckets' lock is taken and released within one synchronous call, never held across an await"
)]
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `n` requests from the bucket `key` governed by `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take<'a> {
    pub key: &'a str,
    pub rate: Rate,
    /// 0 is read as 1.
    pub n: u32,
}

/// The take that did not fit, and how long until it would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Its index in the takes, or [`Refusal::UNAVAILABLE`].
    pub index: usize,
    pub retry_after: Duration,
}

impl Refusal {
    /// The index of a refusal that no take caused: the state could not be asked (a
    /// shared store out of reach, with the `closed` fallback).
    pub const UNAVAILABLE: usize = usize::MAX;

    /// A refusal because the state could not be asked; worth asking again after
    /// `retry_after`.
    pub fn unavailable(retry_after: Duration) -> Refusal {
        Refusal {
            index: Refusal::UNAVAILABLE,
            retry_after,
        }
    }

    /// Whether the state could not be asked (rather than a take not fitting).
    pub fn is_unavailable(&self) -> bool {
        self.index == Refusal::UNAVAILABLE
    }
}

/// Where bucket state lives: in memory ([`GovernorState`]) or, for many replicas, on
/// Redis ([`super::redis::RedisLimits`]). It knows buckets and rates only, nothing
/// about users or grants.
pub trait LimiterState: Send + Sync + fmt::Debug {
    /// Takes every one of `takes` or none of them: `Ok(())`, or the first that does
    /// not fit and how long until it would (`n` beyond the burst never fits: the
    /// whole window). A rate that is not enforced ([`Rate::is_enforced`]) takes
    /// nothing. A shared store that cannot be asked and must not guess refuses with
    /// [`Refusal::unavailable`].
    fn take_all<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, Result<(), Refusal>>;

    /// Gives back what an earlier [`LimiterState::take_all`] of these `takes`
    /// took (a bucket never refills beyond full).
    fn give_back<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, ()>;

    /// Forgets buckets that are back to full (indistinguishable from new ones) and
    /// returns their memory; returns how many buckets remain.
    fn sweep(&self) -> usize;

    /// Buckets currently held.
    fn len(&self) -> usize;

    /// Whether no bucket is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Turns a limit's key (`user:<sub>`, `township:<code>`, …) into what the stores
/// see: HMAC-SHA-256 under a secret, the first 16 bytes in hex. Replicas sharing a
/// store must share the secret (the gateway derives it from the pseudonym key).
#[derive(Clone)]
pub struct KeyHasher(Hmac<Sha256>);

impl KeyHasher {
    /// A hasher under `secret` (any length).
    pub fn new(secret: &[u8]) -> KeyHasher {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => KeyHasher(mac),
            Err(_) => KeyHasher::random(),
        }
    }

    /// A hasher under a random secret: keys stable for this process only.
    pub fn random() -> KeyHasher {
        let secret: [u8; 32] = rand::random();
        KeyHasher::new(&secret)
    }

    /// The hashed key.
    pub fn key(&self, clear: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(clear.as_bytes());
        let digest = mac.finalize().into_bytes();
        hex::encode(digest.get(..16).unwrap_or_default())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher")
    }
}

/// A rate as GCRA parameters, in nanoseconds: one request every `t`, and `tau`
/// (`t` times the burst less one) of credit. `None` when the rate is off. The Redis
/// state ([`super::redis`]) runs the same algorithm in Lua with these parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gcra {
    pub(super) t: u64,
    pub(super) tau: u64,
    pub(super) window: Duration,
}

impl Gcra {
    pub(super) fn of(rate: Rate) -> Option<Gcra> {
        if !rate.is_enforced() {
            return None;
        }
        let period = (Duration::from_secs(u64::from(rate.window_s)) / rate.count)
            .max(Duration::from_nanos(1));
        let t = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let burst = u64::from(rate.burst.max(1));
        Some(Gcra {
            t,
            tau: t.saturating_mul(burst - 1),
            window: Duration::from_secs(u64::from(rate.window_s)),
        })
    }

    /// What `n` requests at once take beyond the first (`t` times `n - 1`); more than
    /// `tau` never fits.
    pub(super) fn additional(&self, n: u32) -> u64 {
        self.t.saturating_mul(u64::from(n.max(1)) - 1)
    }

    /// The bucket's next theoretical arrival time after taking `n` at `now` from
    /// `tat`, and what is left of the burst; or how long until it would fit.
    fn take(&self, tat: Option<u64>, now: u64, n: u32) -> Result<(u64, u32), Duration> {
        let additional = self.additional(n);
        if additional > self.tau {
            return Err(self.window);
        }
        let tat = tat.unwrap_or(now);
        let earliest = tat.saturating_add(additional).saturating_sub(self.tau);
        if now < earliest {
            return Err(Duration::from_nanos(earliest - now));
        }
        let next = tat
            .max(now)
            .saturating_add(self.t)
            .saturating_add(additional);
        let full = self.tau.saturating_add(self.t);
        let left = (now.saturating_add(full).saturating_sub(next)).min(full) / self.t;
        Ok((next, u32::try_from(left).unwrap_or(u32::MAX)))
    }
}

/// Bucket state in memory: a GCRA (token bucket) per key and rate — a theoretical
/// arrival time in nanoseconds — in one map behind a mutex held for the few
/// microseconds a request's takes need, so that they are taken together or not at
/// all. Nothing is evicted by itself; [`LimiterState::sweep`] is what bounds memory.
///
/// Generic over the clock so tests can move time with
/// `governor::clock::FakeRelativeClock`; the default is the std monotonic clock.
#[allow(
    clippy::disallowed_types,
    reason = "the buckets' lock is taken and released within one synchronous call, never held across an await"
)]
pub struct GovernorState<C: Clock = MonotonicClock> {
    clock: C,
    start: C::Instant,
    buckets: Mutex<HashMap<Rate, HashMap<String, u64>>>,
}

impl GovernorState {
    /// State on the std monotonic clock.
    pub fn new() -> Self {
        GovernorState::with_clock(MonotonicClock)
    }
}

impl Default for GovernorState {
    fn default() -> Self {
        GovernorState::new()
    }
}

impl<C> GovernorState<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    /// State on the given clock.
    #[allow(
        clippy::disallowed_types,
        reason = "the buckets' lock is taken and released within one synchronous call, never held across an await"
    )]
    pub fn with_clock(clock: C) -> Self {
        let start = clock.now();
        GovernorState {
            clock,
            start,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    fn buckets(&self) -> MutexGuard<'_, HashMap<Rate, HashMap<String, u64>>> {
        // A panic elsewhere cannot leave a half-made take: takes are undone before
        // the guard is dropped. Carry on with the state as it is.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one request from the bucket `key` governed by `rate`: `Ok(requests left
    /// in the burst)` or `Err(how long until one request would be allowed)`. A rate
    /// that is not enforced takes nothing and answers `Ok(u32::MAX)`.
    pub fn take(&self, key: &str, rate: Rate) -> Result<u32, Duration> {
        self.take_n(key, rate, 1)
    }

    /// Takes `n` requests (0 is read as 1) at once, or none: as
    /// [`GovernorState::take`], with `Err` saying how long until all `n` would be
    /// allowed. `n` beyond the burst never fits: `Err` of the whole window.
    pub fn take_n(&self, key: &str, rate: Rate, n: u32) -> Result<u32, Duration> {
        match self.take_now(&[Take { key, rate, n }]) {
            Ok(left) => Ok(left.first().copied().unwrap_or(u32::MAX)),
            Err(refusal) => Err(refusal.retry_after),
        }
    }

    /// Every take or none; what each left of its burst.
    fn take_now(&self, takes: &[Take<'_>]) -> Result<Vec<u32>, Refusal> {
        let now = self.now();
        let mut buckets = self.buckets();
        let mut undo: Vec<(Rate, &str, Option<u64>)> = Vec::with_capacity(takes.len());
        let mut left = Vec::with_capacity(takes.len());
        let mut refused = None;
        for (index, take) in takes.iter().enumerate() {
            let Some(gcra) = Gcra::of(take.rate) else {
                left.push(u32::MAX);
                continue;
            };
            let keyed = buckets.entry(take.rate).or_default();
            let tat = keyed.get(take.key).copied();
            match gcra.take(tat, now, take.n) {
                Ok((next, remaining)) => {
                    keyed.insert(take.key.to_owned(), next);
                    undo.push((take.rate, take.key, tat));
                    left.push(remaining);
                }
                Err(retry_after) => {
                    refused = Some(Refusal { index, retry_after });
                    break;
                }
            }
        }
        let Some(refusal) = refused else {
            return Ok(left);
        };
        for (rate, key, tat) in undo.into_iter().rev() {
            if let Some(keyed) = buckets.get_mut(&rate) {
                match tat {
                    Some(tat) => {
                        keyed.insert(key.to_owned(), tat);
                    }
                    None => {
                        keyed.remove(key);
                    }
                }
            }
        }
        Err(refusal)
    }

    fn give_back_now(&self, takes: &[Take<'_>]) {
        let now = self.now();
        let mut buckets = self.buckets();
        for take in takes {
            let Some(gcra) = Gcra::of(take.rate) else {
                continue;
            };
            if let Some(tat) = buckets
                .get_mut(&take.rate)
                .and_then(|keyed| keyed.get_mut(take.key))
            {
                let taken = gcra.t.saturating_mul(u64::from(take.n.max(1)));
                *tat = tat.saturating_sub(taken).max(now);
            }
        }
    }
}

impl<C> LimiterState for GovernorState<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    fn take_all<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, Result<(), Refusal>> {
        let taken = self.take_now(takes).map(|_| ());
        Box::pin(std::future::ready(taken))
    }

    fn give_back<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, ()> {
        self.give_back_now(takes);
        Box::pin(std::future::ready(()))
    }

    fn sweep(&self) -> usize {
        let now = self.now();
        let mut buckets = self.buckets();
        // A bucket whose arrival time has passed is full: the same as a new one.
        buckets.retain(|_, keyed| {
            keyed.retain(|_, tat| *tat > now);
            keyed.shrink_to_fit();
            !keyed.is_empty()
        });
        buckets.shrink_to_fit();
        buckets.values().map(HashMap::len).sum()
    }

    fn len(&self) -> usize {
        self.buckets().values().map(HashMap::len).sum()
    }
}

impl<C> fmt::Debug for GovernorState<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys.
        f.debug_struct("GovernorState")
            .field("buckets", &self.len())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[tokio::test]
    async fn a_requests_takes_are_taken_together_or_not_at_all() {
        let state = GovernorState::with_clock(FakeRelativeClock::default());
        let two = Rate::per_minute(2);
        let one = Rate::per_minute(1);
        let takes = [
            Take {
                key: "a",
                rate: two,
                n: 1,
            },
            Take {
                key: "b",
                rate: one,
                n: 1,
            },
        ];
        state.take_all(&takes).await.unwrap();
        // `b` is empty: `a` is not taken either.
        let refused = state.take_all(&takes).await.unwrap_err();
        assert_eq!(refused.index, 1);
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        assert_eq!(state.take("a", two), Ok(0));
        // Given back, `a` has room again.
        state.give_back(&takes[..1]).await;
        assert_eq!(state.take("a", two), Ok(0));
    }

    #[test]
    fn keys_are_hashed_under_the_secret() {
        let one = KeyHasher::new(b"secret");
        let key = one.key("user:zhang.wei");
        assert_eq!(key.len(), 32);
        assert!(!key.contains("zhang"));
        assert_eq!(key, KeyHasher::new(b"secret").key("user:zhang.wei"));
        assert_ne!(key, KeyHasher::new(b"other").key("user:zhang.wei"));
        assert_ne!(key, one.key("user:li.na"));
    }
}
