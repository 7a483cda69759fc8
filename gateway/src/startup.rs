//! The one bootstrap: from a loaded configuration to a gateway ready to serve.
//! `gateway serve`, `gateway demo`, the end-to-end tests and the benchmark (which
//! runs `gateway serve`) all start the gateway through [`Application::build`], so
//! they open the same stores, record the configuration the same way and start the
//! same background tasks (rate-limit sweeper, configuration watcher, witness
//! senders).
//!
//! [`Application::run_until`] serves until a shutdown future completes, then keeps
//! the exact daily quota counts, records what the audit log has queued and signs the
//! chain's head, and gives the witnesses a few seconds to take that last checkpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::config::ActiveConfig;
use crate::console::Console;
use crate::live::Live;
use crate::mask::PseudonymKey;
use crate::store::{AuditWriter, Storage, StoreError};
use crate::witness::client::WitnessClient;
use crate::witness::sender::Witnesses;

/// How long a gateway waits at exit for the witnesses to take the last checkpoint.
const WITNESS_GRACE: Duration = Duration::from_secs(5);

/// What a gateway is built from: a loaded configuration and where it came from, and
/// what was loaded beside it.
#[derive(Debug)]
pub struct Settings {
    /// Where the configuration comes from; changes go through it.
    pub live: Arc<Live>,
    /// The configuration loaded from `live`; its `data_dir` holds the stores.
    pub config: ActiveConfig,
    pub auth: Authenticator,
    /// The key of subject pseudonyms and the `pseudonym` mask.
    pub pseudonym: PseudonymKey,
    /// Where to listen (port 0: any free port; see [`Application::addr`]).
    pub listen: SocketAddr,
    /// Where to serve `/metrics` without a token, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// HTTPS (and mTLS) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The witnesses the audit log's checkpoints are sent to.
    pub witness_clients: Vec<WitnessClient>,
    /// The audit log to record into; by default the one `storage` opens.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// Where "now" comes from; by default the machine's clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Where the stores live; its registry is the one `live` reads.
    pub storage: Storage,
    /// The web console's sign-in and sessions.
    pub console: crate::console::Options,
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (metrics_listen): {source}")]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the audit log: {0}")]
    Audit(String),
    #[error("the audit checkpoint key: {0}")]
    CheckpointKey(String),
    #[error("the audit log cannot record the configuration: {0}")]
    RecordConfig(String),
}

/// A gateway ready to serve.
#[derive(Debug)]
pub struct Application {
    app: App,
    console: Console,
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The audit log, when the gateway opened it (flushed at exit).
    own_audit: Option<AuditWriter>,
    witnesses: Option<Witnesses>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Opens the stores in the configuration's data directory, binds the listeners,
    /// records the configuration in the audit log and starts the background tasks.
    /// Call inside a Tokio runtime.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let Settings {
            live,
            config,
            auth,
            pseudonym,
            listen,
            metrics_listen,
            tls,
            witness_clients,
            audit,
            clock,
            storage,
            console,
        } = settings;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(listen);
        let metrics_listener = match metrics_listen {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .map_err(|source| StartError::MetricsListen { addr: at, source })?,
            ),
            None => None,
        };
        let own_audit = audit.is_none().then(|| config.audit.options());
        let stores = storage
            .open(own_audit, &config.rate_limits, &config.base_dir)
            .await
            .map_err(|e| match e {
                StoreError::Audit(e) => StartError::Audit(e.to_string()),
                other => StartError::Store(other.to_string()),
            })?;
        let (audit, own_audit, witnesses): (Arc<dyn AuditLog>, _, _) = match audit {
            Some(audit) => (audit, None, None),
            None => {
                let Some(writer) = stores.audit.clone() else {
                    return Err(StartError::Audit("the audit log was not opened".into()));
                };
                let key = match stores.audit_backend.public_key(false).await {
                    Ok(key) => key,
                    Err(e) => {
                        writer.shutdown().await;
                        return Err(StartError::CheckpointKey(e.to_string()));
                    }
                };
                // The embedded log's witnesses keep its chain's checkpoints; a log
                // on PostgreSQL's keep its county checkpoints.
                let newest = match &writer {
                    AuditWriter::Sqlite(log) => log.checkpoints(),
                    AuditWriter::Segments(log) => log.checkpoints(),
                    AuditWriter::Postgres(log) => log.county_checkpoints(),
                    AuditWriter::Inbox(_) => {
                        return Err(StartError::Audit(
                            "another process is writing this data directory's audit log".into(),
                        ));
                    }
                };
                let witnesses = Some(crate::witness::sender::start(
                    stores.audit_backend.clone(),
                    key,
                    witness_clients,
                    newest,
                ));
                (writer.log(), Some(writer), witnesses)
            }
        };
        if let Err(e) = crate::config::record_loaded(&*audit, &config).await {
            if let Some(writer) = &own_audit {
                writer.shutdown().await;
            }
            return Err(StartError::RecordConfig(e.to_string()));
        }
        let mut app = App::new(
            config,
            live,
            storage,
            &stores,
            Arc::new(auth),
            Arc::new(pseudonym),
            audit,
        )
        .with_clock(clock.unwrap_or_else(|| Arc::new(SystemClock)));
        if let Some(witnesses) = &witnesses {
            app = app.with_witnesses(witnesses.statuses());
        }
        let console = Console::new(app.clone(), console, tls.is_some());
        let mut background = vec![
            app.limits.spawn_sweeper(),
            Live::spawn_watcher(&app.live, &app.config, &app.audit),
        ];
        background.extend(crate::cluster::spawn_listener(
            &app.storage,
            &app.config,
            app.pseudonym.clone(),
        ));
        background.push(crate::corrections::spawn_sweeper(&app));
        Ok(Application {
            app,
            console,
            listener,
            addr,
            metrics_listener,
            tls,
            own_audit,
            witnesses,
            background,
        })
    }

    /// Where the gateway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served without a token, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The gateway's shared state.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, keeps the
    /// daily quota counts, records what the audit log has queued and gives the
    /// witnesses a few seconds to take the last checkpoint.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            app,
            console,
            listener,
            metrics_listener,
            tls,
            own_audit,
            witnesses,
            background,
            ..
        } = self;
        let limits = app.limits.clone();
        let metrics = metrics_listener.map(|listener| {
            tokio::spawn(
                axum::serve(listener, crate::http::metrics_router(app.clone())).into_future(),
            )
        });
        let router = crate::http::router_with(app, crate::console::router(console));
        let served = match tls {
            Some(tls) => crate::tls::serve_tls(listener, router, tls, shutdown).await,
            None => crate::http::serve(listener, router, shutdown).await,
        };
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        for task in background {
            task.abort();
        }
        limits.flush().await;
        if let Some(writer) = own_audit {
            writer.shutdown().await;
        }
        if let Some(witnesses) = witnesses {
            witnesses.finish(WITNESS_GRACE).await;
        }
        served
    }
}
