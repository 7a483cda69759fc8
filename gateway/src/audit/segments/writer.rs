//! The writer thread of the segment files: it alone appends. Each batch from the
//! queue is framed into one buffer (its events, and the checkpoints the cadence
//! asks for), written with one `write` and made durable with one `fdatasync`, and
//! only then are its waiters answered and its events handed to the indexer. A write
//! that fails is cut off again (the file truncated to where it was), so the chain
//! never continues after bytes nobody was told about; while even that fails (a
//! read-only file system) the writer refuses every append, trying the cut again
//! before each.
//!
//! Before each write the writer checks that the file it appends to is still the
//! segment at its path: a segment removed under the running gateway would take every
//! event appended to it along at the next start. A removed segment is put back,
//! byte for byte, from the file the writer still holds open; one replaced by
//! another file stops the writer (every later append refused).

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::super::cadence::Cadence;
use super::super::chain::link_hash;
use super::super::checkpoint::{Prev, Signer};
use super::super::commit_times::CommitTimes;
use super::super::event::Recorded;
use super::super::hooks::Hooks;
use super::super::queue::{Command, Pending, take_batch};
use super::super::sqlite::AuditOptions;
use super::super::{AuditError, VerifyFailure};
use super::format::{self, Header};
use super::index::{IndexedEvent, ToIndex};
use super::walk::{Torn, Walked};

/// How soon the writer tries again when a timed checkpoint could not be written.
const RETRY_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

/// How many recent event ids the writer remembers to refuse a second copy.
const RECENT_IDS: usize = 65_536;

/// Syncs a directory (after a file in it was created, renamed or removed).
pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AuditError::Io {
            what: "cannot sync the audit segments' directory",
            source,
        })
}

/// The lock file in the chain directory: held by the one process that appends.
pub(super) const LOCK_FILE: &str = ".writer.lock";

/// Takes the chain's writer lock (the operating system releases it if the process
/// dies): a second process appending to the same segments would fork the chain.
pub(super) fn take_lock(chain_dir: &Path) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(chain_dir.join(LOCK_FILE))
        .map_err(|source| AuditError::Io {
            what: "cannot open the audit writer's lock file",
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::Unavailable(
            "another process (a running gateway) is writing this data directory's audit log; \
             ask it through its API, or stop it first"
                .into(),
        )),
        Err(std::fs::TryLockError::Error(source)) => Err(AuditError::Io {
            what: "cannot lock the audit writer's lock file",
            source,
        }),
    }
}

/// Whether a process holds the chain's writer lock (a gateway is writing).
pub(super) fn held(chain_dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(chain_dir.join(LOCK_FILE))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Cuts off what a crash left of an unacknowledged write at the end of the newest
/// segment — unless the index holds an event the cut would remove.
pub(super) fn cut_torn_end(data_dir: &Path, torn: &Torn, head_seq: u64) -> Result<(), AuditError> {
    if let Some(indexed) = super::index::indexed_events(data_dir)?
        && indexed > head_seq
    {
        return Err(AuditError::Broken(VerifyFailure {
            seq: Some(head_seq + 1),
            problem: format!(
                "the newest segment is damaged at byte {} ({}), and the index holds events up \
                 to seq {indexed} after it: acknowledged events are damaged, not a write a \
                 crash cut short; restore the segment from a backup",
                torn.valid_len, torn.problem
            ),
        }));
    }
    let io = |source| AuditError::Io {
        what: "cannot cut the torn end off the newest audit segment",
        source,
    };
    if torn.valid_len < format::HEADER_LEN as u64 {
        std::fs::remove_file(&torn.path).map_err(io)?;
    } else {
        let file = OpenOptions::new()
            .write(true)
            .open(&torn.path)
            .map_err(io)?;
        file.set_len(torn.valid_len).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    if let Some(dir) = torn.path.parent() {
        sync_dir(dir)?;
    }
    tracing::warn!(
        bytes = torn.file_len - torn.valid_len,
        last_seq = head_seq,
        problem = torn.problem,
        "cut off the end of the newest audit segment: a write the last run did not finish \
         (it was never acknowledged)"
    );
    Ok(())
}

/// The writer, opened but not started.
pub(super) struct Writer {
    pub(super) chain_id: String,
    pub(super) head_seq: u64,
    pub(super) queue: usize,
    state: State,
}

/// The writer thread's state.
struct State {
    /// Held while the writer lives (see [`take_lock`]).
    _lock: File,
    chain_dir: PathBuf,
    segment_bytes: u64,
    file: File,
    /// The current segment's first seq and length.
    segment_first: u64,
    len: u64,
    chain_id: [u8; 16],
    chain_hex: String,
    head_seq: u64,
    head_hash: [u8; 32],
    prev: Prev,
    signer: Signer,
    cadence: Cadence,
    options: AuditOptions,
    hooks: Arc<Hooks>,
    recent: RecentIds,
    buf: Vec<u8>,
    index: Option<std::sync::mpsc::Sender<ToIndex>>,
    durable: Option<watch::Sender<u64>>,
    failed: Arc<OnceLock<String>>,
    /// A failed write left bytes after `len` that could not be cut off yet.
    uncut: bool,
    commit_times: Arc<CommitTimes>,
    next_checkpoint: Option<Instant>,
}

impl Writer {
    /// Opens the newest segment for appending (creating the first one, with a new
    /// chain id, when there is none) and signs a tail a crash left unsigned.
    pub(super) fn open(
        lock: File,
        chain_dir: &Path,
        walked: &Walked,
        signer: Signer,
        options: AuditOptions,
        hooks: Arc<Hooks>,
        segment_bytes: u64,
    ) -> Result<Writer, AuditError> {
        let chain_id = walked.chain_id.unwrap_or_else(rand::random);
        let (file, segment_first, len) = match &walked.last_segment {
            Some((segment, valid_len)) if *valid_len >= format::HEADER_LEN as u64 => {
                let file = append_to(&segment.path)?;
                (file, segment.first_seq, *valid_len)
            }
            _ => {
                let first = walked.head_seq + 1;
                let file = create_segment(chain_dir, chain_id, first)?;
                (file, first, format::HEADER_LEN as u64)
            }
        };
        let mut state = State {
            _lock: lock,
            chain_dir: chain_dir.to_owned(),
            segment_bytes,
            file,
            segment_first,
            len,
            chain_id,
            chain_hex: hex::encode(chain_id),
            head_seq: walked.head_seq,
            head_hash: walked.head_hash,
            prev: walked.newest,
            signer,
            cadence: options.cadence(),
            next_checkpoint: Instant::now().checked_add(options.checkpoint_every),
            options,
            hooks,
            recent: RecentIds::default(),
            buf: Vec::new(),
            index: None,
            durable: None,
            failed: Arc::new(OnceLock::new()),
            uncut: false,
            commit_times: Arc::new(CommitTimes::default()),
        };
        if walked.head_seq > walked.newest.seq {
            // A crash left these unsigned; they passed the check: sign them now.
            state.write_checkpoint()?;
            tracing::warn!(
                events = walked.head_seq - walked.newest.seq,
                last_seq = walked.head_seq,
                "signed the audit events the previous run left unsigned (it did not stop cleanly)"
            );
        }
        Ok(Writer {
            chain_id: state.chain_hex.clone(),
            head_seq: state.head_seq,
            queue: state.options.queue.max(1),
            state,
        })
    }

    /// The writer, wired to the indexer and the log's handles.
    pub(super) fn start(
        mut self,
        index: std::sync::mpsc::Sender<ToIndex>,
        durable: watch::Sender<u64>,
        failed: Arc<OnceLock<String>>,
        commit_times: Arc<CommitTimes>,
    ) -> Writer {
        self.state.index = Some(index);
        self.state.durable = Some(durable);
        self.state.failed = failed;
        self.state.commit_times = commit_times;
        self
    }

    pub(super) async fn run(self, mut receiver: mpsc::Receiver<Command>) {
        let mut state = self.state;
        let mut stopping = Vec::new();
        // The inbox is looked into at once: what waited while no gateway ran.
        let mut next_inbox = Instant::now();
        loop {
            state.hooks.until_running().await;
            let checkpoint_at = state
                .next_checkpoint
                .filter(|_| state.head_seq > state.prev.seq);
            let wake = checkpoint_at.map_or(next_inbox, |at| at.min(next_inbox));
            let received = match tokio::time::timeout_at(wake, receiver.recv()).await {
                Ok(received) => received,
                Err(_elapsed) => {
                    let now = Instant::now();
                    if now >= next_inbox {
                        state.record_inbox();
                        next_inbox = now + super::inbox::POLL;
                    }
                    if checkpoint_at.is_some_and(|at| now >= at) {
                        state.checkpoint_now();
                    }
                    continue;
                }
            };
            state.hooks.until_running().await;
            let Some(first) = received else { break };
            let (batch, stops) = take_batch(first, &mut receiver, state.options.batch_max);
            stopping.extend(stops);
            if !batch.is_empty() {
                let started = std::time::Instant::now();
                state.write_batch(batch);
                state.commit_times.record(started.elapsed());
            }
            if !stopping.is_empty() {
                break;
            }
            // Under steady load the queue never idles: look into the inbox here too.
            if Instant::now() >= next_inbox {
                state.record_inbox();
                next_inbox = Instant::now() + super::inbox::POLL;
            }
        }
        super::super::queue::close(&mut receiver, &mut stopping);
        state.stop();
        for done in stopping {
            let _ = done.send(());
        }
    }
}

fn append_to(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| AuditError::Io {
            what: "cannot open the newest audit segment",
            source,
        })
}

/// Creates the segment whose first event is `first`, with its header, durable.
fn create_segment(chain_dir: &Path, chain_id: [u8; 16], first: u64) -> Result<File, AuditError> {
    let io = |source| AuditError::Io {
        what: "cannot create an audit segment",
        source,
    };
    let path = chain_dir.join(format::file_name(first));
    // What an earlier attempt left (the disk full before its header was whole) holds
    // no record: it goes.
    if std::fs::metadata(&path).is_ok_and(|meta| meta.len() <= format::HEADER_LEN as u64) {
        std::fs::remove_file(&path).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    let header = Header {
        chain_id,
        first_seq: first,
    };
    file.write_all(&header.encode()).map_err(io)?;
    file.sync_all().map_err(io)?;
    sync_dir(chain_dir)?;
    Ok(file)
}

/// What one batch's write did.
struct Appended {
    /// Each event's outcome, in the batch's order.
    outcomes: Vec<Result<Recorded, AuditError>>,
    /// The events written, in order.
    written: Vec<Link>,
    /// The checkpoints signed in the write: (seq, text).
    checkpoints: Vec<(u64, String)>,
}

/// One written event: its place in the batch and in the chain.
struct Link {
    at: usize,
    seq: u64,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// The ids of the newest events, to refuse an event recorded twice: kept as keyed
/// 64-bit hashes (no allocation per event; a false match is about one in 2^48 at
/// the window's size).
#[derive(Default)]
struct RecentIds {
    keys: std::hash::RandomState,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl RecentIds {
    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.keys.hash_one(id)
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(&self.key(id))
    }

    fn insert(&mut self, id: &str) {
        let key = self.key(id);
        if self.set.insert(key) {
            self.order.push_back(key);
            if self.order.len() > RECENT_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

impl State {
    /// Signs the head after `self.prev` and frames the checkpoint into `self.buf`.
    fn sign_head(&mut self, checkpoints: &mut Vec<(u64, String)>) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let text = self.signer.checkpoint(
            self.head_seq,
            &hex::encode(self.head_hash),
            &time,
            &self.prev,
            &self.cadence,
        );
        format::encode_checkpoint(&mut self.buf, self.head_seq, &text);
        self.prev = Prev::of(self.head_seq, &text);
        checkpoints.push((self.head_seq, text));
    }

    /// Writes `self.buf` at the end of the segment and syncs it; on failure the
    /// segment is cut back to where it was.
    fn write_out(&mut self) -> Result<(), AuditError> {
        if self.uncut {
            self.cut_back().map_err(|source| AuditError::Io {
                what: "a failed write still cannot be cut off the audit segment; the writer \
                       appends nothing after it",
                source,
            })?;
            self.uncut = false;
            tracing::info!("cut a failed write off the audit segment; appending again");
        }
        self.segment_in_place()?;
        let written = self.hooks.commit_fault().and_then(|()| {
            self.file
                .write_all(&self.buf)
                .and_then(|()| self.file.sync_data())
                .map_err(|source| AuditError::Io {
                    what: "cannot write the audit segment",
                    source,
                })
        });
        match written {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(error) => {
                if let Err(e) = self.cut_back() {
                    tracing::error!(
                        error = %e,
                        "a failed write could not be cut off the audit segment; the writer \
                         refuses every append until it can"
                    );
                    self.uncut = true;
                }
                Err(error)
            }
        }
    }

    /// Cuts the segment back to the end of the last acknowledged write (nothing to
    /// do when the failed write left nothing there).
    fn cut_back(&mut self) -> std::io::Result<()> {
        if self.file.metadata()?.len() != self.len {
            self.file.set_len(self.len)?;
            self.file.sync_all()?;
        }
        Ok(())
    }

    /// Checks that the open segment is still the file at its path, putting a removed
    /// one back from the open file; a replaced one stops the writer.
    fn segment_in_place(&mut self) -> Result<(), AuditError> {
        let path = self.chain_dir.join(format::file_name(self.segment_first));
        let open = self.file.metadata().map_err(|source| AuditError::Io {
            what: "cannot read the open audit segment's metadata",
            source,
        })?;
        match std::fs::symlink_metadata(&path) {
            Ok(there) if there.dev() == open.dev() && there.ino() == open.ino() => Ok(()),
            Ok(_) => {
                let reason = format!(
                    "the audit segment {} was replaced by another file under the running \
                     gateway; the writer appends nothing more (the events it held are in the \
                     file the gateway holds open: /proc/{}/fd/{}; put it back and restart)",
                    path.display(),
                    std::process::id(),
                    self.file.as_raw_fd()
                );
                tracing::error!(%reason, "audit writer stopped appending");
                let _ = self.failed.set(reason.clone());
                Err(AuditError::Unavailable(reason))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.restore(&path),
            Err(source) => Err(AuditError::Io {
                what: "cannot find the open audit segment at its path",
                source,
            }),
        }
    }

    /// Writes the open segment's acknowledged bytes back to `path` (it was removed
    /// under the gateway) and appends to that file from now on.
    fn restore(&mut self, path: &Path) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            what: "the open audit segment was removed under the gateway and cannot be put back",
            source,
        };
        let mut open =
            File::open(format!("/proc/self/fd/{}", self.file.as_raw_fd())).map_err(io)?;
        let mut name = path.as_os_str().to_owned();
        name.push(".restoring");
        let restoring = PathBuf::from(name);
        let mut copy = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&restoring)
            .map_err(io)?;
        let copied = std::io::copy(&mut (&mut open).take(self.len), &mut copy).map_err(io)?;
        if copied != self.len {
            let _ = std::fs::remove_file(&restoring);
            return Err(AuditError::Unavailable(format!(
                "the open audit segment was removed under the gateway and holds {copied} of \
                 its {} bytes",
                self.len
            )));
        }
        copy.sync_all().map_err(io)?;
        std::fs::rename(&restoring, path).map_err(io)?;
        sync_dir(&self.chain_dir)?;
        self.file = append_to(path)?;
        tracing::error!(
            segment = %path.display(),
            bytes = self.len,
            "the open audit segment was removed under the running gateway; put it back from \
             the open file (nothing lost)"
        );
        Ok(())
    }

    /// Starts the next segment when this one is full, ending it on a checkpoint.
    fn roll_if_full(&mut self) -> Result<(), AuditError> {
        if self.len < self.segment_bytes || self.segment_first == self.head_seq + 1 {
            return Ok(());
        }
        if self.head_seq > self.prev.seq {
            self.write_checkpoint()?;
        }
        self.file = create_segment(&self.chain_dir, self.chain_id, self.head_seq + 1)?;
        self.segment_first = self.head_seq + 1;
        self.len = format::HEADER_LEN as u64;
        Ok(())
    }

    /// Writes one batch and answers every waiter.
    fn write_batch(&mut self, batch: Vec<Pending>) {
        let outcome = match self.failed.get() {
            Some(reason) => Err(AuditError::Unavailable(reason.clone())),
            None => self.roll_if_full().and_then(|()| self.append(&batch)),
        };
        match outcome {
            Ok(Appended {
                outcomes,
                written,
                checkpoints,
            }) => {
                let mut events = Vec::with_capacity(written.len());
                let mut written = written.into_iter().peekable();
                for (i, (pending, outcome)) in batch.into_iter().zip(outcomes).enumerate() {
                    let _ = pending.reply.send(outcome);
                    if let Some(link) = written.next_if(|link| link.at == i) {
                        self.recent.insert(&pending.columns.event_id);
                        events.push(IndexedEvent {
                            seq: link.seq,
                            prev_hash: link.prev_hash,
                            hash: link.hash,
                            columns: pending.columns,
                            body: pending.body,
                        });
                    }
                }
                self.hand_on(events, checkpoints);
            }
            Err(error) => {
                tracing::error!(%error, events = batch.len(), "audit batch not written; its requests fail");
                let _ = super::super::queue::fail_batch(batch, error);
            }
        }
    }

    /// Frames, writes and syncs the batch; on failure nothing of it remains.
    fn append(&mut self, batch: &[Pending]) -> Result<Appended, AuditError> {
        let (head_seq, head_hash, prev) = (self.head_seq, self.head_hash, self.prev);
        self.buf.clear();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut written = Vec::with_capacity(batch.len());
        let mut checkpoints = Vec::new();
        let mut in_batch: HashSet<&str> = HashSet::new();
        for (i, pending) in batch.iter().enumerate() {
            let id = pending.columns.event_id.as_str();
            if self.recent.contains(id) || !in_batch.insert(id) {
                outcomes.push(Err(AuditError::DuplicateEvent));
                continue;
            }
            let seq = self.head_seq + 1;
            let body = pending.body.as_bytes();
            let hash = link_hash(seq, &self.head_hash, body);
            format::encode_event(&mut self.buf, seq, &self.head_hash, body);
            written.push(Link {
                at: i,
                seq,
                prev_hash: self.head_hash,
                hash,
            });
            self.head_seq = seq;
            self.head_hash = hash;
            if self.cadence.due_by_count(self.prev.seq, seq) {
                self.sign_head(&mut checkpoints);
            }
            outcomes.push(Ok(Recorded {
                chain_id: self.chain_hex.clone(),
                seq,
                hash: hex::encode(hash),
            }));
        }
        let time_due = self.next_checkpoint.is_some_and(|at| Instant::now() >= at);
        if self.head_seq > self.prev.seq && time_due {
            self.sign_head(&mut checkpoints);
        }
        if self.buf.is_empty() {
            return Ok(Appended {
                outcomes,
                written,
                checkpoints,
            });
        }
        if let Err(error) = self.write_out() {
            (self.head_seq, self.head_hash, self.prev) = (head_seq, head_hash, prev);
            return Err(error);
        }
        self.after_write(!checkpoints.is_empty());
        Ok(Appended {
            outcomes,
            written,
            checkpoints,
        })
    }

    fn after_write(&mut self, checkpointed: bool) {
        self.hooks.committed(checkpointed);
        if checkpointed {
            self.next_checkpoint = Instant::now().checked_add(self.options.checkpoint_every);
        }
        if let Some(durable) = &self.durable {
            durable.send_replace(self.head_seq);
        }
    }

    /// Hands what was just made durable to the indexer.
    fn hand_on(&mut self, events: Vec<IndexedEvent>, checkpoints: Vec<(u64, String)>) {
        if events.is_empty() && checkpoints.is_empty() {
            return;
        }
        if let Some(index) = &self.index {
            let _ = index.send(ToIndex::Written {
                events,
                checkpoints,
            });
        }
    }

    /// Signs the head in a write of its own.
    fn write_checkpoint(&mut self) -> Result<(), AuditError> {
        if self.head_seq <= self.prev.seq {
            return Ok(());
        }
        let prev = self.prev;
        self.buf.clear();
        let mut checkpoints = Vec::new();
        self.sign_head(&mut checkpoints);
        if let Err(error) = self.write_out() {
            self.prev = prev;
            return Err(error);
        }
        self.after_write(true);
        self.hand_on(Vec::new(), checkpoints);
        Ok(())
    }

    /// Records the events other processes left in the inbox, as one batch, and
    /// removes each file once its event is durable (or already recorded).
    fn record_inbox(&mut self) {
        let found = super::inbox::waiting(&self.chain_dir);
        if found.is_empty() {
            return;
        }
        let data_dir = self
            .chain_dir
            .parent()
            .unwrap_or(&self.chain_dir)
            .to_owned();
        let ids: Vec<&str> = found.iter().map(|(_, e)| e.event_id.as_str()).collect();
        let indexed = super::inbox::already_recorded(&data_dir, &ids);
        let (mut batch, mut waiting) = (Vec::new(), Vec::new());
        for ((path, event), indexed) in found.iter().zip(indexed) {
            if indexed || self.recent.contains(&event.event_id) {
                let _ = std::fs::remove_file(path);
                continue;
            }
            if let Ok((pending, answer)) = Pending::of(event) {
                batch.push(pending);
                waiting.push((answer, path));
            }
        }
        if batch.is_empty() {
            return;
        }
        self.write_batch(batch);
        for (mut answer, path) in waiting {
            if matches!(
                answer.try_recv(),
                Ok(Ok(_) | Err(AuditError::DuplicateEvent))
            ) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The time trigger: signs the head now if events were added since.
    fn checkpoint_now(&mut self) {
        let retry_in = match self.write_checkpoint() {
            Ok(()) => self.options.checkpoint_every,
            Err(error) => {
                tracing::warn!(%error, "audit checkpoint not written; retrying in a second");
                self.options.checkpoint_every.min(RETRY_CHECKPOINT)
            }
        };
        self.next_checkpoint = Instant::now().checked_add(retry_in);
    }

    /// The last checkpoint; then the indexer takes everything and stops.
    fn stop(mut self) {
        if self.head_seq > self.prev.seq && self.failed.get().is_none() {
            self.checkpoint_now();
        }
        if let Some(index) = self.index.take() {
            let (done, stopped) = std::sync::mpsc::channel();
            if index.send(ToIndex::Stop(done)).is_ok() {
                let _ = stopped.recv();
            }
        }
        tracing::info!("audit writer stopped");
    }
}
