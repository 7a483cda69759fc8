//! The simulated social insurance system (社保, county human resources bureau).
//!
//! Wire style: `POST /si/api/insured/query` with 人社 `aac…/aae…` field names, envelope
//! `{"success":true,"errcode":"0000","errmsg":"","result":{...}}`, ISO dates, months as
//! `YYYYMM`, money as strings with two decimals. The record carries the bank account:
//! data that must never leave the department.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::Department;
use super::dates::iso;
use super::faults::FaultHandle;
use super::population::{Person, Population};
use super::respond::{Outcome, Shared, by_id, with_control};

/// `POST /si/api/insured/query` and `/__sim/faults`.
pub fn router(population: Arc<Population>, faults: FaultHandle) -> Router {
    with_control(
        Router::new().route("/si/api/insured/query", post(query)),
        population,
        faults,
    )
}

async fn query(State(shared): State<Shared>, body: Bytes) -> Response {
    let record = |pop: &Population, p: &Person| Outcome::Found(insured_record(pop, p));
    by_id(
        Department::Shebao,
        &shared,
        &body,
        "aac002",
        record,
        break_schema,
    )
    .await
}

fn insured_record(pop: &Population, p: &Person) -> Value {
    let township = pop
        .household(&p.household)
        .map(|h| h.township.as_str())
        .unwrap_or_default();
    let cbxx: Vec<Value> = p
        .insurance
        .records
        .iter()
        .map(|r| {
            json!({
                "aae140": r.scheme.code(),
                "aac008": r.status.code(),
                "aac030": iso(r.start),
                "jfys": r.contribution_months,
                "zhjfyf": r.last_payment_month(),
                "ylj": r.pension_yuan(),
            })
        })
        .collect();
    // Nobody under 16 has a social security card account: both are null.
    let (account, bank) = p
        .insurance
        .bank
        .as_ref()
        .map_or((Value::Null, Value::Null), |b| {
            (json!(b.number), json!(b.bank))
        });
    json!({
        "aac002": p.id.as_str(),
        "aac003": p.name,
        "aac004": p.gender.code(),
        "aac006": iso(p.birth_date),
        "aab301": township,
        "cbxx": cbxx,
        "yhzh": account,
        "khyh": bank,
    })
}

/// Contribution months turn negative: still a number, no longer a count. A record
/// without schemes gets one such entry so the fault always shows.
fn break_schema(data: &mut Value) {
    let Some(list) = data.get_mut("cbxx").and_then(Value::as_array_mut) else {
        return;
    };
    if list.is_empty() {
        list.push(json!({
            "aae140": "390", "aac008": "1", "aac030": "2016-01-01",
            "jfys": 0, "zhjfyf": "", "ylj": "0.00",
        }));
    }
    for item in list.iter_mut() {
        item["jfys"] = Value::from(-3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleKind;
    use crate::testing::{call, server};

    const PATH: &str = "/si/api/insured/query";

    #[tokio::test]
    async fn pensioner_has_the_documented_shape() {
        let (pop, srv) = server(Department::Shebao).await;
        let p = pop.sample(SampleKind::Pensioner).unwrap();
        let body = json!({ "aac002": p.id.as_str() }).to_string();
        let reply = call(srv.addr, "POST", PATH, &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "application/json");
        let v = reply.json();
        assert_eq!(v["success"], true);
        assert_eq!(v["errcode"], "0000");
        assert_eq!(v["errmsg"], "");
        let r = &v["result"];
        assert_eq!(r.as_object().unwrap().len(), 8);
        assert_eq!(r["aac002"], p.id.as_str());
        assert_eq!(r["aac003"], p.name.as_str());
        assert_eq!(r["aac004"], p.gender.code());
        assert_eq!(r["aac006"], iso(p.birth_date));
        assert_eq!(r["aab301"].as_str().unwrap().len(), 9);
        let account = r["yhzh"].as_str().unwrap();
        assert!((16..=19).contains(&account.len()));
        assert!(account.bytes().all(|b| b.is_ascii_digit()));
        assert!(!r["khyh"].as_str().unwrap().is_empty());
        let cbxx = r["cbxx"].as_array().unwrap();
        assert!(!cbxx.is_empty());
        let mut pension_seen = false;
        for item in cbxx {
            assert_eq!(item.as_object().unwrap().len(), 6);
            assert!(
                ["110", "170", "210", "310", "390", "410"]
                    .contains(&item["aae140"].as_str().unwrap())
            );
            assert!(["1", "2", "3"].contains(&item["aac008"].as_str().unwrap()));
            assert!(item["jfys"].as_u64().is_some());
            let ylj = item["ylj"].as_str().unwrap();
            let (yuan, fen) = ylj.split_once('.').unwrap();
            assert!(yuan.parse::<u64>().is_ok() && fen.len() == 2);
            pension_seen |= ylj != "0.00";
            let month = item["zhjfyf"].as_str().unwrap();
            assert!(month.is_empty() || month.len() == 6);
        }
        assert!(pension_seen);
        assert!(p.age_on(pop.as_of) >= 60);
    }

    #[tokio::test]
    async fn children_have_resident_medical_at_most_and_no_account() {
        let (pop, srv) = server(Department::Shebao).await;
        let child = pop.sample(SampleKind::Child).unwrap();
        let body = json!({ "aac002": child.id.as_str() }).to_string();
        let r = call(srv.addr, "POST", PATH, &body).await.json()["result"].clone();
        for item in r["cbxx"].as_array().unwrap() {
            assert_eq!(item["aae140"], "390");
            assert_eq!(item["ylj"], "0.00");
        }
        assert!(r["yhzh"].is_null() && r["khyh"].is_null());
    }

    #[tokio::test]
    async fn unknown_and_malformed_requests_get_error_envelopes() {
        let (pop, srv) = server(Department::Shebao).await;
        let stranger =
            connectors::subject::IdNumber::build("110105", crate::dates::ymd(1900, 1, 2), 3)
                .unwrap();
        assert!(pop.person(stranger.as_str()).is_none());
        let body = json!({ "aac002": stranger.as_str() }).to_string();
        let v = call(srv.addr, "POST", PATH, &body).await.json();
        assert_eq!(
            v,
            json!({ "success": false, "errcode": "1004", "errmsg": "人员不存在", "result": null })
        );
        for bad in [
            "[]",
            r#"{"sfzh":"x"}"#,
            "",
            r#"{"aac002":"11010519491231002"}"#,
        ] {
            let reply = call(srv.addr, "POST", PATH, bad).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.json(),
                json!({ "success": false, "errcode": "1001", "errmsg": "参数错误", "result": null })
            );
        }
    }
}
