//! One trial call to a department for an administrator: whether the answer fits the
//! connector's mapping and schema, and how long it took. What the audit log keeps of
//! it is the subject's pseudonym and masked form, the latency and the outcome — never
//! the record.

use std::fmt;

use crate::app::App;
use crate::audit::AuditEvent;
use crate::config::{ActiveConnector, ActiveOperation};
use crate::lookup::SubjectKeyValue;

/// How a trial call went.
#[derive(Clone)]
pub struct Tried {
    /// The answer fits (or the department does not know the sample: `not_found` is an
    /// answer that fits).
    pub ok: bool,
    /// `conforms`, `not_found`, `schema_violation`, `mapping_violation`, `timed_out`,
    /// `malformed`, `oversize` or `upstream_error`.
    pub outcome: &'static str,
    /// Milliseconds, to a tenth.
    pub latency_ms: f64,
    /// Where the record broke the schema: (schema path, instance path).
    pub violation: Option<(String, String)>,
    /// The connector's words for what went wrong (no record content).
    pub problem: Option<String>,
    /// The canonical record, for the department's own admin only (see
    /// [`super::test`]); never stored.
    pub record: Option<serde_json::Value>,
}

impl fmt::Debug for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tried")
            .field("ok", &self.ok)
            .field("outcome", &self.outcome)
            .field("latency_ms", &self.latency_ms)
            .field("violation", &self.violation)
            .field("record", &self.record.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

impl Tried {
    /// The trial as the admin API answers it: whether it fits, never the data.
    pub fn to_json(&self) -> serde_json::Value {
        let mut answer = serde_json::json!({
            "ok": self.ok,
            "outcome": self.outcome,
            "latency_ms": self.latency_ms,
        });
        if let Some((schema_path, instance_path)) = &self.violation {
            answer["violation"] =
                serde_json::json!({ "schema_path": schema_path, "instance_path": instance_path });
        }
        if let Some(problem) = &self.problem {
            answer["problem"] = serde_json::json!(problem);
        }
        answer
    }
}

/// Calls the department once for `operation` with `subject`. Fills `event` (the
/// subject's pseudonym and masked form, latency, outcome) for the audit log.
pub async fn try_operation(
    app: &App,
    connector: &ActiveConnector,
    operation: &str,
    op: &ActiveOperation,
    subject: &SubjectKeyValue,
    event: &mut AuditEvent,
) -> Tried {
    event.subject_pseudonym = Some(app.pseudonym.pseudonym(subject.as_str()));
    event.subject_masked = Some(subject.masked());
    let started = std::time::Instant::now();
    let context = connectors::FetchContext::default();
    let fetched = connector
        .connector
        .fetch(operation, subject.as_str(), &context)
        .await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    event.upstream_latency_ms = u64::try_from(elapsed.as_millis()).ok();
    let (outcome, violation) = match &fetched {
        Ok(f) => match op.schema.check(&f.record) {
            Ok(()) => ("conforms", None),
            Err(v) => ("schema_violation", Some((v.schema_path, v.instance_path))),
        },
        Err(connectors::FetchError::NotFound) => ("not_found", None),
        Err(connectors::FetchError::Mapping(_)) => ("mapping_violation", None),
        Err(connectors::FetchError::Timeout) => ("timed_out", None),
        Err(connectors::FetchError::Malformed) => ("malformed", None),
        Err(connectors::FetchError::Oversize { .. }) => ("oversize", None),
        Err(connectors::FetchError::FrontDatabase(_)) => ("front_database", None),
        Err(_) => ("upstream_error", None),
    };
    if let Some(operation) = &event.operation {
        event.operation = Some(format!("{operation} outcome={outcome}"));
    }
    let (record, problem) = match fetched {
        Ok(f) if outcome == "conforms" => (Some(f.record), None),
        Ok(_) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Tried {
        ok: outcome == "conforms" || outcome == "not_found",
        outcome,
        latency_ms: (latency_ms * 10.0).round() / 10.0,
        violation,
        problem,
        record,
    }
}
