use super::*;
use crate::http::problem::{Problem, ProblemKind};
use governor::clock::FakeRelativeClock;
use std::sync::atomic::AtomicI64;

/// The 429 answer a limit becomes (written by the HTTP layer).
trait AsProblem {
    fn problem(&self) -> Problem;
}

impl AsProblem for Limited {
    fn problem(&self) -> Problem {
        crate::http::error::limited(self)
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// A wall clock the test moves (for daily quotas), in whole seconds.
#[derive(Clone)]
struct Wall(Arc<AtomicI64>);

impl Wall {
    /// Starting at an RFC 3339 time.
    fn at(time: &str) -> Wall {
        let t = DateTime::parse_from_rfc3339(time).unwrap().timestamp();
        Wall(Arc::new(AtomicI64::new(t)))
    }

    fn set(&self, time: &str) {
        let t = DateTime::parse_from_rfc3339(time).unwrap().timestamp();
        self.0.store(t, Ordering::SeqCst);
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.load(Ordering::SeqCst), 0).unwrap()
    }
}

fn config(per_user: LimitSetting, per_township: LimitSetting) -> RateLimitsConfig {
    RateLimitsConfig {
        per_user,
        per_township,
        ..RateLimitsConfig::default()
    }
}

fn limits_with(config: &RateLimitsConfig) -> (Arc<RateLimits>, FakeRelativeClock) {
    let (limits, clock, _wall) = limits_on(config, Arc::new(DayCounts::in_memory()));
    (limits, clock)
}

/// Limits over these daily counts, on a fake clock for buckets and a wall clock at
/// 10:00 CST on Monday 2 March 2026 for daily quotas.
fn limits_on(
    config: &RateLimitsConfig,
    days: Arc<dyn DayCountState>,
) -> (Arc<RateLimits>, FakeRelativeClock, Wall) {
    let clock = FakeRelativeClock::default();
    let state = Arc::new(GovernorState::with_clock(clock.clone()));
    let wall = Wall::at("2026-03-02T10:00:00+08:00");
    let now = wall.clone();
    let limits = RateLimits::new(config, state, days).with_wall_clock(move || now.now());
    (Arc::new(limits), clock, wall)
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

#[tokio::test]
async fn a_user_gets_their_burst_then_waits_for_the_refill() {
    let (limits, clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        assert_eq!(limits.check_caller("u1", None, 1).await, Ok(()));
    }
    let limited = limits.check_caller("u1", None, 1).await.unwrap_err();
    assert_eq!(limited.limit, "user");
    assert_eq!(limited.rate, Rate::per_minute(3));
    assert!(
        (Duration::from_secs(19)..=Duration::from_secs(20)).contains(&limited.retry_after),
        "3 per minute refills one request every 20 s, got {:?}",
        limited.retry_after
    );
    assert!(!limited.is_department());

    clock.advance(limited.retry_after);
    assert_eq!(limits.check_caller("u1", None, 1).await, Ok(()));
    assert!(limits.check_caller("u1", None, 1).await.is_err());
    assert_eq!(refused(&limits, "user"), 2);
}

#[tokio::test]
async fn two_users_do_not_share_a_bucket() {
    let (limits, _clock) = limits_with(&config(rate(Rate::per_minute(1)), LimitSetting::Off));
    assert_eq!(limits.check_caller("u1", Some("T1"), 1).await, Ok(()));
    assert!(limits.check_caller("u1", Some("T1"), 1).await.is_err());
    assert_eq!(limits.check_caller("u2", Some("T1"), 1).await, Ok(()));
}

#[tokio::test]
async fn a_township_bucket_is_shared_by_its_users() {
    let (limits, _clock) = limits_with(&config(LimitSetting::Off, rate(Rate::per_minute(2))));
    assert_eq!(limits.check_caller("u1", Some("T1"), 1).await, Ok(()));
    assert_eq!(limits.check_caller("u2", Some("T1"), 1).await, Ok(()));
    let limited = limits.check_caller("u3", Some("T1"), 1).await.unwrap_err();
    assert_eq!(limited.limit, "township");
    // Another township and a caller without one are not affected.
    assert_eq!(limits.check_caller("u3", Some("T2"), 1).await, Ok(()));
    assert_eq!(limits.check_caller("u4", None, 1).await, Ok(()));
    assert_eq!(refused(&limits, "township"), 1);
}

#[tokio::test]
async fn a_user_over_their_own_limit_does_not_drain_the_township() {
    let (limits, _clock) = limits_with(&config(
        rate(Rate::per_minute(1)),
        rate(Rate::per_minute(3)),
    ));
    assert_eq!(limits.check_caller("noisy", Some("T1"), 1).await, Ok(()));
    for _ in 0..50 {
        assert_eq!(
            limits
                .check_caller("noisy", Some("T1"), 1)
                .await
                .unwrap_err()
                .limit,
            "user"
        );
    }
    // The township's bucket lost only the one request that got through.
    assert_eq!(limits.check_caller("u2", Some("T1"), 1).await, Ok(()));
    assert_eq!(limits.check_caller("u3", Some("T1"), 1).await, Ok(()));
    assert_eq!(refused(&limits, "user"), 50);
    assert_eq!(refused(&limits, "township"), 0);
}

fn per_day(n: u32) -> Quota {
    Quota {
        per_minute: None,
        per_day: Some(n),
        per_user_per_day: None,
    }
}

#[tokio::test]
async fn one_user_cannot_use_up_their_townships_daily_quota() {
    let (limits, _clock, _wall) = limits_on(
        &config(LimitSetting::Off, LimitSetting::Off),
        Arc::new(DayCounts::in_memory()),
    );
    // 10 a day for the township; by default each user may use a fifth of it.
    let quota = per_day(10);
    let grant = |user: &'static str| limits.check_grant("g1", &quota, Some("A"), user);
    for _ in 0..2 {
        assert_eq!(grant("u1").await, Ok(()));
    }
    let limited = grant("u1").await.unwrap_err();
    assert_eq!(limited.limit, "grant:g1:user");
    assert_eq!(limited.rate, Rate::per_day(2));
    // Until midnight, China Standard Time (it is 10:00).
    assert_eq!(limited.retry_after, Duration::from_secs(14 * 3600));
    let problem = limited.problem();
    assert_eq!(problem.body()["limit"], "grant:g1:user");
    assert!(
        problem.detail.contains("your own share"),
        "{}",
        problem.detail
    );
    assert!(problem.detail.contains("midnight"), "{}", problem.detail);
    // Refused over their share, the user took nothing from the township.
    for _ in 0..20 {
        assert!(grant("u1").await.is_err());
    }
    for user in ["u2", "u3", "u4", "u5"] {
        assert_eq!(grant(user).await, Ok(()));
        assert_eq!(grant(user).await, Ok(()));
    }
    // Five users have used the township's 10: the whole is reached.
    let limited = grant("u6").await.unwrap_err();
    assert_eq!(limited.limit, "grant:g1");
    assert_eq!(limited.rate, Rate::per_day(10));
    assert!(!limited.problem().detail.contains("share"));
    // Another township, another grant: their own counts.
    assert_eq!(
        limits.check_grant("g1", &quota, Some("B"), "u9").await,
        Ok(())
    );
    assert_eq!(
        limits.check_grant("g2", &quota, Some("A"), "u1").await,
        Ok(())
    );
    // A user's share is theirs wherever their token places them.
    assert!(
        limits
            .check_grant("g1", &quota, Some("B"), "u1")
            .await
            .is_err()
    );
    assert_eq!(refused(&limits, "grant_user_share"), 22);
    assert_eq!(refused(&limits, "grant"), 1);
}

#[tokio::test]
async fn a_grant_can_set_the_users_share_and_the_default_share_is_configured() {
    let shared = RateLimitsConfig {
        grant_user_share_percent: 50,
        ..config(LimitSetting::Off, LimitSetting::Off)
    };
    let (limits, _clock, _wall) = limits_on(&shared, Arc::new(DayCounts::in_memory()));
    let half = per_day(5);
    for _ in 0..3 {
        assert_eq!(
            limits.check_grant("g1", &half, Some("A"), "u1").await,
            Ok(())
        );
    }
    let limited = limits
        .check_grant("g1", &half, Some("A"), "u1")
        .await
        .unwrap_err();
    assert_eq!(
        (limited.limit.as_str(), limited.rate),
        ("grant:g1:user", Rate::per_day(3))
    );

    let explicit = Quota {
        per_user_per_day: Some(1),
        ..per_day(5)
    };
    assert_eq!(
        limits.check_grant("g2", &explicit, Some("A"), "u1").await,
        Ok(())
    );
    assert!(
        limits
            .check_grant("g2", &explicit, Some("A"), "u1")
            .await
            .is_err()
    );
    // A share without a whole still holds each user.
    let share_only = Quota {
        per_minute: None,
        per_day: None,
        per_user_per_day: Some(1),
    };
    assert_eq!(
        limits.check_grant("g3", &share_only, Some("A"), "u1").await,
        Ok(())
    );
    assert!(
        limits
            .check_grant("g3", &share_only, Some("A"), "u1")
            .await
            .is_err()
    );
    assert_eq!(
        limits.check_grant("g3", &share_only, Some("A"), "u2").await,
        Ok(())
    );
    // A caller without a township is counted alone: the whole day is theirs.
    for _ in 0..5 {
        assert_eq!(limits.check_grant("g1", &half, None, "app").await, Ok(()));
    }
    let limited = limits
        .check_grant("g1", &half, None, "app")
        .await
        .unwrap_err();
    assert_eq!(limited.limit, "grant:g1");
}

#[tokio::test]
async fn a_daily_quota_is_a_calendar_day_in_china_standard_time() {
    let (limits, _clock, wall) = limits_on(
        &config(LimitSetting::Off, LimitSetting::Off),
        Arc::new(DayCounts::in_memory()),
    );
    let quota = Quota {
        per_user_per_day: Some(2),
        ..per_day(2)
    };
    let grant = || limits.check_grant("g1", &quota, Some("A"), "u1");
    assert_eq!(grant().await, Ok(()));
    assert_eq!(grant().await, Ok(()));
    // 23:59:59 CST (15:59:59 UTC): still the same day, one second to go.
    wall.set("2026-03-02T15:59:59Z");
    let limited = grant().await.unwrap_err();
    assert_eq!(limited.retry_after, Duration::from_secs(1));
    assert_eq!(limited.retry_after_s(), 1);
    // Midnight CST: a new day, whatever the UTC date.
    wall.set("2026-03-02T16:00:00Z");
    assert_eq!(grant().await, Ok(()));
    assert_eq!(grant().await, Ok(()));
    assert!(grant().await.is_err());
    // Yesterday's counts are forgotten by the sweep; today's stay.
    assert_eq!(limits.day_counters(), 1);
    limits.sweep();
    assert_eq!(limits.day_counters(), 1);
    wall.set("2026-03-03T16:00:00Z");
    limits.sweep();
    assert_eq!(limits.day_counters(), 0);
}

#[tokio::test]
async fn refusals_for_speed_do_not_spend_the_daily_quota() {
    let (limits, clock) = limits_with(&config(LimitSetting::Off, LimitSetting::Off));
    let quota = Quota {
        per_minute: Some(1),
        per_day: Some(3),
        per_user_per_day: Some(3),
    };
    for _ in 0..3 {
        assert_eq!(
            limits.check_grant("g1", &quota, Some("A"), "u1").await,
            Ok(())
        );
        for _ in 0..10 {
            let limited = limits
                .check_grant("g1", &quota, Some("A"), "u1")
                .await
                .unwrap_err();
            assert_eq!(limited.rate, Rate::per_minute(1));
        }
        clock.advance(MINUTE);
    }
    let limited = limits
        .check_grant("g1", &quota, Some("A"), "u1")
        .await
        .unwrap_err();
    assert_eq!(limited.rate, Rate::per_day(3));
}

#[tokio::test]
async fn a_request_is_counted_in_department_lookups() {
    let (limits, clock) = limits_with(&config(
        rate(Rate::per_minute(10)),
        rate(Rate::per_minute(100)),
    ));
    // A form of 6 lookups, then another: 4 are left, it needs 6.
    assert_eq!(limits.check_caller("u1", Some("T1"), 6).await, Ok(()));
    let limited = limits.check_caller("u1", Some("T1"), 6).await.unwrap_err();
    assert_eq!(limited.limit, "user");
    assert_eq!(limited.cost, 6);
    // 10 a minute is one every 6 s; two more are needed.
    assert_eq!(limited.retry_after, Duration::from_secs(12));
    let problem = limited.problem();
    assert_eq!(problem.body()["lookups"], 6);
    assert!(
        problem.detail.contains("6 department lookups"),
        "{}",
        problem.detail
    );
    // A refused form took nothing: after 12 s it fits exactly.
    clock.advance(Duration::from_secs(12));
    assert_eq!(limits.check_caller("u1", Some("T1"), 6).await, Ok(()));
    assert!(limits.check_caller("u1", Some("T1"), 1).await.is_err());
    // The township counted 12 lookups: 88 are left for everyone else.
    assert_eq!(limits.check_caller("u2", Some("T1"), 10).await, Ok(()));
    // A lookup counts one, and zero is read as one.
    clock.advance(MINUTE);
    for _ in 0..10 {
        assert_eq!(limits.check_caller("u1", None, 0).await, Ok(()));
    }
    assert!(limits.check_caller("u1", None, 1).await.is_err());
}

#[tokio::test]
async fn a_request_bigger_than_the_burst_never_fits_and_says_so() {
    let (limits, _clock) = limits_with(&config(rate(Rate::per_minute(10)), LimitSetting::Off));
    let limited = limits.check_caller("u1", None, 11).await.unwrap_err();
    assert_eq!(limited.limit, "user");
    assert_eq!(limited.retry_after, MINUTE);
    let detail = limited.problem().detail;
    assert!(detail.contains("11 department lookups at once"), "{detail}");
    assert!(detail.contains("raise its burst"), "{detail}");
    // It took nothing.
    assert_eq!(limits.check_caller("u1", None, 10).await, Ok(()));
}

#[tokio::test]
async fn connector_capacity_is_the_departments_protection() {
    let (limits, _clock) = limits_with(&RateLimitsConfig::default());
    let capacity = Rate::per_second(2, 2);
    assert_eq!(limits.check_connector("hukou", capacity).await, Ok(()));
    assert_eq!(limits.check_connector("hukou", capacity).await, Ok(()));
    let limited = limits.check_connector("hukou", capacity).await.unwrap_err();
    assert!(limited.is_department());
    assert_eq!(limited.limit, "connector:hukou");
    // Counted across all callers, per connector.
    assert_eq!(limits.check_connector("shebao", capacity).await, Ok(()));

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

#[tokio::test]
async fn the_429_for_a_user_says_when_to_retry_and_names_no_one() {
    let secret_user = "sub-3301021985-li-lei";
    let (limits, _clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        limits
            .check_caller(secret_user, Some("330102001"), 1)
            .await
            .unwrap();
    }
    let problem = limits
        .check_caller(secret_user, Some("330102001"), 1)
        .await
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
        cost: 1,
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
        cost: 1,
    }
    .problem();
    assert_eq!(
        header(&problem, "ratelimit-policy"),
        r#""grant:%E4%B9%A1%E9%95%87\"x\\";q=10;w=86400"#
    );
    assert_eq!(problem.body()["limit"], "grant:乡镇\"x\\");
}

#[tokio::test]
async fn sweeping_bounds_the_state_to_active_callers() {
    let (limits, clock) = limits_with(&RateLimitsConfig::default());
    for i in 0..100_000 {
        limits
            .check_caller(&format!("user-{i}"), None, 1)
            .await
            .unwrap();
    }
    assert_eq!(limits.buckets(), 100_000);
    // Not yet back to full: nothing may be forgotten.
    assert_eq!(limits.sweep(), 100_000);
    clock.advance(MINUTE + Duration::from_secs(1));
    assert_eq!(limits.sweep(), 0);
    assert_eq!(limits.buckets(), 0);
}

#[tokio::test]
async fn sweeping_never_gives_anyone_extra_requests() {
    let (limits, clock) = limits_with(&config(rate(Rate::per_minute(3)), LimitSetting::Off));
    for _ in 0..3 {
        limits.check_caller("u1", None, 1).await.unwrap();
    }
    clock.advance(Duration::from_secs(10));
    assert_eq!(limits.sweep(), 1);
    assert_eq!(
        limits.check_caller("u1", None, 1).await.unwrap_err().limit,
        "user"
    );
}

#[tokio::test]
async fn the_sweeper_sweeps_and_stops_with_its_limits() {
    let clock = FakeRelativeClock::default();
    let state = Arc::new(GovernorState::with_clock(clock.clone()));
    let limits = Arc::new(RateLimits::new(
        &RateLimitsConfig::default(),
        Arc::clone(&state) as Arc<dyn LimiterState>,
        Arc::new(DayCounts::in_memory()),
    ));
    for i in 0..10 {
        limits
            .check_caller(&format!("user-{i}"), None, 1)
            .await
            .unwrap();
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

#[tokio::test]
async fn zero_rates_do_not_panic_and_are_off() {
    let zero = RateLimitsConfig {
        per_user: rate(Rate::per_minute(0)),
        per_township: rate(Rate {
            count: 5,
            window_s: 0,
            burst: 0,
        }),
        grant_user_share_percent: 0,
        sweep_interval_s: 0,
        ..RateLimitsConfig::default()
    };
    let (limits, _clock) = limits_with(&zero);
    for _ in 0..100 {
        assert_eq!(limits.check_caller("u1", Some("T1"), 1).await, Ok(()));
        assert_eq!(
            limits
                .check_grant(
                    "g",
                    &Quota {
                        per_minute: Some(0),
                        per_day: Some(0),
                        per_user_per_day: Some(0),
                    },
                    Some("T1"),
                    "u1"
                )
                .await,
            Ok(())
        );
        assert_eq!(
            limits.check_connector("c", Rate::per_second(0, 0)).await,
            Ok(())
        );
    }
    assert_eq!(limits.buckets(), 0);
    assert_eq!(limits.day_counters(), 0);
    // A zero burst alone is read as 1.
    assert_eq!(
        limits.check_connector("c", Rate::per_second(1, 0)).await,
        Ok(())
    );
    assert!(
        limits
            .check_connector("c", Rate::per_second(1, 0))
            .await
            .is_err()
    );
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

#[test]
fn the_users_default_share_is_configured_and_checked() {
    let parsed: RateLimitsConfig = serde_yaml_ng::from_str("grant_user_share_percent: 25").unwrap();
    assert_eq!(parsed.grant_user_share_percent, 25);
    assert_eq!(RateLimitsConfig::default().grant_user_share_percent, 20);
    for bad in [0, 101] {
        let problems = RateLimitsConfig {
            grant_user_share_percent: bad,
            ..RateLimitsConfig::default()
        }
        .validate();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["grant_user_share_percent"], "{bad}");
    }
}

#[test]
fn a_form_bigger_than_a_burst_is_named_with_the_limit_to_raise() {
    let config = RateLimitsConfig::default();
    assert_eq!(config.too_small_for(30), []);
    let problems = config.too_small_for(31);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "rate_limits.per_user.burst");
    assert!(
        problems[0].1.contains("31 department lookups"),
        "{}",
        problems[0].1
    );
    let off = RateLimitsConfig {
        per_user: LimitSetting::Off,
        ..RateLimitsConfig::default()
    };
    assert_eq!(off.too_small_for(200), []);
    let paths: Vec<String> = off.too_small_for(201).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["rate_limits.per_township.burst"]);
}

#[tokio::test]
async fn a_request_the_township_refuses_costs_the_user_nothing() {
    let (limits, _clock) = limits_with(&config(
        rate(Rate::per_minute(2)),
        rate(Rate::per_minute(1)),
    ));
    limits.check_caller("u1", Some("T1"), 1).await.unwrap();
    // The township is empty: u2's request is refused whole.
    let limited = limits.check_caller("u2", Some("T1"), 1).await.unwrap_err();
    assert_eq!(limited.limit, "township");
    // u2's own bucket was not taken: both of its requests fit elsewhere.
    limits.check_caller("u2", Some("T2"), 1).await.unwrap();
    limits.check_caller("u2", Some("T3"), 1).await.unwrap();
    assert_eq!(
        limits
            .check_caller("u2", Some("T4"), 1)
            .await
            .unwrap_err()
            .limit,
        "user"
    );
}

#[tokio::test]
async fn a_lookup_the_daily_quota_refuses_gives_back_its_minute() {
    let (limits, _clock) = limits_with(&config(LimitSetting::Off, LimitSetting::Off));
    let day = Quota {
        per_minute: Some(2),
        ..per_day(1)
    };
    let minute_only = Quota {
        per_minute: Some(2),
        per_day: None,
        per_user_per_day: None,
    };
    limits
        .check_grant("g1", &day, Some("A"), "u1")
        .await
        .unwrap();
    let limited = limits
        .check_grant("g1", &day, Some("A"), "u1")
        .await
        .unwrap_err();
    assert_eq!(limited.rate, Rate::per_day(1));
    // The refused lookup's minute was given back: the minute still has one.
    limits
        .check_grant("g1", &minute_only, Some("A"), "u1")
        .await
        .unwrap();
    assert_eq!(
        limits
            .check_grant("g1", &minute_only, Some("A"), "u1")
            .await
            .unwrap_err()
            .rate,
        Rate::per_minute(2)
    );
}

#[tokio::test]
async fn limit_keys_reach_the_stores_hashed() {
    let days = Arc::new(DayCounts::in_memory());
    let (limits, _clock, _wall) =
        limits_on(&config(LimitSetting::Off, LimitSetting::Off), days.clone());
    limits
        .check_grant("g1", &per_day(5), Some("330102001"), "zhang.wei")
        .await
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let clear = "grant:2:g1:township:330102001";
    assert_eq!(days.count(day, clear), 0);
    assert_eq!(days.len(), 2, "the township's whole and the user's share");
}
