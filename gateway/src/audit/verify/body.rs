//! "The body is an audit event and the search columns say what it says": the body is
//! read as an [`AuditEvent`] (exactly what the log wrote, by the event's own
//! `Deserialize`) and its columns compared with the row's, which are borrowed from
//! SQLite rather than copied.

use super::super::event::AuditEvent;

/// A row's search columns, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredColumns<'a> {
    pub(crate) event_id: &'a str,
    pub(crate) time: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) user: &'a str,
    pub(crate) township: Option<&'a str>,
    pub(crate) connector: Option<&'a str>,
    pub(crate) purpose: Option<&'a str>,
    pub(crate) subject_pseudonym: Option<&'a str>,
    pub(crate) status: i64,
}

/// What the body check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyCheck {
    /// An audit event, and the columns say what it says.
    Matches,
    NotAnEvent,
    ColumnsDiffer,
}

/// Checks one stored body against its row's columns.
pub(super) fn check(body: &[u8], stored: &StoredColumns<'_>) -> BodyCheck {
    let Ok(event) = serde_json::from_slice::<AuditEvent>(body) else {
        return BodyCheck::NotAnEvent;
    };
    let said = StoredColumns {
        event_id: &event.event_id,
        time: &event.time,
        request_id: &event.request_id,
        user: &event.caller.user,
        township: event.caller.township.as_deref(),
        connector: event.connector.as_deref(),
        purpose: event.purpose.as_deref(),
        subject_pseudonym: event.subject_pseudonym.as_deref(),
        status: i64::from(event.outcome.status),
    };
    if said == *stored {
        BodyCheck::Matches
    } else {
        BodyCheck::ColumnsDiffer
    }
}
