//! Per-day counters for grants' daily quotas: the [`DayCountState`] trait and its
//! embedded implementation, [`DayCounts`].
//!
//! A counter counts lookups within one calendar day of China Standard Time (UTC+8)
//! and starts again from 0 at midnight; the caller passes the day. Counts live in
//! memory and, with a file ([`DayCounts::open`], `DATA_DIR/quota.db` in a gateway),
//! are kept durable so that a restart does not hand out a day's quota twice.
//!
//! **No disk write per lookup, and a crash never forgets a count.** A counter keeps a
//! *reservation* on disk: whenever a take passes it, the reservation is raised to the
//! count plus a sixteenth of the counter's limit ([`headroom`]) and that take waits
//! for the write (one small SQLite transaction, `synchronous=FULL`); the takes
//! within the reservation touch memory only (those racing the write wait for it too).
//! So about one take in `limit / 16` waits for the disk, and once a take is answered
//! the number on disk is never below the true count. After a
//! crash (process or machine) a counter restarts from its reservation: it may count up
//! to `limit / 16` lookups that were not made, never forget one that was. A clean
//! shutdown ([`DayCountState::flush`]) writes the exact counts. Should the write fail,
//! the take goes on (logged as an error): the quota is enforced from memory and
//! availability does not hang on this file.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use dashmap::DashMap;
use futures::future::{BoxFuture, Either, Ready, ready};
use tokio::sync::watch;

use super::StateError;
use super::sqlite::{CountFile, Rows};

/// The daily counts' file name inside a gateway's data directory.
pub const DAY_COUNTS_FILE: &str = "quota.db";

/// One counter a take must fit in: its key and its limit for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCounter<'a> {
    pub key: &'a str,
    pub limit: u32,
}

/// What a take answers: `Ok(())`, or `Err(i)` when `counters[i]` (the first that has
/// no room) refused it, or `Err(`[`UNAVAILABLE`]`)` when a shared store could not be
/// asked and must not guess. Ready at once in the common case.
pub type Taking<'a> = Either<Ready<Result<(), usize>>, BoxFuture<'a, Result<(), usize>>>;

/// The refusal of a take that no counter caused: the store could not be asked (a
/// shared store out of reach, with the `closed` fallback).
pub const UNAVAILABLE: usize = usize::MAX;

/// Where per-day counts live: embedded ([`DayCounts`]) or, for many replicas, on Redis
/// ([`super::redis::RedisLimits`]). It knows keys, limits and days only, nothing about
/// users or grants.
pub trait DayCountState: Send + Sync + fmt::Debug {
    /// Takes `n` from every counter of `counters` for `day`, or from none of them
    /// when one has no room (the counters before it are given back).
    fn take<'a>(&'a self, day: NaiveDate, counters: &'a [DayCounter<'a>], n: u32) -> Taking<'a>;

    /// Makes every count durable exactly as it stands (a clean shutdown).
    fn flush(&self) -> BoxFuture<'_, Result<(), StateError>>;

    /// Proves the counts could be made durable right now (for `/readyz`). The
    /// default says yes.
    fn ready(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async { Ok(()) })
    }

    /// Forgets the counts of days before `today` (blocking: call it on the blocking
    /// pool); returns how many counters remain.
    fn sweep(&self, today: NaiveDate) -> usize;

    /// Counters currently held.
    fn len(&self) -> usize;

    /// Whether no counter is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The count of `key` on `day` (0 if none).
    fn count(&self, day: NaiveDate, key: &str) -> u32;
}

/// How far ahead of the count a reservation reaches: a sixteenth of the limit, at
/// least 1. The most a crash can over-count, and the number of takes between writes.
pub fn headroom(limit: u32) -> u32 {
    (limit / 16).max(1)
}

/// One counter: its day, its count, and its reservation on disk.
#[derive(Debug, Clone, Copy)]
struct Count {
    day: NaiveDate,
    used: u32,
    /// The reservation asked for (≥ `used`).
    reserved: u32,
    /// The reservation known to be on disk.
    durable: u32,
}

impl Count {
    fn fresh(day: NaiveDate) -> Count {
        Count {
            day,
            used: 0,
            reserved: 0,
            durable: 0,
        }
    }
}

/// Per-day counts in memory (a sharded map, one entry locked at a time), made
/// durable in an SQLite file when there is one.
///
/// Cloning is cheap: clones share the counts.
#[derive(Clone)]
pub struct DayCounts {
    inner: Arc<Inner>,
}

struct Inner {
    counts: DashMap<String, Count>,
    file: Option<CountFile>,
    /// Write rounds asked for (each waiting take asks for one).
    requested: AtomicU64,
    /// The highest request number a finished write round covered.
    written: watch::Sender<u64>,
}

impl DayCounts {
    /// Counts in memory only: they end with the process.
    pub fn in_memory() -> DayCounts {
        DayCounts::with(None, Rows::new())
    }

    /// Counts kept in the SQLite file at `path` (created and migrated if needed),
    /// starting from what it holds: the latest day of each counter. Blocking.
    pub fn open(path: &Path) -> Result<DayCounts, StateError> {
        let (file, rows) = CountFile::open(path)?;
        Ok(DayCounts::with(Some(file), rows))
    }

    fn with(file: Option<CountFile>, rows: Rows) -> DayCounts {
        let counts: DashMap<String, Count> = DashMap::with_capacity(rows.len());
        for (day, key, count) in rows {
            let loaded = Count {
                day,
                used: count,
                reserved: count,
                durable: count,
            };
            counts
                .entry(key)
                .and_modify(|c| {
                    if c.day < day {
                        *c = loaded;
                    }
                })
                .or_insert(loaded);
        }
        DayCounts {
            inner: Arc::new(Inner {
                counts,
                file,
                requested: AtomicU64::new(0),
                written: watch::Sender::new(0),
            }),
        }
    }

    /// Counts `n` in memory: `Ok(whether the take must wait for a reservation to be
    /// written)` or the index of the counter without room. One counter is locked at
    /// a time; a refusal gives back what the counters before it took (so a racing
    /// take may briefly see them fuller than they end up: it errs towards refusing).
    fn take_now(&self, day: NaiveDate, counters: &[DayCounter<'_>], n: u32) -> Result<bool, usize> {
        let durable = self.inner.file.is_some();
        let mut wait = false;
        for (i, counter) in counters.iter().enumerate() {
            let taken = match self.inner.counts.get_mut(counter.key) {
                Some(mut count) => take_one(&mut count, day, counter.limit, n, durable),
                None => {
                    let mut count = self
                        .inner
                        .counts
                        .entry(counter.key.to_owned())
                        .or_insert_with(|| Count::fresh(day));
                    take_one(&mut count, day, counter.limit, n, durable)
                }
            };
            match taken {
                Some(must_wait) => wait |= must_wait,
                None => {
                    for earlier in counters.iter().take(i) {
                        if let Some(mut count) = self.inner.counts.get_mut(earlier.key)
                            && count.day == day
                        {
                            count.used = count.used.saturating_sub(n);
                        }
                    }
                    return Err(i);
                }
            }
        }
        Ok(wait)
    }

    /// Waits until a write round that started after this call has finished.
    async fn durable(&self) {
        let mut written = self.inner.written.subscribe();
        let ticket = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            // Detached: the round finishes even if this take is dropped, so no other
            // take waits on a write that never happens.
            Ok(runtime) => drop(runtime.spawn_blocking(move || inner.write_round())),
            Err(_) => inner.write_round(),
        }
        while *written.borrow_and_update() < ticket {
            if written.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Takes `n` from one counter for `day` if it has room: `Some(whether the take must
/// wait for its reservation to be written)`, `None` if it has no room.
fn take_one(count: &mut Count, day: NaiveDate, limit: u32, n: u32, durable: bool) -> Option<bool> {
    if count.day != day {
        *count = Count::fresh(day);
    }
    let used = count.used.saturating_add(n);
    if used > limit {
        return None;
    }
    count.used = used;
    if !durable {
        return Some(false);
    }
    if used > count.reserved {
        count.reserved = used.saturating_add(headroom(limit)).min(limit);
    }
    Some(used > count.durable)
}

impl Inner {
    /// Writes every reservation not yet on disk, in one transaction, and publishes
    /// which requests it covered. Blocking.
    fn write_round(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let mut state = file.lock();
        // Read before the counts: every take that asked before this point has its
        // reservation in the counts read below.
        let target = self.requested.load(Ordering::SeqCst);
        let pending: Rows = self
            .counts
            .iter()
            .filter(|entry| entry.reserved > entry.durable)
            .map(|entry| (entry.day, entry.key().clone(), entry.reserved))
            .collect();
        if !pending.is_empty() {
            match state.reserve(&pending) {
                Ok(()) => {
                    for (day, key, reserved) in &pending {
                        if let Some(mut count) = self.counts.get_mut(key)
                            && count.day == *day
                        {
                            count.durable = count.durable.max(*reserved);
                        }
                    }
                }
                Err(error) => tracing::error!(
                    %error,
                    counters = pending.len(),
                    "daily quota counts could not be made durable; a restart may forget them"
                ),
            }
        }
        drop(state);
        self.written.send_modify(|w| *w = (*w).max(target));
    }

    /// Writes the exact counts in place of everything the file holds. Blocking.
    fn write_exact(&self) -> Result<(), StateError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut state = file.lock();
        let exact: Rows = self
            .counts
            .iter()
            .filter(|entry| entry.used > 0)
            .map(|entry| (entry.day, entry.key().clone(), entry.used))
            .collect();
        state.replace_all(&exact)?;
        for (day, key, used) in &exact {
            if let Some(mut count) = self.counts.get_mut(key)
                && count.day == *day
                && count.used == *used
            {
                count.reserved = *used;
                count.durable = *used;
            }
        }
        Ok(())
    }
}

impl DayCountState for DayCounts {
    fn take<'a>(&'a self, day: NaiveDate, counters: &'a [DayCounter<'a>], n: u32) -> Taking<'a> {
        match self.take_now(day, counters, n) {
            Err(i) => Either::Left(ready(Err(i))),
            Ok(false) => Either::Left(ready(Ok(()))),
            Ok(true) => Either::Right(Box::pin(async move {
                self.durable().await;
                Ok(())
            })),
        }
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StateError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || inner.write_exact())
                    .await
                    .map_err(|e| StateError::Unavailable(e.to_string()))?,
                Err(_) => inner.write_exact(),
            }
        })
    }

    /// The file takes a write (no file: ready).
    fn ready(&self) -> BoxFuture<'_, Result<(), StateError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if inner.file.is_none() {
                return Ok(());
            }
            tokio::task::spawn_blocking(move || match &inner.file {
                Some(file) => file.probe(),
                None => Ok(()),
            })
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?
        })
    }

    fn sweep(&self, today: NaiveDate) -> usize {
        self.inner.counts.retain(|_, c| c.day >= today);
        self.inner.counts.shrink_to_fit();
        // Not worth waiting for: a busy file is pruned at a later sweep.
        if let Some(mut state) = self.inner.file.as_ref().and_then(CountFile::try_lock)
            && let Err(error) = state.prune(today)
        {
            tracing::warn!(%error, "old daily quota counts not removed");
        }
        self.inner.counts.len()
    }

    fn len(&self) -> usize {
        self.inner.counts.len()
    }

    fn count(&self, day: NaiveDate, key: &str) -> u32 {
        self.inner
            .counts
            .get(key)
            .filter(|c| c.day == day)
            .map_or(0, |c| c.used)
    }
}

impl fmt::Debug for DayCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys: they name users and townships.
        f.debug_struct("DayCounts")
            .field("counters", &self.len())
            .field("durable", &self.inner.file.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
