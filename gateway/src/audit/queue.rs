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
