//! Rate limits and daily quotas on a shared Redis, exact across replicas:
//! [`RedisLimits`] is both the [`LimiterState`] and the [`DayCountState`] of every
//! replica of a county's gateway (`rate_limits.backend: redis`, [`RedisSettings`]).
//!
//! - **One round trip per request.** A request's buckets are one Lua script
//!   (`take.lua`): the GCRA of [`super::state`]'s in-memory state, run over every
//!   bucket at once on Redis's own clock (`TIME`, so replicas with skewed clocks
//!   agree), committed all or none. A grant's daily counters are another script
//!   (`day.lua`): each counter checked against its limit, then all counted, or none.
//! - **Keys expire by themselves.** A bucket's key lives until its bucket is full again
//!   (within the rate's window); a day's counter two days. Keys are
//!   `{PREFIX}:b:COUNT/WINDOW/BURST:HASH` and `{PREFIX}:d:YYYY-MM-DD:HASH`, where the
//!   hash is the caller's ([`super::KeyHasher`]): Redis never sees a user id or a
//!   township code. (The braces keep a gateway's keys in one hash slot.)
//! - **Short timeouts, and a fallback.** A request waits `timeout_ms` for Redis at most.
//!   When Redis does not answer, the replica says so once (a warning, and
//!   [`RedisLimits::degraded`] / [`RedisLimits::outages`] for metrics) and, until a
//!   background probe finds Redis back, answers without it: `fallback: local` enforces
//!   this replica's share of every limit in memory (the count, burst and daily limit
//!   divided by `replicas`, at least 1, the daily share less what Redis last said was
//!   used), `fallback: closed` refuses every take ([`Refusal::unavailable`],
//!   [`daily::UNAVAILABLE`]). Once Redis answers again its state is used again: what
//!   was counted in fallback stays in this replica's memory only.
//!
//! The address may carry a password: it is shown only through
//! [`crate::secrets::redact_url`], and errors from Redis are described by their kind
//! (refused, timed out, authentication failed, …), never by the address.

mod settings;
#[cfg(test)]
mod tests;

pub use settings::{Fallback, RedisSettings};

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, RedisError, Script};
use chrono::NaiveDate;
use dashmap::DashMap;
use futures::future::{BoxFuture, Either};

use super::daily::{self, DayCountState, DayCounter, DayCounts, Taking};
use super::state::{Gcra, GovernorState, LimiterState, Refusal, Take};
use super::{Rate, StateError};
use crate::secrets::redact_url;

/// How long a day's counter lives in Redis: past its day whatever the time zones.
const DAY_COUNTER_TTL_S: u64 = 2 * 86_400;

const TAKE: &str = include_str!("take.lua");
const GIVE_BACK: &str = include_str!("give_back.lua");
const DAY: &str = include_str!("day.lua");

/// Buckets and daily counts on Redis, with a fallback while it cannot be reached (see
/// the module docs). Cloning is cheap: clones share the connection and the fallback.
#[derive(Clone)]
pub struct RedisLimits {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    take: Script,
    give_back: Script,
    day: Script,
    /// `{key_prefix}`.
    prefix: String,
    /// The address, redacted: for messages.
    at: String,
    timeout: Duration,
    probe_every: Duration,
    fallback: Fallback,
    replicas: u32,
    /// This replica's share of the buckets, while Redis is out of reach.
    local: GovernorState,
    /// This replica's share of the daily counts, while Redis is out of reach.
    local_days: DayCounts,
    /// The counts Redis last gave for the daily counters this replica took from
    /// (hashed key → day, count): what the fallback's share is taken from.
    seen: DashMap<String, (NaiveDate, u32)>,
    degraded: AtomicBool,
    outages: AtomicU64,
    fallback_takes: AtomicU64,
}

impl RedisLimits {
    /// Connects to the Redis of `settings` (a relative `url_file` is relative to
    /// `base`, the folder of `gateway.yaml`) and starts the probe that ends a fallback.
    ///
    /// Settings that are wrong (no address, not a `redis://` address, a missing
    /// environment variable) and a refused password are errors. A Redis that cannot be
    /// reached is not: the replica starts in its fallback (with a warning) and uses
    /// Redis once it answers. Must be called inside a Tokio runtime.
    pub async fn connect(settings: &RedisSettings, base: &Path) -> Result<RedisLimits, StateError> {
        let (url, at) = resolve(settings, base)?;
        let client = open(&url, &at)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout()))
            .set_response_timeout(Some(settings.timeout()))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(settings.probe_interval());
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StateError::Backend(format!("Redis at {at}: {}", describe(&e, &url))))?;
        let inner = Arc::new(Inner {
            conn,
            take: Script::new(TAKE),
            give_back: Script::new(GIVE_BACK),
            day: Script::new(DAY),
            prefix: format!("{{{}}}", settings.key_prefix),
            at,
            timeout: settings.timeout(),
            probe_every: settings.probe_interval(),
            fallback: settings.fallback,
            replicas: settings.replicas(),
            local: GovernorState::new(),
            local_days: DayCounts::in_memory(),
            seen: DashMap::new(),
            degraded: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            fallback_takes: AtomicU64::new(0),
        });
        match inner.probe(settings.connect_timeout()).await {
            Ok(()) => {}
            Err(Failure::Redis(e)) if is_auth(&e) => {
                return Err(StateError::Backend(format!(
                    "Redis at {}: {}",
                    inner.at,
                    describe(&e, &url)
                )));
            }
            Err(failure) => inner.enter_outage(&failure),
        }
        spawn_probe(&inner);
        Ok(RedisLimits { inner })
    }

    /// Whether this replica is in its fallback right now (Redis out of reach).
    pub fn degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::SeqCst)
    }

    /// How many times this replica lost Redis since start (each outage once).
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// How many takes (buckets or daily counts) this replica answered without Redis
    /// since start.
    pub fn fallback_takes(&self) -> u64 {
        self.inner.fallback_takes.load(Ordering::Relaxed)
    }

    /// What a replica does while Redis is out of reach.
    pub fn fallback(&self) -> Fallback {
        self.inner.fallback
    }

    /// The Redis key of a bucket (tests look at its time to live).
    #[cfg(test)]
    fn bucket_key(&self, key: &str, rate: Rate) -> String {
        self.inner.bucket_key(key, rate)
    }

    /// The Redis key of a day's counter.
    #[cfg(test)]
    fn day_key(&self, day: NaiveDate, key: &str) -> String {
        self.inner.day_key(day, key)
    }
}

/// Says whether the Redis of `settings` answers and takes writes, for `gateway check`:
/// `Ok(what was found)` or `Err(what is wrong)` — unreachable, timed out,
/// authentication failed, a read-only replica, … — naming the address redacted,
/// never its password.
pub async fn check(settings: &RedisSettings, base: &Path) -> Result<String, StateError> {
    let (url, at) = resolve(settings, base)?;
    let client = open(&url, &at)?;
    let wrong = |e: &RedisError| {
        let what = format!("Redis at {at}: {}", describe(e, &url));
        if is_auth(e) {
            StateError::Backend(what)
        } else {
            StateError::Unavailable(what)
        }
    };
    let timeout = settings.connect_timeout().max(settings.timeout());
    let late = || {
        StateError::Unavailable(format!(
            "Redis at {at}: no answer within {} ms",
            timeout.as_millis()
        ))
    };
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(timeout));
    let mut conn = tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| late())?
    .map_err(|e| wrong(&e))?;
    let probe = format!("{{{}}}:probe", settings.key_prefix);
    let mut set = ::redis::cmd("SET");
    set.arg(&probe).arg(1).arg("PX").arg(1000);
    tokio::time::timeout(timeout, set.query_async::<()>(&mut conn))
        .await
        .map_err(|_| late())?
        .map_err(|e| wrong(&e))?;
    let time = ::redis::cmd("TIME");
    tokio::time::timeout(timeout, time.query_async::<(u64, u64)>(&mut conn))
        .await
        .map_err(|_| late())?
        .map_err(|e| wrong(&e))?;
    Ok(format!(
        "Redis at {at} answers and takes writes (fallback while it cannot be reached: {}, \
         {} replica(s))",
        settings.fallback.as_str(),
        settings.replicas()
    ))
}

/// The address of `settings` and the same redacted.
fn resolve(settings: &RedisSettings, base: &Path) -> Result<(String, String), StateError> {
    if let Some((path, message)) = settings.problems().into_iter().next() {
        return Err(StateError::Backend(format!(
            "rate_limits.redis.{path}: {message}"
        )));
    }
    let url = settings
        .server
        .clone()
        .relative_to(base)
        .resolve()
        .map_err(|e| StateError::Backend(format!("rate_limits.redis: {e}")))?;
    let at = redact_url(&url);
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StateError::Backend(format!(
            "rate_limits.redis: {at} is not a Redis address (`redis://` or `rediss://`)"
        )));
    }
    Ok((url, at))
}

/// A client for `url` (nothing is connected yet).
fn open(url: &str, at: &str) -> Result<Client, StateError> {
    Client::open(url).map_err(|e| {
        StateError::Backend(format!(
            "rate_limits.redis: {at} is not a usable Redis address ({})",
            describe(&e, url)
        ))
    })
}

/// Why Redis did not answer.
#[derive(Debug)]
enum Failure {
    Redis(RedisError),
    /// No answer within the timeout.
    Late(Duration),
    /// The script answered something else than it should.
    Answer,
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Redis(e) => describe(e, ""),
            Failure::Late(after) => format!("no answer within {} ms", after.as_millis()),
            Failure::Answer => "an unexpected answer to the limits' script".to_owned(),
        }
    }
}

fn is_auth(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        || e.detail().is_some_and(|d| d.contains("AUTH"))
}

/// What went wrong, in words that never hold the address or its password: the
/// error's kind, a server's error code, an I/O error's own text (with `url`'s
/// password, should it appear, masked).
fn describe(e: &RedisError, url: &str) -> String {
    let text = if is_auth(e) {
        "authentication failed: check the user and password (or the server wants one)".to_owned()
    } else if e.is_connection_refusal() {
        "unreachable (connection refused)".to_owned()
    } else if e.is_timeout() {
        "unreachable (timed out)".to_owned()
    } else if e.is_io_error() {
        // The I/O error's own text: the operating system's words.
        format!("unreachable ({e})")
    } else {
        match e.code() {
            Some("NOPERM") => "the user may not run what the limits need (EVALSHA, EVAL, \
                 SCRIPT, GET, SET, INCRBY, EXPIRE, DEL, TIME)"
                .to_owned(),
            Some("READONLY") => "a read-only replica: point the gateway at the primary".to_owned(),
            Some("OOM") => "out of memory (maxmemory reached)".to_owned(),
            Some("LOADING") => "still loading its data".to_owned(),
            Some(code) => format!("{} ({code})", e.category()),
            None => e.category().to_owned(),
        }
    };
    mask_password(&text, url)
}

/// `text` with the password of `url` (if any, and if it appears) replaced by `***`.
fn mask_password(text: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(password) if !password.is_empty() => text.replace(&password, "***"),
        _ => text.to_owned(),
    }
}

/// A rate as this replica's share of it: count and burst divided by `replicas`, at
/// least 1.
fn share_of(rate: Rate, replicas: u32) -> Rate {
    Rate {
        count: (rate.count / replicas).max(1),
        window_s: rate.window_s,
        burst: (rate.burst.max(1) / replicas).max(1),
    }
}

/// What is left of a daily `limit` after `used`, as this replica's share: divided by
/// `replicas`, at least 1 while anything is left.
fn day_share(limit: u32, used: u32, replicas: u32) -> u32 {
    let left = limit.saturating_sub(used);
    if left == 0 {
        0
    } else {
        (left / replicas).max(1)
    }
}

/// Probes Redis every `probe_every` while the replica is in its fallback, and ends the
/// fallback when Redis answers a write within a request's timeout (the first probe
/// after an outage may only start the reconnection, which goes on in the background).
/// Ends with the last clone of the limits.
fn spawn_probe(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let every = inner.probe_every;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = weak.upgrade() else {
                break;
            };
            // Within a request's timeout: a Redis too slow for requests is not back.
            if inner.degraded.load(Ordering::SeqCst) && inner.probe(inner.timeout).await.is_ok() {
                inner.recover();
            }
        }
    });
}

impl Inner {
    fn bucket_key(&self, key: &str, rate: Rate) -> String {
        format!(
            "{}:b:{}/{}/{}:{key}",
            self.prefix, rate.count, rate.window_s, rate.burst
        )
    }

    fn day_key(&self, day: NaiveDate, key: &str) -> String {
        format!("{}:d:{}:{key}", self.prefix, day.format("%Y-%m-%d"))
    }

    /// Whether Redis answers and takes a write within `within`.
    async fn probe(&self, within: Duration) -> Result<(), Failure> {
        let mut conn = self.conn.clone();
        let mut set = ::redis::cmd("SET");
        set.arg(format!("{}:probe", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(1000);
        match tokio::time::timeout(within, set.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Redis(e)),
            Err(_) => Err(Failure::Late(within)),
        }
    }

    /// Runs `script` within the timeout.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        invocation: &::redis::ScriptInvocation<'_>,
    ) -> Result<T, Failure> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Failure::Redis(e)),
            Err(_) => Err(Failure::Late(self.timeout)),
        }
    }

    /// Starts an outage (once): the warning, the counter.
    fn enter_outage(&self, failure: &Failure) {
        if !self.degraded.swap(true, Ordering::SeqCst) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            let reason = failure.describe();
            match self.fallback {
                Fallback::Local => tracing::warn!(
                    server = %self.at,
                    %reason,
                    replicas = self.replicas,
                    "Redis cannot be reached: rate limits and daily quotas are enforced \
                     per replica (each its share, limit ÷ replicas) until it answers again"
                ),
                Fallback::Closed => tracing::warn!(
                    server = %self.at,
                    %reason,
                    "Redis cannot be reached: every request the rate limits count is \
                     refused (fallback: closed) until it answers again"
                ),
            }
        }
    }

    /// Ends an outage: Redis answers.
    fn recover(&self) {
        if self.degraded.swap(false, Ordering::SeqCst) {
            tracing::info!(
                server = %self.at,
                "Redis answers again: rate limits and daily quotas are exact across replicas again"
            );
        }
    }

    /// The takes on Redis: `Ok(the answer)`, or why Redis did not give one.
    async fn redis_take(&self, takes: &[Take<'_>]) -> Result<Result<(), Refusal>, Failure> {
        let mut invocation = self.take.prepare_invoke();
        // Which take each key is, and its window.
        let mut sent: Vec<(usize, Duration)> = Vec::with_capacity(takes.len());
        for (index, take) in takes.iter().enumerate() {
            let Some(gcra) = Gcra::of(take.rate) else {
                continue;
            };
            let additional = gcra.additional(take.n);
            invocation
                .key(self.bucket_key(take.key, take.rate))
                .arg(gcra.t)
                .arg(gcra.tau)
                .arg(additional)
                .arg(u8::from(additional > gcra.tau));
            sent.push((index, gcra.window));
        }
        if sent.is_empty() {
            return Ok(Ok(()));
        }
        let answer: Vec<i64> = self.run(&invocation).await?;
        match answer.as_slice() {
            [-1, ..] => Ok(Ok(())),
            [refused, wait, ..] => {
                let &(index, window) = usize::try_from(*refused)
                    .ok()
                    .and_then(|i| sent.get(i))
                    .ok_or(Failure::Answer)?;
                let retry_after = match u64::try_from(*wait) {
                    Ok(micros) => Duration::from_micros(micros),
                    Err(_) => window,
                };
                Ok(Err(Refusal { index, retry_after }))
            }
            _ => Err(Failure::Answer),
        }
    }

    /// The takes given back on Redis.
    async fn redis_give_back(&self, takes: &[Take<'_>]) -> Result<(), Failure> {
        let mut invocation = self.give_back.prepare_invoke();
        let mut any = false;
        for take in takes {
            let Some(gcra) = Gcra::of(take.rate) else {
                continue;
            };
            invocation
                .key(self.bucket_key(take.key, take.rate))
                .arg(gcra.t.saturating_mul(u64::from(take.n.max(1))));
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.run::<i64>(&invocation).await.map(|_| ())
    }

    /// The takes of this replica's share, in memory (or refused: `closed`).
    async fn fallback_take(&self, takes: &[Take<'_>]) -> Result<(), Refusal> {
        self.fallback_takes.fetch_add(1, Ordering::Relaxed);
        match self.fallback {
            Fallback::Closed => Err(Refusal::unavailable(self.retry_after())),
            Fallback::Local => {
                let shared: Vec<Take<'_>> = takes
                    .iter()
                    .map(|t| Take {
                        rate: share_of(t.rate, self.replicas),
                        ..*t
                    })
                    .collect();
                self.local.take_all(&shared).await
            }
        }
    }

    async fn fallback_give_back(&self, takes: &[Take<'_>]) {
        let shared: Vec<Take<'_>> = takes
            .iter()
            .map(|t| Take {
                rate: share_of(t.rate, self.replicas),
                ..*t
            })
            .collect();
        self.local.give_back(&shared).await;
    }

    /// How long a `closed` refusal tells the caller to wait: the probe's interval, in
    /// whole seconds, at least 1.
    fn retry_after(&self) -> Duration {
        Duration::from_secs(self.probe_every.as_secs().max(1))
    }

    /// The daily counters on Redis: `Ok(the answer)`, or why Redis did not give one.
    async fn redis_day(
        &self,
        day: NaiveDate,
        counters: &[DayCounter<'_>],
        n: u32,
    ) -> Result<Result<(), usize>, Failure> {
        if counters.is_empty() {
            return Ok(Ok(()));
        }
        let mut invocation = self.day.prepare_invoke();
        invocation.arg(n).arg(DAY_COUNTER_TTL_S);
        for counter in counters {
            invocation
                .key(self.day_key(day, counter.key))
                .arg(counter.limit);
        }
        let answer: Vec<i64> = self.run(&invocation).await?;
        let Some((&status, counts)) = answer.split_first() else {
            return Err(Failure::Answer);
        };
        for (counter, count) in counters.iter().zip(counts) {
            let count = u32::try_from(*count).unwrap_or(u32::MAX);
            self.seen.insert(counter.key.to_owned(), (day, count));
        }
        match status {
            -1 => Ok(Ok(())),
            i => usize::try_from(i)
                .ok()
                .filter(|i| *i < counters.len())
                .map(Err)
                .ok_or(Failure::Answer),
        }
    }

    /// What Redis last said of `key` on `day` (0 if nothing).
    fn seen(&self, day: NaiveDate, key: &str) -> u32 {
        self.seen
            .get(key)
            .filter(|seen| seen.0 == day)
            .map_or(0, |seen| seen.1)
    }

    /// The daily counters of this replica's share, in memory (or refused: `closed`).
    async fn fallback_day(
        &self,
        day: NaiveDate,
        counters: &[DayCounter<'_>],
        n: u32,
    ) -> Result<(), usize> {
        self.fallback_takes.fetch_add(1, Ordering::Relaxed);
        match self.fallback {
            Fallback::Closed => Err(daily::UNAVAILABLE),
            Fallback::Local => {
                let shared: Vec<DayCounter<'_>> = counters
                    .iter()
                    .map(|c| DayCounter {
                        key: c.key,
                        limit: day_share(c.limit, self.seen(day, c.key), self.replicas),
                    })
                    .collect();
                self.local_days.take(day, &shared, n).await
            }
        }
    }
}

impl LimiterState for RedisLimits {
    fn take_all<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let inner = &self.inner;
            if !self.degraded() {
                match inner.redis_take(takes).await {
                    Ok(answer) => return answer,
                    Err(failure) => inner.enter_outage(&failure),
                }
            }
            inner.fallback_take(takes).await
        })
    }

    fn give_back<'a>(&'a self, takes: &'a [Take<'a>]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            if !self.degraded() {
                match inner.redis_give_back(takes).await {
                    Ok(()) => return,
                    Err(failure) => inner.enter_outage(&failure),
                }
            }
            inner.fallback_give_back(takes).await;
        })
    }

    /// Sweeps the fallback's buckets (Redis's keys expire by themselves).
    fn sweep(&self) -> usize {
        self.inner.local.sweep()
    }

    /// The fallback's buckets held in this replica (Redis's are not counted).
    fn len(&self) -> usize {
        self.inner.local.len()
    }
}

impl DayCountState for RedisLimits {
    fn take<'a>(&'a self, day: NaiveDate, counters: &'a [DayCounter<'a>], n: u32) -> Taking<'a> {
        Either::Right(Box::pin(async move {
            let inner = &self.inner;
            if !self.degraded() {
                match inner.redis_day(day, counters, n).await {
                    Ok(answer) => return answer,
                    Err(failure) => inner.enter_outage(&failure),
                }
            }
            inner.fallback_day(day, counters, n).await
        }))
    }

    /// Nothing to do: every count is in Redis as soon as it is taken.
    fn flush(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async { Ok(()) })
    }

    /// Ready, even while Redis is out of reach: with `fallback: local` the replica
    /// enforces its share, with `closed` it answers every counted request with a clear
    /// 503 problem — which a load balancer taking every replica out at once would
    /// hide. [`RedisLimits::degraded`] says whether a replica is in its fallback.
    fn ready(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Forgets what Redis said of past days and the fallback's counts of past days
    /// (Redis's keys expire by themselves); returns the counters left in this replica.
    fn sweep(&self, today: NaiveDate) -> usize {
        self.inner.seen.retain(|_, seen| seen.0 >= today);
        self.inner.seen.shrink_to_fit();
        self.inner.local_days.sweep(today);
        DayCountState::len(self)
    }

    /// Counters this replica holds in memory: the counts Redis last gave, and the
    /// fallback's.
    fn len(&self) -> usize {
        self.inner.seen.len() + self.inner.local_days.len()
    }

    /// The count as this replica knows it: what Redis last said, plus what the
    /// fallback counted.
    fn count(&self, day: NaiveDate, key: &str) -> u32 {
        self.inner
            .seen(day, key)
            .saturating_add(self.inner.local_days.count(day, key))
    }
}

impl fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address redacted; never the keys.
        f.debug_struct("RedisLimits")
            .field("server", &self.inner.at)
            .field("fallback", &self.inner.fallback)
            .field("replicas", &self.inner.replicas)
            .field("degraded", &self.degraded())
            .finish()
    }
}
