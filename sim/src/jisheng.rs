//! The simulated family planning and births system (计生, county health commission).
//!
//! Wire style: `POST /hfp/api/fertility/person` keyed by `zjhm`, envelope
//! `{"status":"200","message":"success","body":{...}}`, ISO dates, numbers for birth
//! order. The record carries a hereditary-disease note (`ycbs`): health data that must
//! never leave the department.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::Department;
use super::dates::{iso, ymd};
use super::faults::FaultHandle;
use super::population::{Person, Population};
use super::respond::{Outcome, Shared, by_id, with_control};
use connectors::subject::IdNumber;

/// `POST /hfp/api/fertility/person` and `/__sim/faults`.
pub fn router(population: Arc<Population>, faults: FaultHandle) -> Router {
    with_control(
        Router::new().route("/hfp/api/fertility/person", post(person)),
        population,
        faults,
    )
}

async fn person(State(shared): State<Shared>, body: Bytes) -> Response {
    let record = |_: &Population, p: &Person| Outcome::Found(fertility_record(p));
    by_id(
        Department::Jisheng,
        &shared,
        &body,
        "zjhm",
        record,
        break_schema,
    )
    .await
}

fn fertility_record(p: &Person) -> Value {
    let f = &p.fertility;
    let zn: Vec<Value> = f
        .children
        .iter()
        .map(|c| {
            json!({
                "xm": c.name,
                "zjhm": c.id.as_str(),
                "xb": c.gender.code(),
                "csrq": iso(c.birth_date),
                "hc": c.birth_order,
            })
        })
        .collect();
    let sydj: Vec<Value> = f
        .registrations
        .iter()
        .map(|r| json!({ "djbh": r.number, "djrq": iso(r.date), "hc": r.birth_order }))
        .collect();
    json!({
        "zjhm": p.id.as_str(),
        "xm": p.name,
        "hyzk": f.marital_status.code(),
        "jhrq": f.marriage_date.map(iso).unwrap_or_default(),
        "po": f.spouse.as_ref().map(|s| json!({ "xm": s.name, "zjhm": s.id.as_str() })),
        "zn": zn,
        "sydj": sydj,
        "dszn": f
            .single_child_certificate
            .as_ref()
            .map(|c| json!({ "zh": c.number, "fzrq": iso(c.issued) })),
        "ycbs": f.hereditary_note,
    })
}

/// Every child's birth order becomes 0: still a number, but orders start at 1. A record
/// without children gets one such (made-up) child so the fault always shows.
fn break_schema(data: &mut Value) {
    let Some(list) = data.get_mut("zn").and_then(Value::as_array_mut) else {
        return;
    };
    if list.is_empty() {
        let birth = ymd(2020, 1, 1);
        let id = IdNumber::build("139901", birth, 1)
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        list.push(json!({ "xm": "模拟子女", "zjhm": id, "xb": "1", "csrq": iso(birth), "hc": 0 }));
    }
    for item in list.iter_mut() {
        item["hc"] = Value::from(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleKind;
    use crate::testing::{call, server};

    const PATH: &str = "/hfp/api/fertility/person";

    #[tokio::test]
    async fn married_parent_has_the_documented_shape() {
        let (pop, srv) = server(Department::Jisheng).await;
        let p = pop.sample(SampleKind::MarriedParent).unwrap();
        let body = json!({ "zjhm": p.id.as_str() }).to_string();
        let reply = call(srv.addr, "POST", PATH, &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "application/json");
        let v = reply.json();
        assert_eq!(v["status"], "200");
        assert_eq!(v["message"], "success");
        let b = &v["body"];
        assert_eq!(b.as_object().unwrap().len(), 9);
        assert_eq!(b["zjhm"], p.id.as_str());
        assert_eq!(b["hyzk"], "20");
        assert_eq!(b["jhrq"].as_str().unwrap().len(), 10);
        assert!(b["ycbs"].is_string());
        // The spouse and the children are real people in the same household.
        let household = pop.household_of(p.id.as_str()).unwrap();
        let spouse = b["po"]["zjhm"].as_str().unwrap();
        assert!(household.members.iter().any(|m| m.as_str() == spouse));
        assert_eq!(b["po"]["xm"], pop.person(spouse).unwrap().name.as_str());
        let zn = b["zn"].as_array().unwrap();
        assert!(!zn.is_empty());
        for (order, child) in (1..).zip(zn) {
            assert_eq!(child["hc"], order);
            let id = child["zjhm"].as_str().unwrap();
            assert!(household.members.iter().any(|m| m.as_str() == id));
            assert_eq!(child["csrq"], iso(pop.person(id).unwrap().birth_date));
            assert!(["1", "2"].contains(&child["xb"].as_str().unwrap()));
        }
        for reg in b["sydj"].as_array().unwrap() {
            assert!(reg["djbh"].as_str().unwrap().starts_with("SYDJ139901-"));
            assert!(reg["hc"].as_u64().unwrap() >= 1);
        }
        assert!(b["dszn"].is_null() || b["dszn"]["zh"].is_string());
    }

    #[tokio::test]
    async fn children_have_an_empty_unmarried_record() {
        let (pop, srv) = server(Department::Jisheng).await;
        let child = pop.sample(SampleKind::Child).unwrap();
        let body = json!({ "zjhm": child.id.as_str() }).to_string();
        let b = call(srv.addr, "POST", PATH, &body).await.json()["body"].clone();
        assert_eq!(b["hyzk"], "10");
        assert_eq!(b["jhrq"], "");
        assert!(b["po"].is_null());
        assert_eq!(b["zn"], json!([]));
        assert_eq!(b["sydj"], json!([]));
        assert!(b["dszn"].is_null());
    }

    #[tokio::test]
    async fn unknown_and_malformed_requests_get_error_envelopes() {
        let (_pop, srv) = server(Department::Jisheng).await;
        let stranger = IdNumber::build("110105", ymd(1900, 1, 3), 5).unwrap();
        let body = json!({ "zjhm": stranger.as_str() }).to_string();
        let v = call(srv.addr, "POST", PATH, &body).await.json();
        assert_eq!(
            v,
            json!({ "status": "404", "message": "not found", "body": null })
        );
        for bad in ["null", r#"{"zjhm":null}"#, "{\"zjhm\":\"abc\"}"] {
            let v = call(srv.addr, "POST", PATH, bad).await.json();
            assert_eq!(
                v,
                json!({ "status": "400", "message": "bad request", "body": null })
            );
        }
    }
}
