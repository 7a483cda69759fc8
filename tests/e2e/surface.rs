//! The rest of the HTTP surface: health, readiness, unknown paths and methods, and
//! the problem-type documentation the `type` URIs point to.

use gateway::problem::ProblemKind;

use crate::helpers::TestGateway;

#[tokio::test]
async fn healthz_and_readyz_report_truthfully() {
    let gw = TestGateway::start().await;
    let health = gw.get("/healthz").await;
    assert_eq!(health.status, 200);
    let ready = gw.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["connectors"], 4);
    assert!(
        ready.json["config_version"]
            .as_str()
            .is_some_and(|v| v.len() == 16)
    );

    // The store disappears: the process is alive but no longer ready.
    std::fs::remove_dir_all(gw.data_dir.path().join("data")).expect("remove the data dir");
    let health = gw.get("/healthz").await;
    assert_eq!(health.status, 200);
    let ready = gw.get("/readyz").await;
    ready.assert_problem(503, "not-ready");
    assert_eq!(ready.json["blame"], "gateway");
}

/// Ready means "can answer and audit": an audit log another process holds locked
/// makes the gateway not ready, though its store is fine.
#[tokio::test]
async fn readyz_says_not_ready_while_the_audit_log_cannot_record() {
    // The log in SQLite (audit.embedded: sqlite), which a lock held elsewhere stops.
    let gw = TestGateway::start_with(|path, text| {
        if path == "county/gateway.yaml" {
            format!("{text}\naudit:\n  embedded: sqlite\n")
        } else {
            text.to_owned()
        }
    })
    .await;
    assert!(!gw.data_dir.path().join("data/chain").exists());
    assert_eq!(gw.get("/readyz").await.status, 200);
    let locker = rusqlite::Connection::open(gw.data_dir.path().join("data/audit.db"))
        .expect("open the audit log");
    locker
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the audit log");
    let ready = gw.get("/readyz").await;
    ready.assert_problem(503, "not-ready");
    assert_eq!(ready.json["not_ready"], serde_json::json!(["audit"]));
    locker.execute_batch("ROLLBACK").expect("unlock");
    drop(locker);
    assert_eq!(gw.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems_too() {
    let gw = TestGateway::start().await;
    let reply = gw.get("/v1/people/139901199003071234").await;
    reply.assert_problem(404, "not-found");
    assert!(!reply.text.contains("139901199003071234"));

    let reply = gw.get("/v1/query").await;
    reply.assert_problem(405, "method-not-allowed");
    assert!(reply.json["request_id"].as_str().is_some());
}

#[tokio::test]
async fn every_problem_type_is_documented_at_its_uri() {
    let gw = TestGateway::start().await;
    for kind in ProblemKind::ALL {
        let reply = gw.get(&kind.type_uri()).await;
        assert_eq!(reply.status, 200, "{}", kind.slug());
        assert_eq!(reply.json["status"], kind.status().as_u16());
        assert!(reply.json["about"].as_str().is_some_and(|a| !a.is_empty()));
    }
}
