//! The record cache: a connector's validated canonical records, kept in memory for
//! the time its department allows (`cache:` in the connector file; off by default).
//!
//! What is cached is the record as the department sent it after mapping and the
//! schema check — never a caller's view of it. Policy and masks are applied to every
//! answer afresh, so a record fetched for a broad grant is served to a narrow grant
//! narrowed (invariant 7). Concurrent misses for one key wait for a single upstream
//! call; failures are not cached, "no such person" only for `not_found_ttl_s`.
//! Entries are weighed by their size and bounded by `max_mib`. A department admin can
//! purge a connector's cache; hits and misses are counted for `/metrics`.
//!
//! Keys hold subject keys (ID numbers): the cache lives in memory only and is never
//! logged or persisted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connectors::definition::CacheDef;
use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;

/// A validated canonical record and when the department answered with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub value: Value,
    pub fetched_at: DateTime<Utc>,
    /// How long the department took to answer.
    pub upstream_latency: Duration,
}

/// What a connector operation answered for a subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Found(Record),
    /// The department has no record for the subject.
    NotFound {
        at: DateTime<Utc>,
    },
}

impl Entry {
    /// When the department gave this answer.
    pub fn fetched_at(&self) -> DateTime<Utc> {
        match self {
            Entry::Found(record) => record.fetched_at,
            Entry::NotFound { at } => *at,
        }
    }
}

/// An answer and whether it came from the cache (no upstream call made for it).
#[derive(Debug, Clone)]
pub struct Answer {
    pub entry: Arc<Entry>,
    pub cache_hit: bool,
}

/// Counters of one connector's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// Approximate bytes held.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    operation: String,
    subject: String,
}

/// Found records live `ttl`; not-found answers `not_found_ttl` (zero: not kept).
struct Lifetimes {
    ttl: Duration,
    not_found_ttl: Duration,
}

impl Expiry<Key, Arc<Entry>> for Lifetimes {
    fn expire_after_create(&self, _: &Key, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(match **entry {
            Entry::Found(_) => self.ttl,
            Entry::NotFound { .. } => self.not_found_ttl,
        })
    }
}

/// One connector's cache.
#[derive(Debug)]
pub struct RecordCache {
    records: Cache<Key, Arc<Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The weight of an entry: roughly the bytes its record takes.
fn weight(key: &Key, entry: &Arc<Entry>) -> u32 {
    let record = match &**entry {
        Entry::Found(record) => approximate_size(&record.value),
        Entry::NotFound { .. } => 0,
    };
    let total = 64 + key.operation.len() + key.subject.len() + record;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Bytes a JSON value takes, roughly (its serialized size plus per-node overhead).
fn approximate_size(value: &Value) -> usize {
    const NODE: usize = 32;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
        Value::String(s) => NODE + s.len(),
        Value::Array(items) => NODE + items.iter().map(approximate_size).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(k, v)| NODE + k.len() + approximate_size(v))
                .sum::<usize>()
        }
    }
}

impl RecordCache {
    /// The cache a connector's settings ask for; `None` when caching is off.
    pub fn new(settings: &CacheDef) -> Option<RecordCache> {
        if settings.ttl_s == 0 {
            return None;
        }
        let records = Cache::builder()
            .max_capacity(settings.max_mib.saturating_mul(1024 * 1024))
            .weigher(weight)
            .expire_after(Lifetimes {
                ttl: settings.ttl(),
                not_found_ttl: settings.not_found_ttl(),
            })
            .build();
        Some(RecordCache {
            records,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The cached answer for `operation` and `subject`, or the one `fetch` gets. While
    /// one fetch for a key is under way, other callers for it wait for its answer
    /// instead of calling the department again. A failed fetch is not cached; every
    /// waiter gets its error.
    pub async fn get_or_fetch<F, E>(
        &self,
        operation: &str,
        subject: &str,
        fetch: F,
    ) -> Result<Answer, Arc<E>>
    where
        F: Future<Output = Result<Entry, E>>,
        E: Send + Sync + 'static,
    {
        let key = Key {
            operation: operation.to_owned(),
            subject: subject.to_owned(),
        };
        let entry = self
            .records
            .entry(key)
            .or_try_insert_with(async { fetch.await.map(Arc::new) })
            .await?;
        let cache_hit = !entry.is_fresh();
        if cache_hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Answer {
            entry: entry.into_value(),
            cache_hit,
        })
    }

    /// Forgets every record (a department admin's purge).
    pub fn purge(&self) {
        self.records.invalidate_all();
    }

    /// Forgets every record of the subject whose key has this pseudonym (`pseudonym`
    /// makes one from a subject key), whatever the operation: the department
    /// corrected this person's record. Returns how many were dropped. The subject is
    /// named by pseudonym so that nobody need keep their ID number to purge it.
    pub async fn purge_subject(&self, pseudonym: impl Fn(&str) -> String, subject: &str) -> u64 {
        let keys: Vec<Arc<Key>> = self
            .records
            .iter()
            .filter(|(key, _)| pseudonym(&key.subject) == subject)
            .map(|(key, _)| key)
            .collect();
        for key in &keys {
            self.records.invalidate(&**key).await;
        }
        keys.len() as u64
    }

    pub async fn stats(&self) -> CacheStats {
        self.records.run_pending_tasks().await;
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.records.entry_count(),
            bytes: self.records.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use serde_json::json;

    use super::*;

    fn settings(ttl_s: u64, not_found_ttl_s: u64) -> CacheDef {
        CacheDef {
            ttl_s,
            not_found_ttl_s,
            max_mib: 1,
        }
    }

    fn found(name: &str) -> Entry {
        Entry::Found(Record {
            value: json!({ "name": name }),
            fetched_at: Utc::now(),
            upstream_latency: Duration::from_millis(5),
        })
    }

    #[test]
    fn a_zero_ttl_means_no_cache() {
        assert!(RecordCache::new(&settings(0, 0)).is_none());
    }

    #[tokio::test]
    async fn a_second_lookup_is_a_hit_and_calls_nobody() {
        let cache = RecordCache::new(&settings(60, 0)).unwrap();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let answer = cache
                .get_or_fetch::<_, ()>("person", "id-1", async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(found("张三"))
                })
                .await
                .unwrap();
            assert!(matches!(&*answer.entry, Entry::Found(r) if r.value["name"] == "张三"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = cache.stats().await;
        assert_eq!((stats.hits, stats.misses, stats.entries), (2, 1, 1));
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_call() {
        let cache = Arc::new(RecordCache::new(&settings(60, 0)).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                let calls = calls.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    cache
                        .get_or_fetch::<_, ()>("person", "id-1", async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            Ok(found("李四"))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for task in tasks {
            let answer = task.await.unwrap();
            assert!(matches!(&*answer.entry, Entry::Found(_)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = RecordCache::new(&settings(60, 0)).unwrap();
        let failed = cache
            .get_or_fetch("person", "id-1", async { Err::<Entry, _>("down") })
            .await;
        assert_eq!(*failed.unwrap_err(), "down");
        let answer = cache
            .get_or_fetch::<_, ()>("person", "id-1", async { Ok(found("王五")) })
            .await
            .unwrap();
        assert!(!answer.cache_hit, "the failure left nothing behind");
    }

    #[tokio::test]
    async fn not_found_is_kept_only_with_a_negative_ttl() {
        let off = RecordCache::new(&settings(60, 0)).unwrap();
        let on = RecordCache::new(&settings(60, 30)).unwrap();
        for (cache, expect_hit) in [(&off, false), (&on, true)] {
            for _ in 0..2 {
                cache
                    .get_or_fetch::<_, ()>("person", "id-9", async {
                        Ok(Entry::NotFound { at: Utc::now() })
                    })
                    .await
                    .unwrap();
            }
            let stats = cache.stats().await;
            assert_eq!(stats.hits == 1, expect_hit);
        }
    }

    #[tokio::test]
    async fn operations_and_subjects_do_not_share_entries() {
        let cache = RecordCache::new(&settings(60, 0)).unwrap();
        for (op, subject, name) in [("a", "1", "甲"), ("b", "1", "乙"), ("a", "2", "丙")] {
            let answer = cache
                .get_or_fetch::<_, ()>(op, subject, async { Ok(found(name)) })
                .await
                .unwrap();
            assert!(!answer.cache_hit);
            assert!(matches!(&*answer.entry, Entry::Found(r) if r.value["name"] == name));
        }
    }

    #[tokio::test]
    async fn purge_forgets_everything() {
        let cache = RecordCache::new(&settings(60, 0)).unwrap();
        cache
            .get_or_fetch::<_, ()>("person", "id-1", async { Ok(found("赵六")) })
            .await
            .unwrap();
        cache.purge();
        let answer = cache
            .get_or_fetch::<_, ()>("person", "id-1", async { Ok(found("赵六")) })
            .await
            .unwrap();
        assert!(!answer.cache_hit);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_weight() {
        let cache = RecordCache::new(&settings(60, 0)).unwrap();
        let big = "x".repeat(10_000);
        for i in 0..500 {
            let value = json!({ "blob": big });
            cache
                .get_or_fetch::<_, ()>("person", &i.to_string(), async move {
                    Ok(Entry::Found(Record {
                        value,
                        fetched_at: Utc::now(),
                        upstream_latency: Duration::ZERO,
                    }))
                })
                .await
                .unwrap();
        }
        let stats = cache.stats().await;
        assert!(stats.bytes <= 1024 * 1024, "{stats:?}");
        assert!(stats.entries < 500, "{stats:?}");
    }
}
