//! Connector versions as drafts: a saved version serves nothing until it is activated;
//! a draft is tested against the department for every operation (household ones
//! too) with the subject's pseudonym in the audit log; activation and rollback are one
//! call each; a draft that loosens the classification is put in force by the
//! governance office's approval only; the connector, its versions and a diff between
//! two can be read back.

use crate::helpers::Edit as _;
use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TestGateway, client, county_file, post_json, sample};

fn governance(gw: &TestGateway) -> String {
    let persona = demo::Persona {
        name: "governance-tester",
        about: "a test reviewer",
        role: Role::Governance,
        township: None,
        villages: &[],
        department: None,
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

fn admin_of(gw: &TestGateway, department: &'static str) -> String {
    let persona = demo::Persona {
        name: "drafts-tester",
        about: "a test admin",
        role: Role::DeptAdmin,
        township: None,
        villages: &[],
        department: Some(department),
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

/// The 公安局's own copy of its household connector as `hukou2`, pointed at the
/// simulated system; `edit` changes the definition's text.
fn hukou2(gw: &TestGateway, edit: impl Fn(String) -> String) -> Value {
    let base = gw.department(Department::Hukou).base_url();
    let text = county_file("county/connectors/hukou.yaml")
        .edit("id: hukou\n", "id: hukou2\n")
        .edit(
            "base_url: http://127.0.0.1:18101",
            &format!("base_url: {base}"),
        );
    let schema = |path: &str| serde_json::from_str::<Value>(county_file(path)).expect("json");
    json!({
        "definition": edit(text),
        "schemas": {
            "hukou/person.schema.json": schema("schemas/hukou/person.schema.json"),
            "hukou/household.schema.json": schema("schemas/hukou/household.schema.json"),
        },
    })
}

/// Version 2's mistake: the person lookup asks a path the department does not serve.
fn wrong_path(text: String) -> String {
    text.edit("path: /rkxx/api/v1/person,", "path: /rkxx/api/v1/persons,")
}

/// Ethnicity shared openly: a loosening.
fn ethnicity_open(text: String) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("ethnicity:"))
        .expect("an ethnicity field")
        .to_owned();
    let open = line.edit("sharing: conditional", "sharing: open");
    assert_ne!(open, line, "ethnicity was conditional");
    text.edit(&line, &open)
}

async fn put(gw: &TestGateway, token: &str, body: &Value) -> Reply {
    let request = client()
        .put(gw.url("/v1/admin/connectors/hukou2"))
        .bearer_auth(token)
        .json(body);
    Reply::read(request.send().await.expect("an answer")).await
}

async fn get(gw: &TestGateway, token: &str, path: &str) -> Reply {
    let request = client().get(gw.url(path)).bearer_auth(token);
    Reply::read(request.send().await.expect("an answer")).await
}

fn person_lookup(id_number: &str) -> Value {
    json!({
        "connector": "hukou2",
        "operation": "person_by_id",
        "subject": {"id_number": id_number},
        "purpose": "birth_registration",
        "case_id": "TEST-0001",
    })
}

/// Every audit event whose operation starts with `prefix`.
async fn events(gw: &TestGateway, prefix: &str) -> Vec<Value> {
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"limit": 500}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with(prefix))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_saved_version_is_a_draft_tested_then_activated_and_rolled_back_in_one_call() {
    let gw = TestGateway::start().await;
    let police = gw.token(Role::DeptAdmin, None);
    let person = sample(SampleKind::MarriedParent);

    // Version 1: a new connector shares fields the county has not classified, so the
    // governance office's approval puts it in force (activation alone may not).
    let first = put(&gw, &police, &hukou2(&gw, |t| t)).await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.json["state"], "awaiting_review");
    post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/1/activate"),
        &police,
        &json!({}),
    )
    .await
    .assert_problem(409, "awaiting-review");
    let shown = get(&gw, &police, "/v1/admin/connectors/hukou2").await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["active"], Value::Null);
    assert_eq!(shown.json["drafts"][0]["state"], "awaiting_review");
    let approved = post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/1/approve"),
        &governance(&gw),
        &json!({}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let answer = gw.query(&person_lookup(person.id.as_str())).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // Version 2 asks the wrong path: saved, it is a draft and clerks keep version 1.
    let second = put(&gw, &police, &hukou2(&gw, wrong_path)).await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.json["version"], 2);
    assert_eq!(second.json["state"], "draft");
    assert_eq!(second.json["active"], 1);
    let answer = gw.query(&person_lookup(person.id.as_str())).await;
    assert_eq!(
        answer.status, 200,
        "a draft serves nothing: {}",
        answer.text
    );
    let shown = get(&gw, &police, "/v1/admin/connectors/hukou2").await;
    assert_eq!(shown.json["active"], 1, "{}", shown.text);
    assert_eq!(shown.json["in_force"]["version"], 1, "{}", shown.text);
    assert_eq!(shown.json["drafts"][0]["version"], 2, "{}", shown.text);
    assert_eq!(shown.json["drafts"][0]["state"], "draft", "{}", shown.text);

    // The draft's test tries every operation, the household one too, and says which
    // one has a problem — without data.
    let test = |version: u32| {
        let gw = &gw;
        let police = police.clone();
        async move {
            post_json(
                &gw.url(&format!(
                    "/v1/admin/connectors/hukou2/versions/{version}/test"
                )),
                &police,
                &json!({"subject": {
                    "id_number": person.id.as_str(),
                    "household_number": person.household,
                }}),
            )
            .await
        }
    };
    let tested = test(2).await;
    assert_eq!(tested.status, 200, "{}", tested.text);
    assert_eq!(tested.json["ok"], false, "{}", tested.text);
    let outcome = |reply: &Reply, operation: &str| {
        reply.json["operations"]
            .as_array()
            .expect("operations")
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap_or_else(|| panic!("{operation} tested: {}", reply.text))
            .clone()
    };
    assert_eq!(outcome(&tested, "person_by_id")["ok"], false);
    assert_eq!(outcome(&tested, "household")["ok"], true, "{}", tested.text);
    assert_eq!(outcome(&tested, "household")["outcome"], "conforms");
    assert!(!tested.text.contains(&person.name), "{}", tested.text);
    assert!(!tested.text.contains(person.id.as_str()), "{}", tested.text);
    let good = test(1).await;
    assert_eq!(good.json["ok"], true, "{}", good.text);

    // The test calls are in the audit log with the subject's pseudonym, the same a
    // lookup of that person records.
    let looked_up = events(&gw, "person_by_id").await;
    let lookups: Vec<&Value> = looked_up
        .iter()
        .filter(|e| e["connector"] == "hukou2")
        .collect();
    let pseudonym = lookups
        .first()
        .and_then(|e| e["subject_pseudonym"].as_str())
        .map(str::to_owned);
    let tests = events(&gw, "connector.test hukou2 v2 person_by_id").await;
    assert_eq!(tests.len(), 1, "{:#?}", tests);
    if let Some(pseudonym) = pseudonym {
        assert_eq!(tests[0]["subject_pseudonym"], pseudonym.as_str());
    } else {
        assert!(tests[0]["subject_pseudonym"].is_string(), "{tests:?}");
    }
    assert!(tests[0]["subject_masked"].is_string(), "{tests:?}");
    assert_eq!(
        events(&gw, "connector.test hukou2 v2 household ")
            .await
            .len(),
        1
    );

    // What changed from 1 to 2: the person operation's request, no field.
    let diff = get(
        &gw,
        &police,
        "/v1/admin/connectors/hukou2/versions/1/diff/2",
    )
    .await;
    assert_eq!(diff.status, 200, "{}", diff.text);
    assert_eq!(
        diff.json["operations"]["changed"],
        json!([{"operation": "person_by_id", "changed": ["request"]}]),
        "{}",
        diff.text
    );
    assert_eq!(diff.json["fields"]["reclassified"], json!([]));

    // Activated anyway, it breaks clerks' lookups; one call brings version 1 back.
    let activated = post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/2/activate"),
        &police,
        &json!({}),
    )
    .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    assert_eq!(activated.json["previous"], 1);
    let broken = gw.query(&person_lookup(person.id.as_str())).await;
    assert_ne!(broken.status, 200, "{}", broken.text);
    let rolled = post_json(
        &gw.url("/v1/admin/connectors/hukou2/rollback"),
        &police,
        &json!({"version": 1}),
    )
    .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    assert_eq!(rolled.json["active"], 1);
    let answer = gw.query(&person_lookup(person.id.as_str())).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let versions = get(&gw, &police, "/v1/admin/connectors/hukou2/versions").await;
    let states: Vec<(u64, String)> = versions.json["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap_or_default(),
                v["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(1, "active".to_owned()), (2, "previous".to_owned())],
        "a rollback makes no new version"
    );

    // Every act is audited.
    assert_eq!(
        events(&gw, "connector.activate hukou2 v2 from=v1")
            .await
            .len(),
        1
    );
    assert_eq!(
        events(&gw, "connector.rollback hukou2 v1 from=v2")
            .await
            .len(),
        1
    );
    assert_eq!(events(&gw, "connector.draft hukou2").await.len(), 1);
}

#[tokio::test]
async fn a_loosening_draft_waits_for_the_office_and_other_departments_see_nothing() {
    let gw = TestGateway::start().await;
    let police = gw.token(Role::DeptAdmin, None);
    let first = put(&gw, &police, &hukou2(&gw, |t| t)).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let approve = |version: u32| {
        let gw = &gw;
        async move {
            post_json(
                &gw.url(&format!(
                    "/v1/admin/connectors/hukou2/versions/{version}/approve"
                )),
                &governance(gw),
                &json!({}),
            )
            .await
        }
    };
    assert_eq!(approve(1).await.status, 200);

    let loosened = put(&gw, &police, &hukou2(&gw, ethnicity_open)).await;
    assert_eq!(loosened.status, 202, "{}", loosened.text);
    assert_eq!(loosened.json["version"], 2);
    post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/2/activate"),
        &police,
        &json!({}),
    )
    .await
    .assert_problem(409, "awaiting-review");
    let diff = get(
        &gw,
        &police,
        "/v1/admin/connectors/hukou2/versions/1/diff/2",
    )
    .await;
    assert_eq!(diff.status, 200, "{}", diff.text);
    assert_eq!(
        diff.json["fields"]["reclassified"][0]["field"], "ethnicity",
        "{}",
        diff.text
    );
    assert_eq!(
        diff.json["fields"]["reclassified"][0]["to"]["sharing"],
        "open"
    );

    // Another department neither reads nor acts on the connector.
    let other = admin_of(&gw, "county-hc");
    for path in [
        "/v1/admin/connectors/hukou2",
        "/v1/admin/connectors/hukou2/versions/1",
        "/v1/admin/connectors/hukou2/versions/1/diff/2",
    ] {
        get(&gw, &other, path)
            .await
            .assert_problem(403, "forbidden");
    }
    post_json(
        &gw.url("/v1/admin/connectors/hukou2/rollback"),
        &other,
        &json!({"version": 1}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A rollback goes to a version that served; an unknown one is named as such.
    post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/9/activate"),
        &police,
        &json!({}),
    )
    .await
    .assert_problem(404, "unknown-connector-version");

    // The office's approval puts it in force.
    assert_eq!(approve(2).await.status, 200);
    let shown = get(&gw, &police, "/v1/admin/connectors/hukou2").await;
    assert_eq!(shown.json["active"], 2, "{}", shown.text);
    assert_eq!(shown.json["drafts"], json!([]), "{}", shown.text);
    let version = get(&gw, &police, "/v1/admin/connectors/hukou2/versions/2").await;
    assert_eq!(version.status, 200, "{}", version.text);
    assert!(
        version.json["definition"]
            .as_str()
            .is_some_and(|d| d.contains("id: hukou2")),
        "{}",
        version.text
    );
    assert!(version.json["schemas"]["hukou/person.schema.json"].is_object());

    // Rolling back to version 1 tightens; rolling forward again to 2 is allowed, as
    // the office approved it.
    let back = post_json(
        &gw.url("/v1/admin/connectors/hukou2/rollback"),
        &police,
        &json!({"version": 1}),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let forward = post_json(
        &gw.url("/v1/admin/connectors/hukou2/rollback"),
        &police,
        &json!({"version": 2}),
    )
    .await;
    assert_eq!(forward.status, 200, "{}", forward.text);
}
