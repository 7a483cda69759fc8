//! Tests of the audit log on real SQLite files in temporary directories: ordering and
//! durability under concurrency, group commit, restart, the tamper suite, store
//! failure, backpressure and checkpoints.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::FutureExt;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use sha2::Digest;
use tempfile::TempDir;

use super::canonical::{event_body, to_canonical};
use super::chain::{GENESIS, link_hash};
use super::checkpoint::{Checkpoint, HEADER, public_key};
use super::hooks::Hooks;
use super::*;

pub(super) fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        request_id: format!("req-{i}"),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: EventKind::Lookup,
        caller: AuditCaller {
            user: format!("clerk{}", i % 7),
            roles: vec!["township_clerk".into()],
            township: Some("330102001".into()),
            department: None,
            app: Some("console".into()),
            source_ip: Some("10.0.0.8".into()),
            villages: Vec::new(),
        },
        purpose: Some("birth_registration".into()),
        reason: None,
        case_id: Some(format!("CASE-{i}")),
        connector: Some("civil_affairs".into()),
        operation: Some("person_by_id".into()),
        subject_pseudonym: Some(format!("ps:{i:016x}")),
        subject_masked: Some("330102********1234".into()),
        subject_township: None,
        jurisdiction: None,
        linked: Vec::new(),
        fields_returned: vec!["name".into(), "birth_date".into()],
        fields_masked: vec![MaskedField {
            field: "name".into(),
            mask: "name".into(),
        }],
        fields_verified: Vec::new(),
        fields_withheld: vec![WithheldField {
            field: "income".into(),
            reason: "denied".into(),
            rule: Some("R7".into()),
        }],
        rules: vec!["G12".into()],
        policy_version: Some("2025.1".into()),
        outcome: AuditOutcome {
            status: 200,
            problem: None,
        },
        upstream_latency_ms: Some(12),
        cache_hit: i.is_multiple_of(2),
        disclose_after: None,
        form: None,
    }
}

fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

fn open(dir: &Path, options: AuditOptions) -> (SqliteAudit, Arc<Hooks>) {
    open_hooked(dir, options, Hooks::new(true))
}

fn open_hooked(dir: &Path, options: AuditOptions, hooks: Hooks) -> (SqliteAudit, Arc<Hooks>) {
    let hooks = Arc::new(hooks);
    let audit = SqliteAudit::open_with(dir, options, hooks.clone()).unwrap();
    (audit, hooks)
}

async fn append_n(audit: &SqliteAudit, from: u64, n: u64) -> Vec<Recorded> {
    let mut recorded = Vec::new();
    for i in from..from + n {
        recorded.push(audit.append(event(i)).await.unwrap());
    }
    recorded
}

fn db(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join(AUDIT_FILE)).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn count(dir: &Path, table: &str) -> i64 {
    db(dir)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

fn body(conn: &Connection, seq: i64) -> String {
    conn.query_row("SELECT body FROM events WHERE seq = ?1", [seq], |row| {
        row.get(0)
    })
    .unwrap()
}

fn assert_broken_at(dir: &Path, seq: u64) -> VerifyFailure {
    let failure = verify(dir).expect_err("verify must fail");
    assert_eq!(failure.seq, Some(seq), "{failure}");
    assert!(
        failure
            .to_string()
            .starts_with(&format!("audit log broken at seq {seq}: ")),
        "{failure}"
    );
    failure
}

#[test]
fn canonical_json_sorts_keys_and_escapes() {
    let value = json!({"b": [1, {"z": null, "a": true}], "a": "x\"\\\n\t\u{1}é中", "A": false});
    assert_eq!(
        to_canonical(&value),
        "{\"A\":false,\"a\":\"x\\\"\\\\\\n\\t\\u0001é中\",\"b\":[1,{\"a\":true,\"z\":null}]}"
    );
    let body = event_body(&event(1)).unwrap();
    assert!(!body.contains(' ') && !body.contains('\n'), "no whitespace");
    let reparsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        to_canonical(&reparsed),
        body,
        "canonical form is a fixpoint"
    );
    let back: AuditEvent = serde_json::from_str(&body).unwrap();
    assert_eq!(back.caller, event(1).caller);
    assert!(body.starts_with("{\"cache_hit\":false,\"caller\":{\"app\":\"console\""));
}

// The body is written straight from the struct; it must be exactly what the reference
// writer makes of the same event, whichever members are set and whatever the strings
// hold (quotes, backslashes, control characters, non-ASCII).
#[test]
fn an_event_body_is_the_reference_canonical_form() {
    let awkward = "\"q\" \\ \u{0}\u{7}\u{8}\u{b}\u{c}\u{1f}\u{7f} \n\r\t é 中文 \u{2028} 🙂 /";
    let mut full = event(3);
    full.disclose_after = Some("2027-01-01".into());
    full.form = Some(awkward.into());
    full.caller.department = Some(awkward.into());
    full.caller.villages = vec!["330102001201".into(), "330102001202".into()];
    full.fields_withheld[0].rule = None;
    full.outcome.problem = Some("forbidden".into());
    full.upstream_latency_ms = Some(u64::MAX);
    full.cache_hit = true;
    let mut bare = AuditEvent::admin("req", AuditCaller::gateway(), "config.load");
    bare.fields_returned = vec![awkward.into(), String::new()];
    // A caller without villages writes no `villages` member: events from before the
    // claim existed keep their bodies, so their chain hashes still verify.
    assert!(!event_body(&event(1)).unwrap().contains("villages"));
    assert!(
        event_body(&full)
            .unwrap()
            .contains(r#""user":"clerk3","villages":["330102001201","330102001202"]}"#)
    );
    for event in [event(1), full, bare] {
        let reference = to_canonical(&serde_json::to_value(&event).unwrap());
        assert_eq!(event_body(&event).unwrap(), reference);
    }
}

#[test]
fn chain_hash_follows_the_documented_layout() {
    let body = b"{}";
    let mut bytes = b"county-gateway/audit/v1\0".to_vec();
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes.extend_from_slice(&GENESIS);
    bytes.extend_from_slice(body);
    use sha2::Digest;
    let expected: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    assert_eq!(link_hash(1, &GENESIS, body), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_appends_get_consecutive_seqs_and_are_durable() {
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open(dir.path(), options());
    let tasks = 40;
    let per_task = 20;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let audit = audit.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_task {
                seqs.push(audit.append(event(t * 1000 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for handle in handles {
        let mine = handle.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "a task's events stay in order"
        );
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    let n = tasks * per_task;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let transactions = hooks.transactions();
    assert!(
        (1..=n).contains(&transactions),
        "{transactions} transactions"
    );
    audit.shutdown().await;

    assert_eq!(count(dir.path(), "events"), n as i64);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.events, n);
    assert_eq!(report.last_seq, n);
    assert_eq!(report.checkpoints, 1, "the shutdown checkpoint");
}

// A current-thread runtime: a task's send is complete whenever the test task runs,
// so once the queue is seen full every event is in it (on worker threads a send in
// progress already counts as queued but is not yet visible to the writer).
#[tokio::test]
async fn group_commit_writes_queued_events_in_one_transaction() {
    for (batch_max, transactions) in [(512, 1), (16, 4)] {
        let dir = TempDir::new().unwrap();
        let options = AuditOptions {
            batch_max,
            ..options()
        };
        let (audit, hooks) = open_hooked(dir.path(), options, Hooks::new(false));
        let n = 64;
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let audit = audit.clone();
                tokio::spawn(async move { audit.append(event(i)).await })
            })
            .collect();
        // The writer is held: wait until every task has queued its event.
        while audit.queued() < Some(n as usize) {
            tokio::task::yield_now().await;
        }
        hooks.resume();
        let mut seqs = Vec::new();
        for handle in handles {
            seqs.push(handle.await.unwrap().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        assert_eq!(hooks.transactions(), transactions, "batch_max {batch_max}");
        assert!(hooks.transactions() < n);
        audit.shutdown().await;
        verify(dir.path()).unwrap();
    }
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(dir.path(), options());
    let first = append_n(&audit, 0, 5).await;
    audit.shutdown().await;
    assert!(matches!(
        audit.append(event(99)).await,
        Err(AuditError::Closed)
    ));

    let (audit, _) = open(dir.path(), options());
    let second = append_n(&audit, 5, 5).await;
    assert_eq!(second[0].seq, 6);
    assert_eq!(second[4].seq, 10);
    // verify reads a snapshot while the writer is still open.
    let path = dir.path().to_owned();
    let live = tokio::task::spawn_blocking(move || verify(&path))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.last_seq, 10);
    audit.shutdown().await;

    let conn = db(dir.path());
    let prev: String = conn
        .query_row("SELECT prev_hash FROM events WHERE seq = 6", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(prev, first[4].hash);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.last_seq, 10);
    assert_eq!(report.last_hash, second[4].hash);
    assert_eq!(report.checkpoints, 2, "one at each shutdown");
}

#[tokio::test]
async fn the_recorded_hash_is_the_chain_hash_of_the_canonical_body() {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(dir.path(), options());
    let e1 = event(1);
    let e2 = event(2);
    let r1 = audit.append(e1.clone()).await.unwrap();
    let r2 = audit.append(e2.clone()).await.unwrap();
    audit.shutdown().await;
    let h1 = link_hash(1, &GENESIS, event_body(&e1).unwrap().as_bytes());
    let h2 = link_hash(2, &h1, event_body(&e2).unwrap().as_bytes());
    assert_eq!(
        r1,
        Recorded {
            chain_id: r1.chain_id.clone(),
            seq: 1,
            hash: hex::encode(h1)
        }
    );
    assert_eq!(
        r2,
        Recorded {
            chain_id: r1.chain_id.clone(),
            seq: 2,
            hash: hex::encode(h2)
        }
    );
    // Both receipts name the log's chain id, which its meta keeps.
    assert_eq!(r1.chain_id.len(), 32);
    let kept: String = db(dir.path())
        .query_row("SELECT value FROM meta WHERE key = 'chain_id'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(kept, r1.chain_id);
    let conn = db(dir.path());
    assert_eq!(body(&conn, 2), event_body(&e2).unwrap());
    let (user, status, pseudonym): (String, i64, String) = conn
        .query_row(
            "SELECT user, status, subject_pseudonym FROM events WHERE seq = 2",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(user, e2.caller.user);
    assert_eq!(status, 200);
    assert_eq!(Some(pseudonym), e2.subject_pseudonym);
}

#[tokio::test]
async fn a_duplicate_event_id_is_refused_alone() {
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open_hooked(dir.path(), options(), Hooks::new(false));
    let e = event(1);
    let (a, b, c) = (
        audit.append(e.clone()),
        audit.append(e.clone()),
        audit.append(event(2)),
    );
    let mut all = Box::pin(futures::future::join3(a, b, c));
    assert!((&mut all).now_or_never().is_none());
    hooks.resume();
    let (a, b, c) = all.await;
    assert_eq!(a.unwrap().seq, 1);
    assert!(matches!(b, Err(AuditError::DuplicateEvent)));
    assert_eq!(c.unwrap().seq, 2);
    assert_eq!(hooks.transactions(), 1);
    audit.shutdown().await;
    verify(dir.path()).unwrap();
}

// A form fill's lookups cost one sync: its events are one unit, in one transaction,
// in their order, even when the unit is larger than a batch; a duplicate among them
// fails alone.
#[tokio::test]
async fn append_all_commits_the_events_together_in_their_order() {
    let dir = TempDir::new().unwrap();
    let options = AuditOptions {
        batch_max: 2,
        ..options()
    };
    let (audit, hooks) = open(dir.path(), options);
    let recorded_already = event(1);
    let first = audit.append(recorded_already.clone()).await.unwrap();
    let before = hooks.transactions();
    let unit: Vec<AuditEvent> = (2..=6).map(event).chain([recorded_already]).collect();
    let ids: Vec<String> = unit.iter().map(|e| e.event_id.clone()).collect();
    let outcomes = audit.append_all(unit).await;
    assert_eq!(
        hooks.transactions() - before,
        1,
        "one transaction for the unit"
    );
    assert_eq!(outcomes.len(), 6);
    let seqs: Vec<u64> = outcomes[..5]
        .iter()
        .map(|o| o.as_ref().unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
    assert!(matches!(outcomes[5], Err(AuditError::DuplicateEvent)));
    let conn = db(dir.path());
    for (seq, id) in (2..=6).zip(&ids) {
        let stored: String = conn
            .query_row("SELECT event_id FROM events WHERE seq = ?1", [seq], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(&stored, id, "seq {seq}");
    }
    assert_eq!(first.seq, 1);
    audit.shutdown().await;
    assert!(audit.append_all(vec![event(7)]).await[0].is_err());
    verify(dir.path()).unwrap();
}

// The tamper suite: a log of 20 events with checkpoints at 10 and 20.

async fn tamper_fixture() -> TempDir {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(
        dir.path(),
        AuditOptions {
            checkpoint_every_events: 10,
            ..options()
        },
    );
    append_n(&audit, 0, 20).await;
    audit.shutdown().await;
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.events, 20);
    assert_eq!(report.checkpoints, 2);
    dir
}

#[tokio::test]
async fn tamper_untouched_log_verifies() {
    let dir = tamper_fixture().await;
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.last_seq, 20);
    assert_eq!(report.last_hash.len(), 64);
    let seqs: Vec<i64> = db(dir.path())
        .prepare("SELECT seq FROM checkpoints ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs, [10, 20]);
}

#[tokio::test]
async fn tamper_edited_body_is_named() {
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    let mut edited: Value = serde_json::from_str(&body(&conn, 7)).unwrap();
    edited["outcome"]["status"] = json!(403);
    conn.execute(
        "UPDATE events SET body = ?1 WHERE seq = 7",
        [to_canonical(&edited)],
    )
    .unwrap();
    let failure = assert_broken_at(dir.path(), 7);
    assert!(!failure.problem.contains("403"));
}

/// The last record's body cut at every byte offset in turn: every cut is named, and
/// the restored record verifies again.
#[tokio::test]
async fn tamper_truncated_last_record_is_named_at_every_offset() {
    let dir = tamper_fixture().await;
    let original = body(&db(dir.path()), 20);
    let mut cuts = 0;
    for cut in (0..original.len()).filter(|c| original.is_char_boundary(*c)) {
        db(dir.path())
            .execute(
                "UPDATE events SET body = ?1 WHERE seq = 20",
                [&original[..cut]],
            )
            .unwrap();
        assert_broken_at(dir.path(), 20);
        cuts += 1;
    }
    assert!(cuts > 100, "a realistic record is long: {cuts} cuts");
    db(dir.path())
        .execute("UPDATE events SET body = ?1 WHERE seq = 20", [&original])
        .unwrap();
    assert_eq!(verify(dir.path()).unwrap().events, 20);
}

#[tokio::test]
async fn tamper_deleted_row_names_the_missing_seq() {
    let dir = tamper_fixture().await;
    db(dir.path())
        .execute("DELETE FROM events WHERE seq = 6", [])
        .unwrap();
    let failure = assert_broken_at(dir.path(), 6);
    assert!(failure.problem.contains("missing"), "{failure}");
}

#[tokio::test]
async fn tamper_deleted_first_and_last_rows_are_named() {
    let dir = tamper_fixture().await;
    db(dir.path())
        .execute("DELETE FROM events WHERE seq = 1", [])
        .unwrap();
    assert_broken_at(dir.path(), 1);

    let dir = tamper_fixture().await;
    db(dir.path())
        .execute("DELETE FROM events WHERE seq = 20", [])
        .unwrap();
    // The checkpoint at 20 signs an event that is gone.
    assert_broken_at(dir.path(), 20);
}

#[tokio::test]
async fn tamper_swapped_bodies_name_the_first() {
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    let (b5, b12) = (body(&conn, 5), body(&conn, 12));
    conn.execute("UPDATE events SET body = ?1 WHERE seq = 5", [&b12])
        .unwrap();
    conn.execute("UPDATE events SET body = ?1 WHERE seq = 12", [&b5])
        .unwrap();
    assert_broken_at(dir.path(), 5);
}

#[tokio::test]
async fn tamper_swapped_rows_name_the_first() {
    // Swap whole rows (body and hashes): the chain links no longer match.
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    conn.execute_batch(
        "UPDATE events SET seq = -1 WHERE seq = 3;
         UPDATE events SET seq = 3 WHERE seq = 4;
         UPDATE events SET seq = 4 WHERE seq = -1;",
    )
    .unwrap();
    assert_broken_at(dir.path(), 3);
}

#[tokio::test]
async fn tamper_changed_hash_is_named() {
    let dir = tamper_fixture().await;
    db(dir.path())
        .execute(
            "UPDATE events SET hash = ?1 WHERE seq = 13",
            [hex::encode([7u8; 32])],
        )
        .unwrap();
    assert_broken_at(dir.path(), 13);
}

#[tokio::test]
async fn tamper_changed_search_column_is_named() {
    let dir = tamper_fixture().await;
    db(dir.path())
        .execute("UPDATE events SET user = 'someone_else' WHERE seq = 15", [])
        .unwrap();
    assert_broken_at(dir.path(), 15);
}

#[tokio::test]
async fn tamper_rewritten_tail_is_caught_by_the_checkpoint() {
    // Edit event 18 and recompute every hash after it: the chain is consistent again,
    // but the checkpoint at 20 still signs the old head.
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    let mut edited: Value = serde_json::from_str(&body(&conn, 18)).unwrap();
    edited["caller"]["user"] = json!("nobody");
    conn.execute(
        "UPDATE events SET body = ?1, user = 'nobody' WHERE seq = 18",
        [to_canonical(&edited)],
    )
    .unwrap();
    let mut prev: [u8; 32] = hex::decode(
        conn.query_row("SELECT hash FROM events WHERE seq = 17", [], |row| {
            row.get::<_, String>(0)
        })
        .unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    for seq in 18..=20i64 {
        let hash = link_hash(seq as u64, &prev, body(&conn, seq).as_bytes());
        conn.execute(
            "UPDATE events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            params![hex::encode(prev), hex::encode(hash), seq],
        )
        .unwrap();
        prev = hash;
    }
    let failure = assert_broken_at(dir.path(), 20);
    assert!(failure.problem.contains("checkpoint"), "{failure}");
}

#[tokio::test]
async fn tamper_checkpoint_signature_is_named() {
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    let text: String = conn
        .query_row("SELECT text FROM checkpoints WHERE seq = 10", [], |row| {
            row.get(0)
        })
        .unwrap();
    let signature_at = text.find("signature: ").unwrap();
    let forged = format!(
        "{}signature: {}\n",
        &text[..signature_at],
        BASE64.encode([1u8; 64])
    );
    conn.execute("UPDATE checkpoints SET text = ?1 WHERE seq = 10", [forged])
        .unwrap();
    let failure = assert_broken_at(dir.path(), 10);
    assert!(failure.problem.contains("signature"), "{failure}");
}

#[tokio::test]
async fn tamper_checkpoint_text_is_named() {
    let dir = tamper_fixture().await;
    let conn = db(dir.path());
    let text: String = conn
        .query_row("SELECT text FROM checkpoints WHERE seq = 10", [], |row| {
            row.get(0)
        })
        .unwrap();
    let time_line = text.lines().find(|l| l.starts_with("time: ")).unwrap();
    let altered = text.replace(time_line, "time: 2001-01-01T00:00:00.000Z");
    conn.execute("UPDATE checkpoints SET text = ?1 WHERE seq = 10", [altered])
        .unwrap();
    assert_broken_at(dir.path(), 10);
}

#[tokio::test]
async fn tamper_checkpoint_signed_by_another_key_is_named() {
    let dir = tamper_fixture().await;
    let other = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let conn = db(dir.path());
    let hash: String = conn
        .query_row("SELECT hash FROM events WHERE seq = 10", [], |row| {
            row.get(0)
        })
        .unwrap();
    let original: String = conn
        .query_row("SELECT text FROM checkpoints WHERE seq = 10", [], |row| {
            row.get(0)
        })
        .unwrap();
    let original = Checkpoint::parse(&original).unwrap();
    let forged = super::checkpoint::Signer::new(other).checkpoint(
        10,
        &hash,
        "2025-01-01T00:00:00.000Z",
        &original.prev.unwrap(),
        &original.cadence.unwrap(),
    );
    conn.execute("UPDATE checkpoints SET text = ?1 WHERE seq = 10", [forged])
        .unwrap();
    assert_broken_at(dir.path(), 10);
}

/// Closes every handle and returns the database file's bytes (the WAL has been folded
/// back into it when the writer closed the last connection).
fn db_file(dir: &Path) -> Vec<u8> {
    assert!(
        !dir.join(format!("{AUDIT_FILE}-wal")).exists()
            || std::fs::metadata(dir.join(format!("{AUDIT_FILE}-wal")))
                .unwrap()
                .len()
                == 0
    );
    std::fs::read(dir.join(AUDIT_FILE)).unwrap()
}

#[tokio::test]
async fn corrupted_file_fails_verification() {
    // A byte of an event body flipped on disk.
    let dir = tamper_fixture().await;
    let mut bytes = db_file(dir.path());
    let marker = b"\"request_id\":\"req-19\"";
    let at = bytes
        .windows(marker.len())
        .rposition(|w| w == marker)
        .unwrap();
    bytes[at + marker.len() - 3] ^= 0x01;
    std::fs::write(dir.path().join(AUDIT_FILE), &bytes).unwrap();
    let failure = verify(dir.path()).unwrap_err();
    assert_eq!(failure.seq, Some(20), "{failure}");

    // The last page overwritten with garbage.
    for garbage in [0x00u8, 0xff, 0x5a] {
        let dir = tamper_fixture().await;
        let mut bytes = db_file(dir.path());
        let page = 4096;
        let last = bytes.len() - page;
        for (i, b) in bytes[last..].iter_mut().enumerate() {
            *b = garbage ^ (i as u8);
        }
        std::fs::write(dir.path().join(AUDIT_FILE), &bytes).unwrap();
        let failure = verify(dir.path()).unwrap_err();
        assert!(failure.to_string().starts_with("audit log broken"));
    }

    // Truncated in the middle.
    let dir = tamper_fixture().await;
    let bytes = db_file(dir.path());
    std::fs::write(dir.path().join(AUDIT_FILE), &bytes[..bytes.len() / 2]).unwrap();
    verify(dir.path()).unwrap_err();

    // No database at all.
    let empty = TempDir::new().unwrap();
    assert_eq!(verify(empty.path()).unwrap_err().seq, None);
}

#[tokio::test]
async fn a_failed_commit_fails_the_whole_batch_and_does_not_advance_the_chain() {
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open(dir.path(), options());
    let before = append_n(&audit, 0, 3).await;

    // A batch of four whose commit fails after its inserts ran.
    hooks.hold();
    hooks.fail_next_commit();
    let mut batch = Box::pin(futures::future::join_all(
        (10..14).map(|i| audit.append(event(i))),
    ));
    assert!((&mut batch).now_or_never().is_none(), "all four are queued");
    hooks.resume();
    let results = batch.await;
    assert_eq!(hooks.transactions(), 3, "the failed batch did not commit");
    for result in &results {
        assert!(
            matches!(result, Err(AuditError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert_eq!(count(dir.path(), "events"), 3);

    // The fault is gone: the chain continues from event 3.
    let after = append_n(&audit, 20, 2).await;
    assert_eq!(after[0].seq, 4);
    audit.shutdown().await;
    let conn = db(dir.path());
    let prev: String = conn
        .query_row("SELECT prev_hash FROM events WHERE seq = 4", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(prev, before[2].hash);
    assert_eq!(verify(dir.path()).unwrap().events, 5);
}

#[tokio::test]
async fn a_store_that_cannot_write_makes_append_unavailable() {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(dir.path(), options());
    let before = append_n(&audit, 0, 3).await;

    // Another connection takes the table away: inserts fail for real.
    let conn = db(dir.path());
    conn.execute_batch("ALTER TABLE events RENAME TO events_away")
        .unwrap();
    let error = audit.append(event(3)).await.unwrap_err();
    assert!(matches!(error, AuditError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains("req-3"));

    conn.execute_batch("ALTER TABLE events_away RENAME TO events")
        .unwrap();
    let after = audit.append(event(4)).await.unwrap();
    assert_eq!(after.seq, 4);
    audit.shutdown().await;
    let prev: String = conn
        .query_row("SELECT prev_hash FROM events WHERE seq = 4", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(prev, before[2].hash);
    assert_eq!(verify(dir.path()).unwrap().last_seq, 4);
}

#[tokio::test]
async fn a_full_queue_makes_callers_wait_without_dropping() {
    let dir = TempDir::new().unwrap();
    let options = AuditOptions {
        queue: 1,
        ..options()
    };
    let (audit, hooks) = open_hooked(dir.path(), options, Hooks::new(false));
    let mut first = audit.append(event(1));
    let mut second = audit.append(event(2));
    // The first takes the only place in the queue and waits for its answer.
    assert!((&mut first).now_or_never().is_none());
    assert_eq!(audit.queued(), Some(1));
    // The second waits for a place: it neither fails nor gets in.
    assert!((&mut second).now_or_never().is_none());
    assert!((&mut second).now_or_never().is_none());
    assert_eq!(audit.queued(), Some(1));
    hooks.resume();
    let (first, second) = futures::future::join(first, second).await;
    assert_eq!(first.unwrap().seq, 1);
    assert_eq!(second.unwrap().seq, 2);
    audit.shutdown().await;
    assert_eq!(count(dir.path(), "events"), 2);
    verify(dir.path()).unwrap();
}

#[tokio::test]
async fn checkpoints_every_n_events_in_the_documented_format() {
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open(
        dir.path(),
        AuditOptions {
            checkpoint_every_events: 5,
            ..options()
        },
    );
    let recorded = append_n(&audit, 0, 12).await;
    hooks.checkpoints_committed(2).await;
    let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert!(
        latest.starts_with(&format!("{HEADER}\nseq: 10\n")),
        "{latest}"
    );
    audit.shutdown().await;

    let key = public_key(&dir.path().join(KEY_FILE)).unwrap();
    let mode = std::fs::metadata(dir.path().join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let conn = db(dir.path());
    let texts: Vec<(i64, String)> = conn
        .prepare("SELECT seq, text FROM checkpoints ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let seqs: Vec<i64> = texts.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [5, 10, 12], "every 5 events, and at shutdown");
    assert_eq!(
        latest_checkpoint(dir.path()).unwrap().as_ref(),
        Some(&texts[2].1)
    );

    let mut previous = (0i64, "0".repeat(64));
    for (seq, text) in &texts {
        // The exact layout, checked independently of the parser.
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert!(lines.iter().all(|l| l.ends_with('\n')));
        assert_eq!(lines[0], "county-gateway audit checkpoint v2\n");
        assert_eq!(lines[1], format!("seq: {seq}\n"));
        assert_eq!(
            lines[2],
            format!("hash: {}\n", recorded[*seq as usize - 1].hash)
        );
        let time = lines[3].strip_prefix("time: ").unwrap().trim_end();
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
        // The previous checkpoint: its seq and the SHA-256 of its whole text.
        assert_eq!(
            lines[4],
            format!("prev: {} {}\n", previous.0, previous.1),
            "{text}"
        );
        assert_eq!(lines[5], "cadence: 5 events, 3600000 ms\n");
        assert_eq!(lines[6], format!("key: {}\n", BASE64.encode(&key)));
        let signature = lines[7]
            .strip_prefix("signature: ")
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        let signed: String = lines[..7].concat();
        previous = (*seq, hex::encode(sha2::Sha256::digest(text.as_bytes())));
        UnparsedPublicKey::new(&ED25519, &key)
            .verify(signed.as_bytes(), &BASE64.decode(signature).unwrap())
            .unwrap();
        let parsed = Checkpoint::parse(text).unwrap();
        assert_eq!(parsed.seq, *seq as u64);
        parsed.check_signature(text, &key).unwrap();
    }
    assert_eq!(verify(dir.path()).unwrap().checkpoints, 3);
}

#[tokio::test]
async fn checkpoints_on_time() {
    // Every batch is due at once: each commit carries a checkpoint of its head.
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open(
        dir.path(),
        AuditOptions {
            checkpoint_every: Duration::ZERO,
            checkpoint_every_events: 0,
            ..options()
        },
    );
    append_n(&audit, 0, 3).await;
    hooks.checkpoints_committed(3).await;
    assert_eq!(count(dir.path(), "checkpoints"), 3);

    // A short interval: the writer signs the head on its own, without more events
    // and before shutdown (by a batch or by its timer, whichever first).
    let dir = TempDir::new().unwrap();
    let (audit2, hooks) = open(
        dir.path(),
        AuditOptions {
            checkpoint_every: Duration::from_millis(20),
            checkpoint_every_events: 0,
            ..options()
        },
    );
    let recorded = audit2.append(event(1)).await.unwrap();
    hooks.checkpoints_committed(1).await;
    let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(Checkpoint::parse(&latest).unwrap().hash, recorded.hash);
    audit2.shutdown().await;
    audit.shutdown().await;
    assert_eq!(verify(dir.path()).unwrap().checkpoints, 1);
}

#[tokio::test]
async fn a_lost_key_is_not_silently_replaced() {
    let dir = tamper_fixture().await;
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let error = SqliteAudit::open(dir.path(), options()).unwrap_err();
    assert!(matches!(error, AuditError::Key(_)), "{error}");
    let failure = verify(dir.path()).unwrap_err();
    assert_eq!(failure.seq, Some(10));
}

#[tokio::test]
async fn an_empty_log_verifies() {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(dir.path(), options());
    audit.shutdown().await;
    let report = verify(dir.path()).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            events: 0,
            checkpoints: 0,
            last_seq: 0,
            last_hash: hex::encode(GENESIS),
            key: None,
            key_pinned: false,
            unsigned_tail: 0,
            witnessed: 0,
            chains: Vec::new(),
            county_checkpoints: 0,
            unacknowledged_bytes: 0,
        }
    );
    assert_eq!(latest_checkpoint(dir.path()).unwrap(), None);
}

#[tokio::test]
async fn an_append_dropped_after_queueing_is_still_recorded() {
    let dir = TempDir::new().unwrap();
    let (audit, hooks) = open_hooked(dir.path(), options(), Hooks::new(false));
    let mut append = audit.append(event(1));
    assert!((&mut append).now_or_never().is_none());
    drop(append);
    hooks.resume();
    audit.shutdown().await;
    assert_eq!(count(dir.path(), "events"), 1);
    verify(dir.path()).unwrap();
}

#[tokio::test]
async fn the_schema_is_versioned() {
    let dir = TempDir::new().unwrap();
    let (audit, _) = open(dir.path(), options());
    audit.shutdown().await;
    let conn = db(dir.path());
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, super::sqlite::SCHEMA_VERSION.to_string());
    // Opening again does not migrate twice.
    let (audit, _) = open(dir.path(), options());
    audit.shutdown().await;

    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    let error = SqliteAudit::open(dir.path(), options()).unwrap_err();
    assert!(matches!(error, AuditError::Schema(_)), "{error}");
}
