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
//! **Witnesses.** The log hands its witnesses its county checkpoints
//! ([`AuditBackend::checkpoints_after`], [`AuditBackend::witnessed_kind`]). A county
//! checkpoint a witness holds must be in the log with the very same text (and so its
//! chain heads are checked as the log's own are); one beyond the log's newest means
//! county checkpoints were cut off. A chain checkpoint a witness holds (one sent
//! before the county moved its embedded log here, `gateway migrate-store`) must sign
//! the hash some chain holds at its seq: the chains are hash chains, so only a chain
//! with the same history can.

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
use super::super::checkpoint::{
    Checkpoint, WitnessedKind, encode_public_key, load_or_create_key, public_key, text_sha256,
};
use super::super::retention::Retention;
use super::super::verify::{
    ChainHead, ChainWalk, Expectations, Stored, StoredColumns, VerifyFailure, VerifyReport,
    Witnessed,
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
        let mut witnessed = self.witnessed(&expect.witnessed, &mut county_key)?;
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
            for (witness, held) in u64::try_from(*id)
                .ok()
                .and_then(|seq| witnessed.county.remove(&seq))
                .unwrap_or_default()
            {
                if held != *text {
                    return Err(here(format!(
                        "{witness} holds another text for it: the log was rewritten after the \
                         witness received it"
                    )));
                }
                witnessed.matched += 1;
            }
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
        if let Some((seq, witness)) = witnessed
            .county
            .iter()
            .find_map(|(seq, held)| held.first().map(|(witness, _)| (seq, witness)))
        {
            return Err(broken(
                None,
                format!(
                    "{witness} holds county checkpoint {seq}, but the log's county checkpoints \
                     end at {}: the newest were cut off",
                    prev.map_or(0, |(seq, _)| seq)
                ),
            ));
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
            unacknowledged_bytes: 0,
        };
        // Each chain is held to the cadence and key; the witnesses were seen to above
        // and below.
        let chain_expect = Expectations {
            cadence: expect.cadence,
            pinned_key: expect.pinned_key.clone(),
            witnessed: Vec::new(),
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
            let mut walk = ChainWalk::from_start(&self.key_file, &chain_expect, checkpoints);
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
                if let Some(held) = witnessed.chain.get_mut(&seq) {
                    let before = held.len();
                    held.retain(|(hash, _)| hash != stored.hash);
                    witnessed.matched += (before - held.len()) as u64;
                }
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
        if let Some((seq, witness)) = witnessed
            .chain
            .iter()
            .find_map(|(seq, held)| held.first().map(|(_, witness)| (*seq, witness)))
        {
            return Err(broken(
                Some(seq),
                format!(
                    "{witness} holds a checkpoint at seq {seq} whose hash no chain holds: the \
                     log was rewritten or cut after the witness received it"
                ),
            ));
        }
        report.witnessed = witnessed.matched;
        if report.key.is_none() {
            report.key = county_key.as_deref().map(encode_public_key);
        }
        Ok(report)
    }

    /// The witnessed texts, each signed with the log's key (`key`, read from the key
    /// file when none is pinned), sorted by kind.
    fn witnessed(
        &self,
        held: &[Witnessed],
        key: &mut Option<Vec<u8>>,
    ) -> Result<WitnessedTexts, VerifyFailure> {
        let mut texts = WitnessedTexts::default();
        for held in held {
            let not_ours = |problem: String| {
                broken(
                    None,
                    format!(
                        "{} holds a checkpoint that is not this log's: {problem}",
                        held.witness
                    ),
                )
            };
            if key.is_none() {
                *key = Some(public_key(&self.key_file).map_err(|e| not_ours(e.to_string()))?);
            }
            let key = key.as_deref().unwrap_or_default();
            if let Ok(county) = CountyCheckpoint::parse(&held.text) {
                county.check_signature(&held.text, key).map_err(not_ours)?;
                let seq = county
                    .seq
                    .ok_or_else(|| not_ours("a county checkpoint without a seq".into()))?;
                texts
                    .county
                    .entry(seq)
                    .or_default()
                    .push((held.witness.clone(), held.text.clone()));
            } else {
                let checkpoint = Checkpoint::parse(&held.text).map_err(not_ours)?;
                checkpoint
                    .check_signature(&held.text, key)
                    .map_err(not_ours)?;
                texts
                    .chain
                    .entry(checkpoint.seq)
                    .or_default()
                    .push((checkpoint.hash, held.witness.clone()));
            }
        }
        Ok(texts)
    }
}

/// What witnesses hold, to be found in the log.
#[derive(Debug, Default)]
struct WitnessedTexts {
    /// County checkpoints by seq: (who holds it, its text) for every witness that
    /// holds one.
    county: BTreeMap<u64, Vec<(String, String)>>,
    /// Chain checkpoints by seq: (the hash it signs, who holds it).
    chain: BTreeMap<u64, Vec<(String, String)>>,
    /// How many were found in the log.
    matched: u64,
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

    /// The county checkpoints after `after`, oldest first.
    fn checkpoints_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(u64, String)>, AuditError>> {
        Box::pin(async move {
            let client = self.pg.client().await.map_err(unavailable)?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            client
                .query(
                    "SELECT seq, text FROM audit_county_checkpoints WHERE seq > $1
                     ORDER BY seq LIMIT $2",
                    &[&after, &limit],
                )
                .await
                .map_err(|e| query_failed(&e))?
                .iter()
                .map(|row| {
                    let seq = u64::try_from(row.get::<_, i64>(0)).map_err(|_| {
                        AuditError::Backend("a county checkpoint's seq is negative".into())
                    })?;
                    Ok((seq, row.get(1)))
                })
                .collect()
        })
    }

    /// How many county checkpoints there are after `after`, and the newest's seq.
    fn checkpoints_pending(&self, after: u64) -> BoxFuture<'_, Result<(u64, u64), AuditError>> {
        Box::pin(async move {
            let client = self.pg.client().await.map_err(unavailable)?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE seq > $1), coalesce(max(seq), 0)
                     FROM audit_county_checkpoints",
                    &[&after],
                )
                .await
                .map_err(|e| query_failed(&e))?;
            let count = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let newest = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            Ok((count, newest))
        })
    }

    fn witnessed_kind(&self) -> WitnessedKind {
        WitnessedKind::County
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
