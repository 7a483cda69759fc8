//! Reading the audit log, behind a trait: the privacy officer's API asks an
//! [`AuditReader`] and never knows which store answers. [`SqliteAuditReader`] reads
//! the embedded log (read-only connections on the blocking pool, safe beside the
//! writer); [`PgAuditReader`](super::PgAuditReader) reads every chain of the log on
//! PostgreSQL. Every method is
//! async; [`AuditReader::events`] streams, so an export of the whole log never
//! holds more than a few events in memory.

use std::path::PathBuf;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::anomalies::{Anomaly, Thresholds};
use super::report::CitizenReport;
use super::search::{Filter, Page, SearchError, StoredEvent};

/// How many events a streaming read runs ahead of its consumer.
const STREAM_AHEAD: usize = 64;

/// Search, export and reports over the audit log.
pub trait AuditReader: Send + Sync + std::fmt::Debug {
    /// Proves the log can be read right now (for `/readyz`).
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>>;
    /// Matching events, newest first, before the `before` sequence number.
    fn search(
        &self,
        filter: Filter,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, SearchError>>;
    /// Every matching event, oldest first, read as the stream is consumed (one
    /// snapshot of the log). A failure is the stream's last item.
    fn events(&self, filter: Filter) -> BoxStream<'static, Result<StoredEvent, SearchError>>;
    /// A citizen's access report: the lookups that released their data.
    fn citizen_report(
        &self,
        subject_pseudonym: String,
        today: NaiveDate,
    ) -> BoxFuture<'_, Result<CitizenReport, SearchError>>;
    /// What a privacy officer should look at in a time window.
    fn anomalies(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> BoxFuture<'_, Result<Vec<Anomaly>, SearchError>>;
}

/// Reads the embedded SQLite log in a data directory.
#[derive(Debug, Clone)]
pub struct SqliteAuditReader {
    data_dir: PathBuf,
}

impl SqliteAuditReader {
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteAuditReader {
        SqliteAuditReader {
            data_dir: data_dir.into(),
        }
    }

    /// Runs a blocking read of the log on the blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&std::path::Path) -> Result<T, SearchError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, SearchError>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&data_dir))
                .await
                .map_err(|e| SearchError::Backend(format!("the audit read failed: {e}")))?
        })
    }
}

impl AuditReader for SqliteAuditReader {
    /// The file opens read-only and its newest event can be read.
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        self.blocking(|data_dir| {
            let conn = super::search::open_log(data_dir)?;
            conn.query_row("SELECT max(seq) FROM events", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn search(
        &self,
        filter: Filter,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, SearchError>> {
        self.blocking(move |data_dir| super::search::search(data_dir, &filter, before, limit))
    }

    /// A blocking reader feeds the stream through a bounded channel; it stops when
    /// the stream is dropped.
    fn events(&self, filter: Filter) -> BoxStream<'static, Result<StoredEvent, SearchError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_AHEAD);
        let data_dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let read = super::search::each_event(&data_dir, &filter, |stored| {
                Ok(tx.blocking_send(Ok(stored)).is_ok())
            });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }

    fn citizen_report(
        &self,
        subject_pseudonym: String,
        today: NaiveDate,
    ) -> BoxFuture<'_, Result<CitizenReport, SearchError>> {
        self.blocking(move |data_dir| {
            super::report::citizen_report(data_dir, &subject_pseudonym, today)
        })
    }

    fn anomalies(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> BoxFuture<'_, Result<Vec<Anomaly>, SearchError>> {
        self.blocking(move |data_dir| {
            super::anomalies::anomalies(data_dir, &from, &until, &thresholds)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn events_stream_oldest_first_and_a_missing_log_ends_the_stream_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let reader = SqliteAuditReader::new(dir.path());
        let ended: Vec<_> = reader.events(Filter::default()).collect().await;
        assert!(
            matches!(ended.as_slice(), [Err(SearchError::NoLog(_))]),
            "{ended:?}"
        );

        let log = super::super::SqliteAudit::open(dir.path(), Default::default()).unwrap();
        for n in 0..3 {
            let event = super::super::AuditEvent::admin(
                &format!("r{n}"),
                super::super::AuditCaller::gateway(),
                "test",
            );
            super::super::AuditLog::append(&log, event).await.unwrap();
        }
        log.shutdown().await;
        let seqs: Vec<u64> = reader
            .events(Filter::default())
            .map(|e| e.unwrap().seq)
            .collect()
            .await;
        assert_eq!(seqs, vec![1, 2, 3]);
        reader.ready().await.unwrap();
        let page = reader.search(Filter::default(), None, 2).await.unwrap();
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.next, Some(2));
        assert_eq!(page.chain_id.len(), 32);
    }
}
