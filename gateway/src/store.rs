//! The stores factory: where the gateway keeps what must outlive the process — the
//! registry, the audit log (and the reader the privacy officer's API uses) and the
//! grants' daily quota counts — opened together from one [`Backend`].
//!
//! Two backends, chosen by `store:` in `gateway.yaml` ([`StoreSettings`]):
//! - [`Backend::Sqlite`], the default for one machine: a file per store in the data
//!   directory (`registry.db`, `audit.db`, `quota.db`; see [`crate::sqlite`] for how
//!   they are opened);
//! - [`Backend::Postgres`], for many replicas behind a load balancer: the registry
//!   and the audit log (one hash chain per replica) in one PostgreSQL schema
//!   ([`crate::pg`]); each replica keeps its own data directory for its keys.
//!
//! The rate limits and daily quota counts are chosen apart from the store
//! (`rate_limits.backend`): in this process (the default) or on Redis, exact across
//! replicas ([`crate::limits::redis`]). Nothing outside this module and the stores'
//! own backend modules knows which backend answers.
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

use serde::Deserialize;

use crate::audit::settings::EmbeddedAudit;
use crate::audit::{
    AUDIT_FILE, AuditBackend, AuditError, AuditLog, AuditOptions, AuditReader, InboxAudit,
    KEY_FILE, PgAudit, PgAuditBackend, PgAuditReader, SegmentAudit, SegmentAuditBackend,
    SqliteAudit, SqliteAuditBackend, SqliteAuditReader,
};
use crate::limits::{
    DAY_COUNTS_FILE, DayCountState, DayCounts, GovernorState, LimiterState, RedisLimits, StateError,
};
use crate::pg::{Pg, PgError, PgSettings};
use crate::registry::{PgRegistry, Registry, RegistryError, SqliteRegistry};

/// The file older gateways kept the daily counts in (see the module docs).
pub const LEGACY_FILE: &str = "gateway.db";

/// `store:` in `gateway.yaml`: `{ kind: sqlite }` (the default; the files live in
/// `data_dir`) or `{ kind: postgres, url_env: …, … }` ([`PgSettings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreSettings {
    #[default]
    Sqlite,
    Postgres(PgSettings),
}

/// Where the stores live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Embedded SQLite files in the data directory (one machine).
    Sqlite { data_dir: PathBuf },
    /// PostgreSQL (many replicas); `data_dir` keeps this replica's keys.
    Postgres { pg: Pg, data_dir: PathBuf },
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
    #[error("{0}")]
    Postgres(#[from] PgError),
}

/// The stores of one backend. Cloning is cheap; clones share the registry, which is
/// opened once (the configuration is loaded from it before the other stores open).
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
    registry: Arc<OnceLock<Arc<dyn Registry>>>,
}

/// The audit log a gateway writes, as opened by [`Storage::open`].
#[derive(Debug, Clone)]
pub enum AuditWriter {
    Sqlite(SqliteAudit),
    Segments(SegmentAudit),
    /// Beside a gateway that writes the segments: events go through its inbox.
    Inbox(InboxAudit),
    Postgres(PgAudit),
}

impl AuditWriter {
    /// The log, for the request path.
    pub fn log(&self) -> Arc<dyn AuditLog> {
        match self {
            AuditWriter::Sqlite(log) => Arc::new(log.clone()),
            AuditWriter::Segments(log) => Arc::new(log.clone()),
            AuditWriter::Inbox(log) => Arc::new(log.clone()),
            AuditWriter::Postgres(log) => Arc::new(log.clone()),
        }
    }

    /// Records what is queued, signs the head and stops the writer.
    pub async fn shutdown(&self) {
        match self {
            AuditWriter::Sqlite(log) => log.shutdown().await,
            AuditWriter::Segments(log) => log.shutdown().await,
            AuditWriter::Inbox(_) => {}
            AuditWriter::Postgres(log) => log.shutdown().await,
        }
    }
}

/// Opens the embedded log in `data_dir`: the store it is kept in, or for a new data
/// directory the one `options` names. Blocking.
fn open_embedded(data_dir: &Path, options: AuditOptions) -> Result<AuditWriter, AuditError> {
    let segments = crate::audit::segments::in_segments(data_dir)
        || (options.embedded == EmbeddedAudit::Segments && !data_dir.join(AUDIT_FILE).exists());
    Ok(
        if segments && crate::audit::segments::writer_running(data_dir) {
            AuditWriter::Inbox(InboxAudit::new(data_dir, options))
        } else if segments {
            AuditWriter::Segments(SegmentAudit::open(data_dir, options)?)
        } else {
            AuditWriter::Sqlite(SqliteAudit::open(data_dir, options)?)
        },
    )
}

/// The stores, open.
#[derive(Debug, Clone)]
pub struct Stores {
    /// What departments and townships change while the gateway runs.
    pub registry: Arc<dyn Registry>,
    /// The audit log the gateway records into (`None` when the caller brings its own).
    pub audit: Option<AuditWriter>,
    /// Where the privacy officer's API reads the log.
    pub audit_reader: Arc<dyn AuditReader>,
    /// The log's checks, archive and checkpoints.
    pub audit_backend: Arc<dyn AuditBackend>,
    /// The grants' daily quota counts.
    pub day_counts: Arc<dyn DayCountState>,
    /// The rate limits' buckets (in memory, or on Redis for replicas).
    pub limiter: Arc<dyn LimiterState>,
    /// The Redis behind `limiter` and `day_counts`, when they are on Redis (for its
    /// state in `/metrics`).
    pub redis: Option<Arc<RedisLimits>>,
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

    /// The stores `settings` name, with this replica's `data_dir`; relative files in
    /// the settings are relative to `base` (the folder of `gateway.yaml`). Makes no
    /// connection yet.
    pub fn configured(
        settings: &StoreSettings,
        data_dir: &Path,
        base: &Path,
    ) -> Result<Storage, StoreError> {
        Ok(match settings {
            StoreSettings::Sqlite => Storage::sqlite(data_dir),
            StoreSettings::Postgres(pg) => Storage::new(Backend::Postgres {
                pg: Pg::new(pg, base)?,
                data_dir: data_dir.to_owned(),
            }),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// This replica's data directory (its keys; with SQLite, the stores too).
    pub fn data_dir(&self) -> &Path {
        match &self.backend {
            Backend::Sqlite { data_dir } | Backend::Postgres { data_dir, .. } => data_dir,
        }
    }

    /// Where the stores live, for operators (a directory, or a server address
    /// without its password).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { data_dir } => data_dir.display().to_string(),
            Backend::Postgres { pg, .. } => format!("PostgreSQL {}", pg.location()),
        }
    }

    /// Makes the stores' schema this binary's before anything is read: with
    /// PostgreSQL, applies missing migrations (one replica at a time) or, with
    /// `migrate: manual`, refuses a schema that is not current; a schema newer than
    /// this binary is always refused. (SQLite files are migrated as they open.)
    pub async fn prepare(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres { pg, .. } => match pg.migrate_mode() {
                crate::pg::Migrate::Auto => {
                    crate::pg::migrations::migrate(pg).await?;
                    Ok(())
                }
                crate::pg::Migrate::Manual => Ok(crate::pg::migrations::require_current(pg).await?),
            },
        }
    }

    /// The registry, opened (with SQLite: created and migrated if needed) on first
    /// use. Blocking the first time with SQLite; with PostgreSQL, call
    /// [`Storage::prepare`] first.
    pub fn registry(&self) -> Result<Arc<dyn Registry>, StoreError> {
        if let Some(registry) = self.registry.get() {
            return Ok(registry.clone());
        }
        let opened: Arc<dyn Registry> = match &self.backend {
            Backend::Sqlite { data_dir } => Arc::new(SqliteRegistry::open(data_dir)?),
            Backend::Postgres { pg, .. } => Arc::new(PgRegistry::new(pg.clone())),
        };
        Ok(self.registry.get_or_init(|| opened).clone())
    }

    /// The audit log's checks, archive and checkpoints (nothing is opened until
    /// one is asked for).
    pub fn audit_backend(&self) -> Arc<dyn AuditBackend> {
        match &self.backend {
            Backend::Sqlite { data_dir } if crate::audit::segments::in_segments(data_dir) => {
                Arc::new(SegmentAuditBackend::new(data_dir))
            }
            Backend::Sqlite { data_dir } => Arc::new(SqliteAuditBackend::new(data_dir)),
            Backend::Postgres { pg, data_dir } => {
                Arc::new(PgAuditBackend::new(pg.clone(), data_dir.join(KEY_FILE)))
            }
        }
    }

    /// The privacy officer's reader of the log.
    pub fn audit_reader(&self) -> Arc<dyn AuditReader> {
        match &self.backend {
            Backend::Sqlite { data_dir } => Arc::new(SqliteAuditReader::new(data_dir)),
            Backend::Postgres { pg, .. } => Arc::new(PgAuditReader::new(pg.clone())),
        }
    }

    /// Opens every store: the registry, the audit log with `audit` (none when
    /// `None`: the caller records elsewhere) and its reader, the daily counts and the
    /// rate limits' buckets (`limits`, from `rate_limits:`; `base` is the folder of
    /// `gateway.yaml`).
    pub async fn open(
        &self,
        audit: Option<AuditOptions>,
        limits: &crate::limits::RateLimitsConfig,
        base: &Path,
    ) -> Result<Stores, StoreError> {
        self.prepare().await?;
        let registry = self.registry()?;
        let OpenedLimits {
            limiter,
            day_counts,
            redis,
        } = self.limits(limits, base).await?;
        let audit = match audit {
            Some(options) => Some(self.open_audit(options).await?),
            None => None,
        };
        let audit_reader: Arc<dyn AuditReader> = match &audit {
            // In this process: each read waits for the index to hold what was
            // answered before it.
            Some(AuditWriter::Segments(log)) => Arc::new(log.reader()),
            _ => self.audit_reader(),
        };
        Ok(Stores {
            registry,
            audit,
            audit_reader,
            audit_backend: self.audit_backend(),
            limiter,
            day_counts,
            redis,
        })
    }

    /// Opens the audit log for writing (with PostgreSQL: takes a chain of its own).
    pub async fn open_audit(&self, options: AuditOptions) -> Result<AuditWriter, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite { data_dir } => {
                let data_dir = data_dir.clone();
                tokio::task::spawn_blocking(move || open_embedded(&data_dir, options))
                    .await
                    .map_err(|e| AuditError::Unavailable(e.to_string()))??
            }
            Backend::Postgres { pg, data_dir } => AuditWriter::Postgres(
                PgAudit::open(pg.clone(), &data_dir.join(KEY_FILE), options).await?,
            ),
        })
    }

    /// The rate limits' buckets and the daily counts: on Redis when `limits` says so
    /// (`base`: the folder of `gateway.yaml`, for a relative `url_file`), else in this
    /// process (the counts kept in `quota.db`).
    async fn limits(
        &self,
        limits: &crate::limits::RateLimitsConfig,
        base: &Path,
    ) -> Result<OpenedLimits, StoreError> {
        if let Some(settings) = limits.redis() {
            let redis = Arc::new(RedisLimits::connect(settings, base).await?);
            return Ok(OpenedLimits {
                limiter: redis.clone(),
                day_counts: redis.clone(),
                redis: Some(redis),
            });
        }
        if matches!(self.backend, Backend::Postgres { .. }) {
            tracing::warn!(
                "the store is PostgreSQL (many replicas) but the rate limits are kept in this process: each replica counts every limit and daily quota alone; set rate_limits.backend: redis"
            );
        }
        let data_dir = self.data_dir().to_owned();
        let day_counts = tokio::task::spawn_blocking(move || {
            adopt_legacy_counts(&data_dir);
            DayCounts::open(&data_dir.join(DAY_COUNTS_FILE))
        })
        .await
        .map_err(|e| StateError::Unavailable(e.to_string()))??;
        Ok(OpenedLimits {
            limiter: Arc::new(GovernorState::new()),
            day_counts: Arc::new(day_counts),
            redis: None,
        })
    }
}

/// The rate limits' stores, as [`Storage::open`] opens them.
struct OpenedLimits {
    limiter: Arc<dyn LimiterState>,
    day_counts: Arc<dyn DayCountState>,
    redis: Option<Arc<RedisLimits>>,
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
        let stores = storage
            .open(
                Some(AuditOptions::default()),
                &Default::default(),
                &data_dir,
            )
            .await
            .unwrap();
        stores.registry.ready().await.unwrap();
        stores.day_counts.ready().await.unwrap();
        stores.audit_reader.ready().await.unwrap();
        let audit = stores.audit.clone().unwrap();
        audit.log().ready().await.unwrap();
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
        let stores = Storage::sqlite(dir.path())
            .open(None, &Default::default(), dir.path())
            .await
            .unwrap();
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

    #[test]
    fn bad_store_settings_are_named_and_never_echo_the_address() {
        let parse = |yaml: &str| serde_yaml_ng::from_str::<StoreSettings>(yaml);
        assert_eq!(parse("kind: sqlite").unwrap(), StoreSettings::Sqlite);
        // A misspelled setting is refused, not ignored.
        let misspelled = parse("kind: postgres\nurl_env: PG\npool: 4").unwrap_err();
        assert!(misspelled.to_string().contains("pool"), "{misspelled}");
        let StoreSettings::Postgres(settings) =
            parse("kind: postgres\nurl: postgres://u:s3cret@h/d\nurl_env: PG\nschema: Bad-Name\npool_size: 0")
                .unwrap()
        else {
            panic!("postgres");
        };
        let problems = settings.problems();
        let named: Vec<&str> = problems.iter().map(|(at, _)| *at).collect();
        assert_eq!(named, ["url", "schema", "pool_size"]);
        assert!(problems.iter().all(|(_, m)| !m.contains("s3cret")));
        assert!(!format!("{settings:?}").contains("s3cret"));
        let refused = crate::pg::Pg::new(&settings, std::path::Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(!refused.contains("s3cret"), "{refused}");
        let not_an_address = crate::pg::PgSettings::new("mysql://u:s3cret@h/d?x");
        let refused = crate::pg::Pg::new(&not_an_address, std::path::Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("not a PostgreSQL address"), "{refused}");
        assert!(!refused.contains("s3cret"), "{refused}");
    }
}
