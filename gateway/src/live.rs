//! The live configuration: the files named in `gateway.yaml` plus the registry's
//! objects, loaded into one [`ActiveConfig`] and swapped in whole, without a restart.
//!
//! Every change (an admin request, or `gateway apply` from the command line) goes the
//! same way: the configuration the change *would* make is loaded and checked exactly
//! as `gateway check` does; only if it has no problems is the change recorded in the
//! audit log, committed to the registry (against the revision it was checked on) and
//! the new configuration swapped in. A request holds the configuration it started
//! with until it ends, so no request ever sees half of a change. Connectors whose
//! definition and schemas did not change keep their connection pools and caches.
//!
//! Changes made by another process (`gateway apply`, another replica) are picked up by
//! a watcher on the registry's change notifications ([`Registry::watch`]).
//!
//! Loading reads files and builds connectors from what a department admin sent, so it
//! runs under a deadline ([`LOAD_DEADLINE`]) and **without** the change lock: a slow
//! or hostile candidate delays only its own change, never a revocation or another
//! department's change. The lock is held only to record and commit, after checking
//! that nobody committed since the candidate's snapshot (else the change is checked
//! again on the new snapshot). A version that loosens the county's classification is
//! checked as if in force, then kept for review without serving
//! ([`crate::classification`]).

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::audit::{AuditError, AuditEvent, AuditLog};
use crate::config::{self, ActiveConfig, ConfigProblem, LoadOptions, Source};
use crate::registry::{Change, Registry, RegistryError, Snapshot};

/// How often a registry that can only be polled is asked whether it changed.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The longest a configuration may take to load; a change whose candidate takes
/// longer is refused.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(20);

/// How many times a change is checked again when other changes keep committing first.
const CHANGE_ATTEMPTS: usize = 5;

/// Why a configuration could not be loaded or a change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the configuration would have {} problem(s)", .0.len())]
    Invalid(Vec<ConfigProblem>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the audit log cannot record the change: {0}")]
    Audit(AuditError),
    #[error("loading the configuration failed: {0}")]
    Task(String),
    #[error("loading the configuration took longer than {} s", LOAD_DEADLINE.as_secs())]
    TooSlow,
}

/// What a committed change made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The registry's revision after the change.
    pub revision: u64,
    /// The new configuration's version.
    pub version: String,
}

/// Where the configuration comes from, and the revision of the registry in force.
pub struct Live {
    source: Arc<dyn Source>,
    path: PathBuf,
    /// The options every load starts from (without the registry snapshot).
    options: LoadOptions,
    registry: Arc<dyn Registry>,
    /// The registry revision the active configuration was built from. Held while a
    /// change is recorded and committed or a reload swapped in, so those happen one
    /// at a time (never while a candidate loads).
    applied: Mutex<u64>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("path", &self.path)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Live {
    pub fn new(
        source: Arc<dyn Source>,
        path: impl Into<PathBuf>,
        options: LoadOptions,
        registry: Arc<dyn Registry>,
    ) -> Live {
        Live {
            source,
            path: path.into(),
            options,
            registry,
            applied: Mutex::new(0),
        }
    }

    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// Loads the configuration at the registry's current revision (at start).
    pub async fn load(&self) -> Result<ActiveConfig, ChangeError> {
        let mut applied = self.applied.lock().await;
        let snapshot = self.registry.snapshot().await?;
        let revision = snapshot.revision;
        let config = self.build(snapshot).await?;
        *applied = revision;
        Ok(config)
    }

    /// Loads the configuration `snapshot` gives, off the async workers, within
    /// [`LOAD_DEADLINE`].
    pub async fn build(&self, snapshot: Snapshot) -> Result<ActiveConfig, ChangeError> {
        let source = self.source.clone();
        let path = self.path.clone();
        let options = LoadOptions {
            registry: snapshot,
            ..self.options.clone()
        };
        let task = tokio::task::spawn_blocking(move || config::load(&*source, &path, &options));
        tokio::time::timeout(LOAD_DEADLINE, task)
            .await
            .map_err(|_| ChangeError::TooSlow)?
            .map_err(|e| ChangeError::Task(e.to_string()))?
            .map_err(ChangeError::Invalid)
    }

    /// Checks `changes`, records `event` in the audit log, commits the changes and
    /// swaps the configuration they make into `active`. Nothing is committed when the
    /// changes would make an invalid configuration or the audit log fails.
    pub async fn change(
        &self,
        active: &ArcSwap<ActiveConfig>,
        audit: &dyn AuditLog,
        changes: Vec<Change>,
        event: AuditEvent,
    ) -> Result<Changed, ChangeError> {
        let mut attempts = 0;
        let (mut applied, snapshot, config) = loop {
            attempts += 1;
            let snapshot = self.registry.snapshot().await?;
            let candidate = snapshot.with(&changes)?;
            // A proposal for review is checked as if it were in force.
            let proposed = snapshot.as_proposed(&changes)?;
            if proposed != candidate {
                self.build(proposed).await?;
            }
            // Changes that touch no configuration (a new access request, a refusal)
            // are committed without loading anything.
            let config = if candidate == snapshot {
                None
            } else {
                Some(self.build(candidate).await?)
            };
            let applied = self.applied.lock().await;
            let now = self.registry.revision().await?;
            if now == snapshot.revision {
                break (applied, snapshot, config);
            }
            if attempts >= CHANGE_ATTEMPTS {
                return Err(ChangeError::Registry(RegistryError::Conflict {
                    expected: snapshot.revision,
                    found: now,
                }));
            }
        };
        audit.append(event).await.map_err(ChangeError::Audit)?;
        let revision = self.registry.commit(snapshot.revision, changes).await?;
        *applied = revision;
        let Some(mut config) = config else {
            let version = active.load().version.clone();
            return Ok(Changed { revision, version });
        };
        carry_over(&active.load(), &mut config);
        let version = config.version.clone();
        let config = Arc::new(config);
        active.store(config.clone());
        drop(applied);
        record_loaded(audit, &config).await;
        Ok(Changed { revision, version })
    }

    /// Reloads if the registry moved on since the active configuration was built
    /// (another process changed it). Returns whether it reloaded.
    pub async fn refresh(
        &self,
        active: &ArcSwap<ActiveConfig>,
        audit: &dyn AuditLog,
    ) -> Result<bool, ChangeError> {
        if self.registry.revision().await? == *self.applied.lock().await {
            return Ok(false);
        }
        let snapshot = self.registry.snapshot().await?;
        let revision = snapshot.revision;
        let mut config = self.build(snapshot).await?;
        let mut applied = self.applied.lock().await;
        if *applied >= revision {
            // A change made here put this revision (or a later one) in force meanwhile.
            return Ok(false);
        }
        carry_over(&active.load(), &mut config);
        let config = Arc::new(config);
        active.store(config.clone());
        *applied = revision;
        drop(applied);
        record_loaded(audit, &config).await;
        Ok(true)
    }

    /// Reloads whenever the registry's change notifications ([`Registry::watch`],
    /// polled every [`WATCH_EVERY`] by default) name a revision not in force. The
    /// task holds only weak references and ends when the app is dropped.
    pub fn spawn_watcher(
        live: &Arc<Live>,
        active: &Arc<ArcSwap<ActiveConfig>>,
        audit: &Arc<dyn AuditLog>,
    ) -> tokio::task::JoinHandle<()> {
        let live: Weak<Live> = Arc::downgrade(live);
        let active = Arc::downgrade(active);
        let audit = Arc::downgrade(audit);
        let mut changes = live
            .upgrade()
            .map(|live| live.registry.clone().watch(WATCH_EVERY));
        tokio::spawn(async move {
            let Some(changes) = changes.as_mut() else {
                return;
            };
            // The revision whose configuration failed to load, not to retry it.
            let mut failed = None;
            while let Some(change) = changes.next().await {
                let (Some(live), Some(active), Some(audit)) =
                    (live.upgrade(), active.upgrade(), audit.upgrade())
                else {
                    return;
                };
                let Ok(revision) = change else {
                    continue;
                };
                if failed == Some(revision) {
                    continue;
                }
                match live.refresh(&active, &*audit).await {
                    Ok(true) => {
                        tracing::info!(revision, "registry changed; configuration reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        failed = Some(revision);
                        tracing::error!(revision, error = %e, "the registry changed but its configuration does not load; the previous one stays in force");
                        if let ChangeError::Invalid(problems) = e {
                            for p in problems {
                                tracing::error!(problem = %p, "configuration problem");
                            }
                        }
                    }
                }
            }
        })
    }
}

/// Keeps the connection pools and caches of connectors that did not change.
fn carry_over(old: &ActiveConfig, new: &mut ActiveConfig) {
    for (id, connector) in &mut new.connectors {
        if let Some(before) = old.connectors.get(id)
            && before.digest == connector.digest
        {
            connector.connector = before.connector.clone();
            connector.cache.clone_from(&before.cache);
        }
    }
}

/// Records the new configuration in the audit log. The change it came from is
/// already recorded, so a failure here is logged rather than undone.
async fn record_loaded(audit: &dyn AuditLog, config: &ActiveConfig) {
    if let Err(e) = config::record_loaded(audit, config).await {
        tracing::error!(error = %e, version = %config.version, "the audit log could not record a configuration load");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::EmbeddedSource;
    use crate::registry::{GrantRecord, PolicyFileRecord, Revocation, SqliteRegistry};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The demo county, whose main file can be made to block once: the next load
    /// that reads it stops there until released, as a load reading a hostile file
    /// would.
    struct Gate {
        files: EmbeddedSource,
        close_next: AtomicBool,
        entered: tokio::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
        release: tokio::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl Source for Gate {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            if path == Path::new(crate::county::COUNTY_CONFIG)
                && self.close_next.swap(false, Ordering::SeqCst)
            {
                if let Some(entered) = self.entered.blocking_lock().take() {
                    entered.send(()).unwrap();
                }
                if let Some(release) = self.release.blocking_lock().take() {
                    let _ = release.recv();
                }
            }
            self.files.read(path)
        }
    }

    fn grant() -> GrantRecord {
        let policy = include_str!("../../policies/jisheng.yaml");
        let first = policy
            .split("\n  - id: ")
            .nth(1)
            .expect("a first grant")
            .replace("jisheng-birth-registration", "ar-test-grant");
        GrantRecord {
            id: "ar-test-grant".into(),
            department: "county-hc".into(),
            connector: "jisheng".into(),
            township: "139901101".into(),
            policy: format!("grants:\n  - id: {first}"),
            request_id: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            created_by: "admin-hc".into(),
            revoked: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_does_not_wait_behind_another_changes_check() {
        let dir = tempfile::tempdir().unwrap();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Gate {
            files: EmbeddedSource::new(crate::county::COUNTY_FILES.iter().copied()),
            close_next: AtomicBool::new(false),
            entered: tokio::sync::Mutex::new(Some(entered_tx)),
            release: tokio::sync::Mutex::new(Some(release_rx)),
        });
        let registry = Arc::new(SqliteRegistry::open(dir.path()).unwrap());
        let live = Arc::new(Live::new(
            gate.clone(),
            crate::county::COUNTY_CONFIG,
            LoadOptions::default(),
            registry,
        ));
        let audit: Arc<dyn AuditLog> =
            Arc::new(crate::audit::SqliteAudit::open(dir.path(), Default::default()).unwrap());
        let active = Arc::new(ArcSwap::from_pointee(live.load().await.unwrap()));
        let event = || AuditEvent::admin("test", crate::audit::AuditCaller::gateway(), "test");
        live.change(&active, &*audit, vec![Change::AddGrant(grant())], event())
            .await
            .unwrap();
        assert!(
            active
                .load()
                .policies
                .grants()
                .iter()
                .any(|g| g.id == "ar-test-grant")
        );

        // A change whose check hangs (its load is stopped at the gate).
        gate.close_next.store(true, Ordering::SeqCst);
        let slow = {
            let (live, active, audit) = (live.clone(), active.clone(), audit.clone());
            tokio::spawn(async move {
                let file = PolicyFileRecord {
                    path: "extra.yaml".into(),
                    text: "grants: []\n".into(),
                };
                live.change(&active, &*audit, vec![Change::PutPolicyFile(file)], event())
                    .await
            })
        };
        tokio::task::spawn_blocking(move || entered.recv().unwrap())
            .await
            .unwrap();

        // The revocation goes through meanwhile and is in force.
        let revocation = Revocation {
            at: "2026-12-04T00:00:00Z".into(),
            by: "admin-hc".into(),
            reason: "no longer needed".into(),
        };
        live.change(
            &active,
            &*audit,
            vec![Change::RevokeGrant {
                id: "ar-test-grant".into(),
                revocation,
            }],
            event(),
        )
        .await
        .unwrap();
        assert!(
            !active
                .load()
                .policies
                .grants()
                .iter()
                .any(|g| g.id == "ar-test-grant")
        );
        assert!(
            !slow.is_finished(),
            "the slow change is still being checked"
        );

        // Released, the slow change is checked again on the new revision and commits.
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();
        assert!(
            !active
                .load()
                .policies
                .grants()
                .iter()
                .any(|g| g.id == "ar-test-grant")
        );
    }
}
