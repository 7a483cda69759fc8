//! Retention for a log in segment files: whole segments older than the retention
//! period move from `DATA_DIR/chain` to `DATA_DIR/archive/chain`, unchanged (a
//! rename on the same file system), so the history still verifies as one chain
//! ([`walk`](super::walk) reads both directories), and their events leave the index
//! (search, reports) as archived events leave the SQLite log.
//!
//! A segment moves when it is not the newest (the writer appends to that one), it
//! ends on a signed checkpoint (every full segment does), and its last event is
//! older than the cutoff — oldest first, stopping at the first that may not move,
//! so the archive is always the chain's beginning. Segments are never deleted here:
//! disposing of them is a decision for people. Safe while the gateway runs.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::super::AuditError;
use super::super::retention::{ArchivedSegment, Retention};
use super::super::sqlite::AUDIT_FILE;
use super::format::{self, Frames, HEADER_LEN, Record};
use super::walk::body_time_ms;

/// How long the index's update waits for the indexer's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
    move |source| AuditError::Io { what, source }
}

/// The last event of a segment's bytes (seq and time in ms), if the segment ends on
/// the checkpoint that signs it.
fn signed_end(bytes: &[u8]) -> Option<(u64, i64)> {
    let mut last_event = None;
    let mut ends_signed = false;
    for frame in Frames::new(bytes, HEADER_LEN) {
        match frame.ok()? {
            Record::Event { seq, body, .. } => {
                last_event = Some((seq, body_time_ms(body)?));
                ends_signed = false;
            }
            Record::Checkpoint { seq, .. } => {
                ends_signed = last_event.is_some_and(|(last, _)| last == seq);
            }
        }
    }
    last_event.filter(|_| ends_signed)
}

/// Moves the segments older than `retention` allows into the archive (see the
/// module docs); the ones moved, oldest first. Blocking.
pub(super) fn archive(
    data_dir: &Path,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Vec<ArchivedSegment>, AuditError> {
    retention.check()?;
    let Some(cutoff) = now.checked_sub_signed(TimeDelta::days(i64::from(retention.keep_days)))
    else {
        return Ok(Vec::new());
    };
    let cutoff_ms = cutoff.timestamp_millis();
    let chain_dir = data_dir.join(format::DIR);
    let live = format::list(&chain_dir).map_err(io("cannot list the audit segments"))?;
    let archive_dir = data_dir.join(format::ARCHIVE_DIR);
    let mut moved = Vec::new();
    for segment in live.iter().take(live.len().saturating_sub(1)) {
        let bytes = std::fs::read(&segment.path).map_err(io("cannot read an audit segment"))?;
        let Some((last_seq, last_ms)) = signed_end(&bytes) else {
            break;
        };
        if last_ms >= cutoff_ms {
            break;
        }
        if moved.is_empty() {
            crate::datadir::create_dir(&archive_dir)
                .map_err(io("cannot create the audit archive directory"))?;
        }
        let Some(name) = segment.path.file_name() else {
            break;
        };
        let target = archive_dir.join(name);
        if target.exists() {
            return Err(AuditError::Backend(format!(
                "the archive already holds a segment starting at seq {}; leaving both in place",
                segment.first_seq
            )));
        }
        std::fs::rename(&segment.path, &target).map_err(io("cannot move a segment"))?;
        moved.push(ArchivedSegment {
            path: target,
            first_seq: segment.first_seq,
            last_seq,
            events: last_seq + 1 - segment.first_seq,
        });
    }
    let Some(last) = moved.last() else {
        return Ok(moved);
    };
    super::writer::sync_dir(&archive_dir)?;
    super::writer::sync_dir(&chain_dir)?;
    forget(data_dir, last.last_seq)?;
    Ok(moved)
}

/// Takes the events up to `last_seq` out of the index (their checkpoints stay: the
/// witnesses' feed reads them), and notes that they are out for the indexer.
fn forget(data_dir: &Path, last_seq: u64) -> Result<(), AuditError> {
    let path = data_dir.join(AUDIT_FILE);
    if !path.exists() {
        return Ok(());
    }
    let conn = crate::sqlite::connect(&path, BUSY_TIMEOUT)?;
    let last = i64::try_from(last_seq).unwrap_or(i64::MAX);
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // Noted in the same transaction, so that the indexer never puts back an event it
    // was still gathering when its segment moved.
    let deleted = conn
        .execute("DELETE FROM linked_subjects WHERE seq <= ?1", [last])
        .and_then(|_| conn.execute("DELETE FROM events WHERE seq <= ?1", [last]))
        .and_then(|_| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('archived_through', ?1)
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value
                   WHERE CAST(excluded.value AS INTEGER) > CAST(meta.value AS INTEGER)",
                [last.to_string()],
            )
        });
    match deleted {
        Ok(_) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}
