//! `gateway-bench load`: a fixed-rate, open-loop HTTP client (Debian has no `wrk2`):
//! it sends requests on a schedule whatever the answers do and prints latency
//! percentiles as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Where to POST.
    #[arg(long)]
    url: String,
    /// Requests per second, sent on schedule whatever the answers do.
    #[arg(long)]
    rate: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds at the same rate before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// The request body; `@ID@` is replaced by the next ID of `--ids`.
    #[arg(long)]
    body: String,
    /// A file of subject IDs, one a line, used in turn.
    #[arg(long)]
    ids: PathBuf,
    /// A request header `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A request header whose value is read from a file, `Name: PREFIX@FILE`
    /// (e.g. `authorization: Bearer @token.jwt`); repeatable.
    #[arg(long = "header-file", value_name = "NAME: PREFIX@FILE")]
    header_files: Vec<String>,
    /// A request taking longer than this counts as an error.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// A label carried into the JSON.
    #[arg(long, default_value = "")]
    label: String,
}

/// What `bench load` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LoadResult {
    pub(crate) label: String,
    pub(crate) url: String,
    pub(crate) rate: u32,
    pub(crate) duration_s: u64,
    /// Requests sent in the measured window.
    pub(crate) sent: u64,
    /// Answered 2xx.
    pub(crate) ok: u64,
    /// Answered otherwise, failed or timed out.
    pub(crate) errors: u64,
    /// The first error seen, if any.
    pub(crate) first_error: Option<String>,
    /// Percentiles of the 2xx answers' latency, send to last body byte, µs.
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    /// How late requests left against their schedule (the client keeping up), µs.
    pub(crate) lag_p99_us: u64,
}

struct Sample {
    index: u64,
    latency: Duration,
    lag: Duration,
    error: Option<String>,
}

/// Runs the client on a single-threaded runtime of its own: one client thread competes
/// less with the servers for the machine's cores, which keeps its own scheduling noise
/// out of the latencies it measures.
pub(crate) async fn load(args: LoadArgs) -> Result<(), String> {
    let client = std::thread::Builder::new()
        .name("bench-load".to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the client's runtime: {e}"))?
                .block_on(load_on_this_thread(args))
        })
        .map_err(|e| format!("cannot start the client's thread: {e}"))?;
    tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the client's thread panicked".to_owned())?
}

async fn load_on_this_thread(args: LoadArgs) -> Result<(), String> {
    if args.rate == 0 {
        return Err("--rate must be at least 1".to_owned());
    }
    let ids: Vec<String> = std::fs::read_to_string(&args.ids)
        .map_err(|e| format!("{}: {e}", args.ids.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(format!("{}: no IDs", args.ids.display()));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    for line in &args.headers {
        let (name, value) = header(line)?;
        headers.insert(name, value);
    }
    for line in &args.header_files {
        let (name, spec) = line
            .split_once(':')
            .ok_or_else(|| format!("header `{line}`: expected `Name: PREFIX@FILE`"))?;
        let (prefix, file) = spec
            .trim_start()
            .rsplit_once('@')
            .ok_or_else(|| format!("header `{line}`: expected `Name: PREFIX@FILE`"))?;
        let value = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let (name, value) = header(&format!("{name}: {prefix}{}", value.trim()))?;
        headers.insert(name, value);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .http1_only()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| e.to_string())?;
    let url = Arc::new(args.url.clone());
    let period = Duration::from_secs(1) / args.rate;
    let warmup = args.warmup_s * u64::from(args.rate);
    let total = warmup + args.duration_s * u64::from(args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let offset = period.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
        let at = start + offset;
        tokio::time::sleep_until(at).await;
        let index = usize::try_from(i).unwrap_or(0) % ids.len();
        let body = args.body.replace("@ID@", &ids[index]);
        let client = client.clone();
        let url = url.clone();
        let at = at.into_std();
        tasks.spawn(async move {
            let sent = Instant::now();
            let lag = sent.saturating_duration_since(at);
            let outcome = async {
                let response = client
                    .post(url.as_str())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&bytes);
                    Err(format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ))
                }
            }
            .await;
            Sample {
                index: i,
                latency: sent.elapsed(),
                lag,
                error: outcome.err(),
            }
        });
    }
    let mut latencies = Vec::new();
    let mut lags = Vec::new();
    let mut result = LoadResult {
        label: args.label.clone(),
        url: args.url.clone(),
        rate: args.rate,
        duration_s: args.duration_s,
        ..LoadResult::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let sample = joined.map_err(|e| e.to_string())?;
        if sample.index < warmup {
            continue;
        }
        result.sent += 1;
        lags.push(micros(sample.lag));
        match sample.error {
            None => {
                result.ok += 1;
                latencies.push(micros(sample.latency));
            }
            Some(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    latencies.sort_unstable();
    lags.sort_unstable();
    result.p50_us = percentile(&latencies, 500);
    result.p90_us = percentile(&latencies, 900);
    result.p99_us = percentile(&latencies, 990);
    result.p999_us = percentile(&latencies, 999);
    result.max_us = latencies.last().copied().unwrap_or(0);
    result.lag_p99_us = percentile(&lags, 990);
    let json = serde_json::to_string(&result).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn header(
    line: &str,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header `{line}`: expected `Name: value`"))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("header `{name}`: {e}"))?;
    let value = reqwest::header::HeaderValue::from_str(value.trim())
        .map_err(|e| format!("header `{name}`: {e}"))?;
    Ok((name, value))
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted values, `per_mille` of 1000 (`999` for p999);
/// 0 when there are none.
pub(crate) fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 500), 500);
        assert_eq!(percentile(&values, 990), 990);
        assert_eq!(percentile(&values, 999), 999);
        assert_eq!(percentile(&values, 1000), 1000);
        assert_eq!(percentile(&[], 990), 0);
        assert_eq!(percentile(&[7], 500), 7);
    }
}
