//! Rate limits: they protect the departments' systems and share capacity fairly
//! between callers.
//!
//! This module owns four kinds of limit and the 429 answer when one is reached:
//!
//! - **user** — each user's (token `sub`) own rate, from `rate_limits.per_user`;
//! - **township** — each township's rate, shared by all its users, from
//!   `rate_limits.per_township`;
//! - **grant** — a policy grant's `quota: { per_minute, per_day }`, counted per township
//!   using the grant (per user for a caller without a township);
//! - **connector** — the department's `capacity:`, counted across all callers, for real
//!   upstream calls only (the pipeline does not check it for cache hits).
//!
//! Every limit is a [`Rate`] enforced as a GCRA token bucket (governor): the bucket
//! holds `burst` requests and refills evenly over the window, so windows slide; a
//! `per_day` quota of N is a bucket of N refilled one request every 86400/N s, not a
//! calendar day that resets at midnight.
//!
//! Checks in one call take from each bucket in turn; when a later one refuses, the
//! earlier ones have already been consumed (there is no refund). The order limits the
//! damage: the user before the township (so one user over their own limit cannot drain
//! the township's bucket), a grant's per-minute before its per-day quota (a request
//! refused for speed does not cost a day's request). The pipeline calls caller, grant,
//! then connector.
//!
//! Bucket state lives behind [`LimiterState`] ([`GovernorState`] in memory). Governor
//! never evicts keys on its own: [`RateLimits::spawn_sweeper`] forgets buckets that are
//! back to full, which bounds memory by the callers active within one window.

mod config;
mod state;
#[cfg(test)]
mod tests;

pub use config::{LimitSetting, Rate, RateLimitsConfig};
pub use state::{GovernorState, LimiterState};

use crate::policy::Quota;
use crate::problem::{Problem, ProblemKind};
use axum::http::{HeaderName, HeaderValue, header};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Which limit stopped a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// `"user"`, `"township"`, `"grant:<grant id>"` or `"connector:<connector id>"` —
    /// never a user id or township code.
    pub limit: String,
    pub rate: Rate,
    /// How long until one request would be allowed again.
    pub retry_after: Duration,
}

const CONNECTOR_PREFIX: &str = "connector:";
const GRANT_PREFIX: &str = "grant:";

impl Limited {
    /// Whether this is the department's protection (connector capacity) rather than the
    /// caller's own limit.
    pub fn is_department(&self) -> bool {
        self.limit.starts_with(CONNECTOR_PREFIX)
    }

    /// Whole seconds to wait, rounded up, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        let d = self.retry_after;
        d.as_secs()
            .saturating_add(u64::from(d.subsec_nanos() > 0))
            .max(1)
    }

    /// The 429 answer: `department-capacity` for a connector's capacity, `rate-limited`
    /// otherwise; members `limit` and `retry_after_s`; headers `Retry-After`,
    /// `RateLimit-Policy` and `RateLimit`.
    pub fn problem(&self) -> Problem {
        let secs = self.retry_after_s();
        let rate = self.rate.describe();
        let (kind, detail) = if let Some(connector) = self.limit.strip_prefix(CONNECTOR_PREFIX) {
            (
                ProblemKind::DepartmentCapacity,
                format!(
                    "The department's system behind connector `{connector}` takes at most \
                     {rate} through the gateway, and that capacity is in use. This is not \
                     a limit on you. Try again in {secs} s."
                ),
            )
        } else {
            let which = match self.limit.as_str() {
                "user" => "your own rate limit".to_owned(),
                "township" => "your township's rate limit, shared by its users".to_owned(),
                other => match other.strip_prefix(GRANT_PREFIX) {
                    Some(grant) => format!("the quota of grant `{grant}`"),
                    None => format!("the `{other}` limit"),
                },
            };
            (
                ProblemKind::RateLimited,
                format!("You have reached {which} ({rate}). Try again in {secs} s."),
            )
        };
        let mut problem = Problem::new(kind, detail)
            .with("limit", self.limit.as_str())
            .with("retry_after_s", secs)
            .header(header::RETRY_AFTER, HeaderValue::from(secs));
        // RateLimit header fields, draft-ietf-httpapi-ratelimit-headers-11 (§3, §4):
        // `RateLimit-Policy` is a List of Items whose value is an sf-string naming the
        // policy, with `q` (quota) and `w` (window, seconds); `RateLimit` names the same
        // policy with `r` (available quota) and `t` (seconds within which no more than
        // `r` is available).
        let name = sf_string(&self.limit);
        let policy = format!("{name};q={};w={}", self.rate.count, self.rate.window_s);
        let current = format!("{name};r=0;t={secs}");
        for (field, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                problem = problem.header(HeaderName::from_static(field), value);
            }
        }
        problem
    }
}

/// `s` as a Structured Field String (RFC 9651 §3.3.3): quoted, `"` and `\` escaped.
/// An sf-string holds printable ASCII only, so any other character is written as the
/// percent-encoded bytes of its UTF-8 (the `limit` body member keeps the name as is).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// The kinds of limit, in the order of the `refused` counters.
const KINDS: [&str; 4] = ["user", "township", "grant", "connector"];
const USER: usize = 0;
const TOWNSHIP: usize = 1;
const GRANT: usize = 2;
const CONNECTOR: usize = 3;

/// The gateway's limits over a bucket state.
#[derive(Debug)]
pub struct RateLimits {
    per_user: Option<Rate>,
    per_township: Option<Rate>,
    sweep_interval: Duration,
    state: Arc<dyn LimiterState>,
    refused: [AtomicU64; 4],
}

impl RateLimits {
    /// Limits from the `rate_limits:` section over `state`. Never panics: a limit with
    /// a zero count or window is off, a zero burst is 1, the sweep interval is clamped
    /// to 1 s ..= 1 day (`validate` rejects all of these first).
    pub fn new(config: &RateLimitsConfig, state: Arc<dyn LimiterState>) -> RateLimits {
        let enforced = |setting: LimitSetting| setting.rate().filter(Rate::is_enforced);
        RateLimits {
            per_user: enforced(config.per_user),
            per_township: enforced(config.per_township),
            sweep_interval: config.sweep_interval(),
            state,
            refused: Default::default(),
        }
    }

    fn take(&self, kind: usize, limit: &str, key: &str, rate: Rate) -> Result<(), Limited> {
        match self.state.take(key, rate) {
            Ok(_) => Ok(()),
            Err(retry_after) => {
                if let Some(counter) = self.refused.get(kind) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(Limited {
                    limit: limit.to_owned(),
                    rate,
                    retry_after,
                })
            }
        }
    }

    /// The caller's own limits: the user (bucket `user:<sub>`), then the township
    /// (bucket `township:<code>`, skipped for a caller without one). A user over their
    /// own limit is refused before touching the township's bucket.
    pub fn check_caller(&self, user: &str, township: Option<&str>) -> Result<(), Limited> {
        if let Some(rate) = self.per_user {
            self.take(USER, "user", &format!("user:{user}"), rate)?;
        }
        if let (Some(rate), Some(township)) = (self.per_township, township) {
            self.take(TOWNSHIP, "township", &format!("township:{township}"), rate)?;
        }
        Ok(())
    }

    /// A grant's quota: `per_minute` then `per_day`, each that is set (and not 0),
    /// counted per township using the grant, or per user for a caller without a
    /// township. `per_day` is a sliding day (see the module documentation).
    pub fn check_grant(
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
        let rates = [
            quota.per_minute.map(Rate::per_minute),
            quota.per_day.map(Rate::per_day),
        ];
        for rate in rates.into_iter().flatten().filter(Rate::is_enforced) {
            self.take(GRANT, &limit, &key, rate)?;
        }
        Ok(())
    }

    /// A department's protection limit, for one upstream call (not for cache hits).
    pub fn check_connector(&self, connector: &str, capacity: Rate) -> Result<(), Limited> {
        let limit = format!("{CONNECTOR_PREFIX}{connector}");
        self.take(CONNECTOR, &limit, &limit, capacity)
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

    /// Forgets buckets back to full and returns memory; returns the buckets left.
    pub fn sweep(&self) -> usize {
        self.state.sweep()
    }

    /// Buckets currently held.
    pub fn buckets(&self) -> usize {
        self.state.len()
    }

    /// How many requests each kind of limit refused since start:
    /// `("user" | "township" | "grant" | "connector", count)`.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.refused)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }
}
