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
    assert!(recorded.iter().all(Result::is_ok), "{recorded:?}");
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

// Months: partitions, migration 4, archive.

/// A checkpoint at every event, so that events months apart verify (the cadence's
/// time trigger is checked on the events' own times).
fn every_event() -> AuditOptions {
    AuditOptions {
        checkpoint_every_events: 1,
        checkpoint_every: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

async fn open_every_event(db: &TestDb, dir: &TempDir) -> PgAudit {
    PgAudit::open(db.pg.clone(), &key(dir), every_event())
        .await
        .unwrap()
}

async fn verify_every_event(db: &TestDb, dir: &TempDir) -> Result<VerifyReport, VerifyFailure> {
    PgAuditBackend::new(db.pg.clone(), key(dir))
        .verify(Expectations {
            cadence: every_event().cadence(),
            ..Expectations::default()
        })
        .await
}

/// The lookup numbered `n` at `time` (the event clock is the event's own time); even
/// numbers also disclose a linked person, `subject(1000 + n)`.
fn at(n: u64, time: &str, user: &str) -> AuditEvent {
    let mut event = lookup(n, time, user);
    if n.is_multiple_of(2) {
        event.linked = vec![crate::audit::event::LinkedPerson {
            fields: vec!["spouse.name".into()],
            pseudonym: subject(1000 + n),
        }];
    }
    event
}

/// The table each event's row is in, by event id.
async fn placed(db: &TestDb, table: &str, key: &str) -> Vec<(String, String)> {
    db.pg
        .client()
        .await
        .unwrap()
        .query(
            &format!("SELECT {key}::text, tableoid::regclass::text FROM {table} ORDER BY 1"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn archive_at(db: &TestDb, dir: &TempDir, now: &str) -> Result<Option<Archived>, AuditError> {
    let now = chrono::DateTime::parse_from_rfc3339(now).unwrap().to_utc();
    PgAuditBackend::new(db.pg.clone(), key(dir))
        .archive(crate::audit::Retention::default(), now)
        .await
}

async fn ids(reader: &PgAuditReader, filter: Filter) -> Vec<String> {
    reader
        .search(filter, None, 100)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.event.event_id.clone())
        .collect()
}

use crate::audit::{Archived, ArchivedMonth, ArchivedMonths};

#[tokio::test]
async fn events_land_in_the_partition_of_their_month_which_the_writer_creates() {
    let Some(db) = migrated("audit::postgres::months").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = open_every_event(&db, &dir).await;
    // Made ahead when the chain is taken: this month and the next.
    for month in super::partitions::ahead(chrono::Utc::now()) {
        let table = month.events_table();
        let found: bool = db
            .pg
            .client()
            .await
            .unwrap()
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(found, "{table}");
    }
    // Months without a partition are made when a batch needs them, in one unit too.
    log.append(at(1, "2026-01-15T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    let unit = log
        .append_all(vec![
            at(2, "2026-03-01T00:00:00.000Z", "alice"),
            at(3, "2026-03-31T23:59:59.999Z", "alice"),
            at(4, "2026-04-01T00:00:00.000Z", "alice"),
        ])
        .await;
    assert!(unit.iter().all(Result::is_ok), "{unit:?}");
    log.shutdown().await;
    assert_eq!(
        placed(&db, "audit_events", "event_id").await,
        [
            ("event-0001".into(), "audit_events_202601".into()),
            ("event-0002".into(), "audit_events_202603".into()),
            ("event-0003".into(), "audit_events_202603".into()),
            ("event-0004".into(), "audit_events_202604".into()),
        ]
    );
    // A linked person goes with the event's month.
    assert_eq!(
        placed(&db, "audit_linked_subjects", "seq").await,
        [
            ("2".into(), "audit_linked_subjects_202603".into()),
            ("4".into(), "audit_linked_subjects_202604".into()),
        ]
    );
    let reader = PgAuditReader::new(db.pg.clone());
    let linked = Filter {
        subject_pseudonym: Some(subject(1004)),
        ..Filter::default()
    };
    assert_eq!(ids(&reader, linked).await, ["event-0004"]);
    assert_eq!(verify_every_event(&db, &dir).await.unwrap().events, 4);
}

#[tokio::test]
async fn a_version_3_log_with_rows_migrates_to_months_keeping_every_event_and_verifying() {
    let Some(source) = migrated("audit::postgres::migrate4_source").await else {
        return;
    };
    let Some(old) = crate::pg::testing::fresh("audit::postgres::migrate4").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        open_every_event(&source, &dir).await,
        open_every_event(&source, &dir).await,
    );
    for n in 1..=6 {
        let (log, user) = if n % 2 == 1 {
            (&a, "alice")
        } else {
            (&b, "bob")
        };
        let time = format!("2026-{:02}-10T09:00:00.000Z", n);
        log.append(at(n, &time, user)).await.unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;
    let before = verify_every_event(&source, &dir).await.unwrap();

    // The same rows in a schema at version 3.
    let client = old.pg.client().await.unwrap();
    let (schema, from) = (old.pg.schema(), source.pg.schema());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await
        .unwrap();
    for (version, name, sql) in crate::pg::migrations::MIGRATIONS
        .iter()
        .filter(|(v, _, _)| *v <= 3)
    {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&i32::try_from(*version).unwrap(), name],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "INSERT INTO audit_meta SELECT * FROM {from}.audit_meta;
             INSERT INTO audit_chains SELECT * FROM {from}.audit_chains;
             INSERT INTO audit_events (chain_id, seq, pos, event_id, time, request_id,
                 user_name, township, connector, purpose, subject_pseudonym, status, body,
                 prev_hash, hash) OVERRIDING SYSTEM VALUE
               SELECT chain_id, seq, pos, event_id, time, request_id, user_name, township,
                 connector, purpose, subject_pseudonym, status, body, prev_hash, hash
                 FROM {from}.audit_events;
             INSERT INTO audit_linked_subjects SELECT pseudonym, chain_id, seq
               FROM {from}.audit_linked_subjects;
             INSERT INTO audit_checkpoints SELECT * FROM {from}.audit_checkpoints;
             INSERT INTO audit_county_checkpoints (id, text, seq) OVERRIDING SYSTEM VALUE
               SELECT id, text, seq FROM {from}.audit_county_checkpoints;"
        ))
        .await
        .unwrap();
    let positions = "SELECT array_agg(pos ORDER BY pos) FROM audit_events";
    let pos_before: Vec<i64> = client.query_one(positions, &[]).await.unwrap().get(0);
    // Version 4 and every later one (5: the registry's corrections).
    let applied: Vec<u32> = (4..=crate::pg::migrations::known()).collect();
    assert_eq!(
        crate::pg::migrations::migrate(&old.pg).await.unwrap(),
        applied
    );

    let after = verify_every_event(&old, &dir).await.unwrap();
    assert_eq!(after.events, 6);
    assert_eq!(after.chains, before.chains);
    assert_eq!(after.county_checkpoints, before.county_checkpoints);
    let pos_after: Vec<i64> = client.query_one(positions, &[]).await.unwrap().get(0);
    assert_eq!(pos_after, pos_before);
    let events = placed(&old, "audit_events", "event_id").await;
    assert_eq!(events.len(), 6);
    for (n, (_, table)) in (1..=6).zip(&events) {
        assert_eq!(*table, format!("audit_events_2026{n:02}"));
    }
    assert_eq!(placed(&old, "audit_linked_subjects", "seq").await.len(), 3);
    // A writer goes on after the copied rows, `pos` after theirs.
    let log = open_every_event(&old, &dir).await;
    log.append(at(7, "2026-07-10T09:00:00.000Z", "carol"))
        .await
        .unwrap();
    log.shutdown().await;
    let newest: i64 = client
        .query_one(
            "SELECT pos FROM audit_events WHERE event_id = 'event-0007'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(newest > *pos_before.iter().max().unwrap());
    assert_eq!(verify_every_event(&old, &dir).await.unwrap().events, 7);
}

#[tokio::test]
async fn archive_detaches_whole_old_months_which_search_leaves_out_and_verify_still_walks() {
    let Some(db) = migrated("audit::postgres::archive").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        open_every_event(&db, &dir).await,
        open_every_event(&db, &dir).await,
    );
    a.append(at(1, "2020-01-10T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    a.append(at(2, "2020-01-20T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    a.append(at(3, "2020-02-05T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    // b's newest event is in 2020-02: that month stays live for now.
    b.append(at(4, "2020-02-10T08:00:00.000Z", "bob"))
        .await
        .unwrap();
    a.append(at(5, "2026-03-01T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    let too_short = PgAuditBackend::new(db.pg.clone(), key(&dir))
        .archive(
            crate::audit::Retention {
                keep_days: 30,
                allow_short: false,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(too_short.to_string().contains("too short"), "{too_short}");

    let first = archive_at(&db, &dir, "2026-03-15T00:00:00Z").await.unwrap();
    assert_eq!(
        first,
        Some(Archived::Months(ArchivedMonths {
            months: vec![ArchivedMonth {
                month: "2020-01".into(),
                events: 2,
                table: "audit_archive_202001".into(),
            }],
            kept: vec!["2020-02".into()],
        }))
    );
    let lines = first.unwrap().lines();
    assert_eq!(
        lines,
        [
            "archived 2020-01 (2 events) to the table audit_archive_202001",
            "kept 2020-02 live: it holds the head of a chain",
        ]
    );
    // The officer's search reads the live months only; verify walks everything.
    let reader = PgAuditReader::new(db.pg.clone());
    assert_eq!(
        ids(&reader, Filter::default()).await,
        ["event-0005", "event-0004", "event-0003"]
    );
    let linked = Filter {
        subject_pseudonym: Some(subject(1002)),
        ..Filter::default()
    };
    assert!(ids(&reader, linked).await.is_empty());
    assert_eq!(verify_every_event(&db, &dir).await.unwrap().events, 5);
    // Archived months are read-only.
    let client = db.pg.client().await.unwrap();
    for change in [
        "DELETE FROM audit_archive_202001",
        "UPDATE audit_archive_linked_202001 SET pseudonym = 'x'",
        "TRUNCATE audit_archive_202001",
    ] {
        let refused = client.batch_execute(change).await.unwrap_err();
        assert!(
            refused
                .as_db_error()
                .unwrap()
                .message()
                .contains("read-only"),
            "{change}: {refused}"
        );
    }

    // Once b moved on, its month goes too; a run with nothing old left does nothing.
    b.append(at(6, "2026-03-02T08:00:00.000Z", "bob"))
        .await
        .unwrap();
    let second = archive_at(&db, &dir, "2026-03-15T00:00:00Z").await.unwrap();
    assert_eq!(
        second,
        Some(Archived::Months(ArchivedMonths {
            months: vec![ArchivedMonth {
                month: "2020-02".into(),
                events: 2,
                table: "audit_archive_202002".into(),
            }],
            kept: Vec::new(),
        }))
    );
    assert_eq!(
        archive_at(&db, &dir, "2026-03-15T00:00:00Z").await.unwrap(),
        None
    );
    a.shutdown().await;
    b.shutdown().await;
    let report = verify_every_event(&db, &dir).await.unwrap();
    assert_eq!(report.events, 6);
    assert_eq!(report.chains.len(), 2);
    assert_eq!(
        ids(&reader, Filter::default()).await,
        ["event-0006", "event-0005"]
    );

    // Disposing of an archived month (a decision for people) shows in verify.
    sql(&db, "DROP TABLE audit_archive_202001").await;
    let failure = verify_every_event(&db, &dir).await.unwrap_err();
    assert!(failure.problem.contains("2020-01"), "{failure}");
    assert!(failure.problem.contains("missing"), "{failure}");
}

#[tokio::test]
async fn a_month_whose_archive_would_split_a_chain_out_of_order_is_refused() {
    let Some(db) = migrated("audit::postgres::archive_order").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = open_every_event(&db, &dir).await;
    log.append(at(1, "2020-03-05T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    log.append(at(2, "2020-03-06T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    // The writer's clock went back two months, then was put right.
    log.append(at(3, "2020-01-10T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    log.append(at(4, "2026-03-01T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    log.shutdown().await;
    let refused = archive_at(&db, &dir, "2026-03-15T00:00:00Z")
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("2020-01") && text.contains("out of order"),
        "{text}"
    );
    assert!(text.contains(&log.chain_id()), "{text}");
    let archived: i64 = db
        .pg
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM audit_archived_months", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 0);
    assert_eq!(placed(&db, "audit_events", "event_id").await.len(), 4);
    assert_eq!(verify_every_event(&db, &dir).await.unwrap().events, 4);
}

/// A month's detach waits behind a reader of the live table (a running verify) only
/// briefly at a time, so that the writers queued behind its request are not held up,
/// and the run tries again until the reader is done.
#[tokio::test]
async fn an_archive_run_behind_a_running_verify_lets_writers_by_and_tries_again() {
    let Some(db) = migrated("audit::postgres::archive_busy").await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let log = open_every_event(&db, &dir).await;
    for (n, time) in [
        (1, "2020-01-10T08:00:00.000Z"),
        (2, "2020-01-11T08:00:00.000Z"),
        (3, "2026-03-01T08:00:00.000Z"),
    ] {
        log.append(at(n, time, "alice")).await.unwrap();
    }
    // What a verify holds for its whole walk.
    let mut reader = db.pg.client().await.unwrap();
    let held = reader.transaction().await.unwrap();
    held.batch_execute("LOCK TABLE audit_events IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let run = tokio::spawn({
        let (pg, key) = (db.pg.clone(), key(&dir));
        async move {
            let now = chrono::DateTime::parse_from_rfc3339("2026-03-15T00:00:00Z")
                .unwrap()
                .to_utc();
            PgAuditBackend::new(pg, key)
                .archive(crate::audit::Retention::default(), now)
                .await
        }
    });
    // The run asks for the live table and waits behind the reader …
    let watcher = db.pg.client().await.unwrap();
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_locks
                  WHERE NOT granted AND relation = 'audit_events'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    // … and gives its turn up, so that an append queued behind it goes through while
    // the reader still holds the table (it would wait for the reader otherwise) …
    log.append(at(4, "2026-03-02T08:00:00.000Z", "alice"))
        .await
        .unwrap();
    assert!(!run.is_finished(), "the month cannot go while it is read");
    // … and once the reader is done, the month goes.
    held.rollback().await.unwrap();
    let archived = run.await.unwrap().unwrap().unwrap();
    assert_eq!(
        archived.lines(),
        ["archived 2020-01 (2 events) to the table audit_archive_202001"]
    );
    log.shutdown().await;
    assert_eq!(verify_every_event(&db, &dir).await.unwrap().events, 4);
}
