//! What replicas tell each other that the registry does not carry: today, that a
//! department admin purged a connector's record cache, or that a department corrected
//! one person's record (an accepted correction, [`crate::corrections`]), so that every
//! replica drops its copy, not only the one the request reached.
//!
//! Everything else a replica must learn comes through the registry's revision
//! ([`crate::live`]): a connector change or a revocation is a new revision, and every
//! replica reloads (a changed connector gets a fresh cache there). With SQLite there is
//! one process and nothing to tell. With PostgreSQL the message is a `NOTIFY` on the
//! schema's `cache` channel carrying the connector id (ids only, never a record), and
//! for one person's records the id, a space and the person's pseudonym (never the ID
//! number: each replica matches its cached keys' pseudonyms);
//! each replica listens on a connection of its own and reconnects when it drops.
//! A notification sent while a replica's listening connection is down is lost to it:
//! its copies then live until their `ttl_s`, as they would without a purge.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::ActiveConfig;
use crate::mask::PseudonymKey;
use crate::pg::Pg;
use crate::store::{Backend, Storage};

/// The channel topic of cache purges.
const PURGES: &str = "cache";

/// The longest wait between attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Tells the other replicas that connector `id`'s cache was purged here.
pub async fn announce_purge(storage: &Storage, id: &str) {
    let Backend::Postgres { pg, .. } = storage.backend() else {
        return;
    };
    let sent = async {
        let client = pg.client().await?;
        client
            .execute("SELECT pg_notify($1, $2)", &[&pg.channel(PURGES), &id])
            .await
            .map_err(|e| crate::pg::PgError::query(&e))
    };
    if let Err(e) = sent.await {
        tracing::warn!(connector = %id, error = %e, "the other replicas could not be told of a cache purge; their copies expire with their ttl");
    }
}

/// Tells the other replicas that the records of the subject with pseudonym
/// `subject` were purged from connector `id`'s cache here.
pub async fn announce_subject_purge(storage: &Storage, id: &str, subject: &str) {
    announce_purge(storage, &format!("{id} {subject}")).await;
}

/// Listens for other replicas' purges and drops the connector's cache here (or one
/// subject's records in it, matched by `pseudonym`). Holds the configuration weakly
/// and ends with it. Nothing to do with SQLite.
pub fn spawn_listener(
    storage: &Storage,
    config: &Arc<ArcSwap<ActiveConfig>>,
    pseudonym: Arc<PseudonymKey>,
) -> Option<tokio::task::JoinHandle<()>> {
    let Backend::Postgres { pg, .. } = storage.backend() else {
        return None;
    };
    let pg = pg.clone();
    let config = Arc::downgrade(config);
    Some(tokio::spawn(listen(pg, config, pseudonym)))
}

async fn listen(pg: Pg, config: Weak<ArcSwap<ActiveConfig>>, pseudonym: Arc<PseudonymKey>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if config.strong_count() == 0 {
            return;
        }
        match pg.dedicated().await {
            Ok((client, mut notifications)) => {
                let listening = client
                    .batch_execute(&format!("LISTEN {}", pg.channel(PURGES)))
                    .await;
                if listening.is_ok() {
                    backoff = Duration::from_millis(100);
                    while let Some(notification) = notifications.recv().await {
                        let Some(config) = config.upgrade() else {
                            return;
                        };
                        let config = config.load_full();
                        match notification.payload().split_once(' ') {
                            Some((id, subject)) => {
                                purge_subject(&config, id, subject, &pseudonym).await;
                            }
                            None => purge(&config, notification.payload()),
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' cache purges; trying again");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Drops the cached records of connector `id` of the subject with pseudonym
/// `subject`, if it has any here.
async fn purge_subject(config: &ActiveConfig, id: &str, subject: &str, key: &PseudonymKey) {
    if let Some(cache) = config.connectors.get(id).and_then(|c| c.cache.as_ref()) {
        let dropped = cache.purge_subject(|s| key.pseudonym(s), subject).await;
        tracing::info!(connector = %id, "dropped" = dropped, "a subject's cached records purged (by another replica)");
    }
}

/// Drops connector `id`'s cached records, if it has any here.
fn purge(config: &ActiveConfig, id: &str) {
    if let Some(cache) = config.connectors.get(id).and_then(|c| c.cache.as_ref()) {
        cache.purge();
        tracing::info!(connector = %id, "connector cache purged (by another replica)");
    }
}
