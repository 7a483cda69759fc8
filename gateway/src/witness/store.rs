//! What a witness keeps: `DATA_DIR/witness.db` (SQLite, WAL, `synchronous=FULL`),
//! one row per checkpoint received, per log (a log is its kind and checkpoint key,
//! filed under [`log_name`]), append only — triggers refuse every `UPDATE` and
//! `DELETE` — and the rule a new checkpoint must pass to be kept
//! ([`WitnessStore::submit`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::entry::{Entry, log_name};
use crate::audit::checkpoint::{Prev, WitnessedKind};

/// The witness database's file name inside its data directory.
pub const WITNESS_FILE: &str = "witness.db";

/// The store's schema. Version 1 uses `IF NOT EXISTS` because witnesses before
/// versioned migrations created it without a version.
const SCHEMA: crate::sqlite::Schema = crate::sqlite::Schema {
    name: "witness",
    migrations: &[MIGRATION_1],
};

const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    log_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    text TEXT NOT NULL,
    client TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (log_key, seq)
) STRICT;
CREATE TRIGGER IF NOT EXISTS checkpoints_are_kept_unchanged
    BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'witnessed checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_are_never_removed
    BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'witnessed checkpoints are append-only'); END;
";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the witness store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the witness data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("the witness database schema: {0}")]
    Schema(String),
}

/// A checkpoint already checked for its form and signature, on its way in.
#[derive(Debug, Clone)]
pub struct Submission {
    pub text: String,
    pub entry: Entry,
}

/// What became of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Newly kept.
    pub accepted: u64,
    /// Already held, the very same text (a sender retrying).
    pub already_held: u64,
    /// The log's head after it: seq and hash.
    pub head: Option<(u64, String)>,
    /// The first checkpoint refused, and why (the ones before it are kept).
    pub refused: Option<(u64, String)>,
}

/// The witness's store. Each call opens a connection of its own (a witness is called
/// rarely); writers take SQLite's write lock (`BEGIN IMMEDIATE`) and wait for each
/// other up to [`BUSY_TIMEOUT`]. Blocking: call it off the async workers.
#[derive(Debug)]
pub struct WitnessStore {
    path: PathBuf,
}

/// How long a call waits for another's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl WitnessStore {
    /// Opens (creating if needed) `DATA_DIR/witness.db`. Blocking.
    pub fn open(data_dir: &Path) -> Result<WitnessStore, StoreError> {
        let opened = crate::sqlite::open(
            &data_dir.join(WITNESS_FILE),
            &SCHEMA,
            crate::sqlite::Journal::PreferWal,
            BUSY_TIMEOUT,
        )
        .map_err(|e| match e {
            crate::sqlite::OpenError::Create { source, .. } => StoreError::Io(source),
            crate::sqlite::OpenError::Sqlite(e) => StoreError::Sqlite(e),
            other => StoreError::Schema(other.to_string()),
        })?;
        Ok(WitnessStore { path: opened.path })
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        Ok(crate::sqlite::connect(&self.path, BUSY_TIMEOUT)?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps each checkpoint of `submissions` (all of the log of `kind` and `log_key`, in order) that
    /// extends what the witness holds for that log, as `client`; stops at the first
    /// that does not. A checkpoint extends the head when it has a larger seq, a time
    /// not before the head's, and names the head as its previous checkpoint (seq and
    /// SHA-256 of its text). The first checkpoint of a log is kept as it comes. The
    /// very same text as one already held is counted as held, not refused. Blocking.
    pub fn submit(
        &self,
        kind: WitnessedKind,
        log_key: &[u8],
        submissions: &[Submission],
        client: &str,
    ) -> Result<Outcome, StoreError> {
        let log = log_name(kind, log_key);
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = read_head(&tx, &log)?;
        let mut outcome = Outcome {
            accepted: 0,
            already_held: 0,
            head: None,
            refused: None,
        };
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for submission in submissions {
            let checkpoint = &submission.entry;
            let held: Option<String> = tx
                .query_row(
                    "SELECT text FROM checkpoints WHERE log_key = ?1 AND seq = ?2",
                    params![log, to_sql(checkpoint.seq)],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(held) = held {
                if held == submission.text {
                    outcome.already_held += 1;
                    continue;
                }
                outcome.refused = Some((
                    checkpoint.seq,
                    format!(
                        "a different checkpoint for seq {} is already held: the log forked",
                        checkpoint.seq
                    ),
                ));
                break;
            }
            if let Some(problem) = head.as_ref().and_then(|head| extends(head, checkpoint)) {
                outcome.refused = Some((checkpoint.seq, problem));
                break;
            }
            tx.execute(
                "INSERT INTO checkpoints (log_key, seq, hash, time, text, client, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    log,
                    to_sql(checkpoint.seq),
                    checkpoint.hash,
                    checkpoint.time,
                    submission.text,
                    client,
                    received_at
                ],
            )?;
            outcome.accepted += 1;
            head = Some(Head {
                seq: checkpoint.seq,
                time_ms: checkpoint.time_ms,
                prev: Prev::of(checkpoint.seq, &submission.text),
                hash: checkpoint.hash.clone(),
            });
        }
        tx.commit()?;
        outcome.head = head.map(|head| (head.seq, head.hash));
        Ok(outcome)
    }

    /// The newest checkpoint held for the log of `kind` and `log_key`. Blocking.
    pub fn head(&self, kind: WitnessedKind, log_key: &[u8]) -> Result<Option<String>, StoreError> {
        let conn = self.connect()?;
        Ok(conn
            .query_row(
                "SELECT text FROM checkpoints WHERE log_key = ?1 ORDER BY seq DESC LIMIT 1",
                [log_name(kind, log_key)],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// The checkpoints held for the log of `kind` and `log_key` after seq `after`,
    /// oldest first, at most `limit`. Blocking.
    pub fn after(
        &self,
        kind: WitnessedKind,
        log_key: &[u8],
        after: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.connect()?;
        let mut stmt = conn.prepare(
            "SELECT text FROM checkpoints WHERE log_key = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                log_name(kind, log_key),
                to_sql(after),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |row| row.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The head of a log, as the rule needs it.
struct Head {
    seq: u64,
    time_ms: i64,
    prev: Prev,
    hash: String,
}

fn read_head(conn: &Connection, log: &str) -> Result<Option<Head>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT text FROM checkpoints WHERE log_key = ?1 ORDER BY seq DESC LIMIT 1",
            [log],
            |row| row.get(0),
        )
        .optional()?;
    // What the witness stored, it checked: a text that no longer reads is no head.
    Ok(text.and_then(|text| {
        let entry = Entry::parse(&text).ok()?;
        Some(Head {
            seq: entry.seq,
            time_ms: entry.time_ms,
            prev: Prev::of(entry.seq, &text),
            hash: entry.hash,
        })
    }))
}

/// Why `checkpoint` does not extend `head`, if it does not.
fn extends(head: &Head, checkpoint: &Entry) -> Option<String> {
    if checkpoint.seq <= head.seq {
        return Some(format!(
            "seq {} is not after the head the witness holds (seq {})",
            checkpoint.seq, head.seq
        ));
    }
    if checkpoint.time_ms < head.time_ms {
        return Some(format!(
            "its time is before the time of the head the witness holds (seq {})",
            head.seq
        ));
    }
    let prev = checkpoint.prev;
    if prev == head.prev {
        None
    } else if prev.seq == head.seq {
        Some(format!(
            "it names a previous checkpoint at seq {} other than the one the witness holds: \
             the log forked",
            prev.seq
        ))
    } else {
        Some(format!(
            "it follows seq {}, but the head the witness holds is seq {}",
            prev.seq, head.seq
        ))
    }
}

fn to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
