//! The check the writer runs on the live log before it signs anything
//! ([`check_before_writing`]): what signing over the log depends on, at a cost that
//! does not grow with the log's events (only with its checkpoints), so that the
//! gateway refuses a stripped or forged log at start instead of signing a fresh
//! checkpoint over it.
//!
//! - Every checkpoint is authentic for the key: the newest one's signature is
//!   checked, and each earlier one is held by the next one's `prev` (the SHA-256 of
//!   its text) or, for a v1 checkpoint, by its own signature.
//! - Each checkpoint's hash is the stored hash of its event (the anchor a live log
//!   continues from after archiving: the stored previous hash of its first event).
//! - The checkpoints follow the [cadence](super::super::cadence): no gap holds more
//!   events than the count rule allows, and the last event of a gap is no later than
//!   its first allows.
//! - The unsigned tail chains on from the newest checkpoint, event by event (hash,
//!   previous hash, body and columns), and obeys the cadence too.
//!
//! What it does not read is every event before the newest checkpoint: an event
//! altered there without recomputing the chain still fails `gateway audit verify`
//! (its stored hash is no longer its body's), and recomputing the chain through a
//! checkpoint changes the hash that checkpoint signs, which is checked here. So no
//! signature the gateway makes can cover an alteration that verify would not name.

use rusqlite::{Connection, OptionalExtension};

use super::super::cadence::{Cadence, missing_by_count, missing_by_time, time_ms};
use super::super::chain::{GENESIS, link_hash, parse_hash};
use super::super::checkpoint::{Checkpoint, Prev, text_sha256};
use super::body::{self, BodyCheck};
use super::{Stored, VerifyFailure, broken, hex64};

/// What the check found: the newest checkpoint (which the next one must name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) newest: Prev,
}

/// One stored checkpoint, parsed.
struct StoredCheckpoint {
    seq: u64,
    text: String,
    checkpoint: Checkpoint,
}

/// Checks the live log on `conn` (see the module docs) against `cadence` (the
/// configured one; checkpoints may loosen it) and the checkpoint key `key` (raw).
pub(crate) fn check_before_writing(
    conn: &Connection,
    cadence: &Cadence,
    key: &[u8],
) -> Result<Checked, VerifyFailure> {
    let unreadable = |e: rusqlite::Error| broken(None, format!("cannot read the audit log: {e}"));
    let (first, head): (Option<i64>, Option<i64>) = conn
        .query_row("SELECT min(seq), max(seq) FROM events", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(unreadable)?;
    let first = first.map_or(0, |seq| u64::try_from(seq).unwrap_or(0));
    let head = head.map_or(0, |seq| u64::try_from(seq).unwrap_or(0));
    let checkpoints = read(conn)?;
    authenticate(&checkpoints, key, first)?;

    // Each checkpoint against its event; the gaps between them.
    let mut newest = Prev::NONE;
    let mut newest_cadence: Option<Cadence> = None;
    let mut chain_hash = GENESIS;
    for (i, stored) in checkpoints.iter().enumerate() {
        let seq = stored.seq;
        if seq > head {
            return Err(broken(
                Some(seq),
                format!("the checkpoint at seq {seq} signs an event that is not in the log"),
            ));
        }
        let is_anchor = i == 0 && first > 1 && seq == first - 1;
        let stored_hash = if is_anchor {
            event_row(conn, first)?.prev_hash
        } else if seq < first {
            return Err(broken(
                Some(seq),
                format!("the checkpoint at seq {seq} signs an event that is not in the log"),
            ));
        } else {
            event_row(conn, seq)?.hash
        };
        if stored_hash != stored.checkpoint.hash {
            return Err(broken(
                Some(seq),
                "the checkpoint's hash is not the hash of its event",
            ));
        }
        if !is_anchor {
            let gap =
                cadence.loosened_by([newest_cadence.as_ref(), stored.checkpoint.cadence.as_ref()]);
            check_gap(conn, newest.seq, seq, &gap)?;
        }
        newest = Prev::of(seq, &stored.text);
        newest_cadence = stored.checkpoint.cadence;
        chain_hash = parse_hash(&stored.checkpoint.hash).unwrap_or(GENESIS);
    }
    if newest.seq == 0 && first > 1 {
        return Err(broken(
            Some(first),
            format!("the live log starts at seq {first} without the checkpoint it continues from"),
        ));
    }
    let tail_cadence = cadence.loosened_by([newest_cadence.as_ref()]);
    check_tail(conn, newest.seq, chain_hash, head, &tail_cadence)?;
    Ok(Checked { newest })
}

fn read(conn: &Connection) -> Result<Vec<StoredCheckpoint>, VerifyFailure> {
    let mut checkpoints = Vec::new();
    for (seq, text) in super::read_checkpoints(conn)? {
        let checkpoint = Checkpoint::parse(&text)
            .map_err(|problem| broken(Some(seq), format!("the checkpoint: {problem}")))?;
        if checkpoint.seq != seq {
            return Err(broken(
                Some(seq),
                format!(
                    "the checkpoint stored at seq {seq} says seq {}",
                    checkpoint.seq
                ),
            ));
        }
        checkpoints.push(StoredCheckpoint {
            seq,
            text,
            checkpoint,
        });
    }
    Ok(checkpoints)
}

/// The newest checkpoint by its signature, each earlier one by the next one's
/// `prev` or (v1) its own signature. `first`: the live log's first event.
fn authenticate(
    checkpoints: &[StoredCheckpoint],
    key: &[u8],
    first: u64,
) -> Result<(), VerifyFailure> {
    let Some(newest) = checkpoints.last() else {
        return Ok(());
    };
    let signed = |stored: &StoredCheckpoint| {
        stored
            .checkpoint
            .check_signature(&stored.text, key)
            .map_err(|problem| broken(Some(stored.seq), format!("the checkpoint: {problem}")))
    };
    signed(newest)?;
    for pair in checkpoints.windows(2).rev() {
        let [earlier, later] = pair else { continue };
        match later.checkpoint.prev {
            Some(prev) => {
                if prev.seq != earlier.seq || prev.text_sha256 != text_sha256(&earlier.text) {
                    return Err(not_followed(prev.seq, later.seq));
                }
                if earlier.checkpoint.key != key {
                    return Err(broken(
                        Some(earlier.seq),
                        "the checkpoint: the checkpoint names another key than the log's",
                    ));
                }
            }
            None => signed(earlier)?,
        }
    }
    // Without an archive, the first checkpoint is the log's first.
    if let Some(oldest) = checkpoints.first()
        && first <= 1
        && let Some(prev) = oldest.checkpoint.prev
        && prev != Prev::NONE
    {
        return Err(not_followed(prev.seq, oldest.seq));
    }
    Ok(())
}

/// The checkpoint at `later` names one at `prev` that the log does not hold.
pub(crate) fn not_followed(prev: u64, later: u64) -> VerifyFailure {
    broken(
        Some(prev),
        format!(
            "the checkpoint at seq {later} follows a checkpoint at seq {prev} that is not in \
             the log as it was signed (checkpoints were removed or replaced)"
        ),
    )
}

/// The columns of one event the check reads.
struct EventRow {
    hash: String,
    prev_hash: String,
    time: String,
}

fn event_row(conn: &Connection, seq: u64) -> Result<EventRow, VerifyFailure> {
    let row = conn
        .prepare_cached("SELECT hash, prev_hash, time FROM events WHERE seq = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([i64::try_from(seq).unwrap_or(i64::MAX)], |row| {
                Ok(EventRow {
                    hash: row.get(0)?,
                    prev_hash: row.get(1)?,
                    time: row.get(2)?,
                })
            })
            .optional()
        })
        .map_err(|e| broken(Some(seq), format!("event {seq} cannot be read: {e}")))?;
    row.ok_or_else(|| broken(Some(seq), format!("event {seq} is missing")))
}

fn event_time(conn: &Connection, seq: u64) -> Result<i64, VerifyFailure> {
    let row = event_row(conn, seq)?;
    time_ms(&row.time).ok_or_else(|| broken(Some(seq), "the event's time is not RFC 3339"))
}

/// The gap `after+1..=at` closed by the checkpoint at `at`.
fn check_gap(
    conn: &Connection,
    after: u64,
    at: u64,
    cadence: &Cadence,
) -> Result<(), VerifyFailure> {
    if cadence.due_by_count(after, at.saturating_sub(1)) {
        let missing = after + cadence.every_events;
        return Err(broken(
            Some(missing),
            missing_by_count(after, missing, cadence),
        ));
    }
    let first = after + 1;
    let first_ms = event_time(conn, first)?;
    let last_ms = event_time(conn, at)?;
    if last_ms > cadence.latest_ms(first_ms) {
        return Err(broken(
            Some(at),
            missing_by_time(first, at, last_ms - first_ms, cadence),
        ));
    }
    Ok(())
}

/// The events after the newest checkpoint (`after`, whose hash is `prev`) up to
/// `head`: chained on, each a sound event, within the cadence.
fn check_tail(
    conn: &Connection,
    after: u64,
    mut prev: [u8; 32],
    head: u64,
    cadence: &Cadence,
) -> Result<(), VerifyFailure> {
    if head <= after {
        return Ok(());
    }
    if cadence.due_by_count(after, head) {
        let missing = after + cadence.every_events;
        return Err(broken(
            Some(missing),
            missing_by_count(after, missing, cadence),
        ));
    }
    let unreadable = |seq: u64, e: rusqlite::Error| {
        broken(Some(seq), format!("event {seq} cannot be read: {e}"))
    };
    let mut stmt = conn
        .prepare(
            "SELECT seq, event_id, time, request_id, user, township, connector, purpose,
                    subject_pseudonym, status, body, prev_hash, hash
               FROM events WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(|e| unreadable(after + 1, e))?;
    let mut rows = stmt
        .query([i64::try_from(after).unwrap_or(i64::MAX)])
        .map_err(|e| unreadable(after + 1, e))?;
    let mut next = after + 1;
    let mut first_ms = None;
    while let Some(row) = rows.next().map_err(|e| unreadable(next, e))? {
        let stored = Stored::read(row).map_err(|e| unreadable(next, e))?;
        let seq = next;
        let here = |problem: &str| broken(Some(seq), format!("{problem} (in the unsigned tail)"));
        if stored.seq != i64::try_from(seq).unwrap_or(-1) {
            return Err(here(&format!("event {seq} is missing or out of order")));
        }
        if stored.prev_hash.as_bytes() != hex64(&prev) {
            return Err(here(&format!(
                "the stored previous hash is not the hash of event {}",
                seq - 1
            )));
        }
        let hash = link_hash(seq, &prev, stored.body);
        if stored.hash.as_bytes() != hex64(&hash) {
            return Err(here(
                "the stored hash is not the hash of the stored body and its predecessor",
            ));
        }
        match body::check(stored.body, &stored.columns) {
            BodyCheck::Matches => {}
            BodyCheck::NotAnEvent => return Err(here("the stored body is not an audit event")),
            BodyCheck::ColumnsDiffer => {
                return Err(here("the search columns do not say what the body says"));
            }
        }
        let time =
            time_ms(stored.columns.time).ok_or_else(|| here("the event's time is not RFC 3339"))?;
        let first = *first_ms.get_or_insert(time);
        if time > cadence.latest_ms(first) {
            return Err(broken(
                Some(seq),
                missing_by_time(after + 1, seq, time - first, cadence),
            ));
        }
        prev = hash;
        next = seq + 1;
    }
    Ok(())
}
