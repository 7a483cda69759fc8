//! The soak's verdict on its targets and its markdown report (`bench/soak.md`): the
//! machine and the load, pass or fail per target, the requests by kind and outcome,
//! and every sample.

use std::fmt::Write as _;
use std::path::Path;

use super::{Kind, Run, Sample};

/// Most growth of RSS and of open files over the last minutes.
const FLAT_GROWTH_PERCENT: f64 = 5.0;
/// How much the last half's p99 may exceed the first half's: 25 %, plus a millisecond
/// (on a shared machine a few hundred µs move by themselves).
const P99_SLACK: f64 = 1.25;
const P99_SLACK_US: f64 = 1000.0;

/// One target, measured.
pub(super) struct Verdict {
    pub(super) target: String,
    pub(super) measured: String,
    pub(super) pass: bool,
}

pub(super) fn utc(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The samples of the last `window_s` seconds of the run.
fn window(run: &Run) -> &[Sample] {
    let end = run.samples.last().map_or(0.0, |s| s.t_s);
    let from = end - run.flat_window_s as f64;
    let first = run
        .samples
        .iter()
        .position(|s| s.t_s >= from - 0.5)
        .unwrap_or(run.samples.len());
    &run.samples[first..]
}

fn median3(values: &[u64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0) as f64
}

/// Growth from the start of the window to its end, each the median of three samples
/// (one sample alone moves with the allocator's timing): (start, end, %).
fn growth(samples: &[Sample], value: fn(&Sample) -> u64) -> Option<(f64, f64, f64)> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len().min(3);
    let values: Vec<u64> = samples.iter().map(value).collect();
    let start = median3(&values[..n]);
    let end = median3(&values[values.len() - n..]);
    (start > 0.0).then(|| (start, end, (end - start) / start * 100.0))
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn minutes(s: u64) -> String {
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

pub(super) fn verdicts(run: &Run) -> Vec<Verdict> {
    let samples = window(run);
    let span = minutes(run.flat_window_s);
    let flat = |name: &str, unit: &str, scale: f64, value: fn(&Sample) -> u64| match growth(
        samples, value,
    ) {
        Some((start, end, percent)) => Verdict {
            target: format!("{name} growth over the last {span} < {FLAT_GROWTH_PERCENT} %"),
            measured: format!(
                "{percent:+.1} % ({:.1} → {:.1} {unit})",
                start / scale,
                end / scale
            ),
            pass: percent < FLAT_GROWTH_PERCENT,
        },
        None => Verdict {
            target: format!("{name} growth over the last {span} < {FLAT_GROWTH_PERCENT} %"),
            measured: "too few samples".to_owned(),
            pass: false,
        },
    };
    let [(_, first), (_, last)] = run.halves;
    let allowed = first as f64 * P99_SLACK + P99_SLACK_US;
    let errors: u64 = run
        .totals
        .values()
        .map(|t| t.errors.values().sum::<u64>())
        .sum();
    let intended: u64 = run
        .totals
        .values()
        .map(|t| t.intended.values().sum::<u64>())
        .sum();
    vec![
        flat("RSS", "MiB", 1024.0, |s| s.rss_kib),
        flat("open files (not sockets)", "fds", 1.0, |s| s.fds),
        Verdict {
            target: "p99 flat: last half ≤ first half × 1.25 + 1 ms (after warm-up)".to_owned(),
            measured: format!(
                "{} ms → {} ms (allowed {:.2} ms)",
                ms(first),
                ms(last),
                allowed / 1000.0
            ),
            pass: first > 0 && (last as f64) <= allowed,
        },
        Verdict {
            target: "0 errors other than intended 429s and refusals".to_owned(),
            measured: format!("{errors} errors, {intended} intended refusals"),
            pass: errors == 0,
        },
    ]
}

pub(super) fn markdown(run: &Run, verdicts: &[Verdict], png: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Soak results\n");
    let _ = writeln!(
        out,
        "Written by `bench/soak` (see [README.md](README.md#soak)): the gateway under a steady \
         mixed load, its process sampled every {} s.\n",
        sample_every(run)
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| started | {} |", run.started);
    let _ = writeln!(
        out,
        "| duration | {} ({} s), warm-up {} s |",
        minutes(run.duration_s),
        run.duration_s,
        run.warmup_s
    );
    let _ = writeln!(out, "| load | {} |", run.load);
    for (key, value) in run.about.iter().chain(&run.machine) {
        let _ = writeln!(out, "| {key} | {value} |");
    }
    let measured: Vec<&Sample> = run.samples.iter().skip(1).collect();
    if !measured.is_empty() {
        let n = measured.len() as f64;
        let mean = |f: fn(&Sample) -> f64| measured.iter().map(|s| f(s)).sum::<f64>() / n;
        let max = |f: fn(&Sample) -> f64| measured.iter().map(|s| f(s)).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| other work on the machine | the machine's other processes (not the gateway, the departments or the load client) used {:.0} % of a core on average, {:.0} % at most (of {} cores); load average {:.2} on average, {:.2} at most; the gateway used {:.0} % of a core on average |",
            mean(|s| s.other_cpu),
            max(|s| s.other_cpu),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            mean(|s| s.load1),
            max(|s| s.load1),
            mean(|s| s.gateway_cpu),
        );
    }

    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(out, "| target | measured | result |\n| --- | --- | --- |");
    for v in verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | **{}** |",
            v.target,
            v.measured,
            if v.pass { "pass" } else { "FAIL" }
        );
    }
    let [(p50a, p99a), (p50b, p99b)] = run.halves;
    let _ = writeln!(
        out,
        "\nAll requests after warm-up: first half p50 {} ms, p99 {} ms; last half p50 {} ms, p99 {} ms.",
        ms(p50a),
        ms(p99a),
        ms(p50b),
        ms(p99b)
    );

    let _ = writeln!(out, "\n## Requests\n");
    let _ = writeln!(
        out,
        "| kind | requests | ok | intended refusals | errors |\n| --- | ---: | ---: | ---: | --- |"
    );
    for kind in Kind::ALL {
        let Some(t) = run.totals.get(&kind) else {
            continue;
        };
        let list = |m: &std::collections::BTreeMap<String, u64>| {
            if m.is_empty() {
                "0".to_owned()
            } else {
                m.iter()
                    .map(|(k, n)| format!("{n} × {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            kind.name(),
            t.requests,
            t.ok,
            list(&t.intended),
            list(&t.errors)
        );
    }

    let _ = writeln!(out, "\n## Samples\n");
    let file = png
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let _ = writeln!(
        out,
        "![RSS, open files, threads and p99 against time]({file})\n"
    );
    let _ = writeln!(
        out,
        "Requests and latencies are of the requests answered in the interval before each \
         sample (all kinds; lookups alone in their own column; the slowest admin request — a \
         configuration change or revocation step — beside them). CPU is % of one core over the \
         interval; \"other\" is the machine's CPU used by anything but the gateway, the \
         simulated departments and the load client. The audit queue is \
         `gateway_audit_queue_depth` from `/metrics`. Files are the gateway's open \
         descriptors other than sockets (a leaked file, pipe or event fd grows them); \
         sockets are counted apart, as they follow how many connections the load client \
         keeps open.\n"
    );
    let _ = writeln!(
        out,
        "| t (s) | RSS (MiB) | files | sockets | threads | gateway CPU % | other CPU % | load | requests | p50 (ms) | p99 (ms) | lookup p99 (ms) | slowest admin (ms) | intended | errors | audit queue |"
    );
    let _ = writeln!(
        out,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    );
    for s in &run.samples {
        let errors = if s.errors.is_empty() {
            "0".to_owned()
        } else {
            s.errors
                .iter()
                .map(|(k, n)| format!("{n} × {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| {:.0} | {:.1} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.t_s,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.sockets,
            s.threads,
            s.gateway_cpu,
            s.other_cpu,
            s.load1,
            s.requests,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.lookup_p99_us),
            ms(s.admin_max_us),
            s.intended,
            errors,
            s.audit_queue
                .map_or_else(|| "–".to_owned(), |q| format!("{q:.0}")),
        );
    }
    out
}

fn sample_every(run: &Run) -> String {
    run.samples
        .get(1)
        .map_or_else(|| "?".to_owned(), |s| format!("{:.0}", s.t_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, rss_kib: u64) -> Sample {
        Sample {
            t_s,
            rss_kib,
            fds: 40,
            ..Sample::default()
        }
    }

    #[test]
    fn growth_compares_medians_of_three_at_each_end_of_the_window() {
        let samples = [
            at(0.0, 100),
            at(1.0, 300),
            at(2.0, 100),
            at(3.0, 104),
            at(4.0, 105),
            at(5.0, 104),
        ];
        let (start, end, percent) = growth(&samples, |s| s.rss_kib).expect("enough samples");
        assert_eq!((start, end), (100.0, 104.0));
        assert!((percent - 4.0).abs() < 1e-9);
        assert!(growth(&samples[..1], |s| s.rss_kib).is_none());
    }
}
