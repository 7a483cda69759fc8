//! The gateway's state as an operator checks it: readiness (can it answer *and*
//! audit — the configuration, the audit log's writer and reader, the registry and the
//! daily quota counts), the configuration in force (its version, when it was built,
//! from which files and registry revision), the audit log (its last event and last
//! checkpoint) and whether each department's systems take a connection. Read by
//! `/readyz` ([`readiness`]) and the console's status page ([`status`]).

use std::time::Duration;

use crate::app::App;

/// How long a department's system has to take a connection before it counts as
/// unreachable.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// The parts that are not ready (`audit`, `registry`, `day_counts`); empty when the
/// gateway can answer and audit. The causes go to the log.
pub async fn readiness(app: &App) -> Vec<&'static str> {
    let (audit, reader, registry, day_counts) = tokio::join!(
        app.audit.ready(),
        app.audit_reader.ready(),
        app.live.registry().ready(),
        app.limits.ready()
    );
    let mut failed = Vec::new();
    if let Err(e) = audit {
        tracing::error!(error = %e, "readiness probe: the audit log cannot record");
        failed.push("audit");
    } else if let Err(e) = reader {
        tracing::error!(error = %e, "readiness probe: the audit log cannot be read");
        failed.push("audit");
    }
    if let Err(e) = registry {
        tracing::error!(error = %e, "readiness probe: the registry cannot be read");
        failed.push("registry");
    }
    if let Err(e) = day_counts {
        tracing::error!(error = %e, "readiness probe: the daily quota counts cannot be kept");
        failed.push("day_counts");
    }
    failed
}

/// Whether a department's systems take a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub department: String,
    pub name: String,
    /// Its systems (`host:port`) that took a connection, and all of them.
    pub reachable: usize,
    pub upstreams: usize,
}

/// The audit log's head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditState {
    /// The newest event's sequence number and time.
    pub last_seq: Option<u64>,
    pub last_time: Option<String>,
    /// The newest signed checkpoint's sequence number, and how many events are not
    /// covered by one yet.
    pub checkpoint_seq: Option<u64>,
    pub uncovered: Option<u64>,
}

/// What the operator's status page shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// The parts not ready; empty when ready.
    pub not_ready: Vec<&'static str>,
    pub config_version: String,
    pub loaded_at: String,
    pub files: Vec<String>,
    pub registry_revision: u64,
    pub connectors: usize,
    pub disabled: usize,
    pub audit: AuditState,
    pub departments: Vec<Reach>,
}

/// Whether `host:port` takes a TCP connection within [`REACH_TIMEOUT`].
async fn takes_connection(host: String, port: u16) -> bool {
    matches!(
        tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

/// The gateway's state now. Reads the audit log's head and tries one connection to
/// each department system, all at once.
pub async fn status(app: &App) -> Status {
    let config = app.config.load_full();
    let not_ready = readiness(app).await;
    let reaches = config.departments.iter().map(|d| {
        let tries: Vec<_> = d
            .upstreams
            .iter()
            .map(|u| {
                let (host, port) = u.address();
                takes_connection(host.to_owned(), port)
            })
            .collect();
        let (id, name, total) = (d.id.clone(), d.name.clone(), d.upstreams.len());
        async move {
            let reachable = futures::future::join_all(tries)
                .await
                .into_iter()
                .filter(|ok| *ok)
                .count();
            Reach {
                department: id,
                name,
                reachable,
                upstreams: total,
            }
        }
    });
    let departments = futures::future::join_all(reaches).await;
    Status {
        not_ready,
        config_version: config.version.clone(),
        loaded_at: config.loaded_at.clone(),
        files: config.files.clone(),
        registry_revision: config.registry_revision,
        connectors: config.connectors.len(),
        disabled: config.disabled.len(),
        audit: audit_state(app).await,
        departments,
    }
}

/// The audit log's newest event and checkpoint (unknown parts when it cannot be
/// read; the cause goes to the log).
async fn audit_state(app: &App) -> AuditState {
    let mut state = AuditState::default();
    let page = app
        .audit_reader
        .search(crate::audit::Filter::default(), None, 1)
        .await;
    match page {
        Ok(page) => {
            if let Some(newest) = page.events.first() {
                state.last_seq = Some(newest.seq);
                state.last_time = Some(newest.event.time.clone());
            }
        }
        Err(e) => tracing::error!(error = %e, "the status page could not read the audit log"),
    }
    match app.storage.audit_backend().checkpoints_pending(0).await {
        Ok((_, newest)) if newest > 0 => {
            state.checkpoint_seq = Some(newest);
            state.uncovered = state.last_seq.map(|last| last.saturating_sub(newest));
        }
        Ok(_) => state.uncovered = state.last_seq,
        Err(e) => tracing::error!(error = %e, "the status page could not read the checkpoints"),
    }
    state
}
