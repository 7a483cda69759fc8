//! The gateway's durable store, behind a small trait so that the embedded SQLite file
//! (one machine) and PostgreSQL (many replicas) can serve the same callers.
//!
//! So far the store holds its own metadata and the grants' daily quota counts (their
//! table belongs to `limits`); readiness depends on it being writable. The audit log
//! and the registry will live here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use rusqlite::Connection;

use crate::limits::{DayCountState, DayCounts};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The store failed (the backend's own message, e.g. SQLite's).
    #[error("{0}")]
    Backend(String),
    #[error("the store task failed: {0}")]
    Task(String),
}

/// A durable store.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Proves the store can commit a write right now.
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Where the store lives, for operators (a file path or a server address).
    fn location(&self) -> String;
    /// Where the grants' daily quota counts are kept, so they survive a restart.
    fn day_counts(&self) -> Arc<dyn DayCountState>;
}

/// The embedded store: one SQLite file in WAL mode in the data directory.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    day_counts: DayCounts,
}

/// The store file's name inside the data directory.
pub const SQLITE_FILE: &str = "gateway.db";

impl SqliteStore {
    /// Creates the data directory and the store file if needed and migrates it, and
    /// reads the daily quota counts it holds.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        crate::datadir::create_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(SQLITE_FILE);
        crate::datadir::create_private_file(&path).map_err(|source| StoreError::DataDir {
            path: path.clone(),
            source,
        })?;
        let conn = connect(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta (key, value) VALUES ('schema_version', '1')
               ON CONFLICT (key) DO NOTHING;",
        )?;
        let day_counts = DayCounts::open(&data_dir.join(crate::limits::DAY_COUNTS_FILE))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(SqliteStore { path, day_counts })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

impl Store for SqliteStore {
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = connect(&path)?;
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('ready_probe', datetime('now'))
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [],
                )?;
                Ok(())
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn day_counts(&self) -> Arc<dyn DayCountState> {
        Arc::new(self.day_counts.clone())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::Backend(format!("SQLite: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_data_dir_gets_a_writable_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("nested/data")).unwrap();
        store.probe().await.unwrap();
        assert!(store.path().exists());
    }
}
