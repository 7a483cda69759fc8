//! Reading the audit log, behind a trait: the privacy officer's API asks an
//! [`AuditReader`] and never knows which store answers. [`SqliteAuditReader`] reads
//! the embedded log (read-only connections, safe beside the writer); a PostgreSQL
//! reader will implement the same trait. The methods block: call them off the
//! async workers.

use std::io::Write;
use std::path::PathBuf;

use chrono::NaiveDate;
use futures::future::BoxFuture;

use super::anomalies::{Anomaly, Thresholds};
use super::report::CitizenReport;
use super::search::{ExportFormat, Filter, Page, SearchError};

/// Search, export and reports over the audit log.
pub trait AuditReader: Send + Sync + std::fmt::Debug {
    /// Proves the log can be read right now (for `/readyz`).
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>>;
    /// Matching events, newest first, before the `before` sequence number.
    fn search(
        &self,
        filter: &Filter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, SearchError>;
    /// Every matching event, oldest first, streamed to `out`; returns the count.
    fn export(
        &self,
        filter: &Filter,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, SearchError>;
    /// A citizen's access report: the lookups that released their data.
    fn citizen_report(
        &self,
        subject_pseudonym: &str,
        today: NaiveDate,
    ) -> Result<CitizenReport, SearchError>;
    /// What a privacy officer should look at in a time window.
    fn anomalies(
        &self,
        from: &str,
        until: &str,
        thresholds: &Thresholds,
    ) -> Result<Vec<Anomaly>, SearchError>;
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
}

impl AuditReader for SqliteAuditReader {
    /// The file opens read-only and its newest event can be read.
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        let data_dir = self.data_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> Result<(), SearchError> {
                let conn = super::search::open_log(&data_dir)?;
                conn.query_row(
                    "SELECT count(*) FROM (SELECT seq FROM events ORDER BY seq DESC LIMIT 1)",
                    [],
                    |_| Ok(()),
                )?;
                Ok(())
            })
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?
        })
    }

    fn search(
        &self,
        filter: &Filter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, SearchError> {
        super::search::search(&self.data_dir, filter, before, limit)
    }

    fn export(
        &self,
        filter: &Filter,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, SearchError> {
        super::search::export(&self.data_dir, filter, format, out)
    }

    fn citizen_report(
        &self,
        subject_pseudonym: &str,
        today: NaiveDate,
    ) -> Result<CitizenReport, SearchError> {
        super::report::citizen_report(&self.data_dir, subject_pseudonym, today)
    }

    fn anomalies(
        &self,
        from: &str,
        until: &str,
        thresholds: &Thresholds,
    ) -> Result<Vec<Anomaly>, SearchError> {
        super::anomalies::anomalies(&self.data_dir, from, until, thresholds)
    }
}
