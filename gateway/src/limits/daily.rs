//! Per-day counters for grants' daily quotas: the [`DayCountState`] trait and its
//! embedded implementation, [`DayCounts`].
//!
//! A counter counts lookups within one calendar day of China Standard Time (UTC+8)
//! and starts again from 0 at midnight; the caller passes the day. Counts live in
//! memory and, with a file ([`DayCounts::open`]), are kept durable in the store's
//! SQLite file so that a restart does not hand out a day's quota twice.
//!
//! **No disk write per lookup, and a crash never forgets a count.** A counter keeps a
//! *reservation* on disk: whenever a take passes it, the reservation is raised to the
//! count plus a sixteenth of the counter's limit ([`headroom`]) and that take waits
//! for the write (one small SQLite transaction, `synchronous=FULL`); the takes
//! within the reservation touch memory only. So at most one take in `limit / 16`
//! waits for the disk, and the number on disk is never below the true count. After a
//! crash (process or machine) a counter restarts from its reservation: it may count up
//! to `limit / 16` lookups that were not made, never forget one that was. A clean
//! shutdown ([`DayCountState::flush`]) writes the exact counts. Should the write fail,
//! the take goes on (logged as an error): the quota is enforced from memory and
//! availability does not hang on this file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::NaiveDate;
use futures::future::{BoxFuture, Either, Ready, ready};
use tokio::sync::watch;

use super::sqlite::CountFile;

/// One counter a take must fit in: its key and its limit for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCounter<'a> {
    pub key: &'a str,
    pub limit: u32,
}

/// What a take answers: `Ok(())`, or `Err(i)` when `counters[i]` (the first that has
/// no room) refused it. Ready at once in the common case.
pub type Taking<'a> = Either<Ready<Result<(), usize>>, BoxFuture<'a, Result<(), usize>>>;

/// Where per-day counts live. Embedded now ([`DayCounts`]); a shared store for many
/// replicas later. It knows keys, limits and days only, nothing about users or grants.
pub trait DayCountState: Send + Sync + fmt::Debug {
    /// Takes `n` from every counter of `counters` for `day`, or from none of them
    /// when one has no room: all counters are checked before any is counted.
    fn take<'a>(&'a self, day: NaiveDate, counters: &'a [DayCounter<'a>], n: u32) -> Taking<'a>;

    /// Makes every count durable exactly as it stands (a clean shutdown).
    fn flush(&self) -> BoxFuture<'_, Result<(), String>>;

    /// Forgets the counts of days before `today`; returns how many counters remain.
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

/// Per-day counts in memory, made durable in an SQLite file when there is one.
///
/// Cloning is cheap: clones share the counts.
#[derive(Clone)]
pub struct DayCounts {
    inner: Arc<Inner>,
}

struct Inner {
    counts: Mutex<HashMap<String, Count>>,
    file: Option<CountFile>,
    /// Write rounds asked for (each waiting take asks for one).
    requested: AtomicU64,
    /// The highest request number a finished write round covered.
    written: watch::Sender<u64>,
    /// Rows of days before this one were already removed from the file.
    pruned_before: Mutex<Option<NaiveDate>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DayCounts {
    /// Counts in memory only: they end with the process.
    pub fn in_memory() -> DayCounts {
        DayCounts::with(None, HashMap::new())
    }

    /// Counts kept in the SQLite file at `path` (created and migrated if needed),
    /// starting from what it holds: the latest day of each counter. Blocking.
    pub fn open(path: &Path) -> Result<DayCounts, rusqlite::Error> {
        let (file, rows) = CountFile::open(path)?;
        let mut counts: HashMap<String, Count> = HashMap::with_capacity(rows.len());
        for (day, key, count) in rows {
            let keep = counts.get(&key).is_none_or(|c| c.day < day);
            if keep {
                let count = Count {
                    day,
                    used: count,
                    reserved: count,
                    durable: count,
                };
                counts.insert(key, count);
            }
        }
        Ok(DayCounts::with(Some(file), counts))
    }

    fn with(file: Option<CountFile>, counts: HashMap<String, Count>) -> DayCounts {
        DayCounts {
            inner: Arc::new(Inner {
                counts: Mutex::new(counts),
                file,
                requested: AtomicU64::new(0),
                written: watch::Sender::new(0),
                pruned_before: Mutex::new(None),
            }),
        }
    }

    /// Counts `n` in memory: `Ok(whether the take must wait for a reservation to be
    /// written)` or the index of the counter without room.
    fn take_now(&self, day: NaiveDate, counters: &[DayCounter<'_>], n: u32) -> Result<bool, usize> {
        let durable = self.inner.file.is_some();
        let mut counts = lock(&self.inner.counts);
        for (i, counter) in counters.iter().enumerate() {
            let used = counts
                .get(counter.key)
                .filter(|c| c.day == day)
                .map_or(0, |c| c.used);
            if used.saturating_add(n) > counter.limit {
                return Err(i);
            }
        }
        let mut wait = false;
        for counter in counters {
            if !counts.contains_key(counter.key) {
                counts.insert(counter.key.to_owned(), Count::fresh(day));
            }
            let Some(count) = counts.get_mut(counter.key) else {
                continue;
            };
            if count.day != day {
                *count = Count::fresh(day);
            }
            count.used = count.used.saturating_add(n);
            if !durable {
                continue;
            }
            if count.used > count.reserved {
                count.reserved = count
                    .used
                    .saturating_add(headroom(counter.limit))
                    .min(counter.limit.max(count.used));
            }
            wait |= count.used > count.durable;
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

impl Inner {
    /// Writes every reservation not yet on disk, in one transaction, and publishes
    /// which requests it covered.
    fn write_round(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let mut conn = file.lock();
        // Read before the counts: every take that asked before this point has its
        // reservation in the counts read below.
        let target = self.requested.load(Ordering::SeqCst);
        let pending: Vec<(NaiveDate, String, u32)> = lock(&self.counts)
            .iter()
            .filter(|(_, c)| c.reserved > c.durable)
            .map(|(key, c)| (c.day, key.clone(), c.reserved))
            .collect();
        if !pending.is_empty() {
            match CountFile::reserve(&mut conn, &pending) {
                Ok(()) => {
                    let mut counts = lock(&self.counts);
                    for (day, key, reserved) in &pending {
                        if let Some(count) = counts.get_mut(key)
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
        drop(conn);
        self.written.send_modify(|w| *w = (*w).max(target));
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

    fn flush(&self) -> BoxFuture<'_, Result<(), String>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let write = move || {
                let Some(file) = &inner.file else {
                    return Ok(());
                };
                let mut conn = file.lock();
                let exact: Vec<(NaiveDate, String, u32)> = lock(&inner.counts)
                    .iter()
                    .filter(|(_, c)| c.used > 0)
                    .map(|(key, c)| (c.day, key.clone(), c.used))
                    .collect();
                CountFile::replace_all(&mut conn, &exact).map_err(|e| e.to_string())?;
                let mut counts = lock(&inner.counts);
                for (day, key, used) in &exact {
                    if let Some(count) = counts.get_mut(key)
                        && count.day == *day
                        && count.used == *used
                    {
                        count.reserved = *used;
                        count.durable = *used;
                    }
                }
                Ok(())
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(write)
                    .await
                    .map_err(|e| e.to_string())?,
                Err(_) => write(),
            }
        })
    }

    fn sweep(&self, today: NaiveDate) -> usize {
        let remaining = {
            let mut counts = lock(&self.inner.counts);
            counts.retain(|_, c| c.day >= today);
            counts.shrink_to_fit();
            counts.len()
        };
        if let Some(file) = &self.inner.file {
            let mut pruned = lock(&self.inner.pruned_before);
            if pruned.is_none_or(|d| d < today) {
                match CountFile::prune(&mut file.lock(), today) {
                    Ok(()) => *pruned = Some(today),
                    Err(error) => tracing::warn!(%error, "old daily quota counts not removed"),
                }
            }
        }
        remaining
    }

    fn len(&self) -> usize {
        lock(&self.inner.counts).len()
    }

    fn count(&self, day: NaiveDate, key: &str) -> u32 {
        lock(&self.inner.counts)
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
