//! The simulated household registration system (户籍, county public security bureau).
//!
//! Wire style: `POST /rkxx/api/v1/...` with pinyin-initial field names, envelope
//! `{"code":0,"msg":"ok","data":{...}}`, dates as `YYYYMMDD`, errors as HTTP 200 with
//! `code` 404/400 (500 under an injected failure).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::Department;
use super::dates::compact;
use super::faults::FaultHandle;
use super::population::{Household, Person, Population};
use super::respond::{Outcome, Shared, by_id, id_field, respond, string_field, with_control};

/// `POST /rkxx/api/v1/person`, `POST /rkxx/api/v1/household`, and `/__sim/faults`.
pub fn router(population: Arc<Population>, faults: FaultHandle) -> Router {
    let routes = Router::new()
        .route("/rkxx/api/v1/person", post(person))
        .route("/rkxx/api/v1/household", post(household));
    with_control(routes, population, faults)
}

async fn person(State(shared): State<Shared>, body: Bytes) -> Response {
    by_id(
        Department::Hukou,
        &shared,
        &body,
        "sfzh",
        person_record,
        break_schema,
    )
    .await
}

async fn household(State(shared): State<Shared>, body: Bytes) -> Response {
    let pop = &shared.population;
    let found = if let Some(number) = string_field(&body, "hh") {
        Ok(pop.household(&number))
    } else {
        id_field(&body, "sfzh").map(|id| pop.household_of(id.as_str()))
    };
    let outcome = match found {
        Ok(Some(h)) => household_record(pop, h),
        Ok(None) => Outcome::NotFound,
        Err(bad) => bad,
    };
    respond(Department::Hukou, &shared.faults, outcome, break_schema).await
}

fn person_record(pop: &Population, p: &Person) -> Outcome {
    let Some(h) = pop.household(&p.household) else {
        return Outcome::NotFound;
    };
    Outcome::Found(json!({
        "sfzh": p.id.as_str(),
        "xm": p.name,
        "xb": p.gender.code(),
        "mz": p.ethnicity,
        "csrq": compact(p.birth_date),
        "hh": h.number,
        "yhzgx": p.relation.code(),
        "hklx": h.hukou_type.code(),
        "xzqh": h.township,
        "cun": h.village,
        "zz": h.address,
        "ryzt": p.status.code(),
        "bdrq": p.status.changed_on().map(compact).unwrap_or_default(),
    }))
}

fn household_record(pop: &Population, h: &Household) -> Outcome {
    let members: Vec<&Person> = pop.members(h).collect();
    let Some(head) = members.first() else {
        return Outcome::NotFound;
    };
    let cy: Vec<Value> = members
        .iter()
        .map(|p| {
            json!({
                "sfzh": p.id.as_str(),
                "xm": p.name,
                "xb": p.gender.code(),
                "csrq": compact(p.birth_date),
                "yhzgx": p.relation.code(),
                "ryzt": p.status.code(),
            })
        })
        .collect();
    Outcome::Found(json!({
        "hh": h.number,
        "hklx": h.hukou_type.code(),
        "xzqh": h.township,
        "cun": h.village,
        "zz": h.address,
        "hzsfzh": head.id.as_str(),
        "hzxm": head.name,
        "cy": cy,
    }))
}

/// The township code loses its last digit: still a string, no longer 9 digits.
fn break_schema(data: &mut Value) {
    if let Some(code) = data.get_mut("xzqh") {
        let short: String = code.as_str().unwrap_or_default().chars().take(8).collect();
        *code = Value::from(short);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleKind;
    use crate::testing::{call, server};
    use connectors::subject::IdNumber;

    #[tokio::test]
    async fn person_has_the_documented_shape() {
        let (pop, srv) = server(Department::Hukou).await;
        let p = pop.sample(SampleKind::MarriedParent).unwrap();
        let body = json!({ "sfzh": p.id.as_str() }).to_string();
        let reply = call(srv.addr, "POST", "/rkxx/api/v1/person", &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "application/json");
        let v = reply.json();
        assert_eq!(v["code"], 0);
        assert_eq!(v["msg"], "ok");
        let d = &v["data"];
        let keys = [
            "sfzh", "xm", "xb", "mz", "csrq", "hh", "yhzgx", "hklx", "xzqh", "cun", "zz", "ryzt",
            "bdrq",
        ];
        assert_eq!(d.as_object().unwrap().len(), keys.len());
        for key in keys {
            assert!(d[key].is_string(), "{key} is a string");
        }
        assert_eq!(d["sfzh"], p.id.as_str());
        assert_eq!(d["xm"], p.name.as_str());
        assert_eq!(d["xb"], if p.id.is_male() { "1" } else { "2" });
        assert_eq!(d["csrq"], p.id.as_str()[6..14]);
        assert_eq!(d["ryzt"], "0");
        assert_eq!(d["bdrq"], "");
        let xzqh = d["xzqh"].as_str().unwrap();
        assert_eq!(xzqh.len(), 9);
        assert!(d["cun"].as_str().unwrap().starts_with(xzqh));
        assert!(d["zz"].as_str().unwrap().starts_with("示范县"));
        assert!(["10", "20"].contains(&d["hklx"].as_str().unwrap()));
    }

    #[tokio::test]
    async fn status_changes_carry_their_date() {
        let (pop, srv) = server(Department::Hukou).await;
        for (kind, code) in [(SampleKind::MovedOut, "1"), (SampleKind::Deceased, "2")] {
            let p = pop.sample(kind).unwrap();
            let body = json!({ "sfzh": p.id.as_str() }).to_string();
            let v = call(srv.addr, "POST", "/rkxx/api/v1/person", &body)
                .await
                .json();
            assert_eq!(v["data"]["ryzt"], code);
            let date = p.status.changed_on().unwrap();
            assert_eq!(v["data"]["bdrq"], compact(date));
        }
    }

    #[tokio::test]
    async fn household_by_number_or_member_lists_everyone() {
        let (pop, srv) = server(Department::Hukou).await;
        let child = pop.sample(SampleKind::Child).unwrap();
        let h = pop.household_of(child.id.as_str()).unwrap();
        let by_member = json!({ "sfzh": child.id.as_str() }).to_string();
        let by_number = json!({ "hh": h.number }).to_string();
        let a = call(srv.addr, "POST", "/rkxx/api/v1/household", &by_member)
            .await
            .json();
        let b = call(srv.addr, "POST", "/rkxx/api/v1/household", &by_number)
            .await
            .json();
        assert_eq!(a, b);
        let d = &a["data"];
        assert_eq!(d["hh"], h.number.as_str());
        assert_eq!(d["hzsfzh"], h.members[0].as_str());
        let cy = d["cy"].as_array().unwrap();
        assert_eq!(cy.len(), h.members.len());
        assert_eq!(cy[0]["yhzgx"], "02");
        assert!(cy.iter().any(|m| m["sfzh"] == child.id.as_str()));
        for m in cy {
            assert_eq!(m.as_object().unwrap().len(), 6);
        }
    }

    #[tokio::test]
    async fn unknown_and_malformed_requests_get_error_envelopes() {
        let (_pop, srv) = server(Department::Hukou).await;
        // Valid, but nobody in the synthetic county was born in 1900 in Beijing.
        let stranger = IdNumber::build("110105", crate::dates::ymd(1900, 1, 1), 1).unwrap();
        let body = json!({ "sfzh": stranger.as_str() }).to_string();
        for path in ["/rkxx/api/v1/person", "/rkxx/api/v1/household"] {
            let reply = call(srv.addr, "POST", path, &body).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.json(),
                json!({ "code": 404, "msg": "查无此人", "data": null })
            );
            for bad in [
                "{",
                r#"{"id":"x"}"#,
                r#"{"sfzh":123}"#,
                r#"{"sfzh":"139901"}"#,
            ] {
                let reply = call(srv.addr, "POST", path, bad).await;
                assert_eq!(reply.status, 200);
                assert_eq!(
                    reply.json(),
                    json!({ "code": 400, "msg": "参数错误", "data": null })
                );
            }
        }
        let missing = call(
            srv.addr,
            "POST",
            "/rkxx/api/v1/household",
            r#"{"hh":"000000000"}"#,
        )
        .await;
        assert_eq!(missing.json()["code"], 404);
    }
}
