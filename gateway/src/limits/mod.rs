//! Rate limits: they protect the departments' systems and share capacity fairly
//! between callers.
//!
//! This module owns five kinds of limit and the 429 answer when one is reached:
//!
//! - **user** — each user's (token `sub`) own rate, from `rate_limits.per_user`;
//! - **township** — each township's rate, shared by all its users, from
//!   `rate_limits.per_township`;
//! - **grant** — a policy grant's `quota: { per_minute, per_day }`, counted per township
//!   using the grant (per user for a caller without a township);
//! - **grant user share** — each user's share of a grant's daily quota,
//!   `quota: { per_user_per_day }` (by default `rate_limits.grant_user_share_percent`
//!   of `per_day`, rounded up), so that one user cannot use up their township's quota;
//! - **connector** — the department's `capacity:`, counted across all callers, for real
//!   upstream calls only (the pipeline does not check it for cache hits).
//!
//! The user and township limits count **department lookups**: `/v1/query` costs one, a
//! form fill costs the most lookups its form can make (household members included,
//! up to the form's row cap), taken whole before the fill starts — a fill that does not
//! fit is refused whole, nothing is fetched. Grant quotas and capacities are taken by
//! each lookup as it is made.
//!
//! Rates (`per_user`, `per_township`, a grant's `per_minute`, a capacity) are GCRA token
//! buckets in memory ([`GovernorState`]): a bucket holds `burst` requests and refills evenly
//! over the window, so windows slide. A grant's **daily** quota and its user share are
//! counters of the calendar day in China Standard Time (UTC+8), which start again at
//! midnight ([`daily`]); they survive a restart (kept in `quota.db`, see
//! [`DayCounts`] for what a crash can cost).
//!
//! Each call takes its limits together or not at all: a caller's user and township
//! buckets in one [`LimiterState::take_all`] (a request the township refuses costs
//! the user nothing), a grant's per-minute bucket and its two daily counters (the
//! minute's request is given back when a daily counter refuses). The user comes
//! before the township in the answer (a user over their own limit is named as such),
//! a grant's per-minute before its daily quota (a request refused for speed does
//! not cost a day's request), the user's share before the township's total. The
//! pipeline calls caller, grant, then connector.
//!
//! Keys (`user:<sub>`, `township:<code>`, a grant's counters) are hashed with a keyed
//! HMAC ([`KeyHasher`]) before they reach the bucket or day-count state, so no store
//! sees a user id or a township code.
//!
//! Bucket state lives behind [`LimiterState`] ([`GovernorState`] in memory), daily
//! counts behind [`DayCountState`] ([`DayCounts`]). The state never evicts keys on its
//! own: [`RateLimits::spawn_sweeper`] forgets buckets that are back to full and counts
//! of past days, which bounds memory by the callers active within one window or day.
//!
//! For many replicas both live on Redis instead ([`redis::RedisLimits`],
//! `rate_limits.backend: redis`), exact across replicas; keys there expire by
//! themselves. While Redis cannot be reached, each replica enforces its share of every
//! limit in memory, or (`fallback: closed`) refuses: such a refusal is a [`Limited`]
//! whose limit is [`UNAVAILABLE_LIMIT`] ([`Limited::is_unavailable`]).

mod config;
pub mod daily;
pub mod redis;
mod sqlite;
mod state;
#[cfg(test)]
mod tests;

pub use self::redis::{Fallback, RedisLimits, RedisSettings};
pub use config::{LimitSetting, LimitsBackend, Rate, RateLimitsConfig};
pub use daily::{DAY_COUNTS_FILE, DayCountState, DayCounter, DayCounts};
pub use state::{GovernorState, KeyHasher, LimiterState, Refusal, Take};

use crate::policy::Quota;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Why a store of limit state (buckets, daily counts) failed. Backend-neutral: a
/// backend's own failure is carried as its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The store cannot answer right now (a task failed, a connection is down).
    #[error("the limits store is unavailable: {0}")]
    Unavailable(String),
    /// The store failed (the backend's own message, e.g. SQLite's).
    #[error("{0}")]
    Backend(String),
}

/// Which limit stopped a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// `"user"`, `"township"`, `"grant:<grant id>"` (the grant's quota, the township's
    /// whole), `"grant:<grant id>:user"` (the user's share of its daily quota) or
    /// `"connector:<connector id>"` — never a user id or township code.
    pub limit: String,
    pub rate: Rate,
    /// How long until the request would be allowed again.
    pub retry_after: Duration,
    /// Department lookups the request needed (a form's cost; 1 for one lookup).
    pub cost: u32,
}

pub(crate) const CONNECTOR_PREFIX: &str = "connector:";
pub(crate) const GRANT_PREFIX: &str = "grant:";
pub(crate) const USER_SHARE_SUFFIX: &str = ":user";
/// The `limit` of a refusal because the limits' shared store (Redis) cannot be reached
/// and the deployment chose to refuse then (`fallback: closed`): no limit was reached.
pub const UNAVAILABLE_LIMIT: &str = "rate-limits-unavailable";

impl Limited {
    /// Whether this is the department's protection (connector capacity) rather than the
    /// caller's own limit.
    pub fn is_department(&self) -> bool {
        self.limit.starts_with(CONNECTOR_PREFIX)
    }

    /// Whether the limits could not be checked at all (their shared store is out of
    /// reach and the deployment refuses then): a 503, not the caller's doing.
    pub fn is_unavailable(&self) -> bool {
        self.limit == UNAVAILABLE_LIMIT
    }

    /// Whole seconds to wait, rounded up, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        let d = self.retry_after;
        d.as_secs()
            .saturating_add(u64::from(d.subsec_nanos() > 0))
            .max(1)
    }
}

/// The kinds of limit, in the order of the `refused` counters.
const KINDS: [&str; 6] = [
    "user",
    "township",
    "grant",
    "grant_user_share",
    "connector",
    "verify_mismatches",
];
const USER: usize = 0;
const TOWNSHIP: usize = 1;
const GRANT: usize = 2;
const GRANT_USER_SHARE: usize = 3;
const CONNECTOR: usize = 4;
const VERIFY_MISMATCHES: usize = 5;

/// The `limit` of a verification refused because its subject met too many mismatches.
pub const MISMATCHES_SUBJECT_LIMIT: &str = "verify-mismatches:subject";
/// The `limit` of a verification refused because its user met too many mismatches.
pub const MISMATCHES_USER_LIMIT: &str = "verify-mismatches:user";

/// A day's length in seconds: the window of a daily quota.
pub(crate) const DAY_S: u32 = 86_400;
/// China Standard Time's offset from UTC, in seconds.
const CST_OFFSET_S: i64 = 8 * 3600;

/// The time of day, for daily quotas: the system clock, or a test's.
#[derive(Clone)]
struct WallClock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

/// The calendar day of `now` in China Standard Time, and how long until it ends.
fn china_day(now: DateTime<Utc>) -> (NaiveDate, Duration) {
    let local = now + chrono::Duration::seconds(CST_OFFSET_S);
    let day = local.date_naive();
    let into_day = local.time().signed_duration_since(chrono::NaiveTime::MIN);
    let left = (chrono::Duration::days(1) - into_day)
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    (day, left)
}

/// How long a caller refused by [`daily::UNAVAILABLE`] is told to wait.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// The refusal of a request whose limits could not be checked (see
/// [`Limited::is_unavailable`]); `rate` is the first limit it would have been counted
/// against. Not counted among the limits' refusals.
fn unavailable(rate: Rate, retry_after: Duration, cost: u32) -> Limited {
    Limited {
        limit: UNAVAILABLE_LIMIT.to_owned(),
        rate,
        retry_after,
        cost,
    }
}

/// The gateway's limits over a bucket state and a day-count state.
#[derive(Debug)]
pub struct RateLimits {
    per_user: Option<Rate>,
    per_township: Option<Rate>,
    mismatches_per_subject: Option<Rate>,
    mismatches_per_user: Option<Rate>,
    /// Each user's default share of a grant's daily quota, in percent.
    user_share_percent: u32,
    sweep_interval: Duration,
    state: Arc<dyn LimiterState>,
    days: Arc<dyn DayCountState>,
    /// What bucket and counter keys become before they reach `state` and `days`.
    keys: KeyHasher,
    clock: WallClock,
    refused: [AtomicU64; 6],
}

/// A verification's place in its subject's and user's mismatch budgets, taken before
/// it runs ([`RateLimits::take_mismatch`]); given back when it found no mismatch.
#[derive(Debug)]
#[must_use = "a verification without a mismatch gives its place back"]
pub struct MismatchPlace {
    /// (hashed key, rate) of each bucket taken from.
    taken: Vec<(String, Rate)>,
}

impl RateLimits {
    /// Limits from the `rate_limits:` section over bucket `state` and daily counts
    /// `days`. Never panics: a limit with a zero count or window is off, a zero burst
    /// is 1, the sweep interval is clamped to 1 s ..= 1 day, the user share to
    /// 1 ..= 100 % (`validate` rejects all of these first).
    pub fn new(
        config: &RateLimitsConfig,
        state: Arc<dyn LimiterState>,
        days: Arc<dyn DayCountState>,
    ) -> RateLimits {
        let enforced = |setting: LimitSetting| setting.rate().filter(Rate::is_enforced);
        RateLimits {
            per_user: enforced(config.per_user),
            per_township: enforced(config.per_township),
            mismatches_per_subject: enforced(config.verify_mismatches_per_subject),
            mismatches_per_user: enforced(config.verify_mismatches_per_user),
            user_share_percent: config.grant_user_share_percent.clamp(1, 100),
            sweep_interval: config.sweep_interval(),
            state,
            days,
            keys: KeyHasher::random(),
            clock: WallClock(Arc::new(Utc::now)),
            refused: Default::default(),
        }
    }

    /// The same limits with keys hashed under `secret`, so that they stay the same
    /// across restarts (the daily counts are kept by key) and replicas sharing the
    /// stores; by default a random secret of this process.
    pub fn with_key_secret(mut self, secret: &[u8]) -> RateLimits {
        self.keys = KeyHasher::new(secret);
        self
    }

    /// The same limits on another clock for daily quotas (tests move time).
    #[cfg(test)]
    pub(crate) fn with_wall_clock(
        mut self,
        now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> RateLimits {
        self.clock = WallClock(Arc::new(now));
        self
    }

    fn refuse(
        &self,
        kind: usize,
        limit: String,
        rate: Rate,
        retry_after: Duration,
        cost: u32,
    ) -> Limited {
        if let Some(counter) = self.refused.get(kind) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Limited {
            limit,
            rate,
            retry_after,
            cost,
        }
    }

    /// Takes every one of `takes` (`(kind, limit name, bucket)`) or none, with keys
    /// hashed; the first that does not fit is the answer.
    async fn take_all(&self, takes: &[(usize, &str, Take<'_>)]) -> Result<(), Limited> {
        let hashed: Vec<String> = takes.iter().map(|(_, _, t)| self.keys.key(t.key)).collect();
        let buckets: Vec<Take<'_>> = takes
            .iter()
            .zip(&hashed)
            .map(|((_, _, t), key)| Take { key, ..*t })
            .collect();
        match self.state.take_all(&buckets).await {
            Ok(()) => Ok(()),
            Err(refusal) if refusal.is_unavailable() => {
                let Some(&(_, _, take)) = takes.first() else {
                    return Ok(());
                };
                Err(unavailable(take.rate, refusal.retry_after, take.n))
            }
            Err(Refusal { index, retry_after }) => {
                // The state names one of the takes; should it not, the first answers.
                let Some(&(kind, limit, take)) = takes.get(index).or(takes.first()) else {
                    return Ok(());
                };
                Err(self.refuse(kind, limit.to_owned(), take.rate, retry_after, take.n))
            }
        }
    }

    /// The caller's own limits for a request that makes `lookups` department lookups
    /// (at least 1 is counted): the user (bucket `user:<sub>`), then the township
    /// (bucket `township:<code>`, skipped for a caller without one). A user over their
    /// own limit is refused before touching the township's bucket. A request needing
    /// more than a limit's burst is always refused (with the whole window to wait).
    pub async fn check_caller(
        &self,
        user: &str,
        township: Option<&str>,
        lookups: u32,
    ) -> Result<(), Limited> {
        let n = lookups.max(1);
        let user_key = format!("user:{user}");
        let township_key = township.map(|t| format!("township:{t}"));
        let mut takes = Vec::with_capacity(2);
        if let Some(rate) = self.per_user {
            takes.push((
                USER,
                "user",
                Take {
                    key: &user_key,
                    rate,
                    n,
                },
            ));
        }
        if let (Some(rate), Some(key)) = (self.per_township, &township_key) {
            takes.push((TOWNSHIP, "township", Take { key, rate, n }));
        }
        self.take_all(&takes).await
    }

    /// A grant's quota for one lookup: `per_minute` (a bucket), then the daily
    /// counters — the user's share, then the whole — taken together or not at all.
    /// The quota is counted per township using the grant, or per user for a caller
    /// without a township. The user's share is `per_user_per_day`, or for a caller
    /// with a township `grant_user_share_percent` of `per_day` (rounded up); a share
    /// not below the whole is not counted apart.
    pub async fn check_grant(
        &self,
        grant_id: &str,
        quota: &Quota,
        township: Option<&str>,
        user: &str,
    ) -> Result<(), Limited> {
        let limit = format!("{GRANT_PREFIX}{grant_id}");
        // The id's length makes the key unambiguous whatever characters ids contain.
        let key = match township {
            Some(t) => format!("grant:{}:{grant_id}:township:{t}", grant_id.len()),
            None => format!("grant:{}:{grant_id}:user:{user}", grant_id.len()),
        };
        let per_minute = quota
            .per_minute
            .map(Rate::per_minute)
            .filter(Rate::is_enforced);
        let hashed_key = self.keys.key(&key);
        let minute = per_minute.map(|rate| Take {
            key: &hashed_key,
            rate,
            n: 1,
        });
        if let Some(rate) = per_minute {
            self.take_all(&[(
                GRANT,
                &limit,
                Take {
                    key: &key,
                    rate,
                    n: 1,
                },
            )])
            .await?;
        }
        let whole = quota.per_day.filter(|n| *n > 0);
        let default_share = || {
            let percent = u64::from(self.user_share_percent);
            whole.filter(|_| township.is_some()).map(|n| {
                let share = (u64::from(n) * percent).div_ceil(100);
                u32::try_from(share).unwrap_or(n).max(1)
            })
        };
        let share = quota
            .per_user_per_day
            .filter(|n| *n > 0)
            .or_else(default_share)
            .filter(|share| whole.is_none_or(|whole| *share < whole));
        if whole.is_none() && share.is_none() {
            return Ok(());
        }
        let share_key = share.map(|_| {
            self.keys
                .key(&format!("grant:{}:{grant_id}:share:{user}", grant_id.len()))
        });
        let share = share_key
            .as_deref()
            .zip(share)
            .map(|(key, limit)| DayCounter { key, limit });
        let whole = whole.map(|limit| DayCounter {
            key: &hashed_key,
            limit,
        });
        // The share first: a user over it takes nothing from the township's whole.
        let mut counters = [DayCounter { key: "", limit: 0 }; 2];
        let mut n = 0;
        for counter in [share, whole].into_iter().flatten() {
            if let Some(slot) = counters.get_mut(n) {
                *slot = counter;
                n += 1;
            }
        }
        let counters = counters.get(..n).unwrap_or_default();
        let (day, left) = china_day((self.clock.0)());
        match self.days.take(day, counters, 1).await {
            Ok(()) => Ok(()),
            Err(daily::UNAVAILABLE) => {
                if let Some(minute) = minute {
                    self.state.give_back(&[minute]).await;
                }
                let limit = counters.last().map_or(0, |c| c.limit);
                Err(unavailable(Rate::per_day(limit), UNAVAILABLE_RETRY, 1))
            }
            Err(i) => {
                // The grant's quota is taken together or not at all: the minute's
                // request is given back.
                if let Some(minute) = minute {
                    self.state.give_back(&[minute]).await;
                }
                let refused = counters.get(i).map_or(0, |c| c.limit);
                let rate = Rate::per_day(refused);
                if share.is_some() && i == 0 {
                    let limit = format!("{limit}{USER_SHARE_SUFFIX}");
                    Err(self.refuse(GRANT_USER_SHARE, limit, rate, left, 1))
                } else {
                    Err(self.refuse(GRANT, limit, rate, left, 1))
                }
            }
        }
    }

    /// A place in the mismatch budgets of `subject` (its pseudonym) and `user`, before
    /// a verification: refused (subject first) once either has met its
    /// `verify_mismatches_*` limit. A verification that finds no mismatch gives it
    /// back ([`RateLimits::give_back_mismatch`]), so only mismatches count.
    pub async fn take_mismatch(&self, subject: &str, user: &str) -> Result<MismatchPlace, Limited> {
        let subject_key = format!("verify-mismatch:subject:{subject}");
        let user_key = format!("verify-mismatch:user:{user}");
        let mut takes = Vec::with_capacity(2);
        if let Some(rate) = self.mismatches_per_subject {
            let key = subject_key.as_str();
            takes.push((
                VERIFY_MISMATCHES,
                MISMATCHES_SUBJECT_LIMIT,
                Take { key, rate, n: 1 },
            ));
        }
        if let Some(rate) = self.mismatches_per_user {
            let key = user_key.as_str();
            takes.push((
                VERIFY_MISMATCHES,
                MISMATCHES_USER_LIMIT,
                Take { key, rate, n: 1 },
            ));
        }
        self.take_all(&takes).await?;
        Ok(MismatchPlace {
            taken: takes
                .iter()
                .map(|(_, _, take)| (self.keys.key(take.key), take.rate))
                .collect(),
        })
    }

    /// Gives back a verification's place: it found no mismatch.
    pub async fn give_back_mismatch(&self, place: MismatchPlace) {
        let takes: Vec<Take<'_>> = place
            .taken
            .iter()
            .map(|(key, rate)| Take {
                key,
                rate: *rate,
                n: 1,
            })
            .collect();
        self.state.give_back(&takes).await;
    }

    /// A department's protection limit, for one upstream call (not for cache hits).
    pub async fn check_connector(&self, connector: &str, capacity: Rate) -> Result<(), Limited> {
        let limit = format!("{CONNECTOR_PREFIX}{connector}");
        let take = Take {
            key: &limit,
            rate: capacity,
            n: 1,
        };
        self.take_all(&[(CONNECTOR, &limit, take)]).await
    }

    /// Whether the daily counts' store could keep a count right now (for `/readyz`).
    pub async fn ready(&self) -> Result<(), StateError> {
        self.days.ready().await
    }

    /// Makes the daily counts durable exactly as they stand; call at shutdown.
    pub async fn flush(&self) {
        if let Err(error) = self.days.flush().await {
            tracing::error!(%error, "daily quota counts could not be written at shutdown");
        }
    }

    /// Sweeps now and every `sweep_interval_s` after (on the blocking pool: a sweep
    /// walks every bucket), logging the number of buckets at debug level.
    ///
    /// Must be called inside a Tokio runtime. The task holds only a weak reference: it
    /// ends by itself once the last `Arc<RateLimits>` is dropped (e.g. replaced on a
    /// configuration reload), or when the handle is aborted. Dropping the handle alone
    /// does not stop it (Tokio detaches dropped tasks).
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.spawn_sweeper_every(self.sweep_interval)
    }

    fn spawn_sweeper_every(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<RateLimits> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(limits) = weak.upgrade() else {
                    break;
                };
                match tokio::task::spawn_blocking(move || limits.sweep()).await {
                    Ok(buckets) => tracing::debug!(buckets, "rate-limit state swept"),
                    Err(error) => tracing::warn!(%error, "rate-limit sweep failed"),
                }
            }
        })
    }

    /// Forgets buckets back to full and counts of past days, and returns memory;
    /// returns the buckets left.
    pub fn sweep(&self) -> usize {
        let (today, _) = china_day((self.clock.0)());
        self.days.sweep(today);
        self.state.sweep()
    }

    /// Daily quota counters currently held (today's).
    pub fn day_counters(&self) -> usize {
        self.days.len()
    }

    /// Buckets currently held.
    pub fn buckets(&self) -> usize {
        self.state.len()
    }

    /// How many requests each kind of limit refused since start:
    /// `("user" | "township" | "grant" | "grant_user_share" | "connector" |
    /// "verify_mismatches", count)`.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.refused)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }
}
