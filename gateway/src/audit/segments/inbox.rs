//! Events from other processes while a gateway writes the segments — `gateway
//! registry apply`, `gateway audit search` recording their own use — arrive through
//! an inbox, since one process alone may append ([`writer`](super::writer)).
//!
//! The other process writes its event, as JSON, to `DATA_DIR/chain/inbox/<a new
//! UUID>.json` (a temporary file synced and renamed into place, then the directory
//! synced), and waits until the index holds the event id ([`InboxAudit`]). The
//! running writer looks into the inbox every [`POLL`], records what it finds as one
//! batch, and removes each file once its event is durable. When no gateway runs (the
//! writer lock is free), the waiting process opens the writer itself, which records
//! the inbox when it starts. A file that is not an event (or too large, or dated
//! more than [`MAX_SKEW`] away from the writer's clock: its time would break the
//! checkpoint cadence) is moved aside to `inbox/rejected/`, never recorded; one whose event id the index already
//! holds (a crash between the write and the removal) is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension};

use super::super::event::{AuditEvent, Recorded};
use super::super::sqlite::{AUDIT_FILE, AuditOptions, open_read_only};
use super::super::{AuditError, AuditLog};
use super::{SegmentAudit, format};

/// The inbox, inside the chain directory.
pub const DIR: &str = "inbox";

/// How often the writer looks into the inbox.
pub const POLL: Duration = Duration::from_millis(200);

/// How long a process waits for the running gateway to record its event.
pub const WAIT: Duration = Duration::from_secs(30);

/// How far an inbox event's time may be from the writer's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The largest file read from the inbox.
const MAX_BYTES: u64 = 256 * 1024;

/// The most events taken in one look.
const MAX_TAKEN: usize = 256;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
    move |source| AuditError::Io { what, source }
}

/// Posts `event` durably into the inbox of the chain in `chain_dir`.
fn post(chain_dir: &Path, event: &AuditEvent) -> Result<(), AuditError> {
    let inbox = chain_dir.join(DIR);
    crate::datadir::create_dir(&inbox).map_err(io("cannot create the audit inbox"))?;
    let body = serde_json::to_vec(event).map_err(|_| AuditError::Encode)?;
    let name = format!("{}.json", uuid::Uuid::now_v7());
    let partial = inbox.join(format!(".{name}.partial"));
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io("cannot write into the audit inbox"))?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .map_err(io("cannot write into the audit inbox"))?;
    }
    std::fs::rename(&partial, inbox.join(name)).map_err(io("cannot write into the audit inbox"))?;
    super::writer::sync_dir(&inbox)
}

/// The events waiting in the inbox, oldest first (at most [`MAX_TAKEN`]); files
/// that are not events are moved aside.
pub(super) fn waiting(chain_dir: &Path) -> Vec<(PathBuf, AuditEvent)> {
    let inbox = chain_dir.join(DIR);
    let Ok(entries) = std::fs::read_dir(&inbox) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files.truncate(MAX_TAKEN);
    let mut found = Vec::with_capacity(files.len());
    for path in files {
        let read = std::fs::metadata(&path)
            .ok()
            .filter(|meta| meta.is_file() && meta.len() <= MAX_BYTES)
            .and_then(|_| std::fs::read(&path).ok())
            .and_then(|bytes| serde_json::from_slice::<AuditEvent>(&bytes).ok())
            .filter(|event| timely(&event.time));
        match read {
            Some(event) => found.push((path, event)),
            None => reject(&inbox, &path),
        }
    }
    found
}

/// Whether `time` (RFC 3339) is within [`MAX_SKEW`] of now.
fn timely(time: &str) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    super::super::cadence::time_ms(time)
        .is_some_and(|ms| ms.abs_diff(now) <= MAX_SKEW.as_millis() as u64)
}

/// Moves a file that is not an event out of the way (never recorded, never read
/// again); its contents are not logged.
fn reject(inbox: &Path, path: &Path) {
    let aside = inbox.join("rejected");
    let moved = crate::datadir::create_dir(&aside).and_then(|()| match path.file_name() {
        Some(name) => std::fs::rename(path, aside.join(name)),
        None => Ok(()),
    });
    if let Err(error) = moved {
        tracing::error!(%error, "a file in the audit inbox is not an event and cannot be moved aside");
    } else {
        tracing::warn!("a file in the audit inbox is not an audit event; moved to inbox/rejected");
    }
}

/// Where the index (on `conn`) holds `event_id`: its seq and hash.
fn lookup(conn: &Connection, event_id: &str) -> Result<Option<(u64, String)>, AuditError> {
    let found: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM events WHERE event_id = ?1",
            [event_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(found.and_then(|(seq, hash)| Some((u64::try_from(seq).ok()?, hash))))
}

/// Whether the index in `data_dir` holds `event_id`: its seq and hash.
fn recorded(data_dir: &Path, event_id: &str) -> Result<Option<(u64, String)>, AuditError> {
    let path = data_dir.join(AUDIT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    lookup(&open_read_only(&path)?, event_id)
}

/// For each of `event_ids`, whether the index already holds it (recorded before a
/// crash that kept its file), read over one connection.
pub(super) fn already_recorded(data_dir: &Path, event_ids: &[&str]) -> Vec<bool> {
    let path = data_dir.join(AUDIT_FILE);
    let conn = path.exists().then(|| open_read_only(&path).ok()).flatten();
    event_ids
        .iter()
        .map(|id| {
            conn.as_ref()
                .is_some_and(|conn| matches!(lookup(conn, id), Ok(Some(_))))
        })
        .collect()
}

/// The audit log of a process beside a running gateway: each event goes through the
/// inbox, and its append returns once the gateway has recorded it.
#[derive(Debug, Clone)]
pub struct InboxAudit {
    data_dir: PathBuf,
    options: AuditOptions,
}

impl InboxAudit {
    pub(crate) fn new(data_dir: &Path, options: AuditOptions) -> InboxAudit {
        InboxAudit {
            data_dir: data_dir.to_owned(),
            options,
        }
    }

    async fn append_one(&self, event: AuditEvent) -> Result<Recorded, AuditError> {
        let data_dir = self.data_dir.clone();
        let chain_dir = data_dir.join(format::DIR);
        let chain_id = super::chain_id_of(&chain_dir)?.unwrap_or_default();
        let posted = event.clone();
        let dir = chain_dir.clone();
        tokio::task::spawn_blocking(move || post(&dir, &posted))
            .await
            .map_err(|e| AuditError::Unavailable(e.to_string()))??;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (dir, id) = (data_dir.clone(), event.event_id.clone());
            let found = tokio::task::spawn_blocking(move || recorded(&dir, &id))
                .await
                .map_err(|e| AuditError::Unavailable(e.to_string()))??;
            if let Some((seq, hash)) = found {
                return Ok(Recorded {
                    chain_id,
                    seq,
                    hash,
                });
            }
            if !super::writer::held(&chain_dir) {
                // No gateway writes: record the inbox ourselves.
                let (dir, options) = (data_dir.clone(), self.options.clone());
                let log = tokio::task::spawn_blocking(move || SegmentAudit::open(&dir, options))
                    .await
                    .map_err(|e| AuditError::Unavailable(e.to_string()))?;
                match log {
                    Ok(log) => log.shutdown().await,
                    // Taken meanwhile by a gateway starting: it records the inbox.
                    Err(AuditError::Unavailable(_)) => {}
                    Err(other) => return Err(other),
                }
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AuditError::Unavailable(format!(
                    "the running gateway did not record the event within {} s",
                    WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl AuditLog for InboxAudit {
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>> {
        Box::pin(self.append_one(event))
    }
}
