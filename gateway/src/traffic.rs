//! The gateway's RED counters — rate, errors, duration — for `/metrics`: requests by
//! route template, method and status class, with a duration histogram by route;
//! department calls by connector, operation and outcome, with a duration histogram
//! by connector and operation; policy decisions by outcome and reason. They are
//! counted where they happen and read at scrape time.
//!
//! Every label value comes from a fixed set: the router's route templates, the HTTP
//! methods, status classes, the ids of configured connectors and operations, and the
//! outcome and reason names below. A user, a township, a subject, a path with values
//! or anything else a caller typed never becomes a label.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use connectors::FetchError;

type Labels<const N: usize> = [(&'static str, String); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// 0.5 ms to about 8 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
}

/// The RED counters. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Traffic {
    requests: Family<Labels<3>, Counter>,
    request_seconds: Histograms<1>,
    upstream_calls: Family<Labels<3>, Counter>,
    upstream_seconds: Histograms<2>,
    decisions: Family<Labels<2>, Counter>,
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(seconds),
            upstream_calls: Family::default(),
            upstream_seconds: Family::new_with_constructor(seconds),
            decisions: Family::default(),
        }
    }
}

/// How a department call ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome<'a> {
    /// A record, valid against its schema.
    Record,
    /// A record that failed its schema check.
    Schema,
    /// Refused before the call: the department's capacity was used up.
    Busy,
    /// The call's own end.
    Failed(&'a FetchError),
}

impl CallOutcome<'_> {
    /// The label value: one of `ok`, `schema`, `busy`, `not_found`, `timeout`,
    /// `unavailable`, `status`, `rejected`, `oversize`, `malformed`, `mapping`,
    /// `unknown_operation`, `front_database`.
    pub fn name(self) -> &'static str {
        match self {
            CallOutcome::Record => "ok",
            CallOutcome::Schema => "schema",
            CallOutcome::Busy => "busy",
            CallOutcome::Failed(error) => match error {
                FetchError::NotFound => "not_found",
                FetchError::Timeout => "timeout",
                FetchError::Unavailable => "unavailable",
                FetchError::Status(_) => "status",
                FetchError::Rejected => "rejected",
                FetchError::Oversize { .. } => "oversize",
                FetchError::Malformed => "malformed",
                FetchError::Mapping(_) => "mapping",
                FetchError::UnknownOperation => "unknown_operation",
                FetchError::FrontDatabase(_) => "front_database",
            },
        }
    }
}

/// The `method` label: the standard methods by name, anything else `other`.
pub fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `status` label: `1xx` … `5xx`.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Traffic {
    /// One request answered: `route` is the route template it matched (or
    /// `(unmatched)`), never the path.
    pub fn request(&self, route: &str, method: &http::Method, status: u16, took: Duration) {
        self.requests
            .get_or_create(&[
                ("route", route.to_owned()),
                ("method", method_name(method).to_owned()),
                ("status", status_class(status).to_owned()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&[("route", route.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// One department call of a configured connector's operation (`took`: `None`
    /// when nothing was sent).
    pub fn upstream(
        &self,
        connector: &str,
        operation: &str,
        outcome: CallOutcome<'_>,
        took: Option<Duration>,
    ) {
        self.upstream_calls
            .get_or_create(&[
                ("connector", connector.to_owned()),
                ("operation", operation.to_owned()),
                ("outcome", outcome.name().to_owned()),
            ])
            .inc();
        if let Some(took) = took {
            self.upstream_seconds
                .get_or_create(&[
                    ("connector", connector.to_owned()),
                    ("operation", operation.to_owned()),
                ])
                .observe(took.as_secs_f64());
        }
    }

    /// One policy decision on a lookup: `allowed` (reason `granted`), or `refused`
    /// with the refusal's reason (`role`, `denied_by_rule`, `row_condition`,
    /// `jurisdiction`).
    pub fn decision(&self, outcome: &'static str, reason: &'static str) {
        self.decisions
            .get_or_create(&[
                ("outcome", outcome.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// Adds the counters to `registry` (prefixed as the registry is).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "Requests answered, by route template, method and status class",
            self.requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time from a request's arrival to its answer, by route template",
            self.request_seconds.clone(),
        );
        registry.register(
            "upstream_calls",
            "Department calls, by connector, operation and outcome (ok, schema, busy, or how the call failed)",
            self.upstream_calls.clone(),
        );
        registry.register(
            "upstream_seconds",
            "Time a department took to answer a call (sent to the whole answer read), by connector and operation",
            self.upstream_seconds.clone(),
        );
        registry.register(
            "policy_decisions",
            "Policy decisions on lookups, by outcome (allowed, refused) and reason",
            self.decisions.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets() {
        assert_eq!(
            method_name(&http::Method::from_bytes(b"BREW").unwrap()),
            "other"
        );
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(599), "5xx");
        let mut registry = Registry::default();
        let traffic = Traffic::default();
        traffic.request(
            "/v1/query",
            &http::Method::POST,
            200,
            Duration::from_millis(3),
        );
        traffic.upstream(
            "hukou",
            "person_by_id",
            CallOutcome::Record,
            Some(Duration::from_millis(2)),
        );
        traffic.decision("refused", "jurisdiction");
        traffic.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"http_requests_total{route="/v1/query",method="POST",status="2xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"upstream_calls_total{connector="hukou",operation="person_by_id",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"policy_decisions_total{outcome="refused",reason="jurisdiction"} 1"#),
            "{text}"
        );
    }
}
