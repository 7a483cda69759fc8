//! Traces: the real `gateway` binary exports a lookup's and a form fill's spans over
//! OTLP/HTTP (protobuf) to a receiver in this test, joined to the caller's trace and
//! passed on to the departments; with traces off, a caller's `traceparent` still
//! reaches the department unchanged.

use std::sync::Arc;

use tokio::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::binary::{Running, at_departments, keygen, mint_clerk, url_in, write_county};
use crate::helpers::{TOWNSHIP, TestGateway, client, lookup, population, sample};

/// The caller's trace: its id and the caller's own span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver on a free port, keeping every span it is sent.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn export(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> Vec<u8> {
            let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
            let mut kept = spans.lock().await;
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    kept.extend(scope.spans);
                }
            }
            ExportTraceServiceResponse::default().encode_to_vec()
        }
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, spans }
    }

    async fn spans(&self) -> Vec<Span> {
        self.spans.lock().await.clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's string and integer attributes, as text.
fn attributes(span: &Span) -> Vec<(String, String)> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    attributes(span)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Every string in `value` of four characters or more: the values a record carries.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.chars().count() >= 4 => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The strings of a filled form's field values (under `value` keys).
fn field_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| field_values(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                if key == "value" {
                    strings(v, out);
                } else {
                    field_values(v, out);
                }
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_lookup_and_a_fill_are_traced_across_gateway_and_departments_without_personal_data() {
    let receiver = Receiver::start().await;
    let departments = sim::spawn_all(population().clone(), [127, 0, 0, 1].into())
        .await
        .expect("departments start");
    let urls = departments
        .iter()
        .map(|d| (d.department.id().to_owned(), d.base_url()))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = format!(
        "\ntelemetry:\n  endpoint: {}\n  service_name: county-gateway-test\n",
        receiver.url
    );
    write_county(dir.path(), |path, text| {
        let text = at_departments(path, text, &urls);
        if path == "county/gateway.yaml" {
            text + &telemetry
        } else {
            text
        }
    });
    let data_dir = dir.path().join("data");
    keygen(&data_dir.join("keys")).await;
    let token = mint_clerk(&data_dir.join("keys")).await;
    let config = dir.path().join("county/gateway.yaml");
    let mut serve = Running::spawn(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let base = url_in(&serve.line(|l| l.contains("http://")).await);

    // A lookup, in the caller's trace.
    let person = sample(SampleKind::MarriedParent);
    let parent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let response = client()
        .post(format!("{base}/v1/query"))
        .bearer_auth(&token)
        .header("traceparent", &parent)
        .json(&lookup("hukou", "person_by_id", person.id.as_str()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    let hukou = departments
        .iter()
        .find(|d| d.department == Department::Hukou)
        .expect("hukou");
    let heard = hukou
        .faults
        .last_traceparent()
        .expect("hukou heard a traceparent");

    // A form fill, in a trace of its own.
    let filled = client()
        .post(format!("{base}/v1/forms/birth-registration/fill"))
        .bearer_auth(&token)
        .json(&json!({"subject": {"id_number": person.id.as_str()}, "case_id": "TRACE-1"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(filled.status(), 200);
    let filled: Value = filled.json().await.expect("json");

    // Spans still queued are sent when the gateway stops.
    serve.terminate().await;
    let spans = receiver.spans().await;
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();

    // The request joined the caller's trace, under the caller's span.
    let root = in_trace
        .iter()
        .find(|s| s.name == "POST /v1/query")
        .expect("the lookup's request span");
    assert_eq!(hex(&root.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(root, "http.response.status_code").as_deref(),
        Some("200")
    );
    // A span for each step, all in the caller's trace.
    for step in [
        "auth",
        "limits",
        "validate",
        "lookup",
        "policy",
        "cache",
        "upstream",
        "schema",
        "mask",
        "audit.commit",
        "respond",
    ] {
        assert!(
            in_trace.iter().any(|s| s.name == step),
            "no `{step}` span in the lookup's trace: {:?}",
            in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    let by_id = |id: &[u8]| in_trace.iter().find(|s| s.span_id == id).copied();
    let ancestors = |span: &Span| {
        let mut names = Vec::new();
        let mut at = by_id(&span.parent_span_id);
        while let Some(s) = at {
            names.push(s.name.clone());
            at = by_id(&s.parent_span_id);
        }
        names
    };
    let lookup_span = in_trace
        .iter()
        .find(|s| {
            s.name == "lookup" && attribute(s, "operation").as_deref() == Some("person_by_id")
        })
        .expect("the lookup span");
    assert_eq!(lookup_span.parent_span_id, root.span_id);
    assert_eq!(
        attribute(lookup_span, "connector").as_deref(),
        Some("hukou")
    );
    assert_eq!(attribute(lookup_span, "outcome").as_deref(), Some("ok"));
    assert_eq!(
        attribute(lookup_span, "township").as_deref(),
        Some(TOWNSHIP)
    );
    assert!(attribute(lookup_span, "cache.hit").is_some());
    // The department was called from the `upstream` span, inside the lookup, and
    // heard that span as its parent: its own tracing joins the same trace.
    let upstream = in_trace
        .iter()
        .find(|s| s.name == "upstream" && attribute(s, "connector").as_deref() == Some("hukou"))
        .expect("the department call's span");
    assert!(ancestors(upstream).contains(&"lookup".to_owned()));
    assert_eq!(
        heard,
        format!("00-{TRACE_ID}-{}-01", hex(&upstream.span_id)),
        "the department heard the department call's span"
    );
    let commit = in_trace
        .iter()
        .find(|s| s.name == "audit.commit")
        .expect("audit commit");
    assert!(attribute(commit, "audit.seq").is_some_and(|seq| seq.parse::<u64>().is_ok()));

    // The fill: its own trace, one `lookup` span per department call under `fill`.
    let fill = named("fill");
    assert_eq!(fill.len(), 1, "one fill span");
    let fill = fill[0];
    assert_eq!(
        attribute(fill, "form").as_deref(),
        Some("birth-registration")
    );
    let fill_lookups: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "lookup" && s.parent_span_id == fill.span_id)
        .collect();
    let departments_asked = filled["lookups"].as_array().map_or(0, Vec::len);
    assert!(departments_asked >= 2, "{filled}");
    assert_eq!(fill_lookups.len(), departments_asked);

    // No span carries personal data: not the ID number, nor any value of the record.
    let mut personal = vec![person.id.as_str().to_owned(), person.name.clone()];
    strings(&answer["data"], &mut personal);
    field_values(&filled["sections"], &mut personal);
    assert!(
        personal.len() > 5,
        "the record's values are checked: {personal:?}"
    );
    if let Some(masked) = answer["subject"].as_str() {
        personal.push(masked.to_owned());
    }
    // Division codes are public: the caller's township (and its county) are ids a
    // span may carry.
    personal.retain(|value| !value.is_empty() && !TOWNSHIP.starts_with(value.as_str()));
    for span in &spans {
        for (key, value) in attributes(span) {
            for secret in &personal {
                assert!(
                    !value.contains(secret.as_str()) && !span.name.contains(secret.as_str()),
                    "span `{}` attribute `{key}` carries personal data",
                    span.name
                );
            }
        }
        assert!(
            span.events.is_empty(),
            "span `{}` carries log events",
            span.name
        );
    }
}

#[tokio::test]
async fn with_traces_off_the_callers_traceparent_reaches_the_department_unchanged() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let parent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let response = client()
        .post(gw.url("/v1/query"))
        .bearer_auth(gw.token(gateway::auth::Role::Clerk, Some(TOWNSHIP)))
        .header("traceparent", &parent)
        .json(&lookup("shebao", "insured_by_id", person.id.as_str()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let shebao = gw.department(Department::Shebao);
    assert_eq!(
        shebao.faults.last_traceparent().as_deref(),
        Some(parent.as_str())
    );
    // A malformed one is not passed on.
    let fresh = sample(SampleKind::MarriedParent);
    let response = client()
        .post(gw.url("/v1/query"))
        .bearer_auth(gw.token(gateway::auth::Role::Clerk, Some(TOWNSHIP)))
        .header("traceparent", "00-13990119750327229X-x-01")
        .json(&lookup("shebao", "insured_by_id", fresh.id.as_str()))
        .send()
        .await
        .expect("an answer");
    assert!(response.status().is_success() || response.status() == 404);
    assert_eq!(
        shebao.faults.last_traceparent().as_deref(),
        Some(parent.as_str()),
        "nothing new was passed on"
    );
}
