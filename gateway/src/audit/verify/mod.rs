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
//! What the log is held to besides ([`Expectations`], from `gateway.yaml`'s `audit:`
//! section when `verify` is given `--config`):
//!
//! - **The cadence** ([`cadence`](super::cadence)): a checkpoint wherever the writer
//!   must have made one, from the first event on — the event `every_events` after a
//!   checkpoint carries one, and no event of a gap is later than the gap's first by
//!   more than `every` (plus a grace). The first event that should have come after a
//!   missing checkpoint is named. This is what catches a log whose checkpoints were
//!   deleted and whose chain was then recomputed over an edited event.
//! - **The checkpoints' own chain**: a v2 checkpoint names the previous checkpoint
//!   (its seq and the SHA-256 of its text); a removed or replaced checkpoint is named
//!   by the seq the next one names.
//! - **The key**: the checkpoints are checked against the pinned key when one is
//!   given, else against the key found in the data directory (which proves nothing
//!   to someone who holds that directory: the report says the key was not pinned).
//! - **Witnesses**: each checkpoint a witness holds must sign, with the same key, the
//!   hash the log holds at its seq; a witnessed seq beyond the log's last event means
//!   the tail was cut. This catches a rewrite even by someone holding the key.
//!
//! The check the writer runs before it signs anything is in `startup.rs`.
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
mod expect_tests;
mod startup;
#[cfg(test)]
mod tests;

pub(crate) use startup::{check_before_writing, not_followed};

use std::fmt;
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use rusqlite::{Connection, OptionalExtension, Row};

use super::cadence::{Cadence, missing_by_count, missing_by_time, time_ms};
use super::chain::{GENESIS, link_hash, parse_hash};
use super::checkpoint::{Checkpoint, Prev, encode_public_key, public_key};
use super::retention::{SEGMENT_FORMAT, SegmentFile, segment_files};
use super::sqlite::{AUDIT_FILE, KEY_FILE, open_read_only};
use body::BodyCheck;
pub(crate) use body::StoredColumns;

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
    /// The checkpoint key the checkpoints were checked against (base64), when there
    /// was one to check.
    pub key: Option<String>,
    /// Whether that key was the pinned one (else: the key found in the data dir).
    pub key_pinned: bool,
    /// Events after the newest checkpoint, not signed yet.
    pub unsigned_tail: u64,
    /// Witnessed checkpoints found consistent with the log.
    pub witnessed: u64,
    /// A log of many chains (PostgreSQL's, one per replica): each chain's head, in
    /// chain id order; the fields above then add up the chains (`last_seq` and
    /// `last_hash` are the longest chain's). Empty for the embedded log.
    pub chains: Vec<ChainHead>,
    /// County checkpoints (over every chain's head) found consistent with the log.
    pub county_checkpoints: u64,
    /// Bytes after the newest segment file's last whole record: a write a crash cut
    /// short, never acknowledged (the writer cuts them off when it starts). Always 0
    /// for a log in SQLite or on PostgreSQL.
    pub unacknowledged_bytes: u64,
}

/// One chain of a log of many, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain_id: String,
    pub last_seq: u64,
    /// Lowercase hex (the genesis hash, all zeros, for an empty chain).
    pub last_hash: String,
    pub checkpoints: u64,
    pub unsigned_tail: u64,
}

/// What the log is held to, beyond its own chain and signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The cadence the writer was configured with (checkpoints may loosen it for the
    /// gaps they close, see [`cadence`](super::cadence)).
    pub cadence: Cadence,
    /// The pinned checkpoint key (raw, 32 bytes); `None`: the data directory's key.
    pub pinned_key: Option<Vec<u8>>,
    /// Checkpoints held by witnesses, which the log must be consistent with.
    pub witnessed: Vec<Witnessed>,
}

/// One checkpoint a witness holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// Who holds it (a witness's name or URL, a file), for messages.
    pub witness: String,
    /// The checkpoint's text, as the witness keeps it.
    pub text: String,
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

pub(crate) fn broken(seq: Option<u64>, problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq,
        problem: problem.into(),
    }
}

/// Checks the whole history in `data_dir` with the default [`Expectations`] (the
/// default cadence, the key found in the data directory, no witness). Blocking.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, VerifyFailure> {
    verify_with(data_dir, &Expectations::default())
}

/// Checks the whole history in `data_dir`: the archive segments, then the live log
/// (opened read-only, in one snapshot, so it may run while the gateway writes or an
/// archive run moves events), against `expect`. Blocking.
pub fn verify_with(data_dir: &Path, expect: &Expectations) -> Result<VerifyReport, VerifyFailure> {
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
        || walk_history(data_dir, expect, &conn, live_first, &segments),
        |problem| broken(None, problem),
    )?;
    let last_seq = chain.next - 1;
    Ok(VerifyReport {
        events: last_seq,
        checkpoints: chain.checkpoints,
        last_seq,
        last_hash: hex::encode(chain.prev),
        key: chain.key.as_deref().map(encode_public_key),
        key_pinned: expect.pinned_key.is_some(),
        unsigned_tail: last_seq - chain.last_checkpoint.seq,
        witnessed: chain.witnessed_matched,
        chains: Vec::new(),
        county_checkpoints: 0,
        unacknowledged_bytes: 0,
    })
}

/// One hash chain walked event by event from rows read elsewhere than an SQLite
/// file (PostgreSQL's chains, one per replica), with exactly the checks [`verify`]
/// makes on the embedded log's events: sequence, previous hash, hash, body and
/// columns, the chain's checkpoints (signature, key, `prev`) and the cadence.
pub(crate) struct ChainWalk {
    chain: Chain,
    checkpoints: Checkpoints,
}

/// What a [`ChainWalk`] found, once it reached the chain's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainWalked {
    pub(crate) last_seq: u64,
    pub(crate) last_hash: [u8; 32],
    pub(crate) checkpoints: u64,
    pub(crate) unsigned_tail: u64,
    /// The key the checkpoints were checked against.
    pub(crate) key: Option<Vec<u8>>,
}

impl ChainWalk {
    /// A walk from the chain's first event, against `expect`'s cadence and pinned key
    /// (else the key in `key_path`), over the chain's checkpoints (seq, text).
    pub(crate) fn from_start(
        key_path: &Path,
        expect: &Expectations,
        checkpoints: Vec<(u64, String)>,
    ) -> ChainWalk {
        let mut chain = Chain::new(key_path.to_owned(), 1, GENESIS);
        chain.key = expect.pinned_key.clone();
        chain.cadence = Some(expect.cadence);
        chain.previous_checkpoint = Some(Prev::NONE);
        ChainWalk {
            chain,
            checkpoints: with_cadences(checkpoints),
        }
    }

    /// A walk of the unsigned tail after the checkpoint `after` (already checked,
    /// signing `hash`, made with `after_cadence`), against `cadence` and `key`: what
    /// a writer checks before it signs over a tail another process left.
    pub(crate) fn tail(
        key: Vec<u8>,
        cadence: Cadence,
        after: Prev,
        after_cadence: Option<Cadence>,
        hash: [u8; 32],
    ) -> ChainWalk {
        let mut chain = Chain::new(PathBuf::new(), after.seq + 1, hash);
        chain.key = Some(key);
        chain.cadence = Some(cadence);
        chain.previous_checkpoint = Some(after);
        chain.last_checkpoint = after;
        chain.last_cadence = after_cadence;
        ChainWalk {
            chain,
            checkpoints: with_cadences(Vec::new()),
        }
    }

    /// The next stored event of the chain.
    pub(crate) fn event(&mut self, stored: &Stored<'_>) -> Result<(), VerifyFailure> {
        self.chain
            .event(stored, &mut self.checkpoints, None)
            .map(|_| ())
    }

    /// The seq the walk expects next.
    pub(crate) fn next_seq(&self) -> u64 {
        self.chain.next
    }

    /// The end of the chain: a checkpoint beyond its last event means a cut tail.
    pub(crate) fn finish(mut self) -> Result<ChainWalked, VerifyFailure> {
        if let Some(StoredCheckpoint { seq, .. }) = self.checkpoints.next() {
            return Err(broken(
                Some(seq),
                format!("the checkpoint at seq {seq} signs an event that is not in the log"),
            ));
        }
        let last_seq = self.chain.next - 1;
        Ok(ChainWalked {
            last_seq,
            last_hash: self.chain.prev,
            checkpoints: self.chain.checkpoints,
            unsigned_tail: last_seq - self.chain.last_checkpoint.seq,
            key: self.chain.key,
        })
    }
}

/// The walk of [`verify`]: the segments in order, then the live log.
fn walk_history(
    data_dir: &Path,
    expect: &Expectations,
    conn: &Connection,
    live_first: Option<i64>,
    segments: &[SegmentFile],
) -> Result<Chain, VerifyFailure> {
    let mut chain = Chain::new(data_dir.join(KEY_FILE), 1, GENESIS);
    chain.key = expect.pinned_key.clone();
    chain.cadence = Some(expect.cadence);
    chain.previous_checkpoint = Some(Prev::NONE);
    chain.witnessed = chain
        .parse_witnessed(&expect.witnessed)?
        .into_iter()
        .peekable();
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
    if let Some(cut) = chain.witnessed.next() {
        let last = chain.next - 1;
        return Err(broken(
            Some(chain.next),
            format!(
                "{} holds a checkpoint at seq {}, but the log ends at seq {last}: events \
                 after it were cut off",
                cut.witness, cut.seq
            ),
        ));
    }
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

pub(super) fn read_checkpoints(conn: &Connection) -> Result<Vec<(u64, String)>, VerifyFailure> {
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
/// before it, the key (read once, or pinned), the checkpoints checked so far, where
/// the current gap between checkpoints began, and the witnessed checkpoints still to
/// meet.
struct Chain {
    key_path: PathBuf,
    key: Option<Vec<u8>>,
    next: u64,
    prev: [u8; 32],
    /// Distinct checkpoints checked.
    checkpoints: u64,
    /// The newest checkpoint counted (0: none yet).
    newest_checkpoint: u64,
    /// The configured cadence; `None`: not checked (a segment checked on its own).
    cadence: Option<Cadence>,
    /// The newest checkpoint checked, as the next one must name it (`None`: not
    /// known, when the walk starts in the middle of the history).
    previous_checkpoint: Option<Prev>,
    /// The newest checkpoint checked (seq 0: none), and the cadence it signed.
    last_checkpoint: Prev,
    last_cadence: Option<Cadence>,
    /// The first event after the newest checkpoint: seq and time (ms).
    gap_first: Option<(u64, i64)>,
    /// Witnessed checkpoints not met yet, in seq order.
    witnessed: Peekable<std::vec::IntoIter<WitnessedHead>>,
    witnessed_matched: u64,
}

/// A witnessed checkpoint, parsed and checked against the key.
pub(crate) struct WitnessedHead {
    pub(crate) witness: String,
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// One stored checkpoint of a file, with the cadence it signs (if it can be read;
/// its text is checked in full when the walk reaches it).
struct StoredCheckpoint {
    seq: u64,
    text: String,
    cadence: Option<Cadence>,
}

/// The checkpoints of one file, in sequence order.
type Checkpoints = Peekable<std::vec::IntoIter<StoredCheckpoint>>;

fn with_cadences(stored: Vec<(u64, String)>) -> Checkpoints {
    stored
        .into_iter()
        .map(|(seq, text)| {
            let cadence = Checkpoint::parse(&text).ok().and_then(|c| c.cadence);
            StoredCheckpoint { seq, text, cadence }
        })
        .collect::<Vec<_>>()
        .into_iter()
        .peekable()
}

/// One stored row of `events`, borrowed from SQLite's row (or another store's):
/// nothing is copied.
pub(crate) struct Stored<'r> {
    pub(crate) seq: i64,
    pub(crate) columns: StoredColumns<'r>,
    pub(crate) body: &'r [u8],
    pub(crate) prev_hash: &'r str,
    pub(crate) hash: &'r str,
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
pub(crate) fn hex64(hash: &[u8; 32]) -> [u8; 64] {
    let mut out = [0; 64];
    // 32 bytes always fill 64 hex digits exactly: the encoding cannot fail.
    let _ = hex::encode_to_slice(hash, &mut out);
    out
}

/// The checkpoints witnesses hold, each checked against the log's key (`key`, asked
/// for only when there is one), in seq order.
pub(crate) fn witnessed_heads(
    witnessed: &[Witnessed],
    mut key: impl FnMut() -> Result<Vec<u8>, String>,
) -> Result<Vec<WitnessedHead>, VerifyFailure> {
    let mut heads = Vec::with_capacity(witnessed.len());
    for held in witnessed {
        let not_ours = |problem: String| {
            broken(
                None,
                format!(
                    "{} holds a checkpoint that is not this log's: {problem}",
                    held.witness
                ),
            )
        };
        let checkpoint = Checkpoint::parse(&held.text).map_err(not_ours)?;
        let key = key().map_err(not_ours)?;
        checkpoint
            .check_signature(&held.text, &key)
            .map_err(not_ours)?;
        heads.push(WitnessedHead {
            witness: held.witness.clone(),
            seq: checkpoint.seq,
            hash: checkpoint.hash,
        });
    }
    heads.sort_by_key(|head| head.seq);
    Ok(heads)
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
            cadence: None,
            previous_checkpoint: None,
            last_checkpoint: Prev {
                seq: next - 1,
                text_sha256: [0; 32],
            },
            last_cadence: None,
            gap_first: None,
            witnessed: Vec::new().into_iter().peekable(),
            witnessed_matched: 0,
        }
    }

    /// The key the checkpoints are checked against: pinned, or read from the data
    /// directory once.
    fn key(&mut self) -> Result<&[u8], String> {
        if self.key.is_none() {
            let key = public_key(&self.key_path)
                .map_err(|e| format!("cannot check the checkpoint: {e}"))?;
            self.key = Some(key);
        }
        Ok(self.key.as_deref().unwrap_or_default())
    }

    /// The witnessed checkpoints, each signed with the log's key, in seq order.
    fn parse_witnessed(
        &mut self,
        witnessed: &[Witnessed],
    ) -> Result<Vec<WitnessedHead>, VerifyFailure> {
        witnessed_heads(witnessed, || self.key().map(<[u8]>::to_vec))
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
        let mut checkpoints = with_cadences(read_checkpoints(conn)?);
        let mut newest = None;
        // The anchor: the checkpoint of the event just before this file's first one.
        if self.next > 1
            && let Some(anchor) = checkpoints.next_if(|c| c.seq == self.next - 1)
        {
            let hash = self.prev;
            let at = anchor.seq;
            self.checkpoint(at, &hash, &anchor.text)?;
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
        if let Some(StoredCheckpoint { seq, .. }) = checkpoints.next() {
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
        if let Some(&next) = checkpoints.peek().map(|c| &c.seq)
            && next < seq
        {
            return Err(broken(
                Some(next),
                format!("the checkpoint at seq {next} signs an event that is not in the log"),
            ));
        }
        // Events archived and walked already (the live copies an archive run has not
        // removed yet) were held to the cadence and the witnesses the first time.
        if seq > self.newest_checkpoint {
            self.cadence_rules(seq, stored.columns.time, checkpoints)?;
            self.witnessed_at(seq, &hash)?;
        }
        let mut checked = None;
        while let Some(stored) = checkpoints.next_if(|c| c.seq == seq) {
            self.checkpoint(seq, &hash, &stored.text)?;
            checked = Some(seq);
        }
        self.prev = hash;
        self.next = seq + 1;
        Ok(checked)
    }

    /// The cadence at the event `seq` recorded at `time`: by count, it must carry a
    /// checkpoint when the rule says so; by time, it must not be too late after the
    /// first event of its gap.
    fn cadence_rules(
        &mut self,
        seq: u64,
        time: &str,
        checkpoints: &mut Checkpoints,
    ) -> Result<(), VerifyFailure> {
        let Some(configured) = self.cadence else {
            return Ok(());
        };
        let closing = checkpoints.peek();
        let signed_here = closing.is_some_and(|c| c.seq == seq);
        let cadence = configured.loosened_by([
            self.last_cadence.as_ref(),
            closing.and_then(|c| c.cadence.as_ref()),
        ]);
        let after = self.last_checkpoint.seq;
        if cadence.due_by_count(after, seq) && !signed_here {
            return Err(broken(Some(seq), missing_by_count(after, seq, &cadence)));
        }
        let time =
            time_ms(time).ok_or_else(|| broken(Some(seq), "the event's time is not RFC 3339"))?;
        let (first, first_ms) = *self.gap_first.get_or_insert((seq, time));
        if time > cadence.latest_ms(first_ms) {
            return Err(broken(
                Some(seq),
                missing_by_time(first, seq, time - first_ms, &cadence),
            ));
        }
        Ok(())
    }

    /// The witnessed checkpoints at `seq` must sign `hash`.
    fn witnessed_at(&mut self, seq: u64, hash: &[u8; 32]) -> Result<(), VerifyFailure> {
        while let Some(held) = self.witnessed.next_if(|held| held.seq <= seq) {
            if held.seq < seq || held.hash.as_bytes() != hex64(hash) {
                return Err(broken(
                    Some(held.seq),
                    format!(
                        "{} holds a checkpoint at seq {} whose hash is not the log's: the log \
                         was rewritten after the witness received it",
                        held.witness, held.seq
                    ),
                ));
            }
            self.witnessed_matched += 1;
        }
        Ok(())
    }

    /// Checks the checkpoint `text` stored at `seq`, whose event's hash is `hash`.
    fn checkpoint(&mut self, seq: u64, hash: &[u8; 32], text: &str) -> Result<(), VerifyFailure> {
        let checkpoint = self
            .checkpoint_text(seq, hash, text)
            .map_err(|problem| broken(Some(seq), problem))?;
        if seq <= self.newest_checkpoint {
            // The anchor again, or a live copy of an archived one: checked before.
            return Ok(());
        }
        if let (Some(named), Some(previous)) = (checkpoint.prev, self.previous_checkpoint)
            && named != previous
        {
            return Err(startup::not_followed(named.seq, seq));
        }
        let this = Prev::of(seq, text);
        self.checkpoints += 1;
        self.newest_checkpoint = seq;
        self.previous_checkpoint = Some(this);
        self.last_checkpoint = this;
        self.last_cadence = checkpoint.cadence;
        self.gap_first = None;
        Ok(())
    }

    /// The checkpoint's text: it says `seq`, signs `hash`, and carries the key's
    /// signature.
    fn checkpoint_text(
        &mut self,
        seq: u64,
        hash: &[u8; 32],
        text: &str,
    ) -> Result<Checkpoint, String> {
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
        let key = self.key()?;
        checkpoint
            .check_signature(text, key)
            .map_err(|problem| format!("the checkpoint: {problem}"))?;
        Ok(checkpoint)
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
