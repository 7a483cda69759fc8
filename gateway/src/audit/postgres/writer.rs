//! The writer task of [`PgAudit`](super::PgAudit): takes a chain (a session advisory
//! lock on a dedicated connection), writes batches in one transaction each, signs
//! checkpoints and county checkpoints, and when the connection is lost refuses
//! appends at once while it reconnects in the background. How and why is in the
//! [module docs](super).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::super::cadence::Cadence;
use super::super::chain::{GENESIS, link_hash, parse_hash};
use super::super::checkpoint::{Checkpoint, Prev, Signer, encode_public_key, load_or_create_key};
use super::super::commit_times::CommitTimes;
use super::super::event::Recorded;
use super::super::queue::{Command, Pending, take_batch};
use super::super::sqlite::AuditOptions;
use super::super::verify::{ChainWalk, VerifyFailure};
use super::county::{self, ChainHeadLine, CountyCheckpoint};
use super::partitions;
use super::{AuditError, query_failed, unavailable};
use crate::pg::{Pg, PgError};

/// The longest a batch's transaction may take before the writer gives up on its
/// connection (its outcome is then unknown to the waiters, who are told it failed).
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The first pause before connecting again, doubled after each failure up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How soon a timed checkpoint that could not be written is tried again.
const RETRY_CHECKPOINT: Duration = Duration::from_secs(1);

/// The columns a chain walk reads, in [`super::verify::stored`]'s order.
pub(super) const EVENT_COLUMNS: &str = "seq, event_id, time, request_id, user_name, township, \
     connector, purpose, subject_pseudonym, status, body, prev_hash, hash";

const HEAD_SQL: &str = "SELECT
     (SELECT seq FROM audit_events WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1),
     (SELECT hash FROM audit_events WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1),
     (SELECT seq FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1),
     (SELECT text FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1)";

const EXISTING_SQL: &str = "SELECT event_id FROM audit_events WHERE event_id = ANY($1)";

pub(super) const INSERT_EVENTS_SQL: &str =
    "INSERT INTO audit_events (chain_id, seq, event_id, time,
     request_id, user_name, township, connector, purpose, subject_pseudonym, status, body,
     prev_hash, hash)
     SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[], $11::integer[], $12::text[],
         $13::text[], $14::text[])";

/// Each linked subject goes with its event's month: it carries its event's time.
pub(super) const INSERT_LINKED_SQL: &str =
    "INSERT INTO audit_linked_subjects (pseudonym, chain_id, seq, time)
     SELECT p, $1, s, t FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(p, s, t)
     ON CONFLICT DO NOTHING";

pub(super) const INSERT_CHECKPOINT_SQL: &str =
    "INSERT INTO audit_checkpoints (chain_id, seq, text) VALUES ($1, $2, $3)";

/// The heads of every chain, for a county checkpoint.
const HEADS_SQL: &str = "SELECT c.chain_id, coalesce(e.seq, 0), coalesce(e.hash, '')
     FROM audit_chains c
     LEFT JOIN LATERAL (SELECT seq, hash FROM audit_events
                         WHERE chain_id = c.chain_id ORDER BY seq DESC LIMIT 1) e ON true
     ORDER BY c.chain_id";

/// The chain held, on the connection that holds its lock.
struct Session {
    client: Client,
    chain_id: String,
    lock: i64,
    head: Statement,
    existing: Statement,
    insert_events: Statement,
    insert_linked: Statement,
    insert_checkpoint: Statement,
}

/// The chain head read inside a transaction.
#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

pub(super) struct Writer {
    pg: Pg,
    key_file: PathBuf,
    options: AuditOptions,
    cadence: Cadence,
    /// Loaded on the first connection (whether it may be created depends on the log).
    signer: Option<Arc<Signer>>,
    session: Option<Session>,
    up: Arc<AtomicBool>,
    chain_id: watch::Sender<String>,
    checkpointed: watch::Sender<u64>,
    /// The seq of the newest county checkpoint seen when signing one.
    county: watch::Sender<u64>,
    /// How long each batch took.
    commit_times: Arc<CommitTimes>,
    /// When the time trigger fires next (`None`: never).
    next_checkpoint: Option<Instant>,
    /// Whether events were committed after the newest checkpoint.
    uncheckpointed: bool,
    /// When the next county checkpoint is due.
    next_county: Option<Instant>,
}

/// What the writer tells the [`PgAudit`](super::PgAudit) handles as it goes.
pub(super) struct Published {
    /// Whether it holds a chain on a live connection.
    pub(super) up: Arc<AtomicBool>,
    /// The chain it holds (or held last).
    pub(super) chain_id: watch::Sender<String>,
    /// The seq of its chain's newest checkpoint.
    pub(super) checkpointed: watch::Sender<u64>,
    /// The seq of the newest county checkpoint it signed or saw.
    pub(super) county: watch::Sender<u64>,
    /// How long each batch took.
    pub(super) commit_times: Arc<CommitTimes>,
}

impl Writer {
    pub(super) fn new(
        pg: Pg,
        key_file: PathBuf,
        options: AuditOptions,
        published: Published,
    ) -> Writer {
        let Published {
            up,
            chain_id,
            checkpointed,
            county,
            commit_times,
        } = published;
        Writer {
            pg,
            key_file,
            cadence: options.cadence(),
            options,
            signer: None,
            session: None,
            up,
            chain_id,
            checkpointed,
            county,
            commit_times,
            next_checkpoint: None,
            uncheckpointed: false,
            next_county: None,
        }
    }

    /// Connects and takes a chain: its own (the one held last) if free, else any
    /// free chain that passes the check before signing, else a new one.
    pub(super) async fn connect(&mut self) -> Result<(), AuditError> {
        let (client, _notifications) = self.pg.dedicated().await.map_err(unavailable)?;
        client
            .batch_execute("SET synchronous_commit = on")
            .await
            .map_err(|e| query_failed(&e))?;
        let signer = match &self.signer {
            Some(signer) => signer.clone(),
            None => {
                let signer = Arc::new(self.load_key(&client).await?);
                self.signer = Some(signer.clone());
                signer
            }
        };
        let preferred = self.chain_id.borrow().clone();
        let mut candidates: Vec<String> = client
            .query(
                "SELECT chain_id FROM audit_chains ORDER BY created_at, chain_id",
                &[],
            )
            .await
            .map_err(|e| query_failed(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if let Some(at) = candidates.iter().position(|id| *id == preferred) {
            let own = candidates.remove(at);
            candidates.insert(0, own);
        }
        let mut taken = None;
        for chain_id in candidates {
            let lock = self.pg.lock_key(&format!("audit-chain:{chain_id}"));
            if !try_lock(&client, lock).await? {
                continue;
            }
            match prepare_chain(&client, &chain_id, &signer, &self.cadence).await {
                Ok(newest) => {
                    taken = Some((chain_id, lock, newest));
                    break;
                }
                Err(AuditError::Broken(failure)) => {
                    tracing::error!(
                        chain = %chain_id,
                        %failure,
                        "an audit chain left by another writer fails the check before \
                         signing; it is left alone (run `gateway audit verify`)"
                    );
                    let _ = client
                        .execute("SELECT pg_advisory_unlock($1)", &[&lock])
                        .await;
                }
                Err(other) => return Err(other),
            }
        }
        let (chain_id, lock, newest) = match taken {
            Some(taken) => taken,
            None => {
                let chain_id = hex::encode(rand::random::<[u8; 16]>());
                let lock = self.pg.lock_key(&format!("audit-chain:{chain_id}"));
                if !try_lock(&client, lock).await? {
                    return Err(AuditError::Unavailable(
                        "a new audit chain's lock is held already".into(),
                    ));
                }
                client
                    .execute(
                        "INSERT INTO audit_chains (chain_id) VALUES ($1)",
                        &[&chain_id],
                    )
                    .await
                    .map_err(|e| query_failed(&e))?;
                tracing::info!(chain = %chain_id, "started a new audit chain");
                (chain_id, lock, 0)
            }
        };
        add_months_ahead(&client, &self.pg).await;
        let prepare = |sql: &'static str| client.prepare(sql);
        let session = Session {
            head: prepare(HEAD_SQL).await.map_err(|e| query_failed(&e))?,
            existing: prepare(EXISTING_SQL).await.map_err(|e| query_failed(&e))?,
            insert_events: prepare(INSERT_EVENTS_SQL)
                .await
                .map_err(|e| query_failed(&e))?,
            insert_linked: prepare(INSERT_LINKED_SQL)
                .await
                .map_err(|e| query_failed(&e))?,
            insert_checkpoint: prepare(INSERT_CHECKPOINT_SQL)
                .await
                .map_err(|e| query_failed(&e))?,
            client,
            chain_id: chain_id.clone(),
            lock,
        };
        tracing::info!(chain = %chain_id, last_checkpoint = newest, "audit chain taken");
        self.session = Some(session);
        self.chain_id.send_replace(chain_id);
        self.checkpointed.send_replace(newest);
        self.uncheckpointed = false;
        self.next_checkpoint = Instant::now().checked_add(self.options.checkpoint_every);
        self.next_county = Instant::now().checked_add(self.options.checkpoint_every);
        self.up.store(true, Ordering::Release);
        Ok(())
    }

    /// The checkpoint key: as `SqliteAudit` loads it (created only while the log has
    /// no signature and no writer's key recorded), the pinned one if a key is
    /// pinned, and the one the log's first writer recorded.
    async fn load_key(&self, client: &Client) -> Result<Signer, AuditError> {
        if self.options.pinned_key.is_some() && !self.key_file.exists() {
            return Err(AuditError::Key(
                "a checkpoint key is pinned but its file is missing; restore \
                 audit-signing.key instead of starting a new one"
                    .into(),
            ));
        }
        let (signed, recorded): (bool, Option<String>) = {
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM audit_checkpoints)
                         OR EXISTS (SELECT 1 FROM audit_county_checkpoints),
                     (SELECT value FROM audit_meta WHERE name = 'checkpoint_key')",
                    &[],
                )
                .await
                .map_err(|e| query_failed(&e))?;
            (row.get(0), row.get(1))
        };
        let signer = load_or_create_key(&self.key_file, !signed && recorded.is_none())?;
        let ours = encode_public_key(signer.public_key());
        if let Some(pinned) = &self.options.pinned_key
            && signer.public_key() != pinned.as_slice()
        {
            return Err(AuditError::Key(format!(
                "the key in {} ({ours}) is not the pinned key ({})",
                self.key_file.display(),
                encode_public_key(pinned)
            )));
        }
        // The first writer records its key; every later one must hold the same.
        let recorded = record_key(client, &ours)
            .await
            .map_err(|e| query_failed(&e))?;
        if recorded != ours {
            return Err(AuditError::Key(format!(
                "the key in {} ({ours}) is not the one this log's writers sign with \
                 ({recorded}); give every replica the same audit-signing.key",
                self.key_file.display()
            )));
        }
        Ok(signer)
    }

    pub(super) async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut stopping = Vec::new();
        loop {
            if self.session.is_none() {
                if !self.while_down(&mut receiver, &mut stopping).await {
                    break;
                }
                continue;
            }
            let deadline = [
                self.next_checkpoint.filter(|_| self.uncheckpointed),
                self.next_county,
            ]
            .into_iter()
            .flatten()
            .min();
            let received = match deadline {
                Some(at) => match tokio::time::timeout_at(at, receiver.recv()).await {
                    Ok(received) => received,
                    Err(_elapsed) => {
                        self.timers().await;
                        continue;
                    }
                },
                None => receiver.recv().await,
            };
            let Some(first) = received else { break };
            let (batch, stops) = take_batch(first, &mut receiver, self.options.batch_max);
            stopping.extend(stops);
            if !batch.is_empty() {
                let started = std::time::Instant::now();
                self.write_batch(batch).await;
                self.commit_times.record(started.elapsed());
            }
            if !stopping.is_empty() {
                break;
            }
        }
        super::super::queue::close(&mut receiver, &mut stopping);
        self.stop().await;
        for done in stopping {
            let _ = done.send(());
        }
    }

    /// Without a chain: connects in the background with growing pauses, answering
    /// every append at once with [`AuditError::Unavailable`]. `false`: stop (a
    /// shutdown, or every sender is gone).
    async fn while_down(
        &mut self,
        receiver: &mut mpsc::Receiver<Command>,
        stopping: &mut Vec<oneshot::Sender<()>>,
    ) -> bool {
        let mut pause = RETRY_FIRST;
        let mut warned = false;
        loop {
            let connected = {
                let attempt = self.connect();
                tokio::pin!(attempt);
                loop {
                    tokio::select! {
                        result = &mut attempt => break result,
                        command = receiver.recv() => match command {
                            None => return false,
                            Some(Command::Shutdown(done)) => {
                                stopping.push(done);
                                return false;
                            }
                            Some(other) => refuse(other, down),
                        },
                    }
                }
            };
            match connected {
                Ok(()) => {
                    if warned {
                        tracing::info!("the audit log on PostgreSQL is back");
                    }
                    return true;
                }
                Err(error) => {
                    if !warned {
                        tracing::error!(%error, "the audit log cannot reach PostgreSQL; appends fail until it can");
                        warned = true;
                    }
                }
            }
            let wait = tokio::time::sleep(pause);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    command = receiver.recv() => match command {
                        None => return false,
                        Some(Command::Shutdown(done)) => {
                            stopping.push(done);
                            return false;
                        }
                        Some(other) => refuse(other, down),
                    },
                }
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Drops the connection (and with it the chain's lock).
    fn go_down(&mut self, why: &str) {
        if self.session.take().is_some() {
            tracing::error!(
                why,
                "the audit writer lost its PostgreSQL connection; reconnecting"
            );
        }
        self.up.store(false, Ordering::Release);
    }

    /// Writes one batch in one transaction and answers every waiter.
    async fn write_batch(&mut self, batch: Vec<Pending>) {
        let events = batch.len();
        let (Some(session), Some(signer)) = (self.session.as_mut(), self.signer.clone()) else {
            for pending in batch {
                let _ = pending.reply.send(Err(down()));
            }
            return;
        };
        let time_due = self.next_checkpoint.is_some_and(|at| Instant::now() >= at);
        let written = tokio::time::timeout(
            BATCH_TIMEOUT,
            write_adding_months(session, &self.pg, &signer, &self.cadence, time_due, &batch),
        )
        .await;
        let failed = match written {
            Ok(Ok(written)) => {
                for (pending, outcome) in batch.into_iter().zip(written.outcomes) {
                    let _ = pending.reply.send(outcome);
                }
                if written.checkpointed {
                    self.next_checkpoint =
                        Instant::now().checked_add(self.options.checkpoint_every);
                    self.checkpointed.send_replace(written.newest);
                }
                self.uncheckpointed = written.head > written.newest;
                return;
            }
            Ok(Err(error)) => {
                let lost = session.client.is_closed();
                (error, lost)
            }
            Err(_elapsed) => (
                AuditError::Unavailable("the audit batch took too long".into()),
                true,
            ),
        };
        let (error, lost) = failed;
        tracing::error!(%error, events, "audit batch not committed; its requests fail");
        let reason = super::super::queue::fail_batch(batch, error);
        if lost {
            self.go_down(&reason);
        }
    }

    /// The timed checkpoint and the county checkpoint, when due.
    async fn timers(&mut self) {
        let now = Instant::now();
        if self.uncheckpointed && self.next_checkpoint.is_some_and(|at| at <= now) {
            self.checkpoint_now().await;
        }
        if self.next_county.is_some_and(|at| at <= now) {
            self.county_now().await;
        }
    }

    /// Signs the head now if events were added since the newest checkpoint.
    async fn checkpoint_now(&mut self) {
        let result = match (self.session.as_mut(), self.signer.clone()) {
            (Some(session), Some(signer)) => tokio::time::timeout(
                BATCH_TIMEOUT,
                write_checkpoint(session, &signer, &self.cadence),
            )
            .await
            .unwrap_or_else(|_| {
                Err(AuditError::Unavailable(
                    "the checkpoint took too long".into(),
                ))
            }),
            _ => Err(down()),
        };
        let retry_in = match result {
            Ok(newest) => {
                self.checkpointed.send_replace(newest);
                self.uncheckpointed = false;
                self.options.checkpoint_every
            }
            Err(error) => self.failed("audit checkpoint", &error),
        };
        self.next_checkpoint = Instant::now().checked_add(retry_in);
    }

    /// Signs a county checkpoint over every chain's head, unless the newest one
    /// names the same heads.
    async fn county_now(&mut self) {
        let result = match (self.session.as_mut(), self.signer.clone()) {
            (Some(session), Some(signer)) => {
                tokio::time::timeout(BATCH_TIMEOUT, write_county(&self.pg, session, &signer))
                    .await
                    .unwrap_or_else(|_| {
                        Err(AuditError::Unavailable(
                            "the county checkpoint took too long".into(),
                        ))
                    })
            }
            _ => Err(down()),
        };
        let retry_in = match result {
            Ok(newest) => {
                self.county.send_if_modified(|seen| {
                    let newer = newest > *seen;
                    *seen = (*seen).max(newest);
                    newer
                });
                self.options.checkpoint_every
            }
            Err(error) => self.failed("county audit checkpoint", &error),
        };
        self.next_county = Instant::now().checked_add(retry_in);
    }

    /// After a checkpoint (`what`) failed: says so, notices a closed connection, and
    /// gives how long to wait before trying again.
    fn failed(&mut self, what: &str, error: &AuditError) -> Duration {
        tracing::warn!(%error, "{what} not written; retrying soon");
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.go_down("the connection closed");
        }
        self.options.checkpoint_every.min(RETRY_CHECKPOINT)
    }

    /// The last checkpoints, then the chain is let go.
    async fn stop(mut self) {
        if self.session.is_some() {
            if self.uncheckpointed {
                self.checkpoint_now().await;
            }
            self.county_now().await;
        }
        if let Some(session) = self.session.take() {
            let _ = session
                .client
                .execute("SELECT pg_advisory_unlock($1)", &[&session.lock])
                .await;
        }
        self.up.store(false, Ordering::Release);
        tracing::info!("audit writer stopped");
    }
}

/// Records `key` (standard base64) as the key every writer of the log signs with,
/// unless one is recorded already; returns the recorded one.
pub(super) async fn record_key<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    key: &str,
) -> Result<String, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "INSERT INTO audit_meta (name, value) VALUES ('checkpoint_key', $1)
             ON CONFLICT (name) DO UPDATE SET value = audit_meta.value
             RETURNING value",
            &[&key],
        )
        .await?
        .get(0))
}

/// Answers a command the writer cannot carry out.
fn refuse(command: Command, error: impl Fn() -> AuditError) {
    match command {
        Command::Append(pending) => {
            let _ = pending.reply.send(Err(error()));
        }
        Command::AppendAll(unit) => {
            for pending in unit {
                let _ = pending.reply.send(Err(error()));
            }
        }
        Command::Shutdown(done) => {
            let _ = done.send(());
        }
    }
}

fn down() -> AuditError {
    AuditError::Unavailable("the audit writer is not connected to PostgreSQL".into())
}

async fn try_lock(client: &Client, lock: i64) -> Result<bool, AuditError> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&lock])
        .await
        .map_err(|e| query_failed(&e))?
        .get(0))
}

fn to_sql(seq: u64) -> Result<i64, AuditError> {
    i64::try_from(seq).map_err(|_| AuditError::Unavailable("the sequence is exhausted".into()))
}

fn from_sql(seq: i64) -> Result<u64, AuditError> {
    u64::try_from(seq)
        .map_err(|_| AuditError::Unavailable("a stored sequence number is negative".into()))
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The check before signing over a chain taken (see the module docs): the newest
/// checkpoint is the key's and signs its event's stored hash, and the tail after it
/// chains on from it as `verify` walks it; a tail is then signed at once. Returns
/// the seq of the chain's newest checkpoint. [`AuditError::Broken`]: leave it alone.
async fn prepare_chain(
    client: &Client,
    chain_id: &str,
    signer: &Signer,
    cadence: &Cadence,
) -> Result<u64, AuditError> {
    let broken = |seq: Option<u64>, problem: String| {
        AuditError::Broken(VerifyFailure {
            seq,
            problem: format!("{problem} (chain {chain_id})"),
        })
    };
    let newest = client
        .query_opt(
            "SELECT seq, text FROM audit_checkpoints WHERE chain_id = $1
              ORDER BY seq DESC LIMIT 1",
            &[&chain_id],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    let (after, after_cadence, hash) = match newest {
        None => (Prev::NONE, None, GENESIS),
        Some(row) => {
            let seq = from_sql(row.get(0))?;
            let text: String = row.get(1);
            let checkpoint = Checkpoint::parse(&text)
                .map_err(|p| broken(Some(seq), format!("the checkpoint: {p}")))?;
            if checkpoint.seq != seq {
                return Err(broken(
                    Some(seq),
                    format!("the checkpoint stored at seq {seq} says another seq"),
                ));
            }
            checkpoint
                .check_signature(&text, signer.public_key())
                .map_err(|p| broken(Some(seq), format!("the checkpoint: {p}")))?;
            let stored: Option<String> = client
                .query_opt(
                    "SELECT hash FROM audit_events WHERE chain_id = $1 AND seq = $2",
                    &[&chain_id, &to_sql(seq)?],
                )
                .await
                .map_err(|e| query_failed(&e))?
                .map(|row| row.get(0));
            if stored.as_deref() != Some(checkpoint.hash.as_str()) {
                return Err(broken(
                    Some(seq),
                    "the checkpoint's hash is not the hash of its event".into(),
                ));
            }
            let hash = parse_hash(&checkpoint.hash).unwrap_or(GENESIS);
            (Prev::of(seq, &text), checkpoint.cadence, hash)
        }
    };
    let rows = client
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_id = $1 AND seq > $2
                  ORDER BY seq"
            ),
            &[&chain_id, &to_sql(after.seq)?],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    let mut walk = ChainWalk::tail(
        signer.public_key().to_vec(),
        *cadence,
        after,
        after_cadence,
        hash,
    );
    for row in &rows {
        let stored = super::verify::stored(row).map_err(|e| query_failed(&e))?;
        walk.event(&stored).map_err(|f| broken(f.seq, f.problem))?;
    }
    let walked = walk.finish().map_err(|f| broken(f.seq, f.problem))?;
    if walked.last_seq == after.seq {
        return Ok(after.seq);
    }
    let text = signer.checkpoint(
        walked.last_seq,
        &hex::encode(walked.last_hash),
        &now_text(),
        &after,
        cadence,
    );
    client
        .execute(
            INSERT_CHECKPOINT_SQL,
            &[&chain_id, &to_sql(walked.last_seq)?, &text],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    tracing::warn!(
        chain = %chain_id,
        events = walked.last_seq - after.seq,
        last_seq = walked.last_seq,
        "signed the audit events the chain's previous writer left unsigned (it did not stop cleanly)"
    );
    Ok(walked.last_seq)
}

/// What a committed batch did.
struct Written {
    outcomes: Vec<Result<Recorded, AuditError>>,
    /// Whether a checkpoint was written.
    checkpointed: bool,
    /// The chain's head and newest checkpoint after the batch.
    head: u64,
    newest: u64,
}

/// Reads the head and the newest checkpoint inside `tx`.
async fn read_head(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &Statement,
    chain_id: &str,
) -> Result<(Head, Prev), AuditError> {
    let row = tx
        .query_one(statement, &[&chain_id])
        .await
        .map_err(|e| query_failed(&e))?;
    let seq: Option<i64> = row.get(0);
    let hash: Option<String> = row.get(1);
    let checkpoint_seq: Option<i64> = row.get(2);
    let checkpoint_text: Option<String> = row.get(3);
    let head = match (seq, hash) {
        (Some(seq), Some(hash)) => Head {
            seq: from_sql(seq)?,
            hash: parse_hash(&hash).ok_or_else(|| {
                AuditError::Unavailable("the last stored hash is not a SHA-256 hash".into())
            })?,
        },
        _ => Head {
            seq: 0,
            hash: GENESIS,
        },
    };
    let prev = match (checkpoint_seq, checkpoint_text) {
        (Some(seq), Some(text)) => Prev::of(from_sql(seq)?, &text),
        _ => Prev::NONE,
    };
    Ok((head, prev))
}

/// The batch's transaction; on any error it is rolled back and nothing remains.
async fn write(
    session: &mut Session,
    signer: &Signer,
    cadence: &Cadence,
    time_due: bool,
    batch: &[Pending],
) -> Result<Written, AuditError> {
    let chain_id = session.chain_id.clone();
    let tx = session
        .client
        .transaction()
        .await
        .map_err(|e| query_failed(&e))?;
    let (mut head, mut prev) = read_head(&tx, &session.head, &chain_id).await?;
    let ids: Vec<&str> = batch.iter().map(|p| p.columns.event_id.as_str()).collect();
    let existing: HashSet<String> = tx
        .query(&session.existing, &[&ids])
        .await
        .map_err(|e| query_failed(&e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut seen = HashSet::with_capacity(batch.len());
    let n = batch.len();
    let (mut seqs, mut event_ids, mut times, mut request_ids, mut users) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut townships, mut connectors, mut purposes, mut subjects, mut statuses) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut bodies, mut prev_hashes, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut linked_pseudonyms, mut linked_seqs, mut linked_times) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut checkpoints: Vec<(u64, String)> = Vec::new();
    let mut outcomes = Vec::with_capacity(n);
    for pending in batch {
        let c = &pending.columns;
        if existing.contains(&c.event_id) || !seen.insert(c.event_id.as_str()) {
            outcomes.push(Err(AuditError::DuplicateEvent));
            continue;
        }
        let seq = head.seq + 1;
        let hash = link_hash(seq, &head.hash, pending.body.as_bytes());
        let hash_hex = hex::encode(hash);
        seqs.push(to_sql(seq)?);
        event_ids.push(c.event_id.as_str());
        times.push(c.time.as_str());
        request_ids.push(c.request_id.as_str());
        users.push(c.user.as_str());
        townships.push(c.township.as_deref());
        connectors.push(c.connector.as_deref());
        purposes.push(c.purpose.as_deref());
        subjects.push(c.subject_pseudonym.as_deref());
        statuses.push(i32::from(c.status));
        bodies.push(pending.body.as_str());
        prev_hashes.push(hex::encode(head.hash));
        for pseudonym in &c.linked {
            linked_pseudonyms.push(pseudonym.as_str());
            linked_seqs.push(to_sql(seq)?);
            linked_times.push(c.time.as_str());
        }
        head = Head { seq, hash };
        if cadence.due_by_count(prev.seq, seq) {
            let text = signer.checkpoint(seq, &hash_hex, &now_text(), &prev, cadence);
            prev = Prev::of(seq, &text);
            checkpoints.push((seq, text));
        }
        outcomes.push(Ok(Recorded {
            chain_id: chain_id.clone(),
            seq,
            hash: hash_hex.clone(),
        }));
        hashes.push(hash_hex);
    }
    if !seqs.is_empty() {
        tx.execute(
            &session.insert_events,
            &[
                &chain_id,
                &seqs,
                &event_ids,
                &times,
                &request_ids,
                &users,
                &townships,
                &connectors,
                &purposes,
                &subjects,
                &statuses,
                &bodies,
                &prev_hashes,
                &hashes,
            ],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    }
    if !linked_seqs.is_empty() {
        tx.execute(
            &session.insert_linked,
            &[&chain_id, &linked_pseudonyms, &linked_seqs, &linked_times],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    }
    if head.seq > prev.seq && time_due {
        let text = signer.checkpoint(
            head.seq,
            &hex::encode(head.hash),
            &now_text(),
            &prev,
            cadence,
        );
        prev = Prev::of(head.seq, &text);
        checkpoints.push((head.seq, text));
    }
    for (seq, text) in &checkpoints {
        tx.execute(
            &session.insert_checkpoint,
            &[&chain_id, &to_sql(*seq)?, text],
        )
        .await
        .map_err(|e| query_failed(&e))?;
    }
    tx.commit().await.map_err(|e| query_failed(&e))?;
    Ok(Written {
        outcomes,
        checkpointed: !checkpoints.is_empty(),
        head: head.seq,
        newest: prev.seq,
    })
}

/// The monthly partitions of this month and the next (by the clock events are
/// stamped with), created when missing; a failure is only logged, since a batch
/// that needs a month creates it too ([`write_adding_months`]).
async fn add_months_ahead(client: &Client, pg: &Pg) {
    let months = partitions::ahead(chrono::Utc::now());
    if let Err(e) = partitions::ensure(client, pg, &months).await {
        tracing::warn!(error = %PgError::query(&e), "the next months' audit partitions were not created");
    }
}

/// [`write`]; when it fails while a month of the batch has no partition yet (an
/// insert then finds no partition for its row), creates the missing months and
/// writes the batch once more. The failed transaction was rolled back entirely.
async fn write_adding_months(
    session: &mut Session,
    pg: &Pg,
    signer: &Signer,
    cadence: &Cadence,
    time_due: bool,
    batch: &[Pending],
) -> Result<Written, AuditError> {
    let error = match write(session, signer, cadence, time_due, batch).await {
        Ok(written) => return Ok(written),
        Err(error) => error,
    };
    // No partition for a row is a check violation (the writer's rows pass every
    // CHECK of the table). Another writer may have made the month meanwhile: the
    // batch is tried again whether or not this one creates it.
    let no_partition = matches!(&error, AuditError::Unavailable(why)
        if why.contains(&format!("SQLSTATE {}", SqlState::CHECK_VIOLATION.code()))
            && !why.contains("(constraint "));
    if !no_partition || session.client.is_closed() {
        return Err(error);
    }
    let months = partitions::months_of(batch.iter().map(|p| p.columns.time.as_str()));
    match partitions::ensure(&session.client, pg, &months).await {
        Ok(created) => {
            tracing::info!(
                created,
                "a batch needed monthly audit partitions; trying it again"
            );
            write(session, signer, cadence, time_due, batch).await
        }
        Err(e) => Err(query_failed(&e)),
    }
}

/// Signs the head in a transaction of its own if it is not signed yet; returns the
/// newest checkpoint's seq.
async fn write_checkpoint(
    session: &mut Session,
    signer: &Signer,
    cadence: &Cadence,
) -> Result<u64, AuditError> {
    let chain_id = session.chain_id.clone();
    let tx = session
        .client
        .transaction()
        .await
        .map_err(|e| query_failed(&e))?;
    let (head, prev) = read_head(&tx, &session.head, &chain_id).await?;
    if head.seq <= prev.seq {
        return Ok(prev.seq);
    }
    let text = signer.checkpoint(
        head.seq,
        &hex::encode(head.hash),
        &now_text(),
        &prev,
        cadence,
    );
    tx.execute(
        &session.insert_checkpoint,
        &[&chain_id, &to_sql(head.seq)?, &text],
    )
    .await
    .map_err(|e| query_failed(&e))?;
    tx.commit().await.map_err(|e| query_failed(&e))?;
    Ok(head.seq)
}

/// A county checkpoint over every chain's head (one writer at a time, so that each
/// names the one before), unless the newest one names the same heads. Returns the
/// newest county checkpoint's seq (0: none yet).
async fn write_county(pg: &Pg, session: &mut Session, signer: &Signer) -> Result<u64, AuditError> {
    let tx = session
        .client
        .transaction()
        .await
        .map_err(|e| query_failed(&e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&pg.lock_key("audit-county")],
    )
    .await
    .map_err(|e| query_failed(&e))?;
    let mut heads = Vec::new();
    for row in tx
        .query(HEADS_SQL, &[])
        .await
        .map_err(|e| query_failed(&e))?
    {
        let seq = from_sql(row.get(1))?;
        let hash: String = row.get(2);
        heads.push(ChainHeadLine {
            chain_id: row.get(0),
            seq,
            hash: if seq == 0 { hex::encode(GENESIS) } else { hash },
        });
    }
    let newest: Option<(i64, String)> = tx
        .query_opt(
            "SELECT seq, text FROM audit_county_checkpoints ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| query_failed(&e))?
        .map(|row| (row.get(0), row.get(1)));
    let same = newest
        .as_ref()
        .and_then(|(_, text)| CountyCheckpoint::parse(text).ok())
        .is_some_and(|newest| newest.chains == heads);
    if same || heads.is_empty() {
        return match newest {
            Some((seq, _)) => from_sql(seq),
            None => Ok(0),
        };
    }
    let prev = match &newest {
        Some((seq, text)) => Some((from_sql(*seq)?, text.as_str())),
        None => None,
    };
    let seq = prev.map_or(1, |(seq, _)| seq + 1);
    let text = county::sign(signer, seq, &now_text(), prev, &heads);
    tx.execute(
        "INSERT INTO audit_county_checkpoints (seq, text) VALUES ($1, $2)",
        &[&to_sql(seq)?, &text],
    )
    .await
    .map_err(|e| query_failed(&e))?;
    tx.commit().await.map_err(|e| query_failed(&e))?;
    Ok(seq)
}
