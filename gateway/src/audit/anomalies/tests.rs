//! The detectors on a real log: each fires on a scripted pattern, with exactly the
//! events behind it, and stays quiet on ordinary traffic and just below its
//! threshold.

use super::*;
use crate::audit::search::testing::{cst, lookup, refused, write_log};
use crate::audit::{AuditOutcome, WithheldField};

/// Events in writing order; `seq` is the position plus one.
#[derive(Default)]
struct Script {
    events: Vec<AuditEvent>,
}

impl Script {
    fn next_n(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    /// A lookup by `user` at `time`, changed by `change`; its seq.
    fn add(&mut self, user: &str, time: String, change: impl FnOnce(&mut AuditEvent)) -> u64 {
        let n = self.next_n();
        let mut event = lookup(n, &time, user);
        change(&mut event);
        self.events.push(event);
        n
    }

    fn plain(&mut self, user: &str, time: String) -> u64 {
        self.add(user, time, |_| {})
    }
}

/// A week of the scan: Monday 2 March 2026 00:00 CST to Monday 9 March.
const FROM: &str = "2026-03-02T00:00:00+08:00";
const UNTIL: &str = "2026-03-09T00:00:00+08:00";

/// A refusal by the caller's own limits (429 `rate-limited`).
fn rate_limited(e: &mut AuditEvent) {
    e.outcome = AuditOutcome {
        status: 429,
        problem: Some("rate-limited".into()),
    };
    e.fields_returned.clear();
    e.upstream_latency_ms = None;
}

/// A refusal by a department's capacity (429 `department-capacity`): not the caller's.
fn department_busy(e: &mut AuditEvent) {
    e.outcome = AuditOutcome {
        status: 429,
        problem: Some("department-capacity".into()),
    };
}

fn deny_role(e: &mut AuditEvent) {
    *e = refused(e.clone(), ROLE_RULE);
}

fn unauthenticated(e: &mut AuditEvent) {
    e.outcome = AuditOutcome {
        status: 401,
        problem: Some("unauthenticated".into()),
    };
}

/// Busy but ordinary work, including every detector's "just below" case.
fn ordinary(script: &mut Script) {
    // 30 distinct subjects in one hour (the threshold is "more than 30"), and the same
    // subject again: still 30.
    for i in 0..30 {
        script.plain("busy.clerk", cst(2026, 3, 2, 10, i * 2, 0));
    }
    let again = script.events[0].subject_pseudonym.clone();
    script.add("busy.clerk", cst(2026, 3, 2, 10, 59, 0), |e| {
        e.subject_pseudonym = again;
    });
    // 30 more in the next hour: hours are counted apart.
    for i in 0..30 {
        script.plain("busy.clerk", cst(2026, 3, 2, 11, i, 0));
    }
    // 4 refusals in 10 minutes, then 5 spread over 12 minutes (never 5 within 10).
    for i in 0..4 {
        script.add("clumsy.clerk", cst(2026, 3, 3, 9, i, 0), deny_role);
    }
    for i in 0..5 {
        script.add(
            "clumsy.clerk",
            cst(2026, 3, 3, 14, i * 3, 0),
            unauthenticated,
        );
    }
    // 9 refusals by the caller's own limits in one day (the threshold is 10), 9 more
    // the next day, and many by a department's capacity.
    for day in [2, 3] {
        for i in 0..9 {
            script.add("steady.clerk", cst(2026, 3, day, 16, i, 0), rate_limited);
        }
    }
    for i in 0..20 {
        script.add("steady.clerk", cst(2026, 3, 4, 16, i, 0), department_busy);
    }
    // Refused by a deny rule: not a row condition.
    script.add("grid.worker", cst(2026, 3, 4, 9, 0, 0), |e| {
        *e = refused(e.clone(), "deny-grid-workers-households");
    });
    // A withheld field for another reason.
    script.add("grid.worker", cst(2026, 3, 4, 9, 5, 0), |e| {
        e.fields_withheld = vec![WithheldField {
            field: "income".into(),
            reason: "never_shared".into(),
            rule: None,
        }];
    });
    // Office hours from 08:00:00 to 17:59:59 CST on weekdays; a Friday counts.
    script.plain("early.clerk", cst(2026, 3, 5, 8, 0, 0));
    script.plain("early.clerk", cst(2026, 3, 5, 10, 0, 0));
    script.plain("early.clerk", cst(2026, 3, 6, 17, 59, 59));
    // Administrative acts carry no case id and may happen at night.
    script.add("admin", cst(2026, 3, 4, 23, 0, 0), |e| {
        e.kind = EventKind::Admin;
        e.case_id = None;
        e.subject_pseudonym = None;
    });
}

fn kinds_users_events(found: &[Anomaly]) -> Vec<(AnomalyKind, &str, Vec<u64>)> {
    found
        .iter()
        .map(|a| (a.kind, a.user.as_str(), a.events.clone()))
        .collect()
}

#[tokio::test]
async fn ordinary_traffic_raises_nothing() {
    let mut script = Script::default();
    ordinary(&mut script);
    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    assert_eq!(found, []);
}

#[tokio::test]
async fn each_detector_fires_on_its_pattern_with_the_events_behind_it() {
    let mut script = Script::default();
    ordinary(&mut script);

    // 31 distinct subjects between 10:00 and 10:59 CST on Monday.
    let hoarded: Vec<u64> = (0..31)
        .map(|i| script.plain("hoarder", cst(2026, 3, 2, 10, i, 30)))
        .collect();
    // The same user's next hour is ordinary.
    for i in 0..3 {
        script.plain("hoarder", cst(2026, 3, 2, 11, i, 0));
    }

    // 5 refusals (401 and 403) within 8 minutes.
    let burst: Vec<u64> = (0..5)
        .map(|i| {
            let change = if i % 2 == 0 {
                deny_role
            } else {
                unauthenticated
            };
            script.add("prober", cst(2026, 3, 3, 15, i * 2, 0), change)
        })
        .collect();

    // At 22:00 CST on a weekday, and at 10:00 on a Saturday; 10:00 on a weekday is fine.
    let night = script.plain("night.owl", cst(2026, 3, 4, 22, 0, 0));
    let saturday = script.plain("night.owl", cst(2026, 3, 7, 10, 0, 0));
    script.plain("night.owl", cst(2026, 3, 5, 10, 0, 0));

    // No case id.
    let no_case = script.add("careless", cst(2026, 3, 5, 9, 0, 0), |e| e.case_id = None);
    script.plain("careless", cst(2026, 3, 5, 9, 10, 0));
    // Requests refused before any department was asked released nothing: not counted.
    for (minute, status) in [(20, 400), (21, 404), (22, 413)] {
        script.add("careless", cst(2026, 3, 5, 9, minute, 0), move |e| {
            e.case_id = None;
            e.outcome.status = status;
            e.outcome.problem = Some("invalid-request".into());
            e.upstream_latency_ms = None;
            e.fields_returned.clear();
        });
    }

    // Refused by a grant's row condition, and a field withheld by one.
    let outside = script.add("roamer", cst(2026, 3, 5, 11, 0, 0), |e| {
        *e = refused(e.clone(), "hukou-birth-registration");
    });
    let withheld = script.add("roamer", cst(2026, 3, 5, 11, 30, 0), |e| {
        e.fields_withheld = vec![WithheldField {
            field: "household_number".into(),
            reason: "row_condition".into(),
            rule: Some("hukou-birth-registration".into()),
        }];
    });
    script.add("roamer", cst(2026, 3, 5, 11, 40, 0), deny_role);
    // Released about a person the household register places in another township
    // (a grant without jurisdiction); the same about a neighbour is ordinary.
    let released = script.add("roamer", cst(2026, 3, 5, 11, 45, 0), |e| {
        e.caller.township = Some("139901101".into());
        e.subject_township = Some("139901201".into());
        e.fields_returned = vec!["name".into()];
    });
    script.add("roamer", cst(2026, 3, 5, 11, 50, 0), |e| {
        e.caller.township = Some("139901101".into());
        e.subject_township = Some("139901101".into());
        e.fields_returned = vec!["name".into()];
    });

    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    assert_eq!(
        kinds_users_events(&found),
        vec![
            (AnomalyKind::NoCaseId, "careless", vec![no_case]),
            (AnomalyKind::ManySubjects, "hoarder", hoarded),
            (AnomalyKind::OffHours, "night.owl", vec![night, saturday]),
            (AnomalyKind::DenialBurst, "prober", burst),
            (
                AnomalyKind::OutsideTownship,
                "roamer",
                vec![outside, withheld, released]
            ),
        ]
    );
    let detail = |kind| &found.iter().find(|a| a.kind == kind).unwrap().detail;
    assert_eq!(
        detail(AnomalyKind::ManySubjects),
        "31 distinct subjects in the UTC hour from 2026-03-02T02:00:00Z (more than 30); 31 lookups"
    );
    assert_eq!(
        detail(AnomalyKind::DenialBurst),
        "5 refusals (401/403) from 2026-03-03T07:00:00Z to 2026-03-03T07:08:00Z"
    );
    assert!(
        detail(AnomalyKind::OffHours).starts_with("2 lookups outside office hours (08:00-18:00")
    );

    // The JSON names the kinds in snake case.
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["kind"], "no_case_id");
    assert_eq!(json["events"], serde_json::json!([no_case]));

    // Other thresholds, other findings: office hours 9-17 make 08:00 late.
    let strict = Thresholds {
        office_hours: (9, 17),
        ..Thresholds::default()
    };
    let found = anomalies(dir.path(), FROM, UNTIL, &strict).unwrap();
    let early = found
        .iter()
        .find(|a| a.user == "early.clerk")
        .expect("08:00 is outside 9-17");
    assert_eq!(early.kind, AnomalyKind::OffHours);
    assert_eq!(early.events.len(), 2, "08:00:00 and 17:59:59");
}

#[tokio::test]
async fn a_long_run_of_refusals_is_one_burst_and_a_later_run_another() {
    let mut script = Script::default();
    let first: Vec<u64> = (0..7)
        .map(|i| script.add("prober", cst(2026, 3, 3, 15, i, 0), deny_role))
        .collect();
    // A lone refusal 20 minutes later ends the first burst without joining it.
    script.add("prober", cst(2026, 3, 3, 15, 26, 0), deny_role);
    let second: Vec<u64> = (0..5)
        .map(|i| script.add("prober", cst(2026, 3, 3, 17, i, 0), unauthenticated))
        .collect();
    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    assert_eq!(
        kinds_users_events(&found),
        vec![
            (AnomalyKind::DenialBurst, "prober", first),
            (AnomalyKind::DenialBurst, "prober", second),
        ]
    );
}

#[tokio::test]
async fn a_user_who_keeps_running_into_their_limits_is_flagged_once_a_day() {
    let mut script = Script::default();
    ordinary(&mut script);
    // A scripted clerk: 30 refusals by their own limits on Tuesday afternoon, within
    // ordinary lookups, and 10 more on Wednesday, one of them (23:59 CST) late.
    let mut tuesday = Vec::new();
    for i in 0..30 {
        script.plain("scripted.clerk", cst(2026, 3, 3, 14, i, 0));
        tuesday.push(script.add("scripted.clerk", cst(2026, 3, 3, 14, i, 30), rate_limited));
    }
    let mut wednesday: Vec<u64> = (0..9)
        .map(|i| script.add("scripted.clerk", cst(2026, 3, 4, 9, i, 0), rate_limited))
        .collect();
    wednesday.push(script.add("scripted.clerk", cst(2026, 3, 4, 23, 59, 0), rate_limited));
    // 00:01 CST on Thursday is another day, whatever the UTC date says.
    script.add("scripted.clerk", cst(2026, 3, 5, 0, 1, 0), rate_limited);
    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    let limited: Vec<&Anomaly> = found
        .iter()
        .filter(|a| a.kind == AnomalyKind::RepeatedlyLimited)
        .collect();
    assert_eq!(limited.len(), 2, "{found:?}");
    assert!(limited.iter().all(|a| a.user == "scripted.clerk"));
    assert_eq!(limited[0].events, tuesday);
    assert_eq!(limited[1].events, wednesday);
    assert_eq!(
        limited[0].detail,
        "30 refusals by the caller's own rate limits or quotas (429) on 2026-03-03 \
         (China Standard Time; 10 or more is flagged)"
    );
    let json = serde_json::to_value(limited[0]).unwrap();
    assert_eq!(json["kind"], "repeatedly_limited");

    // A lower threshold flags the steady clerk of the ordinary traffic too.
    let strict = Thresholds {
        limit_refusals_per_day: 9,
        ..Thresholds::default()
    };
    let found = anomalies(dir.path(), FROM, UNTIL, &strict).unwrap();
    let steady = found
        .iter()
        .filter(|a| a.kind == AnomalyKind::RepeatedlyLimited && a.user == "steady.clerk")
        .count();
    assert_eq!(steady, 2, "one a day, never for the department's capacity");
}

/// A verification that found `result` for one field.
fn verified(result: &'static str) -> impl FnOnce(&mut AuditEvent) {
    move |e: &mut AuditEvent| {
        e.kind = EventKind::Verification;
        e.fields_returned = Vec::new();
        e.fields_verified = vec![crate::audit::VerifiedField {
            field: "birth_date".into(),
            reason: None,
            result: result.into(),
        }];
    }
}

#[tokio::test]
async fn guessing_by_verification_is_flagged_and_a_refused_guess_at_once() {
    let mut script = Script::default();
    ordinary(&mut script);
    // A clerk whose citizens misremember now and then: 9 mismatches among matches on
    // Tuesday, under the threshold of 10.
    for i in 0..9 {
        script.add(
            "careful.clerk",
            cst(2026, 3, 3, 10, i, 0),
            verified("mismatch"),
        );
        script.add(
            "careful.clerk",
            cst(2026, 3, 3, 10, i, 30),
            verified("match"),
        );
    }
    // A prober: 10 mismatches on Wednesday morning.
    let probing: Vec<u64> = (0..10)
        .map(|i| script.add("prober", cst(2026, 3, 4, 9, i, 0), verified("mismatch")))
        .collect();
    // Another guesses 4 times about one person, and the fifth is refused by the
    // mismatch limit (429): flagged although few.
    let mut guessing: Vec<u64> = (0..4)
        .map(|i| script.add("guesser", cst(2026, 3, 5, 11, i, 0), verified("mismatch")))
        .collect();
    guessing.push(script.add("guesser", cst(2026, 3, 5, 11, 5, 0), |e| {
        verified("mismatch")(e);
        e.fields_verified.clear();
        rate_limited(e);
    }));
    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    let flagged: Vec<(&str, &Vec<u64>)> = found
        .iter()
        .filter(|a| a.kind == AnomalyKind::VerificationMismatches)
        .map(|a| (a.user.as_str(), &a.events))
        .collect();
    assert_eq!(flagged, [("guesser", &guessing), ("prober", &probing)]);
    let guesser = found
        .iter()
        .find(|a| a.kind == AnomalyKind::VerificationMismatches && a.user == "guesser")
        .unwrap();
    assert!(
        guesser.detail.contains("1 of them refused"),
        "{}",
        guesser.detail
    );
    assert_eq!(
        serde_json::to_value(guesser).unwrap()["kind"],
        "verification_mismatches"
    );
}

#[tokio::test]
async fn only_the_window_is_scanned_and_it_is_bounded() {
    let mut script = Script::default();
    let inside = script.plain("night.owl", cst(2026, 3, 4, 22, 0, 0));
    script.plain("night.owl", cst(2026, 3, 10, 22, 0, 0));
    script.plain("night.owl", cst(2026, 3, 1, 22, 0, 0));
    let dir = write_log(script.events).await;
    let found = anomalies(dir.path(), FROM, UNTIL, &Thresholds::default()).unwrap();
    assert_eq!(
        kinds_users_events(&found),
        vec![(AnomalyKind::OffHours, "night.owl", vec![inside])]
    );
    // `until` is exclusive: ending at the event leaves it out.
    let at = cst(2026, 3, 4, 22, 0, 0);
    assert_eq!(
        anomalies(dir.path(), FROM, &at, &Thresholds::default()).unwrap(),
        []
    );

    let bad = [
        (FROM, "2026-04-03T00:00:00+08:00"),
        ("last week", UNTIL),
        (UNTIL, FROM),
        (FROM, FROM),
    ];
    for (from, until) in bad {
        let error = anomalies(dir.path(), from, until, &Thresholds::default()).unwrap_err();
        assert!(
            matches!(error, SearchError::InvalidFilter(..)),
            "{from}..{until}: {error}"
        );
    }
    // 31 days exactly is allowed.
    anomalies(
        dir.path(),
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
        &Thresholds::default(),
    )
    .unwrap();

    for thresholds in [
        Thresholds {
            office_hours: (18, 8),
            ..Thresholds::default()
        },
        Thresholds {
            office_hours: (8, 25),
            ..Thresholds::default()
        },
        Thresholds {
            denials_per_10_min: 0,
            ..Thresholds::default()
        },
        Thresholds {
            limit_refusals_per_day: 0,
            ..Thresholds::default()
        },
        Thresholds {
            verify_mismatches_per_day: 0,
            ..Thresholds::default()
        },
    ] {
        assert!(matches!(
            anomalies(dir.path(), FROM, UNTIL, &thresholds),
            Err(SearchError::InvalidFilter(..))
        ));
    }
}

#[test]
fn thresholds_default_and_read_partially() {
    assert_eq!(
        Thresholds::default(),
        Thresholds {
            subjects_per_hour: 30,
            denials_per_10_min: 5,
            office_hours: (8, 18),
            limit_refusals_per_day: 10,
            verify_mismatches_per_day: 10,
        }
    );
    let read: Thresholds = serde_json::from_str(r#"{"subjects_per_hour": 50}"#).unwrap();
    assert_eq!(read.subjects_per_hour, 50);
    assert_eq!(read.office_hours, (8, 18));
    assert!(serde_json::from_str::<Thresholds>(r#"{"per_hour": 50}"#).is_err());
}

#[test]
fn an_anomaly_lists_its_first_events_and_counts_them_all() {
    let mut seqs = Seqs::default();
    for seq in 1..=(MAX_EVENTS_PER_ANOMALY as u64 + 5) {
        seqs.push(seq);
    }
    assert_eq!(seqs.kept.len(), MAX_EVENTS_PER_ANOMALY);
    assert_eq!(seqs.kept.last(), Some(&(MAX_EVENTS_PER_ANOMALY as u64)));
    assert_eq!(
        seqs.described("lookups"),
        format!("1005 lookups (the first {MAX_EVENTS_PER_ANOMALY} listed)")
    );
}

#[test]
fn office_hours_are_china_standard_time_on_weekdays() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let hours = (8, 18);
    // Monday 2 March 2026.
    assert!(!off_hours(at("2026-03-02T10:00:00+08:00"), hours));
    assert!(!off_hours(at("2026-03-02T00:00:00Z"), hours), "08:00 CST");
    assert!(off_hours(at("2026-03-01T23:59:59Z"), hours), "07:59:59 CST");
    assert!(off_hours(at("2026-03-02T10:00:00Z"), hours), "18:00 CST");
    // Friday 23:00 UTC is Saturday 07:00 CST; Sunday 20:00 UTC is Monday 04:00 CST.
    assert!(off_hours(at("2026-03-06T23:00:00Z"), hours));
    assert!(
        off_hours(at("2026-03-07T02:00:00Z"), hours),
        "Saturday 10:00 CST"
    );
    assert!(off_hours(at("2026-03-08T20:00:00Z"), hours));
}
