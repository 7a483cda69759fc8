//! The segment store on real files in temporary directories: appends and their
//! receipts, a torn last write at every byte offset, damage that is not a torn
//! write, the tamper suite on the format, rolling over to new segments, the index
//! (visible at once to a search, checked, rebuilt) and a failed write.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tempfile::TempDir;

use super::super::canonical::event_body;
use super::super::checkpoint::Prev;
use super::super::hooks::Hooks;
use super::super::tests::event;
use super::super::{
    AuditBackend, AuditError, AuditLog as _, AuditOptions, Expectations, Filter, VerifyFailure,
    VerifyReport, Witnessed,
};
use super::format::{self, Frames, HEADER_LEN, Record};
use super::*;

fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every: Duration::from_secs(3600),
        checkpoint_every_events: 10,
        ..AuditOptions::default()
    }
}

fn open(dir: &Path) -> SegmentAudit {
    SegmentAudit::open(dir, options()).unwrap()
}

fn open_small(dir: &Path, segment_bytes: u64) -> (SegmentAudit, Arc<Hooks>) {
    let hooks = Arc::new(Hooks::new(true));
    let log = SegmentAudit::open_with(dir, options(), hooks.clone(), segment_bytes).unwrap();
    (log, hooks)
}

async fn append(log: &SegmentAudit, from: u64, to: u64) {
    for i in from..=to {
        assert_eq!(log.append(event(i)).await.unwrap().seq, i);
    }
}

async fn verify(dir: &Path) -> Result<VerifyReport, VerifyFailure> {
    SegmentAuditBackend::new(dir)
        .verify(Expectations {
            cadence: options().cadence(),
            ..Expectations::default()
        })
        .await
}

fn chain(dir: &Path) -> PathBuf {
    dir.join(format::DIR)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    format::list(&chain(dir))
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// Each record of a file: (offset, end, seq, is an event).
fn records(path: &Path) -> Vec<(usize, usize, u64, bool)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let (record, end) = format::read_frame(&bytes, pos).unwrap();
        out.push((
            pos,
            end,
            record.seq(),
            matches!(record, Record::Event { .. }),
        ));
        pos = end;
    }
    out
}

/// Copies a data directory (a state to start from again).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn appends_are_chained_signed_indexed_and_verified() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    let first = log.append(event(1)).await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.chain_id.len(), 32);
    let unit = log.append_all((2..=25).map(event).collect()).await;
    let seqs: Vec<u64> = unit.iter().map(|r| r.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, (2..=25).collect::<Vec<_>>());
    // Visible to a search at once: the reader waits for the index.
    let page = log
        .reader()
        .search(Filter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 25);
    assert_eq!(page.chain_id, first.chain_id);
    log.shutdown().await;
    let report = verify(dir.path()).await.unwrap();
    assert_eq!(report.events, 25);
    // Every 10 events, and the head at shutdown.
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.unsigned_tail, 0);
    assert_eq!(report.unacknowledged_bytes, 0);
    assert_eq!(report.last_hash, unit[23].as_ref().unwrap().hash);
    assert_eq!(index::check(dir.path()).unwrap(), 25);
    // The SQLite log's own check reads the index as a log, and it is one.
    super::super::verify(dir.path()).unwrap();
    // Durable: a new writer continues the chain.
    let log = open(dir.path());
    assert_eq!(log.append(event(26)).await.unwrap().seq, 26);
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 26);
}

#[tokio::test]
async fn a_duplicate_event_id_is_refused_alone() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    let e = event(1);
    assert_eq!(log.append(e.clone()).await.unwrap().seq, 1);
    let outcomes = log.append_all(vec![event(2), e, event(3)]).await;
    assert!(matches!(outcomes[1], Err(AuditError::DuplicateEvent)));
    assert_eq!(outcomes[2].as_ref().unwrap().seq, 3);
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 3);
    assert_eq!(index::check(dir.path()).unwrap(), 3);
}

/// The bytes of event `seq`'s frame, following `prev`, as the writer would write it.
fn frame_of(seq: u64, prev: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_event(
        &mut out,
        seq,
        prev,
        event_body(&event(seq)).unwrap().as_bytes(),
    );
    out
}

// A crash in the middle of a write leaves any prefix of it: at every byte offset of
// a last record that was never acknowledged, the next start cuts it off, every
// acknowledged event is there, and the chain verifies and goes on.
#[tokio::test]
async fn a_torn_last_record_at_every_byte_offset_is_cut_off_and_the_chain_goes_on() {
    let base = TempDir::new().unwrap();
    let log = open(base.path());
    append(&log, 1, 3).await;
    log.shutdown().await;
    let head = verify(base.path()).await.unwrap();
    let prev = super::super::chain::parse_hash(&head.last_hash).unwrap();
    let torn = frame_of(4, &prev);
    let newest = segments(base.path()).pop().unwrap();
    let acknowledged = std::fs::metadata(&newest).unwrap().len();
    for cut in 1..torn.len() {
        let dir = TempDir::new().unwrap();
        copy_dir(base.path(), dir.path());
        let segment = chain(dir.path()).join(newest.file_name().unwrap());
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.extend_from_slice(&torn[..cut]);
        std::fs::write(&segment, &bytes).unwrap();
        let seen = verify(dir.path()).await.unwrap();
        assert_eq!((seen.events, seen.unacknowledged_bytes), (3, cut as u64));
        let log = open(dir.path());
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            acknowledged,
            "cut at {cut}"
        );
        assert_eq!(log.append(event(4)).await.unwrap().seq, 4, "cut at {cut}");
        log.shutdown().await;
        let report = verify(dir.path()).await.unwrap();
        assert_eq!((report.events, report.unacknowledged_bytes), (4, 0));
        assert_eq!(index::check(dir.path()).unwrap(), 4);
    }
}

#[tokio::test]
async fn damage_before_acknowledged_events_is_not_taken_for_a_torn_write() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 5).await;
    log.shutdown().await;
    let segment = segments(dir.path()).pop().unwrap();
    let (at, ..) = records(&segment)[2];
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[at + 20] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    // The index holds events after the damage: they were acknowledged.
    let refused = SegmentAudit::open(dir.path(), options()).unwrap_err();
    let AuditError::Broken(failure) = refused else {
        panic!("{refused}")
    };
    assert_eq!(failure.seq, Some(3), "{failure}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn segments_roll_over_each_ending_on_a_checkpoint_and_reindexing_gives_the_same_answers() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open_small(dir.path(), 4096);
    for i in 1..=40 {
        log.append(event(i)).await.unwrap();
    }
    let reader = log.reader();
    let before = reader.search(Filter::default(), None, 100).await.unwrap();
    log.shutdown().await;
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for file in &files[..files.len() - 1] {
        let (.., last_seq, is_event) = *records(file).last().unwrap();
        assert!(
            !is_event,
            "segment ending at {last_seq} ends on a checkpoint"
        );
    }
    assert_eq!(verify(dir.path()).await.unwrap().events, 40);
    std::fs::remove_file(dir.path().join(super::super::AUDIT_FILE)).unwrap();
    let _ = std::fs::remove_file(dir.path().join("audit.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("audit.db-shm"));
    assert_eq!(reindex(dir.path()).unwrap().events, 40);
    let rebuilt = super::super::SqliteAuditReader::new(dir.path())
        .search(Filter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(before, rebuilt);
    assert_eq!(index::check(dir.path()).unwrap(), 40);
}

#[tokio::test]
async fn an_index_that_says_otherwise_is_named_and_reindex_mends_it() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 4).await;
    log.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join(super::super::AUDIT_FILE)).unwrap();
    conn.execute("UPDATE events SET user = 'someone-else' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let failure = SegmentAuditBackend::new(dir.path())
        .check_index()
        .await
        .unwrap_err();
    assert_eq!(failure.seq, Some(2), "{failure:?}");
    // The chain itself is intact: the index is not the record.
    assert_eq!(verify(dir.path()).await.unwrap().events, 4);
    reindex(dir.path()).unwrap();
    assert_eq!(index::check(dir.path()).unwrap(), 4);
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_and_the_chain_goes_on() {
    let dir = TempDir::new().unwrap();
    let (log, hooks) = open_small(dir.path(), SEGMENT_BYTES);
    append(&log, 1, 2).await;
    let segment = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    hooks.fail_next_commit();
    let failed = log.append(event(3)).await;
    assert!(
        matches!(failed, Err(AuditError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len);
    assert_eq!(log.append(event(3)).await.unwrap().seq, 3);
    log.ready().await.unwrap();
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 3);
}

#[tokio::test]
async fn a_held_writer_takes_the_queue_as_one_write() {
    let dir = TempDir::new().unwrap();
    let hooks = Arc::new(Hooks::new(false));
    let log = SegmentAudit::open_with(dir.path(), options(), hooks.clone(), SEGMENT_BYTES).unwrap();
    let appends = futures::future::join_all((1..=8).map(|i| log.append(event(i))));
    let mut appends = Box::pin(appends);
    assert!((&mut appends).now_or_never().is_none());
    while log.queued() < Some(8) {
        tokio::task::yield_now().await;
    }
    hooks.resume();
    let done = appends.await;
    assert!(done.iter().all(Result::is_ok));
    assert_eq!(
        hooks.transactions(),
        1,
        "one write and one sync for eight events"
    );
    log.shutdown().await;
}

// --- the tamper suite on the format ----------------------------------------------

/// A data directory with 30 events in segments of about 4 KiB, stopped.
async fn tamper_base() -> TempDir {
    let dir = TempDir::new().unwrap();
    let (log, _) = open_small(dir.path(), 4096);
    append(&log, 1, 30).await;
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 30);
    dir
}

/// Rewrites the records of `path` through `edit` (on (seq, payload) pairs), framing
/// them anew: a forger who recomputes every checksum.
fn reframe(path: &Path, edit: impl FnOnce(&mut Vec<(u8, u64, Vec<u8>)>)) {
    let bytes = std::fs::read(path).unwrap();
    let mut items = Vec::new();
    for record in Frames::new(&bytes, HEADER_LEN) {
        match record.unwrap() {
            Record::Event {
                seq,
                prev_hash,
                body,
            } => {
                let mut payload = prev_hash.to_vec();
                payload.extend_from_slice(body);
                items.push((format::KIND_EVENT, seq, payload));
            }
            Record::Checkpoint { seq, text } => {
                items.push((format::KIND_CHECKPOINT, seq, text.as_bytes().to_vec()))
            }
        }
    }
    edit(&mut items);
    let mut out = bytes[..HEADER_LEN].to_vec();
    for (kind, seq, payload) in items {
        if kind == format::KIND_EVENT {
            let (prev, body) = payload.split_at(32);
            format::encode_event(&mut out, seq, prev.try_into().unwrap(), body);
        } else {
            format::encode_checkpoint(&mut out, seq, std::str::from_utf8(&payload).unwrap());
        }
    }
    std::fs::write(path, out).unwrap();
}

fn segment_with(dir: &Path, seq: u64) -> PathBuf {
    let listed = format::list(&chain(dir)).unwrap();
    listed
        .iter()
        .rev()
        .find(|s| s.first_seq <= seq)
        .unwrap()
        .path
        .clone()
}

async fn broken_at(dir: &Path) -> u64 {
    let failure = verify(dir).await.unwrap_err();
    failure.seq.unwrap_or_else(|| panic!("{failure}"))
}

#[tokio::test]
async fn an_edited_body_is_named_even_with_its_checksum_recomputed() {
    let dir = tamper_base().await;
    reframe(&segment_with(dir.path(), 5), |items| {
        let (_, _, payload) = items
            .iter_mut()
            .find(|(k, s, _)| *k == 1 && *s == 5)
            .unwrap();
        let body = String::from_utf8(payload[32..].to_vec()).unwrap();
        let edited = body.replace("clerk5", "clerk6");
        payload.truncate(32);
        payload.extend_from_slice(edited.as_bytes());
    });
    assert_eq!(broken_at(dir.path()).await, 5);
}

#[tokio::test]
async fn a_flipped_byte_in_a_closed_segment_is_named() {
    let dir = tamper_base().await;
    let path = segment_with(dir.path(), 1);
    let (at, ..) = records(&path)[1];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at + 30] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let failure = verify(dir.path()).await.unwrap_err();
    assert!(failure.problem.contains("damaged"), "{failure}");
}

#[tokio::test]
async fn a_deleted_event_is_named() {
    let dir = tamper_base().await;
    reframe(&segment_with(dir.path(), 5), |items| {
        items.retain(|(k, s, _)| !(*k == 1 && *s == 5));
    });
    assert_eq!(broken_at(dir.path()).await, 5);
}

#[tokio::test]
async fn reordered_events_are_named() {
    let dir = tamper_base().await;
    reframe(&segment_with(dir.path(), 5), |items| {
        let a = items
            .iter()
            .position(|(k, s, _)| *k == 1 && *s == 5)
            .unwrap();
        let b = items
            .iter()
            .position(|(k, s, _)| *k == 1 && *s == 6)
            .unwrap();
        items.swap(a, b);
    });
    assert_eq!(broken_at(dir.path()).await, 5);
}

#[tokio::test]
async fn a_missing_segment_is_named_and_swapped_ones_too() {
    let dir = tamper_base().await;
    let listed = format::list(&chain(dir.path())).unwrap();
    assert!(listed.len() >= 3);
    let gone = listed[1].clone();
    std::fs::remove_file(&gone.path).unwrap();
    assert_eq!(broken_at(dir.path()).await, gone.first_seq);

    let dir = tamper_base().await;
    let listed = format::list(&chain(dir.path())).unwrap();
    let (a, b) = (&listed[0], &listed[1]);
    let parked = a.path.with_extension("tmp");
    std::fs::rename(&a.path, &parked).unwrap();
    std::fs::rename(&b.path, &a.path).unwrap();
    std::fs::rename(&parked, &b.path).unwrap();
    let failure = verify(dir.path()).await.unwrap_err();
    assert!(failure.problem.contains("header says"), "{failure}");
}

#[tokio::test]
async fn a_cut_tail_is_caught_by_a_witness_and_by_the_index_check() {
    let dir = tamper_base().await;
    let newest = SegmentAuditBackend::new(dir.path())
        .latest_checkpoint()
        .await
        .unwrap()
        .unwrap();
    // Cut the newest segment back to its first records: the chain still verifies on
    // its own (nobody signed beyond what is left)...
    let path = segments(dir.path()).pop().unwrap();
    let (_, end, ..) = records(&path)[0];
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(end as u64).unwrap();
    drop(file);
    verify(dir.path()).await.unwrap();
    // ...but a witness holds the newest checkpoint, and the index the events.
    let failure = SegmentAuditBackend::new(dir.path())
        .verify(Expectations {
            cadence: options().cadence(),
            witnessed: vec![Witnessed {
                witness: "witness-a".into(),
                text: newest,
            }],
            ..Expectations::default()
        })
        .await
        .unwrap_err();
    assert!(failure.problem.contains("cut off"), "{failure}");
    assert!(index::check(dir.path()).is_err());
    // And the writer refuses to start on it: the cut removed acknowledged events.
    assert!(SegmentAudit::open(dir.path(), options()).is_err());
}

#[tokio::test]
async fn a_forged_checkpoint_is_named() {
    let dir = tamper_base().await;
    let forger = super::super::checkpoint::Signer::new(
        aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap(),
    );
    reframe(&segment_with(dir.path(), 10), |items| {
        let (_, seq, payload) = items.iter_mut().find(|(k, _, _)| *k == 2).unwrap();
        let text = String::from_utf8(payload.clone()).unwrap();
        let hash = text
            .lines()
            .find_map(|l| l.strip_prefix("hash: "))
            .unwrap()
            .to_owned();
        let forged = forger.checkpoint(
            *seq,
            &hash,
            "2026-01-01T00:00:00.000Z",
            &Prev::NONE,
            &options().cadence(),
        );
        *payload = forged.into_bytes();
    });
    let failure = verify(dir.path()).await.unwrap_err();
    assert!(failure.problem.contains("checkpoint"), "{failure}");
}

#[tokio::test]
async fn a_data_directory_with_a_sqlite_log_is_not_given_a_second_chain() {
    let dir = TempDir::new().unwrap();
    let sqlite = super::super::SqliteAudit::open(dir.path(), options()).unwrap();
    sqlite.append(event(1)).await.unwrap();
    sqlite.shutdown().await;
    let refused = SegmentAudit::open(dir.path(), options()).unwrap_err();
    assert!(matches!(refused, AuditError::Schema(_)), "{refused}");
    assert!(!chain(dir.path()).exists());
}

#[tokio::test]
async fn old_segments_move_to_the_archive_and_the_history_still_verifies() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open_small(dir.path(), 4096);
    let long_ago = (chrono::Utc::now() - chrono::TimeDelta::days(2000))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for i in 1..=30 {
        let mut old = event(i);
        old.time = long_ago.clone();
        log.append(old).await.unwrap();
    }
    append(&log, 31, 40).await;
    let backend = SegmentAuditBackend::new(dir.path());
    // Refused below three years, as for the SQLite log.
    let short = super::super::Retention {
        keep_days: 30,
        allow_short: false,
    };
    assert!(backend.archive(short, chrono::Utc::now()).await.is_err());
    let archived = backend
        .archive(super::super::Retention::default(), chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let super::super::Archived::Files(moved) = &archived else {
        panic!("{archived:?}")
    };
    assert!(!moved.is_empty());
    assert_eq!(moved[0].first_seq, 1);
    let last = moved.last().unwrap().last_seq;
    assert!(last <= 30, "only old events: {last}");
    assert!(
        moved
            .iter()
            .all(|m| m.path.starts_with(dir.path().join(format::ARCHIVE_DIR)))
    );
    // The gateway goes on meanwhile, and the whole history verifies.
    assert_eq!(log.append(event(41)).await.unwrap().seq, 41);
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 41);
    assert_eq!(index::check(dir.path()).unwrap(), 41 - last);
    let page = super::super::SqliteAuditReader::new(dir.path())
        .search(Filter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.events.len() as u64, 41 - last);
    // Nothing more is old enough.
    assert!(
        backend
            .archive(super::super::Retention::default(), chrono::Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    let log = open(dir.path());
    assert_eq!(log.append(event(42)).await.unwrap().seq, 42);
    log.shutdown().await;
}

#[tokio::test]
async fn a_second_writer_on_the_same_segments_is_refused_while_the_first_runs() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 2).await;
    let second = SegmentAudit::open(dir.path(), options()).unwrap_err();
    assert!(second.to_string().contains("another process"), "{second}");
    log.ready().await.unwrap();
    log.shutdown().await;
    assert!(matches!(log.ready().await, Err(AuditError::Closed)));
    let log = open(dir.path());
    assert_eq!(log.append(event(3)).await.unwrap().seq, 3);
    log.shutdown().await;
}

#[tokio::test]
async fn a_reader_in_another_process_waits_for_the_index_by_polling_the_files() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 3).await;
    wait_indexed(dir.path(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(index::indexed_events(dir.path()).unwrap(), Some(3));
    log.shutdown().await;
}

#[tokio::test]
async fn another_process_records_through_the_inbox_of_the_running_writer() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 2).await;
    assert!(writer_running(dir.path()));
    // Not an event: moved aside, never recorded.
    let inbox_dir = chain(dir.path()).join(inbox::DIR);
    std::fs::create_dir_all(&inbox_dir).unwrap();
    std::fs::write(inbox_dir.join("0-garbage.json"), b"{\"not\": \"an event\"}").unwrap();
    let beside = InboxAudit::new(dir.path(), options());
    let recorded = beside.append(event(3)).await.unwrap();
    assert_eq!(recorded.seq, 3);
    assert_eq!(log.append(event(4)).await.unwrap().seq, 4);
    log.shutdown().await;
    assert!(!writer_running(dir.path()));
    assert!(inbox_dir.join("rejected/0-garbage.json").exists());
    let left: Vec<_> = std::fs::read_dir(&inbox_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(verify(dir.path()).await.unwrap().events, 4);
    // With no gateway running, the process records its event itself.
    let alone = InboxAudit::new(dir.path(), options());
    assert_eq!(alone.append(event(5)).await.unwrap().seq, 5);
    assert_eq!(verify(dir.path()).await.unwrap().events, 5);
    assert_eq!(index::check(dir.path()).unwrap(), 5);
}

#[tokio::test]
async fn a_sqlite_log_and_its_archive_move_to_segment_files_event_for_event() {
    let dir = TempDir::new().unwrap();
    let sqlite = super::super::SqliteAudit::open(dir.path(), options()).unwrap();
    let first = sqlite.append(event(1)).await.unwrap();
    for i in 2..=25 {
        sqlite.append(event(i)).await.unwrap();
    }
    sqlite.shutdown().await;
    let archived = super::super::archive_with(
        dir.path(),
        super::super::Retention {
            keep_days: 1,
            allow_short: true,
        },
        chrono::Utc::now() + chrono::TimeDelta::days(30),
    )
    .unwrap();
    assert!(archived.is_some(), "part of the history is archived");
    let before = super::super::verify(dir.path()).unwrap();
    let expect = Expectations {
        cadence: options().cadence(),
        ..Expectations::default()
    };
    let moved = migrate::to_segments(dir.path(), &expect).unwrap();
    assert_eq!(
        (moved.events, moved.last_hash.as_str()),
        (25, before.last_hash.as_str())
    );
    assert!(dir.path().join(migrate::MIGRATED_FILE).exists());
    assert_eq!(verify(dir.path()).await.unwrap().events, 25);
    assert_eq!(index::check(dir.path()).unwrap(), 25);
    // Once is enough.
    assert!(migrate::to_segments(dir.path(), &expect).is_err());
    // The chain goes on under its id.
    let log = open(dir.path());
    let next = log.append(event(26)).await.unwrap();
    assert_eq!((next.seq, next.chain_id), (26, first.chain_id));
    log.shutdown().await;
    assert_eq!(verify(dir.path()).await.unwrap().events, 26);
}

#[tokio::test]
async fn an_index_with_rows_missing_is_rebuilt_at_start() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 6).await;
    log.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join(super::super::AUDIT_FILE)).unwrap();
    conn.execute("DELETE FROM events WHERE seq = 3", [])
        .unwrap();
    drop(conn);
    assert!(index::check(dir.path()).is_err());
    let log = open(dir.path());
    assert!(log.until_indexed().await);
    log.shutdown().await;
    assert_eq!(index::check(dir.path()).unwrap(), 6);
}

#[tokio::test]
async fn an_inbox_event_dated_far_from_now_is_set_aside_not_recorded() {
    let dir = TempDir::new().unwrap();
    let log = open(dir.path());
    append(&log, 1, 1).await;
    let inbox_dir = chain(dir.path()).join(inbox::DIR);
    std::fs::create_dir_all(&inbox_dir).unwrap();
    let mut stale = event(2);
    stale.time = "2020-01-01T00:00:00.000Z".into();
    std::fs::write(
        inbox_dir.join("0-stale.json"),
        serde_json::to_vec(&stale).unwrap(),
    )
    .unwrap();
    // The next inbox event is recorded; the stale one never is.
    let beside = InboxAudit::new(dir.path(), options());
    assert_eq!(beside.append(event(3)).await.unwrap().seq, 2);
    log.shutdown().await;
    assert!(inbox_dir.join("rejected/0-stale.json").exists());
    assert_eq!(verify(dir.path()).await.unwrap().events, 2);
}

#[tokio::test]
async fn a_segment_file_left_empty_by_a_failed_roll_over_is_replaced() {
    let dir = TempDir::new().unwrap();
    let (log, _) = open_small(dir.path(), 4096);
    let first = segments(dir.path()).pop().unwrap();
    let mut seq = 0;
    // Fill the first segment to its limit: the next append rolls over.
    while std::fs::metadata(&first).unwrap().len() < 4096 {
        seq += 1;
        assert_eq!(log.append(event(seq)).await.unwrap().seq, seq);
    }
    assert_eq!(segments(dir.path()).len(), 1);
    // The file that roll-over makes, already there and empty (the disk was full
    // when an earlier attempt created it).
    let leftover = chain(dir.path()).join(format::file_name(seq + 1));
    std::fs::write(&leftover, b"").unwrap();
    assert_eq!(log.append(event(seq + 1)).await.unwrap().seq, seq + 1);
    log.shutdown().await;
    assert_eq!(segments(dir.path()), vec![first, leftover.clone()]);
    assert!(std::fs::metadata(&leftover).unwrap().len() > format::HEADER_LEN as u64);
    assert_eq!(verify(dir.path()).await.unwrap().events, seq + 1);
}
