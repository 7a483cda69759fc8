//! Witnesses: other parties — another county's gateway, the city data bureau — that
//! keep the audit log's signed checkpoints as they are made, append-only, so that a
//! rewrite of the log, or a cut tail, is caught even when whoever made it holds the
//! database and the checkpoint key: `gateway audit verify --witness` checks that the
//! log still holds, at every witnessed seq, the hash the witness was given.
//!
//! Both sides live here:
//!
//! - the gateway's side: [`sender`] sends each checkpoint to every witness configured
//!   in `gateway.yaml` (`audit.witnesses`) over HTTPS with the gateway's client
//!   certificate, in the background — a witness that is down never holds up or fails
//!   a lookup; what it missed is sent when it is back (the log itself is the queue),
//!   and its lag shows in `/metrics` and the log; [`client`] speaks the protocol;
//! - the witness's side, `gateway witness serve`: [`server`] (the HTTP API, only over
//!   TLS with client certificates, see its docs for the protocol), [`store`] (what it
//!   keeps, and the rule a checkpoint must pass: same key, a larger seq, a time not
//!   before the head's, and naming the head as its previous checkpoint) and
//!   [`config`] (`witness.yaml`: TLS, the allow-list of client certificates and the
//!   checkpoint keys each may submit for).
//!
//! A witness identifies a log by its checkpoint key. It keeps only v2 checkpoints,
//! whose `prev` line chains them (see the checkpoint format in [`crate::audit`]); the
//! first checkpoint it receives for a log is kept as it comes, every later one must
//! extend the one before.

pub mod client;
pub mod config;
pub mod entry;
pub mod sender;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use config::WitnessConfig;
use server::{WitnessState, router};
use store::WitnessStore;

/// Serves the witness on `listener` until `shutdown` completes. The TLS problems of
/// the configuration (unreadable files, …) come back as `path: message` lines.
pub async fn serve(
    config: WitnessConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Vec<String>> {
    let tls = config.tls.load(&config.base_dir).map_err(|problems| {
        problems
            .into_iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect::<Vec<_>>()
    })?;
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || WitnessStore::open(&data_dir))
        .await
        .map_err(|_| vec!["the witness store could not be opened".to_owned()])?
        .map_err(|e| vec![e.to_string()])?;
    let state = Arc::new(WitnessState {
        store,
        clients: config.clients,
    });
    crate::tls::serve_tls(listener, router(state), tls, shutdown)
        .await
        .map_err(|e| vec![format!("the server stopped: {e}")])
}

/// The clients of the witnesses in `settings` (TLS files relative to `base_dir`),
/// or every problem as (path in the gateway file, message).
pub fn clients(
    settings: &crate::audit::settings::AuditSettings,
    base_dir: &std::path::Path,
) -> Result<Vec<client::WitnessClient>, Vec<(String, String)>> {
    let mut clients = Vec::new();
    let mut problems = Vec::new();
    for (i, target) in settings.witnesses.iter().enumerate() {
        match client::WitnessClient::new(target, base_dir) {
            Ok(client) => clients.push(client),
            Err(problem) => problems.push((format!("audit.witnesses[{i}]"), problem)),
        }
    }
    if problems.is_empty() {
        Ok(clients)
    } else {
        Err(problems)
    }
}
