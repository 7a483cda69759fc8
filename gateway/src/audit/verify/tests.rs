//! Tests of what the check does differently from a plain sequential reading, on real
//! logs: a body which is not an audit event is still named though its hashes hold, the
//! first failure in sequence order is the one named, and the integrity check running
//! alongside the walk is reported after a walk that passed and never instead of a
//! failure of the walk. (The tamper suite of `audit::tests` and the archive tests of
//! `audit::retention` check the rest of `verify`.)

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::super::canonical::to_canonical;
use super::super::chain::link_hash;
use super::super::{
    AUDIT_FILE, AuditCaller, AuditEvent, AuditLog, AuditOptions, AuditOutcome, EventKind,
    MaskedField, SqliteAudit, WithheldField,
};
use super::{VerifyFailure, verify};

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        cache_hit: i.is_multiple_of(2),
        caller: AuditCaller {
            app: Some("console".into()),
            department: None,
            roles: vec!["township_clerk".into(), "reader".into()],
            source_ip: Some("10.0.0.8".into()),
            villages: Vec::new(),
            township: Some("东岭镇".into()),
            user: format!("clerk{}", i % 7),
        },
        case_id: Some(format!("CASE-{i}")),
        connector: Some("civil_affairs".into()),
        disclose_after: None,
        event_id: format!("0190d6f2-0000-7000-8000-{i:012}"),
        fields_masked: vec![MaskedField {
            field: "name".into(),
            mask: "name".into(),
        }],
        fields_returned: vec!["name".into(), "birth_date".into()],
        fields_verified: Vec::new(),
        fields_withheld: vec![WithheldField {
            field: "income".into(),
            reason: "denied".into(),
            rule: Some("R7".into()),
        }],
        form: None,
        kind: EventKind::Lookup,
        operation: Some("person_by_id".into()),
        outcome: AuditOutcome {
            problem: None,
            status: 200,
        },
        policy_version: Some("2025.1".into()),
        purpose: Some("birth_registration".into()),
        reason: None,
        request_id: format!("req-{i}"),
        rules: vec!["G12".into()],
        subject_masked: Some("330102********1234".into()),
        subject_township: None,
        jurisdiction: None,
        linked: Vec::new(),
        subject_pseudonym: Some(format!("ps:{i:016x}")),
        time: "2025-03-01T08:00:00.000Z".into(),
        upstream_latency_ms: Some(12),
    }
}

// ---- on real logs ------------------------------------------------------------------

/// A log of `n` events, checkpointed only when the writer stops (at `n`).
async fn log(n: u64) -> TempDir {
    let dir = TempDir::new().unwrap();
    let audit = SqliteAudit::open(
        dir.path(),
        AuditOptions {
            checkpoint_every_events: 0,
            checkpoint_every: Duration::from_secs(3600),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    for i in 1..=n {
        audit.append(event(i)).await.unwrap();
    }
    audit.shutdown().await;
    verify(dir.path()).unwrap();
    dir
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join(AUDIT_FILE)).unwrap()
}

fn stored_body(conn: &Connection, seq: i64) -> Value {
    let text: String = conn
        .query_row("SELECT body FROM events WHERE seq = ?1", [seq], |row| {
            row.get(0)
        })
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Writes `body` as event `seq`'s and recomputes every hash from it on, so that the
/// chain holds and only the body (and the final checkpoint) is wrong.
fn rewrite_and_rechain(conn: &Connection, seq: i64, body: &str) {
    conn.execute(
        "UPDATE events SET body = ?1 WHERE seq = ?2",
        params![body, seq],
    )
    .unwrap();
    let mut prev: [u8; 32] = hex::decode(
        conn.query_row(
            "SELECT prev_hash FROM events WHERE seq = ?1",
            [seq],
            |row| row.get::<_, String>(0),
        )
        .unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let last: i64 = conn
        .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
        .unwrap();
    for at in seq..=last {
        let body: String = conn
            .query_row("SELECT body FROM events WHERE seq = ?1", [at], |row| {
                row.get(0)
            })
            .unwrap();
        let hash = link_hash(at as u64, &prev, body.as_bytes());
        conn.execute(
            "UPDATE events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            params![hex::encode(prev), hex::encode(hash), at],
        )
        .unwrap();
        prev = hash;
    }
}

fn broken_at(dir: &Path, seq: u64) -> VerifyFailure {
    let failure = verify(dir).expect_err("verify must fail");
    assert_eq!(failure.seq, Some(seq), "{failure}");
    failure
}

#[tokio::test]
async fn a_body_that_is_not_an_audit_event_is_named_though_its_hashes_hold() {
    let edits: [fn(&mut Value); 5] = [
        |v| drop(v.as_object_mut().unwrap().remove("cache_hit")),
        |v| drop(v["caller"].as_object_mut().unwrap().remove("user")),
        |v| v["outcome"]["status"] = json!("200"),
        |v| v["upstream_latency_ms"] = json!(-1),
        |v| v["fields_masked"] = json!([{"field": "name"}]),
    ];
    for edit in edits {
        let dir = log(8).await;
        let conn = db(dir.path());
        let mut body = stored_body(&conn, 5);
        edit(&mut body);
        rewrite_and_rechain(&conn, 5, &to_canonical(&body));
        drop(conn);
        let failure = broken_at(dir.path(), 5);
        assert_eq!(failure.problem, "the stored body is not an audit event");
    }
}

#[tokio::test]
async fn the_first_failure_in_sequence_order_is_named() {
    // A body that is not an event at 5, a hash that is wrong at 7.
    let dir = log(8).await;
    let conn = db(dir.path());
    let mut body = stored_body(&conn, 5);
    body.as_object_mut().unwrap().remove("time");
    rewrite_and_rechain(&conn, 5, &to_canonical(&body));
    conn.execute(
        "UPDATE events SET hash = ?1 WHERE seq = 7",
        [hex::encode([7u8; 32])],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        broken_at(dir.path(), 5).problem,
        "the stored body is not an audit event"
    );

    // An event missing at 3 wins over the body at 5.
    db(dir.path())
        .execute("DELETE FROM events WHERE seq = 3", [])
        .unwrap();
    let failure = broken_at(dir.path(), 3);
    assert!(failure.problem.contains("missing"), "{failure}");
}

/// Breaks an index without touching the table: only the integrity check can tell.
fn break_an_index(dir: &Path) {
    let conn = db(dir);
    conn.execute_batch(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE INDEX events_time ON events (user)'
          WHERE name = 'events_time';
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
}

#[tokio::test]
async fn the_integrity_check_alongside_comes_after_the_walk() {
    let dir = log(8).await;
    break_an_index(dir.path());
    let failure = verify(dir.path()).expect_err("the index is broken");
    assert_eq!(failure.seq, None, "{failure}");
    assert!(
        failure
            .problem
            .starts_with("SQLite integrity check failed: "),
        "{failure}"
    );

    // A failure of the walk is named instead, as when the check ran after it.
    db(dir.path())
        .execute(
            "UPDATE events SET hash = ?1 WHERE seq = 4",
            [hex::encode([4u8; 32])],
        )
        .unwrap();
    let failure = broken_at(dir.path(), 4);
    assert!(failure.problem.contains("stored hash"), "{failure}");
}
