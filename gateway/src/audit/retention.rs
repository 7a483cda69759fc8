//! Retention: moving events older than the retention period out of the live log into
//! archive segments, so the live `audit.db` stays small while the whole history —
//! archived and live — still verifies as one hash chain ([`verify()`](super::verify())). Processing
//! records are kept at least three years (PIPL art. 56), so the period defaults to
//! [`DEFAULT_KEEP_DAYS`] and a shorter one is refused unless asked for explicitly.
//! Segments are never deleted here: disposing of them is a decision for people.
//!
//! # The segment format (what a second party can re-implement)
//!
//! A segment is the file `DATA_DIR/archive/audit-<first>-<last>.db`, `<first>` and
//! `<last>` the sequence numbers of its first and last event in plain decimal (no
//! leading zeros). It is an SQLite database in rollback-journal mode (one
//! self-contained file), written once and then made read-only, with three tables:
//!
//! - `meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`: `segment_format` =
//!   `county-gateway audit segment v1`, `schema_version` (the live log's schema its
//!   rows follow, `1`), `first_seq`, `last_seq`, and `archived_at` (RFC 3339 UTC);
//! - `events`: the live log's `events` table, same columns and indexes, holding the
//!   events `first..=last` exactly as the live log stored them — canonical body,
//!   `prev_hash` and `hash` unchanged, so the chain simply runs on: the first event's
//!   `prev_hash` is the hash of the previous segment's last event (the genesis hash
//!   for seq 1), and the live log's first event's `prev_hash` is the hash of the
//!   newest segment's last event;
//! - `checkpoints`: the live log's checkpoints with a seq in `first..=last`. A segment
//!   always ends on a signed checkpoint: the one at `last` is always there.
//!
//! The live log keeps that last checkpoint too, as the anchor it continues from: it
//! signs the head the live log's first event chains on, `gateway audit checkpoint`
//! keeps printing the newest signed head, and the writer keeps counting events from
//! it (and keeps refusing to make a new key for a log that has signed checkpoints).
//! The live log also always keeps its newest event, which the writer chains the next
//! event on.
//!
//! # An archive run
//!
//! 1. Take `archive/.lock` (an SQLite exclusive lock, which the operating system
//!    releases if the process dies): one run at a time.
//! 2. If the live log still holds events of the newest segment (a run stopped between
//!    steps 4 and 5), check that segment and finish step 5 for it.
//! 3. In one read snapshot of the live log: the range starts right after the newest
//!    segment (at seq 1 without one), where the live log must start. It ends at the
//!    newest checkpoint up to which every event is older than the cutoff, the newest
//!    event excluded. Nothing to archive → nothing happens.
//! 4. Copy the range into `archive/.audit-<first>-<last>.db.partial`, commit it
//!    (`synchronous=FULL`), check it with the verifier (it chains on from the previous
//!    segment and ends on a checkpoint signed with the log's key: a broken chain is
//!    never archived), make it read-only, rename it into place, sync the directory.
//! 5. In one `BEGIN IMMEDIATE` transaction on the live log: check that it still holds
//!    the range unchanged (no gap, the same hash at its last event), delete those
//!    events and the checkpoints before the last one, commit.
//!
//! The writer only appends after the head, which is never archived, so a run may go
//! on while the gateway serves; the writer waits (its busy timeout) only while step 5
//! deletes. Run it often (daily) so that each run moves a day's worth of events.
//! A crash between steps 4 and 5 leaves the events in both places; the verifier
//! accepts that (both copies must be the same chain) and the next run finishes it.

use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::types::Value;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params,
    params_from_iter,
};

use super::AuditError;
use super::chain::{GENESIS, parse_hash};
use super::sqlite::{AUDIT_FILE, KEY_FILE, SCHEMA_VERSION, open_read_only};
use super::verify::check_segment;

/// The archive's directory inside the data directory.
pub const ARCHIVE_DIR: &str = "archive";

/// The default and shortest retention period: three years (and a leap day).
pub const DEFAULT_KEEP_DAYS: u32 = 1096;

/// The `segment_format` a segment's `meta` table names.
pub const SEGMENT_FORMAT: &str = "county-gateway audit segment v1";

/// The lock file of archive runs, inside the archive directory.
const LOCK_FILE: &str = ".lock";

/// How long step 5 waits for a gap between the writer's transactions. An archive run
/// is maintenance, not a lookup: under a steady stream of appends on a busy machine
/// SQLite's busy handler can miss the gaps for seconds (a fresh-clone CI run failed
/// at 2 s), so it waits long enough for any burst to pass.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The columns of `events`, in the live schema's order.
const EVENT_COLUMNS: &str = "seq, event_id, time, request_id, user, township, connector, \
                             purpose, subject_pseudonym, status, body, prev_hash, hash";

/// A segment's own table; its `events` and `checkpoints` are the live log's
/// (schema version 1, from the same migration, so the two never drift apart).
const SEGMENT_META: &str = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;";

/// What an archive run did: the segment it wrote (or finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub path: PathBuf,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Events in the segment (`last_seq - first_seq + 1`).
    pub events: u64,
}

/// How long events stay in the live log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this many days are archived.
    pub keep_days: u32,
    /// Allows a period shorter than [`DEFAULT_KEEP_DAYS`] (for tests).
    pub allow_short: bool,
}

impl Retention {
    /// Refuses a period shorter than [`DEFAULT_KEEP_DAYS`] unless `allow_short`.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.keep_days < DEFAULT_KEEP_DAYS && !self.allow_short {
            return Err(AuditError::Io {
                what: "the audit retention period is too short",
                source: io::Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} days; processing records are kept at least {DEFAULT_KEEP_DAYS} \
                         days (three years)",
                        self.keep_days
                    ),
                ),
            });
        }
        Ok(())
    }
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            keep_days: DEFAULT_KEEP_DAYS,
            allow_short: false,
        }
    }
}

/// Moves every event older than `keep_days` (default 1096 ≈ 3 years; less than 1096
/// is refused, see [`archive_with`]) out of the live log into an archive segment file
/// `DATA_DIR/archive/audit-<first seq>-<last seq>.db`, ending at a checkpoint
/// boundary (archive only up to the newest checkpoint whose seq's event, and every
/// event before it, is older than the cutoff, so the segment ends on a signed
/// checkpoint), copying those events and the checkpoints inside the range, then
/// deleting them from the live db in one transaction. Returns what it did: `None`
/// when nothing was old enough. Safe while the writer appends. Blocking.
pub fn archive(
    data_dir: &Path,
    keep_days: u32,
    now: DateTime<Utc>,
) -> Result<Option<ArchivedSegment>, AuditError> {
    archive_with(
        data_dir,
        Retention {
            keep_days,
            allow_short: false,
        },
        now,
    )
}

/// [`archive`] with a [`Retention`]: a period shorter than [`DEFAULT_KEEP_DAYS`] is
/// refused unless `allow_short` is set. When the run finished an interrupted one and
/// found nothing more to move, that finished segment is returned.
pub fn archive_with(
    data_dir: &Path,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Option<ArchivedSegment>, AuditError> {
    retention.check()?;
    let mut live = open_live(&data_dir.join(AUDIT_FILE))?;
    let dir = data_dir.join(ARCHIVE_DIR);
    create_dir(&dir)?;
    let _lock = ArchiveLock::take(&dir)?;
    let key_path = data_dir.join(KEY_FILE);
    let segments = segment_files(data_dir).map_err(|source| AuditError::Io {
        what: "cannot list the audit archive",
        source,
    })?;
    let mut finished = None;
    let (next, prev) = match segments.split_last() {
        None => (1, GENESIS),
        Some((newest, older)) => {
            if live_first(&live)?.is_some_and(|first| first <= newest.last) {
                let before = match older.last() {
                    Some(segment) => segment_tail(segment)?,
                    None => GENESIS,
                };
                let hash = check_segment(newest, before, &key_path).map_err(|failure| {
                    invalid(
                        "the newest audit archive segment does not verify; nothing was removed",
                        failure.to_string(),
                    )
                })?;
                remove_archived(&mut live, newest, &hash)?;
                tracing::info!(
                    first_seq = newest.first,
                    last_seq = newest.last,
                    "finished an interrupted audit archive run"
                );
                finished = Some(ArchivedSegment::of(newest));
            }
            (newest.last + 1, segment_tail(newest)?)
        }
    };
    // A cutoff before the calendar's start: nothing is old enough.
    let Some(cutoff) = now.checked_sub_signed(TimeDelta::days(i64::from(retention.keep_days)))
    else {
        return Ok(finished);
    };
    let Some((segment, hash)) = copy_old_events(&mut live, data_dir, next, prev, cutoff, now)?
    else {
        return Ok(finished);
    };
    remove_archived(&mut live, &segment, &hash)?;
    tracing::info!(
        first_seq = segment.first,
        last_seq = segment.last,
        "archived old audit events"
    );
    Ok(Some(ArchivedSegment::of(&segment)))
}

impl ArchivedSegment {
    fn of(segment: &SegmentFile) -> ArchivedSegment {
        ArchivedSegment {
            path: segment.path.clone(),
            first_seq: segment.first,
            last_seq: segment.last,
            events: segment.last - segment.first + 1,
        }
    }
}

/// A segment file found in the archive directory (or about to be written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    /// The file name, for messages.
    pub(crate) name: String,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl SegmentFile {
    fn new(data_dir: &Path, first: u64, last: u64) -> SegmentFile {
        let name = format!("audit-{first}-{last}.db");
        SegmentFile {
            path: data_dir.join(ARCHIVE_DIR).join(&name),
            name,
            first,
            last,
        }
    }

    /// The range a file name says, if it is a segment's name.
    fn parse_name(name: &str) -> Option<(u64, u64)> {
        let range = name.strip_prefix("audit-")?.strip_suffix(".db")?;
        let (first, last) = range.split_once('-')?;
        let number = |digits: &str| -> Option<u64> {
            let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
                && !digits.is_empty();
            canonical.then(|| digits.parse().ok()).flatten()
        };
        let (first, last) = (number(first)?, number(last)?);
        (first <= last).then_some((first, last))
    }
}

/// The segments in `DATA_DIR/archive`, ordered by their first sequence number (none
/// when there is no archive). Files whose names are not segment names are ignored:
/// events they might hold are missing from the history, which the verifier names.
pub(crate) fn segment_files(data_dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let entries = match fs::read_dir(data_dir.join(ARCHIVE_DIR)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some((first, last)) = entry.file_name().to_str().and_then(SegmentFile::parse_name)
        else {
            continue;
        };
        segments.push(SegmentFile::new(data_dir, first, last));
    }
    segments.sort_by_key(|segment| (segment.first, segment.last));
    Ok(segments)
}

/// A problem that is not SQLite's or the file system's (the archive and the live log
/// do not fit together), carried as an I/O error of kind `InvalidData` with `detail`
/// (never event contents) as its message.
fn invalid(what: &'static str, detail: String) -> AuditError {
    AuditError::Io {
        what,
        source: io::Error::new(ErrorKind::InvalidData, detail),
    }
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> AuditError {
    move |source| AuditError::Io { what, source }
}

/// Opens the live log for writing, without creating it.
fn open_live(path: &Path) -> Result<Connection, AuditError> {
    Ok(crate::sqlite::connect(path, BUSY_TIMEOUT)?)
}

/// Creates the archive directory (and makes its entry durable) if needed.
fn create_dir(dir: &Path) -> Result<(), AuditError> {
    if dir.is_dir() {
        return Ok(());
    }
    crate::datadir::create_dir(dir)
        .map_err(io_error("cannot create the audit archive directory"))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("cannot sync the audit archive directory"))
}

/// Held for a whole archive run: an exclusive SQLite lock on `archive/.lock`.
#[derive(Debug)]
struct ArchiveLock {
    _conn: Connection,
}

impl ArchiveLock {
    fn take(dir: &Path) -> Result<ArchiveLock, AuditError> {
        let conn = Connection::open(dir.join(LOCK_FILE))?;
        conn.busy_timeout(Duration::ZERO)?;
        match conn.execute_batch("BEGIN EXCLUSIVE") {
            Ok(()) => Ok(ArchiveLock { _conn: conn }),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::DatabaseBusy => {
                Err(AuditError::Io {
                    what: "another audit archive run is in progress",
                    source: io::Error::new(ErrorKind::WouldBlock, "archive/.lock is held"),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn to_sql(seq: u64) -> Result<i64, AuditError> {
    i64::try_from(seq).map_err(|_| invalid("a sequence number is too large", seq.to_string()))
}

fn from_sql(seq: i64) -> Result<u64, AuditError> {
    u64::try_from(seq).map_err(|_| invalid("a stored sequence number is negative", seq.to_string()))
}

/// The live log's first sequence number (`None` when it holds no event).
fn live_first(live: &Connection) -> Result<Option<u64>, AuditError> {
    let first: Option<i64> = live.query_row("SELECT min(seq) FROM events", [], |row| row.get(0))?;
    first.map(from_sql).transpose()
}

/// The stored hash of a segment's last event, which must be the one its name says.
fn segment_tail(segment: &SegmentFile) -> Result<[u8; 32], AuditError> {
    let conn = open_read_only(&segment.path)?;
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match last {
        Some((seq, hash)) if seq == to_sql(segment.last)? => parse_hash(&hash).ok_or_else(|| {
            invalid(
                "an audit archive segment's last hash is not a hash",
                segment.name.clone(),
            )
        }),
        _ => Err(invalid(
            "an audit archive segment does not end where its name says; run `gateway audit verify`",
            segment.name.clone(),
        )),
    }
}

/// Steps 3 and 4: chooses the range from `next` on and writes its segment. Returns
/// the segment and `hash(last)`, or `None` when nothing is old enough.
fn copy_old_events(
    live: &mut Connection,
    data_dir: &Path,
    next: u64,
    prev: [u8; 32],
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<(SegmentFile, [u8; 32])>, AuditError> {
    let snapshot = live.transaction()?;
    let version: Option<String> = snapshot
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if version != Some(SCHEMA_VERSION.to_string()) {
        return Err(AuditError::Schema(format!(
            "the archive copies schema version {SCHEMA_VERSION}; the live log has {}",
            version.as_deref().unwrap_or("none")
        )));
    }
    let Some(last) = archivable_end(&snapshot, next, cutoff)? else {
        return Ok(None);
    };
    let segment = SegmentFile::new(data_dir, next, last);
    if segment.path.exists() {
        return Err(invalid(
            "an audit archive segment for this range already exists",
            segment.name,
        ));
    }
    let partial = segment
        .path
        .with_file_name(format!(".{}.partial", segment.name));
    for stale in [
        partial.clone(),
        partial.with_file_name(format!(".{}.partial-journal", segment.name)),
    ] {
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(io_error("cannot remove a stale partial audit segment")(e));
            }
            _ => {}
        }
    }
    write_segment(&snapshot, &partial, next, last, now)?;
    // The snapshot is no longer needed: let the WAL move on.
    snapshot.commit()?;
    let written = SegmentFile {
        path: partial.clone(),
        ..segment.clone()
    };
    let hash = match check_segment(&written, prev, &data_dir.join(KEY_FILE)) {
        Ok(hash) => hash,
        Err(failure) => {
            let _ = fs::remove_file(&partial);
            return Err(invalid(
                "the events to archive do not verify; nothing was archived",
                failure.to_string(),
            ));
        }
    };
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o444))
        .map_err(io_error("cannot make the audit archive segment read-only"))?;
    fs::rename(&partial, &segment.path)
        .map_err(io_error("cannot move the audit archive segment into place"))?;
    sync_dir(&data_dir.join(ARCHIVE_DIR))?;
    Ok(Some((segment, hash)))
}

/// The last sequence number of the range starting at `next`: the newest checkpoint up
/// to which every event is older than `cutoff`, the live log's newest event excluded.
fn archivable_end(
    live: &Connection,
    next: u64,
    cutoff: DateTime<Utc>,
) -> Result<Option<u64>, AuditError> {
    let (first, head): (Option<i64>, Option<i64>) =
        live.query_row("SELECT min(seq), max(seq) FROM events", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let (Some(first), Some(head)) = (first, head) else {
        return Ok(None);
    };
    if from_sql(first)? != next {
        return Err(invalid(
            "the live audit log does not continue the archive; run `gateway audit verify`",
            format!(
                "the live log starts at seq {first}, the archive ends at seq {}",
                next - 1
            ),
        ));
    }
    let mut old_until = None;
    let mut stmt = live.prepare("SELECT seq, time FROM events WHERE seq < ?1 ORDER BY seq")?;
    let mut rows = stmt.query([head])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let time: String = row.get(1)?;
        // A time that cannot be read is not known to be old: it ends the range.
        match DateTime::parse_from_rfc3339(&time) {
            Ok(time) if time.with_timezone(&Utc) < cutoff => old_until = Some(seq),
            _ => break,
        }
    }
    let Some(limit) = old_until else {
        return Ok(None);
    };
    let end: Option<i64> = live.query_row(
        "SELECT max(seq) FROM checkpoints WHERE seq >= ?1 AND seq <= ?2",
        params![to_sql(next)?, limit],
        |row| row.get(0),
    )?;
    end.map(from_sql).transpose()
}

/// Copies `first..=last` (events and checkpoints) from the live snapshot into a new
/// segment database at `path`, committed and synced.
fn write_segment(
    live: &Connection,
    path: &Path,
    first: u64,
    last: u64,
    now: DateTime<Utc>,
) -> Result<(), AuditError> {
    let mut out = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    out.pragma_update(None, "synchronous", "FULL")?;
    let tx = out.transaction()?;
    tx.execute_batch(SEGMENT_META)?;
    tx.execute_batch(super::sqlite::MIGRATIONS[0])?;
    let (lo, hi) = (to_sql(first)?, to_sql(last)?);
    {
        let mut meta = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
        for (key, value) in [
            ("segment_format", SEGMENT_FORMAT.to_owned()),
            ("schema_version", SCHEMA_VERSION.to_string()),
            ("chain_id", super::sqlite::read_chain_id(live)?),
            ("first_seq", first.to_string()),
            ("last_seq", last.to_string()),
            (
                "archived_at",
                now.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ] {
            meta.execute(params![key, value])?;
        }
        let mut select = live.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
        ))?;
        let mut insert = tx.prepare(&format!(
            "INSERT INTO events ({EVENT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?;
        let mut rows = select.query(params![lo, hi])?;
        while let Some(row) = rows.next()? {
            let values = (0..13)
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()?;
            insert.execute(params_from_iter(values))?;
        }
        let mut select = live.prepare(
            "SELECT seq, text FROM checkpoints WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
        )?;
        let mut insert = tx.prepare("INSERT INTO checkpoints (seq, text) VALUES (?1, ?2)")?;
        let mut rows = select.query(params![lo, hi])?;
        while let Some(row) = rows.next()? {
            insert.execute(params![row.get::<_, i64>(0)?, row.get::<_, String>(1)?])?;
        }
    }
    tx.commit()?;
    out.close().map_err(|(_, e)| e)?;
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io_error("cannot sync the audit archive segment"))
}

/// Step 5: in one IMMEDIATE transaction, checks that the live log holds the segment's
/// events unchanged up to its last one (whose stored hash must be `last_hash`),
/// deletes them and the checkpoints before the last one (which stays as the anchor).
/// Returns how many events were deleted.
fn remove_archived(
    live: &mut Connection,
    segment: &SegmentFile,
    last_hash: &[u8; 32],
) -> Result<u64, AuditError> {
    let last = to_sql(segment.last)?;
    let tx = live.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (count, min, max): (i64, Option<i64>, Option<i64>) = tx.query_row(
        "SELECT count(*), min(seq), max(seq) FROM events WHERE seq <= ?1",
        [last],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let (Some(min), Some(max)) = (min, max) else {
        return Ok(0);
    };
    let stored: Option<String> = tx
        .query_row("SELECT hash FROM events WHERE seq = ?1", [last], |row| {
            row.get(0)
        })
        .optional()?;
    let anchored: i64 = tx.query_row(
        "SELECT count(*) FROM checkpoints WHERE seq = ?1",
        [last],
        |row| row.get(0),
    )?;
    let intact = min >= to_sql(segment.first)?
        && max == last
        && count == last - min + 1
        && stored.as_deref() == Some(hex::encode(last_hash).as_str())
        && anchored == 1;
    if !intact {
        return Err(invalid(
            "the live audit log does not hold what the archive segment holds; nothing was \
             removed (run `gateway audit verify`)",
            segment.name.clone(),
        ));
    }
    let removed = tx.execute("DELETE FROM events WHERE seq <= ?1", [last])?;
    tx.execute("DELETE FROM checkpoints WHERE seq < ?1", [last])?;
    tx.execute("DELETE FROM linked_subjects WHERE seq <= ?1", [last])?;
    tx.commit()?;
    Ok(removed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{
        AuditCaller, AuditEvent, AuditLog, AuditOptions, AuditOutcome, EventKind, SqliteAudit,
        VerifyFailure, verify,
    };
    use tempfile::TempDir;

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-01-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::days(n)
    }

    /// `now` that makes every event before day `n` (and from day `n` on, none) old.
    fn now_for(n: i64) -> DateTime<Utc> {
        day(n) + TimeDelta::days(i64::from(DEFAULT_KEEP_DAYS)) - TimeDelta::hours(1)
    }

    fn event(i: u64, time: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            event_id: format!("evt-{i}"),
            request_id: format!("req-{i}"),
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: EventKind::Lookup,
            caller: AuditCaller {
                user: "clerk".into(),
                roles: vec!["clerk".into()],
                township: Some("139901101".into()),
                department: None,
                app: None,
                source_ip: Some("127.0.0.1".into()),
                villages: Vec::new(),
            },
            purpose: Some("birth_registration".into()),
            reason: None,
            case_id: Some(format!("CASE-{i}")),
            connector: Some("hukou".into()),
            operation: Some("person_by_id".into()),
            subject_pseudonym: Some(format!("psn_{i:08x}")),
            subject_masked: None,
            subject_township: None,
            jurisdiction: None,
            linked: Vec::new(),
            fields_returned: vec!["name".into()],
            fields_masked: Vec::new(),
            fields_withheld: Vec::new(),
            fields_verified: Vec::new(),
            rules: vec!["hukou-birth-registration".into()],
            policy_version: Some("1".into()),
            outcome: AuditOutcome {
                status: 200,
                problem: None,
            },
            upstream_latency_ms: Some(3),
            cache_hit: false,
            disclose_after: None,
            form: None,
        }
    }

    /// A writer checkpointing every 5 events. Its events are dated days apart (to be
    /// old or not), so its time trigger is set beyond them: a checkpoint is due by
    /// time only after 2,000 days, and the checkpoints sign that cadence.
    fn open(dir: &Path) -> SqliteAudit {
        SqliteAudit::open(
            dir,
            AuditOptions {
                checkpoint_every_events: 5,
                checkpoint_every: Duration::from_secs(2000 * 86_400),
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Appends events `from..from + n` (numbered as their request ids), event `i`
    /// dated day `i` — a checkpoint every 5 events, and one at shutdown.
    async fn append(dir: &Path, from: u64, n: u64) {
        let audit = open(dir);
        for i in from..from + n {
            audit.append(event(i, day(i as i64))).await.unwrap();
        }
        audit.shutdown().await;
    }

    fn live(dir: &Path) -> Connection {
        Connection::open(dir.join(AUDIT_FILE)).unwrap()
    }

    fn seqs(conn: &Connection, table: &str) -> Vec<u64> {
        let mut stmt = conn
            .prepare(&format!("SELECT seq FROM {table} ORDER BY seq"))
            .unwrap();
        stmt.query_map([], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|seq| seq.unwrap() as u64)
            .collect()
    }

    fn short(dir: &Path, days_old_before: i64) -> Option<ArchivedSegment> {
        archive(dir, DEFAULT_KEEP_DAYS, now_for(days_old_before)).unwrap()
    }

    fn broken_at(dir: &Path) -> VerifyFailure {
        verify(dir).expect_err("verify must fail")
    }

    /// Makes a (read-only) segment writable and opens it.
    fn writable(path: &Path) -> Connection {
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        Connection::open(path).unwrap()
    }

    #[tokio::test]
    async fn old_events_move_to_segments_and_the_whole_history_verifies() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        // Events 1..=23 dated days 1..=23; checkpoints at 5, 10, 15, 20 and 23.
        append(dir, 1, 23).await;
        assert_eq!(verify(dir).unwrap().checkpoints, 5);

        // Days 1..=13 are old: the segment ends on the newest checkpoint before 14.
        let segment = short(dir, 14).unwrap();
        assert_eq!(
            segment,
            ArchivedSegment {
                path: dir.join("archive/audit-1-10.db"),
                first_seq: 1,
                last_seq: 10,
                events: 10,
            }
        );
        assert!(segment.path.exists());
        let report = verify(dir).unwrap();
        assert_eq!((report.events, report.last_seq), (23, 23));
        assert_eq!(report.checkpoints, 5, "the anchor counts once");
        let conn = live(dir);
        assert_eq!(seqs(&conn, "events"), (11..=23).collect::<Vec<_>>());
        assert_eq!(
            seqs(&conn, "checkpoints"),
            [10, 15, 20, 23],
            "10 is the anchor"
        );
        let archived = Connection::open(&segment.path).unwrap();
        assert_eq!(seqs(&archived, "events"), (1..=10).collect::<Vec<_>>());
        assert_eq!(seqs(&archived, "checkpoints"), [5, 10]);
        let format: String = archived
            .query_row(
                "SELECT value FROM meta WHERE key = 'segment_format'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(format, SEGMENT_FORMAT);

        // Nothing newly old: nothing happens.
        assert_eq!(short(dir, 14), None);
        // Later, more is old; the newest event (23) always stays live.
        let segment = short(dir, 100).unwrap();
        assert_eq!((segment.first_seq, segment.last_seq), (11, 20));
        assert_eq!(seqs(&conn, "events"), [21, 22, 23]);
        let report = verify(dir).unwrap();
        assert_eq!((report.events, report.checkpoints), (23, 5));

        // The writer continues the chain after archiving.
        append(dir, 24, 7).await;
        let report = verify(dir).unwrap();
        assert_eq!((report.events, report.last_seq), (30, 30));
        let segment = short(dir, 1000).unwrap();
        // The reopened writer counted from the checkpoint at 23: checkpoints at 28 and
        // (shutdown) 30; 30 is the newest event, so the segment ends at 28.
        assert_eq!((segment.first_seq, segment.last_seq), (21, 28));
        assert_eq!(seqs(&conn, "events"), [29, 30]);
        assert_eq!(seqs(&conn, "checkpoints"), [28, 30]);
        let report = verify(dir).unwrap();
        assert_eq!((report.events, report.last_seq), (30, 30));
        assert_eq!(report.checkpoints, 7, "5, 10, 15, 20, 23, 28, 30");
    }

    #[tokio::test]
    async fn a_tampered_segment_is_named() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        append(dir, 1, 23).await;
        let segment = short(dir, 100).unwrap();
        let db = writable(&segment.path);
        db.execute(
            "UPDATE events SET body = replace(body, 'CASE-7', 'CASE-8') WHERE seq = 7",
            [],
        )
        .unwrap();
        let failure = broken_at(dir);
        assert_eq!(failure.seq, Some(7), "{failure}");
        assert!(failure.problem.contains("audit-1-20.db"), "{failure}");

        // Undone, then the segment's final checkpoint removed.
        db.execute(
            "UPDATE events SET body = replace(body, 'CASE-8', 'CASE-7') WHERE seq = 7",
            [],
        )
        .unwrap();
        verify(dir).unwrap();
        db.execute("DELETE FROM checkpoints WHERE seq = 20", [])
            .unwrap();
        assert_eq!(broken_at(dir).seq, Some(20));
    }

    #[tokio::test]
    async fn a_missing_or_reordered_segment_fails() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        append(dir, 1, 33).await;
        for (old_before, last) in [(11, 10), (21, 20), (31, 30)] {
            assert_eq!(short(dir, old_before).unwrap().last_seq, last);
        }
        assert_eq!(verify(dir).unwrap().events, 33);
        let path = |name: &str| dir.join(ARCHIVE_DIR).join(name);
        let aside = dir.join("aside.db");
        let [first, middle, last] = ["audit-1-10.db", "audit-11-20.db", "audit-21-30.db"];

        // Missing in the middle, at the start, at the end.
        for (name, at) in [(middle, 11), (first, 1), (last, 21)] {
            fs::rename(path(name), &aside).unwrap();
            let failure = broken_at(dir);
            assert_eq!(failure.seq, Some(at), "{name}: {failure}");
            fs::rename(&aside, path(name)).unwrap();
            verify(dir).unwrap();
        }

        // Two segments swapping names: each holds other events than its name says.
        fs::rename(path(first), &aside).unwrap();
        fs::rename(path(middle), path(first)).unwrap();
        fs::rename(&aside, path(middle)).unwrap();
        assert_eq!(broken_at(dir).seq, Some(1));
        fs::rename(path(first), &aside).unwrap();
        fs::rename(path(middle), path(first)).unwrap();
        fs::rename(&aside, path(middle)).unwrap();
        verify(dir).unwrap();

        // A segment renamed to claim a wider range than it holds.
        fs::rename(path(first), path("audit-1-12.db")).unwrap();
        assert_eq!(broken_at(dir).seq, Some(11));
    }

    #[tokio::test]
    async fn a_run_interrupted_before_removing_is_accepted_and_finished() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("log");
        append(&dir, 1, 23).await;
        // The same log archived elsewhere; its segment then copied here stands for a
        // run that stopped after writing the segment, before removing the events.
        let other = tmp.path().join("other");
        fs::create_dir(&other).unwrap();
        for file in [AUDIT_FILE, KEY_FILE] {
            fs::copy(dir.join(file), other.join(file)).unwrap();
        }
        let segment = short(&other, 14).unwrap();
        fs::create_dir(dir.join(ARCHIVE_DIR)).unwrap();
        fs::copy(&segment.path, dir.join("archive/audit-1-10.db")).unwrap();

        let report = verify(&dir).unwrap();
        assert_eq!((report.events, report.checkpoints), (23, 5));
        // A live copy that differs from the archived one is named.
        let conn = live(&dir);
        conn.execute(
            "UPDATE events SET body = replace(body, 'CASE-4', 'CASE-9') WHERE seq = 4",
            [],
        )
        .unwrap();
        assert_eq!(broken_at(&dir).seq, Some(4));
        conn.execute(
            "UPDATE events SET body = replace(body, 'CASE-9', 'CASE-4') WHERE seq = 4",
            [],
        )
        .unwrap();

        // The next run finishes the interrupted one (nothing more is old).
        let finished = short(&dir, 14).unwrap();
        assert_eq!((finished.first_seq, finished.last_seq), (1, 10));
        assert_eq!(seqs(&conn, "events"), (11..=23).collect::<Vec<_>>());
        assert_eq!(verify(&dir).unwrap().events, 23);
    }

    #[tokio::test]
    async fn archiving_while_the_writer_appends_loses_nothing() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_owned();
        let audit = open(&dir);
        for i in 1..=200 {
            audit.append(event(i, day(i as i64))).await.unwrap();
        }
        let writer = audit.clone();
        let appending = tokio::spawn(async move {
            for i in 201..=600 {
                writer.append(event(i, day(i as i64))).await.unwrap();
            }
        });
        let archive_dir = dir.clone();
        let segment = tokio::task::spawn_blocking(move || {
            archive(&archive_dir, DEFAULT_KEEP_DAYS, now_for(151))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!((segment.first_seq, segment.last_seq), (1, 150));
        appending.await.unwrap();
        audit.shutdown().await;
        let report = verify(&dir).unwrap();
        assert_eq!(report.events, 600);
        assert_eq!(seqs(&live(&dir), "events"), (151..=600).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn only_segment_names_are_segments_and_a_stale_partial_is_replaced() {
        assert_eq!(SegmentFile::parse_name("audit-1-10.db"), Some((1, 10)));
        for name in [
            "audit-01-10.db",
            "audit-0-10.db",
            "audit-10-1.db",
            "audit-1-10.db-journal",
            ".audit-1-10.db.partial",
            "audit-1-x.db",
            "audit--10.db",
            ".lock",
        ] {
            assert_eq!(SegmentFile::parse_name(name), None, "{name}");
        }

        // A run that died while writing its segment left a partial file behind.
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        append(dir, 1, 12).await;
        fs::create_dir(dir.join(ARCHIVE_DIR)).unwrap();
        let partial = dir.join("archive/.audit-1-10.db.partial");
        fs::write(&partial, b"half a segment").unwrap();
        assert_eq!(
            verify(dir).unwrap().events,
            12,
            "a partial file is not a segment"
        );
        let segment = short(dir, 100).unwrap();
        assert_eq!((segment.first_seq, segment.last_seq), (1, 10));
        assert!(!partial.exists());
        assert_eq!(verify(dir).unwrap().events, 12);
    }

    #[tokio::test]
    async fn short_periods_are_refused_unless_allowed_and_runs_exclude_each_other() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        append(dir, 1, 12).await;
        let now = day(12);
        let error = archive(dir, 30, now).unwrap_err();
        assert!(error.to_string().contains("too short"), "{error}");
        assert!(!dir.join(ARCHIVE_DIR).exists(), "nothing was done");

        let lock = {
            create_dir(&dir.join(ARCHIVE_DIR)).unwrap();
            ArchiveLock::take(&dir.join(ARCHIVE_DIR)).unwrap()
        };
        let short = Retention {
            keep_days: 5,
            allow_short: true,
        };
        let error = archive_with(dir, short, now).unwrap_err();
        assert!(error.to_string().contains("in progress"), "{error}");
        drop(lock);
        // Days 1..=6 are older than 5 days before day 12.
        let segment = archive_with(dir, short, now).unwrap().unwrap();
        assert_eq!((segment.first_seq, segment.last_seq), (1, 5));
        verify(dir).unwrap();
    }
}
