//! Data correction (数据纠错) end to end: a clerk looks a resident up, flags a wrong
//! value they were shown, the household register's department (县公安局) sees it in
//! its queue and accepts it, the cached record is dropped (the next lookup goes to
//! the department again), another department's admin cannot see or answer it, the
//! clerk's township sees the answer, the citizen's access report lists it, retention
//! erases what the citizen stated — and no audit event or error body ever holds it.

use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, client, lookup, post_json, sample};

const CORRECTIONS: &str = "/v1/corrections";
/// What the citizen states: a name no record in the demo has.
const STATED: &str = "邓俊豪测试更正";
const NOTE: &str = "本人称姓名末字登记有误";

fn admin_of(gw: &TestGateway, name: &'static str, department: &'static str) -> String {
    let persona = demo::Persona {
        name,
        about: "a test persona",
        role: Role::DeptAdmin,
        township: None,
        department: Some(department),
        villages: &[],
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

async fn get_as(gw: &TestGateway, path: &str, token: &str) -> Reply {
    let response = client()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer");
    Reply::read(response).await
}

fn correction(id_number: &str) -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "field": "name",
        "subject": {"id_number": id_number},
        "stated_value": STATED,
        "note": NOTE,
        "case_id": "纠错-2026-0001",
        "evidence": "出生医学证明复印件，窗口存档",
    })
}

/// Every audit event's JSON text.
async fn audit_text(gw: &TestGateway) -> (Vec<Value>, String) {
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"limit": 1000}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let events = found.json["events"].as_array().expect("events").clone();
    (events, found.text)
}

#[tokio::test]
async fn a_clerk_flags_a_wrong_name_the_department_accepts_it_and_the_cached_record_is_dropped() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let psb = admin_of(&gw, "psb-admin", "county-psb");
    let hrss = admin_of(&gw, "hrss-admin", "county-hrss");

    // Nothing shown yet: nothing to flag.
    let unseen = post_json(&gw.url(CORRECTIONS), &clerk, &correction(id)).await;
    unseen.assert_problem(403, "forbidden");
    assert_eq!(unseen.json["rule"], "correction-shown");

    // The clerk looks the person up (the record is cached: the second is a hit).
    let body = lookup("hukou", "person_by_id", id);
    let hukou = gw.department(Department::Hukou);
    let before = hukou.requests();
    let first = gw.query(&body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.json["data"]["name"].is_string(), "{}", first.text);
    assert_eq!(gw.query(&body).await.json["cache_hit"], true);
    assert_eq!(hukou.requests() - before, 1);

    // A bad filing is refused without echoing the value or the ID number.
    let mut bad = correction(id);
    bad["case_id"] = json!("");
    bad["field"] = json!("no_such_field");
    let refused = post_json(&gw.url(CORRECTIONS), &clerk, &bad).await;
    refused.assert_problem(400, "invalid-request");
    assert!(!refused.text.contains(STATED) && !refused.text.contains(id));
    // A `never` field — none in hukou's person record — and an open one both have
    // to have been shown; `id_number` is open and was shown.

    // Filed: open, with a deadline five working days on, routed to 县公安局.
    let filed = post_json(&gw.url(CORRECTIONS), &clerk, &correction(id)).await;
    assert_eq!(filed.status, 201, "{}", filed.text);
    let cid = filed.json["id"].as_str().expect("an id").to_owned();
    assert_eq!(filed.json["state"], "open");
    assert_eq!(filed.json["department"], "county-psb");
    assert_eq!(filed.json["stated_value"], STATED);
    assert_eq!(filed.json["overdue"], false);
    assert!(filed.json["subject_masked"].as_str().unwrap().contains('*'));
    assert!(
        !filed.text.contains(id),
        "the ID number is not answered back"
    );

    // The department's queue holds it; another department's admin knows nothing of it.
    let queue = get_as(&gw, CORRECTIONS, &psb).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert_eq!(queue.json["corrections"][0]["id"], cid.as_str());
    let open_only = get_as(&gw, "/v1/corrections?state=open&overdue=false", &psb).await;
    assert_eq!(open_only.json["corrections"].as_array().unwrap().len(), 1);
    let other = get_as(&gw, CORRECTIONS, &hrss).await;
    assert_eq!(other.json["corrections"], json!([]), "{}", other.text);
    get_as(&gw, &format!("{CORRECTIONS}/{cid}"), &hrss)
        .await
        .assert_problem(404, "unknown-correction");
    post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/accept")),
        &hrss,
        &json!({}),
    )
    .await
    .assert_problem(404, "unknown-correction");
    // The filing clerk cannot answer it either.
    post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/accept")),
        &clerk,
        &json!({}),
    )
    .await
    .assert_problem(404, "unknown-correction");

    // 县公安局 accepts: the cached record is dropped, the next lookup asks again.
    let accepted = post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/accept")),
        &psb,
        &json!({"reason": "已按出生医学证明更正。"}),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.json["state"], "accepted");
    assert_eq!(accepted.json["answered_by"], "psb-admin");
    let again = gw.query(&body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["cache_hit"], false);
    assert_eq!(
        hukou.requests() - before,
        2,
        "the lookup went to the department"
    );
    // Answered once only.
    post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/reject")),
        &psb,
        &json!({"reason": "再议"}),
    )
    .await
    .assert_problem(409, "already-decided");

    // The clerk's township sees the answer.
    let mine = get_as(&gw, &format!("{CORRECTIONS}/{cid}"), &clerk).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json["state"], "accepted");
    assert_eq!(mine.json["reason"], "已按出生医学证明更正。");
    let lead = gw.token(Role::TownshipLead, Some(TOWNSHIP));
    let listed = get_as(&gw, "/v1/corrections?state=accepted", &lead).await;
    assert_eq!(listed.json["corrections"][0]["id"], cid.as_str());
    let elsewhere = gw.token(Role::Clerk, Some("139901201"));
    get_as(&gw, &format!("{CORRECTIONS}/{cid}"), &elsewhere)
        .await
        .assert_problem(404, "unknown-correction");

    // The citizen's access report lists the correction: filed, then accepted.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let report = post_json(
        &gw.url("/v1/audit/report"),
        &officer,
        &json!({"id_number": id}),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let steps: Vec<(&str, &str, &str)> = report.json["corrections"]
        .as_array()
        .expect("corrections")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap(),
                s["department"].as_str().unwrap(),
                s["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("filed", "county-psb", "name"),
            ("accepted", "county-psb", "name")
        ],
        "{}",
        report.text
    );
    assert!(!report.text.contains(STATED));

    // Retention: thirty days after the answer, what the citizen stated is erased and
    // the rest stays.
    assert_eq!(gateway::corrections::sweep(&gw.app).await.unwrap(), 0);
    gw.clock
        .advance(std::time::Duration::from_secs(31 * 24 * 3600));
    assert_eq!(gateway::corrections::sweep(&gw.app).await.unwrap(), 1);
    let erased = get_as(&gw, &format!("{CORRECTIONS}/{cid}"), &psb).await;
    assert_eq!(erased.json["stated_value"], Value::Null, "{}", erased.text);
    assert_eq!(erased.json["note"], Value::Null);
    assert_eq!(erased.json["state"], "accepted");
    assert!(erased.json["erased_at"].is_string());
    assert_eq!(gateway::corrections::sweep(&gw.app).await.unwrap(), 0);

    // Every step is in the audit log by id, field and pseudonym — never the value,
    // the note or the ID number.
    let (events, text) = audit_text(&gw).await;
    assert!(!text.contains(STATED) && !text.contains(NOTE) && !text.contains(id));
    let steps: Vec<&str> = events
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .filter(|op| op.starts_with("correction.") && op.contains(&cid))
        .map(|op| op.split(' ').next().unwrap_or_default())
        .collect();
    for step in [
        "correction.filed",
        "correction.accepted",
        "correction.erased",
    ] {
        assert!(steps.contains(&step), "{step}: {steps:?}");
    }
    // The stored registry file keeps no trace of the value either once erased
    // (the bytes of the erased row are overwritten in place by the next writes; the
    // answer above already shows NULL).
}

#[tokio::test]
async fn a_department_rejects_with_a_reason_and_an_overdue_correction_is_marked() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let id = person.id.as_str();
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let psb = admin_of(&gw, "psb-admin", "county-psb");
    let shown = gw.query(&lookup("hukou", "person_by_id", id)).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let filed = post_json(&gw.url(CORRECTIONS), &clerk, &correction(id)).await;
    assert_eq!(filed.status, 201, "{}", filed.text);
    let cid = filed.json["id"].as_str().unwrap().to_owned();

    // Ten days on it is overdue, by working days.
    gw.clock
        .advance(std::time::Duration::from_secs(10 * 24 * 3600));
    let overdue = get_as(&gw, "/v1/corrections?overdue=true", &psb).await;
    assert_eq!(overdue.status, 200, "{}", overdue.text);
    let listed = &overdue.json["corrections"][0];
    assert_eq!(listed["id"], cid.as_str());
    assert_eq!(listed["overdue"], true);
    assert!(
        listed["working_days_overdue"].as_i64().unwrap() >= 1,
        "{listed}"
    );

    // A rejection needs a reason.
    let bare = post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/reject")),
        &psb,
        &json!({}),
    )
    .await;
    bare.assert_problem(400, "invalid-request");
    let unknown_key = post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/reject")),
        &psb,
        &json!({"reason": "x", "value": STATED}),
    )
    .await;
    unknown_key.assert_problem(400, "invalid-request");
    assert!(!unknown_key.text.contains(STATED));
    let rejected = post_json(
        &gw.url(&format!("{CORRECTIONS}/{cid}/reject")),
        &psb,
        &json!({"reason": "经核对户籍档案，原登记无误。"}),
    )
    .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    assert_eq!(rejected.json["state"], "rejected");
    assert_eq!(rejected.json["overdue"], false);
    let mine = get_as(&gw, &format!("{CORRECTIONS}/{cid}"), &clerk).await;
    assert_eq!(mine.json["reason"], "经核对户籍档案，原登记无误。");

    // Nobody but the township's lookup roles files: a department admin is refused.
    post_json(&gw.url(CORRECTIONS), &psb, &correction(id))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn the_department_answers_on_its_console_queue_and_another_department_finds_nothing() {
    use crate::console::Visitor;
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let shown = gw.query(&lookup("hukou", "person_by_id", id)).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let filed = post_json(&gw.url(CORRECTIONS), &clerk, &correction(id)).await;
    assert_eq!(filed.status, 201, "{}", filed.text);
    let cid = filed.json["id"].as_str().unwrap().to_owned();

    // 县公安局's admin sees it in the queue, in Chinese, and opens it.
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let queue = admin.get("/console/corrections").await;
    assert_eq!(queue.status, 200, "{}", queue.body);
    assert!(queue.body.contains("数据纠错") && queue.body.contains("id=\"corrections-open\""));
    assert!(queue.body.contains(&format!("data-correction=\"{cid}\"")));
    assert!(
        !queue.body.contains(id),
        "the queue shows the masked ID only"
    );
    let page = admin.get(&format!("/console/corrections/{cid}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(STATED));
    // Every answer field has its label (keyboard and screen-reader use).
    for target in ["accept-note", "reject-reason"] {
        assert!(page.body.contains(&format!("for=\"{target}\"")), "{target}");
        assert!(page.body.contains(&format!("id=\"{target}\"")), "{target}");
    }
    // A rejection without a reason comes back with the problem, nothing changed.
    let bare = admin
        .post(
            &format!("/console/corrections/{cid}/reject"),
            &[("csrf", &page.csrf()), ("reason", "")],
        )
        .await;
    assert_eq!(bare.status, 200, "{}", bare.body);
    assert!(bare.body.contains("id=\"correction-errors\""));
    assert!(bare.body.contains("data-state=\"open\""));

    // Another department's admin: no such correction, and no way to answer it.
    let mut other = Visitor::signed_in(&gw, "admin-hrss").await;
    let hidden = other.get(&format!("/console/corrections/{cid}")).await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);
    let their_queue = other.get("/console/corrections").await;
    assert!(!their_queue.body.contains(&cid));

    // Accepted on the console: the API's acceptance, seen by the township.
    let accepted = admin
        .post(
            &format!("/console/corrections/{cid}/accept"),
            &[("csrf", &page.csrf()), ("reason", "已更正。")],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let after = admin.get(&format!("/console/corrections/{cid}")).await;
    assert!(
        after.body.contains("data-state=\"accepted\""),
        "{}",
        after.body
    );
    assert!(!after.body.contains("id=\"accept-form\""));
    let mut township = Visitor::signed_in(&gw, "clerk-dongling").await;
    let mine = township.get("/console/corrections").await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(mine.body.contains(&format!("data-correction=\"{cid}\"")));
    assert!(mine.body.contains("已更正"));
    let english = township
        .post(
            "/console/lang",
            &[
                ("csrf", &mine.csrf()),
                ("lang", "en"),
                ("back", "/console/corrections"),
            ],
        )
        .await;
    assert!(english.status < 400, "{}", english.body);
    let en = township.get("/console/corrections").await;
    assert!(en.body.contains("Data corrections"), "{}", en.body);
}
