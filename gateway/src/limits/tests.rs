use super::*;
use governor::clock::FakeRelativeClock;

const MINUTE: Duration = Duration::from_secs(60);

fn config(per_user: LimitSetting, per_township: LimitSetting) -> RateLimitsConfig {
    RateLimitsConfig {
        per_user,
        per_township,
        ..RateLimitsConfig::default()
    }
}

fn limits_with(config: &RateLimitsConfig) -> (Arc<RateLimits>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let state = Arc::new(GovernorState::with_clock(clock.clone()));
    (Arc::new(RateLimits::new(config, state)), clock)
}

fn rate(r: Rate) -> LimitSetting {
    LimitSetting::Limit(r)
}

fn refused(limits: &RateLimits, kind: &str) -> u64 {
    limits
        .refused()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| n)
}

#[test]
fn a_user_gets_their_burst_then_waits_for_the_refill() {
    let (limits, clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        assert_eq!(limits.check_caller("u1", None), Ok(()));
    }
    let limited = limits.check_caller("u1", None).unwrap_err();
    assert_eq!(limited.limit, "user");
    assert_eq!(limited.rate, Rate::per_minute(3));
    assert!(
        (Duration::from_secs(19)..=Duration::from_secs(20)).contains(&limited.retry_after),
        "3 per minute refills one request every 20 s, got {:?}",
        limited.retry_after
    );
    assert!(!limited.is_department());

    clock.advance(limited.retry_after);
    assert_eq!(limits.check_caller("u1", None), Ok(()));
    assert!(limits.check_caller("u1", None).is_err());
    assert_eq!(refused(&limits, "user"), 2);
}

#[test]
fn two_users_do_not_share_a_bucket() {
    let (limits, _clock) = limits_with(&config(rate(Rate::per_minute(1)), LimitSetting::Off));
    assert_eq!(limits.check_caller("u1", Some("T1")), Ok(()));
    assert!(limits.check_caller("u1", Some("T1")).is_err());
    assert_eq!(limits.check_caller("u2", Some("T1")), Ok(()));
}

#[test]
fn a_township_bucket_is_shared_by_its_users() {
    let (limits, _clock) = limits_with(&config(LimitSetting::Off, rate(Rate::per_minute(2))));
    assert_eq!(limits.check_caller("u1", Some("T1")), Ok(()));
    assert_eq!(limits.check_caller("u2", Some("T1")), Ok(()));
    let limited = limits.check_caller("u3", Some("T1")).unwrap_err();
    assert_eq!(limited.limit, "township");
    // Another township and a caller without one are not affected.
    assert_eq!(limits.check_caller("u3", Some("T2")), Ok(()));
    assert_eq!(limits.check_caller("u4", None), Ok(()));
    assert_eq!(refused(&limits, "township"), 1);
}

#[test]
fn a_user_over_their_own_limit_does_not_drain_the_township() {
    let (limits, _clock) = limits_with(&config(
        rate(Rate::per_minute(1)),
        rate(Rate::per_minute(3)),
    ));
    assert_eq!(limits.check_caller("noisy", Some("T1")), Ok(()));
    for _ in 0..50 {
        assert_eq!(
            limits.check_caller("noisy", Some("T1")).unwrap_err().limit,
            "user"
        );
    }
    // The township's bucket lost only the one request that got through.
    assert_eq!(limits.check_caller("u2", Some("T1")), Ok(()));
    assert_eq!(limits.check_caller("u3", Some("T1")), Ok(()));
    assert_eq!(refused(&limits, "user"), 50);
    assert_eq!(refused(&limits, "township"), 0);
}

#[test]
fn a_daily_grant_quota_is_counted_per_township() {
    let (limits, clock) = limits_with(&config(LimitSetting::Off, LimitSetting::Off));
    let quota = Quota {
        per_minute: None,
        per_day: Some(2),
    };
    assert_eq!(limits.check_grant("g1", &quota, Some("A"), "u1"), Ok(()));
    assert_eq!(limits.check_grant("g1", &quota, Some("A"), "u2"), Ok(()));
    let limited = limits
        .check_grant("g1", &quota, Some("A"), "u1")
        .unwrap_err();
    assert_eq!(limited.limit, "grant:g1");
    assert_eq!(limited.rate, Rate::per_day(2));
    // A sliding day: one request comes back every 12 hours.
    assert_eq!(limited.retry_after, Duration::from_secs(12 * 3600));
    assert_eq!(limits.check_grant("g1", &quota, Some("B"), "u9"), Ok(()));
    // Another grant has its own count.
    assert_eq!(limits.check_grant("g2", &quota, Some("A"), "u1"), Ok(()));
    // Callers without a township are counted per user.
    assert_eq!(limits.check_grant("g1", &quota, None, "u1"), Ok(()));
    assert_eq!(limits.check_grant("g1", &quota, None, "u1"), Ok(()));
    assert!(limits.check_grant("g1", &quota, None, "u1").is_err());
    assert_eq!(limits.check_grant("g1", &quota, None, "u2"), Ok(()));

    clock.advance(Duration::from_secs(12 * 3600));
    assert_eq!(limits.check_grant("g1", &quota, Some("A"), "u1"), Ok(()));
    assert!(limits.check_grant("g1", &quota, Some("A"), "u1").is_err());
    assert_eq!(refused(&limits, "grant"), 3);
}

#[test]
fn refusals_for_speed_do_not_spend_the_daily_quota() {
    let (limits, clock) = limits_with(&config(LimitSetting::Off, LimitSetting::Off));
    let quota = Quota {
        per_minute: Some(1),
        per_day: Some(3),
    };
    for _ in 0..3 {
        assert_eq!(limits.check_grant("g1", &quota, Some("A"), "u1"), Ok(()));
        for _ in 0..10 {
            let limited = limits
                .check_grant("g1", &quota, Some("A"), "u1")
                .unwrap_err();
            assert_eq!(limited.rate, Rate::per_minute(1));
        }
        clock.advance(MINUTE);
    }
    let limited = limits
        .check_grant("g1", &quota, Some("A"), "u1")
        .unwrap_err();
    assert_eq!(limited.rate, Rate::per_day(3));
}

#[test]
fn connector_capacity_is_the_departments_protection() {
    let (limits, _clock) = limits_with(&RateLimitsConfig::default());
    let capacity = Rate::per_second(2, 2);
    assert_eq!(limits.check_connector("hukou", capacity), Ok(()));
    assert_eq!(limits.check_connector("hukou", capacity), Ok(()));
    let limited = limits.check_connector("hukou", capacity).unwrap_err();
    assert!(limited.is_department());
    assert_eq!(limited.limit, "connector:hukou");
    // Counted across all callers, per connector.
    assert_eq!(limits.check_connector("shebao", capacity), Ok(()));

    let problem = limited.problem();
    assert_eq!(problem.kind, ProblemKind::DepartmentCapacity);
    assert_eq!(problem.kind.status().as_u16(), 429);
    let body = problem.body();
    assert_eq!(body["type"], "/problems/department-capacity");
    assert_eq!(body["blame"], "department");
    assert_eq!(body["limit"], "connector:hukou");
    assert_eq!(refused(&limits, "connector"), 1);
}

fn header<'a>(problem: &'a Problem, name: &str) -> &'a str {
    let found = problem
        .headers
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .unwrap_or_else(|| panic!("no {name} header"));
    found.1.to_str().unwrap()
}

#[test]
fn the_429_for_a_user_says_when_to_retry_and_names_no_one() {
    let secret_user = "sub-3301021985-li-lei";
    let (limits, _clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        limits.check_caller(secret_user, Some("330102001")).unwrap();
    }
    let problem = limits
        .check_caller(secret_user, Some("330102001"))
        .unwrap_err()
        .problem();

    assert_eq!(problem.kind, ProblemKind::RateLimited);
    let body = problem.body();
    assert_eq!(body["type"], "/problems/rate-limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["limit"], "user");
    assert_eq!(body["retry_after_s"], 20);
    let retry_after: u64 = header(&problem, "retry-after").parse().unwrap();
    assert_eq!(retry_after, 20);
    assert_eq!(header(&problem, "ratelimit-policy"), r#""user";q=3;w=60"#);
    assert_eq!(header(&problem, "ratelimit"), r#""user";r=0;t=20"#);
    assert!(problem.detail.contains("20 s"), "{}", problem.detail);

    let everything = format!(
        "{body} {:?}",
        problem
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v:?}"))
            .collect::<Vec<_>>()
    );
    assert!(!everything.contains(secret_user), "{everything}");
    assert!(!everything.contains("330102001"), "{everything}");
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    let limited = |retry_after| Limited {
        limit: "township".to_owned(),
        rate: Rate::per_second(100, 100),
        retry_after,
    };
    assert_eq!(limited(Duration::from_millis(10)).retry_after_s(), 1);
    assert_eq!(limited(Duration::ZERO).retry_after_s(), 1);
    assert_eq!(limited(Duration::from_millis(2001)).retry_after_s(), 3);
    assert_eq!(limited(Duration::from_secs(7)).retry_after_s(), 7);
    let problem = limited(Duration::from_millis(10)).problem();
    assert_eq!(header(&problem, "retry-after"), "1");
    assert_eq!(header(&problem, "ratelimit"), r#""township";r=0;t=1"#);
}

#[test]
fn ratelimit_policy_names_are_valid_structured_field_strings() {
    let problem = Limited {
        limit: "grant:乡镇\"x\\".to_owned(),
        rate: Rate::per_day(10),
        retry_after: Duration::from_secs(1),
    }
    .problem();
    assert_eq!(
        header(&problem, "ratelimit-policy"),
        r#""grant:%E4%B9%A1%E9%95%87\"x\\";q=10;w=86400"#
    );
    assert_eq!(problem.body()["limit"], "grant:乡镇\"x\\");
}

#[test]
fn sweeping_bounds_the_state_to_active_callers() {
    let (limits, clock) = limits_with(&RateLimitsConfig::default());
    for i in 0..100_000 {
        limits.check_caller(&format!("user-{i}"), None).unwrap();
    }
    assert_eq!(limits.buckets(), 100_000);
    // Not yet back to full: nothing may be forgotten.
    assert_eq!(limits.sweep(), 100_000);
    clock.advance(MINUTE + Duration::from_secs(1));
    assert_eq!(limits.sweep(), 0);
    assert_eq!(limits.buckets(), 0);
}

#[test]
fn sweeping_never_gives_anyone_extra_requests() {
    let (limits, clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        limits.check_caller("u1", None).unwrap();
    }
    clock.advance(Duration::from_secs(10));
    assert_eq!(limits.sweep(), 1);
    assert_eq!(limits.check_caller("u1", None).unwrap_err().limit, "user");
}

#[tokio::test]
async fn the_sweeper_sweeps_and_stops_with_its_limits() {
    let clock = FakeRelativeClock::default();
    let state = Arc::new(GovernorState::with_clock(clock.clone()));
    let limits = Arc::new(RateLimits::new(
        &RateLimitsConfig::default(),
        Arc::clone(&state) as Arc<dyn LimiterState>,
    ));
    for i in 0..10 {
        limits.check_caller(&format!("user-{i}"), None).unwrap();
    }
    clock.advance(MINUTE + Duration::from_secs(1));
    let sweeper = limits.spawn_sweeper_every(Duration::from_millis(1));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !state.is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sweeper swept");
    drop(limits);
    tokio::time::timeout(Duration::from_secs(10), sweeper)
        .await
        .expect("the sweeper ended with its limits")
        .unwrap();
}

#[test]
fn zero_rates_do_not_panic_and_are_off() {
    let zero = RateLimitsConfig {
        per_user: rate(Rate::per_minute(0)),
        per_township: rate(Rate {
            count: 5,
            window_s: 0,
            burst: 0,
        }),
        sweep_interval_s: 0,
    };
    let (limits, _clock) = limits_with(&zero);
    for _ in 0..100 {
        assert_eq!(limits.check_caller("u1", Some("T1")), Ok(()));
        assert_eq!(
            limits.check_grant(
                "g",
                &Quota {
                    per_minute: Some(0),
                    per_day: Some(0)
                },
                None,
                "u1"
            ),
            Ok(())
        );
        assert_eq!(limits.check_connector("c", Rate::per_second(0, 0)), Ok(()));
    }
    assert_eq!(limits.buckets(), 0);
    // A zero burst alone is read as 1.
    assert_eq!(limits.check_connector("c", Rate::per_second(1, 0)), Ok(()));
    assert!(limits.check_connector("c", Rate::per_second(1, 0)).is_err());
    // A rate too fast for nanosecond resolution is still enforced (one per ns).
    let state = GovernorState::with_clock(FakeRelativeClock::default());
    let fastest = Rate::per_second(u32::MAX, 1);
    assert_eq!(state.take("k", fastest), Ok(0));
    assert!(state.take("k", fastest).is_err());
}

#[test]
fn take_reports_what_is_left_of_the_burst() {
    let state = GovernorState::with_clock(FakeRelativeClock::default());
    let r = Rate::per_minute(3);
    assert_eq!(state.take("k", r), Ok(2));
    assert_eq!(state.take("k", r), Ok(1));
    assert_eq!(state.take("k", r), Ok(0));
    assert_eq!(state.take("k", r), Err(Duration::from_secs(20)));
    assert_eq!(state.len(), 1);
}

#[test]
fn the_section_parses_with_defaults() {
    let empty: RateLimitsConfig = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(empty, RateLimitsConfig::default());
    assert_eq!(
        empty.per_user.rate(),
        Some(Rate {
            count: 120,
            window_s: 60,
            burst: 30
        })
    );
    assert_eq!(
        empty.per_township.rate(),
        Some(Rate {
            count: 1200,
            window_s: 60,
            burst: 200
        })
    );
    assert_eq!(empty.sweep_interval_s, 60);
    assert!(empty.validate().is_empty());

    let yaml = "per_user: { per_second: 10, burst: 20 }\nper_township: off\nsweep_interval_s: 30\n";
    let parsed: RateLimitsConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(parsed.per_user.rate(), Some(Rate::per_second(10, 20)));
    assert_eq!(parsed.per_township, LimitSetting::Off);
    assert_eq!(parsed.sweep_interval_s, 30);

    let parsed: RateLimitsConfig = serde_yaml_ng::from_str(
        "per_user: { per_minute: 90 }\nper_township: { count: 100, window_s: 10, burst: 5 }",
    )
    .unwrap();
    assert_eq!(parsed.per_user.rate(), Some(Rate::per_minute(90)));
    assert_eq!(
        parsed.per_township.rate(),
        Some(Rate {
            count: 100,
            window_s: 10,
            burst: 5
        })
    );
}

#[test]
fn the_section_rejects_unknown_keys_and_muddled_rates() {
    for bad in [
        "per_users: off",
        "per_user: { per_minute: 10, brust: 5 }",
        "per_user: { per_minute: 10, per_second: 1 }",
        "per_user: { burst: 5 }",
        "per_user: { per_minute: 10, window_s: 60 }",
        "per_user: on",
        "per_user: 120",
    ] {
        assert!(
            serde_yaml_ng::from_str::<RateLimitsConfig>(bad).is_err(),
            "accepted {bad:?}"
        );
    }
    let err = serde_yaml_ng::from_str::<RateLimitsConfig>("per_user: { per_minute: 10, brust: 5 }")
        .unwrap_err()
        .to_string();
    assert!(err.contains("brust"), "{err}");
}

#[test]
fn validate_names_every_zero_by_its_path() {
    let parsed: RateLimitsConfig = serde_yaml_ng::from_str(
        "per_user: { per_minute: 0 }\nper_township: { per_second: 5, burst: 0 }\nsweep_interval_s: 0",
    )
    .unwrap();
    let problems = parsed.validate();
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "per_user.per_minute",
            "per_township.burst",
            "sweep_interval_s"
        ]
    );
    assert!(problems.iter().all(|(_, m)| !m.is_empty()));

    let window: RateLimitsConfig =
        serde_yaml_ng::from_str("per_user: { count: 0, window_s: 0 }").unwrap();
    let paths: Vec<String> = window.validate().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["per_user.window_s", "per_user.count"]);
}

#[test]
fn a_rate_round_trips_through_yaml() {
    for r in [
        Rate::per_second(10, 20),
        Rate::per_minute(120).with_burst(30),
        Rate::per_day(500),
        Rate {
            count: 100,
            window_s: 10,
            burst: 5,
        },
    ] {
        let yaml = serde_yaml_ng::to_string(&r).unwrap();
        assert_eq!(serde_yaml_ng::from_str::<Rate>(&yaml).unwrap(), r, "{yaml}");
    }
    let capacity: Rate = serde_yaml_ng::from_str("{ per_second: 10, burst: 20 }").unwrap();
    assert_eq!(capacity, Rate::per_second(10, 20));
}
