//! The queue in front of an audit writer, the same for every store: an event encoded
//! on the caller's task ([`Pending`]), what a writer is sent ([`Command`]), and the
//! two ways the request path queues events and waits for the writer's answer
//! ([`append`], [`append_all`]). A full queue makes callers wait; an event is never
//! dropped, and dropping the caller's future once its event is queued does not
//! withdraw it.

use tokio::sync::{mpsc, oneshot};

use super::AuditError;
use super::canonical::event_body;
use super::event::{AuditEvent, Columns, Recorded};

/// What a writer is sent.
pub(super) enum Command {
    Append(Box<Pending>),
    /// Events committed in one transaction, never split across two.
    AppendAll(Vec<Pending>),
    Shutdown(oneshot::Sender<()>),
}

/// An event waiting for the writer. No `Debug`: it holds the event's contents.
pub(super) struct Pending {
    pub(super) columns: Columns,
    pub(super) body: String,
    pub(super) reply: oneshot::Sender<Result<Recorded, AuditError>>,
}

/// Where the writer answers one event.
pub(super) type Answer = oneshot::Receiver<Result<Recorded, AuditError>>;

impl Pending {
    /// The event encoded for the writer, and where its outcome will arrive.
    pub(super) fn of(event: &AuditEvent) -> Result<(Pending, Answer), AuditError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            columns: Columns::of(event),
            body: event_body(event)?,
            reply,
        };
        Ok((pending, answer))
    }
}

/// Places taken in the queue: events, and units of events, waiting for the writer.
pub(super) fn depth(sender: &mpsc::Sender<Command>) -> usize {
    sender.max_capacity() - sender.capacity()
}

/// Queues `event` (waiting for a place) and waits for its commit.
pub(super) async fn append(
    sender: &mpsc::Sender<Command>,
    event: AuditEvent,
) -> Result<Recorded, AuditError> {
    let (pending, answer) = Pending::of(&event)?;
    sender
        .send(Command::Append(Box::new(pending)))
        .await
        .map_err(|_| AuditError::Closed)?;
    answer.await.map_err(|_| AuditError::Closed)?
}

/// Queues `events` as one unit (one place in the queue, one transaction) and waits
/// for each outcome, in order. An event that cannot be encoded fails alone; the
/// others are recorded.
pub(super) async fn append_all(
    sender: &mpsc::Sender<Command>,
    events: Vec<AuditEvent>,
) -> Vec<Result<Recorded, AuditError>> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut unit = Vec::with_capacity(events.len());
    for event in &events {
        outcomes.push(Pending::of(event).map(|(pending, answer)| {
            unit.push(pending);
            answer
        }));
    }
    let sent = unit.is_empty() || sender.send(Command::AppendAll(unit)).await.is_ok();
    let mut recorded = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        recorded.push(match outcome {
            Err(e) => Err(e),
            Ok(_) if !sent => Err(AuditError::Closed),
            Ok(answer) => answer.await.unwrap_or(Err(AuditError::Closed)),
        });
    }
    recorded
}

/// Asks the writer to stop and waits until it has (queued events written first).
/// Nothing to wait for once the writer is gone.
pub(super) async fn shutdown(sender: &mpsc::Sender<Command>) {
    let (done, stopped) = oneshot::channel();
    if sender.send(Command::Shutdown(done)).await.is_ok() {
        let _ = stopped.await;
    }
}

/// A writer's next batch: what `first` brought, then everything already queued, up
/// to `batch_max` events (a unit is never split, so it may go over), stopping at a
/// shutdown. Returns the batch and the shutdowns asked for.
pub(super) fn take_batch(
    first: Command,
    receiver: &mut mpsc::Receiver<Command>,
    batch_max: usize,
) -> (Vec<Pending>, Vec<oneshot::Sender<()>>) {
    let (mut batch, mut stopping) = (Vec::new(), Vec::new());
    let mut next = Some(first);
    while let Some(command) = next.take() {
        match command {
            Command::Append(pending) => batch.push(*pending),
            Command::AppendAll(unit) => batch.extend(unit),
            Command::Shutdown(done) => stopping.push(done),
        }
        if stopping.is_empty() && batch.len() < batch_max.max(1) {
            next = receiver.try_recv().ok();
        }
    }
    (batch, stopping)
}

/// Closes the queue once the writer has written its last batch: every event still
/// queued is refused with [`AuditError::Closed`]; shutdowns asked for meanwhile join
/// `stopping`.
pub(super) fn close(
    receiver: &mut mpsc::Receiver<Command>,
    stopping: &mut Vec<oneshot::Sender<()>>,
) {
    receiver.close();
    while let Ok(command) = receiver.try_recv() {
        match command {
            Command::Append(pending) => {
                let _ = pending.reply.send(Err(AuditError::Closed));
            }
            Command::AppendAll(unit) => {
                for pending in unit {
                    let _ = pending.reply.send(Err(AuditError::Closed));
                }
            }
            Command::Shutdown(done) => stopping.push(done),
        }
    }
}

/// Answers every event of a batch that was not recorded: [`AuditError::Unavailable`]
/// with `error`'s reason, which it returns.
pub(super) fn fail_batch(batch: Vec<Pending>, error: AuditError) -> String {
    let reason = match error {
        AuditError::Unavailable(reason) => reason,
        other => other.to_string(),
    };
    for pending in batch {
        let _ = pending
            .reply
            .send(Err(AuditError::Unavailable(reason.clone())));
    }
    reason
}
