//! In-process scenarios of the performance targets (DESIGN.md §8), printed as a
//! markdown section `### In-process measurements`:
//!
//! - 6. policy decisions with 10 vs 10,000 grants (p50 within 5 %);
//! - 7. the audit writer alone, segment files (the default) and SQLite side by
//!      side: durable events per second with 64 concurrent appenders (segments
//!      ≥ 100,000/s, SQLite ≥ 20,000/s), bytes written per event (segments ≤ 1.5× the
//!      body), then the offline chain verification (segments ≥ 1,000,000 events/s
//!      over 1,000,000 events);
//! - 8. RSS with 1,000,000 distinct rate-limit keys (< 150 MB) and after the sweep.
//!
//! `cargo bench -p gateway --bench pipeline` (under a minute), `-- --quick` (shorter).
//! Run without `--bench` (as `cargo test --all-targets` does), it only smoke-tests
//! itself on tiny sizes and judges nothing.

// Benches are test code: a fixture that cannot be built should fail loudly, and the
// report is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway::audit::canonical::event_body;
use gateway::audit::chain::{GENESIS, link_hash};
use gateway::audit::segments::format::DIR as CHAIN_DIR;
use gateway::audit::{
    AuditBackend as _, AuditEvent, AuditLog, AuditOptions, SegmentAudit, SegmentAuditBackend,
    SqliteAudit, verify,
};
use gateway::limits::{GovernorState, LimiterState, Rate};
use gateway::policy::PolicySet;

use common::{CONNECTOR, County, OPERATION, PURPOSE, today};

/// How long and how big each scenario is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    name: &'static str,
    /// Whether the numbers are measurements to judge (not a smoke test).
    judged: bool,
    rate_limit_keys: usize,
    policy_rounds: usize,
    policy_batch: usize,
    audit_for: Duration,
    verify_events: u64,
    /// The segment log's verify size.
    verify_segments: u64,
    /// The longest the log is filled up to `verify_events` (fewer events then).
    fill_for_at_most: Duration,
}

const FULL: Sizes = Sizes {
    name: "full",
    judged: true,
    rate_limit_keys: 1_000_000,
    policy_rounds: 3_000,
    policy_batch: 100,
    audit_for: Duration::from_secs(3),
    verify_events: 200_000,
    verify_segments: 1_000_000,
    fill_for_at_most: Duration::from_secs(25),
};

const QUICK: Sizes = Sizes {
    name: "quick",
    judged: true,
    rate_limit_keys: 1_000_000,
    policy_rounds: 1_000,
    policy_batch: 100,
    audit_for: Duration::from_millis(1_500),
    verify_events: 100_000,
    verify_segments: 300_000,
    fill_for_at_most: Duration::from_secs(12),
};

const SMOKE: Sizes = Sizes {
    name: "smoke (not a bench run: nothing judged)",
    judged: false,
    rate_limit_keys: 10_000,
    policy_rounds: 20,
    policy_batch: 10,
    audit_for: Duration::from_millis(200),
    verify_events: 2_000,
    verify_segments: 2_000,
    fill_for_at_most: Duration::from_secs(5),
};

/// Concurrent appenders of scenario 7, as many requests in flight at once.
const APPENDERS: usize = 64;
/// The policy ratio target: p50 at 10,000 grants within 5 % of 10 grants.
const POLICY_RATIO_MAX: f64 = 1.05;
const AUDIT_MIN_PER_S: f64 = 20_000.0;
const AUDIT_SEGMENTS_MIN_PER_S: f64 = 100_000.0;
const VERIFY_MIN_PER_S: f64 = 1_000_000.0;
const RSS_MAX_BYTES: u64 = 150_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = if !args.iter().any(|a| a == "--bench") {
        SMOKE
    } else if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let started = Instant::now();
    let mut report = Report::default();

    // First, in a process that has allocated little yet.
    rss_scenario(&sizes, &mut report);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let county = rt.block_on(County::start());
    policy_scenario(&sizes, &county, &mut report);
    rt.block_on(audit_scenario(&sizes, &county, &mut report));

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("### In-process measurements\n");
    println!(
        "`cargo bench -p gateway --bench pipeline` — mode {}, {cpus} CPUs, took {:.1} s.\n",
        sizes.name,
        started.elapsed().as_secs_f64()
    );
    println!("| scenario | measured | target | result |");
    println!("| --- | --- | --- | --- |");
    for row in &report.rows {
        let result = match (sizes.judged, row.pass) {
            (false, _) | (true, None) => "",
            (true, Some(true)) => "PASS",
            (true, Some(false)) => "FAIL",
        };
        println!(
            "| {} | {} | {} | {result} |",
            row.scenario, row.measured, row.target
        );
    }
    if !report.notes.is_empty() {
        println!();
        for note in &report.notes {
            println!("- {note}");
        }
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

struct Row {
    scenario: String,
    measured: String,
    target: String,
    pass: Option<bool>,
}

impl Report {
    fn row(&mut self, scenario: &str, measured: String, target: &str, pass: Option<bool>) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            measured,
            target: target.to_owned(),
            pass,
        });
    }
}

// ---- 8. memory with many rate-limit keys -------------------------------------

/// The resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[allow(
    clippy::disallowed_methods,
    reason = "runs before any Tokio runtime exists: sleeping blocks no worker"
)]
fn rss_scenario(sizes: &Sizes, report: &mut Report) {
    let keys = sizes.rate_limit_keys;
    // One request a millisecond, burst 1: a bucket is full (fresh) again 1 ms after
    // its only request, so the sweep may forget every one of them.
    let rate = Rate::per_second(1000, 1);
    let state = GovernorState::new();
    // `keys` distinct keys from number `first` on.
    let fill = |state: &GovernorState, first: usize| {
        let mut key = String::new();
        for i in first..first + keys {
            key.clear();
            let _ = write!(key, "user:clerk-{i:07}");
            let _ = black_box(state.take(&key, rate));
        }
    };
    let before = rss_bytes();
    let t = Instant::now();
    fill(&state, 0);
    let fill_time = t.elapsed();
    let held = state.len();
    let with_keys = rss_bytes();
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    let remaining = state.sweep();
    let sweep_time = t.elapsed();
    let after_sweep = rss_bytes();
    // The allocator may give freed pages back only after a delay, on a later call
    // into it: wait, allocate a little, read RSS again.
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..1_000u32 {
        black_box(vec![i; 64]);
    }
    let settled = rss_bytes();
    // Bounded over time: as many new keys again reuse the memory the sweep freed.
    fill(&state, keys);
    let refilled = rss_bytes();
    std::thread::sleep(Duration::from_millis(20));
    state.sweep();
    drop(state);

    let growth = with_keys.saturating_sub(before);
    let keys_text = thousands(keys as u64);
    report.row("8. RSS before any rate-limit key", mb(before), "—", None);
    report.row(
        &format!("8. RSS with {keys_text} distinct rate-limit keys"),
        format!(
            "{} (+{}, {} B/key; {} buckets; filled in {:.2} s)",
            mb(with_keys),
            mb(growth),
            growth / keys.max(1) as u64,
            thousands(held as u64),
            fill_time.as_secs_f64()
        ),
        "< 150 MB",
        Some(with_keys < RSS_MAX_BYTES),
    );
    // "Falls": gives back at least half of what the keys took.
    let falls = settled < with_keys.saturating_sub(growth / 2);
    report.row(
        "8. RSS after the sweep (at once; 1 s later)",
        format!(
            "{}; {} (buckets {} → {} in {:.0} ms)",
            mb(after_sweep),
            mb(settled),
            thousands(held as u64),
            thousands(remaining as u64),
            sweep_time.as_secs_f64() * 1e3
        ),
        "falls (gives back ≥ half the growth)",
        Some(falls),
    );
    report.row(
        &format!("8. RSS after {keys_text} other new keys (after the sweep)"),
        mb(refilled),
        "< 150 MB (freed memory reused)",
        Some(refilled < RSS_MAX_BYTES),
    );
    if !falls {
        report.notes.push(format!(
            "RSS after the sweep: the buckets are gone ({} → {}), but the allocator \
             (glibc's malloc, as in the `gateway` binary) keeps the freed pages for \
             reuse instead of returning them to the OS; the refill row shows that memory \
             being reused, so RSS stays bounded.",
            thousands(held as u64),
            thousands(remaining as u64),
        ));
    }
}

// ---- 6. policy decisions with 10 vs 10,000 grants ----------------------------

fn policy_scenario(sizes: &Sizes, county: &County, report: &mut Report) {
    let small = county.padded_policies(10);
    let large = county.padded_policies(10_000);
    let caller = &*county.caller;
    let leaves = county.leaves();
    let decide = |set: &PolicySet| {
        black_box(
            set.decide(caller, CONNECTOR, OPERATION, leaves, PURPOSE, today())
                .expect("planned"),
        );
    };
    let batch = sizes.policy_batch;
    let timed = |set: &PolicySet| {
        let t = Instant::now();
        for _ in 0..batch {
            decide(set);
        }
        t.elapsed() / batch as u32
    };
    // Warm up, then alternate the two sets batch by batch (and which goes first) so
    // that drift in the machine's speed falls on both alike.
    for _ in 0..sizes.policy_rounds / 10 {
        timed(&small);
        timed(&large);
    }
    let mut small_times = Vec::with_capacity(sizes.policy_rounds);
    let mut large_times = Vec::with_capacity(sizes.policy_rounds);
    for round in 0..sizes.policy_rounds {
        if round % 2 == 0 {
            small_times.push(timed(&small));
            large_times.push(timed(&large));
        } else {
            large_times.push(timed(&large));
            small_times.push(timed(&small));
        }
    }
    let p50_small = percentile(&mut small_times, 0.5);
    let p50_large = percentile(&mut large_times, 0.5);
    let ratio = p50_large.as_secs_f64() / p50_small.as_secs_f64().max(1e-12);

    // A whole decision (plan, row check, minimize, mask) with the demo policies.
    let ctx = gateway::mask::MaskContext {
        key: &county.pseudonym,
        today: today(),
    };
    let demo = &county.cfg.policies;
    let tree = county.tree();
    let mut whole = Vec::with_capacity(sizes.policy_rounds);
    for _ in 0..sizes.policy_rounds {
        let t = Instant::now();
        for _ in 0..batch {
            let plan = demo
                .decide(caller, CONNECTOR, OPERATION, leaves, PURPOSE, today())
                .expect("planned");
            black_box(
                plan.apply(
                    &county.record,
                    caller,
                    tree,
                    &ctx,
                    gateway::policy::Outside::NOWHERE,
                )
                .expect("applied"),
            );
        }
        whole.push(t.elapsed() / batch as u32);
    }
    let p50_whole = percentile(&mut whole, 0.5);

    report.row(
        "6. policy decision p50, 10 grants",
        micros(p50_small),
        "—",
        None,
    );
    report.row(
        "6. policy decision p50, 10,000 grants",
        micros(p50_large),
        "—",
        None,
    );
    report.row(
        "6. p50 ratio 10,000 / 10 grants",
        format!("{ratio:.3}"),
        "≤ 1.05",
        Some(ratio <= POLICY_RATIO_MAX),
    );
    report.row(
        "6. decide + apply p50, demo policies (info)",
        micros(p50_whole),
        "—",
        None,
    );
    report.notes.push(format!(
        "Policy: `PolicySet::decide` for a clerk of 东岭镇, hukou.person_by_id, \
         birth_registration; the extra grants are for other townships (same index \
         bucket), other purposes and other connectors. p50 of {} batch means of {} \
         decisions each, the two sets interleaved.",
        thousands(sizes.policy_rounds as u64),
        batch
    ));
}

// ---- 7. the audit writer alone, and chain verification -----------------------

/// One store's run of durable appends.
struct AppendRun {
    appended: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: String,
    /// `write_bytes` of the process during the run.
    io: u64,
}

/// `APPENDERS` appenders, each appending one event after another for `for_`; an
/// append returns once its event is durable.
async fn append_run(log: Arc<dyn AuditLog>, county: &County, for_: Duration) -> AppendRun {
    let deadline = Instant::now() + for_;
    let cpu_before = thread_cpu();
    let io_before = written_bytes();
    let t = Instant::now();
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let log = log.clone();
            let caller = county.caller.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let event = common::lookup_event(&caller);
                    let sent = Instant::now();
                    log.append(event).await.expect("recorded");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("the appender ran"));
    }
    let elapsed = t.elapsed();
    AppendRun {
        appended: latencies.len() as u64,
        cpu: cpu_share(&cpu_before, &thread_cpu(), elapsed),
        io: written_bytes().saturating_sub(io_before),
        elapsed,
        latencies,
    }
}

/// The bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn audit_scenario(sizes: &Sizes, county: &County, report: &mut Report) {
    let sample: Vec<AuditEvent> = (0..2_000)
        .map(|_| common::lookup_event(&county.caller))
        .collect();
    let bodies: Vec<String> = sample
        .iter()
        .map(|e| event_body(e).expect("a body"))
        .collect();
    let body_bytes = bodies.iter().map(String::len).sum::<usize>() / bodies.len();

    // 7a. The segment files (the default), then 7b. the SQLite log, side by side.
    let seg_dir = tempfile::tempdir().expect("a temp dir");
    let segments = SegmentAudit::open(seg_dir.path(), AuditOptions::default()).expect("opens");
    let seg = append_run(Arc::new(segments.clone()), county, sizes.audit_for).await;
    let seg_file_bytes = dir_bytes(&seg_dir.path().join(CHAIN_DIR));
    let sql_dir = tempfile::tempdir().expect("a temp dir");
    let sqlite = SqliteAudit::open(sql_dir.path(), AuditOptions::default()).expect("opens");
    let sql = append_run(Arc::new(sqlite.clone()), county, sizes.audit_for).await;
    for (name, run, target, pass) in [
        (
            "7a. durable audit appends, segment files",
            &seg,
            "≥ 100,000 events/s",
            AUDIT_SEGMENTS_MIN_PER_S,
        ),
        (
            "7b. durable audit appends, SQLite (WAL, synchronous=FULL)",
            &sql,
            "≥ 20,000 events/s",
            AUDIT_MIN_PER_S,
        ),
    ] {
        let mut latencies = run.latencies.clone();
        let per_s = run.appended as f64 / run.elapsed.as_secs_f64();
        report.row(
            &format!(
                "{name}, {APPENDERS} concurrent appenders, {:.1} s",
                sizes.audit_for.as_secs_f64()
            ),
            format!(
                "{} events/s ({} events; append p50 {}, p99 {})",
                thousands(per_s as u64),
                thousands(run.appended),
                millis(percentile(&mut latencies, 0.5)),
                millis(percentile(&mut latencies, 0.99))
            ),
            target,
            Some(per_s >= pass),
        );
        report.row(
            &format!("{} CPU while appending, by thread (info)", &name[..3]),
            run.cpu.clone(),
            "—",
            None,
        );
        report.row(
            &format!("{} written to storage while appending (info)", &name[..3]),
            format!(
                "{} ({:.1} KB per event, {:.1}× its ~{body_bytes}-byte body; `write_bytes` \
                 of /proc/self/io, the index included)",
                mb(run.io),
                run.io as f64 / run.appended.max(1) as f64 / 1e3,
                run.io as f64 / run.appended.max(1) as f64 / body_bytes as f64
            ),
            "—",
            None,
        );
    }
    let seg_ratio = seg_file_bytes as f64 / seg.appended.max(1) as f64 / body_bytes as f64;
    report.row(
        "7a. segment bytes per event (the durable record alone)",
        format!(
            "{:.0} bytes, {seg_ratio:.2}× the body",
            seg_file_bytes as f64 / seg.appended.max(1) as f64
        ),
        "≤ 1.5× the body",
        Some(seg_ratio <= 1.5),
    );
    report.row(
        "7. segment files ÷ SQLite, appends per second (same run)",
        format!(
            "{:.1}×",
            (seg.appended as f64 / seg.elapsed.as_secs_f64())
                / (sql.appended as f64 / sql.elapsed.as_secs_f64()).max(1.0)
        ),
        "—",
        None,
    );

    // Fill the segment log up to the verify size and check it as `gateway audit
    // verify` does; the SQLite log to its own (smaller) size.
    let t = Instant::now();
    let missing = sizes.verify_segments.saturating_sub(seg.appended);
    let filled = fill(
        Arc::new(segments.clone()),
        county,
        missing,
        t + sizes.fill_for_at_most,
    )
    .await;
    let seg_fill = t.elapsed();
    segments.shutdown().await;
    let seg_total = seg.appended + filled;
    let t = Instant::now();
    let verified = SegmentAuditBackend::new(seg_dir.path())
        .verify(Default::default())
        .await
        .expect("the segments verify");
    let seg_verify = t.elapsed();
    assert_eq!(verified.events, seg_total);
    let seg_verify_per_s = seg_total as f64 / seg_verify.as_secs_f64();
    report.row(
        &format!(
            "chain verify, segment files (`gateway audit verify`), {} events",
            thousands(seg_total)
        ),
        format!(
            "{} events/s ({:.2} s, {} checkpoints)",
            thousands(seg_verify_per_s as u64),
            seg_verify.as_secs_f64(),
            verified.checkpoints
        ),
        "≥ 1,000,000 events/s",
        Some(seg_verify_per_s >= VERIFY_MIN_PER_S),
    );
    let t = Instant::now();
    let index_checked = tokio::task::spawn_blocking({
        let path = seg_dir.path().to_owned();
        move || gateway::audit::segments::index::check(&path)
    })
    .await
    .expect("the index check ran")
    .expect("the index is consistent");
    report.row(
        "index check (`verify --index`, info)",
        format!(
            "{} events/s ({:.2} s)",
            thousands((index_checked as f64 / t.elapsed().as_secs_f64()) as u64),
            t.elapsed().as_secs_f64()
        ),
        "—",
        None,
    );

    let missing = sizes.verify_events.saturating_sub(sql.appended);
    let t = Instant::now();
    let filled = fill(
        Arc::new(sqlite.clone()),
        county,
        missing,
        t + sizes.fill_for_at_most,
    )
    .await;
    let fill_time = t.elapsed();
    sqlite.shutdown().await;
    let total = sql.appended + filled;
    let db_bytes =
        std::fs::metadata(sql_dir.path().join(gateway::audit::AUDIT_FILE)).map_or(0, |m| m.len());
    let path = sql_dir.path().to_owned();
    let (result, verify_time) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let result = verify(&path);
        (result, t.elapsed())
    })
    .await
    .expect("verify ran");
    let sql_verified = result.expect("the log verifies");
    assert_eq!(sql_verified.events, total);
    let verify_per_s = total as f64 / verify_time.as_secs_f64();
    for (what, wanted, got) in [
        ("segment files", sizes.verify_segments, seg_total),
        ("SQLite", sizes.verify_events, total),
    ] {
        if got < wanted {
            report.notes.push(format!(
                "The {what} log was filled for at most {} s: chain verify ran over {} \
                 events instead of {}.",
                sizes.fill_for_at_most.as_secs(),
                thousands(got),
                thousands(wanted)
            ));
        }
    }
    report.row(
        &format!(
            "chain verify, SQLite log (`gateway audit verify`), {} events (info)",
            thousands(total)
        ),
        format!(
            "{} events/s ({:.2} s, {} checkpoints)",
            thousands(verify_per_s as u64),
            verify_time.as_secs_f64(),
            sql_verified.checkpoints
        ),
        "—",
        None,
    );

    // Where verification time goes: the hash chain alone, and parsing the bodies.
    let n = total.max(1);
    let t = Instant::now();
    let mut prev = GENESIS;
    for seq in 1..=n {
        prev = link_hash(seq, &prev, bodies[seq as usize % bodies.len()].as_bytes());
    }
    black_box(prev);
    let hash_per_s = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for seq in 0..n {
        let event: AuditEvent =
            serde_json::from_str(&bodies[seq as usize % bodies.len()]).expect("an event");
        black_box(event);
    }
    let parse_per_s = n as f64 / t.elapsed().as_secs_f64();
    let path = sql_dir.path().join(gateway::audit::AUDIT_FILE);
    let (scan_time, integrity_time) = tokio::task::spawn_blocking(move || sqlite_parts(&path))
        .await
        .expect("the SQLite parts ran");
    report.row(
        "chain verify, hash chain alone (in memory, one thread, info)",
        format!("{} events/s", thousands(hash_per_s as u64)),
        "—",
        None,
    );
    report.row(
        "chain verify, body → `AuditEvent` parse alone (info)",
        format!("{} events/s", thousands(parse_per_s as u64)),
        "—",
        None,
    );
    report.row(
        "chain verify, SQLite scan of the events alone (info)",
        format!(
            "{} events/s ({:.2} s)",
            thousands((total as f64 / scan_time.as_secs_f64()) as u64),
            scan_time.as_secs_f64()
        ),
        "—",
        None,
    );
    report.row(
        "chain verify, `PRAGMA integrity_check` alone (info)",
        format!("{:.2} s", integrity_time.as_secs_f64()),
        "—",
        None,
    );
    report.notes.push(format!(
        "Audit: `SegmentAudit` and `SqliteAudit` with default options (batch ≤ 512, \
         checkpoint every 1,000 events), each in a temp dir on {}; events are lookup \
         events of ~{body_bytes} bytes (canonical body). The segment log was then filled \
         to {} events ({:.1} s, 512 appenders) for its verify row; the SQLite log to {} \
         events ({:.1} s): `audit.db` is then {} ({} bytes per event).",
        filesystem(seg_dir.path()),
        thousands(seg_total),
        seg_fill.as_secs_f64(),
        thousands(total),
        fill_time.as_secs_f64(),
        mb(db_bytes),
        db_bytes / total.max(1)
    ));
}

/// What verification spends in SQLite: reading every event row (the columns
/// `audit::verify` reads), and the integrity check it runs alongside, each on its own
/// and on one thread, with the file mapped into memory as `audit::verify` maps it.
/// Blocking.
fn sqlite_parts(path: &Path) -> (Duration, Duration) {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("the log opens read-only");
    conn.execute_batch("PRAGMA mmap_size = 2147418112")
        .expect("the file is mapped");
    let t = Instant::now();
    let mut stmt = conn
        .prepare(
            "SELECT seq, event_id, time, request_id, user, township, connector, purpose,
                    subject_pseudonym, status, body, prev_hash, hash
               FROM events ORDER BY seq",
        )
        .expect("a statement");
    let mut rows = stmt.query([]).expect("a query");
    let mut bytes = 0usize;
    while let Some(row) = rows.next().expect("a row") {
        for i in 0..13 {
            bytes += match row.get_ref(i).expect("a column") {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.len(),
                _ => 8,
            };
        }
    }
    black_box(bytes);
    let scan = t.elapsed();
    let t = Instant::now();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("the integrity check runs");
    assert_eq!(ok, "ok");
    (scan, t.elapsed())
}

/// Appends up to `events` events with many concurrent appenders, stopping early
/// at `until` (so that a slow disk cannot stretch the run); returns how many.
async fn fill(log: Arc<dyn AuditLog>, county: &County, events: u64, until: Instant) -> u64 {
    const FILLERS: usize = 512;
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..FILLERS)
        .map(|_| {
            let log = log.clone();
            let caller = county.caller.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut appended = 0u64;
                while Instant::now() < until && next.fetch_add(1, Ordering::Relaxed) < events {
                    log.append(common::lookup_event(&caller))
                        .await
                        .expect("recorded");
                    appended += 1;
                }
                appended
            })
        })
        .collect();
    let mut appended = 0;
    for task in tasks {
        appended += task.await.expect("the filler ran");
    }
    appended
}

/// The file system type of the temp dir's mount, from `/proc/self/mounts` (longest
/// matching mount point).
fn filesystem(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    mounts
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let _device = parts.next()?;
            let mount = parts.next()?;
            let kind = parts.next()?;
            path.starts_with(mount)
                .then(|| (mount.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "an unknown file system".to_owned(), |(_, kind)| kind)
}

// ---- helpers -------------------------------------------------------------------

/// Bytes this process has caused to be sent to storage (`write_bytes` of
/// `/proc/self/io`).
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time used so far by each thread of this process, summed by thread name, in
/// clock ticks (USER_HZ, 100 a second on Linux), from `/proc/self/task/*/stat`.
fn thread_cpu() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid … utime stime …`: comm may hold spaces, so split
        // after its closing parenthesis; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the comm, field 3 (state) is index 0, so utime (14) is index 11.
        *out.entry(name).or_insert(0) += ticks(11) + ticks(12);
    }
    out
}

/// Each thread name's share of one CPU between two [`thread_cpu`] readings.
fn cpu_share(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    elapsed: Duration,
) -> String {
    let wall_ticks = elapsed.as_secs_f64() * 100.0;
    let mut shares: Vec<(u64, &str)> = after
        .iter()
        .map(|(name, t)| {
            (
                t.saturating_sub(*before.get(name).unwrap_or(&0)),
                name.as_str(),
            )
        })
        .filter(|(t, _)| *t > 0)
        .collect();
    shares.sort_unstable_by(|a, b| b.cmp(a));
    let parts: Vec<String> = shares
        .iter()
        .map(|(t, name)| format!("{name} {:.0} %", *t as f64 / wall_ticks * 100.0))
        .collect();
    format!("{} (of one CPU each)", parts.join(", "))
}

fn percentile(times: &mut [Duration], q: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times.sort_unstable();
    let i = ((times.len() - 1) as f64 * q).round() as usize;
    times[i.min(times.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
