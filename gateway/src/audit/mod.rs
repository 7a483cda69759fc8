//! The audit log: every lookup and every administrative act leaves one
//! [`AuditEvent`], numbered, hash-chained and made durable before any data is
//! released (invariant 3, "no audit, no data"); altering, deleting or reordering a
//! record is detected by [`verify()`] (invariant 6, "tamper evidence").
//!
//! This module owns the event type, the [`AuditLog`] trait the request pipeline writes
//! through, and its stores. Its parts: [`event`] (the event), [`canonical`] (the
//! canonical JSON body), [`chain`] (the hash chain), [`checkpoint`] (signed heads of
//! the chain), [`cadence`] (how often they are made, and the rule every log is held
//! to), [`segments`] (the default store on one machine: the chain in append-only
//! segment files, `audit.db` its index), [`sqlite`] (the chain in `audit.db` itself,
//! and its writer thread), [`postgres`] (the log of many replicas, one chain each) and
//! [`verify`](mod@verify) (the offline check, and the check the writer runs before it
//! signs over a log).
//!
//! The record format below is the same in every store: the segment files frame the
//! very same bodies, hashes and checkpoint texts (their framing is in
//! [`segments`]); the SQLite log keeps them in rows.
//!
//! # The record format (what a second party can re-implement)
//!
//! **Canonical body.** An event is serialized to JSON with every field present (an
//! absent option is `null`, an empty list `[]`), then written canonically: no
//! whitespace anywhere; object members sorted by key, comparing the keys' UTF-8 bytes,
//! at every depth; array order kept; numbers (the event has only non-negative
//! integers) in plain decimal; `true`, `false`, `null` as such; strings in double
//! quotes where `"` becomes `\"`, `\` becomes `\\`, the control characters U+0008,
//! U+0009, U+000A, U+000C, U+000D become `\b`, `\t`, `\n`, `\f`, `\r`, every other
//! character below U+0020 becomes `\u00xx` (lowercase hex), and every other character,
//! non-ASCII included, is written as itself in UTF-8. The `body` column stores exactly
//! these bytes.
//!
//! **Hash chain.** Events are numbered `seq` = 1, 2, 3, … without gaps, and
//!
//! ```text
//! hash(seq) = SHA-256( "county-gateway/audit/v1" 0x00
//!                      || seq as 8 bytes big-endian
//!                      || prev_hash (32 bytes; 32 zero bytes for seq 1)
//!                      || body bytes )
//! ```
//!
//! where `prev_hash` is `hash(seq - 1)`. Hashes are stored as lowercase hex.
//!
//! **Chain id.** A log has a stable id, 128 random bits in lowercase hex, made when
//! the log is created (or first migrated to schema 4) and kept in its `meta` table
//! (`chain_id`); archive segments copy it. Every receipt ([`Recorded`]) and every
//! search page names it, so that `seq` and `hash` say which log they belong to.
//!
//! **Checkpoints.** Every `checkpoint_every_events` events (the event at `C + N`, `C`
//! the previous checkpoint's seq, is signed in the transaction that commits it), at
//! most `checkpoint_every` after the first event not signed yet, when the writer
//! stops, and when it starts on a log whose tail a crash left unsigned, the log signs
//! its head with the Ed25519 key in `audit-signing.key` (PKCS#8, mode 0600). The
//! checkpoint is this text, every line ending in a newline (`\n`), the last one
//! included:
//!
//! ```text
//! county-gateway audit checkpoint v2
//! seq: 1234
//! hash: <64 lowercase hex digits: hash(1234)>
//! time: <RFC 3339 UTC with milliseconds, e.g. 2025-03-01T08:00:00.000Z>
//! prev: <seq of the previous checkpoint> <64 lowercase hex digits: SHA-256 of its whole text>
//! cadence: <checkpoint_every_events> events, <checkpoint_every in ms> ms
//! key: <standard base64 with padding of the 32-byte Ed25519 public key>
//! signature: <standard base64 with padding of the Ed25519 signature over the seven lines above, newlines included>
//! ```
//!
//! The first checkpoint of a log names `prev: 0 ` and 64 zeros. `prev` makes the
//! checkpoints a chain of their own: a removed or replaced checkpoint is named by
//! the next one, and a witness can tell that a new checkpoint extends the one it
//! holds. `cadence` is the writer's (see [`cadence`]): the gaps it leaves are held to
//! it, whatever the configuration says later.
//!
//! Gateways before v2 wrote v1 checkpoints, which [`verify()`] still reads: the
//! header `county-gateway audit checkpoint v1` and the lines `seq`, `hash`, `time`,
//! `key`, `signature` (over the five lines before it), without `prev` and `cadence`.
//!
//! **What this proves, and to whom.** [`verify()`] names the first broken sequence
//! number when anything up to a checkpoint was altered, removed or reordered, and when
//! checkpoints are missing where the cadence says the writer made them (so stripping
//! them to recompute the chain is caught), against the key pinned in `gateway.yaml`
//! (`audit.checkpoint_public_key`) rather than the one beside the log. The unsigned
//! tail after the newest checkpoint — fewer than `checkpoint_every_events` events,
//! written within `checkpoint_every` — can still be cut or forged by someone with
//! write access to the database. Someone who also holds the key can re-sign a
//! rewritten log; witnesses ([`crate::witness`]) that received the checkpoints as
//! they were made catch that, and a cut tail beyond what they hold: `gateway audit
//! verify --witness` checks the log against every checkpoint they keep.
//!
//! # Writing: one thread, group commit
//!
//! The SQLite connection lives in one dedicated writer thread that owns it, so no lock
//! is needed. [`AuditLog::append`] canonicalizes the event on the caller's task and
//! awaits a place in a bounded `tokio::sync::mpsc` channel (backpressure: a full queue
//! makes callers wait, an event is never dropped), then awaits its answer on a
//! oneshot. The writer thread drives its receiving end with a small current-thread
//! Tokio runtime of its own, which gives it `recv` with a deadline for time-triggered
//! checkpoints without polling; every SQLite call runs synchronously on that thread.
//! It takes everything queued (up to `batch_max`; the events of one
//! [`AuditLog::append_all`], a form fill's lookups, are never split), writes the
//! batch in one `BEGIN IMMEDIATE` transaction, commits (WAL with `synchronous=FULL`, so the commit
//! is durable) and only then answers every waiter: many requests share one sync. If
//! the transaction fails, every waiter of the batch gets [`AuditError::Unavailable`]
//! and nothing of the batch remains. The chain head is read inside each transaction,
//! so a rolled-back batch never advances it, and even a second process writing the
//! same file by mistake could not fork the chain.

pub mod anomalies;
pub mod backend;
pub mod cadence;
pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod commit_times;
mod queue;
pub mod event;
mod hooks;
pub mod postgres;
pub mod reader;
pub mod report;
pub mod retention;
pub mod search;
pub mod segments;
pub mod settings;
pub mod sqlite;
pub mod verify;

#[cfg(test)]
mod tests;

use futures::future::BoxFuture;

pub use anomalies::{Anomaly, AnomalyKind, Thresholds, anomalies};
pub use backend::{Archived, ArchivedMonth, ArchivedMonths, AuditBackend, SqliteAuditBackend};
pub use cadence::Cadence;
pub use event::{
    AuditCaller, AuditEvent, AuditOutcome, EventKind, LinkedPerson, MAX_REASON_CHARS, MaskedField,
    Recorded, VerifiedField, WithheldField,
};
pub use postgres::{PgAudit, PgAuditBackend, PgAuditReader};
pub use reader::{AuditReader, SqliteAuditReader};
pub use report::{Access, CitizenReport, ShownAs, citizen_report};
pub use retention::{ArchivedSegment, DEFAULT_KEEP_DAYS, Retention, archive, archive_with};
pub use search::{
    Bound, ExportFormat, Filter, MAX_PAGE, OutcomeClass, Page, SearchError, StoredEvent,
    check_filter, check_limit, export, parse_time_bound, search,
};
pub use segments::{InboxAudit, SegmentAudit, SegmentAuditBackend, SegmentAuditReader};
pub use sqlite::{
    AUDIT_FILE, AuditOptions, KEY_FILE, SqliteAudit, checkpoint_public_key, checkpoints_after,
    checkpoints_pending, latest_checkpoint,
};
pub use verify::{
    ChainHead, Expectations, VerifyFailure, VerifyReport, Witnessed, verify, verify_with,
};

/// Why an event could not be recorded. Messages never contain event contents.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store cannot commit right now; the event was not recorded.
    #[error("the audit log cannot commit: {0}")]
    Unavailable(String),
    /// The writer has stopped; nothing more can be recorded.
    #[error("the audit writer has stopped")]
    Closed,
    /// An event with the same event id is already recorded; this one was not.
    #[error("an audit event with this event id is already recorded")]
    DuplicateEvent,
    /// The event could not be encoded.
    #[error("the audit event cannot be encoded")]
    Encode,
    /// A file of the audit log could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// The checkpoint key is missing, unreadable or invalid.
    #[error("the audit checkpoint key: {0}")]
    Key(String),
    /// The log fails the check made before signing over it (stripped checkpoints, a
    /// rewritten chain, a tail longer than the cadence allows): the gateway refuses
    /// to write to it rather than sign a forgery.
    #[error(
        "{0}; the gateway will not sign over a log that fails this (run `gateway audit \
         verify`, and restore the log or find out who changed it)"
    )]
    Broken(VerifyFailure),
    /// The database's schema cannot be used (written by a newer gateway, unreadable).
    #[error("the audit database schema: {0}")]
    Schema(String),
    /// The store behind the log failed while opening or reading it (the backend's
    /// own message, e.g. SQLite's).
    #[error("{0}")]
    Backend(String),
}

/// Where audit events go. Appending returns only once the event is durable
/// (committed and synced); an error means the caller must not release data.
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Records one event and says where it sits in the chain.
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>>;

    /// Proves the log could record an event right now, without recording one (for
    /// `/readyz`). The default says yes.
    fn ready(&self) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(async { Ok(()) })
    }

    /// Records several events that belong together (the lookups of one form fill),
    /// with one outcome each, in their order. A store that can should commit them in
    /// one transaction, so that they cost one sync; this default appends them
    /// concurrently.
    fn append_all(
        &self,
        events: Vec<AuditEvent>,
    ) -> BoxFuture<'_, Vec<Result<Recorded, AuditError>>> {
        Box::pin(futures::future::join_all(
            events.into_iter().map(|event| self.append(event)),
        ))
    }

    /// How long the writer takes to commit a batch, for `/metrics`; `None` for a
    /// log without a writer of its own.
    fn commit_times(&self) -> Option<std::sync::Arc<commit_times::CommitTimes>> {
        None
    }

    /// Places taken in the writer's queue right now (an event, or a form fill's
    /// events together), for `/metrics`; `None` for a log without a queue.
    fn queued(&self) -> Option<usize> {
        None
    }
}
