//! `GET /metrics`: the gateway's counters in the Prometheus / OpenMetrics text format —
//! requests by route, method and status class, department calls by connector,
//! operation and outcome, and policy decisions, with their durations
//! ([`crate::traffic`]); the configuration version in force; record cache hits,
//! misses, entries and bytes per connector, requests refused by
//! each kind of rate limit, how long the audit writer takes to commit a batch, and
//! how far each audit witness is behind. Counts only: no
//! user, township, subject or key appears.
//! The counters live where they are counted (the caches, the limiters) and are read
//! at scrape time. On the gateway's listener `/metrics` answers operators only; the
//! optional metrics listener (`metrics_listen`, e.g. `127.0.0.1:9464`) answers
//! without a token and serves nothing else.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::problem::{Problem, ProblemKind};
use crate::app::App;
use crate::audit::commit_times::CommitSnapshot;

type Labels = Vec<(String, String)>;

/// The OpenMetrics text media type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics` on the gateway's own listener: operators only (the counts say how
/// busy each department is, and who is being refused).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    summary = "Metrics (OpenMetrics text)",
    description = "The gateway's counters in the OpenMetrics text format (RED by route \
        template, department calls by connector, operation and outcome, policy decisions, the \
        configuration version in force, caches, rate-limit refusals, audit commit times, \
        witnesses). Every label comes from a fixed set; no personal data. Operators only on the \
        gateway's listener; the optional metrics listener (`metrics_listen`, a private \
        address) serves the same at `/metrics` without a token.",
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "The exposition.", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
            example = "# TYPE gateway_config info\n# HELP gateway_config The configuration in force: its version\ngateway_config_info{version=\"5f0c3a9e27d1b844\"} 1\n# EOF\n"),
        MetricsProblems,
    ),
)]
pub(crate) async fn metrics(
    State(app): State<App>,
    super::RequestId(request_id): super::RequestId,
    super::Authenticated(caller): super::Authenticated,
) -> Response {
    if !caller.has_role(crate::auth::Role::Operator) {
        return Problem::new(
            ProblemKind::Forbidden,
            "The metrics are for operators; scrape them with an operator's token, or on the metrics listener (`metrics_listen` in gateway.yaml).",
        )
        .with("reason", "role")
        .for_request(&request_id)
        .into_response();
    }
    exposition(State(app)).await
}

crate::problems!(MetricsProblems = [Unauthenticated, Forbidden]);

/// `GET /metrics` on the separate metrics listener (`metrics_listen`), which the
/// operator keeps on a private address: no token.
pub(crate) async fn exposition(State(app): State<App>) -> Response {
    match render(&app).await {
        Ok(text) => {
            let mut response = text.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
        }
        Err(_) => {
            Problem::new(ProblemKind::Internal, "The metrics could not be written.").into_response()
        }
    }
}

/// The current counters as OpenMetrics text.
pub async fn render(app: &App) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("gateway");
    let hits = Family::<Labels, Counter>::default();
    let misses = Family::<Labels, Counter>::default();
    let entries = Family::<Labels, Gauge>::default();
    let bytes = Family::<Labels, Gauge>::default();
    let config = app.config.load_full();
    for (id, connector) in &config.connectors {
        let Some(cache) = &connector.cache else {
            continue;
        };
        let stats = cache.stats().await;
        let labels = vec![("connector".to_owned(), id.clone())];
        hits.get_or_create(&labels).inc_by(stats.hits);
        misses.get_or_create(&labels).inc_by(stats.misses);
        entries
            .get_or_create(&labels)
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
        bytes
            .get_or_create(&labels)
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
    }
    registry.register(
        "cache_hits",
        "Lookups answered from a connector's record cache",
        hits,
    );
    registry.register(
        "cache_misses",
        "Lookups that called the department (the cache had no fresh record)",
        misses,
    );
    registry.register(
        "cache_entries",
        "Records held in a connector's cache",
        entries,
    );
    registry.register(
        "cache_bytes",
        "Approximate memory held by a connector's cache",
        bytes,
    );
    let refused = Family::<Labels, Counter>::default();
    for (limit, count) in app.limits.refused() {
        refused
            .get_or_create(&vec![("limit".to_owned(), limit.to_owned())])
            .inc_by(count);
    }
    registry.register(
        "rate_limited",
        "Requests refused by a rate limit, by kind (user, township, grant, grant_user_share, connector)",
        refused,
    );
    let buckets = Gauge::<i64>::default();
    buckets.set(i64::try_from(app.limits.buckets()).unwrap_or(i64::MAX));
    registry.register(
        "rate_limit_buckets",
        "Rate-limit buckets held in memory (idle ones are swept)",
        buckets,
    );
    if let Some(redis) = &app.redis_limits {
        let degraded = Gauge::<i64>::default();
        degraded.set(i64::from(redis.degraded()));
        registry.register(
            "rate_limits_degraded",
            "1 while Redis cannot be reached and this replica enforces its share of each limit alone (or refuses, with `fallback: closed`)",
            degraded,
        );
        let outages = Counter::<u64>::default();
        outages.inc_by(redis.outages());
        registry.register(
            "rate_limits_redis_outages",
            "Times this replica lost Redis and fell back",
            outages,
        );
        let fallback = Counter::<u64>::default();
        fallback.inc_by(redis.fallback_takes());
        registry.register(
            "rate_limits_fallback_takes",
            "Limit checks answered without Redis (by the fallback)",
            fallback,
        );
    }
    register_witnesses(&mut registry, app);
    if let Some(times) = app.audit.commit_times() {
        registry.register(
            "audit_commit_seconds",
            "Time the audit writer took to make one batch of events durable (inserts, commit and sync), before any of its requests was answered",
            CommitHistogram(times.snapshot()),
        );
    }
    if let Some(queued) = app.audit.queued() {
        let depth = Gauge::<i64>::default();
        depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
        registry.register(
            "audit_queue_depth",
            "Places taken in the audit writer's queue: events (or a form fill's events together) waiting to be made durable",
            depth,
        );
    }
    app.traffic.register(&mut registry);
    registry.register(
        "config",
        "The configuration in force: its version",
        Info::new(vec![("version".to_owned(), config.version.clone())]),
    );
    let counters = Gauge::<i64>::default();
    counters.set(i64::try_from(app.limits.day_counters()).unwrap_or(i64::MAX));
    registry.register(
        "quota_day_counters",
        "Daily quota counters held (today's; kept in the store)",
        counters,
    );
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// The audit writer's batch times, as a histogram read at scrape time.
#[derive(Debug)]
struct CommitHistogram(CommitSnapshot);

impl EncodeMetric for CommitHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum_s, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Per witness (by its configured name): the seq it holds, the checkpoints and events
/// it has not acknowledged yet, and the failed attempts to deliver them.
fn register_witnesses(registry: &mut Registry, app: &App) {
    if app.witnesses.is_empty() {
        return;
    }
    let held = Family::<Labels, Gauge>::default();
    let pending = Family::<Labels, Gauge>::default();
    let lag = Family::<Labels, Gauge>::default();
    let failures = Family::<Labels, Counter>::default();
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for status in app.witnesses.iter() {
        let labels = vec![("witness".to_owned(), status.name.clone())];
        held.get_or_create(&labels)
            .set(gauge(status.acknowledged()));
        pending.get_or_create(&labels).set(gauge(status.pending()));
        lag.get_or_create(&labels).set(gauge(status.lag_events()));
        failures.get_or_create(&labels).inc_by(status.failures());
    }
    registry.register(
        "witness_acknowledged_seq",
        "The seq of the newest audit checkpoint a witness holds (on PostgreSQL: county checkpoint)",
        held,
    );
    registry.register(
        "witness_pending_checkpoints",
        "Audit checkpoints a witness has not acknowledged yet",
        pending,
    );
    registry.register(
        "witness_lag_events",
        "Audit events signed by checkpoints a witness does not hold yet (on PostgreSQL: county checkpoints)",
        lag,
    );
    registry.register(
        "witness_failures",
        "Attempts to deliver audit checkpoints to a witness that failed",
        failures,
    );
}
