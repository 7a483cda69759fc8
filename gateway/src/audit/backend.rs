//! What the audit log's store does besides recording and reading: the offline check
//! ([`verify`](super::verify())), moving old events into the archive
//! ([`archive`](super::archive())) and handing out checkpoints (to witnesses and
//! operators), behind the [`AuditBackend`] trait, so that `gateway audit
//! verify|archive|checkpoint` and the witness senders never name a data directory's
//! files. [`SqliteAuditBackend`] is the embedded log in a data directory;
//! [`PgAuditBackend`](super::PgAuditBackend) the log of many chains on PostgreSQL.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::checkpoint::WitnessedKind;
use super::retention::{ArchivedSegment, Retention};
use super::verify::{Expectations, VerifyFailure, VerifyReport};
use super::{AuditError, checkpoint_public_key, checkpoints_after, checkpoints_pending};

/// What an archive run moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    /// The embedded log: one segment file (a range of its chain).
    Segment(ArchivedSegment),
    /// The log in segment files: whole segments moved to the archive directory.
    Files(Vec<ArchivedSegment>),
    /// The log on PostgreSQL: whole months detached into archive tables.
    Months(ArchivedMonths),
}

/// The months one archive run on PostgreSQL detached, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchivedMonths {
    pub months: Vec<ArchivedMonth>,
    /// Old months left live because they hold a chain's newest event or the event
    /// its newest checkpoint signs (the chain's writer continues from them), as
    /// `YYYY-MM`.
    pub kept: Vec<String>,
}

/// One month moved out of the live tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMonth {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Its events (of every chain).
    pub events: u64,
    /// The read-only table that holds them now.
    pub table: String,
}

impl Archived {
    /// What the run did, a line each, for operators.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Archived::Segment(segment) => vec![format!(
                "archived events {}–{} ({} events) to {}",
                segment.first_seq,
                segment.last_seq,
                segment.events,
                segment.path.display()
            )],
            Archived::Files(moved) => moved
                .iter()
                .map(|segment| {
                    format!(
                        "archived events {}–{} ({} events) to {}",
                        segment.first_seq,
                        segment.last_seq,
                        segment.events,
                        segment.path.display()
                    )
                })
                .collect(),
            Archived::Months(run) => run
                .months
                .iter()
                .map(|m| {
                    format!(
                        "archived {} ({} events) to the table {}",
                        m.month, m.events, m.table
                    )
                })
                .chain(
                    run.kept
                        .iter()
                        .map(|month| format!("kept {month} live: it holds the head of a chain")),
                )
                .collect(),
        }
    }
}

/// The audit log's store, for its maintenance.
pub trait AuditBackend: Send + Sync + std::fmt::Debug {
    /// Checks the whole log (archive segments, then the live log) against `expect`.
    fn verify(&self, expect: Expectations) -> BoxFuture<'_, Result<VerifyReport, VerifyFailure>>;
    /// Checks a separate index against the log (the segment files' `audit.db`):
    /// the events compared, or `None` for a log that is its own index.
    fn check_index(&self) -> BoxFuture<'_, Result<Option<u64>, VerifyFailure>> {
        Box::pin(async { Ok(None) })
    }
    /// Moves the events older than `retention` allows into the read-only archive (a
    /// segment file, or on PostgreSQL archive tables of whole months); `None` when
    /// nothing was old enough.
    fn archive(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<Archived>, AuditError>>;
    /// The newest checkpoint's text, if any (of the kind
    /// [`witnessed_kind`](AuditBackend::witnessed_kind) names).
    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<String>, AuditError>>;
    /// The checkpoints after seq `after`, oldest first, at most `limit` of them
    /// (archived ones included).
    fn checkpoints_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(u64, String)>, AuditError>>;
    /// How many checkpoints the live log holds after seq `after`, and the newest
    /// one's seq (0: none).
    fn checkpoints_pending(&self, after: u64) -> BoxFuture<'_, Result<(u64, u64), AuditError>>;
    /// The public half of the checkpoint key (raw, 32 bytes); with `create`, a key is
    /// made when there is none and the log has no checkpoint yet.
    fn public_key(&self, create: bool) -> BoxFuture<'_, Result<Vec<u8>, AuditError>>;
    /// Which signed texts [`latest_checkpoint`](AuditBackend::latest_checkpoint),
    /// [`checkpoints_after`](AuditBackend::checkpoints_after) and
    /// [`checkpoints_pending`](AuditBackend::checkpoints_pending) hand out (and
    /// witnesses keep): the one chain's checkpoints, unless the log says otherwise.
    fn witnessed_kind(&self) -> WitnessedKind {
        WitnessedKind::Chain
    }
}

/// The embedded log's maintenance, in a data directory (on the blocking pool).
#[derive(Debug, Clone)]
pub struct SqliteAuditBackend {
    data_dir: PathBuf,
}

impl SqliteAuditBackend {
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteAuditBackend {
        SqliteAuditBackend {
            data_dir: data_dir.into(),
        }
    }

    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&std::path::Path) -> Result<T, AuditError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, AuditError>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&data_dir))
                .await
                .map_err(|e| AuditError::Unavailable(format!("the audit task failed: {e}")))?
        })
    }
}

impl AuditBackend for SqliteAuditBackend {
    fn verify(&self, expect: Expectations) -> BoxFuture<'_, Result<VerifyReport, VerifyFailure>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || super::verify_with(&data_dir, &expect)).await
            {
                Ok(checked) => checked,
                Err(e) => Err(VerifyFailure {
                    seq: None,
                    problem: format!("the verification task failed: {e}"),
                }),
            }
        })
    }

    fn archive(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<Archived>, AuditError>> {
        self.blocking(move |data_dir| {
            Ok(super::archive_with(data_dir, retention, now)?.map(Archived::Segment))
        })
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<String>, AuditError>> {
        self.blocking(super::latest_checkpoint)
    }

    fn checkpoints_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(u64, String)>, AuditError>> {
        self.blocking(move |data_dir| checkpoints_after(data_dir, after, limit))
    }

    fn checkpoints_pending(&self, after: u64) -> BoxFuture<'_, Result<(u64, u64), AuditError>> {
        self.blocking(move |data_dir| checkpoints_pending(data_dir, after))
    }

    fn public_key(&self, create: bool) -> BoxFuture<'_, Result<Vec<u8>, AuditError>> {
        self.blocking(move |data_dir| checkpoint_public_key(data_dir, create))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::{AuditCaller, AuditEvent, AuditLog, SqliteAudit};

    #[tokio::test]
    async fn the_embedded_logs_checks_and_checkpoints_go_through_its_backend() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteAudit::open(dir.path(), Default::default()).unwrap();
        for n in 0..2 {
            let event = AuditEvent::admin(&format!("r{n}"), AuditCaller::gateway(), "test");
            log.append(event).await.unwrap();
        }
        log.shutdown().await;
        let backend = SqliteAuditBackend::new(dir.path());
        let report = backend.verify(Expectations::default()).await.unwrap();
        assert_eq!(report.events, 2);
        assert_eq!(
            backend.public_key(false).await.unwrap(),
            checkpoint_public_key(dir.path(), false).unwrap()
        );
        let latest = backend.latest_checkpoint().await.unwrap().unwrap();
        assert!(latest.contains("seq: 2\n"), "{latest}");
        assert_eq!(backend.checkpoints_pending(0).await.unwrap(), (1, 2));
        assert_eq!(backend.checkpoints_after(0, 10).await.unwrap().len(), 1);
        let retention = Retention {
            keep_days: super::super::DEFAULT_KEEP_DAYS,
            allow_short: false,
        };
        assert!(
            backend
                .archive(retention, Utc::now())
                .await
                .unwrap()
                .is_none()
        );
    }
}
