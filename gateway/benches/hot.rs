//! Criterion micro-benches of the hot functions of a lookup: the token check (cached
//! and not), the policy decision (with the demo policies, and with 10 vs 10,000
//! grants), the schema check, each mask, one durable audit append, and the offline
//! chain verification.
//!
//! `cargo bench -p gateway --bench hot` (add `-- --quick` for a short run).

// Benches are test code: a fixture that cannot be built should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gateway::audit::{AuditLog, AuditOptions, SqliteAudit, verify};
use gateway::auth::Authenticator;
use gateway::demo::{self, PERSONAS};
use gateway::mask::{AddressLevel, Mask, MaskContext};
use http::{HeaderMap, HeaderValue, Uri, header::AUTHORIZATION};
use serde_json::Value;

use common::{CONNECTOR, County, OPERATION, PURPOSE, today};

/// A runtime like the server's (multi-threaded), for the async parts.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header"),
    );
    headers
}

/// Tokens minted ahead, so an uncached check measures verification, not signing.
const UNCACHED_POOL: usize = 2_000;

fn token_check(c: &mut Criterion) {
    let rt = runtime();
    let county = rt.block_on(County::start());
    let uri: Uri = "/v1/query".parse().expect("a uri");
    let mut group = c.benchmark_group("token_check");

    // The same token again and again: SHA-256 of the token and a cache hit.
    let headers = bearer(&county.token);
    group.bench_function("cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let caller = county.authenticator.authenticate(&headers, &uri).await;
                    black_box(caller.expect("verified"));
                }
                started.elapsed()
            })
        });
    });

    // A token never seen before each time: parse, ES256 signature, claims, insert.
    // Each token is used once per authenticator; a fresh authenticator (empty cache)
    // is built, untimed, whenever the pool is used up.
    let pool: Vec<HeaderMap> = (0..UNCACHED_POOL)
        .map(|_| bearer(&demo::persona_token(&county.issuer, &PERSONAS[0]).expect("a token")))
        .collect();
    group.bench_function("uncached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let authenticator = Authenticator::new(&county.cfg.auth, county.dir.path())
                        .await
                        .expect("the issuer loads");
                    let n = left.min(UNCACHED_POOL as u64);
                    let started = Instant::now();
                    for headers in pool.iter().take(n as usize) {
                        let caller = authenticator.authenticate(headers, &uri).await;
                        black_box(caller.expect("verified"));
                    }
                    total += started.elapsed();
                    left -= n;
                }
                total
            })
        });
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let rt = runtime();
    let county = rt.block_on(County::start());
    let caller = &*county.caller;
    let leaves = county.leaves();
    let tree = county.tree();
    let ctx = MaskContext {
        key: &county.pseudonym,
        today: today(),
    };
    let mut group = c.benchmark_group("policy");

    // One whole decision with the demo policies: plan, then check, minimize and mask.
    let demo = &county.cfg.policies;
    group.bench_function("decide_apply_demo", |b| {
        b.iter(|| {
            let plan = demo
                .decide(caller, CONNECTOR, OPERATION, leaves, PURPOSE, today())
                .expect("planned");
            black_box(
                plan.apply(
                    black_box(&county.record),
                    caller,
                    tree,
                    &ctx,
                    gateway::policy::Outside::NOWHERE,
                )
                .expect("applied"),
            )
        });
    });

    for total in [10, 10_000] {
        let set = county.padded_policies(total);
        assert_eq!(set.grants().len(), total);
        group.bench_function(format!("decide_{total}_grants"), |b| {
            b.iter(|| {
                black_box(
                    set.decide(caller, CONNECTOR, OPERATION, leaves, PURPOSE, today())
                        .expect("planned"),
                )
            });
        });
    }
    group.finish();
}

fn schema(c: &mut Criterion) {
    let rt = runtime();
    let county = rt.block_on(County::start());
    let schema = &county.cfg.connectors[CONNECTOR].operations[OPERATION].schema;
    c.bench_function("schema/hukou_person_check", |b| {
        b.iter(|| schema.check(black_box(&county.record)).expect("valid"));
    });
}

fn masks(c: &mut Criterion) {
    let rt = runtime();
    let county = rt.block_on(County::start());
    let ctx = MaskContext {
        key: &county.pseudonym,
        today: today(),
    };
    let field = |name: &str| county.record[name].clone();
    let cases: [(&str, Mask, Value); 6] = [
        ("keep", Mask::Keep, field("name")),
        ("name", Mask::Name, field("name")),
        (
            "id_number",
            Mask::IdNumber { first: 6, last: 4 },
            field("id_number"),
        ),
        (
            "address_to",
            Mask::AddressTo(AddressLevel::Village),
            field("address"),
        ),
        ("date_year", Mask::DateYear, field("birth_date")),
        ("pseudonym", Mask::Pseudonym, field("id_number")),
    ];
    let mut group = c.benchmark_group("mask");
    for (name, mask, value) in &cases {
        assert!(!mask.apply(value, &ctx).is_null(), "{name} masks the value");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(mask.apply(black_box(value), &ctx)));
        });
    }
    group.finish();
}

fn audit(c: &mut Criterion) {
    let rt = runtime();
    let county = rt.block_on(County::start());
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = SqliteAudit::open(dir.path(), AuditOptions::default()).expect("the log opens");
    let mut group = c.benchmark_group("audit");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));

    // One appender: every append waits for its own commit (WAL, synchronous=FULL).
    group.bench_function("append_single_durable", |b| {
        b.iter_batched(
            || county.lookup_event(),
            |event| rt.block_on(log.append(event)).expect("recorded"),
            BatchSize::SmallInput,
        );
    });
    rt.block_on(log.shutdown());

    // The offline check of a whole log (`gateway audit verify`).
    const EVENTS: u64 = 20_000;
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = SqliteAudit::open(dir.path(), AuditOptions::default()).expect("the log opens");
    rt.block_on(fill(&log, &county, EVENTS));
    rt.block_on(log.shutdown());
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(format!("verify_{EVENTS}_events"), |b| {
        b.iter(|| {
            let report = verify(dir.path()).expect("the log verifies");
            assert_eq!(report.events, EVENTS);
        });
    });
    group.finish();
}

/// Appends `events` events with many concurrent appenders (as the server does).
async fn fill(log: &SqliteAudit, county: &County, events: u64) {
    const APPENDERS: u64 = 256;
    let caller = county.caller.clone();
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|i| {
            let log = log.clone();
            let caller = caller.clone();
            let n = events / APPENDERS + u64::from(i < events % APPENDERS);
            tokio::spawn(async move {
                for _ in 0..n {
                    log.append(common::lookup_event(&caller))
                        .await
                        .expect("recorded");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the appender ran");
    }
}

criterion_group!(benches, token_check, policy, schema, masks, audit);
criterion_main!(benches);
