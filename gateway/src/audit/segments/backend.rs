//! The maintenance of a log in segment files, behind
//! [`AuditBackend`](super::super::AuditBackend): `verify` walks the segments
//! ([`walk`](super::walk)), and the checkpoints handed to witnesses and operators
//! are read from the index, as for the SQLite log whose schema it keeps.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::super::AuditError;
use super::super::backend::{Archived, AuditBackend, SqliteAuditBackend};
use super::super::retention::Retention;
use super::super::sqlite::KEY_FILE;
use super::super::verify::{Expectations, VerifyFailure, VerifyReport};
use super::walk::{Key, walk};

/// The log in segment files in a data directory (work on the blocking pool).
#[derive(Debug, Clone)]
pub struct SegmentAuditBackend {
    data_dir: PathBuf,
    index: SqliteAuditBackend,
}

impl SegmentAuditBackend {
    pub fn new(data_dir: impl Into<PathBuf>) -> SegmentAuditBackend {
        let data_dir = data_dir.into();
        SegmentAuditBackend {
            index: SqliteAuditBackend::new(data_dir.clone()),
            data_dir,
        }
    }
}

fn task_failed(e: tokio::task::JoinError) -> VerifyFailure {
    VerifyFailure {
        seq: None,
        problem: format!("the verification task failed: {e}"),
    }
}

impl AuditBackend for SegmentAuditBackend {
    fn verify(&self, expect: Expectations) -> BoxFuture<'_, Result<VerifyReport, VerifyFailure>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let key = match &expect.pinned_key {
                    Some(pinned) => Key::Known(pinned.clone()),
                    None => Key::File(data_dir.join(KEY_FILE)),
                };
                walk(&data_dir, key, &expect).map(|walked| walked.report)
            })
            .await
            .map_err(task_failed)?
        })
    }

    fn check_index(&self) -> BoxFuture<'_, Result<Option<u64>, VerifyFailure>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || super::index::check(&data_dir).map(Some))
                .await
                .map_err(task_failed)?
        })
    }

    fn archive(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<Archived>, AuditError>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            let moved = tokio::task::spawn_blocking(move || {
                super::archive::archive(&data_dir, retention, now)
            })
            .await
            .map_err(|e| AuditError::Unavailable(format!("the archive task failed: {e}")))??;
            Ok((!moved.is_empty()).then_some(Archived::Files(moved)))
        })
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<String>, AuditError>> {
        self.index.latest_checkpoint()
    }

    fn checkpoints_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(u64, String)>, AuditError>> {
        self.index.checkpoints_after(after, limit)
    }

    fn checkpoints_pending(&self, after: u64) -> BoxFuture<'_, Result<(u64, u64), AuditError>> {
        self.index.checkpoints_pending(after)
    }

    fn public_key(&self, create: bool) -> BoxFuture<'_, Result<Vec<u8>, AuditError>> {
        self.index.public_key(create)
    }
}
