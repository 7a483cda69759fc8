//! Test helpers shared by the readers' tests: events with times chosen by the test,
//! written to a real log in a temporary directory by the real writer.

use chrono::{FixedOffset, NaiveDate, TimeZone as _, Utc};
use tempfile::TempDir;

use crate::audit::{AuditCaller, AuditEvent, AuditLog as _, AuditOutcome, EventKind, SqliteAudit};

/// The time `hh:mm:ss` on `y-m-d` in China Standard Time, as the store writes times
/// (RFC 3339 UTC with milliseconds).
pub(crate) fn cst(y: i32, m: u32, d: u32, hh: u32, mm: u32, ss: u32) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    let local = NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(hh, mm, ss)
        .unwrap();
    offset
        .from_local_datetime(&local)
        .unwrap()
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A successful lookup numbered `n` (distinct event id, request id, case id and
/// subject) by `user` at `time`; tests change what they need.
pub(crate) fn lookup(n: u64, time: &str, user: &str) -> AuditEvent {
    AuditEvent {
        event_id: format!("event-{n:04}"),
        request_id: format!("req-{n:04}"),
        time: time.to_owned(),
        kind: EventKind::Lookup,
        caller: AuditCaller {
            user: user.to_owned(),
            roles: vec!["clerk".into()],
            township: Some("139901001".into()),
            department: None,
            app: Some("console".into()),
            source_ip: Some("10.1.2.3".into()),
            villages: Vec::new(),
        },
        purpose: Some("birth_registration".into()),
        reason: None,
        case_id: Some(format!("CASE-{n:04}")),
        connector: Some("hukou".into()),
        operation: Some("person_by_id".into()),
        subject_pseudonym: Some(subject(n)),
        subject_masked: Some("139901********123X".into()),
        subject_township: None,
        jurisdiction: None,
        linked: Vec::new(),
        fields_returned: vec!["name".into(), "birth_date".into()],
        fields_masked: Vec::new(),
        fields_withheld: Vec::new(),
        fields_verified: Vec::new(),
        rules: vec!["hukou-birth-registration".into()],
        policy_version: Some("2026.1".into()),
        outcome: AuditOutcome {
            status: 200,
            problem: None,
        },
        upstream_latency_ms: Some(15),
        cache_hit: false,
        disclose_after: None,
        form: None,
    }
}

/// The pseudonym [`lookup`] gives subject `n`.
pub(crate) fn subject(n: u64) -> String {
    format!("psn_{n:032x}")
}

/// Turns `event` into a policy refusal (403 `forbidden`) by `rule`.
pub(crate) fn refused(mut event: AuditEvent, rule: &str) -> AuditEvent {
    event.outcome = AuditOutcome {
        status: 403,
        problem: Some("forbidden".into()),
    };
    event.rules = vec![rule.to_owned()];
    event.fields_returned.clear();
    event.upstream_latency_ms = None;
    event
}

/// Writes `events` in order with the real writer into a fresh data directory and
/// stops the writer; event `i` gets `seq` `i + 1`.
pub(crate) async fn write_log(events: Vec<AuditEvent>) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let audit = SqliteAudit::open(dir.path(), Default::default()).unwrap();
    for (i, event) in events.into_iter().enumerate() {
        let recorded = audit.append(event).await.unwrap();
        assert_eq!(recorded.seq, i as u64 + 1);
    }
    audit.shutdown().await;
    dir
}

/// SQLite's plan for `sql` on the log in `data_dir`, its steps joined by `; `.
pub(crate) fn query_plan(data_dir: &std::path::Path, sql: &str) -> String {
    let conn = super::open_log(data_dir).unwrap();
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let params = vec![rusqlite::types::Value::Null; statement.parameter_count()];
    let steps: Vec<String> = statement
        .query_map(rusqlite::params_from_iter(params), |row| row.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    steps.join("; ")
}
