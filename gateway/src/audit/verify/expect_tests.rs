//! Tests of what a log is held to beyond its chain, on real logs written by the real
//! writer and then attacked as someone with write access to `audit.db` would: the
//! cadence (stripped checkpoints, with the chain recomputed over an edited event),
//! the checkpoints' own chain, the unsigned tail a crash leaves, v1 checkpoints of
//! older gateways, the pinned key, and witnessed checkpoints against a rewrite
//! re-signed with the log's own key and against a cut tail. Each attack is also
//! refused by the writer at start.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde_json::Value;
use tempfile::TempDir;

use super::super::canonical::to_canonical;
use super::super::chain::link_hash;
use super::super::checkpoint::{Checkpoint, Prev, Signer, load_or_create_key};
use super::super::{
    AUDIT_FILE, AuditCaller, AuditError, AuditEvent, AuditLog, AuditOptions, AuditOutcome, Cadence,
    EventKind, KEY_FILE, SqliteAudit,
};
use super::{Expectations, VerifyFailure, VerifyReport, Witnessed, verify_with};

fn event(i: u64, time: &str) -> AuditEvent {
    let mut event = AuditEvent::admin(&format!("req-{i}"), AuditCaller::gateway(), "test");
    event.kind = EventKind::Lookup;
    event.case_id = Some(format!("CASE-{i}"));
    event.time = time.to_owned();
    event.outcome = AuditOutcome {
        status: 200,
        problem: None,
    };
    event
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A writer checkpointing every `every_events` events (and after an hour).
fn options(every_events: u64) -> AuditOptions {
    AuditOptions {
        checkpoint_every_events: every_events,
        checkpoint_every: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

/// What a verifier configured like that writer expects.
fn expecting(every_events: u64) -> Expectations {
    Expectations {
        cadence: options(every_events).cadence(),
        ..Expectations::default()
    }
}

/// Appends events `from..from + n` (dated now) with a writer of `options`, which
/// signs the head when it stops.
async fn append(dir: &Path, options: AuditOptions, from: u64, n: u64) {
    let audit = SqliteAudit::open(dir, options).unwrap();
    for i in from..from + n {
        audit.append(event(i, &now())).await.unwrap();
    }
    audit.shutdown().await;
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join(AUDIT_FILE)).unwrap()
}

fn seqs(conn: &Connection, table: &str) -> Vec<u64> {
    let mut stmt = conn
        .prepare(&format!("SELECT seq FROM {table} ORDER BY seq"))
        .unwrap();
    stmt.query_map([], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|seq| seq.unwrap() as u64)
        .collect()
}

fn checkpoint_text(conn: &Connection, seq: u64) -> String {
    conn.query_row(
        "SELECT text FROM checkpoints WHERE seq = ?1",
        [seq as i64],
        |row| row.get(0),
    )
    .unwrap()
}

/// The attack: event `seq`'s body edited, then every hash from it on recomputed
/// with the log's own (public) canonical form and chain hash.
fn edit_and_rechain(conn: &Connection, seq: u64) {
    let body: String = conn
        .query_row(
            "SELECT body FROM events WHERE seq = ?1",
            [seq as i64],
            |row| row.get(0),
        )
        .unwrap();
    let mut edited: Value = serde_json::from_str(&body).unwrap();
    edited["case_id"] = Value::from("FORGED");
    conn.execute(
        "UPDATE events SET body = ?1 WHERE seq = ?2",
        params![to_canonical(&edited), seq as i64],
    )
    .unwrap();
    let prev: String = conn
        .query_row(
            "SELECT prev_hash FROM events WHERE seq = ?1",
            [seq as i64],
            |row| row.get(0),
        )
        .unwrap();
    let mut prev: [u8; 32] = hex::decode(prev).unwrap().try_into().unwrap();
    for at in seqs(conn, "events").into_iter().filter(|at| *at >= seq) {
        let body: String = conn
            .query_row(
                "SELECT body FROM events WHERE seq = ?1",
                [at as i64],
                |row| row.get(0),
            )
            .unwrap();
        let hash = link_hash(at, &prev, body.as_bytes());
        conn.execute(
            "UPDATE events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            params![hex::encode(prev), hex::encode(hash), at as i64],
        )
        .unwrap();
        prev = hash;
    }
}

/// The attack of someone holding the key too: every checkpoint signed again over
/// the (rewritten) chain, chained and with the cadence it had.
fn resign(dir: &Path, signer: &Signer) {
    let conn = db(dir);
    let mut prev = Prev::NONE;
    for seq in seqs(&conn, "checkpoints") {
        let old = Checkpoint::parse(&checkpoint_text(&conn, seq)).unwrap();
        let hash: String = conn
            .query_row(
                "SELECT hash FROM events WHERE seq = ?1",
                [seq as i64],
                |row| row.get(0),
            )
            .unwrap();
        let text = signer.checkpoint(seq, &hash, &old.time, &prev, &old.cadence.unwrap());
        conn.execute(
            "UPDATE checkpoints SET text = ?1 WHERE seq = ?2",
            params![text, seq as i64],
        )
        .unwrap();
        prev = Prev::of(seq, &text);
    }
}

fn the_logs_key(dir: &Path) -> Signer {
    load_or_create_key(&dir.join(KEY_FILE), false).unwrap()
}

fn fails_at(dir: &Path, expect: &Expectations, seq: u64) -> VerifyFailure {
    let failure = verify_with(dir, expect).expect_err("verify must fail");
    assert_eq!(failure.seq, Some(seq), "{failure}");
    failure
}

/// The writer refuses the log, naming `seq`.
fn refused_at(dir: &Path, options: AuditOptions, seq: u64) -> String {
    match SqliteAudit::open(dir, options) {
        Err(AuditError::Broken(failure)) => {
            assert_eq!(failure.seq, Some(seq), "{failure}");
            AuditError::Broken(failure).to_string()
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("the writer opened a log it should refuse"),
    }
}

#[tokio::test]
async fn stripping_every_checkpoint_and_recomputing_the_chain_is_named() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 23).await;
    let conn = db(dir);
    assert_eq!(seqs(&conn, "checkpoints"), [5, 10, 15, 20, 23]);
    conn.execute("DELETE FROM checkpoints", []).unwrap();
    edit_and_rechain(&conn, 7);

    let failure = fails_at(dir, &expecting(5), 5);
    assert!(
        failure
            .problem
            .starts_with("no checkpoint at seq 5: 5 events since the first event"),
        "{failure}"
    );
    let refusal = refused_at(dir, options(5), 5);
    assert!(refusal.contains("will not sign over"), "{refusal}");
    assert!(
        db(dir)
            .query_row("SELECT count(*) FROM checkpoints", [], |row| row
                .get::<_, i64>(0))
            .unwrap()
            == 0,
        "nothing was signed"
    );
}

#[tokio::test]
async fn stripping_the_checkpoints_after_an_edit_is_named_at_the_gap() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 23).await;
    let conn = db(dir);
    conn.execute("DELETE FROM checkpoints WHERE seq >= 10", [])
        .unwrap();
    edit_and_rechain(&conn, 12);
    fails_at(dir, &expecting(5), 10);
    refused_at(dir, options(5), 10);
}

#[tokio::test]
async fn a_removed_checkpoint_is_named_by_the_next_one() {
    // No count trigger and a long interval: checkpoints only where the writer
    // stopped (3, 6, 9), so only the checkpoints' own chain tells one is gone.
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    for from in [1, 4, 7] {
        append(dir, options(0), from, 3).await;
    }
    let conn = db(dir);
    assert_eq!(seqs(&conn, "checkpoints"), [3, 6, 9]);
    verify_with(dir, &expecting(0)).unwrap();
    conn.execute("DELETE FROM checkpoints WHERE seq = 6", [])
        .unwrap();
    let failure = fails_at(dir, &expecting(0), 6);
    assert!(
        failure.problem.contains("follows a checkpoint at seq 6"),
        "{failure}"
    );
    refused_at(dir, options(0), 6);
}

#[tokio::test]
async fn events_too_far_apart_without_a_checkpoint_are_named() {
    // Events dated 0 s, 20 s and 200 s after the first, written at once: the writer
    // (a checkpoint at least every 60 s) signs them only when it stops, as if the
    // checkpoints it made on time had been removed.
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let options = AuditOptions {
        checkpoint_every: Duration::from_secs(60),
        ..options(0)
    };
    let audit = SqliteAudit::open(dir, options.clone()).unwrap();
    for (i, time) in [
        "2026-03-02T08:00:00.000Z",
        "2026-03-02T08:00:20.000Z",
        "2026-03-02T08:03:20.000Z",
    ]
    .into_iter()
    .enumerate()
    {
        audit.append(event(i as u64, time)).await.unwrap();
    }
    audit.shutdown().await;
    let expect = Expectations {
        cadence: options.cadence(),
        ..Expectations::default()
    };
    let failure = fails_at(dir, &expect, 3);
    assert!(
        failure
            .problem
            .starts_with("no checkpoint between seq 1 and seq 3, which are 200 s apart"),
        "{failure}"
    );
    refused_at(dir, options, 3);
}

#[tokio::test]
async fn a_crash_leaves_a_short_unsigned_tail_which_is_signed_at_the_next_start() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 13).await;
    // Killed before it signed the head: the checkpoint made at stop is not there.
    db(dir)
        .execute("DELETE FROM checkpoints WHERE seq = 13", [])
        .unwrap();
    let report = verify_with(dir, &expecting(5)).unwrap();
    assert_eq!((report.events, report.unsigned_tail), (13, 3));

    append(dir, options(5), 14, 4).await;
    let conn = db(dir);
    assert_eq!(
        seqs(&conn, "checkpoints"),
        [5, 10, 13, 17],
        "the tail signed at start, then the count from there, then the stop"
    );
    let report = verify_with(dir, &expecting(5)).unwrap();
    assert_eq!((report.events, report.unsigned_tail), (17, 0));
}

#[tokio::test]
async fn a_tail_longer_than_the_cadence_allows_is_refused() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 13).await;
    db(dir)
        .execute("DELETE FROM checkpoints WHERE seq > 5", [])
        .unwrap();
    let failure = fails_at(dir, &expecting(5), 10);
    assert!(
        failure.problem.contains("no checkpoint at seq 10"),
        "{failure}"
    );
    refused_at(dir, options(5), 10);
}

#[tokio::test]
async fn an_edited_tail_event_is_refused_before_it_is_signed() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 13).await;
    let conn = db(dir);
    conn.execute("DELETE FROM checkpoints WHERE seq = 13", [])
        .unwrap();
    conn.execute(
        "UPDATE events SET body = replace(body, 'CASE-12', 'CASE-99') WHERE seq = 12",
        [],
    )
    .unwrap();
    let refusal = refused_at(dir, options(5), 12);
    assert!(refusal.contains("unsigned tail"), "{refusal}");
}

#[tokio::test]
async fn a_cadence_signed_by_the_writer_holds_however_the_configuration_changed() {
    // Written every 5 events, checked by a looser configuration: still sound.
    let tmp = TempDir::new().unwrap();
    append(tmp.path(), options(5), 1, 12).await;
    verify_with(tmp.path(), &expecting(1000)).unwrap();
    // Written every 1000 events, checked by a configuration lowered to 5 since: the
    // gaps the old writer left are held to the cadence it signed.
    let tmp = TempDir::new().unwrap();
    append(tmp.path(), options(1000), 1, 12).await;
    verify_with(tmp.path(), &expecting(5)).unwrap();
    append(tmp.path(), options(5), 13, 6).await;
    let report = verify_with(tmp.path(), &expecting(5)).unwrap();
    assert_eq!(report.events, 18);
}

#[tokio::test]
async fn v1_checkpoints_of_an_older_gateway_still_verify_and_the_log_goes_on_in_v2() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 12).await;
    // As a gateway before v2 wrote them.
    let signer = the_logs_key(dir);
    let conn = db(dir);
    for seq in seqs(&conn, "checkpoints") {
        let old = Checkpoint::parse(&checkpoint_text(&conn, seq)).unwrap();
        let v1 = signer.checkpoint_v1(seq, &old.hash, &old.time);
        conn.execute(
            "UPDATE checkpoints SET text = ?1 WHERE seq = ?2",
            params![v1, seq as i64],
        )
        .unwrap();
    }
    assert_eq!(verify_with(dir, &expecting(5)).unwrap().checkpoints, 3);

    append(dir, options(5), 13, 3).await;
    let newest = Checkpoint::parse(&checkpoint_text(&conn, 15)).unwrap();
    assert_eq!(newest.version, 2);
    assert_eq!(
        newest.prev,
        Some(Prev::of(12, &checkpoint_text(&conn, 12))),
        "the first v2 checkpoint names the last v1 one"
    );
    assert_eq!(verify_with(dir, &expecting(5)).unwrap().checkpoints, 4);

    // A v1 checkpoint is checked by its own signature.
    let hash = Checkpoint::parse(&checkpoint_text(&conn, 5)).unwrap().hash;
    let forged = the_other_key().checkpoint_v1(5, &hash, "2026-01-01T00:00:00.000Z");
    conn.execute("UPDATE checkpoints SET text = ?1 WHERE seq = 5", [forged])
        .unwrap();
    fails_at(dir, &expecting(5), 5);
    refused_at(dir, options(5), 5);
}

fn the_other_key() -> Signer {
    Signer::new(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap())
}

#[tokio::test]
async fn the_pinned_key_is_the_one_checked_and_a_replaced_key_is_refused() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 12).await;
    let ours = the_logs_key(dir).public_key().to_vec();
    let pinned = |key: &[u8]| Expectations {
        pinned_key: Some(key.to_vec()),
        ..expecting(5)
    };
    let report = verify_with(dir, &pinned(&ours)).unwrap();
    assert!(report.key_pinned);
    let unpinned = verify_with(dir, &expecting(5)).unwrap();
    assert!(!unpinned.key_pinned);
    assert_eq!(report.key, unpinned.key);

    // The key replaced and everything re-signed with the new one: consistent on its
    // own, but not with the pin.
    let other = the_other_key();
    resign(dir, &other);
    verify_with(dir, &expecting(5)).unwrap_err();
    let failure = fails_at(dir, &pinned(&ours), 5);
    assert!(failure.problem.contains("another key"), "{failure}");
    let error = SqliteAudit::open(
        dir,
        AuditOptions {
            pinned_key: Some(ours.clone()),
            ..options(5)
        },
    )
    .unwrap_err();
    assert!(matches!(error, AuditError::Broken(_)), "{error}");

    // A data dir whose key file is not the pinned key does not start.
    let fresh = TempDir::new().unwrap();
    append(fresh.path(), options(5), 1, 1).await;
    let error = SqliteAudit::open(
        fresh.path(),
        AuditOptions {
            pinned_key: Some(ours.clone()),
            ..options(5)
        },
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("is not the pinned key"),
        "{error}"
    );
    // Nor does one without a key, where a new one would be made.
    let empty = TempDir::new().unwrap();
    let error = SqliteAudit::open(
        empty.path(),
        AuditOptions {
            pinned_key: Some(ours),
            ..options(5)
        },
    )
    .unwrap_err();
    assert!(matches!(error, AuditError::Key(_)), "{error}");
    assert!(!empty.path().join(KEY_FILE).exists());
}

fn witnessed(conn: &Connection, seqs: &[u64]) -> Vec<Witnessed> {
    seqs.iter()
        .map(|seq| Witnessed {
            witness: "the city bureau".into(),
            text: checkpoint_text(conn, *seq),
        })
        .collect()
}

#[tokio::test]
async fn a_rewrite_re_signed_with_the_logs_key_is_caught_by_a_witness() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 12).await;
    let conn = db(dir);
    let held = witnessed(&conn, &[5, 10, 12]);
    let expect = Expectations {
        witnessed: held,
        ..expecting(5)
    };
    let report = verify_with(dir, &expect).unwrap();
    assert_eq!(report.witnessed, 3);

    edit_and_rechain(&conn, 3);
    resign(dir, &the_logs_key(dir));
    // Nothing local can tell.
    let report: VerifyReport = verify_with(dir, &expecting(5)).unwrap();
    assert_eq!(report.events, 12);
    let failure = fails_at(dir, &expect, 5);
    assert!(
        failure
            .problem
            .starts_with("the city bureau holds a checkpoint at seq 5 whose hash is not the log's"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_cut_tail_is_caught_by_a_witness() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    append(dir, options(5), 1, 12).await;
    let conn = db(dir);
    let expect = Expectations {
        witnessed: witnessed(&conn, &[5, 10, 12]),
        ..expecting(5)
    };
    conn.execute("DELETE FROM events WHERE seq > 8", [])
        .unwrap();
    conn.execute("DELETE FROM checkpoints WHERE seq > 5", [])
        .unwrap();
    assert_eq!(verify_with(dir, &expecting(5)).unwrap().events, 8);
    let failure = fails_at(dir, &expect, 9);
    assert!(failure.problem.contains("cut off"), "{failure}");

    // A witness's checkpoint that the log's key did not sign proves nothing.
    let forged = the_other_key().checkpoint(
        5,
        &Checkpoint::parse(&checkpoint_text(&conn, 5)).unwrap().hash,
        "2026-01-01T00:00:00.000Z",
        &Prev::NONE,
        &Cadence::default(),
    );
    let failure = verify_with(
        dir,
        &Expectations {
            witnessed: vec![Witnessed {
                witness: "a stranger".into(),
                text: forged,
            }],
            ..expecting(5)
        },
    )
    .unwrap_err();
    assert!(failure.problem.contains("not this log's"), "{failure}");
}
