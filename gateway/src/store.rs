//! The stores factory: where the gateway keeps what must outlive the process — the
//! registry, the audit log (and the reader the privacy officer's API uses) and the
//! grants' daily quota counts — opened together from one [`Backend`].
//!
//! Today there is one backend, [`Backend::Sqlite`]: a file per store in the data
//! directory (`registry.db`, `audit.db`, `quota.db`; see [`crate::sqlite`] for how
//! they are opened). PostgreSQL (many replicas) comes next as a variant of
//! [`Backend`] and an arm of [`Storage::open`]; nothing outside this module and the
//! stores' own `sqlite` modules knows which backend answers.
//!
//! Every store has a readiness probe (`ready()`), which `/readyz` asks.
//!
//! **`gateway.db`.** Gateways before this one kept the daily counts in
//! `DATA_DIR/gateway.db`, beside a meta row. That file is a valid `quota.db` (same
//! table, schema version 1): when the data directory holds `gateway.db` and no
//! `quota.db`, [`Storage::open`] renames it (after folding its WAL back in). Its rows
//! are kept, but they were keyed in clear and the gateway now hashes its counter
//! keys ([`crate::limits::KeyHasher`]): the day of the upgrade starts its counts
//! again, and the old rows go at the next day's prune.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::audit::{
    AuditBackend, AuditError, AuditOptions, AuditReader, SqliteAudit, SqliteAuditBackend,
    SqliteAuditReader,
};
use crate::limits::{
    DAY_COUNTS_FILE, DayCountState, DayCounts, GovernorState, LimiterState, StateError,
};
use crate::registry::{Registry, RegistryError, SqliteRegistry};

/// The file older gateways kept the daily counts in (see the module docs).
pub const LEGACY_FILE: &str = "gateway.db";

/// Where the stores live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite files in the data directory (one machine).
    Sqlite { data_dir: PathBuf },
    // PostgreSQL next: `Postgres { url, pool }`, for many replicas.
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("the audit log: {0}")]
    Audit(#[from] AuditError),
    #[error("the daily quota counts: {0}")]
    DayCounts(#[from] StateError),
}

/// The stores of one backend. Cloning is cheap; clones share the registry, which is
/// opened once (the configuration is loaded from it before the other stores open).
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
    registry: Arc<OnceLock<Arc<dyn Registry>>>,
}

/// The stores, open.
#[derive(Debug, Clone)]
pub struct Stores {
    /// What departments and townships change while the gateway runs.
    pub registry: Arc<dyn Registry>,
    /// The audit log the gateway records into (`None` when the caller brings its own).
    pub audit: Option<SqliteAudit>,
    /// Where the privacy officer's API reads the log.
    pub audit_reader: Arc<dyn AuditReader>,
    /// The log's checks, archive and checkpoints.
    pub audit_backend: Arc<dyn AuditBackend>,
    /// The grants' daily quota counts.
    pub day_counts: Arc<dyn DayCountState>,
    /// The rate limits' buckets (in memory with SQLite; Redis next, for replicas).
    pub limiter: Arc<dyn LimiterState>,
}

impl Storage {
    pub fn new(backend: Backend) -> Storage {
        Storage {
            backend,
            registry: Arc::new(OnceLock::new()),
        }
    }

    /// The embedded stores in `data_dir`.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> Storage {
        Storage::new(Backend::Sqlite {
            data_dir: data_dir.into(),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Where the stores live, for operators (a directory, or a server address).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { data_dir } => data_dir.display().to_string(),
        }
    }

    /// The registry, opened (created and migrated if needed) on first use. Blocking
    /// the first time.
    pub fn registry(&self) -> Result<Arc<dyn Registry>, StoreError> {
        if let Some(registry) = self.registry.get() {
            return Ok(registry.clone());
        }
        let opened: Arc<dyn Registry> = match &self.backend {
            Backend::Sqlite { data_dir } => Arc::new(SqliteRegistry::open(data_dir)?),
        };
        Ok(self.registry.get_or_init(|| opened).clone())
    }

    /// The audit log's checks, archive and checkpoints (nothing is opened until
    /// one is asked for).
    pub fn audit_backend(&self) -> Arc<dyn AuditBackend> {
        match &self.backend {
            Backend::Sqlite { data_dir } => Arc::new(SqliteAuditBackend::new(data_dir)),
        }
    }

    /// Opens every store: the registry, the audit log with `audit` (none when
    /// `None`: the caller records elsewhere) and its reader, and the daily counts.
    /// Blocking: call it before serving or from `spawn_blocking`.
    pub fn open(&self, audit: Option<AuditOptions>) -> Result<Stores, StoreError> {
        let registry = self.registry()?;
        match &self.backend {
            Backend::Sqlite { data_dir } => {
                adopt_legacy_counts(data_dir);
                let day_counts = Arc::new(DayCounts::open(&data_dir.join(DAY_COUNTS_FILE))?);
                let audit = audit
                    .map(|options| SqliteAudit::open(data_dir, options))
                    .transpose()?;
                Ok(Stores {
                    registry,
                    audit,
                    audit_reader: Arc::new(SqliteAuditReader::new(data_dir)),
                    audit_backend: self.audit_backend(),
                    limiter: Arc::new(GovernorState::new()),
                    day_counts,
                })
            }
        }
    }
}

/// Renames an older gateway's `gateway.db` to `quota.db` when there is no
/// `quota.db` yet (see the module docs). A failure is logged: the counts then start
/// from zero, as they would without the old file.
fn adopt_legacy_counts(data_dir: &Path) {
    let legacy = data_dir.join(LEGACY_FILE);
    let counts = data_dir.join(DAY_COUNTS_FILE);
    if !legacy.is_file() || counts.exists() {
        return;
    }
    let adopted = (|| -> Result<(), String> {
        // The last connection to close folds the WAL back into the file.
        let conn = rusqlite::Connection::open(&legacy).map_err(|e| e.to_string())?;
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .map_err(|e| e.to_string())?;
        conn.close().map_err(|(_, e)| e.to_string())?;
        std::fs::rename(&legacy, &counts).map_err(|e| e.to_string())?;
        for suffix in ["-wal", "-shm"] {
            let mut side = legacy.clone().into_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
        Ok(())
    })();
    match adopted {
        Ok(()) => tracing::info!(
            from = LEGACY_FILE,
            to = DAY_COUNTS_FILE,
            "the daily quota counts moved to their own file"
        ),
        Err(error) => tracing::warn!(
            %error,
            "an older gateway's daily quota counts could not be moved; today's counts start again"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::DayCounter;

    #[tokio::test]
    async fn a_fresh_data_dir_gets_every_store_ready() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested/data");
        let storage = Storage::sqlite(&data_dir);
        let stores = storage.open(Some(AuditOptions::default())).unwrap();
        stores.registry.ready().await.unwrap();
        stores.day_counts.ready().await.unwrap();
        stores.audit_reader.ready().await.unwrap();
        let audit = stores.audit.clone().unwrap();
        crate::audit::AuditLog::ready(&audit).await.unwrap();
        audit.shutdown().await;
        for file in ["registry.db", "audit.db", "quota.db"] {
            assert!(data_dir.join(file).exists(), "{file}");
        }
        assert!(!data_dir.join(LEGACY_FILE).exists());
        // The registry is opened once.
        assert!(Arc::ptr_eq(&storage.registry().unwrap(), &stores.registry));
    }

    #[tokio::test]
    async fn an_older_gateways_counts_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        {
            // As older gateways made it: a meta row, and the counts' table.
            let conn = rusqlite::Connection::open(dir.path().join(LEGACY_FILE)).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta (key, value) VALUES ('schema_version', '1');
                 CREATE TABLE day_counts (
                     day TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL,
                     PRIMARY KEY (day, key)
                 ) STRICT, WITHOUT ROWID;
                 INSERT INTO day_counts VALUES ('2026-12-05', 'grant:1:g:township:t', 7);",
            )
            .unwrap();
        }
        let stores = Storage::sqlite(dir.path()).open(None).unwrap();
        assert_eq!(stores.day_counts.count(day, "grant:1:g:township:t"), 7);
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert!(dir.path().join(DAY_COUNTS_FILE).exists());
        let counter = [DayCounter {
            key: "grant:1:g:township:t",
            limit: 8,
        }];
        stores.day_counts.take(day, &counter, 1).await.unwrap();
        stores.day_counts.take(day, &counter, 1).await.unwrap_err();
    }
}
