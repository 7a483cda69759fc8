//! The privacy officer's index beside the segment files: `DATA_DIR/audit.db`, in the
//! schema of the SQLite log (events with their search columns, the linked persons,
//! the checkpoints, the chain id), so that search, export, the citizen's report,
//! anomalies and the witnesses' feed read it exactly as they read that log.
//!
//! It is derived, never the record: the indexer thread writes what the writer made
//! durable, after the writer has answered (off the request path), gathered for at
//! most [`GATHER`] into one transaction, without a sync of its own
//! (`synchronous=OFF`): what a power cut loses of it is found missing at the next
//! start and read again from the segments ([`catch_up`]). [`reindex`] drops it and
//! rebuilds it from the segments alone. Events an archive run took out
//! (`archived_through` in `meta`) are never put back.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::super::AuditError;
use super::super::chain::link_hash;
use super::super::event::{AuditEvent, Columns};
use super::super::sqlite::{AUDIT_FILE, INSERT_EVENT, INSERT_LINKED, SCHEMA, insert_event};
use super::super::verify::VerifyFailure;
use super::format::{self, Frames, HEADER_LEN, Record};

/// How long the indexer waits for a lock another process holds (an archive run).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The newest event an archive run took out of the index (see
/// [`super::archive`]), kept in `meta` as `archived_through`.
const ARCHIVED_THROUGH: &str =
    "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'archived_through'";

/// The indexer's page cache, in SQLite's notation (negative: KiB): 64 MiB.
const INDEX_CACHE_KIB: i64 = -65_536;

/// How many pages the index's WAL grows to before it is copied back (~40 MB).
const INDEX_CHECKPOINT_PAGES: i64 = 10_000;

/// One event as the indexer stores it.
pub(super) struct IndexedEvent {
    pub(super) seq: u64,
    pub(super) prev_hash: [u8; 32],
    pub(super) hash: [u8; 32],
    pub(super) columns: Columns,
    pub(super) body: String,
}

/// What the writer hands the indexer.
pub(super) enum ToIndex {
    /// What one durable write held, in chain order.
    Written {
        events: Vec<IndexedEvent>,
        checkpoints: Vec<(u64, String)>,
    },
    /// Index what came before, then stop.
    Stop(std::sync::mpsc::Sender<()>),
}

/// How far the index has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The newest event indexed (0: none).
    pub events: u64,
    /// The newest checkpoint indexed (0: none).
    pub checkpoint: u64,
}

/// Opens (creating and migrating) the index in `data_dir` for the chain `chain_id`.
pub(super) fn open(data_dir: &Path, chain_id: &str) -> Result<Connection, AuditError> {
    let opened = crate::sqlite::open(
        &data_dir.join(AUDIT_FILE),
        &SCHEMA,
        crate::sqlite::Journal::RequireWal,
        BUSY_TIMEOUT,
    )
    .map_err(|e| AuditError::Backend(format!("the audit index: {e}")))?;
    let conn = opened.conn;
    // Derived data, written without syncs: a sync here would wait on the same file
    // system journal as the writer's `fdatasync`, on the request path. A power cut
    // may lose or damage its newest writes; the next start checks it ([`sound`]) and
    // reads the rest again from the segments.
    conn.pragma_update(None, "synchronous", "OFF")?;
    // Every event adds a row on a random page of the subject and user indexes: with
    // SQLite's default 2 MB of cache those pages were read back from the file on most
    // inserts. And each copy of the WAL back into the file rewrites the pages changed
    // since the last: copied every 10,000 pages rather than 1,000, a page changed by
    // many transactions meanwhile is written back once.
    conn.pragma_update(None, "cache_size", INDEX_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", INDEX_CHECKPOINT_PAGES)?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('chain_id', ?1)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [chain_id],
    )?;
    Ok(conn)
}

/// How far the index in `conn` has got.
pub(super) fn progress(conn: &Connection) -> Result<Progress, AuditError> {
    let (events, checkpoint): (i64, i64) = conn.query_row(
        "SELECT (SELECT coalesce(max(seq), 0) FROM events),
                (SELECT coalesce(max(seq), 0) FROM checkpoints)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Progress {
        events: u64::try_from(events).unwrap_or(0),
        checkpoint: u64::try_from(checkpoint).unwrap_or(0),
    })
}

/// Stores one write's events and checkpoints in one transaction.
fn store(
    conn: &mut Connection,
    events: &[IndexedEvent],
    checkpoints: &[(u64, String)],
) -> Result<(), AuditError> {
    // Immediate: the write lock is taken before `archived_through` is read, so an
    // archive run cannot commit between that read and the inserts.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        // An archive run may have taken these events out of the index meanwhile
        // (their segments moved while the indexer gathered them): they stay out.
        let archived: i64 = tx
            .prepare_cached(ARCHIVED_THROUGH)?
            .query_row([], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        let mut linked = tx.prepare_cached(INSERT_LINKED)?;
        let mut checkpoint =
            tx.prepare_cached("INSERT OR IGNORE INTO checkpoints (seq, text) VALUES (?1, ?2)")?;
        for event in events {
            let seq = sql_seq(event.seq)?;
            if seq <= archived {
                continue;
            }
            insert_event(
                &mut insert,
                seq,
                &event.columns,
                &event.body,
                &hex::encode(event.prev_hash),
                &hex::encode(event.hash),
            )?;
            for pseudonym in &event.columns.linked {
                linked.execute(params![pseudonym, seq])?;
            }
        }
        for (seq, text) in checkpoints {
            checkpoint.execute(params![sql_seq(*seq)?, text])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn sql_seq(seq: u64) -> Result<i64, AuditError> {
    i64::try_from(seq).map_err(|_| AuditError::Unavailable("the sequence is exhausted".into()))
}

/// Whether the index in `conn` can be continued: one row per seq from the first live
/// one (`first_live`) on, without gaps, and (`deep`, after a run that did not stop
/// cleanly) SQLite's `quick_check` passes.
pub(super) fn sound(conn: &Connection, first_live: u64, deep: bool) -> Result<bool, AuditError> {
    if deep {
        let ok: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        if ok != "ok" {
            return Ok(false);
        }
    }
    let (count, min, max): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT count(*), min(seq), max(seq) FROM events",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    Ok(match (min, max) {
        (Some(min), Some(max)) => {
            u64::try_from(min).ok() == Some(first_live) && max - min + 1 == count
        }
        _ => true,
    })
}

/// Empties the index (its rows are read again from the segments).
pub(super) fn clear(conn: &Connection) -> Result<(), AuditError> {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DELETE FROM linked_subjects;
         DELETE FROM checkpoints;
         DELETE FROM events;
         COMMIT;",
    )?;
    Ok(())
}

/// Reads into the index what the segments of `data_dir` hold beyond it: the live
/// segments' events, and every checkpoint (archived ones included: the witnesses'
/// feed reads them). Blocking.
pub(super) fn catch_up(conn: &mut Connection, data_dir: &Path) -> Result<Progress, AuditError> {
    let from = progress(conn)?;
    let segments = format::history(data_dir).map_err(|source| AuditError::Io {
        what: "cannot list the audit segments",
        source,
    })?;
    let archive_dir = data_dir.join(format::ARCHIVE_DIR);
    let mut done = from;
    for (i, segment) in segments.iter().enumerate() {
        let next_first = segments.get(i + 1).map(|s| s.first_seq);
        if next_first.is_some_and(|next| next <= done.events + 1)
            && next_first.is_some_and(|next| next <= done.checkpoint + 1)
        {
            continue;
        }
        let bytes = std::fs::read(&segment.path).map_err(|source| AuditError::Io {
            what: "cannot read an audit segment",
            source,
        })?;
        let archived = segment.path.starts_with(&archive_dir);
        let (mut events, mut checkpoints) = (Vec::new(), Vec::new());
        for frame in Frames::new(&bytes, HEADER_LEN) {
            // The writer has checked the segments and cut a torn end already; the
            // index takes the valid records.
            let Ok(record) = frame else { break };
            match record {
                Record::Event {
                    seq,
                    prev_hash,
                    body,
                } if seq > done.events && !archived => {
                    let event: AuditEvent = serde_json::from_slice(body).map_err(|_| {
                        AuditError::Backend(format!(
                            "the audit index: event {seq} in the segments is not an audit event"
                        ))
                    })?;
                    events.push(IndexedEvent {
                        seq,
                        prev_hash: *prev_hash,
                        hash: link_hash(seq, prev_hash, body),
                        columns: Columns::of(&event),
                        body: String::from_utf8_lossy(body).into_owned(),
                    });
                }
                Record::Checkpoint { seq, text } if seq > done.checkpoint => {
                    checkpoints.push((seq, text.to_owned()));
                }
                _ => {}
            }
            if events.len() >= 4096 {
                store(conn, &events, &checkpoints)?;
                note(&mut done, &events, &checkpoints);
                events.clear();
                checkpoints.clear();
            }
        }
        store(conn, &events, &checkpoints)?;
        note(&mut done, &events, &checkpoints);
    }
    Ok(done)
}

fn note(done: &mut Progress, events: &[IndexedEvent], checkpoints: &[(u64, String)]) {
    if let Some(last) = events.last() {
        done.events = last.seq;
    }
    if let Some((seq, _)) = checkpoints.last() {
        done.checkpoint = *seq;
    }
}

/// Empties the index and reads it again from the segments. Blocking; the gateway
/// must not be running on this data directory.
pub fn reindex(data_dir: &Path) -> Result<Progress, AuditError> {
    let chain_dir = data_dir.join(format::DIR);
    let walked = super::chain_id_of(&chain_dir)?;
    let Some(chain_id) = walked else {
        return Err(AuditError::Backend(
            "the data directory holds no audit segments to index".into(),
        ));
    };
    // No gateway may start writing (and indexing) meanwhile.
    let _lock = super::writer::take_lock(&chain_dir)?;
    let mut conn = open(data_dir, &chain_id)?;
    clear(&conn)?;
    let done = catch_up(&mut conn, data_dir)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(done)
}

/// How long the indexer gathers writes into one transaction after the first arrives.
/// Each transaction rewrites the newest pages of the table and of every index (in
/// the WAL, and again when it is copied back): one per writer batch cost the
/// indexer most of a core at a few thousand lookups a second. Searches see an event
/// at most this much later (far inside [`super::MAX_LAG`]).
pub(super) const GATHER: Duration = Duration::from_millis(10);

/// The most events one index transaction takes.
const GATHER_MAX: usize = 8192;

/// How soon the indexer tries again to store a write it could not store.
const RETRY: Duration = Duration::from_secs(1);

/// The most events the indexer holds for another try. Past that it stops indexing
/// (without a gap: nothing after what it could not store is stored) and the next
/// start reads the rest from the segments ([`catch_up`]).
const HOLD_MAX: usize = 4 * GATHER_MAX;

/// The indexer thread: stores what the writer made durable, gathered for at most
/// [`GATHER`] into one transaction, and publishes how far it got. A write it cannot
/// store (a full disk) is kept and tried again, ahead of what came after: the index
/// never holds an event after one it lacks.
pub(super) fn run(
    mut conn: Connection,
    receiver: Receiver<ToIndex>,
    progress: watch::Sender<Progress>,
) {
    let mut stopping = Vec::new();
    // What is not stored yet, carried over when a store fails.
    let (mut events, mut checkpoints) = (Vec::new(), Vec::new());
    let mut failing = false;
    let mut stalled = false;
    while stopping.is_empty() {
        let first = if events.is_empty() && checkpoints.is_empty() {
            match receiver.recv() {
                Ok(first) => Some(first),
                Err(_) => break,
            }
        } else {
            match receiver.recv_timeout(RETRY) {
                Ok(first) => Some(first),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        // Whatever else the writer makes durable meanwhile is taken at the end of the
        // window, without waking for each write (parking may end early: a shorter
        // window).
        if first
            .as_ref()
            .is_some_and(|first| !matches!(first, ToIndex::Stop(_)))
        {
            std::thread::park_timeout(GATHER);
        }
        let mut next = first;
        while let Some(message) = next.take() {
            match message {
                ToIndex::Written {
                    events: more,
                    checkpoints: signed,
                } => {
                    if !stalled {
                        events.extend(more);
                        checkpoints.extend(signed);
                    }
                }
                ToIndex::Stop(done) => stopping.push(done),
            }
            if stopping.is_empty() && events.len() < GATHER_MAX {
                next = receiver.try_recv().ok();
            }
        }
        if events.is_empty() && checkpoints.is_empty() {
            continue;
        }
        match store(&mut conn, &events, &checkpoints) {
            Ok(()) => {
                let mut now = *progress.borrow();
                note(&mut now, &events, &checkpoints);
                progress.send_replace(now);
                events.clear();
                checkpoints.clear();
                if failing {
                    failing = false;
                    tracing::info!("the audit index stores writes again");
                }
            }
            Err(error) if events.len() > HOLD_MAX => {
                // The segments hold these events; the next start indexes them.
                tracing::error!(%error, events = events.len(), "the audit index could not store writes for too long; search lags until the gateway restarts");
                (events, checkpoints) = (Vec::new(), Vec::new());
                stalled = true;
            }
            Err(error) => {
                if !failing {
                    tracing::error!(%error, events = events.len(), "the audit index could not store a write; it tries again (search lags meanwhile)");
                }
                failing = true;
            }
        }
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "the audit index did not close cleanly");
    }
    for done in stopping {
        let _ = done.send(());
    }
}

/// The newest event the index holds, read from the file (another process's view).
pub(super) fn indexed_events(data_dir: &Path) -> Result<Option<u64>, AuditError> {
    let path = data_dir.join(AUDIT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let conn = super::super::sqlite::open_read_only(&path)?;
    let max: Option<i64> = conn
        .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(max.and_then(|seq| u64::try_from(seq).ok()))
}

/// Checks that the index in `data_dir` says what the segments say: every event's
/// row (seq, body, hashes, search columns, linked persons) and every checkpoint, no
/// more and no fewer. Returns the events compared. Blocking.
pub fn check(data_dir: &Path) -> Result<u64, VerifyFailure> {
    let failed = |seq: Option<u64>, problem: String| VerifyFailure {
        seq,
        problem: format!("the audit index: {problem} (rebuild it with `gateway audit reindex`)"),
    };
    let conn = super::super::sqlite::open_read_only(&data_dir.join(AUDIT_FILE))
        .map_err(|e| failed(None, format!("cannot be opened: {e}")))?;
    let unreadable = |e: rusqlite::Error| failed(None, format!("cannot be read: {e}"));
    conn.execute_batch("BEGIN").map_err(unreadable)?;
    let mut rows_stmt = conn
        .prepare(
            "SELECT seq, event_id, time, request_id, user, township, connector, purpose,
                    subject_pseudonym, status, body, prev_hash, hash
               FROM events ORDER BY seq",
        )
        .map_err(unreadable)?;
    let mut rows = rows_stmt.query([]).map_err(unreadable)?;
    let mut linked_stmt = conn
        .prepare("SELECT pseudonym FROM linked_subjects WHERE seq = ?1 ORDER BY pseudonym")
        .map_err(unreadable)?;
    let mut indexed_checkpoints: Vec<(i64, String)> = conn
        .prepare("SELECT seq, text FROM checkpoints ORDER BY seq")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(unreadable)?;
    indexed_checkpoints.reverse();
    let segments = format::list(&data_dir.join(format::DIR))
        .map_err(|e| failed(None, format!("the segments cannot be listed: {e}")))?;
    // The checkpoints of archived segments stay in the index (the witnesses' feed).
    if let Some(first) = segments.first() {
        let live_from = i64::try_from(first.first_seq).unwrap_or(i64::MAX);
        indexed_checkpoints.retain(|(seq, _)| *seq >= live_from);
    }
    let mut compared = 0;
    for segment in &segments {
        let bytes = std::fs::read(&segment.path)
            .map_err(|e| failed(None, format!("a segment cannot be read: {e}")))?;
        for frame in Frames::new(&bytes, HEADER_LEN) {
            let Ok(record) = frame else { break };
            match record {
                Record::Event {
                    seq,
                    prev_hash,
                    body,
                } => {
                    let here = |problem: &str| failed(Some(seq), format!("event {seq} {problem}"));
                    let Some(row) = rows.next().map_err(unreadable)? else {
                        return Err(here("is missing"));
                    };
                    let row = IndexRow::read(row).map_err(unreadable)?;
                    if row.seq != i64::try_from(seq).unwrap_or(-1) {
                        return Err(here("is missing, or its row is out of place"));
                    }
                    if row.body.as_bytes() != body {
                        return Err(here("has another body in the index"));
                    }
                    if row.prev_hash != hex::encode(prev_hash)
                        || row.hash != hex::encode(link_hash(seq, prev_hash, body))
                    {
                        return Err(here("has other hashes in the index"));
                    }
                    let event: AuditEvent = serde_json::from_slice(body)
                        .map_err(|_| here("is not an audit event in the segments"))?;
                    let columns = Columns::of(&event);
                    let mut linked: Vec<String> = linked_stmt
                        .query_map([row.seq], |r| r.get(0))
                        .and_then(|found| found.collect::<Result<_, _>>())
                        .map_err(unreadable)?;
                    let mut said = columns.linked.clone();
                    said.sort();
                    said.dedup();
                    linked.sort();
                    if row.columns != columns_without_linked(&columns) || linked != said {
                        return Err(here("has search columns that are not what its body says"));
                    }
                    compared += 1;
                }
                Record::Checkpoint { seq, text } => {
                    let here = |problem: &str| {
                        failed(Some(seq), format!("the checkpoint at seq {seq} {problem}"))
                    };
                    match indexed_checkpoints.pop() {
                        Some((at, held))
                            if at == i64::try_from(seq).unwrap_or(-1) && held == text => {}
                        Some(_) => return Err(here("is not the segments' one")),
                        None => return Err(here("is missing")),
                    }
                }
            }
        }
    }
    if let Some(row) = rows.next().map_err(unreadable)? {
        let seq: i64 = row.get(0).map_err(unreadable)?;
        return Err(failed(
            u64::try_from(seq).ok(),
            format!("holds event {seq}, which the segments do not"),
        ));
    }
    if let Some((seq, _)) = indexed_checkpoints.pop() {
        return Err(failed(
            u64::try_from(seq).ok(),
            format!("holds a checkpoint at seq {seq}, which the segments do not"),
        ));
    }
    Ok(compared)
}

/// The columns compared, without the linked persons (a table of their own).
fn columns_without_linked(columns: &Columns) -> Columns {
    Columns {
        linked: Vec::new(),
        ..columns.clone()
    }
}

/// One row of the index's `events`.
struct IndexRow {
    seq: i64,
    columns: Columns,
    body: String,
    prev_hash: String,
    hash: String,
}

impl IndexRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<IndexRow> {
        Ok(IndexRow {
            seq: row.get(0)?,
            columns: Columns {
                event_id: row.get(1)?,
                time: row.get(2)?,
                request_id: row.get(3)?,
                user: row.get(4)?,
                township: row.get(5)?,
                connector: row.get(6)?,
                purpose: row.get(7)?,
                subject_pseudonym: row.get(8)?,
                status: row.get(9)?,
                linked: Vec::new(),
            },
            body: row.get(10)?,
            prev_hash: row.get(11)?,
            hash: row.get(12)?,
        })
    }
}

/// The newest event the segments in `chain_dir` hold (0: none).
fn durable_head(chain_dir: &Path) -> Result<u64, AuditError> {
    let segments = format::list(chain_dir).map_err(|source| AuditError::Io {
        what: "cannot list the audit segments",
        source,
    })?;
    for segment in segments.iter().rev() {
        let bytes = std::fs::read(&segment.path).map_err(|source| AuditError::Io {
            what: "cannot read an audit segment",
            source,
        })?;
        let last = Frames::new(&bytes, HEADER_LEN)
            .map_while(Result::ok)
            .filter(|record| matches!(record, Record::Event { .. }))
            .last();
        if let Some(record) = last {
            return Ok(record.seq());
        }
        if segment.first_seq > 1 {
            return Ok(segment.first_seq - 1);
        }
    }
    Ok(0)
}

/// Waits, polling the files, until the index in `data_dir` holds every event the
/// segments hold — what a process reading `audit.db` beside a running gateway does
/// to see every answered lookup. At most `within`; a log that is not in segment
/// files is settled at once.
pub async fn wait_indexed(data_dir: &Path, within: Duration) -> Result<(), AuditError> {
    let chain_dir = data_dir.join(format::DIR);
    if !chain_dir.is_dir() {
        return Ok(());
    }
    let blocking = |data_dir: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            let head = durable_head(&data_dir.join(format::DIR))?;
            Ok::<_, AuditError>((head, indexed_events(&data_dir)?.unwrap_or(0)))
        })
        .await
        .map_err(|e| AuditError::Unavailable(e.to_string()))?
    };
    let deadline = tokio::time::Instant::now() + within;
    let (head, _) = blocking(data_dir.to_owned()).await?;
    loop {
        let (_, indexed) = blocking(data_dir.to_owned()).await?;
        if indexed >= head {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AuditError::Unavailable(format!(
                "the audit index has not reached seq {head} within {} ms",
                within.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
