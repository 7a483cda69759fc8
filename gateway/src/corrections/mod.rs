//! Data correction (数据纠错): a township clerk who sees a wrong value of a department
//! (the citizen moved, a wrong character in a name) flags it, and the correction goes
//! to the department that owns the data. The rules and the use cases here are what
//! both front ends run — the JSON API (`/v1/corrections`, [`crate::http`]) and the
//! console ([`crate::console`]) call the same functions.
//!
//! - [`file`](file()): a lookup role of a township (clerk, grid worker, township lead)
//!   flags one leaf field of one operation of a connector for a person, with the value
//!   the citizen states, a note, the case id and an evidence reference. Only a value
//!   the township was shown may be flagged: the audit log must hold a lookup by the
//!   township of that person, connector and operation that released the field within
//!   [`SHOWN_WITHIN_DAYS`] days. The department should answer within
//!   `corrections.deadline_working_days` working days of `gateway.yaml`.
//! - [`list`], [`show`]: the owning department's admin sees its queue (open first,
//!   oldest first, overdue marked); the filing township sees its own corrections, their
//!   state and answer. Anyone else's correction is unknown (404), as if it did not exist.
//! - [`accept`] (the department corrected its own system: the gateway drops the cached
//!   records of the person on the connector, on every replica) and [`reject`] (with the
//!   department's reason).
//! - [`sweep`]: what the citizen stated (value and note) is personal data, kept while
//!   the correction is open and `corrections.retention_days` days after its answer,
//!   then erased (overwritten with NULL); ids, pseudonym, state and answer stay.
//!
//! Every step — filed, accepted, rejected, erased, and every refusal — is an admin event
//! in the audit log naming the correction id, connector, operation, field and the
//! person's pseudonym and masked ID; never the stated value, the note or the ID number.
//! The citizen's access report lists the corrections made on their behalf.

mod answer;
mod file;
mod retention;

pub use answer::{AnswerBody, accept, list, reject, show};
pub use file::{NEW_CORRECTION_SHAPE, NewCorrection, SubjectBody, file};
pub use retention::{SWEEP_EVERY, erasable, spawn_sweeper, sweep};

use chrono::NaiveDate;
use serde::Serialize;

pub use crate::action::Who;
use crate::auth::{Caller, Role};
use crate::problem::{Problem, ProblemKind};
use crate::registry::{Correction, CorrectionState};

/// How far back the audit log is searched for the lookup that showed the value.
pub const SHOWN_WITHIN_DAYS: i64 = 30;
/// The longest stated value, in characters.
pub const MAX_VALUE_CHARS: usize = 200;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// The longest evidence reference, in characters.
pub const MAX_EVIDENCE_CHARS: usize = 200;
/// The rule named when a caller's role does not use corrections.
pub const ROLE_RULE: &str = "correction-roles";
/// The rule named when the township was not shown the value it flags.
pub const SHOWN_RULE: &str = "correction-shown";
/// The roles that file corrections (those that look records up).
pub const FILING_ROLES: [Role; 3] = [Role::Clerk, Role::GridWorker, Role::TownshipLead];

/// The township a lookup role files for; `None` for anyone else.
pub fn filing_township(caller: &Caller) -> Option<&str> {
    let township = caller.township.as_deref()?;
    FILING_ROLES
        .iter()
        .any(|r| caller.has_role(*r))
        .then_some(township)
}

/// Whether the caller may list corrections at all (a filing township's roles, a
/// department admin).
pub fn may_list(caller: &Caller) -> bool {
    filing_township(caller).is_some()
        || (caller.has_role(Role::DeptAdmin) && caller.department.is_some())
}

/// Whether a correction is one the caller may see: their department's (its admin) or
/// their township's (the township's lookup roles).
pub fn visible(caller: &Caller, correction: &Correction) -> bool {
    let department = caller.has_role(Role::DeptAdmin)
        && caller.department.as_deref() == Some(correction.department.as_str());
    department || filing_township(caller) == Some(correction.township.as_str())
}

/// Whether the caller answers the correction: the owning department's admin.
pub fn answers(caller: &Caller, correction: &Correction) -> bool {
    caller.has_role(Role::DeptAdmin)
        && caller.department.as_deref() == Some(correction.department.as_str())
}

/// By how many working days an open correction is past its deadline on `today`
/// (`None` when it is not overdue).
/// Working days count in the county's `calendar`.
pub fn overdue_by(
    correction: &Correction,
    today: NaiveDate,
    calendar: &crate::calendar::Calendar,
) -> Option<i64> {
    if correction.state != CorrectionState::Open {
        return None;
    }
    let deadline = crate::access::parse_date(&correction.deadline)?;
    (deadline < today).then(|| -calendar.working_days_left(today, deadline))
}

/// The queue's order: open ones first, then oldest first.
pub fn queue_order(corrections: &mut [Correction]) {
    // Filing order is `created_at` order; a stable sort keeps it within each group.
    corrections.sort_by_key(|c| c.state != CorrectionState::Open);
}

/// A new correction id: `cr-` and a UUIDv7 in lowercase hex.
pub fn new_id() -> String {
    format!("cr-{}", uuid::Uuid::now_v7().simple())
}

/// A correction as the API and the console show it. What the citizen stated is
/// `null` once erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CorrectionView {
    #[schema(example = "cr-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")]
    pub id: String,
    #[schema(example = "hukou")]
    pub connector: String,
    #[schema(example = "county-psb")]
    pub department: String,
    #[schema(example = "person_by_id")]
    pub operation: String,
    #[schema(example = "name")]
    pub field: String,
    /// The person's ID number, masked (first 6 and last 4).
    #[schema(example = "139901********123X")]
    pub subject_masked: String,
    pub case_id: String,
    pub evidence: String,
    #[schema(example = "139901101")]
    pub township: String,
    pub filed_by: String,
    pub created_at: String,
    /// The day the department should answer by (`YYYY-MM-DD`).
    pub deadline: String,
    pub state: CorrectionState,
    /// Open past its deadline.
    pub overdue: bool,
    /// Working days past the deadline (0 when not overdue).
    pub working_days_overdue: i64,
    pub answered_at: Option<String>,
    pub answered_by: Option<String>,
    /// A rejection's reason, or an acceptance's note.
    pub reason: Option<String>,
    /// The value the citizen states (`null` once erased).
    pub stated_value: Option<String>,
    /// The clerk's note (`null` once erased).
    pub note: Option<String>,
    /// When retention erased the stated value and the note.
    pub erased_at: Option<String>,
}

impl CorrectionView {
    /// The view of `c` now, working days counted in the calendar in force.
    pub fn now(app: &crate::app::App, c: &Correction) -> CorrectionView {
        CorrectionView::of(c, app.clock.today(), &app.config.load().calendar)
    }

    /// The view of `c` on `today`, working days counted in `calendar`.
    pub fn of(
        c: &Correction,
        today: NaiveDate,
        calendar: &crate::calendar::Calendar,
    ) -> CorrectionView {
        let overdue = overdue_by(c, today, calendar);
        CorrectionView {
            id: c.id.clone(),
            connector: c.connector.clone(),
            department: c.department.clone(),
            operation: c.operation.clone(),
            field: c.field.clone(),
            subject_masked: c.subject_masked.clone(),
            case_id: c.case_id.clone(),
            evidence: c.evidence.clone(),
            township: c.township.clone(),
            filed_by: c.filed_by.clone(),
            created_at: c.created_at.clone(),
            deadline: c.deadline.clone(),
            state: c.state,
            overdue: overdue.is_some(),
            working_days_overdue: overdue.unwrap_or(0),
            answered_at: c.answered_at.clone(),
            answered_by: c.answered_by.clone(),
            reason: c.reason.clone(),
            stated_value: c.stated.as_ref().map(|s| s.value.clone()),
            note: c.stated.as_ref().map(|s| s.note.clone()),
            erased_at: c.erased_at.clone(),
        }
    }
}

/// The audit event's `operation` for a step of a correction: the step, the id, the
/// operation, the field and the department — ids and names only, which the citizen's
/// access report reads back ([`crate::audit::report`]).
pub fn event_operation(step: &str, c: &Correction) -> String {
    format!(
        "correction.{step} {} op={} field={} dept={}",
        c.id, c.operation, c.field, c.department
    )
}

fn unknown() -> Problem {
    Problem::new(
        ProblemKind::UnknownCorrection,
        "No correction with this id exists, or it is not one you may see.",
    )
}

fn not_listed() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Corrections are filed by a township's clerks, grid workers and leads, and answered by the owning department's admin.",
    )
    .with("rule", ROLE_RULE)
    .with("reason", "role")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
pub(crate) mod tests;
