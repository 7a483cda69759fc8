//! `gateway-bench report`: turns the JSON results of a run into the markdown tables of
//! `bench/results.md`, with the targets of DESIGN.md §8 marked pass or fail.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::load::LoadResult;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The run's results directory (`wrk-*.json` and `load-*.json`).
    #[arg(long)]
    dir: PathBuf,
    /// The latency injected into each department for the form scenario, ms.
    #[arg(long, default_value_t = 20)]
    injected_ms: u64,
}

/// What the wrk script's `done()` prints.
#[derive(Debug, Clone, Deserialize)]
struct WrkResult {
    requests: u64,
    duration_us: u64,
    /// Connect, read, write and timeout errors, and non-2xx/3xx answers.
    errors: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

impl WrkResult {
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts are far below 2^52"
    )]
    fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

/// CPU time the process under test used during a wrk run (`cpu-*.json`).
#[derive(Debug, Clone, Deserialize)]
struct CpuResult {
    cpu_ticks: u64,
    ticks_per_s: u64,
}

/// The throughput scenarios: file stem, name, what is measured.
const THROUGHPUT: [(&str, &str, &str); 7] = [
    (
        "direct",
        "1. department directly",
        "hukou `person` API, native request",
    ),
    (
        "nginx",
        "2. nginx plain reverse proxy",
        "keep-alive upstream, same request",
    ),
    (
        "proxy-reqwest",
        PROXY_REQWEST,
        "`gateway-bench proxy`, no pipeline, same request",
    ),
    (
        "proxy-hyper",
        PROXY_HYPER,
        "`gateway-bench proxy`, no pipeline, same request",
    ),
    (
        "gateway",
        "3. gateway, full pipeline",
        "`/v1/query`, cache off, audit durable",
    ),
    (
        "gateway-cache",
        "4. gateway, cache hits",
        "`/v1/query`, every record cached",
    ),
    (
        "cluster",
        CLUSTER,
        "`/v1/query` through nginx round robin, cache off",
    ),
];

/// Scenario 6's name in both tables.
const CLUSTER: &str = "6. three replicas, PostgreSQL + Redis";

/// The bare proxies' names in both tables: the transport alone (`gateway-bench proxy`).
const PROXY_REQWEST: &str = "2a. bare axum + reqwest proxy";
const PROXY_HYPER: &str = "2b. bare axum + hyper client proxy";

/// What `bench/run` measured of PostgreSQL's commit (`pg-commit.json`): single-row
/// INSERTs, each its own transaction, timed by psql.
#[derive(Debug, Clone, Deserialize)]
struct CommitResult {
    n: u64,
    p50_us: u64,
    p99_us: u64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    // wrk prints its own lines too; the result is the last JSON line.
    text.lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
}

fn ms(us: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "microseconds of a request")]
    let ms = us as f64 / 1000.0;
    format!("{ms:.2} ms")
}

fn signed_ms(us: i128) -> String {
    #[expect(clippy::cast_precision_loss, reason = "microseconds of a request")]
    let ms = us as f64 / 1000.0;
    format!("{ms:+.2} ms")
}

fn verdict(pass: bool) -> &'static str {
    if pass { "**pass**" } else { "**FAIL**" }
}

pub(crate) fn report(args: &ReportArgs) -> Result<(), String> {
    let mut out = String::new();
    let wrk: BTreeMap<&str, WrkResult> = THROUGHPUT
        .iter()
        .filter_map(|(stem, _, _)| {
            read_json(&args.dir.join(format!("wrk-{stem}.json"))).map(|r| (*stem, r))
        })
        .collect();
    let nginx_rps = wrk.get("nginx").map(WrkResult::rps);
    let _ = writeln!(
        out,
        "### Throughput (wrk, closed loop, same settings for every target)\n"
    );
    let _ = writeln!(
        out,
        "| scenario | what | requests/s | p50 | p99 | p99.9 | errors | CPU/request | × nginx |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (stem, name, what) in THROUGHPUT {
        match wrk.get(stem) {
            Some(r) => {
                let ratio = nginx_rps
                    .filter(|n| *n > 0.0)
                    .map_or("–".to_owned(), |n| format!("{:.2}×", r.rps() / n));
                let cpu = read_json::<CpuResult>(&args.dir.join(format!("cpu-{stem}.json")))
                    .filter(|c| c.ticks_per_s > 0 && r.requests > 0)
                    .map_or("–".to_owned(), |c| {
                        let us = c.cpu_ticks * 1_000_000 / c.ticks_per_s / r.requests;
                        format!("{us} µs")
                    });
                let _ = writeln!(
                    out,
                    "| {name} | {what} | {:.0} | {} | {} | {} | {} | {cpu} | {ratio} |",
                    r.rps(),
                    ms(r.p50_us),
                    ms(r.p99_us),
                    ms(r.p999_us),
                    r.errors
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | {what} | not run | | | | | | |");
            }
        }
    }

    let _ = writeln!(
        out,
        "\nCPU/request: CPU time of the process under test over the run ÷ requests — the \
         department in 1, nginx's workers in 2, the bare proxy in 2a and 2b, the gateway in \
         3 and 4 (without the \
         department it calls), the three replicas together in 6 (without the balancer, \
         PostgreSQL and Redis)."
    );

    let lat = |stem: &str| read_json::<LoadResult>(&args.dir.join(format!("load-{stem}.json")));
    let direct = lat("direct");
    let nginx = lat("nginx");
    let proxy_reqwest = lat("proxy-reqwest");
    let proxy_hyper = lat("proxy-hyper");
    let gateway = lat("gateway");
    let form = lat("form");
    let cluster = lat("cluster");
    // At a quarter of the cluster's own throughput, when that is below scenario 3's rate.
    let gateway_low = lat("gateway-low");
    let cluster_low = lat("cluster-low");
    let slow: Vec<LoadResult> = ["hukou", "shebao", "jisheng"]
        .iter()
        .filter_map(|d| lat(&format!("slow-{d}")))
        .collect();
    let _ = writeln!(
        out,
        "\n### Latency at a fixed rate below saturation (open loop)\n"
    );
    let _ = writeln!(
        out,
        "| measured | rate | p50 | p90 | p99 | p99.9 | errors | client lag p99 |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut rows: Vec<(String, &LoadResult)> = Vec::new();
    for (name, r) in [
        ("1. department directly", &direct),
        ("2. nginx plain reverse proxy", &nginx),
        (PROXY_REQWEST, &proxy_reqwest),
        (PROXY_HYPER, &proxy_hyper),
        ("3. gateway, full pipeline", &gateway),
    ] {
        if let Some(r) = r {
            rows.push((name.to_owned(), r));
        }
    }
    for r in &slow {
        rows.push((
            format!(
                "{} directly, {} ms injected",
                r.label.trim_start_matches("slow-"),
                args.injected_ms
            ),
            r,
        ));
    }
    if let Some(r) = &form {
        rows.push(("5. form over three departments".to_owned(), r));
    }
    if let Some(r) = &cluster {
        rows.push((CLUSTER.to_owned(), r));
    }
    if let (Some(g), Some(c)) = (&gateway_low, &cluster_low) {
        rows.push(("3. gateway, full pipeline".to_owned(), g));
        rows.push((CLUSTER.to_owned(), c));
    }
    for (name, r) in &rows {
        let _ = writeln!(
            out,
            "| {name} | {}/s | {} | {} | {} | {} | {} | {} |",
            r.rate,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.p999_us),
            r.errors,
            ms(r.lag_p99_us)
        );
    }

    cluster_lines(
        &mut out,
        &args.dir,
        &wrk,
        [
            (gateway.as_ref(), cluster.as_ref()),
            (gateway_low.as_ref(), cluster_low.as_ref()),
        ],
    );

    let _ = writeln!(out, "\n### Targets (DESIGN.md §8)\n");
    let _ = writeln!(out, "| target | measured | result |");
    let _ = writeln!(out, "| --- | --- | --- |");
    let errors = |r: &LoadResult| -> String {
        if r.errors > 0 {
            format!(
                "; {} errors, first: {}",
                r.errors,
                r.first_error.as_deref().unwrap_or("")
            )
        } else {
            String::new()
        }
    };
    match (wrk.get("gateway"), nginx_rps) {
        (Some(g), Some(n)) if n > 0.0 => {
            let ratio = g.rps() / n;
            let clean = g.errors == 0 && wrk.get("nginx").is_some_and(|r| r.errors == 0);
            let _ = writeln!(
                out,
                "| full pipeline throughput ≥ 1.0× nginx plain proxy | {:.0}/s vs {n:.0}/s = {ratio:.2}×{} | {} |",
                g.rps(),
                if clean { "" } else { " (with errors)" },
                verdict(ratio >= 1.0 && clean)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| full pipeline throughput ≥ 1.0× nginx plain proxy | not measured | – |"
            );
        }
    }
    match (&gateway, &direct) {
        (Some(g), Some(d)) => {
            let p50 = i128::from(g.p50_us) - i128::from(d.p50_us);
            let p99 = i128::from(g.p99_us) - i128::from(d.p99_us);
            let nginx_added = nginx.as_ref().map_or(String::new(), |n| {
                format!(
                    " (nginx adds {} at p99)",
                    signed_ms(i128::from(n.p99_us) - i128::from(d.p99_us))
                )
            });
            let _ = writeln!(
                out,
                "| added p99 < 1 ms below saturation ({}/s) | gateway − direct: p50 {}, p99 {}{nginx_added}{} | {} |",
                g.rate,
                signed_ms(p50),
                signed_ms(p99),
                errors(g),
                verdict(p99 < 1000 && g.errors == 0)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| added p99 < 1 ms below saturation | not measured | – |"
            );
        }
    }
    match &form {
        Some(f) => {
            let nominal = i128::from(args.injected_ms) * 1000;
            let slowest = slow.iter().max_by_key(|r| r.p99_us);
            let slowest_p50 = slow.iter().map(|r| r.p50_us).max();
            let measured = match (slowest, slowest_p50) {
                (Some(s), Some(p50)) => format!(
                    "; − slowest department measured directly ({}): p50 {}, p99 {}",
                    s.label.trim_start_matches("slow-"),
                    signed_ms(i128::from(f.p50_us) - i128::from(p50)),
                    signed_ms(i128::from(f.p99_us) - i128::from(s.p99_us))
                ),
                _ => String::new(),
            };
            let baseline = slowest.map_or(nominal, |s| i128::from(s.p99_us));
            let p99 = i128::from(f.p99_us) - baseline;
            let _ = writeln!(
                out,
                "| form ≤ slowest department + 1 ms ({}/s, {} ms each) | form − {} ms: p50 {}, p99 {}{measured}{} | {} |",
                f.rate,
                args.injected_ms,
                args.injected_ms,
                signed_ms(i128::from(f.p50_us) - nominal),
                signed_ms(i128::from(f.p99_us) - nominal),
                errors(f),
                verdict(p99 <= 1000 && f.errors == 0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| form ≤ slowest department + 1 ms | not measured | – |"
            );
        }
    }
    transport_line(
        &mut out,
        &args.dir,
        &wrk,
        direct.as_ref(),
        [
            ("reqwest", proxy_reqwest.as_ref()),
            ("hyper", proxy_hyper.as_ref()),
        ],
        gateway.as_ref(),
    );
    print!("{out}");
    Ok(())
}

/// CPU per request of a wrk run (`cpu-STEM.json`), µs.
fn cpu_per_request(dir: &Path, stem: &str, run: &WrkResult) -> Option<u64> {
    read_json::<CpuResult>(&dir.join(format!("cpu-{stem}.json")))
        .filter(|c| c.ticks_per_s > 0 && run.requests > 0)
        .map(|c| c.cpu_ticks * 1_000_000 / c.ticks_per_s / run.requests)
}

/// Under the targets: how much of the gap to nginx is the transport (the bare proxies
/// 2a and 2b) and how much the pipeline (the gateway against the better of the two).
fn transport_line(
    out: &mut String,
    dir: &Path,
    wrk: &BTreeMap<&str, WrkResult>,
    direct: Option<&LoadResult>,
    proxies_at_rate: [(&str, Option<&LoadResult>); 2],
    gateway_at_rate: Option<&LoadResult>,
) {
    let (Some(nginx), Some(gateway)) = (wrk.get("nginx"), wrk.get("gateway")) else {
        return;
    };
    let n = nginx.rps();
    let proxies: Vec<(&str, &str, &WrkResult)> =
        [("reqwest", "proxy-reqwest"), ("hyper", "proxy-hyper")]
            .into_iter()
            .filter_map(|(name, stem)| wrk.get(stem).map(|r| (name, stem, r)))
            .collect();
    let Some(&(best_name, best_stem, best)) = proxies
        .iter()
        .max_by(|a, b| a.2.rps().total_cmp(&b.2.rps()))
    else {
        return;
    };
    if n <= 0.0 || best.rps() <= 0.0 {
        return;
    }
    let list: Vec<String> = proxies
        .iter()
        .map(|(name, _, r)| format!("{name} {:.2}×", r.rps() / n))
        .collect();
    let share = gateway.rps() / best.rps();
    let errors = proxies.iter().map(|(_, _, r)| r.errors).sum::<u64>();
    let _ = write!(
        out,
        "\n- Transport and pipeline: the full pipeline {:.2}× nginx; the bare axum proxies \
         (no pipeline) {}. The gateway reaches {share:.2}× of the better bare proxy \
         ({best_name}, {:.0}/s): the pipeline costs {:.0} % of the throughput the \
         transport allows; the transport alone costs {:.0} % of nginx's throughput{}.",
        gateway.rps() / n,
        list.join(", "),
        best.rps(),
        (1.0 - share) * 100.0,
        (1.0 - best.rps() / n) * 100.0,
        if errors > 0 {
            " (the bare proxies had errors)"
        } else {
            ""
        }
    );
    if let (Some(g), Some(p), Some(x)) = (
        cpu_per_request(dir, "gateway", gateway),
        cpu_per_request(dir, best_stem, best),
        cpu_per_request(dir, "nginx", nginx),
    ) {
        let _ = write!(
            out,
            " CPU per request: gateway {g} µs, {best_name} proxy {p} µs, nginx {x} µs; the \
             pipeline's own {} µs.",
            i128::from(g) - i128::from(p)
        );
    }
    if let (Some(d), Some(g)) = (direct, gateway_at_rate) {
        let added: Vec<String> = proxies_at_rate
            .iter()
            .filter_map(|(name, r)| {
                r.map(|r| {
                    format!(
                        "{name} proxy {}",
                        signed_ms(i128::from(r.p99_us) - i128::from(d.p99_us))
                    )
                })
            })
            .collect();
        if !added.is_empty() {
            let _ = write!(
                out,
                " Added p99 at {}/s over the department directly: {}, gateway {}.",
                g.rate,
                added.join(", "),
                signed_ms(i128::from(g.p99_us) - i128::from(d.p99_us))
            );
        }
    }
    let _ = writeln!(out);
}

/// The audit writers' batches during the fixed-rate run `label`: the difference of
/// `gateway_audit_commit_seconds` read before and after it (`metrics-LABEL-*.txt`,
/// every replica's summed).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Commits {
    batches: u64,
    mean_s: f64,
    /// The upper bounds of the buckets holding the median and the 99th percentile.
    p50_le: f64,
    p99_le: f64,
}

fn commits(dir: &Path, label: &str) -> Option<Commits> {
    let read = |when: &str| {
        std::fs::read_to_string(dir.join(format!("metrics-{label}-{when}.txt")))
            .ok()
            .map(|text| commit_buckets(&text))
    };
    commits_between(&read("before")?, &read("after")?)
}

/// The cumulative buckets (`le` → count, summed over every exposition in `text`) and
/// the sum of seconds.
fn commit_buckets(text: &str) -> (BTreeMap<String, u64>, f64) {
    let mut buckets = BTreeMap::new();
    let mut sum = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("gateway_audit_commit_seconds_bucket{le=\"")
            && let Some((le, count)) = rest.split_once("\"} ")
            && let Ok(count) = count.trim().parse::<u64>()
        {
            *buckets.entry(le.to_owned()).or_insert(0) += count;
        } else if let Some(value) = line.strip_prefix("gateway_audit_commit_seconds_sum ")
            && let Ok(value) = value.trim().parse::<f64>()
        {
            sum += value;
        }
    }
    (buckets, sum)
}

fn commits_between(
    before: &(BTreeMap<String, u64>, f64),
    after: &(BTreeMap<String, u64>, f64),
) -> Option<Commits> {
    let mut during: Vec<(f64, u64)> = after
        .0
        .iter()
        .map(|(le, n)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            (bound, n.saturating_sub(*before.0.get(le).unwrap_or(&0)))
        })
        .collect();
    during.sort_by(|a, b| a.0.total_cmp(&b.0));
    let batches = during.last()?.1;
    if batches == 0 {
        return None;
    }
    #[expect(clippy::cast_precision_loss, reason = "a count of batches")]
    let of = |q: f64| {
        let rank = (q * batches as f64).ceil() as u64;
        during
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map_or(f64::INFINITY, |(bound, _)| *bound)
    };
    #[expect(clippy::cast_precision_loss, reason = "a count of batches")]
    let mean_s = (after.1 - before.1) / batches as f64;
    Some(Commits {
        batches,
        mean_s,
        p50_le: of(0.5),
        p99_le: of(0.99),
    })
}

/// Seconds as milliseconds with two decimals.
fn seconds(s: f64) -> String {
    if s.is_finite() {
        format!("{:.2} ms", s * 1000.0)
    } else {
        "∞".to_owned()
    }
}

/// Scenario 6 against scenario 3: throughput and p99 at the same fixed rate, and the
/// PostgreSQL commit latency when it was measured.
fn cluster_lines(
    out: &mut String,
    dir: &Path,
    wrk: &BTreeMap<&str, WrkResult>,
    latency: [(Option<&LoadResult>, Option<&LoadResult>); 2],
) {
    let (Some(one), Some(three)) = (wrk.get("gateway"), wrk.get("cluster")) else {
        return;
    };
    let _ = writeln!(out, "\n### Single process vs three replicas\n");
    let ratio = if one.rps() > 0.0 {
        format!("{:.2}×", three.rps() / one.rps())
    } else {
        "–".to_owned()
    };
    let _ = writeln!(
        out,
        "- Throughput: three replicas on PostgreSQL + Redis {:.0}/s vs one process (segment files) \
         {:.0}/s = {ratio} (wrk, same settings, same machine: the replicas share its cores \
         with PostgreSQL, Redis and the balancer).",
        three.rps(),
        one.rps()
    );
    let cpu = |stem: &str| {
        read_json::<CpuResult>(&dir.join(format!("cpu-{stem}.json")))
            .filter(|c| c.ticks_per_s > 0 && three.requests > 0)
            .map(|c| c.cpu_ticks * 1_000_000 / c.ticks_per_s / three.requests)
    };
    let sides: Vec<(&str, u64)> = [
        ("the balancer", "cluster-balancer"),
        ("Redis", "cluster-redis"),
        ("PostgreSQL (the whole server)", "cluster-postgres"),
    ]
    .iter()
    .filter_map(|(name, stem)| cpu(stem).map(|us| (*name, us)))
    .collect();
    if let Some(replicas) = cpu("cluster")
        && !sides.is_empty()
    {
        let list: Vec<String> = sides
            .iter()
            .map(|(name, us)| format!("{name} {us} µs"))
            .collect();
        let total = replicas + sides.iter().map(|(_, us)| us).sum::<u64>();
        let single = read_json::<CpuResult>(&dir.join("cpu-gateway.json"))
            .filter(|c| c.ticks_per_s > 0 && one.requests > 0)
            .map_or(String::new(), |c| {
                format!(
                    " (one process: {} µs, without the department)",
                    c.cpu_ticks * 1_000_000 / c.ticks_per_s / one.requests
                )
            });
        let _ = writeln!(
            out,
            "- CPU per request in 6, beside the replicas' {replicas} µs: {}; {total} µs in \
             all{single}.",
            list.join(", ")
        );
    }
    for (single, cluster) in latency {
        let (Some(s), Some(c)) = (single, cluster) else {
            continue;
        };
        if let (Some(one), Some(three)) = (commits(dir, &s.label), commits(dir, &c.label)) {
            let _ = writeln!(
                out,
                "- Audit commit at {}/s (the writers' batches during that run, from \
                 `gateway_audit_commit_seconds`; percentiles are bucket bounds): one process \
                 (segment files) {} batches, p50 ≤ {}, p99 ≤ {}, mean {}; three replicas on \
                 PostgreSQL {} batches, p50 ≤ {}, p99 ≤ {}, mean {}.",
                c.rate,
                one.batches,
                seconds(one.p50_le),
                seconds(one.p99_le),
                seconds(one.mean_s),
                three.batches,
                seconds(three.p50_le),
                seconds(three.p99_le),
                seconds(three.mean_s),
            );
        }
        // Open loop, the cluster queues well below its closed-loop throughput.
        let saturated = f64::from(c.rate) * 2.0 > three.rps();
        let _ = writeln!(
            out,
            "- Latency at {}/s{}: p50 {} vs {}, p99 {} vs {} (three replicas − one process: \
             p50 {}, p99 {}).",
            c.rate,
            if saturated {
                " (over half the cluster's wrk throughput: queueing, not service time)"
            } else {
                ""
            },
            ms(c.p50_us),
            ms(s.p50_us),
            ms(c.p99_us),
            ms(s.p99_us),
            signed_ms(i128::from(c.p50_us) - i128::from(s.p50_us)),
            signed_ms(i128::from(c.p99_us) - i128::from(s.p99_us))
        );
    }
    match read_json::<CommitResult>(&dir.join("pg-commit.json")) {
        Some(c) => {
            let _ = writeln!(
                out,
                "- PostgreSQL commit, measured apart ({} single-row INSERTs of ~1 KB, each \
                 its own transaction, `synchronous_commit = on`, psql `\\timing`, one \
                 loopback round trip included): p50 {}, p99 {}.",
                c.n,
                ms(c.p50_us),
                ms(c.p99_us)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- PostgreSQL commit latency: not measured in this run."
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_are_the_difference_over_every_replica() {
        let exposition = |counts: [u64; 3], sum: f64| {
            format!(
                "gateway_audit_commit_seconds_sum {sum}\n\
                 gateway_audit_commit_seconds_count {}\n\
                 gateway_audit_commit_seconds_bucket{{le=\"0.001\"}} {}\n\
                 gateway_audit_commit_seconds_bucket{{le=\"0.005\"}} {}\n\
                 gateway_audit_commit_seconds_bucket{{le=\"+Inf\"}} {}\n",
                counts[2], counts[0], counts[1], counts[2]
            )
        };
        // Two replicas: 10 batches before; 110 after, 100 during, of which 60 within
        // 1 ms, 39 more within 5 ms and one slower.
        let before = format!(
            "{}{}",
            exposition([2, 4, 5], 0.01),
            exposition([3, 5, 5], 0.01)
        );
        let after = format!(
            "{}{}",
            exposition([32, 53, 55], 0.11),
            exposition([33, 55, 55], 0.11)
        );
        let commits = commits_between(&commit_buckets(&before), &commit_buckets(&after)).unwrap();
        assert_eq!(commits.batches, 100);
        assert_eq!((commits.p50_le, commits.p99_le), (0.001, 0.005));
        assert!((commits.mean_s - 0.002).abs() < 1e-9);
        assert_eq!(
            commits_between(&commit_buckets(&before), &commit_buckets(&before)),
            None
        );
    }
}
