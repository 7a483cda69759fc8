//! `gateway audit migrate-to-segments`: a data directory whose chain is in
//! `audit.db` (the SQLite log, and its archive segments) moves to segment files
//! without losing an event — the same seqs, bodies, hashes, checkpoint texts and
//! chain id, so every receipt and every witness's checkpoint still holds.
//!
//! 1. The SQLite history is verified first (archive and live, as `gateway audit
//!    verify` does); a log that fails is not moved.
//! 2. Every event and checkpoint, oldest first, is written into segment files in
//!    `DATA_DIR/chain.partial/` (a new file after a checkpoint once one is full),
//!    each synced.
//! 3. The new chain is walked; its head must be the SQLite log's (seq and hash).
//! 4. `chain.partial` is renamed to `chain` (the directory synced): from here on the
//!    data directory is in segment files.
//! 5. The old files are kept, renamed, for the operator to dispose of:
//!    `audit.db` → `audit-sqlite.db` (its `-wal` folded in first), and
//!    `archive/audit-*.db` stay where they are (segment files never read them).
//!    The index is then built from the segments.
//!
//! The gateway must be stopped (the data directory's serve lock is taken).

use std::path::Path;

use rusqlite::Connection;

use super::super::AuditError;
use super::super::retention::segment_files;
use super::super::sqlite::{AUDIT_FILE, KEY_FILE, open_read_only, read_chain_id};
use super::super::verify::{Expectations, verify_with};
use super::format::{self, HEADER_LEN, Header};
use super::walk::{Key, walk_segments};

/// The SQLite log's file once migrated.
pub const MIGRATED_FILE: &str = "audit-sqlite.db";

/// What a migration moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub events: u64,
    pub checkpoints: u64,
    pub last_seq: u64,
    pub last_hash: String,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
    move |source| AuditError::Io { what, source }
}

/// Moves the SQLite log in `data_dir` to segment files (see the module docs), held
/// to `expect` while verifying it. Blocking.
pub fn to_segments(data_dir: &Path, expect: &Expectations) -> Result<Migrated, AuditError> {
    let _serving = crate::datadir::DataDirLock::take(data_dir, "gateway audit migrate-to-segments")
        .map_err(AuditError::Unavailable)?;
    if super::in_segments(data_dir) {
        return Err(AuditError::Schema(
            "the audit log is in segment files already".into(),
        ));
    }
    if !data_dir.join(AUDIT_FILE).is_file() {
        return Err(AuditError::Schema(
            "the data directory holds no audit.db".into(),
        ));
    }
    let report = verify_with(data_dir, expect).map_err(AuditError::Broken)?;
    let live = open_read_only(&data_dir.join(AUDIT_FILE))?;
    let chain_id = read_chain_id(&live)?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(&chain_id, &mut id)
        .map_err(|_| AuditError::Schema("the log's chain id is not 32 hex digits".into()))?;

    let partial = data_dir.join("chain.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io("cannot clear chain.partial"))?;
    }
    crate::datadir::create_dir(&partial).map_err(io("cannot create chain.partial"))?;
    let mut out = Out {
        dir: &partial,
        chain_id: id,
        buf: Vec::new(),
        first: 0,
        checkpoints: 0,
        last_checkpoint: 0,
    };
    let archived = segment_files(data_dir).map_err(io("cannot list the audit archive"))?;
    for segment in &archived {
        copy(&open_read_only(&segment.path)?, &mut out)?;
    }
    copy(&live, &mut out)?;
    drop(live);
    out.flush()?;
    super::writer::sync_dir(&partial)?;

    let key = match &expect.pinned_key {
        Some(pinned) => Key::Known(pinned.clone()),
        None => Key::File(data_dir.join(KEY_FILE)),
    };
    // Walk the new files where they are, before they count as the log.
    let written = format::list(&partial).map_err(io("cannot list the new segments"))?;
    let walked = walk_segments(written, key, expect).map_err(AuditError::Broken)?;
    if walked.head_seq != report.last_seq || hex::encode(walked.head_hash) != report.last_hash {
        return Err(AuditError::Backend(format!(
            "the segments end at seq {} but the SQLite log at seq {}; nothing was changed",
            walked.head_seq, report.last_seq
        )));
    }

    // Fold the WAL in, then keep the old file under another name.
    Connection::open(data_dir.join(AUDIT_FILE))
        .and_then(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))?;
    std::fs::rename(data_dir.join(AUDIT_FILE), data_dir.join(MIGRATED_FILE))
        .map_err(io("cannot set the SQLite log aside"))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data_dir.join(format!("{AUDIT_FILE}{suffix}")));
    }
    std::fs::rename(&partial, data_dir.join(format::DIR))
        .map_err(io("cannot put the segments in place"))?;
    super::writer::sync_dir(data_dir)?;
    super::index::reindex(data_dir)?;
    Ok(Migrated {
        events: report.events,
        checkpoints: out.checkpoints,
        last_seq: report.last_seq,
        last_hash: report.last_hash,
    })
}

/// The segment files being written.
struct Out<'a> {
    dir: &'a Path,
    chain_id: [u8; 16],
    /// The current file's bytes (written when it is full or at the end).
    buf: Vec<u8>,
    /// The current file's first seq (0: none started).
    first: u64,
    checkpoints: u64,
    /// The newest checkpoint written (the anchor the live log repeats is skipped).
    last_checkpoint: u64,
}

impl Out<'_> {
    fn event(&mut self, seq: u64, prev: &[u8; 32], body: &[u8]) -> Result<(), AuditError> {
        if self.first == 0 {
            self.first = seq;
            self.buf = Header {
                chain_id: self.chain_id,
                first_seq: seq,
            }
            .encode()
            .to_vec();
        }
        format::encode_event(&mut self.buf, seq, prev, body);
        Ok(())
    }

    fn checkpoint(&mut self, seq: u64, text: &str) -> Result<(), AuditError> {
        if seq <= self.last_checkpoint || self.first == 0 {
            return Ok(());
        }
        format::encode_checkpoint(&mut self.buf, seq, text);
        self.checkpoints += 1;
        self.last_checkpoint = seq;
        if self.buf.len() as u64 >= super::SEGMENT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes and syncs the current file.
    fn flush(&mut self) -> Result<(), AuditError> {
        if self.first == 0 || self.buf.len() <= HEADER_LEN {
            return Ok(());
        }
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(format::file_name(self.first));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("cannot write a segment"))?;
        file.write_all(&self.buf)
            .and_then(|()| file.sync_all())
            .map_err(io("cannot write a segment"))?;
        self.first = 0;
        self.buf.clear();
        Ok(())
    }
}

/// Copies one SQLite file's events and checkpoints, in seq order.
fn copy(conn: &Connection, out: &mut Out<'_>) -> Result<(), AuditError> {
    let mut checkpoints: Vec<(i64, String)> = conn
        .prepare("SELECT seq, text FROM checkpoints ORDER BY seq DESC")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT seq, body, prev_hash FROM events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let body = row
            .get_ref(1)?
            .as_str()
            .map_err(|_| AuditError::Schema(format!("event {seq}: the body is not text")))?
            .as_bytes();
        let prev: String = row.get(2)?;
        let mut prev_hash = [0u8; 32];
        hex::decode_to_slice(&prev, &mut prev_hash)
            .map_err(|_| AuditError::Schema(format!("event {seq}: a stored hash is not hex")))?;
        // Checkpoints before this event (the anchor of an archived log) were written
        // with the events they sign.
        while checkpoints.last().is_some_and(|(at, _)| *at < seq) {
            checkpoints.pop();
        }
        let seq_u = u64::try_from(seq)
            .map_err(|_| AuditError::Schema("a stored seq is negative".into()))?;
        out.event(seq_u, &prev_hash, body)?;
        while let Some((_, text)) = checkpoints.pop_if(|(at, _)| *at == seq) {
            out.checkpoint(seq_u, &text)?;
        }
    }
    Ok(())
}
