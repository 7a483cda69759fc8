//! The Redis limits against a real Redis (`GATEWAY_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`; skipped when none answers): two replicas share exact
//! limits and counts, takes are all or none, keys expire, an unreachable Redis falls
//! back to the local share or refuses, and the password never shows. Each test keys
//! under a prefix of its own. Counts, not timing: the rates are per minute or per day,
//! so the little time a test takes moves nothing.

use super::*;
use crate::limits::{LimitsBackend, RateLimits, RateLimitsConfig};
use crate::policy::Quota;
use crate::secrets::ServerUrl;

fn redis_url() -> String {
    std::env::var("GATEWAY_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The test Redis's address when it answers, else `None` (after saying so).
async fn test_redis(test: &str) -> Option<String> {
    let url = redis_url();
    let host_port = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    match tokio::net::TcpStream::connect(&host_port).await {
        Ok(_) => Some(url),
        Err(_) => {
            testkit::skip(test, &format!("no Redis at {host_port}"), true);
            None
        }
    }
}

/// Settings for `url` under a key prefix no other test uses.
fn settings(url: &str) -> RedisSettings {
    let mut settings = RedisSettings::new(ServerUrl::literal(url));
    settings.key_prefix = format!("t{}", hex::encode(rand::random::<[u8; 8]>()));
    settings
}

/// An address where nothing listens.
fn closed_port_url(password: Option<&str>) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match password {
        Some(p) => format!("redis://gw:{p}@127.0.0.1:{port}/0"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

async fn connect(settings: &RedisSettings) -> RedisLimits {
    RedisLimits::connect(settings, Path::new("."))
        .await
        .unwrap()
}

async fn raw(url: &str) -> ::redis::aio::MultiplexedConnection {
    Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()
}

async fn take(limits: &RedisLimits, key: &str, rate: Rate, n: u32) -> Result<(), Refusal> {
    limits.take_all(&[Take { key, rate, n }]).await
}

async fn count(limits: &RedisLimits, counters: &[DayCounter<'_>]) -> Result<(), usize> {
    DayCountState::take(limits, day(), counters, 1).await
}

#[tokio::test]
async fn two_replicas_admit_exactly_n_of_a_per_minute_limit_between_them() {
    let Some(url) =
        test_redis("two_replicas_admit_exactly_n_of_a_per_minute_limit_between_them").await
    else {
        return;
    };
    let settings = settings(&url);
    let (one, two) = (connect(&settings).await, connect(&settings).await);
    let rate = Rate::per_minute(4);
    let mut admitted = [0; 2];
    for i in 0..12 {
        let replica = if i % 2 == 0 { &one } else { &two };
        if take(replica, "user-hash", rate, 1).await.is_ok() {
            admitted[i % 2] += 1;
        }
    }
    assert_eq!(admitted.iter().sum::<u32>(), 4, "{admitted:?}");
    assert_eq!(admitted, [2, 2]);
    assert!(!one.degraded() && !two.degraded());
    assert_eq!(one.fallback_takes() + two.fallback_takes(), 0);
    // A refusal says how long until one more would fit: within the minute.
    let refused = take(&two, "user-hash", rate, 1).await.unwrap_err();
    assert_eq!(refused.index, 0);
    assert!(
        refused.retry_after <= Duration::from_secs(15),
        "{refused:?}"
    );
    assert!(refused.retry_after > Duration::from_secs(10), "{refused:?}");
}

#[tokio::test]
async fn a_refused_take_leaves_the_others_untouched() {
    let Some(url) = test_redis("a_refused_take_leaves_the_others_untouched").await else {
        return;
    };
    let limits = connect(&settings(&url)).await;
    let (three, one) = (Rate::per_day(3), Rate::per_day(1));
    take(&limits, "b", one, 1).await.unwrap();
    let both = [
        Take {
            key: "a",
            rate: three,
            n: 1,
        },
        Take {
            key: "b",
            rate: one,
            n: 1,
        },
    ];
    for _ in 0..3 {
        let refused = limits.take_all(&both).await.unwrap_err();
        assert_eq!(refused.index, 1);
        // One per day comes back a day after it was taken.
        assert!(
            refused.retry_after > Duration::from_secs(86_390),
            "{refused:?}"
        );
        assert!(
            refused.retry_after <= Duration::from_secs(86_400),
            "{refused:?}"
        );
    }
    // `a` was never taken: all three of its requests are there, at once.
    take(&limits, "a", three, 3).await.unwrap();
    assert_eq!(take(&limits, "a", three, 1).await.unwrap_err().index, 0);
    // More than a burst never fits: the whole window, and nothing taken.
    let beyond = take(&limits, "c", three, 4).await.unwrap_err();
    assert_eq!(beyond.retry_after, Duration::from_secs(86_400));
    take(&limits, "c", three, 3).await.unwrap();
    // A rate that is off takes nothing and refuses nothing.
    let off = Rate { count: 0, ..three };
    for _ in 0..5 {
        take(&limits, "d", off, 1).await.unwrap();
    }
}

#[tokio::test]
async fn the_same_bucket_twice_in_one_take_counts_twice() {
    let Some(url) = test_redis("the_same_bucket_twice_in_one_take_counts_twice").await else {
        return;
    };
    let limits = connect(&settings(&url)).await;
    let rate = Rate::per_day(3);
    let twice = [
        Take {
            key: "k",
            rate,
            n: 1,
        },
        Take {
            key: "k",
            rate,
            n: 1,
        },
    ];
    limits.take_all(&twice).await.unwrap();
    assert_eq!(limits.take_all(&twice).await.unwrap_err().index, 1);
    take(&limits, "k", rate, 1).await.unwrap();
    take(&limits, "k", rate, 1).await.unwrap_err();
}

#[tokio::test]
async fn day_counts_are_exact_across_replicas_and_all_or_none() {
    let Some(url) = test_redis("day_counts_are_exact_across_replicas_and_all_or_none").await else {
        return;
    };
    let settings = settings(&url);
    let (one, two) = (connect(&settings).await, connect(&settings).await);
    let counters = |share| {
        [
            DayCounter {
                key: share,
                limit: 2,
            },
            DayCounter {
                key: "whole",
                limit: 3,
            },
        ]
    };
    let (u1, u2) = (counters("share-1"), counters("share-2"));
    assert_eq!(count(&one, &u1).await, Ok(()));
    assert_eq!(count(&two, &u1).await, Ok(()));
    // User 1's share is used up (across both replicas): the whole does not move.
    assert_eq!(count(&one, &u1).await, Err(0));
    assert_eq!(count(&two, &u1).await, Err(0));
    assert_eq!(count(&two, &u2).await, Ok(()));
    // The whole is used up: user 2's share does not move.
    assert_eq!(count(&one, &u2).await, Err(1));
    assert_eq!(count(&two, &u2).await, Err(1));
    let mut conn = raw(&url).await;
    let get = |key: &str| ::redis::cmd("GET").arg(one.day_key(day(), key)).to_owned();
    let whole: u32 = get("whole").query_async(&mut conn).await.unwrap();
    let share_1: u32 = get("share-1").query_async(&mut conn).await.unwrap();
    let share_2: u32 = get("share-2").query_async(&mut conn).await.unwrap();
    assert_eq!((whole, share_1, share_2), (3, 2, 1));
    // Each replica knows the counts Redis last gave it.
    assert_eq!(two.count(day(), "whole"), 3);
    assert_eq!(one.count(day(), "share-1"), 2);
    // Another day starts from 0.
    let tomorrow = day().succ_opt().unwrap();
    assert_eq!(DayCountState::take(&one, tomorrow, &u1, 1).await, Ok(()));
    assert_eq!(one.count(tomorrow, "whole"), 1);
    // `n` at once, all or none.
    let fresh = [DayCounter {
        key: "n-at-once",
        limit: 5,
    }];
    assert_eq!(DayCountState::take(&two, day(), &fresh, 6).await, Err(0));
    assert_eq!(DayCountState::take(&two, day(), &fresh, 5).await, Ok(()));
    assert_eq!(two.count(day(), "n-at-once"), 5);
    assert!(one.flush().await.is_ok() && one.ready().await.is_ok());
    // Sweeping forgets what Redis said of past days.
    assert!(DayCountState::sweep(&one, tomorrow) <= 3);
    assert_eq!(one.count(day(), "share-1"), 0);
}

#[tokio::test]
async fn give_back_returns_capacity() {
    let Some(url) = test_redis("give_back_returns_capacity").await else {
        return;
    };
    let limits = connect(&settings(&url)).await;
    let rate = Rate::per_day(2);
    let one = [Take {
        key: "k",
        rate,
        n: 1,
    }];
    limits.take_all(&one).await.unwrap();
    limits.take_all(&one).await.unwrap();
    limits.take_all(&one).await.unwrap_err();
    limits.give_back(&one).await;
    limits.take_all(&one).await.unwrap();
    limits.take_all(&one).await.unwrap_err();
    // Never beyond full: giving back more than was taken leaves the burst at 2.
    for _ in 0..5 {
        limits.give_back(&one).await;
    }
    limits.take_all(&one).await.unwrap();
    limits.take_all(&one).await.unwrap();
    limits.take_all(&one).await.unwrap_err();
    // A bucket back to full is gone from Redis.
    let fresh = [Take {
        key: "given",
        rate,
        n: 1,
    }];
    limits.take_all(&fresh).await.unwrap();
    limits.give_back(&fresh).await;
    let mut conn = raw(&url).await;
    let exists: u32 = ::redis::cmd("EXISTS")
        .arg(limits.bucket_key("given", rate))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn keys_carry_their_time_to_live() {
    let Some(url) = test_redis("keys_carry_their_time_to_live").await else {
        return;
    };
    let settings = settings(&url);
    let limits = connect(&settings).await;
    let (minute, per_day) = (Rate::per_minute(5), Rate::per_day(5));
    take(&limits, "m", minute, 1).await.unwrap();
    take(&limits, "d", per_day, 2).await.unwrap();
    count(&limits, &[DayCounter { key: "c", limit: 9 }])
        .await
        .unwrap();
    let mut conn = raw(&url).await;
    let pttl = |key: String| ::redis::cmd("PTTL").arg(key).to_owned();
    let m: i64 = pttl(limits.bucket_key("m", minute))
        .query_async(&mut conn)
        .await
        .unwrap();
    // A bucket lives until it is full again: one request's worth of its window.
    assert!(m > 0 && m <= 12_000, "{m}");
    let d: i64 = pttl(limits.bucket_key("d", per_day))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(d > 0 && d <= 2 * 86_400_000 / 5, "{d}");
    let c: i64 = pttl(limits.day_key(day(), "c"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(c > 86_400_000 && c <= 2 * 86_400_000, "{c}");
    // Every key is under the prefix, keyed by the caller's hash only.
    let prefix = format!("{{{}}}:", settings.key_prefix);
    assert_eq!(
        limits.bucket_key("m", minute),
        format!("{prefix}b:5/60/5:m")
    );
    assert_eq!(
        limits.day_key(day(), "c"),
        format!("{prefix}d:2026-12-06:c")
    );
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_this_replicas_share() {
    let mut settings = settings(&closed_port_url(None));
    settings.replicas = 2;
    settings.timeout_ms = 50;
    settings.connect_timeout_ms = 200;
    let limits = connect(&settings).await;
    assert!(limits.degraded());
    assert_eq!(limits.outages(), 1);
    let rate = Rate::per_day(10);
    let mut admitted = 0;
    for _ in 0..20 {
        if take(&limits, "k", rate, 1).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "limit ÷ replicas");
    // A burst beyond the share is refused whole.
    assert!(take(&limits, "big", Rate::per_day(10), 6).await.is_err());
    let counter = [DayCounter {
        key: "c",
        limit: 10,
    }];
    let mut counted = 0;
    for _ in 0..20 {
        if count(&limits, &counter).await.is_ok() {
            counted += 1;
        }
    }
    assert_eq!(counted, 5, "limit ÷ replicas");
    assert_eq!(limits.count(day(), "c"), 5);
    assert!(limits.fallback_takes() >= 40);
    // Still one outage, and the replica stays ready: the fallback is a limit too.
    assert_eq!(limits.outages(), 1);
    assert!(limits.ready().await.is_ok());
    // A share is never 0 while the limit allows anything.
    assert_eq!(share_of(Rate::per_minute(1), 3), Rate::per_minute(1));
    assert_eq!(
        share_of(Rate::per_minute(120).with_burst(30), 3),
        Rate::per_minute(40).with_burst(10)
    );
    assert_eq!(day_share(10, 0, 3), 3);
    assert_eq!(day_share(10, 9, 3), 1);
    assert_eq!(day_share(10, 10, 3), 0);
}

#[tokio::test]
async fn the_closed_fallback_refuses_every_take() {
    let mut settings = settings(&closed_port_url(None));
    settings.fallback = Fallback::Closed;
    settings.timeout_ms = 50;
    settings.connect_timeout_ms = 200;
    let limits = connect(&settings).await;
    assert!(limits.degraded());
    let refused = take(&limits, "k", Rate::per_day(10), 1).await.unwrap_err();
    assert!(refused.is_unavailable());
    assert!(refused.retry_after >= Duration::from_secs(1));
    let counter = [DayCounter {
        key: "c",
        limit: 10,
    }];
    assert_eq!(count(&limits, &counter).await, Err(daily::UNAVAILABLE));
    // Still ready: every request gets the clear 503, not a load balancer's page.
    assert!(limits.ready().await.is_ok());
    // Through the gateway's limits: a refusal that names no limit of the caller.
    let gateway = RateLimits::new(
        &RateLimitsConfig::default(),
        Arc::new(limits.clone()),
        Arc::new(limits.clone()),
    );
    let limited = gateway.check_caller("u", Some("t"), 1).await.unwrap_err();
    assert!(limited.is_unavailable(), "{limited:?}");
    let quota = Quota {
        per_minute: None,
        per_day: Some(100),
        per_user_per_day: None,
    };
    let limited = gateway
        .check_grant("g", &quota, Some("t"), "u")
        .await
        .unwrap_err();
    assert!(limited.is_unavailable(), "{limited:?}");
    assert_eq!(gateway.refused().iter().map(|(_, n)| n).sum::<u64>(), 0);
}

#[tokio::test]
async fn limits_are_exact_again_when_redis_returns() {
    let Some(url) = test_redis("limits_are_exact_again_when_redis_returns").await else {
        return;
    };
    let target = url.trim_start_matches("redis://").trim_end_matches('/');
    let forwarder = testkit::services::Cuttable::start(target).await;
    let mut settings = settings(&format!("redis://{}", forwarder.addr()));
    settings.replicas = 3;
    settings.timeout_ms = 200;
    settings.probe_interval_ms = 20;
    let limits = connect(&settings).await;
    let rate = Rate::per_day(6);
    take(&limits, "k", rate, 1).await.unwrap();
    forwarder.cut();
    // Redis is away: this replica's share (6 ÷ 3), on its own.
    let mut admitted = 0;
    for _ in 0..5 {
        if take(&limits, "k", rate, 1).await.is_ok() {
            admitted += 1;
        }
    }
    assert!(limits.degraded());
    assert_eq!(admitted, 2);
    assert_eq!(limits.outages(), 1);
    forwarder.restore();
    let mut waited = 0;
    while limits.degraded() {
        waited += 1;
        assert!(waited < 1_000, "the replica never found Redis back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redis's count again: 1 of 6 taken before the cut.
    let mut admitted = 0;
    for _ in 0..10 {
        if take(&limits, "k", rate, 1).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    assert_eq!(limits.outages(), 1);
}

#[tokio::test]
async fn the_password_never_shows() {
    let password = "s3cretpw";
    let mut settings = settings(&closed_port_url(Some(password)));
    settings.timeout_ms = 50;
    settings.connect_timeout_ms = 200;
    assert!(!format!("{settings:?}").contains(password));
    let config = RateLimitsConfig {
        backend: LimitsBackend::Redis,
        redis: Some(settings.clone()),
        ..RateLimitsConfig::default()
    };
    assert!(!format!("{config:?}").contains(password));
    let unreachable = check(&settings, Path::new("."))
        .await
        .unwrap_err()
        .to_string();
    assert!(unreachable.contains("unreachable"), "{unreachable}");
    assert!(unreachable.contains("gw:***@127.0.0.1"), "{unreachable}");
    assert!(!unreachable.contains(password), "{unreachable}");
    let limits = connect(&settings).await;
    assert!(!format!("{limits:?}").contains(password));
    let not_ready = limits.ready().await;
    assert!(not_ready.is_ok());
    // A password the server refuses (the test Redis has none): an error, not a
    // fallback, and the password is not in it.
    let Some(url) = test_redis("the_password_never_shows").await else {
        return;
    };
    let host = url.trim_start_matches("redis://");
    let wrong = settings_for(&format!("redis://gw:{password}@{host}"));
    let refused = RedisLimits::connect(&wrong, Path::new("."))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("authentication failed"), "{refused}");
    assert!(!refused.contains(password), "{refused}");
    let checked = check(&wrong, Path::new(".")).await.unwrap_err().to_string();
    assert!(checked.contains("authentication failed"), "{checked}");
    assert!(!checked.contains(password), "{checked}");
    // And a Redis that answers passes the check.
    let fine = check(&settings_for(&url), Path::new(".")).await.unwrap();
    assert!(fine.contains("answers"), "{fine}");
}

fn settings_for(url: &str) -> RedisSettings {
    settings(url)
}

#[test]
fn the_redis_section_is_read_and_checked() {
    let yaml =
        "backend: redis\nredis:\n  url_env: GATEWAY_REDIS_URL\n  replicas: 3\n  fallback: closed\n";
    let config: RateLimitsConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(config.validate(), []);
    let redis = config.redis().unwrap();
    assert_eq!(redis.server.url_env.as_deref(), Some("GATEWAY_REDIS_URL"));
    assert_eq!(
        (redis.replicas, redis.fallback, redis.timeout_ms),
        (3, Fallback::Closed, 100)
    );
    assert_eq!(redis.key_prefix, "gw");
    // The default is local, and `redis:` alone does not switch to it.
    let local: RateLimitsConfig =
        serde_yaml_ng::from_str("redis: { url: 'redis://h:6379' }").unwrap();
    assert_eq!(local.backend, LimitsBackend::Local);
    assert!(local.redis().is_none());
    let paths = |yaml: &str| -> Vec<String> {
        serde_yaml_ng::from_str::<RateLimitsConfig>(yaml)
            .unwrap()
            .validate()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    };
    assert_eq!(paths("backend: redis"), ["redis"]);
    assert_eq!(
        paths("backend: redis\nredis: { timeout_ms: 100 }"),
        ["redis.url"]
    );
    assert_eq!(
        paths("backend: redis\nredis: { url: 'redis://h', url_env: X }"),
        ["redis.url"]
    );
    assert_eq!(
        paths("backend: redis\nredis: { url: 'postgres://h' }"),
        ["redis.url"]
    );
    assert_eq!(
        paths(
            "backend: redis\nredis: { url: 'redis://h', timout_ms: 5, replicas: 0, \
             key_prefix: 'a b', timeout_ms: 0, connect_timeout_ms: 1 }"
        ),
        [
            "redis.timeout_ms",
            "redis.connect_timeout_ms",
            "redis.replicas",
            "redis.key_prefix",
            "redis.timout_ms"
        ]
    );
    assert!(serde_yaml_ng::from_str::<RateLimitsConfig>("backend: memcached").is_err());
    assert!(
        serde_yaml_ng::from_str::<RateLimitsConfig>(
            "backend: redis\nredis: { url: 'redis://h', fallback: open }"
        )
        .is_err()
    );
}
