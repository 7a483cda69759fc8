//! Each fault does what it says, on real sockets, and can be changed while the server
//! runs (over `PUT /__sim/faults` or through the in-process handle).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::testing::{Reply, call, population, server};
use super::{Department, Faults, SampleKind, spawn_all};

/// A data request for the demo's married parent, in the department's own format.
fn data_request(department: Department) -> (&'static str, String) {
    let pop = population();
    let id = pop
        .sample(SampleKind::MarriedParent)
        .unwrap()
        .id
        .as_str()
        .to_owned();
    match department {
        Department::Hukou => ("/rkxx/api/v1/person", json!({ "sfzh": id }).to_string()),
        Department::Shebao => ("/si/api/insured/query", json!({ "aac002": id }).to_string()),
        Department::Jisheng => (
            "/hfp/api/fertility/person",
            json!({ "zjhm": id }).to_string(),
        ),
    }
}

async fn ask(addr: std::net::SocketAddr, department: Department) -> Reply {
    let (path, body) = data_request(department);
    call(addr, "POST", path, &body).await
}

/// The record object inside the department's envelope.
fn record(department: Department, envelope: &Value) -> Value {
    let key = match department {
        Department::Hukou => "data",
        Department::Shebao => "result",
        Department::Jisheng => "body",
    };
    envelope[key].clone()
}

#[tokio::test]
async fn faults_are_read_and_replaced_over_http() {
    let (_pop, srv) = server(Department::Hukou).await;
    let got = call(srv.addr, "GET", "/__sim/faults", "").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        serde_json::from_value::<Faults>(got.json()).unwrap(),
        Faults::default()
    );

    let put = call(
        srv.addr,
        "PUT",
        "/__sim/faults",
        r#"{"latency_ms":5,"extra_fields":true}"#,
    )
    .await;
    assert_eq!(put.status, 200);
    let expected = Faults {
        latency_ms: 5,
        extra_fields: true,
        ..Faults::default()
    };
    assert_eq!(srv.faults.get(), expected);
    let got = call(srv.addr, "GET", "/__sim/faults", "").await.json();
    assert_eq!(serde_json::from_value::<Faults>(got).unwrap(), expected);

    for bad in [
        "{",
        r#"{"error_rate":1.5}"#,
        r#"{"error_rate":-0.1}"#,
        r#"{"lag":1}"#,
    ] {
        let reply = call(srv.addr, "PUT", "/__sim/faults", bad).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(
        srv.faults.get(),
        expected,
        "refused changes leave the faults alone"
    );
}

#[tokio::test]
async fn error_rate_half_fails_exactly_five_of_ten() {
    let (_pop, srv) = server(Department::Shebao).await;
    let put = call(srv.addr, "PUT", "/__sim/faults", r#"{"error_rate":0.5}"#).await;
    assert_eq!(put.status, 200);
    let mut failed = 0;
    for _ in 0..10 {
        let reply = ask(srv.addr, Department::Shebao).await;
        if reply.status == 500 {
            failed += 1;
            let v = reply.json();
            assert_eq!(
                (v["success"].clone(), v["errcode"].clone()),
                (json!(false), json!("500"))
            );
            assert!(v["result"].is_null());
        } else {
            assert_eq!(reply.status, 200);
        }
    }
    assert_eq!(failed, 5);
}

#[tokio::test]
async fn failures_use_each_department_envelope() {
    for (department, field, code) in [
        (Department::Hukou, "code", json!(500)),
        (Department::Shebao, "errcode", json!("500")),
        (Department::Jisheng, "status", json!("500")),
    ] {
        let (_pop, srv) = server(department).await;
        srv.faults.set(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        let reply = ask(srv.addr, department).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.content_type, "application/json");
        assert_eq!(reply.json()[field], code);
        // The control endpoint itself never fails.
        assert_eq!(call(srv.addr, "GET", "/__sim/faults", "").await.status, 200);
    }
}

#[tokio::test]
async fn malformed_json_is_200_but_unparseable() {
    let (_pop, srv) = server(Department::Jisheng).await;
    srv.faults.set(Faults {
        malformed_json: true,
        ..Faults::default()
    });
    let reply = ask(srv.addr, Department::Jisheng).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert!(!reply.body.is_empty());
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

#[tokio::test]
async fn oversized_bodies_reach_the_size_and_stay_valid() {
    let (_pop, srv) = server(Department::Hukou).await;
    srv.faults.set(Faults {
        oversized_bytes: 200_000,
        ..Faults::default()
    });
    let reply = ask(srv.addr, Department::Hukou).await;
    assert!(reply.body.len() >= 200_000);
    let v = reply.json();
    assert_eq!(v["code"], 0);
    assert!(v["data"]["sfzh"].is_string());
}

#[tokio::test]
async fn extra_fields_appear_on_the_record_and_each_list_item() {
    let (pop, srv) = server(Department::Hukou).await;
    srv.faults.set(Faults {
        extra_fields: true,
        ..Faults::default()
    });
    let id = pop.sample(SampleKind::MarriedParent).unwrap().id.as_str();
    let body = json!({ "sfzh": id }).to_string();
    let v = call(srv.addr, "POST", "/rkxx/api/v1/household", &body)
        .await
        .json();
    let data = &v["data"];
    let members = data["cy"].as_array().unwrap();
    assert!(members.len() >= 2);
    for object in std::iter::once(data).chain(members) {
        assert_eq!(object["nbbz"], "内部备注：仅限本部门");
        assert_eq!(object["sjmm"], "synthetic-secret");
    }

    let (_pop, srv) = server(Department::Shebao).await;
    srv.faults.set(Faults {
        extra_fields: true,
        ..Faults::default()
    });
    let result = record(
        Department::Shebao,
        &ask(srv.addr, Department::Shebao).await.json(),
    );
    assert_eq!(result["sjmm"], "synthetic-secret");
    for item in result["cbxx"].as_array().unwrap() {
        assert_eq!(item["nbbz"], "内部备注：仅限本部门");
    }
}

#[tokio::test]
async fn schema_violations_break_one_value_per_department() {
    let (pop, hukou) = server(Department::Hukou).await;
    let (_, shebao) = server(Department::Shebao).await;
    let (_, jisheng) = server(Department::Jisheng).await;
    let broken = Faults {
        schema_violation: true,
        ..Faults::default()
    };
    for srv in [&hukou, &shebao, &jisheng] {
        srv.faults.set(broken.clone());
    }
    let data = record(
        Department::Hukou,
        &ask(hukou.addr, Department::Hukou).await.json(),
    );
    assert_eq!(data["xzqh"].as_str().unwrap().len(), 8);
    assert!(
        data["cun"]
            .as_str()
            .unwrap()
            .starts_with(data["xzqh"].as_str().unwrap())
    );

    let result = record(
        Department::Shebao,
        &ask(shebao.addr, Department::Shebao).await.json(),
    );
    let cbxx = result["cbxx"].as_array().unwrap();
    assert!(!cbxx.is_empty() && cbxx.iter().all(|i| i["jfys"] == -3));

    let body = record(
        Department::Jisheng,
        &ask(jisheng.addr, Department::Jisheng).await.json(),
    );
    let zn = body["zn"].as_array().unwrap();
    assert!(!zn.is_empty() && zn.iter().all(|c| c["hc"] == 0));
    // A childless record gets a child with birth order 0 too.
    let child = pop.sample(SampleKind::Child).unwrap();
    let ask_child = json!({ "zjhm": child.id.as_str() }).to_string();
    let v = call(
        jisheng.addr,
        "POST",
        "/hfp/api/fertility/person",
        &ask_child,
    )
    .await
    .json();
    assert_eq!(v["body"]["zn"].as_array().unwrap().len(), 1);
    assert_eq!(v["body"]["zn"][0]["hc"], 0);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let (_pop, srv) = server(Department::Shebao).await;
    // Counted, not timed: the department has the request, and the answer is still
    // held back a minute later in its own terms.
    srv.faults.set(Faults {
        latency_ms: 60_000,
        ..Faults::default()
    });
    let addr = srv.addr;
    let pending = tokio::spawn(async move { ask(addr, Department::Shebao).await });
    while srv.faults.received() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!pending.is_finished(), "answered without its latency");
    pending.abort();
    srv.faults.set(Faults::default());
    let reply = ask(srv.addr, Department::Shebao).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn hang_never_answers_until_switched_off() {
    let (_pop, srv) = server(Department::Hukou).await;
    let put = call(srv.addr, "PUT", "/__sim/faults", r#"{"hang":true}"#).await;
    assert_eq!(put.status, 200);
    let waited =
        tokio::time::timeout(Duration::from_millis(300), ask(srv.addr, Department::Hukou)).await;
    assert!(waited.is_err(), "a hanging system does not answer");

    let put = call(srv.addr, "PUT", "/__sim/faults", r#"{"hang":false}"#).await;
    assert_eq!(put.status, 200);
    assert_eq!(ask(srv.addr, Department::Hukou).await.status, 200);
}

#[tokio::test]
async fn spawn_all_serves_every_department_until_shut_down() {
    let servers = spawn_all(population(), IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let found: Vec<Department> = servers.iter().map(|s| s.department).collect();
    assert_eq!(found, Department::ALL);
    for srv in &servers {
        assert_eq!(
            srv.base_url(),
            format!("http://127.0.0.1:{}", srv.addr.port())
        );
        let reply = ask(srv.addr, srv.department).await;
        assert_eq!(reply.status, 200, "{}", srv.department.name_zh());
        assert!(!record(srv.department, &reply.json()).is_null());
    }
    for srv in servers {
        let addr = srv.addr;
        srv.shutdown().await;
        let refused = async {
            while TcpStream::connect(addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(5), refused)
                .await
                .is_ok()
        );
    }
}
