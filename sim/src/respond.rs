//! How a simulated department answers a data request: its envelope, its error bodies,
//! and every fault from [`Faults`](super::Faults) applied on the way out.
//!
//! Department modules only decide *what* the record is ([`Outcome`]) and how their
//! record breaks its schema; this module owns the wire envelope and the misbehaviour.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Department;
use super::faults::{FaultHandle, control_routes};
use super::population::{Person, Population};
use connectors::subject::IdNumber;

/// What every simulated department's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) population: Arc<Population>,
    pub(crate) faults: FaultHandle,
}

/// A department's data routes with their state, plus `/__sim/faults`.
pub(crate) fn with_control(
    routes: Router<Shared>,
    population: Arc<Population>,
    faults: FaultHandle,
) -> Router {
    routes
        .with_state(Shared {
            population,
            faults: faults.clone(),
        })
        .merge(control_routes(faults))
}

/// Answers a lookup of one person by the ID number under `key` in the body.
pub(crate) async fn by_id(
    department: Department,
    shared: &Shared,
    body: &[u8],
    key: &str,
    record: impl FnOnce(&Population, &Person) -> Outcome,
    violate: fn(&mut Value),
) -> Response {
    let outcome = match id_field(body, key) {
        Ok(id) => match shared.population.person(id.as_str()) {
            Some(p) => record(&shared.population, p),
            None => Outcome::NotFound,
        },
        Err(bad) => bad,
    };
    respond(department, &shared.faults, outcome, violate).await
}

/// What a department found for a request, before the envelope and any faults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The record, as the department's `data`/`result`/`body` object.
    Found(Value),
    /// Nothing under that key.
    NotFound,
    /// The request body was not what the endpoint takes.
    BadRequest,
}

/// Kinds of error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NotFound,
    BadRequest,
    Busy,
}

/// The value of `key` in a JSON object body, if it is a string.
pub(crate) fn string_field(body: &[u8], key: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get(key)?.as_str().map(str::to_owned)
}

/// The ID number under `key`; a missing, non-string or invalid one is a bad request.
pub(crate) fn id_field(body: &[u8], key: &str) -> Result<IdNumber, Outcome> {
    let raw = string_field(body, key).ok_or(Outcome::BadRequest)?;
    IdNumber::parse(&raw).map_err(|_| Outcome::BadRequest)
}

/// Fields an internal system would never mean to share, added by `extra_fields`.
const EXTRA: [(&str, &str); 2] = [
    ("nbbz", "内部备注：仅限本部门"),
    ("sjmm", "synthetic-secret"),
];

/// Turns an outcome into the department's HTTP response, applying the current faults.
/// `violate` breaks the record's schema in the department's own way.
pub(crate) async fn respond(
    department: Department,
    faults: &FaultHandle,
    outcome: Outcome,
    violate: fn(&mut Value),
) -> Response {
    faults.count_received();
    if let Some(rendezvous) = faults.rendezvous() {
        rendezvous.meet().await;
    }
    let now = faults.get();
    if now.hang {
        std::future::pending::<()>().await;
    }
    if now.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(now.latency_ms)).await;
    }
    if faults.next_fails(now.error_rate) {
        let body = envelope_error(department, Failure::Busy);
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, body_bytes(&body));
    }
    let mut bytes = match outcome {
        Outcome::Found(mut data) => {
            if now.schema_violation {
                violate(&mut data);
            }
            if now.extra_fields {
                add_extra_fields(&mut data);
            }
            if now.markup_in_names {
                mark_up_names(&mut data);
            }
            let envelope = envelope_ok(department, data);
            pad(department, envelope, now.oversized_bytes)
        }
        Outcome::NotFound => body_bytes(&envelope_error(department, Failure::NotFound)),
        Outcome::BadRequest => body_bytes(&envelope_error(department, Failure::BadRequest)),
    };
    if now.malformed_json {
        truncate_to_half(&mut bytes);
    }
    json_response(StatusCode::OK, bytes)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn body_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn envelope_ok(department: Department, data: Value) -> Value {
    match department {
        Department::Hukou => json!({ "code": 0, "msg": "ok", "data": data }),
        Department::Shebao => {
            json!({ "success": true, "errcode": "0000", "errmsg": "", "result": data })
        }
        Department::Jisheng => json!({ "status": "200", "message": "success", "body": data }),
    }
}

fn envelope_error(department: Department, failure: Failure) -> Value {
    match department {
        Department::Hukou => {
            let (code, msg) = match failure {
                Failure::NotFound => (404, "查无此人"),
                Failure::BadRequest => (400, "参数错误"),
                Failure::Busy => (500, "系统繁忙，请稍后再试"),
            };
            json!({ "code": code, "msg": msg, "data": null })
        }
        Department::Shebao => {
            let (code, msg) = match failure {
                Failure::NotFound => ("1004", "人员不存在"),
                Failure::BadRequest => ("1001", "参数错误"),
                Failure::Busy => ("500", "系统繁忙"),
            };
            json!({ "success": false, "errcode": code, "errmsg": msg, "result": null })
        }
        Department::Jisheng => {
            let (code, msg) = match failure {
                Failure::NotFound => ("404", "not found"),
                Failure::BadRequest => ("400", "bad request"),
                Failure::Busy => ("500", "系统繁忙 (server busy)"),
            };
            json!({ "status": code, "message": msg, "body": null })
        }
    }
}

/// What `markup_in_names` puts before every name.
pub(crate) const NAME_MARKUP: &str = "<script>alert(1)</script>";

/// Puts [`NAME_MARKUP`] before every `xm` (name) in the record, at any depth.
fn mark_up_names(data: &mut Value) {
    match data {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match value {
                    Value::String(name) if key == "xm" => *name = format!("{NAME_MARKUP}{name}"),
                    other => mark_up_names(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mark_up_names),
        _ => {}
    }
}

/// Adds [`EXTRA`] to the record and to every object in its top-level lists.
fn add_extra_fields(data: &mut Value) {
    let Some(record) = data.as_object_mut() else {
        return;
    };
    for value in record.values_mut() {
        if let Some(items) = value.as_array_mut() {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                insert_extra(item);
            }
        }
    }
    insert_extra(record);
}

fn insert_extra(object: &mut Map<String, Value>) {
    for (key, value) in EXTRA {
        object.insert(key.to_owned(), Value::from(value));
    }
}

/// Serializes the envelope, adding a `padding` string to the record so the body is at
/// least `at_least` bytes (only when there is a record to pad).
fn pad(department: Department, mut envelope: Value, at_least: u64) -> Vec<u8> {
    let key = match department {
        Department::Hukou => "data",
        Department::Shebao => "result",
        Department::Jisheng => "body",
    };
    let bytes = body_bytes(&envelope);
    let wanted = usize::try_from(at_least).unwrap_or(usize::MAX);
    let Some(record) = envelope.get_mut(key).and_then(Value::as_object_mut) else {
        return bytes;
    };
    if at_least == 0 || bytes.len() >= wanted {
        return bytes;
    }
    record.insert("padding".to_owned(), Value::from(""));
    let with_key = body_bytes(&envelope);
    // The filler is plain ASCII, so each character adds exactly one byte.
    let filler = wanted.saturating_sub(with_key.len());
    if let Some(record) = envelope.get_mut(key).and_then(Value::as_object_mut) {
        record.insert("padding".to_owned(), Value::from("x".repeat(filler)));
    }
    body_bytes(&envelope)
}

/// Cuts the body in half on a character boundary, so it is no longer valid JSON.
fn truncate_to_half(bytes: &mut Vec<u8>) {
    let mut cut = bytes.len() / 2;
    while cut > 0 && bytes.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    bytes.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_reaches_the_requested_size_exactly_enough() {
        let envelope = envelope_ok(Department::Shebao, json!({ "aac002": "x" }));
        let base = body_bytes(&envelope).len();
        for size in [1, 70, 200, 4096, 100_000] {
            let bytes = pad(Department::Shebao, envelope.clone(), size as u64);
            assert!(bytes.len() >= size);
            assert!(
                bytes.len() <= size.max(base + 13),
                "{size}: {}",
                bytes.len()
            );
            let back: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back["result"]["aac002"], "x");
        }
        let not_found = envelope_error(Department::Shebao, Failure::NotFound);
        assert_eq!(
            pad(Department::Shebao, not_found.clone(), 4096),
            body_bytes(&not_found)
        );
    }

    #[test]
    fn truncation_always_breaks_json() {
        for data in [
            json!({ "xm": "张三丰" }),
            json!({}),
            json!({ "list": [1, 2, 3] }),
        ] {
            let mut bytes = body_bytes(&envelope_ok(Department::Hukou, data));
            truncate_to_half(&mut bytes);
            assert!(serde_json::from_slice::<Value>(&bytes).is_err());
            assert!(std::str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn bad_request_bodies_are_recognised() {
        assert_eq!(id_field(b"not json", "sfzh"), Err(Outcome::BadRequest));
        assert_eq!(
            id_field(br#"{"sfzh":12}"#, "sfzh"),
            Err(Outcome::BadRequest)
        );
        assert_eq!(
            id_field(br#"{"other":"x"}"#, "sfzh"),
            Err(Outcome::BadRequest)
        );
        let ok = id_field(br#"{"sfzh":"11010519491231002x"}"#, "sfzh").unwrap();
        assert_eq!(ok.as_str(), "11010519491231002X");
    }
}
