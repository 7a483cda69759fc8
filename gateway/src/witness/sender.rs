//! Sending checkpoints to the configured witnesses as the writer makes them, without
//! ever holding up a lookup: one task per witness, woken by the writer's newest
//! checkpoint ([`SqliteAudit::checkpoints`](crate::audit::SqliteAudit::checkpoints)).
//! A gateway on PostgreSQL sends the log's county checkpoints instead (each signs
//! every replica's chain head, see [`county`](crate::audit::postgres::county)),
//! woken by the county checkpoints its own writer signs
//! ([`PgAudit::county_checkpoints`](crate::audit::postgres::PgAudit::county_checkpoints));
//! every replica sends them, and a witness counts a text it already holds as held,
//! so the first replica to deliver one is enough.
//!
//! The local log is the queue: a task learns the witness's head for this log (`GET
//! …/head`), then sends the checkpoints after it, oldest first, up to 100 at a time,
//! read from the log (the archive included), until the witness holds the newest. So
//! nothing is held in memory, nothing is lost when the gateway restarts, and what a
//! witness has not acknowledged is sent again. A witness that holds nothing of this
//! log yet gets the newest checkpoint first (which fixes every event before it). When
//! a witness cannot be reached the task waits 1 s, then 2, 4, … up to 60 s between
//! attempts, and goes on from what the witness holds once it answers. A witness that
//! refuses a checkpoint (it does not extend what the witness holds: the log was
//! rewritten or restored, or forked) or that holds a checkpoint beyond this log's
//! newest (the tail was lost) is logged as an error at every attempt.
//!
//! [`WitnessStatus`] makes the lag visible: `/metrics` shows per witness the seq it
//! holds, the checkpoints not acknowledged yet, the events they cover (for county
//! checkpoints: the county checkpoints, since they number no events), and failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{WitnessClient, WitnessError};
use super::entry::Entry;
use crate::audit::AuditBackend;

/// The most checkpoints sent in one request.
const BATCH: usize = 100;
/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How far one witness is behind.
#[derive(Debug)]
pub struct WitnessStatus {
    pub name: String,
    /// The seq of the newest checkpoint the witness holds (0: none, or not known yet).
    acknowledged: watch::Sender<u64>,
    /// Checkpoints of the live log the witness does not hold yet.
    pending: AtomicU64,
    /// Events between the witness's newest checkpoint and the log's.
    lag_events: AtomicU64,
    /// Attempts that failed (unreachable, refused, an unexpected answer).
    failures: AtomicU64,
}

impl WitnessStatus {
    fn new(name: &str) -> WitnessStatus {
        WitnessStatus {
            name: name.to_owned(),
            acknowledged: watch::Sender::new(0),
            pending: AtomicU64::new(0),
            lag_events: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn acknowledged(&self) -> u64 {
        *self.acknowledged.borrow()
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn lag_events(&self) -> u64 {
        self.lag_events.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Completes once the witness holds the checkpoint at `seq` or a later one.
    pub async fn until_acknowledged(&self, seq: u64) {
        let mut acknowledged = self.acknowledged.subscribe();
        let _ = acknowledged.wait_for(|held| *held >= seq).await;
    }
}

/// The running senders.
#[derive(Debug)]
pub struct Witnesses {
    statuses: Vec<Arc<WitnessStatus>>,
    newest: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts one sender per witness for the log `log` (its checkpoints read through
/// its backend) whose checkpoint key is `key` (raw); `newest` is the writer's newest
/// checkpoint.
pub fn start(
    log: Arc<dyn AuditBackend>,
    key: Vec<u8>,
    clients: Vec<WitnessClient>,
    newest: watch::Receiver<u64>,
) -> Witnesses {
    let (stop, stopping) = watch::channel(false);
    let mut statuses = Vec::new();
    let mut tasks = Vec::new();
    for client in clients {
        let status = Arc::new(WitnessStatus::new(&client.name));
        let sender = Sender {
            client,
            status: status.clone(),
            log: log.clone(),
            key: key.clone(),
            known: None,
        };
        tasks.push(tokio::spawn(sender.run(newest.clone(), stopping.clone())));
        statuses.push(status);
    }
    Witnesses {
        statuses,
        newest,
        stop,
        tasks,
    }
}

impl Witnesses {
    /// Each witness's status, for `/metrics`.
    pub fn statuses(&self) -> Vec<Arc<WitnessStatus>> {
        self.statuses.clone()
    }

    /// Gives the senders up to `within` to deliver the newest checkpoint (the one
    /// the writer signs when it stops) to every witness, then stops them. What is
    /// not delivered by then is sent at the next start.
    pub async fn finish(self, within: Duration) {
        let newest = *self.newest.borrow();
        let delivered = async {
            for status in &self.statuses {
                status.until_acknowledged(newest).await;
            }
        };
        if tokio::time::timeout(within, delivered).await.is_err() {
            for status in &self.statuses {
                if status.acknowledged() < newest {
                    tracing::warn!(
                        witness = %status.name,
                        holds = status.acknowledged(),
                        newest,
                        "a witness has not received the newest checkpoint; it is sent at the next start"
                    );
                }
            }
        }
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What one round did.
enum Round {
    /// Checkpoints were accepted; there may be more.
    Sent,
    /// The witness holds the newest checkpoint.
    UpToDate,
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Witness(#[from] WitnessError),
    #[error("the local audit log: {0}")]
    Local(String),
    #[error(
        "the witness holds checkpoint {held}, beyond this log's newest ({newest}): the log \
         lost its tail or was replaced"
    )]
    Ahead { held: u64, newest: u64 },
}

struct Sender {
    client: WitnessClient,
    status: Arc<WitnessStatus>,
    log: Arc<dyn AuditBackend>,
    key: Vec<u8>,
    /// The witness's head seq, when known (0: it holds nothing of this log).
    known: Option<u64>,
}

impl Sender {
    async fn run(mut self, mut newest: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        let mut backoff = FIRST_BACKOFF;
        while !*stop.borrow() {
            match self.round(&mut newest).await {
                Ok(Round::Sent) => backoff = FIRST_BACKOFF,
                Ok(Round::UpToDate) => {
                    backoff = FIRST_BACKOFF;
                    tokio::select! {
                        changed = newest.changed() => if changed.is_err() {
                            // The writer stopped: nothing new will come.
                            let _ = stop.wait_for(|stop| *stop).await;
                        },
                        _ = stop.changed() => {}
                    }
                }
                Err(error) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    self.known = None;
                    let pending = self.status.pending();
                    match &error {
                        RoundError::Witness(WitnessError::Unreachable(_))
                        | RoundError::Witness(WitnessError::Status(_)) => tracing::warn!(
                            witness = %self.client.name,
                            %error,
                            pending,
                            retry_in_s = backoff.as_secs(),
                            "checkpoints not delivered to a witness"
                        ),
                        _ => tracing::error!(
                            witness = %self.client.name,
                            %error,
                            pending,
                            "a witness does not accept this log's checkpoints: run `gateway audit verify --witness`"
                        ),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn round(&mut self, newest: &mut watch::Receiver<u64>) -> Result<Round, RoundError> {
        let held = match self.known {
            Some(held) => held,
            None => match self
                .client
                .head(self.log.witnessed_kind(), &self.key)
                .await?
            {
                None => 0,
                Some(text) => {
                    Entry::parse(&text)
                        .map_err(|_| WitnessError::Malformed)?
                        .seq
                }
            },
        };
        self.known = Some(held);
        self.status.acknowledged.send_replace(held);
        // Seen now: a checkpoint committed from here on wakes the next wait.
        newest.borrow_and_update();
        let (batch, pending, newest_seq) = local(async {
            let (pending, newest) = self.log.checkpoints_pending(held).await?;
            let batch = if held == 0 {
                self.log
                    .latest_checkpoint()
                    .await?
                    .map(|text| {
                        let seq = Entry::parse(&text).map_or(0, |entry| entry.seq);
                        vec![(seq, text)]
                    })
                    .unwrap_or_default()
            } else {
                self.log.checkpoints_after(held, BATCH).await?
            };
            Ok((batch, pending, newest))
        })
        .await?;
        self.status.pending.store(pending, Ordering::Relaxed);
        self.status
            .lag_events
            .store(newest_seq.saturating_sub(held), Ordering::Relaxed);
        if held > newest_seq {
            return Err(RoundError::Ahead {
                held,
                newest: newest_seq,
            });
        }
        if batch.is_empty() {
            return Ok(Round::UpToDate);
        }
        let seqs: Vec<u64> = batch.iter().map(|(seq, _)| *seq).collect();
        let texts: Vec<String> = batch.into_iter().map(|(_, text)| text).collect();
        let submitted = self.client.submit(&texts).await?;
        let head = submitted.head.map_or(held, |head| head.seq);
        self.known = Some(head);
        let delivered = seqs.iter().filter(|seq| **seq <= head).count() as u64;
        self.status
            .pending
            .store(pending.saturating_sub(delivered), Ordering::Relaxed);
        self.status
            .lag_events
            .store(newest_seq.saturating_sub(head), Ordering::Relaxed);
        self.status.acknowledged.send_replace(head);
        tracing::debug!(witness = %self.client.name, head, "checkpoints delivered to a witness");
        Ok(Round::Sent)
    }
}

async fn local<T>(
    work: impl std::future::Future<Output = Result<T, crate::audit::AuditError>>,
) -> Result<T, RoundError> {
    work.await
        .map_err(|error| RoundError::Local(error.to_string()))
}
