//! [`PgAuditBackend`]: `gateway audit verify` over every chain of the log on
//! PostgreSQL, in one snapshot (`REPEATABLE READ`, read-only), with the embedded
//! log's walk ([`ChainWalk`]: sequence, previous hash, hash, body and columns, each
//! chain's signed checkpoints and their `prev`, the cadence), then the county
//! checkpoints: each signed with the key, naming the one before, and every chain head
//! they name must be in the log — a chain that is gone, or ends before the seq named,
//! or holds another hash there, fails, naming the chain.
//!
//! Each chain's events are read from the archived months and the live table together
//! (`archive.rs`); an archived month whose table is gone fails.
//!
//! Not on PostgreSQL yet: the witnesses' feeds (`checkpoints_after`,
//! `checkpoints_pending`), which answer [`AuditError::Backend`]; `verify` with
//! witnessed checkpoints fails saying so.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt as _, pin_mut};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::backend::Archived;
use super::super::backend::AuditBackend;
use super::super::chain::GENESIS;
use super::super::checkpoint::{encode_public_key, load_or_create_key, public_key, text_sha256};
use super::super::retention::Retention;
use super::super::verify::{
    ChainHead, ChainWalk, Expectations, Stored, StoredColumns, VerifyFailure, VerifyReport,
};
use super::county::CountyCheckpoint;
use super::{AuditError, query_failed, unavailable};
use crate::pg::{Pg, describe};

/// The log on PostgreSQL, for its maintenance.
#[derive(Debug, Clone)]
pub struct PgAuditBackend {
    pg: Pg,
    key_file: PathBuf,
}

impl PgAuditBackend {
    /// `key_file`: the checkpoint key the writers sign with (its public half is what
    /// checkpoints are checked against when no key is pinned).
    pub fn new(pg: Pg, key_file: impl Into<PathBuf>) -> PgAuditBackend {
        PgAuditBackend {
            pg,
            key_file: key_file.into(),
        }
    }
}

fn broken(seq: Option<u64>, problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq,
        problem: problem.into(),
    }
}

fn unreadable(e: &tokio_postgres::Error) -> VerifyFailure {
    broken(
        None,
        format!("cannot read the audit log on PostgreSQL: {}", describe(e)),
    )
}

/// One stored row of `SELECT {EVENT_COLUMNS}`, borrowed from the row.
pub(super) fn stored(row: &Row) -> Result<Stored<'_>, tokio_postgres::Error> {
    Ok(Stored {
        seq: row.try_get(0)?,
        columns: StoredColumns {
            event_id: row.try_get(1)?,
            time: row.try_get(2)?,
            request_id: row.try_get(3)?,
            user: row.try_get(4)?,
            township: row.try_get(5)?,
            connector: row.try_get(6)?,
            purpose: row.try_get(7)?,
            subject_pseudonym: row.try_get(8)?,
            status: i64::from(row.try_get::<_, i32>(9)?),
        },
        body: row.try_get::<_, &str>(10)?.as_bytes(),
        prev_hash: row.try_get(11)?,
        hash: row.try_get(12)?,
    })
}

/// What the county checkpoints say of one chain: seq → (hash, the checkpoint's id).
type Claims = BTreeMap<u64, (String, i64)>;

impl PgAuditBackend {
    async fn verify_all(&self, expect: Expectations) -> Result<VerifyReport, VerifyFailure> {
        if !expect.witnessed.is_empty() {
            return Err(broken(
                None,
                "checking witnessed checkpoints is not available on PostgreSQL yet (a \
                 checkpoint does not name its chain); verify without --witness",
            ));
        }
        let mut client = self
            .pg
            .client()
            .await
            .map_err(|e| broken(None, format!("cannot reach the audit log: {e}")))?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| unreadable(&e))?;
        let checked = self.walk_all(&tx, &expect).await;
        // Ended here rather than when dropped, so that its locks go at once.
        let _ = tx.rollback().await;
        checked
    }

    /// The walk of [`PgAuditBackend::verify_all`], in the snapshot `tx`.
    async fn walk_all(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        expect: &Expectations,
    ) -> Result<VerifyReport, VerifyFailure> {
        super::archive::hold_months(tx).await?;
        let chain_ids: Vec<String> = tx
            .query(
                "SELECT chain_id FROM audit_chains
                 UNION SELECT chain_id FROM audit_checkpoints
                 UNION SELECT DISTINCT chain_id FROM audit_events
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| unreadable(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect();

        // The county checkpoints first: what they claim is checked during the walk.
        let county: Vec<(i64, String)> = tx
            .query(
                "SELECT seq, text FROM audit_county_checkpoints ORDER BY seq",
                &[],
            )
            .await
            .map_err(|e| unreadable(&e))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut claims: HashMap<String, Claims> = HashMap::new();
        let mut county_key: Option<Vec<u8>> = expect.pinned_key.clone();
        let mut prev: Option<(i64, &str)> = None;
        for (id, text) in &county {
            let here = |problem: String| broken(None, format!("county checkpoint {id}: {problem}"));
            let checkpoint = CountyCheckpoint::parse(text).map_err(here)?;
            if county_key.is_none() {
                county_key = Some(
                    public_key(&self.key_file)
                        .map_err(|e| here(format!("cannot check it: {e}")))?,
                );
            }
            let key = county_key.as_deref().unwrap_or_default();
            checkpoint.check_signature(text, key).map_err(here)?;
            let prev_seq = prev.map_or(0, |(seq, _)| seq);
            if *id != prev_seq + 1 {
                return Err(here(format!(
                    "it follows county checkpoint {prev_seq} (those between were removed)"
                )));
            }
            if checkpoint
                .seq
                .is_some_and(|seq| i64::try_from(seq).ok() != Some(*id))
                || checkpoint
                    .prev_seq
                    .is_some_and(|seq| i64::try_from(seq).ok() != Some(prev_seq))
            {
                return Err(here(
                    "its text states another number than the one it is stored under".into(),
                ));
            }
            let expected_prev = prev.map_or([0; 32], |(_, text)| text_sha256(text));
            if checkpoint.prev != expected_prev {
                return Err(here(
                    "it does not name the county checkpoint before it (one was removed or \
                     replaced)"
                        .into(),
                ));
            }
            prev = Some((*id, text));
            for head in checkpoint.chains {
                let chain = claims.entry(head.chain_id.clone()).or_default();
                match chain.get(&head.seq) {
                    Some((hash, _)) if *hash != head.hash => {
                        return Err(here(format!(
                            "it names another hash for seq {} of chain {} than an earlier one",
                            head.seq, head.chain_id
                        )));
                    }
                    Some(_) => {}
                    None => {
                        chain.insert(head.seq, (head.hash, *id));
                    }
                }
            }
        }
        if let Some(missing) = claims.keys().find(|id| !chain_ids.contains(id)) {
            let (seq, (_, id)) = claims
                .get(missing)
                .and_then(|c| c.iter().next_back())
                .map_or((0, (String::new(), 0)), |(s, c)| (*s, c.clone()));
            return Err(broken(
                None,
                format!(
                    "chain {missing} is missing: county checkpoint {id} names it with {seq} \
                     events (the chain was deleted)"
                ),
            ));
        }

        let mut report = VerifyReport {
            events: 0,
            checkpoints: 0,
            last_seq: 0,
            last_hash: hex::encode(GENESIS),
            key: None,
            key_pinned: expect.pinned_key.is_some(),
            unsigned_tail: 0,
            witnessed: 0,
            chains: Vec::with_capacity(chain_ids.len()),
            county_checkpoints: county.len() as u64,
        };
        // Archived months and the live table, in seq order.
        let events_sql = super::archive::chain_events_sql(tx).await?;
        let events = tx.prepare(&events_sql).await.map_err(|e| unreadable(&e))?;
        for chain_id in &chain_ids {
            let in_chain = |failure: VerifyFailure| {
                broken(
                    failure.seq,
                    format!("{} (chain {chain_id})", failure.problem),
                )
            };
            let checkpoints: Vec<(u64, String)> = tx
                .query(
                    "SELECT seq, text FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq",
                    &[chain_id],
                )
                .await
                .map_err(|e| unreadable(&e))?
                .iter()
                // A negative number (never written) becomes 0, which matches no event.
                .map(|row| (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1)))
                .collect();
            let mut walk = ChainWalk::from_start(&self.key_file, expect, checkpoints);
            let mut claimed = claims.remove(chain_id).unwrap_or_default();
            let params: [&(dyn ToSql + Sync); 1] = [chain_id];
            let rows = tx
                .query_raw(&events, params)
                .await
                .map_err(|e| unreadable(&e))?;
            pin_mut!(rows);
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| in_chain(unreadable(&e)))?;
                let stored = stored(&row).map_err(|e| {
                    in_chain(broken(
                        Some(walk.next_seq()),
                        format!("event {} cannot be read: {}", walk.next_seq(), describe(&e)),
                    ))
                })?;
                walk.event(&stored).map_err(in_chain)?;
                let seq = walk.next_seq() - 1;
                if let Some((hash, id)) = claimed.remove(&seq)
                    && hash != stored.hash
                {
                    return Err(in_chain(broken(
                        Some(seq),
                        format!(
                            "county checkpoint {id} names another hash for this event (the \
                             chain was rewritten)"
                        ),
                    )));
                }
            }
            let walked = walk.finish().map_err(in_chain)?;
            claimed.remove(&0);
            if let Some((seq, (_, id))) = claimed.into_iter().next_back() {
                return Err(in_chain(broken(
                    Some(walked.last_seq + 1),
                    format!(
                        "county checkpoint {id} names seq {seq}, but the chain ends at seq {}: \
                         events after it were cut off",
                        walked.last_seq
                    ),
                )));
            }
            report.events += walked.last_seq;
            report.checkpoints += walked.checkpoints;
            report.unsigned_tail += walked.unsigned_tail;
            if walked.last_seq > report.last_seq {
                report.last_seq = walked.last_seq;
                report.last_hash = hex::encode(walked.last_hash);
            }
            if report.key.is_none() {
                report.key = walked.key.as_deref().map(encode_public_key);
            }
            report.chains.push(ChainHead {
                chain_id: chain_id.clone(),
                last_seq: walked.last_seq,
                last_hash: hex::encode(walked.last_hash),
                checkpoints: walked.checkpoints,
                unsigned_tail: walked.unsigned_tail,
            });
        }
        if report.key.is_none() {
            report.key = county_key.as_deref().map(encode_public_key);
        }
        Ok(report)
    }
}

fn not_yet(what: &str) -> AuditError {
    AuditError::Backend(format!(
        "{what} is not available on PostgreSQL yet; the gateway's audit log on SQLite has it"
    ))
}

impl AuditBackend for PgAuditBackend {
    fn verify(&self, expect: Expectations) -> BoxFuture<'_, Result<VerifyReport, VerifyFailure>> {
        Box::pin(self.verify_all(expect))
    }

    /// Detaches whole old months into read-only archive tables (see `archive.rs`).
    fn archive(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<Archived>, AuditError>> {
        Box::pin(super::archive::archive(&self.pg, retention, now))
    }

    /// The newest county checkpoint (it signs every chain's head).
    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<String>, AuditError>> {
        Box::pin(async move {
            let client = self.pg.client().await.map_err(unavailable)?;
            Ok(client
                .query_opt(
                    "SELECT text FROM audit_county_checkpoints ORDER BY seq DESC LIMIT 1",
                    &[],
                )
                .await
                .map_err(|e| query_failed(&e))?
                .map(|row| row.get(0)))
        })
    }

    fn checkpoints_after(
        &self,
        _after: u64,
        _limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(u64, String)>, AuditError>> {
        Box::pin(async { Err(not_yet("sending checkpoints to witnesses")) })
    }

    fn checkpoints_pending(&self, _after: u64) -> BoxFuture<'_, Result<(u64, u64), AuditError>> {
        Box::pin(async { Err(not_yet("sending checkpoints to witnesses")) })
    }

    /// The key file's public half; with `create`, the key is made when there is none
    /// and no chain holds a checkpoint yet (nor has a writer recorded its key).
    fn public_key(&self, create: bool) -> BoxFuture<'_, Result<Vec<u8>, AuditError>> {
        Box::pin(async move {
            if !create || self.key_file.exists() {
                return public_key(&self.key_file);
            }
            let client = self.pg.client().await.map_err(unavailable)?;
            let signed: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM audit_checkpoints)
                         OR EXISTS (SELECT 1 FROM audit_county_checkpoints)
                         OR EXISTS (SELECT 1 FROM audit_meta WHERE name = 'checkpoint_key')",
                    &[],
                )
                .await
                .map_err(|e| query_failed(&e))?
                .get(0);
            if let Some(dir) = self.key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::datadir::create_dir(dir).map_err(|source| AuditError::Io {
                    what: "cannot create the key's directory",
                    source,
                })?;
            }
            Ok(load_or_create_key(&self.key_file, !signed)?
                .public_key()
                .to_vec())
        })
    }
}
