//! Connectors registered through the admin API, live: a department admin registers and
//! updates a connector (a version each time, checked like `gateway check`), disables
//! and enables it, tests it without seeing data; the catalog shows what is shared on
//! what terms; and a series of changes under steady load fails no request and mixes
//! no versions.

use crate::helpers::Edit as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TestGateway, client, county_file, lookup, post_json, sample};

/// A token for `role` in `department`.
fn token_of(gw: &TestGateway, role: Role, department: &'static str) -> String {
    let persona = demo::Persona {
        name: "registry-tester",
        about: "a test caller",
        role,
        township: None,
        villages: &[],
        department: Some(department),
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

/// The 计生 connector copied as `jisheng2` by its own department (the health
/// commission), pointed at the simulated 计生 system, with `marital_status` shared as
/// `sharing`.
fn jisheng2(gw: &TestGateway, sharing: &str) -> Value {
    let definition = county_file("county/connectors/jisheng.yaml")
        .edit("id: jisheng\n", "id: jisheng2\n")
        .edit(
            "base_url: http://127.0.0.1:18103",
            &format!(
                "base_url: {}",
                gw.department(Department::Jisheng).base_url()
            ),
        )
        .edit(
            "transform: { code: marital_status }, pii: code, sharing: open }",
            &format!("transform: {{ code: marital_status }}, pii: code, sharing: {sharing} }}"),
        );
    assert!(definition.contains("id: jisheng2"));
    let schema: Value =
        serde_json::from_str(county_file("schemas/jisheng/fertility.schema.json")).expect("json");
    json!({
        "definition": definition,
        "schemas": { "jisheng/fertility.schema.json": schema },
    })
}

/// A data admin of the health commission, which owns 计生.
fn hc_admin(gw: &TestGateway) -> String {
    token_of(gw, Role::DeptAdmin, "county-hc")
}

/// The county's data-governance office.
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

/// Approves the classification review of `id`'s `version`, which must succeed.
async fn approve_review(gw: &TestGateway, id: &str, version: &Value) -> Reply {
    let approved = post_json(
        &gw.url(&format!(
            "/v1/admin/connectors/{id}/versions/{version}/approve"
        )),
        &governance(gw),
        &json!({"note": "checked against the county's catalog"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    approved
}

async fn put(gw: &TestGateway, token: &str, id: &str, body: &Value) -> Reply {
    let request = client()
        .put(gw.url(&format!("/v1/admin/connectors/{id}")))
        .bearer_auth(token)
        .json(body);
    Reply::read(request.send().await.expect("an answer")).await
}

async fn get(gw: &TestGateway, token: &str, path: &str) -> Reply {
    let request = client().get(gw.url(path)).bearer_auth(token);
    Reply::read(request.send().await.expect("an answer")).await
}

fn fertility(id_number: &str) -> Value {
    lookup("jisheng2", "fertility_by_id", id_number)
}

#[tokio::test]
async fn a_department_registers_a_connector_and_clerks_use_it_once_its_classification_is_approved()
{
    let gw = TestGateway::start().await;
    let admin = hc_admin(&gw);
    let person = sample(SampleKind::MarriedParent);
    gw.query(&fertility(person.id.as_str()))
        .await
        .assert_problem(404, "unknown-connector");

    // A new connector shares fields the county has not classified yet: it waits for
    // the data-governance office, and serves nothing meanwhile.
    let proposed = put(&gw, &admin, "jisheng2", &jisheng2(&gw, "open")).await;
    assert_eq!(proposed.status, 202, "{}", proposed.text);
    assert_eq!(proposed.json["version"], 1);
    assert_eq!(proposed.json["state"], "awaiting_review");
    assert!(
        proposed.json["loosenings"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["field"] == "marital_status")),
        "{}",
        proposed.text
    );
    gw.query(&fertility(person.id.as_str()))
        .await
        .assert_problem(404, "unknown-connector");
    // The department may not approve its own classification.
    post_json(
        &gw.url("/v1/admin/connectors/jisheng2/versions/1/approve"),
        &admin,
        &json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    approve_review(&gw, "jisheng2", &json!(1)).await;

    let answer = gw.query(&fertility(person.id.as_str())).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["data"]["marital_status"].is_string(),
        "{}",
        answer.text
    );
    assert!(
        answer.json["data"].get("name").is_none(),
        "conditional fields need a grant"
    );

    // The same content again makes no new version; a change makes version 2, a draft
    // that serves once the department activates it.
    let again = put(&gw, &admin, "jisheng2", &jisheng2(&gw, "open")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["unchanged"], true);
    assert_eq!(again.json["version"], 1);
    let changed = put(&gw, &admin, "jisheng2", &jisheng2(&gw, "conditional")).await;
    assert_eq!(changed.status, 201, "{}", changed.text);
    assert_eq!(changed.json["version"], 2);
    assert_eq!(changed.json["state"], "draft");
    let answer = gw.query(&fertility(person.id.as_str())).await;
    assert!(
        answer.json["data"]["marital_status"].is_string(),
        "version 1 serves until version 2 is activated: {}",
        answer.text
    );
    let activated = post_json(
        &gw.url("/v1/admin/connectors/jisheng2/versions/2/activate"),
        &admin,
        &json!({}),
    )
    .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    let answer = gw.query(&fertility(person.id.as_str())).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["data"].get("marital_status").is_none(),
        "version 2 serves marital status only under a grant: {}",
        answer.text
    );

    let versions = get(&gw, &admin, "/v1/admin/connectors/jisheng2/versions").await;
    assert_eq!(versions.status, 200, "{}", versions.text);
    let listed: Vec<u64> = versions.json["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(listed, [1, 2]);
    assert_eq!(versions.json["current"], 2);
    assert_eq!(
        versions.json["versions"][0]["created_by"],
        "registry-tester"
    );
    assert_eq!(versions.json["versions"][0]["review"]["state"], "approved");
    assert_eq!(
        versions.json["versions"][0]["review"]["decided_by"],
        "governance-tester"
    );
    // Raising a field's protection needed no review.
    assert!(versions.json["versions"][1]["review"].is_null());
}

#[tokio::test]
async fn an_invalid_connector_is_refused_with_every_problem_and_changes_nothing() {
    let gw = TestGateway::start().await;
    let admin = hc_admin(&gw);
    let mut body = jisheng2(&gw, "open");
    let broken = body["definition"]
        .as_str()
        .expect("text")
        .edit("sharing: never", "sharing: sometimes")
        .edit(
            "timeouts: { connect_ms: 1000, total_ms: 3000 }",
            "timeouts: { connect_ms: 1000, total_ms: 3000 }\nsharing_terms: { legal_basis: \"\" }",
        );
    body["definition"] = json!(broken);
    let refused = put(&gw, &admin, "jisheng2", &body).await;
    refused.assert_problem(400, "invalid-request");
    assert!(
        refused.json["problems"][0]["path"].is_string(),
        "{}",
        refused.text
    );

    // A field mapped that the schema does not declare, and empty sharing terms: both.
    let mut body = jisheng2(&gw, "open");
    let text = body["definition"].as_str().expect("text").to_owned();
    let text = text
        .edit(
            "      hereditary_disease:",
            "      shoe_size: { from: /shoe, pii: none, sharing: open }\n      hereditary_disease:",
        )
        .edit(
            "legal_basis: 《中华人民共和国人口与计划生育法》；《政务数据共享条例》",
            "legal_basis: \"\"",
        );
    body["definition"] = json!(text);
    let refused = put(&gw, &admin, "jisheng2", &body).await;
    refused.assert_problem(422, "invalid-config");
    let paths: Vec<&str> = refused.json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"sharing_terms.legal_basis"),
        "{}",
        refused.text
    );
    assert!(
        paths.iter().any(|p| p.contains("shoe_size")),
        "{}",
        refused.text
    );
    let versions = get(&gw, &admin, "/v1/admin/connectors/jisheng2/versions").await;
    versions.assert_problem(404, "unknown-connector");
}

#[tokio::test]
async fn departments_act_only_on_their_own_connectors_and_files_stay_the_source() {
    let gw = TestGateway::start().await;
    let body = jisheng2(&gw, "open");
    // The public security bureau may not register the health commission's connector.
    let police = gw.token(Role::DeptAdmin, None);
    put(&gw, &police, "jisheng2", &body)
        .await
        .assert_problem(403, "forbidden");
    let clerk = gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP));
    put(&gw, &clerk, "jisheng2", &body)
        .await
        .assert_problem(403, "forbidden");
    let admin = hc_admin(&gw);
    assert_eq!(put(&gw, &admin, "jisheng2", &body).await.status, 202);
    approve_review(&gw, "jisheng2", &json!(1)).await;
    // Another department may not disable it; the owner and an operator may.
    let disable = |token: String| {
        let gw = &gw;
        async move {
            post_json(
                &gw.url("/v1/admin/connectors/jisheng2/disable"),
                &token,
                &json!({}),
            )
            .await
        }
    };
    disable(police.clone())
        .await
        .assert_problem(403, "forbidden");
    let person = sample(SampleKind::MarriedParent);
    let disabled = disable(admin.clone()).await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    // Switched off for now: the clerk is told so, and by which department.
    let off = gw.query(&fertility(person.id.as_str())).await;
    off.assert_problem(503, "connector-disabled");
    assert_eq!(off.json["department"]["id"], "county-hc", "{}", off.text);
    assert_eq!(off.json["department"]["name"], "县卫生健康委员会");
    assert_eq!(off.json["blame"], "department");
    let catalog = get(&gw, &clerk, "/v1/catalog").await;
    assert!(
        catalog.json["connectors"]
            .as_array()
            .expect("connectors")
            .iter()
            .any(|c| c["id"] == "jisheng2" && c["enabled"] == false),
        "{}",
        catalog.text
    );
    let enabled = post_json(
        &gw.url("/v1/admin/connectors/jisheng2/enable"),
        &gw.token(Role::Operator, None),
        &json!({}),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(gw.query(&fertility(person.id.as_str())).await.status, 200);

    // The county's own files are edited as files.
    let mut hukou = jisheng2(&gw, "open");
    hukou["definition"] = json!(county_file("county/connectors/hukou.yaml"));
    let refused = put(&gw, &police, "hukou", &hukou).await;
    refused.assert_problem(409, "file-managed");
    post_json(
        &gw.url("/v1/admin/connectors/hukou/disable"),
        &police,
        &json!({}),
    )
    .await
    .assert_problem(409, "file-managed");

    // Every attempt is in the audit log, with who made it.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"limit": 100}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let events = found.json["events"].as_array().expect("events");
    let admin_ops: Vec<(String, u64, String)> = events
        .iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("connector."))
        })
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or_default().to_owned(),
                e["outcome"]["status"].as_u64().unwrap_or_default(),
                e["caller"]["department"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        admin_ops.iter().any(|(op, status, dept)| op
            .starts_with("connector.propose jisheng2 content=")
            && *status == 200
            && dept == "county-hc"),
        "{admin_ops:?}"
    );
    assert!(
        admin_ops.iter().any(|(op, status, _)| op
            .starts_with("connector.review.approve jisheng2 v1 content=")
            && *status == 200),
        "{admin_ops:?}"
    );
    assert!(
        admin_ops
            .iter()
            .any(|(op, status, dept)| op == "connector.put jisheng2"
                && *status == 403
                && dept == "county-psb"),
        "{admin_ops:?}"
    );
    for op in ["connector.disable jisheng2", "connector.enable jisheng2"] {
        assert!(
            admin_ops.iter().any(|(o, s, _)| o == op && *s == 200),
            "{op}: {admin_ops:?}"
        );
    }
    assert!(
        admin_ops
            .iter()
            .any(|(o, s, _)| o == "connector.put hukou" && *s == 409),
        "{admin_ops:?}"
    );
    let loads = events
        .iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("config.load"))
        })
        .count();
    // The start-up record, then the approval, disable and enable each put a
    // configuration in force (the proposal did not).
    assert_eq!(loads, 1 + 3, "every change put a configuration in force");
}

#[tokio::test]
async fn a_connector_test_reports_conformance_and_latency_without_data() {
    let gw = TestGateway::start().await;
    let admin = gw.token(Role::DeptAdmin, None);
    let person = sample(SampleKind::MarriedParent);
    let test = |body: Value| {
        let gw = &gw;
        let admin = admin.clone();
        async move { post_json(&gw.url("/v1/admin/connectors/hukou/test"), &admin, &body).await }
    };
    let ok =
        test(json!({"operation": "person_by_id", "subject": {"id_number": person.id.as_str()}}))
            .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["outcome"], "conforms");
    assert!(ok.json["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(!ok.text.contains(person.id.as_str()), "{}", ok.text);
    assert!(!ok.text.contains(&person.name), "no data: {}", ok.text);
    // The test call is audited with its subject, by pseudonym, like a lookup.
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &gw.token(Role::PrivacyOfficer, None),
        &json!({"limit": 100}),
    )
    .await;
    let tested = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("connector.test hukou.person_by_id"))
        })
        .cloned()
        .expect("the test call is audited");
    assert!(tested["subject_pseudonym"].is_string(), "{tested}");
    assert!(tested["subject_masked"].is_string(), "{tested}");

    gw.set_faults(
        Department::Hukou,
        sim::Faults {
            schema_violation: true,
            ..Default::default()
        },
    );
    let bad =
        test(json!({"operation": "person_by_id", "subject": {"id_number": person.id.as_str()}}))
            .await;
    assert_eq!(bad.status, 200, "{}", bad.text);
    assert_ne!(bad.json["outcome"], "conforms", "{}", bad.text);
    assert!(!bad.text.contains(&person.name), "{}", bad.text);

    let other = token_of(&gw, Role::DeptAdmin, "county-hrss");
    post_json(
        &gw.url("/v1/admin/connectors/hukou/test"),
        &other,
        &json!({"operation": "person_by_id", "subject": {"id_number": person.id.as_str()}}),
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn the_catalog_shows_fields_and_terms_to_any_caller_and_no_data() {
    let gw = TestGateway::start().await;
    let clerk = gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP));
    let catalog = get(&gw, &clerk, "/v1/catalog").await;
    assert_eq!(catalog.status, 200, "{}", catalog.text);
    let hukou = catalog.json["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .find(|c| c["id"] == "hukou")
        .expect("hukou is listed");
    assert_eq!(hukou["department"]["id"], "county-psb");
    let fields = hukou["operations"][0]["fields"].as_array().expect("fields");
    let sharing: BTreeSet<&str> = fields
        .iter()
        .filter_map(|f| f["sharing"].as_str())
        .collect();
    assert!(
        sharing.contains("open") && sharing.contains("conditional"),
        "{sharing:?}"
    );
    for f in fields {
        if f["sharing"] == "conditional" {
            assert!(
                f["legal_basis"].as_str().is_some_and(|b| !b.is_empty()),
                "a conditional field states its legal basis: {f}"
            );
            assert_eq!(f["method"], "query");
        } else {
            assert!(f.get("legal_basis").is_none(), "{f}");
        }
    }
    assert!(
        catalog.json["purposes"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let anonymous = client()
        .get(gw.url("/v1/catalog"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
}

/// While clerks look records up without pause, the connector they use changes
/// version (marital status open, then conditional — withheld, as no grant gives it),
/// and the township's access to the person's name is requested, approved and revoked,
/// round after round. No request fails, and every answer is exactly what the
/// configuration version it names says: never a mix of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_steady_load_fail_no_request_and_mix_no_versions() {
    let gw = Arc::new(
        TestGateway::start_with(|path, text| {
            if path == "county/gateway.yaml" {
                text.edit(
                    "per_user: { per_minute: 120, burst: 30 }",
                    "per_user: { per_minute: 1000000, burst: 100000 }",
                )
                .edit(
                    "per_township: { per_minute: 1200, burst: 200 }",
                    "per_township: { per_minute: 1000000, burst: 100000 }",
                )
            } else {
                text.to_owned()
            }
        })
        .await,
    );
    let admin = hc_admin(&gw);
    let lead = gw.token(Role::TownshipLead, Some(crate::helpers::TOWNSHIP));
    let proposed = put(&gw, &admin, "jisheng2", &jisheng2(&gw, "open")).await;
    assert_eq!(proposed.status, 202, "{}", proposed.text);
    let first = approve_review(&gw, "jisheng2", &proposed.json["version"]).await;
    // config version → (marital status shown, name shown)
    let mut expected: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let version_of = |reply: &Reply| {
        reply.json["config_version"]
            .as_str()
            .unwrap_or_else(|| panic!("a config version: {}", reply.text))
            .to_owned()
    };
    expected.insert(version_of(&first), (true, false));

    let stop = Arc::new(AtomicBool::new(false));
    let people: Vec<String> = [
        SampleKind::MarriedParent,
        SampleKind::Pensioner,
        SampleKind::Child,
    ]
    .into_iter()
    .map(|kind| sample(kind).id.as_str().to_owned())
    .collect();
    let mut workers = Vec::new();
    for w in 0..4 {
        let gw = gw.clone();
        let stop = stop.clone();
        let people = people.clone();
        workers.push(tokio::spawn(async move {
            let token = gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP));
            let mut seen = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) || seen.len() < 5 {
                let id = &people[i % people.len()];
                i += 1;
                seen.push(gw.query_as(&token, &fertility(id)).await);
            }
            seen
        }));
    }
    let (mut marital, mut name) = (true, false);
    for round in 0..4 {
        marital = !marital;
        let sharing = if marital { "open" } else { "conditional" };
        let mut changed = put(&gw, &admin, "jisheng2", &jisheng2(&gw, sharing)).await;
        if marital {
            // Conditional back to open lowers the field: the office approves it.
            assert_eq!(changed.status, 202, "{}", changed.text);
            changed = approve_review(&gw, "jisheng2", &changed.json["version"]).await;
        } else {
            // Raising the protection is a draft the department activates itself.
            assert_eq!(changed.status, 201, "{}", changed.text);
            changed = post_json(
                &gw.url(&format!(
                    "/v1/admin/connectors/jisheng2/versions/{}/activate",
                    changed.json["version"]
                )),
                &admin,
                &json!({}),
            )
            .await;
        }
        assert_eq!(changed.status, 200, "{}", changed.text);
        expected.insert(version_of(&changed), (marital, name));

        let asked = post_json(
            &gw.url("/v1/access-requests"),
            &lead,
            &json!({
                "connector": "jisheng2",
                "operations": ["fertility_by_id"],
                "purposes": ["birth_registration"],
                "fields": {"name": "default"},
                "roles": ["clerk"],
                "justification": format!("round {round}"),
            }),
        )
        .await;
        assert_eq!(asked.status, 201, "{}", asked.text);
        let id = asked.json["id"].as_str().expect("an id").to_owned();
        let approved = post_json(
            &gw.url(&format!("/v1/access-requests/{id}/approve")),
            &admin,
            &json!({}),
        )
        .await;
        assert_eq!(approved.status, 200, "{}", approved.text);
        name = true;
        expected.insert(version_of(&approved), (marital, name));

        let revoked = post_json(
            &gw.url(&format!("/v1/grants/{id}/revoke")),
            &admin,
            &json!({"reason": "round over"}),
        )
        .await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
        name = false;
        expected.insert(version_of(&revoked), (marital, name));
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.expect("the worker ends"));
    }
    let mut by_version: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &answers {
        // People 计生 has no record of are answered 404, whatever the version.
        assert!(
            a.status == 200 || (a.status == 404 && a.json["type"] == "/problems/subject-not-found"),
            "a request failed during the changes: {} {}",
            a.status,
            a.text
        );
        if a.status != 200 {
            continue;
        }
        let version = a.json["decision"]["config_version"]
            .as_str()
            .expect("version");
        let (marital, name) = *expected
            .get(version)
            .unwrap_or_else(|| panic!("an answer from an unknown version {version}"));
        let data = &a.json["data"];
        assert_eq!(
            (
                data.get("marital_status").is_some(),
                data.get("name").is_some()
            ),
            (marital, name),
            "the answer of version {version} is not what that version gives: {}",
            a.text
        );
        *by_version.entry(version).or_default() += 1;
    }
    assert!(
        by_version.len() >= 4,
        "answers came from several versions: {by_version:?} ({} answers)",
        answers.len()
    );
}
