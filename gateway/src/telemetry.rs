//! Traces: where they go and how a request joins one. Off unless configured — by
//! `telemetry:` in `gateway.yaml` or by the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables — and then exported over OTLP/HTTP
//! with protobuf, in batches from a thread of their own (hence the blocking HTTP
//! client), flushed when the process stops.
//!
//! Only spans are exported, never log events: a span's fields are ids and outcomes
//! (connector, operation, purpose, township, outcome, problem type, cache hit, audit
//! sequence), chosen where each span is made; log lines may say more. A caller's W3C
//! `traceparent` makes its trace the request's parent ([`join`]), and the department
//! call's span travels on to the department ([`traceparent`]). With tracing off, the
//! caller's `traceparent` is passed on unchanged, so a trace crosses the gateway
//! without it taking part.

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::registry::LookupSpan;

/// `telemetry:` in `gateway.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base address (`http://collector:4318`); traces go to
    /// its `/v1/traces`. Without it, `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` decide, and without those nothing is sent.
    #[serde(default)]
    pub endpoint: Option<url::Url>,
    /// The service name traces carry (default `county-gateway`, or `OTEL_SERVICE_NAME`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// The share of requests traced when the caller did not decide (0.0–1.0, default
    /// 1.0); a caller's sampled `traceparent` is always followed.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
}

/// The default service name.
const SERVICE: &str = "county-gateway";
/// How long a shutdown waits for the last batch to reach the collector.
const FLUSH: Duration = Duration::from_secs(5);

impl TelemetrySettings {
    /// What is wrong with these settings, for `gateway check` and loading.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.endpoint {
            if !matches!(url.scheme(), "http" | "https") {
                problems.push("telemetry.endpoint must be an http:// or https:// address".into());
            }
            if !url.username().is_empty() || url.password().is_some() {
                problems.push(
                    "telemetry.endpoint must not carry credentials; give them in OTEL_EXPORTER_OTLP_HEADERS".into(),
                );
            }
            if url.query().is_some() || url.fragment().is_some() {
                problems.push("telemetry.endpoint takes no query or fragment".into());
            }
        }
        if let Some(ratio) = self.sample_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            problems.push("telemetry.sample_ratio must be between 0.0 and 1.0".into());
        }
        if let Some(name) = &self.service_name
            && (name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            problems.push(
                "telemetry.service_name must be 1–64 letters, digits, '-', '_' or '.'".into(),
            );
        }
        problems
    }

    /// Whether traces are exported: an endpoint is configured here or in the
    /// environment, and the environment does not switch them off.
    fn enabled(&self) -> bool {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return false;
        }
        self.endpoint.is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    }
}

/// The exporting side of traces, held by `main` until the process stops.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Sends what is still queued and stops the exporter's thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH) {
            tracing::warn!(error = %e, "traces: the last spans could not be sent");
        }
    }
}

/// The tracing layer that exports spans, and the handle that flushes them; `None`
/// when traces are off. Fails on settings the exporter cannot use.
pub fn layer<S>(
    settings: &TelemetrySettings,
) -> Result<Option<(impl Layer<S> + Send + Sync + 'static, Tracing)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if !settings.enabled() {
        return Ok(None);
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(base) = &settings.endpoint {
        let path = base.path().trim_end_matches('/');
        let mut url = base.clone();
        url.set_path(&format!("{path}/v1/traces"));
        exporter = exporter.with_endpoint(url.as_str());
    }
    let exporter = exporter.build().map_err(|e| format!("traces: {e}"))?;
    let name = settings
        .service_name
        .clone()
        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
        .unwrap_or_else(|| SERVICE.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let mut provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource);
    if let Some(ratio) = settings.sample_ratio {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio),
        )));
    }
    let provider = provider.build();
    let tracer = provider.tracer("gateway");
    // The gateway's own spans only (not its dependencies'), and spans only: log
    // events stay in the log.
    let ours = Targets::new()
        .with_target("gateway", tracing::Level::INFO)
        .with_target("connectors", tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(ours.and(filter_fn(|meta| meta.is_span())));
    Ok(Some((layer, Tracing { provider })))
}

/// Makes the caller's trace, from a valid W3C `traceparent` header, the parent of
/// `span` (the request's). Nothing happens with tracing off or without one.
pub fn join(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when tracing is off, where there is nothing to join.
        let _ = span.set_parent(parent);
    }
}

tokio::task_local! {
    /// The caller's `traceparent`, as it came, while its request is served.
    static INCOMING: Option<String>;
}

/// The caller's `traceparent` header, when it is well formed.
pub fn incoming(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .filter(|value| valid_traceparent(value))
        .map(str::to_owned)
}

/// Runs `serving` (a request's handling) with the caller's `traceparent`
/// ([`incoming`]) at hand, for [`traceparent`] to pass on when traces are off.
pub async fn carrying<F: std::future::Future>(incoming: Option<String>, serving: F) -> F::Output {
    INCOMING.scope(incoming, serving).await
}

/// The `traceparent` to send a department from within `span`: the span's own when
/// traces are on, else the caller's as it came (when valid), else none.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        return carrier.remove("traceparent");
    }
    INCOMING.try_with(Clone::clone).ok().flatten()
}

/// A `traceparent` of version 00 with non-zero ids: `00-<32 hex>-<16 hex>-<2 hex>`.
fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_passed_on_only_when_it_is_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid_traceparent(good));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-13990119750327229X0000000000000-00f067aa0ba902b7-01",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?} passed");
        }
    }

    #[tokio::test]
    async fn with_traces_off_the_callers_traceparent_travels_on_unless_malformed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let passed_on = |value: &'static str| async move {
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static(value));
            carrying(incoming(&headers), async {
                traceparent(&tracing::Span::none())
            })
            .await
        };
        assert_eq!(passed_on(good).await.as_deref(), Some(good));
        assert_eq!(passed_on("00-junk").await, None);
        let none = carrying(None, async { traceparent(&tracing::Span::none()) });
        assert_eq!(none.await, None);
        // Outside a request: nothing.
        assert_eq!(traceparent(&tracing::Span::none()), None);
    }

    #[test]
    fn settings_refuse_credentials_bad_schemes_and_ratios() {
        let parse = |yaml: &str| -> TelemetrySettings {
            serde_yaml_ng::from_str(yaml).expect("telemetry settings parse")
        };
        assert!(
            parse("endpoint: http://collector:4318")
                .problems()
                .is_empty()
        );
        for bad in [
            "endpoint: http://user:secret@collector:4318",
            "endpoint: ftp://collector",
            "endpoint: http://collector:4318/?token=x",
            "sample_ratio: 1.5",
            "service_name: 'a b'",
        ] {
            let problems = parse(bad).problems();
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(!problems[0].contains("secret"), "{problems:?}");
        }
        assert!(serde_yaml_ng::from_str::<TelemetrySettings>("endpont: x").is_err());
    }
}
