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

use std::fmt;
use std::iter::Peekable;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row};

use super::chain::{GENESIS, link_hash, parse_hash};
use super::checkpoint::{Checkpoint, public_key};
use super::event::{AuditEvent, Columns};
use super::retention::{SEGMENT_FORMAT, SegmentFile, segment_files};
use super::sqlite::{AUDIT_FILE, KEY_FILE, open_read_only};

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
    let conn = open_read_only(&data_dir.join(AUDIT_FILE))
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
    let mut chain = Chain::new(data_dir.join(KEY_FILE), 1, GENESIS);
    for segment in &segments {
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
    chain.live(&conn, live_first, segments.last())?;
    integrity_check(&conn)?;
    let last_seq = chain.next - 1;
    Ok(VerifyReport {
        events: last_seq,
        checkpoints: chain.checkpoints,
        last_seq,
        last_hash: hex::encode(chain.prev),
    })
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

/// One stored row of `events`.
struct Stored {
    seq: i64,
    columns: Columns,
    status: i64,
    body: Vec<u8>,
    prev_hash: String,
    hash: String,
}

impl Stored {
    fn read(row: &Row<'_>) -> rusqlite::Result<Stored> {
        Ok(Stored {
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
                status: 0,
            },
            status: row.get(9)?,
            body: row.get_ref(10)?.as_bytes()?.to_vec(),
            prev_hash: row.get(11)?,
            hash: row.get(12)?,
        })
    }
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
        let conn = open_read_only(&segment.path)
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
        let last_checkpoint = self.file(&conn, None).map_err(|failure| {
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
        integrity_check(&conn).map_err(|failure| here(first, failure.problem))
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
            .map_err(|e| self.unreadable(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.unreadable(e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.unreadable(e)),
            };
            let stored = Stored::read(row).map_err(|e| self.unreadable(e))?;
            if let Some(at) = self.event(stored, &mut checkpoints, must_reach)? {
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

    fn unreadable(&self, e: rusqlite::Error) -> VerifyFailure {
        broken(
            Some(self.next),
            format!("event {} cannot be read: {e}", self.next),
        )
    }

    /// Checks one event and the checkpoints up to it; returns the sequence number of
    /// the checkpoint checked at it, if any.
    fn event(
        &mut self,
        stored: Stored,
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
        if stored.prev_hash != hex::encode(self.prev) {
            return Err(here(format!(
                "the stored previous hash is not the hash of event {}",
                seq - 1
            )));
        }
        let hash = link_hash(seq, &self.prev, &stored.body);
        if stored.hash != hex::encode(hash) {
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
        let event: AuditEvent = serde_json::from_slice(&stored.body)
            .map_err(|_| here("the stored body is not an audit event".into()))?;
        let expected = Columns::of(&event);
        let columns = Columns {
            status: u16::try_from(stored.status).unwrap_or(u16::MAX),
            ..stored.columns
        };
        if columns != expected || i64::from(expected.status) != stored.status {
            return Err(here(
                "the search columns do not say what the body says".into(),
            ));
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
