//! How long an audit writer takes to make one batch durable — from taking it off the
//! queue to answering its waiters (the inserts, the commit and its sync) — counted
//! in fixed buckets, the same for every store, for `/metrics`
//! (`gateway_audit_commit_seconds`). Lock-free: the writer adds, a scrape reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The buckets' upper bounds, in seconds; a last bucket holds everything slower.
pub const BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Batch commit times, by bucket.
#[derive(Debug, Default)]
pub struct CommitTimes {
    /// One per bound, and the last for slower batches.
    counts: [AtomicU64; BOUNDS_S.len() + 1],
    /// The sum of every batch's time, in microseconds.
    sum_us: AtomicU64,
}

/// What a scrape reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSnapshot {
    /// (upper bound in seconds, batches in this bucket alone); the last bound is
    /// `f64::MAX`, which stands for no bound (`+Inf` in the exposition).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_s: f64,
}

impl CommitTimes {
    /// Counts one batch that took `took`.
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let at = BOUNDS_S
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BOUNDS_S.len());
        if let Some(count) = self.counts.get(at) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CommitSnapshot {
        let buckets: Vec<(f64, u64)> = BOUNDS_S
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(
                self.counts
                    .iter()
                    .map(|count| count.load(Ordering::Relaxed)),
            )
            .collect();
        CommitSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_batch_lands_in_the_first_bucket_that_holds_it() {
        let times = CommitTimes::default();
        for micros in [300, 500, 501, 40_000, 60_000_000] {
            times.record(Duration::from_micros(micros));
        }
        let snapshot = times.snapshot();
        assert_eq!(snapshot.count, 5);
        let count = |bound: f64| {
            snapshot
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map(|(_, n)| *n)
        };
        assert_eq!(count(0.0005), Some(2), "300 µs and exactly 500 µs");
        assert_eq!(count(0.001), Some(1));
        assert_eq!(count(0.05), Some(1));
        assert_eq!(count(f64::MAX), Some(1), "a minute");
        assert!((snapshot.sum_s - 60.041_301).abs() < 1e-9);
    }
}
