//! The audit log on PostgreSQL, for many replicas: [`PgAudit`] (the writer of one
//! replica), [`PgAuditReader`] (the privacy officer's search, export, citizen report
//! and anomalies across every chain) and [`PgAuditBackend`] (verify, archive,
//! checkpoints). Tables: `pg/migrations/0002_audit.sql`, partitioned by month in
//! `0004_audit_partitions.sql`.
//!
//! **One chain per replica.** The record format is exactly the embedded log's
//! ([module docs of `audit`](super)): canonical bodies, `hash(seq)` over the previous
//! hash, seq from 1 without gaps, signed v2 checkpoints with the same key and cadence.
//! What differs is that the log holds many chains, one per writer: on opening, a
//! writer takes a chain with a session advisory lock (`audit-chain:<id>`,
//! `pg_try_advisory_lock`) on a dedicated connection — its own chain back after a
//! restart if it is free, else any chain whose holder is gone, else a new one (128
//! random bits in lowercase hex) — and writes only on that connection, so two
//! processes can never write one chain: when the connection dies, the lock goes with
//! it and nothing more is written on it. Before it signs over a chain another process
//! left with an unsigned tail, the writer checks the newest checkpoint (signature,
//! key, hash) and walks the tail as `verify` does; a chain that fails is left alone
//! (logged; `verify` names it) and another one taken.
//!
//! **Group commit.** As in SQLite: a bounded queue, the writer task takes everything
//! queued (up to `batch_max`; an [`AuditLog::append_all`] unit never split) and writes
//! it in one transaction with one multi-row `INSERT` (`unnest` of arrays), with
//! `synchronous_commit = on`; the chain head is read inside the transaction; waiters
//! are answered only after `COMMIT`. A failed batch fails every waiter with
//! [`AuditError::Unavailable`] and leaves nothing behind.
//!
//! **When PostgreSQL goes away.** The batch fails, the writer drops its connection
//! (and so its lock) and reconnects in the background, with growing pauses; while it
//! is down every append is answered at once with [`AuditError::Unavailable`] (503
//! `audit-unavailable` upstream) and [`AuditLog::ready`] fails. Once connected it
//! takes a chain again (its own if still free), re-reads the head and serves. A
//! writer opened while the server cannot be reached starts down the same way.
//!
//! **Months.** `audit_events` and `audit_linked_subjects` are range-partitioned by
//! month of the event's time (`partitions.rs`: `audit_events_YYYYMM`, no default
//! partition). A writer creates this month's and the next month's partitions when it
//! takes a chain, and a batch that holds an event of a month without one (its insert
//! finds no partition) creates it and is written once more. (chain_id, seq) is unique
//! only per month — a partitioned table's unique keys include the partition key —
//! so what keeps a chain's numbering unique and gap-free is its one writer (the
//! chain's advisory lock) and `verify`'s walk, which fails at any missing or
//! repeated seq.
//!
//! **Archive.** `gateway audit archive` detaches whole months that ended before the
//! retention period into read-only tables kept in the database (`archive.rs`: one
//! transaction per month, never dropped, a chain's head never archived, a month that
//! would split a chain out of order refused). The privacy officer's search reads the
//! live table only; `verify` walks every chain over the archived months and the live
//! table, and fails naming an archived month whose table is gone.
//!
//! **Checkpoints.** Per chain, by count and by time as [`cadence`](super::cadence)
//! says, at shutdown, and at once over a tail a previous holder left unsigned. Every
//! `checkpoint_every` (when a head moved) a writer also signs a county checkpoint
//! ([`county`]) naming every chain's head. The county checkpoints are what the
//! witnesses keep ([`crate::witness`]): every replica sends them.

pub mod copy;
pub mod county;
mod archive;
mod partitions;
mod reader;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

pub use reader::PgAuditReader;
pub use verify::PgAuditBackend;

use super::commit_times::CommitTimes;
use super::event::{AuditEvent, Recorded};
use super::queue::Command;
use super::sqlite::AuditOptions;
use super::{AuditError, AuditLog};
use crate::pg::{Pg, PgError};

/// The audit log of one replica on PostgreSQL. Cloning is cheap; all clones feed one
/// writer task, which stops (after a last checkpoint) on [`PgAudit::shutdown`] or
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PgAudit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: mpsc::Sender<Command>,
    pg: Pg,
    /// The chain the writer holds (or held last, while it is down).
    chain_id: watch::Receiver<String>,
    /// Whether the writer holds a chain on a live connection.
    up: Arc<AtomicBool>,
    /// The seq of the newest checkpoint of the chain held.
    checkpointed: watch::Receiver<u64>,
    /// The seq of the newest county checkpoint the writer signed or saw.
    county: watch::Receiver<u64>,
    commit_times: Arc<CommitTimes>,
}

impl PgAudit {
    /// Takes a chain (see the module docs), loads (or, on a log without any
    /// checkpoint, creates) the checkpoint key in `key_file`, checked against
    /// `options.pinned_key`, and starts the writer task. When the server cannot be
    /// reached, the writer starts down and connects by itself later; a key that is
    /// not the pinned one, or cannot be read, is an error.
    pub async fn open(
        pg: Pg,
        key_file: &Path,
        options: AuditOptions,
    ) -> Result<PgAudit, AuditError> {
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        let up = Arc::new(AtomicBool::new(false));
        let (chain_tx, chain_id) = watch::channel(String::new());
        let (checkpointed_tx, checkpointed) = watch::channel(0);
        let (county_tx, county) = watch::channel(0);
        let commit_times = Arc::new(CommitTimes::default());
        let mut writer = writer::Writer::new(
            pg.clone(),
            key_file.to_owned(),
            options,
            writer::Published {
                up: up.clone(),
                chain_id: chain_tx,
                checkpointed: checkpointed_tx,
                county: county_tx,
                commit_times: commit_times.clone(),
            },
        );
        match writer.connect().await {
            Ok(()) => {}
            Err(AuditError::Unavailable(why)) => {
                tracing::warn!(
                    why = %why,
                    "the audit log on PostgreSQL cannot be reached; appends fail until it can"
                );
            }
            Err(other) => return Err(other),
        }
        tokio::spawn(writer.run(receiver));
        Ok(PgAudit {
            inner: Arc::new(Inner {
                sender,
                pg,
                chain_id,
                up,
                checkpointed,
                county,
                commit_times,
            }),
        })
    }

    /// The chain this replica writes (while it is down: the one it held last; empty
    /// before it held any).
    pub fn chain_id(&self) -> String {
        self.inner.chain_id.borrow().clone()
    }

    /// Stops the writer: events queued before are written, a last checkpoint signs
    /// the head (and a county checkpoint every head), the chain is let go; later
    /// appends fail with [`AuditError::Closed`]. Returns once the writer stopped.
    pub async fn shutdown(&self) {
        super::queue::shutdown(&self.inner.sender).await;
    }

    /// The seq of the newest checkpoint of the chain held, as the writer commits new
    /// ones.
    pub fn checkpoints(&self) -> watch::Receiver<u64> {
        self.inner.checkpointed.clone()
    }

    /// The seq of the newest county checkpoint, as the writer signs them (or finds
    /// a newer one another replica signed): what wakes the witness senders.
    pub fn county_checkpoints(&self) -> watch::Receiver<u64> {
        self.inner.county.clone()
    }
}

impl AuditLog for PgAudit {
    fn commit_times(&self) -> Option<Arc<CommitTimes>> {
        Some(self.inner.commit_times.clone())
    }

    fn queued(&self) -> Option<usize> {
        Some(super::queue::depth(&self.inner.sender))
    }

    /// The writer holds a chain, and the server answers a query.
    fn ready(&self) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(async move {
            if self.inner.sender.is_closed() {
                return Err(AuditError::Closed);
            }
            if !self.inner.up.load(Ordering::Acquire) {
                return Err(AuditError::Unavailable(
                    "the audit writer is not connected to PostgreSQL".into(),
                ));
            }
            let client = self.inner.pg.client().await.map_err(unavailable)?;
            client
                .query_one("SELECT 1", &[])
                .await
                .map_err(|e| unavailable(PgError::query(&e)))?;
            Ok(())
        })
    }

    /// Waits for a place in the queue, then for the commit. Dropping the future after
    /// the event was queued does not withdraw it.
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>> {
        Box::pin(super::queue::append(&self.inner.sender, event))
    }

    /// One place in the queue and one transaction for all of them.
    fn append_all(
        &self,
        events: Vec<AuditEvent>,
    ) -> BoxFuture<'_, Vec<Result<Recorded, AuditError>>> {
        Box::pin(super::queue::append_all(&self.inner.sender, events))
    }
}

/// A PostgreSQL failure as the audit log reports it: the log cannot commit now.
fn unavailable(error: PgError) -> AuditError {
    AuditError::Unavailable(error.to_string())
}

/// A query's failure (never quoting a value).
fn query_failed(error: &tokio_postgres::Error) -> AuditError {
    unavailable(PgError::query(error))
}
