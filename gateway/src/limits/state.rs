//! Where bucket state lives: the [`LimiterState`] trait and its in-memory governor
//! implementation, [`GovernorState`].

use super::Rate;
use arc_swap::ArcSwap;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Where bucket state lives. In memory ([`GovernorState`]) now; a shared store for many
/// replicas later. It knows buckets and rates only, nothing about users or grants.
pub trait LimiterState: Send + Sync + fmt::Debug {
    /// Takes one request from the bucket `key` governed by `rate`: `Ok(requests left in
    /// the burst)` or `Err(how long until one request would be allowed)`. A rate that
    /// is not enforced ([`Rate::is_enforced`]) takes nothing and answers `Ok(u32::MAX)`.
    fn take(&self, key: &str, rate: Rate) -> Result<u32, Duration> {
        self.take_n(key, rate, 1)
    }

    /// Takes `n` requests (0 is read as 1) at once, or none: as [`LimiterState::take`],
    /// with `Err` saying how long until all `n` would be allowed. `n` beyond the burst
    /// never fits: `Err` of the whole window.
    fn take_n(&self, key: &str, rate: Rate, n: u32) -> Result<u32, Duration>;

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

/// The governor quota of an enforced rate: one request every `window_s / count`
/// (at least 1 ns), bursts of `burst` (0 read as 1). `None` when the rate is off.
fn quota(rate: Rate) -> Option<Quota> {
    if !rate.is_enforced() {
        return None;
    }
    let period =
        (Duration::from_secs(u64::from(rate.window_s)) / rate.count).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

type KeyedLimiter<C> =
    RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>;

/// Bucket state in memory, with governor: one keyed limiter (GCRA state in a
/// `DashMap`) per distinct [`Rate`], created on first use.
///
/// The limiters sit in an [`ArcSwap`]ed map: lookups are lock-free, and adding a rate
/// (rare: there are as many rates as configured limits) copies the map. Governor's
/// keyed state never evicts by itself; [`LimiterState::sweep`] is what bounds memory.
/// Limiters for rates no longer used stay (empty) until restart.
///
/// Generic over the clock so tests can move time with
/// `governor::clock::FakeRelativeClock`; the default is the std monotonic clock.
pub struct GovernorState<C: Clock = MonotonicClock> {
    clock: C,
    limiters: ArcSwap<HashMap<Rate, Arc<KeyedLimiter<C>>>>,
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
    pub fn with_clock(clock: C) -> Self {
        GovernorState {
            clock,
            limiters: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The limiter for `rate`, created on first use.
    fn limiter(&self, rate: Rate, quota: Quota) -> Option<Arc<KeyedLimiter<C>>> {
        if let Some(limiter) = self.limiters.load().get(&rate) {
            return Some(Arc::clone(limiter));
        }
        let fresh: Arc<KeyedLimiter<C>> =
            Arc::new(RateLimiter::dashmap_with_clock(quota, self.clock.clone()).with_middleware());
        // Two threads may race to add the same rate; `rcu` retries on conflict and the
        // first insert wins, so every caller ends up with the same limiter.
        self.limiters.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(rate).or_insert_with(|| Arc::clone(&fresh));
            map
        });
        self.limiters.load().get(&rate).cloned()
    }

    fn each_limiter(&self, mut f: impl FnMut(&KeyedLimiter<C>)) {
        for limiter in self.limiters.load().values() {
            f(limiter);
        }
    }
}

impl<C> LimiterState for GovernorState<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    fn take_n(&self, key: &str, rate: Rate, n: u32) -> Result<u32, Duration> {
        let Some(quota) = quota(rate) else {
            return Ok(u32::MAX);
        };
        let Some(limiter) = self.limiter(rate, quota) else {
            // Unreachable in practice (the map only grows); fail open rather than
            // refuse everyone because of a bookkeeping race.
            return Ok(u32::MAX);
        };
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&key.to_owned(), n) {
            Ok(Ok(snapshot)) => Ok(snapshot.remaining_burst_capacity()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            Err(_insufficient) => Err(Duration::from_secs(u64::from(rate.window_s))),
        }
    }

    fn sweep(&self) -> usize {
        let mut remaining = 0usize;
        self.each_limiter(|limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            remaining = remaining.saturating_add(limiter.len());
        });
        remaining
    }

    fn len(&self) -> usize {
        let mut held = 0usize;
        self.each_limiter(|limiter| held = held.saturating_add(limiter.len()));
        held
    }
}

impl<C> fmt::Debug for GovernorState<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys: they name users and townships.
        f.debug_struct("GovernorState")
            .field("rates", &self.limiters.load().len())
            .field("buckets", &self.len())
            .finish()
    }
}
