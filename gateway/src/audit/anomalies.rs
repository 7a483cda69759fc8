//! What a privacy officer should look at: patterns in the audit log that a lawful,
//! case-driven lookup rarely makes. This module owns the detectors, their thresholds
//! and the scan; it reports, it never blocks anyone.
//!
//! One scan reads the events with `time` in `[from, until)` (at most
//! [`MAX_WINDOW_DAYS`]) once, in time order, one row at a time, keeping only per-user
//! state: the current hour's subjects, the last ten minutes' refusals and capped lists
//! of event numbers. The detectors:
//!
//! - [`AnomalyKind::ManySubjects`]: a user looked up more than `subjects_per_hour`
//!   distinct subject pseudonyms within one clock hour. Hours are **UTC** hour buckets
//!   (CST is UTC+8 exactly, so they are the same hours on a Chinese clock); a burst
//!   straddling two hours can escape. Every lookup with a subject counts, answered or
//!   not: probing is as telling as reading. One anomaly per user and hour, with every
//!   lookup of that hour behind it.
//! - [`AnomalyKind::NoCaseId`]: lookups that reached a department (it was asked, or
//!   its data was answered from the cache) recorded without a case id (none given,
//!   or one that failed its checks and was not recorded); one anomaly per user. A
//!   request refused before any department was asked (400, 404, 413, …) shows
//!   nothing and is not counted.
//! - [`AnomalyKind::OutsideTownship`]: lookups about a subject outside the caller's
//!   area, one anomaly per user: a jurisdiction check that found the subject living
//!   elsewhere (or nowhere), data released about a subject whose township the event
//!   records (`subject_township`, from the county's authority for residence) and that
//!   is not the caller's, and, as a heuristic for older events: a refusal (403, problem `forbidden`) whose one rule is a
//!   *grant* id — not [`ROLE_RULE`] (`lookup-roles`, the role check) and not a deny
//!   rule (ids starting with `deny-`) — can only be a row-condition refusal, and every
//!   row condition in the county's policies ties the record to the caller's township.
//!   A lookup that was answered but had a field withheld with reason `row_condition`
//!   or `jurisdiction` counts too.
//! - [`AnomalyKind::OffHours`]: lookups outside office hours in China Standard Time
//!   (UTC+8): before `office_hours.0` or from `office_hours.1` on Monday to Friday, or
//!   at any time on Saturday and Sunday. Public holidays and make-up working days are
//!   not known here: the configuration's working-day calendar ([`crate::calendar`]) is
//!   not passed to the scan, which the command line also runs on a bare data directory.
//!   One anomaly per user.
//! - [`AnomalyKind::DenialBurst`]: `denials_per_10_min` or more 401/403 outcomes (any
//!   kind of event) by one user within less than ten minutes. A burst goes on while
//!   each further refusal keeps that many within the ten minutes before it; one anomaly
//!   per burst, with all its refusals.
//! - [`AnomalyKind::RepeatedlyLimited`]: `limit_refusals_per_day` or more refusals by
//!   the caller's own limits (429, problem `rate-limited`: their user or township
//!   rate, a grant's quota or their share of it — not a department's capacity, which
//!   is no fault of theirs) by one user within one calendar day of China Standard
//!   Time. A clerk who meets a limit waits and goes on; one who keeps running into
//!   limits is scripting, or trying to use up a quota. One anomaly per user and day.
//! - [`AnomalyKind::VerificationMismatches`]: verifications (核验) by one user within
//!   one calendar day of China Standard Time that found a mismatch, when there were
//!   `verify_mismatches_per_day` or more of them, or when any verification was refused
//!   by a limit (the mismatch limits refuse a burst of guesses about one person):
//!   guess, check, repeat is how a record is enumerated. One anomaly per user and day.
//!
//! Verifications count as lookups for the other detectors (subjects per hour, case
//! ids, area, office hours).
//!
//! Each anomaly lists at most [`MAX_EVENTS_PER_ANOMALY`] event numbers (the first
//! ones); its `detail` gives the full count. Anomalies are sorted by user, kind and
//! first event.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::event::{AuditEvent, EventKind};
use super::search::{
    Bound, SearchError, StoredEvent, format_time, open_log, parse_time_bound, stored_event,
};
use crate::policy::ROLE_RULE;

/// The longest window one scan reads.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// The most event numbers one anomaly lists.
pub const MAX_EVENTS_PER_ANOMALY: usize = 1000;

/// China Standard Time's offset from UTC, in hours.
const CST_HOURS: i64 = 8;

/// The problem type of a refusal by the caller's own limits.
const RATE_LIMITED: &str = "rate-limited";

/// What kind of pattern was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    ManySubjects,
    NoCaseId,
    OutsideTownship,
    OffHours,
    DenialBurst,
    RepeatedlyLimited,
    VerificationMismatches,
}

/// One thing to look at.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub user: String,
    /// What was found, in a sentence (no personal data: counts and times).
    pub detail: String,
    /// The events behind it (their `seq`), in time order.
    pub events: Vec<u64>,
}

/// When a pattern becomes an anomaly.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// More distinct subjects than this in one hour by one user.
    pub subjects_per_hour: usize,
    /// This many refusals (401/403) or more by one user within ten minutes.
    pub denials_per_10_min: usize,
    /// Office hours `[start, end)`, whole hours of China Standard Time, weekdays.
    pub office_hours: (u32, u32),
    /// This many refusals by the caller's own limits (429) or more by one user within
    /// one day (China Standard Time).
    pub limit_refusals_per_day: usize,
    /// This many verifications with a mismatch or more by one user within one day
    /// (China Standard Time); a verification refused by a limit is flagged at once.
    pub verify_mismatches_per_day: usize,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            subjects_per_hour: 30,
            denials_per_10_min: 5,
            office_hours: (8, 18),
            limit_refusals_per_day: 10,
            verify_mismatches_per_day: 10,
        }
    }
}

impl Thresholds {
    fn check(&self) -> Result<(), SearchError> {
        let (start, end) = self.office_hours;
        if start >= end || end > 24 {
            return Err(SearchError::InvalidFilter(
                "thresholds.office_hours",
                format!("office hours {start}-{end} are not a span of hours within a day"),
            ));
        }
        if self.denials_per_10_min == 0 {
            return Err(SearchError::InvalidFilter(
                "thresholds.denials_per_10_min",
                "denials_per_10_min must be at least 1".into(),
            ));
        }
        if self.verify_mismatches_per_day == 0 {
            return Err(SearchError::InvalidFilter(
                "thresholds.verify_mismatches_per_day",
                "verify_mismatches_per_day must be at least 1".into(),
            ));
        }
        if self.limit_refusals_per_day == 0 {
            return Err(SearchError::InvalidFilter(
                "thresholds.limit_refusals_per_day",
                "limit_refusals_per_day must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Scans the events with `time` in `[from, until)` (RFC 3339, at most
/// [`MAX_WINDOW_DAYS`] apart) and reports what the [module docs](self) describe.
pub fn anomalies(
    data_dir: &Path,
    from: &str,
    until: &str,
    thresholds: &Thresholds,
) -> Result<Vec<Anomaly>, SearchError> {
    let (from, until) = window(from, until, thresholds)?;
    let conn = open_log(data_dir)?;
    let mut statement = conn.prepare(
        "SELECT seq, hash, body FROM events
          WHERE time >= ?1 AND time < ?2
          ORDER BY time ASC, seq ASC",
    )?;
    let mut rows = statement.query([format_time(from), format_time(until)])?;
    let mut scan = Scan::new(thresholds);
    while let Some(row) = rows.next()? {
        scan.observe_stored(&stored_event(row)?);
    }
    Ok(scan.finish())
}

/// The window `[from, until)` of a scan, checked with the thresholds: RFC 3339 or
/// dates, `from` before `until`, at most [`MAX_WINDOW_DAYS`] apart.
pub(crate) fn window(
    from: &str,
    until: &str,
    thresholds: &Thresholds,
) -> Result<(DateTime<Utc>, DateTime<Utc>), SearchError> {
    thresholds.check()?;
    let from = parse_time_bound(Bound::From, from)?;
    let until = parse_time_bound(Bound::Until, until)?;
    if from >= until {
        return Err(SearchError::InvalidFilter(
            "until",
            "`from` must be before `until`".into(),
        ));
    }
    if until - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(SearchError::InvalidFilter(
            "until",
            format!("the window is longer than {MAX_WINDOW_DAYS} days; scan it in parts"),
        ));
    }
    Ok((from, until))
}

/// Event numbers behind an anomaly: all of them counted, the first ones kept.
#[derive(Debug, Default)]
struct Seqs {
    count: u64,
    kept: Vec<u64>,
}

impl Seqs {
    fn push(&mut self, seq: u64) {
        self.count += 1;
        if self.kept.len() < MAX_EVENTS_PER_ANOMALY {
            self.kept.push(seq);
        }
    }

    /// `n things`, or `n things (the first 1000 listed)`.
    fn described(&self, what: &str) -> String {
        if self.count > self.kept.len() as u64 {
            format!(
                "{} {what} (the first {} listed)",
                self.count,
                self.kept.len()
            )
        } else {
            format!("{} {what}", self.count)
        }
    }
}

/// One user's lookups in one UTC hour.
#[derive(Debug)]
struct Hour {
    start: DateTime<Utc>,
    subjects: HashSet<String>,
    lookups: Seqs,
}

/// A run of refusals.
#[derive(Debug)]
struct Burst {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    events: Seqs,
}

/// What the scan keeps about one user.
#[derive(Debug, Default)]
struct UserState {
    hour: Option<Hour>,
    no_case_id: Seqs,
    outside_township: Seqs,
    off_hours: Seqs,
    /// Refusals of the last ten minutes, oldest first.
    recent_denials: VecDeque<(DateTime<Utc>, u64)>,
    burst: Option<Burst>,
    /// Refusals by the user's own limits on one day (China Standard Time).
    limited: Option<(NaiveDate, Seqs)>,
    /// Verifications with a mismatch or refused by a limit on one day (China
    /// Standard Time).
    verifying: Option<Verifying>,
}

/// One user's verifications that found a mismatch, or were refused by a limit, on
/// one day.
#[derive(Debug)]
struct Verifying {
    day: NaiveDate,
    events: Seqs,
    refused: u64,
}

/// The scan over a window's events, taken in time order (from any store).
#[derive(Debug)]
pub(crate) struct Scan<'t> {
    thresholds: &'t Thresholds,
    users: HashMap<String, UserState>,
    found: Vec<Anomaly>,
}

impl<'t> Scan<'t> {
    pub(crate) fn new(thresholds: &'t Thresholds) -> Scan<'t> {
        Scan {
            thresholds,
            users: HashMap::new(),
            found: Vec::new(),
        }
    }

    /// Takes the next event in time order.
    fn observe(&mut self, seq: u64, time: DateTime<Utc>, event: &AuditEvent) {
        let user = match self.users.entry(event.caller.user.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(UserState::default()),
        };
        let name = &event.caller.user;
        let thresholds = self.thresholds;
        if matches!(event.outcome.status, 401 | 403) {
            denied(user, name, seq, time, thresholds, &mut self.found);
        }
        if event.outcome.status == 429 && event.outcome.problem.as_deref() == Some(RATE_LIMITED) {
            let day = (time + Duration::hours(CST_HOURS)).date_naive();
            if user.limited.as_ref().is_some_and(|(d, _)| *d != day)
                && let Some(done) = user.limited.take()
            {
                self.found
                    .extend(repeatedly_limited(name, done, thresholds));
            }
            user.limited
                .get_or_insert_with(|| (day, Seqs::default()))
                .1
                .push(seq);
        }
        if event.kind == EventKind::Admin {
            return;
        }
        if event.kind == EventKind::Verification {
            let refused = event.outcome.status == 429;
            let mismatched = event.fields_verified.iter().any(|f| f.result == "mismatch");
            if refused || mismatched {
                let day = (time + Duration::hours(CST_HOURS)).date_naive();
                if user.verifying.as_ref().is_some_and(|v| v.day != day)
                    && let Some(done) = user.verifying.take()
                {
                    self.found
                        .extend(verification_mismatches(name, done, thresholds));
                }
                let verifying = user.verifying.get_or_insert_with(|| Verifying {
                    day,
                    events: Seqs::default(),
                    refused: 0,
                });
                verifying.events.push(seq);
                verifying.refused += u64::from(refused);
            }
        }
        if let Some(subject) = &event.subject_pseudonym {
            let start = hour_start(time);
            if user.hour.as_ref().is_some_and(|h| h.start != start)
                && let Some(done) = user.hour.take()
            {
                self.found.extend(many_subjects(name, done, thresholds));
            }
            let hour = user.hour.get_or_insert_with(|| Hour {
                start,
                subjects: HashSet::new(),
                lookups: Seqs::default(),
            });
            if !hour.subjects.contains(subject) {
                hour.subjects.insert(subject.clone());
            }
            hour.lookups.push(seq);
        }
        if event.case_id.as_deref().is_none_or(|c| c.trim().is_empty()) && reached_department(event)
        {
            user.no_case_id.push(seq);
        }
        if outside_township(event) {
            user.outside_township.push(seq);
        }
        if off_hours(time, thresholds.office_hours) {
            user.off_hours.push(seq);
        }
    }

    /// Takes the next stored event (one whose time cannot be read is left out).
    pub(crate) fn observe_stored(&mut self, stored: &StoredEvent) {
        match DateTime::parse_from_rfc3339(&stored.event.time) {
            Ok(time) => self.observe(stored.seq, time.with_timezone(&Utc), &stored.event),
            Err(_) => {
                tracing::warn!(
                    seq = stored.seq,
                    "an audit event's time is not RFC 3339; left out of the anomaly scan"
                );
            }
        }
    }

    /// Closes every open hour and burst; the anomalies, sorted.
    pub(crate) fn finish(mut self) -> Vec<Anomaly> {
        let (start, end) = self.thresholds.office_hours;
        for (name, state) in self.users {
            if let Some(hour) = state.hour {
                self.found
                    .extend(many_subjects(&name, hour, self.thresholds));
            }
            if let Some(burst) = state.burst {
                self.found.push(burst_anomaly(&name, burst));
            }
            if let Some(day) = state.limited {
                self.found
                    .extend(repeatedly_limited(&name, day, self.thresholds));
            }
            if let Some(day) = state.verifying {
                self.found
                    .extend(verification_mismatches(&name, day, self.thresholds));
            }
            let grouped = [
                (
                    AnomalyKind::NoCaseId,
                    state.no_case_id,
                    "lookups without a case id".to_owned(),
                ),
                (
                    AnomalyKind::OutsideTownship,
                    state.outside_township,
                    "lookups refused or withheld by a row condition \
                     (a subject outside the caller's area)"
                        .to_owned(),
                ),
                (
                    AnomalyKind::OffHours,
                    state.off_hours,
                    format!(
                        "lookups outside office hours \
                         ({start:02}:00-{end:02}:00 China Standard Time, Monday to Friday)"
                    ),
                ),
            ];
            for (kind, seqs, what) in grouped {
                if seqs.count > 0 {
                    self.found.push(Anomaly {
                        kind,
                        user: name.clone(),
                        detail: seqs.described(&what),
                        events: seqs.kept,
                    });
                }
            }
        }
        self.found.sort_by(|a, b| {
            (&a.user, a.kind, a.events.first()).cmp(&(&b.user, b.kind, b.events.first()))
        });
        self.found
    }
}

/// Takes a refusal into the user's ten-minute window; closes a burst the window no
/// longer sustains.
fn denied(
    user: &mut UserState,
    name: &str,
    seq: u64,
    time: DateTime<Utc>,
    thresholds: &Thresholds,
    found: &mut Vec<Anomaly>,
) {
    let window = Duration::minutes(10);
    while user
        .recent_denials
        .front()
        .is_some_and(|(t, _)| time - *t >= window)
    {
        user.recent_denials.pop_front();
    }
    user.recent_denials.push_back((time, seq));
    if user.recent_denials.len() < thresholds.denials_per_10_min {
        if let Some(burst) = user.burst.take() {
            found.push(burst_anomaly(name, burst));
        }
        return;
    }
    match &mut user.burst {
        // Every earlier refusal in the window is already in the burst.
        Some(burst) => {
            burst.last = time;
            burst.events.push(seq);
        }
        None => {
            let mut events = Seqs::default();
            for (_, seq) in &user.recent_denials {
                events.push(*seq);
            }
            let first = user.recent_denials.front().map_or(time, |(t, _)| *t);
            user.burst = Some(Burst {
                first,
                last: time,
                events,
            });
        }
    }
}

fn burst_anomaly(name: &str, burst: Burst) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::DenialBurst,
        user: name.to_owned(),
        detail: format!(
            "{} from {} to {}",
            burst.events.described("refusals (401/403)"),
            burst.first.to_rfc3339_opts(SecondsFormat::Secs, true),
            burst.last.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        events: burst.events.kept,
    }
}

fn repeatedly_limited(
    name: &str,
    (day, refusals): (NaiveDate, Seqs),
    thresholds: &Thresholds,
) -> Option<Anomaly> {
    if refusals.count < thresholds.limit_refusals_per_day as u64 {
        return None;
    }
    Some(Anomaly {
        kind: AnomalyKind::RepeatedlyLimited,
        user: name.to_owned(),
        detail: format!(
            "{} on {day} (China Standard Time; {} or more is flagged)",
            refusals.described("refusals by the caller's own rate limits or quotas (429)"),
            thresholds.limit_refusals_per_day,
        ),
        events: refusals.kept,
    })
}

fn verification_mismatches(
    name: &str,
    verifying: Verifying,
    thresholds: &Thresholds,
) -> Option<Anomaly> {
    let Verifying {
        day,
        events,
        refused,
    } = verifying;
    if refused == 0 && events.count < thresholds.verify_mismatches_per_day as u64 {
        return None;
    }
    Some(Anomaly {
        kind: AnomalyKind::VerificationMismatches,
        user: name.to_owned(),
        detail: format!(
            "{} on {day} (China Standard Time), {refused} of them refused by a limit \
             ({} or more mismatches, or any refusal, is flagged)",
            events.described("verifications that found a mismatch or were refused"),
            thresholds.verify_mismatches_per_day,
        ),
        events: events.kept,
    })
}

fn many_subjects(name: &str, hour: Hour, thresholds: &Thresholds) -> Option<Anomaly> {
    if hour.subjects.len() <= thresholds.subjects_per_hour {
        return None;
    }
    Some(Anomaly {
        kind: AnomalyKind::ManySubjects,
        user: name.to_owned(),
        detail: format!(
            "{} distinct subjects in the UTC hour from {} (more than {}); {}",
            hour.subjects.len(),
            hour.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            thresholds.subjects_per_hour,
            hour.lookups.described("lookups"),
        ),
        events: hour.lookups.kept,
    })
}

/// The start of `time`'s UTC hour.
fn hour_start(time: DateTime<Utc>) -> DateTime<Utc> {
    time.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(time)
}

/// A lookup about a subject outside the caller's area (see the module docs).
fn outside_township(event: &AuditEvent) -> bool {
    if event.jurisdiction.as_deref() == Some("outside") {
        return true;
    }
    // Released data about a person the authority places in another township (a
    // grant without jurisdiction, or one reached directly on the authority).
    let released_elsewhere = event.outcome.status == 200
        && !event.fields_returned.is_empty()
        && matches!(
            (&event.subject_township, &event.caller.township),
            (Some(theirs), Some(mine)) if theirs != mine
        );
    let refused_by_grant = event.outcome.status == 403
        && event.outcome.problem.as_deref() == Some("forbidden")
        && matches!(event.rules.as_slice(), [rule] if rule != ROLE_RULE && !rule.starts_with("deny-"));
    released_elsewhere
        || refused_by_grant
        || event
            .fields_withheld
            .iter()
            .any(|w| w.reason == "row_condition" || w.reason == "jurisdiction")
}

/// Outside `[start, end)` o'clock China Standard Time on a weekday, or on a weekend.
fn off_hours(time: DateTime<Utc>, (start, end): (u32, u32)) -> bool {
    let local = time.naive_utc() + Duration::hours(CST_HOURS);
    let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    weekend || local.hour() < start || local.hour() >= end
}

/// Whether a lookup got as far as a department: it was asked (a latency is
/// recorded) or its record was answered from the cache.
fn reached_department(event: &AuditEvent) -> bool {
    event.upstream_latency_ms.is_some()
        || event.cache_hit
        || (200..300).contains(&event.outcome.status)
}

#[cfg(test)]
mod tests;
