//! The audit log at the HTTP boundary: every authenticated lookup — answered,
//! refused or failed — is recorded, with pseudonyms and masked forms only, before
//! its answer is sent; the log verifies; and when the log cannot record, the caller
//! gets 503 and no data (no audit, no data).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use gateway::audit::{AuditError, AuditEvent, AuditLog, Recorded};
use gateway::auth::Role;

use serde_json::Value;
use sim::SampleKind;

use crate::helpers::{TestGateway, lookup, sample};

/// Every event's canonical body in the test gateway's audit log, in order.
/// The events recorded since the gateway started: its start-up record of the
/// configuration in force (always the first) is left out.
pub(crate) async fn events(gw: &TestGateway) -> Vec<Value> {
    let data = gw.data_dir.path().join("data");
    gateway::audit::segments::wait_indexed(&data, Duration::from_secs(30))
        .await
        .expect("the index holds every answered event");
    let db = rusqlite::Connection::open(data.join("audit.db")).expect("db");
    let mut statement = db
        .prepare("SELECT body FROM events WHERE seq > 1 ORDER BY seq")
        .expect("query");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .map(|body| serde_json::from_str(&body.expect("body")).expect("JSON"))
        .collect()
}

/// The `<chain>/<seq>/<hash>` parts of an `Audit-Event` header.
fn receipts(header: &str) -> Vec<(String, u64, String)> {
    header
        .split(", ")
        .map(|one| {
            let parts: Vec<&str> = one.split('/').collect();
            assert_eq!(parts.len(), 3, "{one}");
            let seq = parts[1].parse().expect("a seq");
            (parts[0].to_owned(), seq, parts[2].to_owned())
        })
        .collect()
}

// A township app keeps the header as proof of what it received; the privacy officer
// finds exactly that event (chain, seq, hash) among the citizen's. A refused lookup
// released nothing and names no event; a form names each of its lookups'.
#[tokio::test]
async fn an_answer_names_its_audit_event_and_the_officer_finds_that_event() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let ok = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let header = ok.audit_event.as_deref().expect("an Audit-Event header");
    assert!(!header.contains(person.id.as_str()));
    let [(chain, seq, hash)] = receipts(header).try_into().expect("one event");

    let other = gw.token(Role::Clerk, Some("139901201"));
    let refused = gw
        .query_as(&other, &lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.audit_event, None);

    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = crate::helpers::post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &serde_json::json!({"filter": {"id_number": person.id.as_str()}}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json["chain_id"], chain.as_str());
    let events = found.json["events"].as_array().expect("events");
    let event = events
        .iter()
        .find(|e| e["seq"] == seq)
        .expect("the named event is the citizen's");
    assert_eq!(event["hash"], hash.as_str());
    assert_eq!(event["request_id"], ok.json["request_id"]);
    assert_eq!(event["outcome"]["status"], 200);

    let form = crate::helpers::post_json(
        &gw.url("/v1/forms/birth-registration/fill"),
        &gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP)),
        &serde_json::json!({"subject": {"id_number": person.id.as_str()}, "case_id": "TEST-0002"}),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);
    let named = receipts(form.audit_event.as_deref().expect("an Audit-Event header"));
    assert!(named.len() > 1, "{named:?}");
    assert!(named.iter().all(|(c, s, _)| *c == chain && *s > seq));
}

#[tokio::test]
async fn every_lookup_is_recorded_with_pseudonyms_and_the_log_verifies() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let ok = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let other = gw.token(Role::Clerk, Some("139901201"));
    let refused = gw
        .query_as(&other, &lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(refused.status, 403);
    let mut bad = lookup("hukou", "person_by_id", person.id.as_str());
    bad["purpose"] = "curiosity".into();
    assert_eq!(gw.query(&bad).await.status, 400);
    // An ID number smuggled where names go is never recorded.
    let mut smuggled = lookup(person.id.as_str(), "person_by_id", person.id.as_str());
    smuggled["purpose"] = person.id.as_str().into();
    assert_eq!(gw.query(&smuggled).await.status, 404);

    let events = events(&gw).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let text = serde_json::to_string(&events).expect("JSON");
    assert!(
        !text.contains(person.id.as_str()),
        "a bare ID number in the log"
    );
    assert!(!text.contains(&person.name), "a name in the log");

    let answered = &events[0];
    assert_eq!(answered["request_id"], ok.json["request_id"]);
    assert_eq!(answered["outcome"]["status"], 200);
    assert_eq!(answered["caller"]["user"], "clerk");
    assert_eq!(answered["caller"]["source_ip"], "127.0.0.1");
    assert_eq!(answered["purpose"], "birth_registration");
    assert_eq!(answered["case_id"], "TEST-0001");
    assert_eq!(answered["subject_masked"], person.id.masked());
    assert!(
        answered["subject_pseudonym"]
            .as_str()
            .is_some_and(|p| p.starts_with("psn_"))
    );
    let returned = answered["fields_returned"].as_array().expect("list");
    assert!(returned.contains(&"name".into()));
    assert!(
        answered["fields_masked"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["field"] == "address")
    );
    assert!(
        answered["rules"]
            .as_array()
            .expect("list")
            .contains(&"hukou-birth-registration".into())
    );

    let refusal = &events[1];
    assert_eq!(refusal["outcome"]["status"], 403);
    assert_eq!(refusal["outcome"]["problem"], "forbidden");
    assert_eq!(refusal["rules"][0], "hukou-birth-registration");
    // The same subject has the same pseudonym in both events.
    assert_eq!(refusal["subject_pseudonym"], answered["subject_pseudonym"]);

    assert_eq!(events[2]["outcome"]["problem"], "unknown-purpose");

    assert_eq!(events[3]["outcome"]["problem"], "unknown-connector");
    assert_eq!(events[3]["connector"], Value::Null);

    let report = gateway::audit::verify(&gw.data_dir.path().join("data")).expect("intact");
    // The four lookups and the start-up record of the configuration.
    assert_eq!(report.events, 4 + 1);
}

/// An audit log whose disk fills once the gateway has started: it records the
/// start-up record of the configuration and nothing after it.
#[derive(Debug, Default)]
struct BrokenLog {
    started: std::sync::atomic::AtomicBool,
}

impl AuditLog for BrokenLog {
    fn append(&self, _: AuditEvent) -> BoxFuture<'_, Result<Recorded, AuditError>> {
        let first = !self.started.swap(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if first {
                Ok(Recorded {
                    chain_id: String::new(),
                    seq: 1,
                    hash: String::new(),
                })
            } else {
                Err(AuditError::Unavailable("the disk is full".into()))
            }
        })
    }
}

#[tokio::test]
async fn without_a_durable_audit_record_nothing_is_returned() {
    let gw = TestGateway::start_full(
        |_, text| text.to_owned(),
        Some(Arc::new(BrokenLog::default())),
    )
    .await;
    let person = sample(SampleKind::MarriedParent);
    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    reply.assert_problem(503, "audit-unavailable");
    assert_eq!(reply.json["blame"], "gateway");
    assert!(reply.json.get("data").is_none());
    assert!(!reply.text.contains(person.id.as_str()));
    assert!(!reply.text.contains(&person.name));
}

#[tokio::test]
async fn a_verification_that_cannot_be_recorded_answers_nothing() {
    let gw = TestGateway::start_full(
        |_, text| text.to_owned(),
        Some(Arc::new(BrokenLog::default())),
    )
    .await;
    let person = sample(SampleKind::MarriedParent);
    let token = gw.token(gateway::auth::Role::Clerk, Some(crate::helpers::TOWNSHIP));
    let reply = crate::helpers::post_json(
        &gw.url("/v1/verify"),
        &token,
        &serde_json::json!({
            "connector": "hukou", "operation": "person_by_id",
            "subject": {"id_number": person.id.as_str()},
            "purpose": "elderly_allowance", "case_id": "GLJT-1",
            "claims": {"name": person.name},
        }),
    )
    .await;
    reply.assert_problem(503, "audit-unavailable");
    assert!(reply.json.get("fields").is_none(), "no match or mismatch");
    assert!(!reply.text.contains(person.id.as_str()));
    assert!(!reply.text.contains(&person.name));
}

#[tokio::test]
async fn a_form_whose_lookups_cannot_be_recorded_returns_nothing() {
    let gw = TestGateway::start_full(
        |_, text| text.to_owned(),
        Some(Arc::new(BrokenLog::default())),
    )
    .await;
    let person = sample(SampleKind::MarriedParent);
    let token = gw.token(gateway::auth::Role::Clerk, Some(crate::helpers::TOWNSHIP));
    let reply = crate::helpers::post_json(
        &gw.url("/v1/forms/birth-registration/fill"),
        &token,
        &serde_json::json!({"subject": {"id_number": person.id.as_str()}, "case_id": "SYDJ-1"}),
    )
    .await;
    reply.assert_problem(503, "audit-unavailable");
    assert!(reply.json.get("sections").is_none());
    assert!(!reply.text.contains(person.id.as_str()));
    assert!(!reply.text.contains(&person.name));
}

#[tokio::test]
async fn an_admin_change_that_cannot_be_recorded_is_not_made() {
    use gateway::registry::Registry as _;
    let gw = TestGateway::start_full(
        |_, text| text.to_owned(),
        Some(Arc::new(BrokenLog::default())),
    )
    .await;
    let lead = gw.token(Role::TownshipLead, Some(crate::helpers::TOWNSHIP));
    let reply = crate::helpers::post_json(
        &gw.url("/v1/access-requests"),
        &lead,
        &serde_json::json!({
            "connector": "hukou",
            "operations": ["person_by_id"],
            "purposes": ["rural_housing"],
            "fields": {"name": "default"},
            "justification": "农民建房",
        }),
    )
    .await;
    reply.assert_problem(503, "audit-unavailable");
    let registry = gateway::registry::SqliteRegistry::open(&gw.data_dir.path().join("data"))
        .expect("the registry opens");
    assert_eq!(
        registry.revision().await.expect("a revision"),
        0,
        "nothing committed"
    );
    assert!(
        registry
            .access_requests()
            .await
            .expect("requests")
            .is_empty()
    );
}

#[tokio::test]
async fn archiving_keeps_three_years_and_refuses_less() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200);
    let data_dir = gw.data_dir.path().join("data");
    let archive = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .args(["audit", "archive", "--data-dir"])
            .arg(&data_dir)
            .args(extra);
        command.output()
    };
    let out = archive(&[]).await.expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("nothing older than 1096 days"), "{text}");
    let out = archive(&["--keep-days", "30"]).await.expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
    // The lookup and the start-up record of the configuration.
    let backend = gateway::store::Storage::sqlite(&data_dir).audit_backend();
    let report = backend.verify(Default::default()).await.expect("intact");
    assert_eq!(report.events, 1 + 1);
}
