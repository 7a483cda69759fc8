//! The embedded audit log: `DATA_DIR/audit.db` (SQLite, WAL, `synchronous=FULL`), its
//! schema and migrations, and the one writer thread that owns the connection, batches
//! queued events into one transaction each (group commit) and writes checkpoints.
//! How and why is in the [module docs of `audit`](super).
//!
//! Before the writer starts, the log is checked as far as signing depends on it
//! ([`check_before_writing`]): the key in the data directory is the pinned one, the
//! checkpoints are the key's and follow the cadence, and the unsigned tail chains on
//! from the newest checkpoint and is no longer than the cadence allows. A log that
//! fails is refused ([`AuditError::Broken`]) instead of being signed over; a tail
//! that passes (a crash leaves one) is signed at once, before any new event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;
use tokio::time::Instant;

use tokio::sync::watch;

use super::cadence::Cadence;
use super::chain::{GENESIS, link_hash, parse_hash};
use super::checkpoint::{Prev, Signer, encode_public_key, load_or_create_key};
use super::commit_times::CommitTimes;
use super::event::{AuditEvent, Recorded};
use super::hooks::Hooks;
use super::queue::{Command, Pending, take_batch};
use super::verify::check_before_writing;
use super::{AuditError, AuditLog};

/// The audit database's file name inside the data directory.
pub const AUDIT_FILE: &str = "audit.db";

/// The checkpoint key's file name inside the data directory.
pub const KEY_FILE: &str = "audit-signing.key";

/// How long the writer waits for a lock held by another process before the batch
/// fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the readiness probe waits for the write lock.
const READY_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How soon the writer tries again when a timed checkpoint could not be written.
const RETRY_CHECKPOINT: Duration = Duration::from_secs(1);

/// How the writer batches and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// Events that may wait for the writer; callers beyond it wait for a place.
    pub queue: usize,
    /// The most events written in one transaction (a unit from
    /// [`AuditLog::append_all`] is never split, so it may go over).
    pub batch_max: usize,
    /// A checkpoint after this many events (0: no count trigger).
    pub checkpoint_every_events: u64,
    /// A checkpoint this long after the previous one, when events were added since.
    pub checkpoint_every: Duration,
    /// The checkpoint key's public half as the operator pinned it (raw, 32 bytes):
    /// the key in the data directory must be this one, and the log's checkpoints are
    /// checked against it. `None`: the key found in the data directory is trusted.
    pub pinned_key: Option<Vec<u8>>,
    /// The embedded store a new data directory's log is made in.
    pub embedded: super::settings::EmbeddedAudit,
}

impl AuditOptions {
    /// The cadence these options make the writer keep.
    pub fn cadence(&self) -> Cadence {
        Cadence {
            every_events: self.checkpoint_every_events,
            every: self.checkpoint_every,
        }
    }
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            queue: 10_000,
            batch_max: 512,
            checkpoint_every_events: super::cadence::DEFAULT_EVERY_EVENTS,
            checkpoint_every: super::cadence::DEFAULT_EVERY,
            pinned_key: None,
            embedded: super::settings::EmbeddedAudit::default(),
        }
    }
}

/// The audit log in an SQLite file. Cloning is cheap; all clones feed one writer
/// thread, which stops (after a last checkpoint) when [`SqliteAudit::shutdown`] is
/// called or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteAudit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: mpsc::Sender<Command>,
    path: PathBuf,
    /// The seq of the newest checkpoint committed (0: none yet).
    checkpointed: watch::Receiver<u64>,
    commit_times: Arc<CommitTimes>,
}

impl SqliteAudit {
    /// Opens (creating and migrating if needed) `DATA_DIR/audit.db` and the checkpoint
    /// key, and starts the writer thread. Blocking: call it before serving or from
    /// `spawn_blocking`.
    pub fn open(data_dir: &Path, options: AuditOptions) -> Result<SqliteAudit, AuditError> {
        SqliteAudit::open_with(data_dir, options, Arc::new(Hooks::inert()))
    }

    pub(crate) fn open_with(
        data_dir: &Path,
        options: AuditOptions,
        hooks: Arc<Hooks>,
    ) -> Result<SqliteAudit, AuditError> {
        let opened = crate::sqlite::open(
            &data_dir.join(AUDIT_FILE),
            &SCHEMA,
            crate::sqlite::Journal::RequireWal,
            BUSY_TIMEOUT,
        )
        .map_err(open_error)?;
        let (mut conn, path) = (opened.conn, opened.path);
        let key_path = data_dir.join(KEY_FILE);
        if options.pinned_key.is_some() && !key_path.exists() {
            return Err(AuditError::Key(
                "a checkpoint key is pinned but the data directory holds no key; restore \
                 audit-signing.key instead of starting a new one"
                    .into(),
            ));
        }
        let signer = load_or_create_key(&key_path, read_newest(&conn)?.seq == 0)?;
        if let Some(pinned) = &options.pinned_key
            && signer.public_key() != pinned.as_slice()
        {
            return Err(AuditError::Key(format!(
                "the key in the data directory ({}) is not the pinned key ({}); the data \
                 directory is not this gateway's, or its key was replaced",
                encode_public_key(signer.public_key()),
                encode_public_key(pinned)
            )));
        }
        let cadence = options.cadence();
        let checked = check_before_writing(&conn, &cadence, signer.public_key())
            .map_err(AuditError::Broken)?;
        let head = read_head(&conn)?;
        if head.seq > checked.newest.seq {
            // A crash left these unsigned; they passed the check: sign them now, so
            // that the next event starts a gap of its own.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut prev = read_newest(&tx)?;
            insert_checkpoint(
                &tx,
                &signer,
                &cadence,
                &mut prev,
                head.seq,
                &hex::encode(head.hash),
            )?;
            tx.commit()?;
            tracing::warn!(
                events = head.seq - checked.newest.seq,
                last_seq = head.seq,
                "signed the audit events the previous run left unsigned (it did not stop cleanly)"
            );
        }
        let newest = read_newest(&conn)?.seq;
        let chain_id = read_chain_id(&conn)?;
        let (checkpointed_tx, checkpointed) = watch::channel(newest);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| AuditError::Io {
                what: "cannot start the audit writer's runtime",
                source,
            })?;
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        let commit_times = Arc::new(CommitTimes::default());
        let writer = Writer {
            commit_times: commit_times.clone(),
            next_checkpoint: Instant::now().checked_add(options.checkpoint_every),
            uncheckpointed: false,
            chain_id,
            conn,
            signer,
            cadence,
            options,
            hooks,
            checkpointed: checkpointed_tx,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || runtime.block_on(writer.run(receiver)))
            .map_err(|source| AuditError::Io {
                what: "cannot start the audit writer thread",
                source,
            })?;
        tracing::info!(last_seq = head.seq, "audit log opened");
        Ok(SqliteAudit {
            inner: Arc::new(Inner {
                sender,
                path,
                checkpointed,
                commit_times,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the writer: events queued before are written, a last checkpoint signs the
    /// head, the database is closed; later appends fail with [`AuditError::Closed`].
    /// Returns once the writer has stopped.
    pub async fn shutdown(&self) {
        super::queue::shutdown(&self.inner.sender).await;
    }

    /// The seq of the newest checkpoint, updated as the writer commits new ones (for
    /// sending them to witnesses as they are made).
    pub fn checkpoints(&self) -> watch::Receiver<u64> {
        self.inner.checkpointed.clone()
    }
}

impl AuditLog for SqliteAudit {
    fn commit_times(&self) -> Option<Arc<CommitTimes>> {
        Some(self.inner.commit_times.clone())
    }

    fn queued(&self) -> Option<usize> {
        Some(super::queue::depth(&self.inner.sender))
    }

    /// The writer runs, and the file takes a write transaction (rolled back at once).
    fn ready(&self) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(async move {
            if self.inner.sender.is_closed() {
                return Err(AuditError::Closed);
            }
            let path = self.inner.path.clone();
            tokio::task::spawn_blocking(move || -> Result<(), AuditError> {
                crate::sqlite::probe_write(&path, READY_BUSY_TIMEOUT)?;
                Ok(())
            })
            .await
            .map_err(|e| AuditError::Unavailable(e.to_string()))?
        })
    }

    /// Waits for a place in the queue, then for the commit. Dropping the future after
    /// the event was queued does not withdraw it: it is still recorded.
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>> {
        Box::pin(super::queue::append(&self.inner.sender, event))
    }

    /// One place in the queue and one transaction for all of them: one sync.
    fn append_all(
        &self,
        events: Vec<AuditEvent>,
    ) -> BoxFuture<'_, Vec<Result<Recorded, AuditError>>> {
        Box::pin(super::queue::append_all(&self.inner.sender, events))
    }
}

/// The newest checkpoint text of the log in `data_dir`, if any. Blocking.
pub fn latest_checkpoint(data_dir: &Path) -> Result<Option<String>, AuditError> {
    let conn = open_read_only(&data_dir.join(AUDIT_FILE))?;
    Ok(conn
        .query_row(
            "SELECT text FROM checkpoints ORDER BY seq DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?)
}

/// The checkpoints after seq `after`, oldest first, at most `limit` of them: from
/// the archive segments, then the live log (each once). Blocking.
pub fn checkpoints_after(
    data_dir: &Path,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, String)>, AuditError> {
    let mut found: Vec<(u64, String)> = Vec::new();
    let segments = super::retention::segment_files(data_dir).map_err(|source| AuditError::Io {
        what: "cannot list the audit archive",
        source,
    })?;
    let files = segments
        .iter()
        .filter(|segment| segment.last > after)
        .map(|segment| segment.path.clone())
        .chain(std::iter::once(data_dir.join(AUDIT_FILE)));
    for file in files {
        let from = found.last().map_or(after, |(seq, _)| *seq);
        let wanted = limit.saturating_sub(found.len());
        if wanted == 0 {
            break;
        }
        let conn = open_read_only(&file)?;
        let mut stmt =
            conn.prepare("SELECT seq, text FROM checkpoints WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(
            params![to_sql_seq(from)?, i64::try_from(wanted).unwrap_or(i64::MAX)],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )?;
        for row in rows {
            let (seq, text) = row?;
            found.push((from_sql_seq(seq)?, text));
        }
    }
    Ok(found)
}

/// How many checkpoints the live log holds after seq `after` (those still only in
/// the archive are not counted), and the newest one's seq (0: none). Blocking.
pub fn checkpoints_pending(data_dir: &Path, after: u64) -> Result<(u64, u64), AuditError> {
    let conn = open_read_only(&data_dir.join(AUDIT_FILE))?;
    let (pending, newest): (i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM checkpoints WHERE seq > ?1),
                (SELECT coalesce(max(seq), 0) FROM checkpoints)",
        [to_sql_seq(after)?],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((from_sql_seq(pending)?, from_sql_seq(newest)?))
}

/// The public half of the checkpoint key in `data_dir` (raw, 32 bytes); with
/// `create`, a key is made first when there is none and the log has no checkpoint
/// yet (as the gateway makes it on its first start). Blocking.
pub fn checkpoint_public_key(data_dir: &Path, create: bool) -> Result<Vec<u8>, AuditError> {
    let key_path = data_dir.join(KEY_FILE);
    if !create || key_path.exists() {
        return super::checkpoint::public_key(&key_path);
    }
    let signed = match open_read_only(&data_dir.join(AUDIT_FILE)) {
        Ok(conn) => read_newest(&conn)?.seq > 0,
        Err(_) => false,
    };
    crate::datadir::create_dir(data_dir).map_err(|source| AuditError::Io {
        what: "cannot create the data directory",
        source,
    })?;
    Ok(load_or_create_key(&key_path, !signed)?
        .public_key()
        .to_vec())
}

/// Opens the database without the right to write (and without creating it).
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, rusqlite::Error> {
    crate::sqlite::connect_read_only(path, BUSY_TIMEOUT)
}

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: events with their chain and search columns, checkpoints.
    "CREATE TABLE events (
         seq INTEGER PRIMARY KEY,
         event_id TEXT NOT NULL UNIQUE,
         time TEXT NOT NULL,
         request_id TEXT NOT NULL,
         user TEXT NOT NULL,
         township TEXT,
         connector TEXT,
         purpose TEXT,
         subject_pseudonym TEXT,
         status INTEGER NOT NULL,
         body TEXT NOT NULL,
         prev_hash TEXT NOT NULL,
         hash TEXT NOT NULL
     ) STRICT;
     CREATE INDEX events_time ON events (time);
     CREATE INDEX events_request ON events (request_id);
     CREATE INDEX events_user ON events (user, time);
     CREATE INDEX events_township ON events (township, time);
     CREATE INDEX events_connector ON events (connector, time);
     CREATE INDEX events_purpose ON events (purpose, time);
     CREATE INDEX events_subject ON events (subject_pseudonym, time);
     CREATE INDEX events_status ON events (status, time);
     CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, text TEXT NOT NULL) STRICT;",
    // 2: keep the indexes that narrow a search (time, user, subject, and status: the
    // rare refusals and failures) and drop those over a handful of values (township,
    // connector, purpose) or never searched (request id): every index is written on
    // every append, at the durable writer's expense. Searches on the dropped columns
    // filter a time range instead.
    "DROP INDEX events_request;
     DROP INDEX events_township;
     DROP INDEX events_connector;
     DROP INDEX events_purpose;",
    // 3: the other persons a lookup disclosed (a spouse, children, household
    // members), so that a search by citizen and the citizen's own report find the
    // event. Derived from the event bodies, like the search columns.
    "CREATE TABLE linked_subjects (
         pseudonym TEXT NOT NULL,
         seq INTEGER NOT NULL,
         PRIMARY KEY (pseudonym, seq)
     ) STRICT, WITHOUT ROWID;",
    // 4: the chain id, a stable random id of this log (128 bits, lowercase hex),
    // set once: every receipt names it, so a receipt says which log it is in.
    "INSERT INTO meta (key, value) VALUES ('chain_id', lower(hex(randomblob(16))))
       ON CONFLICT (key) DO NOTHING;",
];

/// The log's chain id (set by migration 4; archive segments copy it).
pub(crate) fn read_chain_id(conn: &Connection) -> Result<String, AuditError> {
    conn.query_row("SELECT value FROM meta WHERE key = 'chain_id'", [], |row| {
        row.get(0)
    })
    .optional()?
    .ok_or_else(|| AuditError::Schema("the log has no chain id".into()))
}

/// The schema version this code writes.
pub(crate) const SCHEMA_VERSION: u32 = SCHEMA.version();

impl From<rusqlite::Error> for AuditError {
    fn from(error: rusqlite::Error) -> AuditError {
        AuditError::Backend(format!("SQLite: {error}"))
    }
}

impl From<rusqlite::Error> for super::SearchError {
    fn from(error: rusqlite::Error) -> super::SearchError {
        super::SearchError::Backend(format!("SQLite: {error}"))
    }
}

/// The audit database's schema, as the shared helper migrates it.
pub(crate) const SCHEMA: crate::sqlite::Schema = crate::sqlite::Schema {
    name: "audit",
    migrations: MIGRATIONS,
};

/// An open that failed, as the audit log reports it.
fn open_error(error: crate::sqlite::OpenError) -> AuditError {
    use crate::sqlite::OpenError;
    match error {
        OpenError::Create { path, source } => AuditError::Io {
            what: if path.ends_with(AUDIT_FILE) {
                "cannot create the audit database"
            } else {
                "cannot create the data directory"
            },
            source,
        },
        OpenError::Sqlite(e) => e.into(),
        other @ (OpenError::NotWal { .. } | OpenError::TooNew { .. } | OpenError::BadVersion) => {
            AuditError::Schema(other.to_string())
        }
    }
}

/// The last event in the chain (sequence 0 and the genesis hash when empty).
#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

fn read_head(conn: &Connection) -> Result<Head, AuditError> {
    // Cached statements: the writer reads the head and the newest checkpoint in every
    // batch's transaction.
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((seq, hash)) = last else {
        return Ok(Head {
            seq: 0,
            hash: GENESIS,
        });
    };
    let seq = from_sql_seq(seq)?;
    let hash = parse_hash(&hash).ok_or_else(|| {
        AuditError::Unavailable("the last stored hash is not a SHA-256 hash".into())
    })?;
    Ok(Head { seq, hash })
}

/// The newest checkpoint, as the next one names it ([`Prev::NONE`] when none).
fn read_newest(conn: &Connection) -> Result<Prev, AuditError> {
    let newest: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, text FROM checkpoints ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(match newest {
        None => Prev::NONE,
        Some((seq, text)) => Prev::of(from_sql_seq(seq)?, &text),
    })
}

/// SQLite integers are signed; sequence numbers are not.
fn to_sql_seq(seq: u64) -> Result<i64, AuditError> {
    i64::try_from(seq).map_err(|_| AuditError::Unavailable("the sequence is exhausted".into()))
}

fn from_sql_seq(seq: i64) -> Result<u64, AuditError> {
    u64::try_from(seq)
        .map_err(|_| AuditError::Unavailable("a stored sequence number is negative".into()))
}

/// Signs the head `(seq, hash)` after `prev`, which then names the new checkpoint.
fn insert_checkpoint(
    conn: &Connection,
    signer: &Signer,
    cadence: &Cadence,
    prev: &mut Prev,
    seq: u64,
    hash_hex: &str,
) -> Result<(), AuditError> {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let text = signer.checkpoint(seq, hash_hex, &time, prev, cadence);
    conn.execute(
        "INSERT INTO checkpoints (seq, text) VALUES (?1, ?2)",
        params![to_sql_seq(seq)?, text],
    )?;
    *prev = Prev::of(seq, &text);
    Ok(())
}

fn is_duplicate_event(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (seq, event_id, time, request_id, user, township,
     connector, purpose, subject_pseudonym, status, body, prev_hash, hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

pub(super) const INSERT_LINKED: &str =
    "INSERT OR IGNORE INTO linked_subjects (pseudonym, seq) VALUES (?1, ?2)";

/// Inserts one event's row with [`INSERT_EVENT`]: its search columns, the canonical
/// body and its hashes (lowercase hex). The SQLite log's writer and the segment
/// files' index store the very same row.
pub(super) fn insert_event(
    insert: &mut rusqlite::CachedStatement<'_>,
    seq: i64,
    c: &super::event::Columns,
    body: &str,
    prev_hash_hex: &str,
    hash_hex: &str,
) -> rusqlite::Result<usize> {
    insert.execute(params![
        seq,
        c.event_id,
        c.time,
        c.request_id,
        c.user,
        c.township,
        c.connector,
        c.purpose,
        c.subject_pseudonym,
        c.status,
        body,
        prev_hash_hex,
        hash_hex,
    ])
}

/// The writer thread's state; it alone holds the connection.
struct Writer {
    conn: Connection,
    /// The log's chain id, named in every receipt.
    chain_id: String,
    signer: Signer,
    cadence: Cadence,
    options: AuditOptions,
    /// Where the newest committed checkpoint's seq is published.
    checkpointed: watch::Sender<u64>,
    /// How long each batch took.
    commit_times: Arc<CommitTimes>,
    hooks: Arc<Hooks>,
    /// When the time trigger fires next (`None`: never, the interval overflows).
    next_checkpoint: Option<Instant>,
    /// Whether events were committed after the newest checkpoint.
    uncheckpointed: bool,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut stopping = Vec::new();
        loop {
            self.hooks.until_running().await;
            let deadline = self.next_checkpoint.filter(|_| self.uncheckpointed);
            let received = match deadline {
                Some(at) => match tokio::time::timeout_at(at, receiver.recv()).await {
                    Ok(received) => received,
                    Err(_elapsed) => {
                        self.checkpoint_now();
                        continue;
                    }
                },
                None => receiver.recv().await,
            };
            // A test hook may hold the writer here too, so that a test can queue a
            // whole batch behind the event just received.
            self.hooks.until_running().await;
            let Some(first) = received else { break };
            let (batch, stops) = take_batch(first, &mut receiver, self.options.batch_max);
            stopping.extend(stops);
            if !batch.is_empty() {
                let started = std::time::Instant::now();
                self.write_batch(batch);
                self.commit_times.record(started.elapsed());
            }
            if !stopping.is_empty() {
                break;
            }
        }
        super::queue::close(&mut receiver, &mut stopping);
        self.stop();
        for done in stopping {
            let _ = done.send(());
        }
    }

    /// Writes one batch in one transaction and answers every waiter.
    fn write_batch(&mut self, batch: Vec<Pending>) {
        let events = batch.len();
        match self.write(&batch) {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, events, "audit batch not committed; its requests fail");
                let _ = super::queue::fail_batch(batch, error);
            }
        }
    }

    /// The batch's transaction: on any error it is rolled back (dropped) and nothing of
    /// it remains; the chain head is read inside it, so a failure never advances it.
    fn write(
        &mut self,
        batch: &[Pending],
    ) -> Result<Vec<Result<Recorded, AuditError>>, AuditError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = read_head(&tx)?;
        let mut prev = read_newest(&tx)?;
        let mut wrote_checkpoint = false;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            let mut insert_linked = tx.prepare_cached(INSERT_LINKED)?;
            for pending in batch {
                let seq = head.seq + 1;
                let hash = link_hash(seq, &head.hash, pending.body.as_bytes());
                let hash_hex = hex::encode(hash);
                let c = &pending.columns;
                let inserted = insert_event(
                    &mut insert,
                    to_sql_seq(seq)?,
                    c,
                    &pending.body,
                    &hex::encode(head.hash),
                    &hash_hex,
                );
                match inserted {
                    Ok(_) => {}
                    // The statement alone was undone; the rest of the batch goes on.
                    Err(e) if is_duplicate_event(&e) => {
                        outcomes.push(Err(AuditError::DuplicateEvent));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                for pseudonym in &c.linked {
                    insert_linked.execute(params![pseudonym, to_sql_seq(seq)?])?;
                }
                head = Head { seq, hash };
                if self.cadence.due_by_count(prev.seq, seq) {
                    insert_checkpoint(&tx, &self.signer, &self.cadence, &mut prev, seq, &hash_hex)?;
                    wrote_checkpoint = true;
                }
                outcomes.push(Ok(Recorded {
                    chain_id: self.chain_id.clone(),
                    seq,
                    hash: hash_hex,
                }));
            }
        }
        let time_due = self.next_checkpoint.is_some_and(|at| Instant::now() >= at);
        if head.seq > prev.seq && time_due {
            let hash_hex = hex::encode(head.hash);
            insert_checkpoint(
                &tx,
                &self.signer,
                &self.cadence,
                &mut prev,
                head.seq,
                &hash_hex,
            )?;
            wrote_checkpoint = true;
        }
        self.hooks.commit_fault()?;
        tx.commit()?;
        self.hooks.committed(wrote_checkpoint);
        if wrote_checkpoint {
            self.next_checkpoint = Instant::now().checked_add(self.options.checkpoint_every);
            self.checkpointed.send_replace(prev.seq);
        }
        self.uncheckpointed = head.seq > prev.seq;
        Ok(outcomes)
    }

    /// Signs the head now if events were added since the newest checkpoint.
    fn checkpoint_now(&mut self) {
        let retry_in = match self.write_checkpoint() {
            Ok(()) => self.options.checkpoint_every,
            Err(error) => {
                // Soon: the cadence (which verify holds the log to) is running out.
                tracing::warn!(%error, "audit checkpoint not written; retrying in a second");
                self.options.checkpoint_every.min(RETRY_CHECKPOINT)
            }
        };
        self.next_checkpoint = Instant::now().checked_add(retry_in);
    }

    fn write_checkpoint(&mut self) -> Result<(), AuditError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = read_head(&tx)?;
        let mut prev = read_newest(&tx)?;
        let wrote = head.seq > prev.seq;
        if wrote {
            let hash_hex = hex::encode(head.hash);
            insert_checkpoint(
                &tx,
                &self.signer,
                &self.cadence,
                &mut prev,
                head.seq,
                &hash_hex,
            )?;
        }
        self.hooks.commit_fault()?;
        tx.commit()?;
        self.hooks.committed(wrote);
        if wrote {
            self.checkpointed.send_replace(prev.seq);
        }
        self.uncheckpointed = false;
        Ok(())
    }

    /// The last checkpoint, then the connection closes (folding the WAL back into the
    /// database file when it is the last one open).
    fn stop(mut self) {
        if self.uncheckpointed {
            self.checkpoint_now();
        }
        if let Err((_, error)) = self.conn.close() {
            tracing::warn!(%error, "the audit database did not close cleanly");
        }
        tracing::info!("audit writer stopped");
    }
}
