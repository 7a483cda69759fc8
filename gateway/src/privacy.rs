//! The privacy officer's use cases over the audit log — search, one event, export,
//! a citizen's access report, anomalies and the log's integrity — shared by the API
//! (`crate::http::privacy`) and the console's officer pages.
//!
//! Only privacy officers get in (an operator may run the integrity check). A
//! citizen is named by ID number and found by the pseudonym the log holds; every use
//! is itself recorded in the audit log as an admin event before anything is returned
//! (no audit, no data).

use std::net::SocketAddr;

use connectors::subject::IdNumber;

use crate::audit::anomalies::{Anomaly, Thresholds};
use crate::audit::report::CitizenReport;
use crate::audit::search::{Filter, OutcomeClass, Page, SearchError, StoredEvent};
use crate::audit::{AuditCaller, AuditEvent, AuditLog, AuditReader};
use crate::auth::{Caller, Role};
use crate::mask::PseudonymKey;

/// The rule named when a caller without the role asks.
pub const OFFICER_RULE: &str = "privacy-officer-only";

/// What to look for in the log: the citizen by ID number, the rest as the log
/// stores them; `from` and `until` are dates (a day in China) or RFC 3339 instants.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    pub id_number: Option<IdNumber>,
    pub user: Option<String>,
    pub township: Option<String>,
    pub connector: Option<String>,
    pub purpose: Option<String>,
    pub outcome: Option<OutcomeClass>,
    pub status: Option<u16>,
    pub from: Option<String>,
    pub until: Option<String>,
}

/// Why a privacy officer's request gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The caller is not a privacy officer.
    #[error("only privacy officers read the audit log")]
    NotOfficer,
    /// A filter or window is wrong: the field it concerns and why (never a value).
    #[error("invalid filter `{0}`: {1}")]
    Invalid(&'static str, String),
    /// The log could not be read (details logged).
    #[error("the audit log could not be read")]
    Unreadable,
    /// This use of the log could not be recorded, so nothing was returned.
    #[error("the audit log could not record this request")]
    NotRecorded,
}

impl From<SearchError> for PrivacyError {
    fn from(error: SearchError) -> PrivacyError {
        match error {
            SearchError::InvalidFilter(field, why) => PrivacyError::Invalid(field, why),
            other => {
                tracing::error!(error = %other, "an audit-log read failed");
                PrivacyError::Unreadable
            }
        }
    }
}

/// A privacy officer at work: who, in which request, and the log.
#[derive(Debug, Clone, Copy)]
pub struct Officer<'a> {
    pub reader: &'a dyn AuditReader,
    pub audit: &'a dyn AuditLog,
    pub pseudonym: &'a PseudonymKey,
    pub caller: &'a Caller,
    pub request_id: &'a str,
    pub peer: Option<SocketAddr>,
}

impl<'a> Officer<'a> {
    /// The officer, if `caller` is one.
    pub fn new(
        reader: &'a dyn AuditReader,
        audit: &'a dyn AuditLog,
        pseudonym: &'a PseudonymKey,
        caller: &'a Caller,
        request_id: &'a str,
        peer: Option<SocketAddr>,
    ) -> Result<Officer<'a>, PrivacyError> {
        if !caller.has_role(Role::PrivacyOfficer) {
            return Err(PrivacyError::NotOfficer);
        }
        Ok(Officer {
            reader,
            audit,
            pseudonym,
            caller,
            request_id,
            peer,
        })
    }

    /// The criteria as the log's filter (the citizen as their pseudonym).
    pub fn filter(&self, criteria: &Criteria) -> Filter {
        Filter {
            subject_pseudonym: criteria
                .id_number
                .as_ref()
                .map(|id| self.pseudonym.pseudonym(id.as_str())),
            user: criteria.user.clone(),
            township: criteria.township.clone(),
            connector: criteria.connector.clone(),
            purpose: criteria.purpose.clone(),
            outcome: criteria.outcome,
            status: criteria.status,
            from: criteria.from.clone(),
            until: criteria.until.clone(),
        }
    }

    /// Records this use of the log (`operation`, and the citizen it concerns).
    pub async fn record(
        &self,
        operation: &str,
        subject: Option<&IdNumber>,
    ) -> Result<(), PrivacyError> {
        let caller = AuditCaller::of(self.caller, self.peer);
        let mut event = AuditEvent::admin(self.request_id, caller, operation);
        event.subject_pseudonym = subject.map(|id| self.pseudonym.pseudonym(id.as_str()));
        event.subject_masked = subject.map(IdNumber::masked);
        self.audit.append(event).await.map(|_| ()).map_err(|e| {
            tracing::error!(request_id = %self.request_id, error = %e, "the audit log could not record an audit-log read");
            PrivacyError::NotRecorded
        })
    }

    /// A page of matching events, newest first (recorded as `audit.search`).
    pub async fn search(
        &self,
        criteria: &Criteria,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, PrivacyError> {
        crate::audit::check_limit(limit)?;
        let page = self
            .reader
            .search(self.filter(criteria), before, limit)
            .await?;
        self.record("audit.search", criteria.id_number.as_ref())
            .await?;
        Ok(page)
    }

    /// The event with sequence number `seq`, if the log holds it, and the hash of
    /// the event before it in the chain (recorded as `audit.event`).
    pub async fn event(
        &self,
        seq: u64,
    ) -> Result<Option<(StoredEvent, Option<String>)>, PrivacyError> {
        let page = self
            .reader
            .search(Filter::default(), seq.checked_add(1), 2)
            .await?;
        self.record("audit.event", None).await?;
        let mut events = page.events.into_iter();
        let Some(event) = events.next().filter(|e| e.seq == seq) else {
            return Ok(None);
        };
        let prev = events.next().map(|e| e.hash);
        Ok(Some((event, prev)))
    }

    /// Checks an export's filter and records the export (`audit.export`); the
    /// caller then streams [`AuditReader::events`] with the filter returned.
    pub async fn export(&self, criteria: &Criteria) -> Result<Filter, PrivacyError> {
        let filter = self.filter(criteria);
        crate::audit::check_filter(&filter)?;
        self.record("audit.export", criteria.id_number.as_ref())
            .await?;
        Ok(filter)
    }

    /// A citizen's access report (recorded as `audit.report`), with the newest
    /// sequence number of the log when it was drawn.
    pub async fn report(
        &self,
        id: &IdNumber,
        today: chrono::NaiveDate,
    ) -> Result<(CitizenReport, u64), PrivacyError> {
        let head = self
            .reader
            .search(Filter::default(), None, 1)
            .await?
            .events
            .first()
            .map_or(0, |e| e.seq);
        let report = self
            .reader
            .citizen_report(self.pseudonym.pseudonym(id.as_str()), today)
            .await?;
        self.record("audit.report", Some(id)).await?;
        Ok((report, head))
    }

    /// What a privacy officer should look at in a window (recorded as
    /// `audit.anomalies`).
    pub async fn anomalies(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> Result<Vec<Anomaly>, PrivacyError> {
        let found = self.reader.anomalies(from, until, thresholds).await?;
        self.record("audit.anomalies", None).await?;
        Ok(found)
    }
}
