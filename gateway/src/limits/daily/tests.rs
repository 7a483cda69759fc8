//! Daily counts on real SQLite files: all-or-nothing takes, exact counts after a clean
//! restart, never fewer (and at most the headroom more) after a crash, and how rarely
//! a take waits for the disk.

use super::*;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

async fn take(counts: &DayCounts, on: NaiveDate, key: &str, limit: u32) -> Result<(), usize> {
    counts.take(on, &[DayCounter { key, limit }], 1).await
}

/// A store file in a fresh directory.
fn file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quota.db");
    (dir, path)
}

#[tokio::test]
async fn a_take_counts_all_its_counters_or_none() {
    let counts = DayCounts::in_memory();
    let both = |user| {
        [
            DayCounter {
                key: user,
                limit: 1,
            },
            DayCounter {
                key: "township",
                limit: 2,
            },
        ]
    };
    let u1 = both("u1");
    assert_eq!(counts.take(day(2), &u1, 1).await, Ok(()));
    // The share refuses: the township's count does not move.
    for _ in 0..5 {
        assert_eq!(counts.take(day(2), &u1, 1).await, Err(0));
    }
    assert_eq!(counts.count(day(2), "township"), 1);
    let u2 = both("u2");
    assert_eq!(counts.take(day(2), &u2, 1).await, Ok(()));
    // The township refuses: the new user's share does not move either.
    let u3 = both("u3");
    assert_eq!(counts.take(day(2), &u3, 1).await, Err(1));
    assert_eq!(counts.count(day(2), "u3"), 0);
    assert_eq!(counts.count(day(2), "township"), 2);
    // A take of several at once fits whole or not at all.
    let big = [DayCounter {
        key: "big",
        limit: 5,
    }];
    assert_eq!(counts.take(day(2), &big, 4).await, Ok(()));
    assert_eq!(counts.take(day(2), &big, 2).await, Err(0));
    assert_eq!(counts.count(day(2), "big"), 4);
}

#[tokio::test]
async fn counts_survive_a_clean_restart_exactly() {
    let (_dir, path) = file();
    let counts = DayCounts::open(&path).unwrap();
    for _ in 0..7 {
        assert_eq!(take(&counts, day(2), "k", 100).await, Ok(()));
    }
    counts.flush().await.unwrap();
    drop(counts);

    let again = DayCounts::open(&path).unwrap();
    assert_eq!(again.count(day(2), "k"), 7);
    for _ in 7..100 {
        assert_eq!(take(&again, day(2), "k", 100).await, Ok(()));
    }
    assert_eq!(take(&again, day(2), "k", 100).await, Err(0));
    again.flush().await.unwrap();
    let third = DayCounts::open(&path).unwrap();
    assert_eq!(take(&third, day(2), "k", 100).await, Err(0));
}

#[tokio::test]
async fn a_crash_never_forgets_a_count_and_over_counts_at_most_the_headroom() {
    let limit = 100;
    for taken in [1, 5, 6, 7, 12, 13, 50, 94, 95, 99, 100] {
        let (_dir, path) = file();
        let counts = DayCounts::open(&path).unwrap();
        for _ in 0..taken {
            assert_eq!(take(&counts, day(2), "k", limit).await, Ok(()));
        }
        // The process dies: no flush. What a restart finds is what was committed.
        let restarted = DayCounts::open(&path).unwrap();
        let found = restarted.count(day(2), "k");
        assert!(
            (taken..=(taken + headroom(limit)).min(limit)).contains(&found),
            "{taken} taken, {found} found after the crash"
        );
        drop(counts);
    }
}

#[tokio::test]
async fn few_takes_wait_for_the_disk() {
    let (_dir, path) = file();
    let counts = DayCounts::open(&path).unwrap();
    let limit = 160;
    let key = [DayCounter { key: "k", limit }];
    let mut waited = 0;
    for _ in 0..limit {
        let taking = counts.take(day(2), &key, 1);
        if matches!(taking, Either::Right(_)) {
            waited += 1;
        }
        assert_eq!(taking.await, Ok(()));
    }
    // One write covers the take that asked for it and the next `headroom` (10).
    assert_eq!(waited, limit.div_ceil(headroom(limit) + 1));
    // Without a file nothing ever waits.
    let memory = DayCounts::in_memory();
    for _ in 0..limit {
        assert!(matches!(memory.take(day(2), &key, 1), Either::Left(_)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takes_never_overrun_and_are_all_durable() {
    let (_dir, path) = file();
    let counts = DayCounts::open(&path).unwrap();
    let limit = 50;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            take(&counts, day(2), "k", limit).await.is_ok()
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += u32::from(task.await.unwrap());
    }
    assert_eq!(granted, limit);
    let restarted = DayCounts::open(&path).unwrap();
    assert_eq!(restarted.count(day(2), "k"), limit);
}

#[tokio::test]
async fn another_day_starts_from_zero_and_past_days_leave_the_file() {
    let (_dir, path) = file();
    let counts = DayCounts::open(&path).unwrap();
    for _ in 0..3 {
        assert_eq!(take(&counts, day(2), "k", 3).await, Ok(()));
    }
    assert_eq!(take(&counts, day(2), "k", 3).await, Err(0));
    assert_eq!(take(&counts, day(2), "other", 3).await, Ok(()));
    counts.flush().await.unwrap();
    drop(counts);

    // Restarted the next day: yesterday's counts do not apply.
    let next = DayCounts::open(&path).unwrap();
    assert_eq!(next.len(), 2);
    assert_eq!(next.count(day(3), "k"), 0);
    assert_eq!(take(&next, day(3), "k", 3).await, Ok(()));
    assert_eq!(next.sweep(day(3)), 1, "`other` was yesterday's");
    drop(next);
    let rows: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM day_counts WHERE day < '2026-03-03'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
}
