//! The citizen access report: "who looked at my data?", as Estonia's Data Tracker
//! answers it. For one subject (by pseudonym) it lists every lookup that released data
//! about them — when, who, from which township or department, through which
//! connector and operation, for which purpose and case, which fields — oldest first.
//!
//! Delayed disclosure: an event whose `disclose_after` day is after today (a grant for
//! an enforcement case asked for it) is not listed; only the number of such accesses
//! is given, nothing else about them. A `disclose_after` that is not an ISO date is
//! treated as not yet due (kept back), so a damaged value never discloses early.
//!
//! Blocking and read-only, like [`search`](super::search).

use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use super::search::{SearchError, open_log, stored_event};

/// One access that released data about the subject.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Access {
    /// RFC 3339 UTC with milliseconds, as recorded.
    pub time: String,
    pub user: String,
    pub township: Option<String>,
    pub department: Option<String>,
    pub connector: Option<String>,
    pub operation: Option<String>,
    pub purpose: Option<String>,
    pub case_id: Option<String>,
    /// How the person was shown: `subject` (looked up directly), `linked` (shown as
    /// part of another person's record: a spouse's, a parent's, a household's) or
    /// `residence_check` (the gateway asked where they live before a lookup; nothing
    /// of it was shown beyond allowed or refused) or `verification` (values stated
    /// about them were compared with the record, 核验; nothing of it was shown beyond
    /// match or mismatch).
    pub shown_as: ShownAs,
    /// The fields returned about them (some of them masked), or those a
    /// verification compared.
    pub fields: Vec<String>,
}

/// How a person appeared in an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShownAs {
    Subject,
    Linked,
    ResidenceCheck,
    Verification,
}

/// A step of a correction of the subject's data made on their behalf (数据纠错): a
/// township flagged a department's value, the department answered, or retention
/// erased what was stated. Never the value itself.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CorrectionStep {
    /// RFC 3339 UTC with milliseconds, as recorded.
    pub time: String,
    /// `filed`, `accepted`, `rejected` or `erased`.
    pub step: String,
    pub correction: String,
    /// The department that owns the value.
    pub department: String,
    pub connector: Option<String>,
    pub operation: String,
    pub field: String,
    /// The township that filed it (for `filed`).
    pub township: Option<String>,
}

/// The step an admin event records, if it is a step of a correction (its operation
/// as [`crate::corrections::event_operation`] writes it).
fn correction_step(event: &super::AuditEvent) -> Option<CorrectionStep> {
    let text = event.operation.as_deref()?.strip_prefix("correction.")?;
    let mut words = text.split(' ');
    let step = words.next()?;
    if !["filed", "accepted", "rejected", "erased"].contains(&step) {
        return None;
    }
    let correction = words.next()?.to_owned();
    let named = |key: &str| {
        text.split(' ')
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    Some(CorrectionStep {
        time: event.time.clone(),
        step: step.to_owned(),
        correction,
        department: named("dept=")?,
        connector: event.connector.clone(),
        operation: named("op=")?,
        field: named("field=")?,
        township: (step == "filed")
            .then(|| event.caller.township.clone())
            .flatten(),
    })
}

/// The report for one subject.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CitizenReport {
    /// The subject's masked ID as recorded on a listed access (`None` when nothing is
    /// listed).
    pub subject_masked: Option<String>,
    /// Oldest first.
    pub accesses: Vec<Access>,
    /// Corrections of the subject's data made on their behalf, each step, oldest
    /// first.
    pub corrections: Vec<CorrectionStep>,
    /// Accesses held back by delayed disclosure (count only, nothing else about them).
    pub withheld_until_later: u64,
}

/// The answered lookups about the subject or disclosing them through another
/// person's record, in chain order. `+status`: the subject's index, never the status
/// index (nearly every event is a 200).
const REPORT_SQL: &str = "SELECT seq, hash, body FROM events
     WHERE subject_pseudonym = ?1 AND +status = 200
     UNION
     SELECT e.seq, e.hash, e.body FROM linked_subjects l JOIN events e ON e.seq = l.seq
     WHERE l.pseudonym = ?1 AND +e.status = 200
     ORDER BY seq ASC";

/// Every lookup that released data (status 200) about the subject with this
/// pseudonym, oldest first, except those whose `disclose_after` is after `today`
/// (China Standard Time, as grants go by) — those are only counted.
pub fn citizen_report(
    data_dir: &Path,
    subject_pseudonym: &str,
    today: NaiveDate,
) -> Result<CitizenReport, SearchError> {
    let conn = open_log(data_dir)?;
    let mut statement = conn.prepare(REPORT_SQL)?;
    let mut rows = statement.query([subject_pseudonym])?;
    let mut report = Report::new(subject_pseudonym, today);
    while let Some(row) = rows.next()? {
        report.take(stored_event(row)?);
    }
    Ok(report.finish())
}

/// A citizen report being built from the subject's answered events, taken oldest
/// first (from any store).
pub(crate) struct Report<'s> {
    subject_pseudonym: &'s str,
    today: NaiveDate,
    report: CitizenReport,
}

impl<'s> Report<'s> {
    pub(crate) fn new(subject_pseudonym: &'s str, today: NaiveDate) -> Report<'s> {
        Report {
            subject_pseudonym,
            today,
            report: CitizenReport {
                subject_masked: None,
                accesses: Vec::new(),
                corrections: Vec::new(),
                withheld_until_later: 0,
            },
        }
    }

    pub(crate) fn finish(self) -> CitizenReport {
        self.report
    }

    /// The next event about the subject (status 200, about them or disclosing them
    /// through another person's record).
    pub(crate) fn take(&mut self, stored: super::search::StoredEvent) {
        let (subject_pseudonym, today, report) =
            (self.subject_pseudonym, self.today, &mut self.report);
        let event = stored.event;
        // A correction made on the subject's behalf is listed apart.
        if event.kind == crate::audit::EventKind::Admin
            && event.subject_pseudonym.as_deref() == Some(subject_pseudonym)
            && let Some(step) = correction_step(&event)
        {
            report.corrections.push(step);
            return;
        }
        // Lookups release a citizen's data and verifications confirm it; a privacy
        // officer's review of the log (an admin event) is oversight, recorded but not
        // a disclosure.
        let verification = match event.kind {
            crate::audit::EventKind::Lookup => false,
            crate::audit::EventKind::Verification => true,
            crate::audit::EventKind::Admin => return,
        };
        if let Some(day) = &event.disclose_after {
            let due = match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(day) => day <= today,
                Err(_) => {
                    tracing::warn!(
                        seq = stored.seq,
                        "an audit event's disclose_after is not a date; kept out of the citizen report"
                    );
                    false
                }
            };
            if !due {
                report.withheld_until_later += 1;
                return;
            }
        }
        let direct = event.subject_pseudonym.as_deref() == Some(subject_pseudonym);
        let (shown_as, fields) = if verification {
            if !direct {
                return;
            }
            if report.subject_masked.is_none() {
                report.subject_masked = event.subject_masked.clone();
            }
            let fields = event.fields_verified.into_iter().map(|f| f.field).collect();
            (ShownAs::Verification, fields)
        } else if direct {
            if report.subject_masked.is_none() {
                report.subject_masked = event.subject_masked.clone();
            }
            if event.jurisdiction.is_some() && event.fields_returned.is_empty() {
                (ShownAs::ResidenceCheck, Vec::new())
            } else {
                (ShownAs::Subject, event.fields_returned)
            }
        } else {
            let fields = event
                .linked
                .into_iter()
                .filter(|l| l.pseudonym == subject_pseudonym)
                .flat_map(|l| l.fields)
                .collect();
            (ShownAs::Linked, fields)
        };
        report.accesses.push(Access {
            time: event.time,
            user: event.caller.user,
            township: event.caller.township,
            department: event.caller.department,
            connector: event.connector,
            operation: event.operation,
            purpose: event.purpose,
            case_id: event.case_id,
            shown_as,
            fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::testing::{cst, lookup, query_plan, refused, subject, write_log};
    use super::*;
    use crate::audit::AuditOutcome;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[tokio::test]
    async fn lists_the_released_accesses_of_one_subject_and_counts_the_delayed() {
        let me = subject(7);
        let mine = |n: u64, hour: u32, user: &str| {
            let mut e = lookup(n, &cst(2026, 3, 2, hour, 0, 0), user);
            e.subject_pseudonym = Some(me.clone());
            e
        };
        let mut events = Vec::new();
        // 1: released, county-level department user.
        let mut e = mine(1, 9, "li.clerk");
        e.caller.department = Some("civil_affairs".into());
        e.caller.township = None;
        events.push(e);
        // 2: someone else's subject.
        events.push(lookup(2, &cst(2026, 3, 2, 9, 30, 0), "li.clerk"));
        // 3: refused lookup of me: nothing released, not listed.
        events.push(refused(mine(3, 10, "wang.grid"), "hukou-grid-elderly"));
        // 4: delayed until a day after today: counted only.
        let mut e = mine(4, 11, "zhao.lead");
        e.disclose_after = Some("2026-06-02".into());
        e.case_id = Some("ENFORCEMENT-1".into());
        events.push(e);
        // 5: delayed until a day already past: listed.
        let mut e = mine(5, 12, "qian.clerk");
        e.disclose_after = Some("2026-03-01".into());
        events.push(e);
        // 6: upstream failure: nothing released.
        let mut e = mine(6, 13, "li.clerk");
        e.outcome = AuditOutcome {
            status: 502,
            problem: Some("upstream_unavailable".into()),
        };
        events.push(e);
        // 7: delayed until today exactly: due, listed.
        let mut e = mine(7, 14, "sun.clerk");
        e.disclose_after = Some("2026-03-05".into());
        e.purpose = Some("subsistence_allowance".into());
        e.fields_returned = vec!["address".into()];
        events.push(e);
        let dir = write_log(events).await;

        let report = citizen_report(dir.path(), &me, day(2026, 3, 5)).unwrap();
        let users: Vec<&str> = report.accesses.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, ["li.clerk", "qian.clerk", "sun.clerk"]);
        assert_eq!(report.withheld_until_later, 1);
        assert_eq!(report.subject_masked.as_deref(), Some("139901********123X"));
        assert_eq!(
            report.accesses[0],
            Access {
                time: cst(2026, 3, 2, 9, 0, 0),
                user: "li.clerk".into(),
                township: None,
                department: Some("civil_affairs".into()),
                connector: Some("hukou".into()),
                operation: Some("person_by_id".into()),
                purpose: Some("birth_registration".into()),
                case_id: Some("CASE-0001".into()),
                shown_as: ShownAs::Subject,
                fields: vec!["name".into(), "birth_date".into()],
            }
        );
        assert_eq!(report.accesses[2].fields, ["address"]);
        // Nothing of the delayed access shows, not even in the JSON.
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("zhao.lead") && !json.contains("ENFORCEMENT"));

        // Once its day has come, the delayed access is listed in its place.
        let later = citizen_report(dir.path(), &me, day(2026, 6, 2)).unwrap();
        let users: Vec<&str> = later.accesses.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, ["li.clerk", "zhao.lead", "qian.clerk", "sun.clerk"]);
        assert_eq!(later.withheld_until_later, 0);

        // A subject nobody looked up has an empty report.
        let nobody = citizen_report(dir.path(), &subject(999), day(2026, 3, 5)).unwrap();
        assert_eq!(
            nobody,
            CitizenReport {
                subject_masked: None,
                accesses: Vec::new(),
                corrections: Vec::new(),
                withheld_until_later: 0,
            }
        );
    }

    #[tokio::test]
    async fn an_unreadable_disclosure_day_keeps_the_access_back() {
        let mut e = lookup(1, &cst(2026, 3, 2, 9, 0, 0), "li.clerk");
        e.disclose_after = Some("soon".into());
        let dir = write_log(vec![e]).await;
        let report = citizen_report(dir.path(), &subject(1), day(2030, 1, 1)).unwrap();
        assert!(report.accesses.is_empty());
        assert_eq!(report.withheld_until_later, 1);
    }

    #[tokio::test]
    async fn corrections_made_on_the_subjects_behalf_are_listed_apart() {
        let me = subject(7);
        let mut filed = crate::audit::AuditEvent::admin(
            "r1",
            lookup(1, &cst(2026, 3, 2, 9, 0, 0), "li.clerk").caller,
            "correction.filed cr-1 op=person_by_id field=name dept=county-psb",
        );
        filed.subject_pseudonym = Some(me.clone());
        filed.connector = Some("hukou".into());
        let mut other = filed.clone();
        other.subject_pseudonym = Some(subject(8));
        other.event_id = uuid::Uuid::now_v7().to_string();
        let mut read = filed.clone();
        read.operation = Some("audit.report".into());
        read.event_id = uuid::Uuid::now_v7().to_string();
        let dir = write_log(vec![filed, other, read]).await;
        let report = citizen_report(dir.path(), &me, day(2026, 3, 5)).unwrap();
        assert!(report.accesses.is_empty());
        assert_eq!(report.corrections.len(), 1, "{:?}", report.corrections);
        let step = &report.corrections[0];
        assert_eq!(
            (
                step.step.as_str(),
                step.correction.as_str(),
                step.department.as_str()
            ),
            ("filed", "cr-1", "county-psb")
        );
        assert_eq!(
            (step.operation.as_str(), step.field.as_str()),
            ("person_by_id", "name")
        );
    }

    #[tokio::test]
    async fn the_report_reads_the_subjects_index() {
        let dir = write_log(vec![lookup(1, &cst(2026, 3, 2, 9, 0, 0), "li.clerk")]).await;
        let plan = query_plan(dir.path(), REPORT_SQL);
        assert!(plan.contains("INDEX events_subject"), "{plan}");
    }
}
