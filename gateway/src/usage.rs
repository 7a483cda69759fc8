//! How a connector's data is used, counted from the audit log (the gateway's own
//! record of every call): for its department's admin, lookups per township, purpose
//! and operation over a period ([`usage`], "who used my data"), and the department's
//! health over the last hour ([`health`]: answers, errors, median latency). Counts
//! only — never a subject, a user or a value.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::app::App;
use crate::audit::{EventKind, Filter};
use crate::problem::{Problem, ProblemKind};

/// The most audit events one count reads; a period with more is counted up to there
/// and says so.
pub const MAX_EVENTS: usize = 200_000;

/// Lookups of one township, purpose and operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UseKey {
    pub township: String,
    pub purpose: String,
    pub operation: String,
}

/// How often, with what outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseCount {
    /// Answered (2xx).
    pub answered: u64,
    /// Refused by policy or limits (4xx).
    pub refused: u64,
    /// Failed (5xx).
    pub failed: u64,
}

/// The counts of a period.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub rows: BTreeMap<UseKey, UseCount>,
    /// More events than [`MAX_EVENTS`] were in the period: the counts stop there.
    pub truncated: bool,
}

/// Reads the lookups of `connector` in `[from, until)` (RFC 3339), at most
/// [`MAX_EVENTS`], calling `each` on every one.
async fn lookups(
    app: &App,
    connector: &str,
    from: String,
    until: Option<String>,
    mut each: impl FnMut(&crate::audit::AuditEvent),
) -> Result<bool, Problem> {
    let filter = Filter {
        connector: Some(connector.to_owned()),
        from: Some(from),
        until,
        ..Filter::default()
    };
    let mut stream = app.audit_reader.events(filter);
    let mut read = 0usize;
    while let Some(item) = stream.next().await {
        let stored = item.map_err(|e| {
            tracing::error!(error = %e, "the audit log could not be read for usage counts");
            Problem::new(
                ProblemKind::AuditUnavailable,
                "The audit log cannot be read right now.",
            )
        })?;
        read += 1;
        if read > MAX_EVENTS {
            return Ok(true);
        }
        if stored.event.kind == EventKind::Lookup {
            each(&stored.event);
        }
    }
    Ok(false)
}

/// Lookups of `connector` per township, purpose and operation in `[from, until)`.
/// The caller checks that the person may see the connector's usage.
pub async fn usage(
    app: &App,
    connector: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Usage, Problem> {
    let mut usage = Usage::default();
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    usage.truncated = lookups(app, connector, stamp(from), Some(stamp(until)), |event| {
        let key = UseKey {
            township: event.caller.township.clone().unwrap_or_default(),
            purpose: event.purpose.clone().unwrap_or_default(),
            operation: event.operation.clone().unwrap_or_default(),
        };
        let count = usage.rows.entry(key).or_default();
        match event.outcome.status {
            200..=299 => count.answered += 1,
            400..=499 => count.refused += 1,
            _ => count.failed += 1,
        }
    })
    .await?;
    Ok(usage)
}

/// A department's answers over the last hour, through one connector.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// Calls the department answered (from the department, not the cache).
    pub answers: u64,
    /// Calls that failed at the department (5xx: unreachable, slow, malformed).
    pub errors: u64,
    /// The median time the department took, in milliseconds.
    pub median_ms: Option<u64>,
}

/// The department's health behind `connector` over the hour before `now`.
pub async fn health(app: &App, connector: &str, now: DateTime<Utc>) -> Result<Health, Problem> {
    let from =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut health = Health::default();
    let mut latencies = Vec::new();
    lookups(app, connector, from, None, |event| {
        if event.cache_hit {
            return;
        }
        match event.outcome.status {
            200..=299 | 404 => health.answers += 1,
            500..=599 => health.errors += 1,
            _ => return,
        }
        if let Some(ms) = event.upstream_latency_ms {
            latencies.push(ms);
        }
    })
    .await?;
    latencies.sort_unstable();
    health.median_ms = latencies.get(latencies.len() / 2).copied();
    Ok(health)
}
