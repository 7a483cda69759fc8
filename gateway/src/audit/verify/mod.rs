//! The offline check behind `gateway audit verify`: walks the whole history in
//! sequence order — the archive segments under `DATA_DIR/archive` oldest first, then
//! the live `audit.db` — recomputes the hash chain from the stored bodies, checks
//! every checkpoint's signature and hash, and names the first sequence number where
//! the history is broken. (The segment format is in the module docs of
//! [`retention`](super::retention).)
//!
//! Per event, in this order: its sequence number is the next one (a gap means deleted
//! events; the first missing number is named); its stored previous hash is the hash of
//! the event before; its stored hash is the hash recomputed from the body; the body is
//! an audit event and the search columns say what the body says; and a checkpoint at
//! that sequence number names it, its hash, the log's key, and carries a valid
//! signature. A checkpoint without its event (a cut-off tail) is named by its
//! sequence number. Finally SQLite's integrity check must pass (indexes, free pages).
//! A database that cannot be read is a failure at the first event it cannot read.
//!
//! Across files: the chain runs on from one file to the next, so the first segment
//! starts at seq 1 from the genesis hash, each further segment starts at the seq after
//! the previous one's last with that event's hash as its previous hash, and so does
//! the live log. A segment must hold exactly the range its name says and end on a
//! signed checkpoint; a segment missing from the middle, one renamed out of its place
//! or overlapping another, or a live log that does not start where the archive ends,
//! is named by the first sequence number that is missing or out of place. The live
//! log may hold, just before its first event, the checkpoint that ends the newest
//! segment (the archive leaves it there as the anchor the log continues from); it is
//! checked against the archived event it signs.
//!
//! One state is accepted on purpose: the live log still holding events the newest
//! segment also holds (an archive run wrote the segment and has not yet removed them
//! from the live log: it was interrupted, or is running right now). Then the live
//! copies are walked too, from the archived hash before the first of them, and must
//! reproduce the archived hash of the segment's last event, so both copies are the
//! same chain. The live log is read in one snapshot taken before the archive is
//! listed, so an archive run finishing meanwhile leads to exactly that state.
//!
//! # Threads, and what each check costs
//!
//! Two threads per file. The walk runs on the calling thread: one `SELECT … ORDER BY
//! seq` over the rows, each row read where SQLite holds it (borrowed, nothing copied),
//! hashed, and its body read as an [`AuditEvent`](super::AuditEvent) to compare the
//! search columns (`body`). SQLite's
//! integrity check, the other half of the time, runs meanwhile on a second thread
//! with a read-only connection of its own, started before the walk; its result is
//! taken after the walk has passed, so a failure of the walk is still the one named
//! (the check is then interrupted). For the live log, that connection's snapshot may
//! be newer than the walk's: the integrity check is about the file's structure, not
//! the chain, and a newer snapshot of a sound file is as sound. Both connections map
//! the file into memory (`open_for_reading`).
//!
//! Per 100,000 events of about 1 KB, the walk takes about 0.37 s of one CPU (reading
//! each body as an `AuditEvent` is 0.2 s of it) and the integrity check about 0.22 s
//! of the other. The per-event checks that need no other event (the hash over the
//! event's own stored previous hash, the body) could run on worker threads too, with
//! the rows copied out to them in batches and merged back in sequence order; measured
//! on two CPUs that was slower, as the integrity check already keeps the second CPU
//! busy. The integrity check alone (one single-threaded SQLite statement, not to be
//! weakened or split) bounds the check at about 450,000 events a second, however many
//! CPUs there are.

mod body;
#[cfg(test)]
mod tests;

use std::fmt;
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use rusqlite::{Connection, OptionalExtension, Row};

use super::chain::{GENESIS, link_hash, parse_hash};
use super::checkpoint::{Checkpoint, public_key};
use super::retention::{SEGMENT_FORMAT, SegmentFile, segment_files};
use super::sqlite::{AUDIT_FILE, KEY_FILE, open_read_only};
use body::{BodyCheck, StoredColumns};

/// What a successful check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every event of the history, archived and live.
    pub events: u64,
    /// Every distinct checkpoint (the anchor the live log keeps counts once).
    pub checkpoints: u64,
    pub last_seq: u64,
    /// `hash(last_seq)` (the genesis hash, all zeros, for an empty log).
    pub last_hash: String,
}

/// Where and how the log is broken. The problem never quotes event contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The first bad sequence number, when the failure has one.
    pub seq: Option<u64>,
    pub problem: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "audit log broken at seq {seq}: {}", self.problem),
            None => write!(f, "audit log broken: {}", self.problem),
        }
    }
}

impl std::error::Error for VerifyFailure {}

fn broken(seq: Option<u64>, problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq,
        problem: problem.into(),
    }
}

/// Checks the whole history in `data_dir`: the archive segments, then the live log
/// (opened read-only, in one snapshot, so it may run while the gateway writes or an
/// archive run moves events). Blocking.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, VerifyFailure> {
    let path = data_dir.join(AUDIT_FILE);
    let conn = open_for_reading(&path)
        .map_err(|e| broken(None, format!("cannot open the audit database: {e}")))?;
    let unreadable =
        |e: rusqlite::Error| broken(None, format!("cannot read the audit database: {e}"));
    conn.execute_batch("BEGIN").map_err(unreadable)?;
    // The first read fixes the snapshot, before the archive is listed.
    let live_first: Option<i64> = conn
        .query_row("SELECT min(seq) FROM events", [], |row| row.get(0))
        .map_err(unreadable)?;
    let segments = segment_files(data_dir)
        .map_err(|e| broken(None, format!("cannot list the audit archive: {e}")))?;
    // The live log's integrity check runs meanwhile on a connection of its own, whose
    // snapshot may be newer than the walk's (the gateway may have committed since).
    // That is sound: the check is about the file's structure (pages, indexes, free
    // list), not the chain, and a newer snapshot of a sound file is as sound.
    let chain = alongside_integrity_check(
        &path,
        || walk_history(data_dir, &conn, live_first, &segments),
        |problem| broken(None, problem),
    )?;
    let last_seq = chain.next - 1;
    Ok(VerifyReport {
        events: last_seq,
        checkpoints: chain.checkpoints,
        last_seq,
        last_hash: hex::encode(chain.prev),
    })
}

/// The walk of [`verify`]: the segments in order, then the live log.
fn walk_history(
    data_dir: &Path,
    conn: &Connection,
    live_first: Option<i64>,
    segments: &[SegmentFile],
) -> Result<Chain, VerifyFailure> {
    let mut chain = Chain::new(data_dir.join(KEY_FILE), 1, GENESIS);
    for segment in segments {
        if segment.first > chain.next {
            return Err(broken(
                Some(chain.next),
                format!(
                    "events {}-{} are missing: no archive segment holds them",
                    chain.next,
                    segment.first - 1
                ),
            ));
        }
        if segment.first < chain.next {
            return Err(broken(
                Some(segment.first),
                format!(
                    "the archive segment {} overlaps the history before it, which ends at seq {}",
                    segment.name,
                    chain.next - 1
                ),
            ));
        }
        chain.segment(segment)?;
    }
    chain.live(conn, live_first, segments.last())?;
    Ok(chain)
}

/// Checks one segment file on its own, as the archive does before it removes the
/// events from the live log: its events are exactly `first..=last`, chained on from
/// `prev`, and it ends on a checkpoint signed with the key in `key_path`. Returns
/// `hash(last)`. Blocking.
pub(crate) fn check_segment(
    segment: &SegmentFile,
    prev: [u8; 32],
    key_path: &Path,
) -> Result<[u8; 32], VerifyFailure> {
    let mut chain = Chain::new(key_path.to_owned(), segment.first, prev);
    chain.segment(segment)?;
    Ok(chain.prev)
}

fn read_checkpoints(conn: &Connection) -> Result<Vec<(u64, String)>, VerifyFailure> {
    let unreadable = |e: rusqlite::Error| broken(None, format!("cannot read the checkpoints: {e}"));
    let mut stmt = conn
        .prepare("SELECT seq, text FROM checkpoints ORDER BY seq")
        .map_err(unreadable)?;
    let rows = stmt
        .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get(1)?)))
        .map_err(unreadable)?;
    // A negative number (never written by the log) becomes 0, which matches no event.
    rows.map(|row| row.map(|(seq, text)| (u64::try_from(seq).unwrap_or(0), text)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)
}

/// Opens a file of the log read-only for the check. The file is mapped into memory
/// (up to SQLite's limit, 2 GB; beyond it pages are read as usual): pages are then
/// read from the map instead of copied through a `read` call each, which takes about
/// a quarter off the integrity check (0.29 s to 0.22 s per 100,000 events). The check
/// only reads, and the gateway never shrinks a log file in place (no `VACUUM`), so
/// the map stays valid.
fn open_for_reading(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_read_only(path)?;
    // Tuning only: a file that cannot be read fails at its first read, as before.
    let _ = conn.execute_batch("PRAGMA mmap_size = 2147418112");
    Ok(conn)
}

/// Runs `walk` on this thread while `PRAGMA integrity_check` runs over the file at
/// `path` on another, with a connection of its own. The walk's failure comes first,
/// as when the check ran after it (the integrity check is then interrupted); a
/// failure of the integrity check, or of opening its connection, comes after a
/// walk that passed, as `failed` says it.
fn alongside_integrity_check<T>(
    path: &Path,
    walk: impl FnOnce() -> Result<T, VerifyFailure>,
    failed: impl FnOnce(String) -> VerifyFailure,
) -> Result<T, VerifyFailure> {
    let stop = &AtomicBool::new(false);
    // The integrity check's interrupt handle, for a walk that fails: the check's
    // result is then not needed.
    let (interrupt_tx, interrupt_rx) = sync_channel(1);
    std::thread::scope(|scope| {
        let checking = std::thread::Builder::new()
            .name("audit-integrity".into())
            .spawn_scoped(scope, move || {
                let conn = open_for_reading(path)
                    .map_err(|e| broken(None, format!("SQLite integrity check failed: {e}")))?;
                // The receiver is gone only when it is no longer needed.
                let _ = interrupt_tx.send(conn.get_interrupt_handle());
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                integrity_check(&conn)
            });
        let walked = walk();
        let checked = match checking {
            Ok(checking) => {
                if walked.is_err() {
                    stop.store(true, Ordering::Release);
                    if let Ok(interrupt) = interrupt_rx.recv() {
                        interrupt.interrupt();
                    }
                }
                match checking.join() {
                    Ok(checked) => checked,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            // No thread to be had: the check runs here, after the walk, as it did.
            Err(_) if walked.is_ok() => open_for_reading(path)
                .map_err(|e| broken(None, format!("SQLite integrity check failed: {e}")))
                .and_then(|conn| integrity_check(&conn)),
            Err(_) => Ok(()),
        };
        let value = walked?;
        checked.map_err(|failure| failed(failure.problem))?;
        Ok(value)
    })
}

fn integrity_check(conn: &Connection) -> Result<(), VerifyFailure> {
    let failed = |e: rusqlite::Error| broken(None, format!("SQLite integrity check failed: {e}"));
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(failed)?;
    let first: Option<String> = stmt
        .query_map([], |row| row.get(0))
        .map_err(failed)?
        .next()
        .transpose()
        .map_err(failed)?;
    match first.as_deref() {
        Some("ok") => Ok(()),
        Some(report) => Err(broken(
            None,
            format!("SQLite integrity check failed: {report}"),
        )),
        None => Err(broken(None, "SQLite integrity check said nothing")),
    }
}

/// The walk's state across files: the next expected sequence number and the hash
/// before it, the key (read once), and the checkpoints checked so far.
struct Chain {
    key_path: PathBuf,
    key: Option<Vec<u8>>,
    next: u64,
    prev: [u8; 32],
    /// Distinct checkpoints checked.
    checkpoints: u64,
    /// The newest checkpoint counted (0: none yet).
    newest_checkpoint: u64,
}

/// The checkpoints of one file, in sequence order.
type Checkpoints = Peekable<std::vec::IntoIter<(u64, String)>>;

/// One stored row of `events`, borrowed from SQLite's row: nothing is copied.
struct Stored<'r> {
    seq: i64,
    columns: StoredColumns<'r>,
    body: &'r [u8],
    prev_hash: &'r str,
    hash: &'r str,
}

impl<'r> Stored<'r> {
    /// Reads the columns in their order, each as `row.get` reads a `String`,
    /// `Option<String>` or `i64`, so a column that cannot be read fails with the same
    /// error as if it were copied out.
    fn read(row: &'r Row<'_>) -> rusqlite::Result<Stored<'r>> {
        Ok(Stored {
            seq: row.get(0)?,
            columns: StoredColumns {
                event_id: text(row, 1)?,
                time: text(row, 2)?,
                request_id: text(row, 3)?,
                user: text(row, 4)?,
                township: optional_text(row, 5)?,
                connector: optional_text(row, 6)?,
                purpose: optional_text(row, 7)?,
                subject_pseudonym: optional_text(row, 8)?,
                status: row.get(9)?,
            },
            body: row.get_ref(10)?.as_bytes()?,
            prev_hash: text(row, 11)?,
            hash: text(row, 12)?,
        })
    }
}

/// A text column as `row.get::<_, String>` reads it, borrowed instead of copied.
fn text<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    match row.get_ref(idx)?.as_str() {
        Ok(text) => Ok(text),
        Err(_) => Err(as_string_fails(row, idx)),
    }
}

/// A nullable text column as `row.get::<_, Option<String>>` reads it, borrowed.
fn optional_text<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<Option<&'r str>> {
    match row.get_ref(idx)?.as_str_or_null() {
        Ok(text) => Ok(text),
        Err(_) => Err(as_string_fails(row, idx)),
    }
}

/// The error `row.get::<_, String>` gives for a column that is not text (the table
/// is STRICT: a damaged file), so that the failure says what it always said.
fn as_string_fails(row: &Row<'_>, idx: usize) -> rusqlite::Error {
    match row.get::<_, String>(idx) {
        Err(e) => e,
        Ok(_) => {
            rusqlite::Error::InvalidColumnType(idx, String::new(), rusqlite::types::Type::Null)
        }
    }
}

/// A hash in lowercase hex, as stored, without allocating.
fn hex64(hash: &[u8; 32]) -> [u8; 64] {
    let mut out = [0; 64];
    // 32 bytes always fill 64 hex digits exactly: the encoding cannot fail.
    let _ = hex::encode_to_slice(hash, &mut out);
    out
}

impl Chain {
    fn new(key_path: PathBuf, next: u64, prev: [u8; 32]) -> Chain {
        Chain {
            key_path,
            key: None,
            next,
            prev,
            checkpoints: 0,
            newest_checkpoint: 0,
        }
    }

    /// Walks one archive segment, which must start at `self.next`.
    fn segment(&mut self, segment: &SegmentFile) -> Result<(), VerifyFailure> {
        let name = &segment.name;
        let here = |seq: u64, problem: String| {
            broken(Some(seq), format!("{problem} (archive segment {name})"))
        };
        let first = segment.first;
        let conn = open_for_reading(&segment.path)
            .map_err(|e| here(first, format!("the segment cannot be opened: {e}")))?;
        conn.execute_batch("BEGIN")
            .map_err(|e| here(first, format!("the segment cannot be read: {e}")))?;
        let format: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'segment_format'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| here(first, format!("the segment cannot be read: {e}")))?;
        if format.as_deref() != Some(SEGMENT_FORMAT) {
            return Err(here(
                first,
                "the file is not a v1 audit archive segment".into(),
            ));
        }
        // The segment's integrity check runs meanwhile on a connection of its own.
        alongside_integrity_check(
            &segment.path,
            || self.segment_events(segment, &conn),
            |problem| here(first, problem),
        )
    }

    /// The events of [`Chain::segment`]'s segment, read from `conn`.
    fn segment_events(
        &mut self,
        segment: &SegmentFile,
        conn: &Connection,
    ) -> Result<(), VerifyFailure> {
        let name = &segment.name;
        let here = |seq: u64, problem: String| {
            broken(Some(seq), format!("{problem} (archive segment {name})"))
        };
        let last_checkpoint = self.file(conn, None).map_err(|failure| {
            broken(
                failure.seq,
                format!("{} (archive segment {name})", failure.problem),
            )
        })?;
        let held = self.next - 1;
        if held < segment.last {
            return Err(here(
                self.next,
                format!(
                    "event {} is missing: the segment ends at seq {held}",
                    self.next
                ),
            ));
        }
        if held > segment.last {
            return Err(here(
                segment.last + 1,
                "the segment holds events beyond the range its name says".into(),
            ));
        }
        if last_checkpoint != Some(segment.last) {
            return Err(here(
                segment.last,
                "the segment does not end on a signed checkpoint".into(),
            ));
        }
        Ok(())
    }

    /// Walks the live log, which continues the archive (or starts at seq 1).
    fn live(
        &mut self,
        conn: &Connection,
        live_first: Option<i64>,
        newest_segment: Option<&SegmentFile>,
    ) -> Result<(), VerifyFailure> {
        let mut must_reach = None;
        if let (Some(first), Some(segment)) = (live_first, newest_segment) {
            // A negative number (never written by the log) becomes 0: out of place.
            let first = u64::try_from(first).unwrap_or(0);
            if first <= segment.last {
                if first < segment.first {
                    return Err(broken(
                        Some(first),
                        format!(
                            "the live log holds event {first}, which is archived before the \
                             newest segment {}",
                            segment.name
                        ),
                    ));
                }
                // An archive run has copied these events and not yet removed them.
                must_reach = Some((segment.last, self.prev));
                self.prev = archived_prev_hash(segment, first)?;
                self.next = first;
            }
        }
        self.file(conn, must_reach)?;
        if let Some((last, _)) = must_reach
            && self.next <= last
        {
            return Err(broken(
                Some(self.next),
                format!(
                    "event {} is missing from the live log, which holds archived events \
                     but not up to the end of their segment (seq {last})",
                    self.next
                ),
            ));
        }
        Ok(())
    }

    /// Walks one file's events from `self.next` on, with its checkpoints; returns the
    /// sequence number of the newest checkpoint it checked. `must_reach`: at this
    /// sequence number the recomputed hash must be this one.
    fn file(
        &mut self,
        conn: &Connection,
        must_reach: Option<(u64, [u8; 32])>,
    ) -> Result<Option<u64>, VerifyFailure> {
        let mut checkpoints = read_checkpoints(conn)?.into_iter().peekable();
        let mut newest = None;
        // The anchor: the checkpoint of the event just before this file's first one.
        if self.next > 1
            && let Some((at, text)) = checkpoints.next_if(|(at, _)| *at == self.next - 1)
        {
            let hash = self.prev;
            self.checkpoint(at, &hash, &text)
                .map_err(|problem| broken(Some(at), problem))?;
            newest = Some(at);
        }
        let mut stmt = conn
            .prepare(
                "SELECT seq, event_id, time, request_id, user, township, connector, purpose,
                        subject_pseudonym, status, body, prev_hash, hash
                   FROM events ORDER BY seq",
            )
            .map_err(|e| self.unreadable(&e))?;
        let mut rows = stmt.query([]).map_err(|e| self.unreadable(&e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.unreadable(&e)),
            };
            let stored = Stored::read(row).map_err(|e| self.unreadable(&e))?;
            if let Some(at) = self.event(&stored, &mut checkpoints, must_reach)? {
                newest = Some(at);
            }
        }
        if let Some((seq, _)) = checkpoints.next() {
            return Err(broken(
                Some(seq),
                format!("the checkpoint at seq {seq} signs an event that is not in the log"),
            ));
        }
        Ok(newest)
    }

    fn unreadable(&self, e: &dyn fmt::Display) -> VerifyFailure {
        broken(
            Some(self.next),
            format!("event {} cannot be read: {e}", self.next),
        )
    }

    /// Checks one event and the checkpoints up to it; returns the sequence number of
    /// the checkpoint checked at it, if any.
    fn event(
        &mut self,
        stored: &Stored<'_>,
        checkpoints: &mut Checkpoints,
        must_reach: Option<(u64, [u8; 32])>,
    ) -> Result<Option<u64>, VerifyFailure> {
        let seq = self.next;
        let here = |problem: String| broken(Some(seq), problem);
        if stored.seq != seq as i64 {
            return Err(here(if stored.seq > seq as i64 {
                format!(
                    "event {seq} is missing (the next stored event is {})",
                    stored.seq
                )
            } else {
                format!("an event has the out-of-order number {}", stored.seq)
            }));
        }
        if stored.prev_hash.as_bytes() != hex64(&self.prev) {
            return Err(here(format!(
                "the stored previous hash is not the hash of event {}",
                seq - 1
            )));
        }
        let hash = link_hash(seq, &self.prev, stored.body);
        if stored.hash.as_bytes() != hex64(&hash) {
            return Err(here(
                "the stored hash is not the hash of the stored body and its predecessor".into(),
            ));
        }
        if let Some((at, archived)) = must_reach
            && at == seq
            && archived != hash
        {
            return Err(here(
                "the live log's copy of this archived event is not the archived one".into(),
            ));
        }
        match body::check(stored.body, &stored.columns) {
            BodyCheck::Matches => {}
            BodyCheck::NotAnEvent => {
                return Err(here("the stored body is not an audit event".into()));
            }
            BodyCheck::ColumnsDiffer => {
                return Err(here(
                    "the search columns do not say what the body says".into(),
                ));
            }
        }
        let mut checked = None;
        while let Some((at, text)) = checkpoints.next_if(|(at, _)| *at <= seq) {
            if at < seq {
                return Err(broken(
                    Some(at),
                    format!("the checkpoint at seq {at} signs an event that is not in the log"),
                ));
            }
            self.checkpoint(seq, &hash, &text).map_err(here)?;
            checked = Some(seq);
        }
        self.prev = hash;
        self.next = seq + 1;
        Ok(checked)
    }

    fn checkpoint(&mut self, seq: u64, hash: &[u8; 32], text: &str) -> Result<(), String> {
        let checkpoint =
            Checkpoint::parse(text).map_err(|problem| format!("the checkpoint: {problem}"))?;
        if checkpoint.seq != seq {
            return Err(format!(
                "the checkpoint stored at seq {seq} says seq {}",
                checkpoint.seq
            ));
        }
        if checkpoint.hash != hex::encode(hash) {
            return Err("the checkpoint's hash is not the hash of its event".into());
        }
        let key = match &self.key {
            Some(key) => key,
            None => {
                let key = public_key(&self.key_path)
                    .map_err(|e| format!("cannot check the checkpoint: {e}"))?;
                self.key.insert(key)
            }
        };
        checkpoint
            .check_signature(text, key)
            .map_err(|problem| format!("the checkpoint: {problem}"))?;
        if seq > self.newest_checkpoint {
            self.checkpoints += 1;
            self.newest_checkpoint = seq;
        }
        Ok(())
    }
}

/// `hash(seq - 1)` as the (already walked) segment stores it before event `seq`.
fn archived_prev_hash(segment: &SegmentFile, seq: u64) -> Result<[u8; 32], VerifyFailure> {
    let here = |problem: String| {
        broken(
            Some(seq),
            format!("{problem} (archive segment {})", segment.name),
        )
    };
    let conn = open_read_only(&segment.path)
        .map_err(|e| here(format!("the segment cannot be opened: {e}")))?;
    let stored: String = conn
        .query_row(
            "SELECT prev_hash FROM events WHERE seq = ?1",
            [i64::try_from(seq).unwrap_or(i64::MAX)],
            |row| row.get(0),
        )
        .map_err(|e| here(format!("event {seq} cannot be read: {e}")))?;
    parse_hash(&stored).ok_or_else(|| here("a stored previous hash is not a hash".into()))
}
