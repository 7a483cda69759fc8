//! The log on PostgreSQL against the real server (each test in a schema of its own;
//! skipped, saying so, when there is no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use futures::StreamExt as _;
use tempfile::TempDir;

use super::super::search::testing::{lookup, subject};
use super::*;
use crate::audit::{
    AuditBackend as _, AuditReader as _, Expectations, Filter, SearchError, VerifyFailure,
    VerifyReport,
};
use crate::pg::testing::{TestDb, migrated};

/// A count trigger of 5 events; no time trigger within a test.
fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every_events: 5,
        checkpoint_every: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

fn expect() -> Expectations {
    Expectations {
        cadence: options().cadence(),
        ..Expectations::default()
    }
}

fn key(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("audit-signing.key")
}

async fn open(db: &TestDb, dir: &TempDir) -> PgAudit {
    PgAudit::open(db.pg.clone(), &key(dir), options())
        .await
        .unwrap()
}

/// The event numbered `n`, at second `n` of a day.
fn event(n: u64, user: &str) -> AuditEvent {
    let time = format!("2026-03-02T01:{:02}:{:02}.000Z", n / 60, n % 60);
    lookup(n, &time, user)
}

async fn verify(db: &TestDb, dir: &TempDir) -> Result<VerifyReport, VerifyFailure> {
    PgAuditBackend::new(db.pg.clone(), key(dir))
        .verify(expect())
        .await
}

async fn sql(db: &TestDb, statement: &str) {
    db.pg
        .client()
        .await
        .unwrap()
        .batch_execute(statement)
        .await
        .unwrap();
}

#[tokio::test]
async fn appends_are_durable_chained_and_signed_by_count_at_shutdown_and_for_the_county() {
    let Some(db) = migrated("audit::postgres::appends").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = open(&db, &dir).await;
    log.ready().await.unwrap();
    let chain = log.chain_id();
    assert_eq!(chain.len(), 32);
    for n in 1..=7 {
        let recorded = log.append(event(n, "alice")).await.unwrap();
        assert_eq!(
            (recorded.seq, recorded.chain_id.as_str()),
            (n, chain.as_str())
        );
    }
    // A form fill's lookups: one unit, in order; a duplicate fails alone.
    let unit = log
        .append_all(vec![
            event(8, "alice"),
            event(3, "alice"),
            event(9, "alice"),
        ])
        .await;
    assert_eq!(unit[0].as_ref().unwrap().seq, 8);
    assert!(matches!(unit[1], Err(AuditError::DuplicateEvent)));
    assert_eq!(unit[2].as_ref().unwrap().seq, 9);
    // Committed before the answer: another connection reads them.
    let client = db.pg.client().await.unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM audit_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 9);
    assert_eq!(*log.checkpoints().borrow(), 5);
    log.shutdown().await;
    assert!(matches!(
        log.append(event(10, "alice")).await,
        Err(AuditError::Closed)
    ));

    let report = verify(&db, &dir).await.unwrap();
    assert_eq!(report.events, 9);
    assert_eq!(report.checkpoints, 2, "at 5 by count, at 9 at shutdown");
    assert_eq!(report.unsigned_tail, 0);
    assert_eq!(report.county_checkpoints, 1);
    assert_eq!(report.chains.len(), 1);
    assert_eq!(report.chains[0].chain_id, chain);
    let backend = PgAuditBackend::new(db.pg.clone(), key(&dir));
    let county = backend.latest_checkpoint().await.unwrap().unwrap();
    assert!(
        county.contains(&format!("chain: {chain} 9 {}\n", report.last_hash)),
        "{county}"
    );
    assert_eq!(backend.checkpoints_pending(0).await.unwrap(), (1, 1));
}

#[tokio::test]
async fn writers_take_chains_of_their_own_and_a_restarted_one_continues_its_chain() {
    let Some(db) = migrated("audit::postgres::chains").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let a = open(&db, &dir).await;
    let b = open(&db, &dir).await;
    assert_ne!(a.chain_id(), b.chain_id());
    for n in 1..=3 {
        a.append(event(n, "alice")).await.unwrap();
    }
    b.append(event(100, "bob")).await.unwrap();
    let first = a.chain_id();
    a.shutdown().await;
    // While b holds its chain, a new writer takes a's, free now, and continues it.
    let c = open(&db, &dir).await;
    assert_eq!(c.chain_id(), first);
    let recorded = c.append(event(4, "alice")).await.unwrap();
    assert_eq!(
        (recorded.chain_id.as_str(), recorded.seq),
        (first.as_str(), 4)
    );
    // And with both held, a third writer starts a new chain.
    let d = open(&db, &dir).await;
    assert!(d.chain_id() != first && d.chain_id() != b.chain_id());
    for log in [&b, &c, &d] {
        log.shutdown().await;
    }
    let report = verify(&db, &dir).await.unwrap();
    assert_eq!(report.events, 5);
    assert_eq!(report.chains.len(), 3);
}

#[tokio::test]
async fn a_writer_whose_connection_dies_refuses_appends_then_comes_back_by_itself() {
    let Some(db) = migrated("audit::postgres::reconnect").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = open(&db, &dir).await;
    let chain = log.chain_id();
    log.append(event(1, "alice")).await.unwrap();
    // The server ends the writer's connection (as when it restarts).
    let lock = db.pg.lock_key(&format!("audit-chain:{chain}"));
    let killed: i64 = db
        .pg
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
              WHERE locktype = 'advisory' AND granted
                AND ((classid::bigint << 32) | objid::bigint) = $1",
            &[&lock],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // The first append finds the connection gone and fails; then the writer is back.
    let failed = log.append(event(2, "alice")).await;
    assert!(
        matches!(failed, Err(AuditError::Unavailable(_)) | Ok(_)),
        "{failed:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let recorded = loop {
        match log.append(event(3, "alice")).await {
            Ok(recorded) => break recorded,
            Err(AuditError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("the writer did not come back: {other}"),
        }
    };
    assert_eq!(recorded.chain_id, chain, "it took its own chain back");
    log.ready().await.unwrap();
    log.shutdown().await;
    let report = verify(&db, &dir).await.unwrap();
    assert_eq!(report.events, recorded.seq);
}

#[tokio::test]
async fn concurrent_appends_from_two_writers_are_all_recorded_and_each_chain_verifies() {
    let Some(db) = migrated("audit::postgres::concurrent").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (a, b) = (open(&db, &dir).await, open(&db, &dir).await);
    let appends = (1..=60).map(|n| {
        let log = if n % 2 == 0 { a.clone() } else { b.clone() };
        async move { log.append(event(n, "alice")).await }
    });
    let recorded = futures::future::join_all(appends).await;
    assert!(recorded.iter().all(Result::is_ok));
    a.shutdown().await;
    b.shutdown().await;
    let report = verify(&db, &dir).await.unwrap();
    assert_eq!(report.events, 60);
    let mut per_chain: Vec<u64> = report.chains.iter().map(|c| c.last_seq).collect();
    per_chain.sort_unstable();
    assert_eq!(per_chain, [30, 30]);
}

/// Two chains (7 and 3 events, signed at shutdown and by the county), then `tamper`.
async fn tampered(test: &str, tamper: &str) -> Option<(VerifyFailure, String)> {
    let db = migrated(test).await?;
    let dir = TempDir::new().unwrap();
    let (a, b) = (open(&db, &dir).await, open(&db, &dir).await);
    for n in 1..=7 {
        a.append(event(n, "alice")).await.unwrap();
    }
    for n in 11..=13 {
        b.append(event(n, "bob")).await.unwrap();
    }
    let chain = a.chain_id();
    a.shutdown().await;
    b.shutdown().await;
    verify(&db, &dir).await.unwrap();
    sql(&db, &tamper.replace("$CHAIN", &chain)).await;
    Some((verify(&db, &dir).await.unwrap_err(), chain))
}

#[tokio::test]
async fn an_altered_body_is_named_with_its_chain() {
    let Some((failure, chain)) = tampered(
        "audit::postgres::tamper_body",
        "UPDATE audit_events SET body = replace(body, 'alice', 'mallory')
          WHERE chain_id = '$CHAIN' AND seq = 3",
    )
    .await
    else {
        return;
    };
    assert_eq!(failure.seq, Some(3), "{failure}");
    assert!(failure.problem.contains(&chain), "{failure}");
}

#[tokio::test]
async fn a_tail_cut_with_its_checkpoint_is_caught_by_the_county_checkpoint() {
    let Some((failure, chain)) = tampered(
        "audit::postgres::tamper_tail",
        "DELETE FROM audit_events WHERE chain_id = '$CHAIN' AND seq > 5;
         DELETE FROM audit_checkpoints WHERE chain_id = '$CHAIN' AND seq > 5;",
    )
    .await
    else {
        return;
    };
    assert!(failure.problem.contains(&chain), "{failure}");
    assert!(failure.problem.contains("cut off"), "{failure}");
}

#[tokio::test]
async fn a_chain_deleted_whole_is_caught_by_the_county_checkpoint() {
    let Some((failure, chain)) = tampered(
        "audit::postgres::tamper_chain",
        "DELETE FROM audit_events WHERE chain_id = '$CHAIN';
         DELETE FROM audit_checkpoints WHERE chain_id = '$CHAIN';
         DELETE FROM audit_linked_subjects WHERE chain_id = '$CHAIN';
         DELETE FROM audit_chains WHERE chain_id = '$CHAIN';",
    )
    .await
    else {
        return;
    };
    assert!(failure.problem.contains(&chain), "{failure}");
    assert!(failure.problem.contains("missing"), "{failure}");
}

#[tokio::test]
async fn search_reads_every_chain_newest_first_with_paging_filters_and_reports() {
    let Some(db) = migrated("audit::postgres::search").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (a, b) = (open(&db, &dir).await, open(&db, &dir).await);
    for n in 1..=6 {
        let (log, user) = if n % 2 == 1 {
            (&a, "alice")
        } else {
            (&b, "bob")
        };
        log.append(event(n, user)).await.unwrap();
    }
    // Recorded last, but the oldest: the order is the events' time.
    a.append(event(0, "alice")).await.unwrap();
    let reader = PgAuditReader::new(db.pg.clone());
    reader.ready().await.unwrap();
    let numbers = |page: &crate::audit::Page| -> Vec<String> {
        page.events
            .iter()
            .map(|e| e.event.event_id.clone())
            .collect()
    };
    let first = reader.search(Filter::default(), None, 4).await.unwrap();
    assert_eq!(
        numbers(&first),
        ["event-0006", "event-0005", "event-0004", "event-0003"]
    );
    let chains: std::collections::HashSet<_> =
        first.events.iter().map(|e| e.chain_id.clone()).collect();
    assert_eq!(chains.len(), 2);
    let second = reader
        .search(Filter::default(), first.next, 4)
        .await
        .unwrap();
    assert_eq!(numbers(&second), ["event-0002", "event-0001", "event-0000"]);
    assert_eq!(second.next, None);
    assert_eq!(second.events[1].seq, 1, "per-chain seqs");
    let oldest_first: Vec<String> = reader
        .events(Filter::default())
        .map(|e| e.unwrap().event.event_id)
        .collect()
        .await;
    assert_eq!(oldest_first.first().map(String::as_str), Some("event-0000"));
    assert_eq!(oldest_first.len(), 7);

    let bob = Filter {
        user: Some("bob".into()),
        ..Filter::default()
    };
    let page = reader.search(bob.clone(), None, 10).await.unwrap();
    assert_eq!(numbers(&page), ["event-0006", "event-0004", "event-0002"]);
    let streamed: Vec<String> = reader
        .events(bob)
        .map(|e| e.unwrap().event.event_id)
        .collect()
        .await;
    assert_eq!(streamed, ["event-0002", "event-0004", "event-0006"]);
    let window = Filter {
        from: Some("2026-03-02T01:00:02Z".into()),
        until: Some("2026-03-02T01:00:04Z".into()),
        ..Filter::default()
    };
    let page = reader.search(window, None, 10).await.unwrap();
    assert_eq!(numbers(&page), ["event-0003", "event-0002"]);
    let about = Filter {
        subject_pseudonym: Some(subject(5)),
        ..Filter::default()
    };
    let page = reader.search(about, None, 10).await.unwrap();
    assert_eq!(numbers(&page), ["event-0005"]);
    let bad = Filter {
        status: Some(42),
        ..Filter::default()
    };
    assert!(matches!(
        reader.search(bad, None, 10).await,
        Err(SearchError::InvalidFilter(..))
    ));

    let report = reader
        .citizen_report(subject(4), NaiveDate::from_ymd_opt(2026, 3, 3).unwrap())
        .await
        .unwrap();
    assert_eq!(report.accesses.len(), 1);
    assert_eq!(report.accesses[0].user, "bob");
    let anomalies = reader
        .anomalies(
            "2026-03-02T00:00:00Z".into(),
            "2026-03-03T00:00:00Z".into(),
            crate::audit::Thresholds::default(),
        )
        .await
        .unwrap();
    // Lookups at 09:00 China Standard Time on a Monday, with case ids: nothing odd.
    assert!(anomalies.is_empty(), "{anomalies:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_writer_without_a_server_fails_appends_at_once_and_is_not_ready() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings =
        crate::pg::PgSettings::new(format!("postgres://postgres@127.0.0.1:{port}/test"));
    settings.connect_timeout_ms = 1_000;
    let pg = Pg::new(&settings, Path::new(".")).unwrap();
    let dir = TempDir::new().unwrap();
    let log = PgAudit::open(pg, &key(&dir), options()).await.unwrap();
    assert!(matches!(
        log.append(event(1, "alice")).await,
        Err(AuditError::Unavailable(_))
    ));
    let unit = log
        .append_all(vec![event(2, "alice"), event(3, "alice")])
        .await;
    assert!(
        unit.iter()
            .all(|r| matches!(r, Err(AuditError::Unavailable(_))))
    );
    assert!(log.ready().await.is_err());
    log.shutdown().await;
}

#[tokio::test]
async fn a_writer_with_another_key_than_the_logs_is_refused() {
    let Some(db) = migrated("audit::postgres::key").await else {
        return;
    };
    let (dir, other) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let log = open(&db, &dir).await;
    let refused = PgAudit::open(db.pg.clone(), &key(&other), options())
        .await
        .unwrap_err();
    assert!(matches!(refused, AuditError::Key(_)), "{refused}");
    assert!(
        !key(&other).exists(),
        "no key is made for a log that has one"
    );
    let pinned = AuditOptions {
        pinned_key: Some(vec![7; 32]),
        ..options()
    };
    let refused = PgAudit::open(db.pg.clone(), &key(&dir), pinned)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("pinned"), "{refused}");
    log.shutdown().await;
}

#[tokio::test]
async fn the_time_trigger_signs_the_head_and_the_county_checkpoint_follows() {
    let Some(db) = migrated("audit::postgres::timed").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let timed = AuditOptions {
        checkpoint_every_events: 0,
        checkpoint_every: Duration::from_millis(50),
        ..AuditOptions::default()
    };
    let log = PgAudit::open(db.pg.clone(), &key(&dir), timed.clone())
        .await
        .unwrap();
    log.append(event(1, "alice")).await.unwrap();
    let mut signed = log.checkpoints();
    tokio::time::timeout(Duration::from_secs(20), signed.wait_for(|seq| *seq == 1))
        .await
        .unwrap()
        .unwrap();
    let backend = PgAuditBackend::new(db.pg.clone(), key(&dir));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while backend.latest_checkpoint().await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no county checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.shutdown().await;
    let expect = Expectations {
        cadence: timed.cadence(),
        ..Expectations::default()
    };
    let report = backend.verify(expect).await.unwrap();
    assert_eq!((report.events, report.checkpoints), (1, 1));
    assert!(report.county_checkpoints >= 1);
}
