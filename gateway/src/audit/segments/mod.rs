//! The audit log made for appending: the hash chain in append-only segment files,
//! one `fdatasync` per batch, and the privacy officer's index built beside it off
//! the request path ([`SegmentAudit`]).
//!
//! The events, their hash chain and the checkpoints are exactly those of the
//! [SQLite log](super) — the same canonical body, the same `hash(seq)`, the same
//! signed checkpoint texts and cadence — only kept in files written once, front to
//! back: no page is rewritten, no WAL is copied back, and a batch costs one
//! `write` and one `fdatasync` before any of its requests is answered ("no audit, no
//! data" is unchanged). `DATA_DIR/audit.db` becomes the index ([`index`]): derived,
//! rebuilt from the segments by `gateway audit reindex`.
//!
//! # The segment format (what a second party can re-implement)
//!
//! The segments are the files `DATA_DIR/chain/<first>.seg`, `<first>` the seq of the
//! first event the file holds, in decimal, zero-padded to 20 digits. Each file is a
//! 32-byte header — the 8 bytes `CGAUDSG1`, the chain id (16 bytes; its lowercase hex
//! is the chain id every receipt names), `<first>` (8 bytes, big-endian) — followed
//! by frames, each:
//!
//! ```text
//! length   u32 big-endian: the payload's length (9 bytes at least, 16 MiB at most)
//! crc      u32 big-endian: CRC-32C (Castagnoli) of the payload
//! payload  kind (1 byte), seq (8 bytes, big-endian), then by kind:
//!          1 = event:      previous hash (32 bytes, raw), canonical body
//!          2 = checkpoint: the checkpoint's text (UTF-8), signing the event `seq`
//! ```
//!
//! Events follow each other by seq without gaps across files, each storing the hash
//! of the event before (the genesis hash, 32 zero bytes, before seq 1). A checkpoint
//! frame comes right after the event it signs. When a file reaches its size limit
//! (64 MiB) the writer signs the head, if it is not signed yet, and starts the next
//! file: every segment but the newest ends on a checkpoint.
//!
//! # Crashes
//!
//! A batch is written with one `write` and made durable with one `fdatasync`; its
//! waiters are answered after that, and only then is the next batch written. So a
//! crash can only cut the last batch short, which nobody was told was recorded. At
//! start the writer checks the whole chain ([`walk`]) and cuts such a torn end off
//! (logged, with its size). It refuses to cut when the index already holds an event
//! the cut would remove (the index only ever holds acknowledged events: the damage
//! is then not a torn write), and a frame that does not read anywhere but at the very
//! end of the newest segment stops it with [`AuditError::Broken`].
//!
//! # Search lag
//!
//! The index is written after the writer answers, in SQLite transactions that gather
//! what was made durable over at most [`index::GATHER`] (10 ms). A reader in the gateway's process ([`SegmentAuditReader`]) first waits
//! until the index holds every event made durable before the read began (at most
//! [`MAX_LAG`]; past that it answers from what is indexed and logs it), so a
//! privacy officer always sees a lookup that was answered before the search.

mod archive;
pub mod backend;
pub mod format;
pub mod inbox;
pub mod index;
pub mod migrate;
pub(crate) mod walk;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, watch};

use super::anomalies::{Anomaly, Thresholds};
use super::checkpoint::{encode_public_key, load_or_create_key};
use super::commit_times::CommitTimes;
use super::event::{AuditEvent, Recorded};
use super::hooks::Hooks;
use super::queue::Command;
use super::reader::{AuditReader, SqliteAuditReader};
use super::report::CitizenReport;
use super::search::{Filter, Page, SearchError, StoredEvent};
use super::sqlite::{AUDIT_FILE, AuditOptions, KEY_FILE};
use super::verify::Expectations;
use super::{AuditError, AuditLog};
pub use backend::SegmentAuditBackend;
pub use inbox::InboxAudit;
pub use index::{Progress, reindex, wait_indexed};

/// A segment file's size limit.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// How long a search waits for the index to hold what was answered before it.
pub const MAX_LAG: Duration = Duration::from_secs(1);

/// The audit log in segment files. Cloning is cheap; all clones feed one writer
/// thread, which stops (after a last checkpoint, and after the index has every
/// event) when [`SegmentAudit::shutdown`] is called or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SegmentAudit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: mpsc::Sender<Command>,
    data_dir: PathBuf,
    /// The newest event made durable.
    durable: watch::Receiver<u64>,
    /// How far the index has got.
    indexed: watch::Receiver<Progress>,
    /// Why the writer refuses to append, once a write could not be undone.
    failed: Arc<std::sync::OnceLock<String>>,
    commit_times: Arc<CommitTimes>,
}

/// The chain id of the segments in `chain_dir` (from the oldest one's header), if
/// there are any.
pub(crate) fn chain_id_of(chain_dir: &Path) -> Result<Option<String>, AuditError> {
    let segments = format::list(chain_dir).map_err(|source| AuditError::Io {
        what: "cannot list the audit segments",
        source,
    })?;
    let Some(oldest) = segments.first() else {
        return Ok(None);
    };
    let mut header = [0; format::HEADER_LEN];
    let read = std::fs::File::open(&oldest.path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut header));
    read.map_err(|source| AuditError::Io {
        what: "cannot read an audit segment's header",
        source,
    })?;
    let header = format::Header::decode(&header).map_err(AuditError::Backend)?;
    Ok(Some(hex::encode(header.chain_id)))
}

/// Whether a process (a running gateway) is writing the segments in `data_dir`.
pub fn writer_running(data_dir: &Path) -> bool {
    writer::held(&data_dir.join(format::DIR))
}

/// Whether the data directory keeps its audit log in segment files.
pub fn in_segments(data_dir: &Path) -> bool {
    data_dir.join(format::DIR).is_dir()
}

impl SegmentAudit {
    /// Opens (creating if needed) the segments in `DATA_DIR/chain` and the checkpoint
    /// key, checks the chain, cuts a torn end, brings the index up to date and starts
    /// the writer and the indexer. Blocking: call it before serving or from
    /// `spawn_blocking`.
    pub fn open(data_dir: &Path, options: AuditOptions) -> Result<SegmentAudit, AuditError> {
        SegmentAudit::open_with(data_dir, options, Arc::new(Hooks::inert()), SEGMENT_BYTES)
    }

    pub(crate) fn open_with(
        data_dir: &Path,
        options: AuditOptions,
        hooks: Arc<Hooks>,
        segment_bytes: u64,
    ) -> Result<SegmentAudit, AuditError> {
        let chain_dir = data_dir.join(format::DIR);
        let fresh = !chain_dir.exists();
        if fresh {
            refuse_sqlite_log(data_dir)?;
            crate::datadir::create_dir(&chain_dir).map_err(|source| AuditError::Io {
                what: "cannot create the audit segments' directory",
                source,
            })?;
            writer::sync_dir(data_dir)?;
        }
        let lock = writer::take_lock(&chain_dir)?;
        let key_path = data_dir.join(KEY_FILE);
        if options.pinned_key.is_some() && !key_path.exists() {
            return Err(AuditError::Key(
                "a checkpoint key is pinned but the data directory holds no key; restore \
                 audit-signing.key instead of starting a new one"
                    .into(),
            ));
        }
        let empty = format::list(&chain_dir)
            .map_err(|source| AuditError::Io {
                what: "cannot list the audit segments",
                source,
            })?
            .is_empty();
        let signer = load_or_create_key(&key_path, empty)?;
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
        let expect = Expectations {
            cadence: options.cadence(),
            pinned_key: options.pinned_key.clone(),
            witnessed: Vec::new(),
        };
        let walked = walk::walk(
            data_dir,
            walk::Key::Known(signer.public_key().to_vec()),
            &expect,
        )
        .map_err(AuditError::Broken)?;
        if let Some(torn) = &walked.torn {
            writer::cut_torn_end(data_dir, torn, walked.head_seq)?;
        }
        let opened = writer::Writer::open(
            lock,
            &chain_dir,
            &walked,
            signer,
            options,
            hooks,
            segment_bytes,
        )?;
        let mut conn = index::open(data_dir, &opened.chain_id)?;
        // The index is written without syncs: after a run that did not stop cleanly
        // (a torn end, an unsigned tail) its structure is checked too; an index that
        // is not sound is read again from the segments.
        let unclean = walked.torn.is_some() || walked.head_seq > walked.newest.seq;
        let first_live = walked
            .last_segment
            .as_ref()
            .and_then(|_| format::list(&chain_dir).ok())
            .and_then(|live| live.first().map(|s| s.first_seq))
            .unwrap_or(1);
        if !index::sound(&conn, first_live, unclean)? {
            tracing::warn!(
                "the audit index is not sound (a crash, or rows removed); rebuilding it from the segments"
            );
            index::clear(&conn)?;
        }
        let caught_up = index::catch_up(&mut conn, data_dir)?;
        if caught_up.events > opened.head_seq {
            return Err(AuditError::Backend(format!(
                "the audit index holds events up to seq {} but the segments end at seq {}; \
                 the index is not this chain's (run `gateway audit reindex`)",
                caught_up.events, opened.head_seq
            )));
        }
        let (indexed_tx, indexed) = watch::channel(caught_up);
        let (index_tx, index_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("audit-index".into())
            .spawn(move || index::run(conn, index_rx, indexed_tx))
            .map_err(|source| AuditError::Io {
                what: "cannot start the audit indexer thread",
                source,
            })?;
        let (sender, receiver) = mpsc::channel(opened.queue);
        let (durable_tx, durable) = watch::channel(opened.head_seq);
        let failed = Arc::new(std::sync::OnceLock::new());
        let commit_times = Arc::new(CommitTimes::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| AuditError::Io {
                what: "cannot start the audit writer's runtime",
                source,
            })?;
        let head_seq = opened.head_seq;
        let writer = opened.start(index_tx, durable_tx, failed.clone(), commit_times.clone());
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || runtime.block_on(writer.run(receiver)))
            .map_err(|source| AuditError::Io {
                what: "cannot start the audit writer thread",
                source,
            })?;
        tracing::info!(last_seq = head_seq, "audit log opened (segment files)");
        Ok(SegmentAudit {
            inner: Arc::new(Inner {
                sender,
                data_dir: data_dir.to_owned(),
                durable,
                indexed,
                failed,
                commit_times,
            }),
        })
    }

    /// Stops the writer: events queued before are written, a last checkpoint signs
    /// the head, the index takes everything; later appends fail with
    /// [`AuditError::Closed`]. Returns once both have stopped.
    pub async fn shutdown(&self) {
        super::queue::shutdown(&self.inner.sender).await;
    }

    /// The seq of the newest checkpoint in the index (where witnesses are fed from),
    /// updated as the indexer stores new ones.
    pub fn checkpoints(&self) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(self.inner.indexed.borrow().checkpoint);
        let mut indexed = self.inner.indexed.clone();
        tokio::spawn(async move {
            while indexed.changed().await.is_ok() {
                let seq = indexed.borrow().checkpoint;
                tx.send_if_modified(|held| std::mem::replace(held, seq) != seq);
                if tx.is_closed() {
                    break;
                }
            }
        });
        rx
    }

    /// How far the index has got.
    pub fn indexed(&self) -> Progress {
        *self.inner.indexed.borrow()
    }

    /// Waits (at most [`MAX_LAG`]) until the index holds every event made durable
    /// before this call; says whether it does.
    pub async fn until_indexed(&self) -> bool {
        let durable = *self.inner.durable.borrow();
        let mut indexed = self.inner.indexed.clone();
        let caught_up = tokio::time::timeout(
            MAX_LAG,
            indexed.wait_for(|progress| progress.events >= durable),
        )
        .await;
        matches!(caught_up, Ok(Ok(_)))
    }

    /// The reader for the privacy officer's API: the index, read once it holds what
    /// was answered before each read.
    pub fn reader(&self) -> SegmentAuditReader {
        SegmentAuditReader {
            log: self.clone(),
            index: SqliteAuditReader::new(self.inner.data_dir.clone()),
        }
    }
}

/// A data directory whose audit log is still `audit.db` (the SQLite log) is not
/// silently given a second, empty chain.
fn refuse_sqlite_log(data_dir: &Path) -> Result<(), AuditError> {
    if matches!(index::indexed_events(data_dir), Ok(Some(_))) || data_dir.join(AUDIT_FILE).exists()
    {
        return Err(AuditError::Schema(
            "this data directory keeps its audit log in audit.db (the SQLite store); \
             start it with `audit.store: sqlite`, or move the log to segment files with \
             `gateway audit migrate-to-segments`"
                .into(),
        ));
    }
    Ok(())
}

impl AuditLog for SegmentAudit {
    fn commit_times(&self) -> Option<Arc<CommitTimes>> {
        Some(self.inner.commit_times.clone())
    }

    fn queued(&self) -> Option<usize> {
        Some(super::queue::depth(&self.inner.sender))
    }

    /// The writer runs, has not met a write it could not undo, and the segments'
    /// directory takes a new file.
    fn ready(&self) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(async move {
            if self.inner.sender.is_closed() {
                return Err(AuditError::Closed);
            }
            if let Some(reason) = self.inner.failed.get() {
                return Err(AuditError::Unavailable(reason.clone()));
            }
            // The directory takes a new file (not read-only, not full).
            let probe = self.inner.data_dir.join(format::DIR).join(".ready-probe");
            tokio::task::spawn_blocking(move || {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&probe)
                    .and_then(|mut file| file.write_all(b"ready"))
                    .and_then(|()| std::fs::remove_file(&probe))
            })
            .await
            .map_err(|e| AuditError::Unavailable(e.to_string()))?
            .map_err(|source| AuditError::Io {
                what: "the audit segments' directory takes no new file",
                source,
            })
        })
    }

    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>> {
        Box::pin(super::queue::append(&self.inner.sender, event))
    }

    fn append_all(
        &self,
        events: Vec<AuditEvent>,
    ) -> BoxFuture<'_, Vec<Result<Recorded, AuditError>>> {
        Box::pin(super::queue::append_all(&self.inner.sender, events))
    }
}

/// Reads the index of a [`SegmentAudit`] in this process, each read once the index
/// holds every event answered before it (see the module docs).
#[derive(Debug, Clone)]
pub struct SegmentAuditReader {
    log: SegmentAudit,
    index: SqliteAuditReader,
}

impl SegmentAuditReader {
    async fn caught_up(&self) {
        if !self.log.until_indexed().await {
            tracing::warn!(
                lag_ms = MAX_LAG.as_millis() as u64,
                "the audit index lags behind the log; this read may miss the newest events"
            );
        }
    }
}

impl AuditReader for SegmentAuditReader {
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        self.index.ready()
    }

    fn search(
        &self,
        filter: Filter,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, SearchError>> {
        Box::pin(async move {
            self.caught_up().await;
            self.index.search(filter, before, limit).await
        })
    }

    fn events(&self, filter: Filter) -> BoxStream<'static, Result<StoredEvent, SearchError>> {
        let this = self.clone();
        Box::pin(
            futures::stream::once(async move {
                this.caught_up().await;
                this.index.events(filter)
            })
            .flatten(),
        )
    }

    fn citizen_report(
        &self,
        subject_pseudonym: String,
        today: NaiveDate,
    ) -> BoxFuture<'_, Result<CitizenReport, SearchError>> {
        Box::pin(async move {
            self.caught_up().await;
            self.index.citizen_report(subject_pseudonym, today).await
        })
    }

    fn anomalies(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> BoxFuture<'_, Result<Vec<Anomaly>, SearchError>> {
        Box::pin(async move {
            self.caught_up().await;
            self.index.anomalies(from, until, thresholds).await
        })
    }
}
