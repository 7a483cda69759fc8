//! The offline check behind `gateway audit verify`: walks the whole log in sequence
//! order, recomputes the hash chain from the stored bodies, checks every checkpoint's
//! signature and hash, and names the first sequence number where the log is broken.
//!
//! Per event, in this order: its sequence number is the next one (a gap means deleted
//! events; the first missing number is named); its stored previous hash is the hash of
//! the event before; its stored hash is the hash recomputed from the body; the body is
//! an audit event and the search columns say what the body says; and a checkpoint at
//! that sequence number names it, its hash, the log's key, and carries a valid
//! signature. A checkpoint without its event (a cut-off tail) is named by its
//! sequence number. Finally SQLite's integrity check must pass (indexes, free pages).
//! A database that cannot be read is a failure at the first event it cannot read.

use std::fmt;
use std::iter::Peekable;
use std::path::Path;

use rusqlite::{Connection, Row};

use super::chain::{GENESIS, link_hash};
use super::checkpoint::{Checkpoint, public_key};
use super::event::{AuditEvent, Columns};
use super::sqlite::{AUDIT_FILE, KEY_FILE, open_read_only};

/// What a successful check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
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

/// Checks the log in `data_dir` (opened read-only, in one snapshot, so it may run
/// while the gateway writes). Blocking.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, VerifyFailure> {
    let conn = open_read_only(&data_dir.join(AUDIT_FILE))
        .map_err(|e| broken(None, format!("cannot open the audit database: {e}")))?;
    conn.execute_batch("BEGIN")
        .map_err(|e| broken(None, format!("cannot read the audit database: {e}")))?;
    let checkpoints = read_checkpoints(&conn)?;
    let checkpoint_count = checkpoints.len() as u64;
    let mut walk = Walk {
        key_path: data_dir.join(KEY_FILE),
        key: None,
        checkpoints: checkpoints.into_iter().peekable(),
        next: 1,
        prev: GENESIS,
    };
    walk.events(&conn)?;
    if let Some((seq, _)) = walk.checkpoints.next() {
        return Err(broken(
            Some(seq),
            format!("the checkpoint at seq {seq} signs an event that is not in the log"),
        ));
    }
    integrity_check(&conn)?;
    let last_seq = walk.next - 1;
    Ok(VerifyReport {
        events: last_seq,
        checkpoints: checkpoint_count,
        last_seq,
        last_hash: hex::encode(walk.prev),
    })
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

/// The walk's state: the next expected sequence number and the hash before it.
struct Walk {
    key_path: std::path::PathBuf,
    key: Option<Vec<u8>>,
    checkpoints: Peekable<std::vec::IntoIter<(u64, String)>>,
    next: u64,
    prev: [u8; 32],
}

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

impl Walk {
    fn events(&mut self, conn: &Connection) -> Result<(), VerifyFailure> {
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
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.unreadable(e)),
            };
            let stored = Stored::read(row).map_err(|e| self.unreadable(e))?;
            self.event(stored)?;
        }
    }

    fn unreadable(&self, e: rusqlite::Error) -> VerifyFailure {
        broken(
            Some(self.next),
            format!("event {} cannot be read: {e}", self.next),
        )
    }

    fn event(&mut self, stored: Stored) -> Result<(), VerifyFailure> {
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
        while let Some((at, text)) = self.checkpoints.next_if(|(at, _)| *at <= seq) {
            if at < seq {
                return Err(broken(
                    Some(at),
                    format!("the checkpoint at seq {at} signs an event that is not in the log"),
                ));
            }
            self.checkpoint(seq, &hash, &text).map_err(here)?;
        }
        self.prev = hash;
        self.next = seq + 1;
        Ok(())
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
            .map_err(|problem| format!("the checkpoint: {problem}"))
    }
}
