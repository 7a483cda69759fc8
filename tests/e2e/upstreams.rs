//! Departments own their upstreams and the county owns the classification (issue 8,
//! finding 1): a department admin cannot publish another department's data by
//! registering a connector at its system, in any disguise; the name users see is the
//! operator's; a connector cannot follow a redirect off its department's system; and a
//! department cannot loosen its own classification without the data-governance office.

use crate::helpers::Edit as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TestGateway, client, county_file, post_json, sample};

fn persona_token(gw: &TestGateway, role: Role, department: Option<&'static str>) -> String {
    let persona = demo::Persona {
        name: "attacker",
        about: "a test caller",
        role,
        township: None,
        villages: &[],
        department,
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

/// The 人社局's social-insurance connector copied as `id` by the public security
/// bureau, at `base_url`, with every field labelled `open` — bank account included.
fn stolen_shebao(id: &str, base_url: &str, request_path: Option<&str>) -> Value {
    let mut definition = county_file("county/connectors/shebao.yaml")
        .edit("id: shebao\n", &format!("id: {id}\n"))
        .edit(
            "department: { id: county-hrss }",
            "department: { id: county-psb }",
        )
        .edit(
            "base_url: http://127.0.0.1:18102",
            &format!("base_url: {base_url}"),
        )
        .edit("sharing: never", "sharing: open")
        .edit("sharing: conditional", "sharing: open");
    if let Some(path) = request_path {
        definition = definition.edit("path: /si/api/insured/query", &format!("path: \"{path}\""));
    }
    let schema: Value =
        serde_json::from_str(county_file("schemas/shebao/insured.schema.json")).expect("json");
    json!({
        "definition": definition,
        "schemas": { "shebao/insured.schema.json": schema },
    })
}

async fn put(gw: &TestGateway, token: &str, id: &str, body: &Value) -> Reply {
    let request = client()
        .put(gw.url(&format!("/v1/admin/connectors/{id}")))
        .bearer_auth(token)
        .json(body);
    Reply::read(request.send().await.expect("an answer")).await
}

fn insured(connector: &str, id_number: &str) -> Value {
    json!({
        "connector": connector,
        "operation": "insured_by_id",
        "subject": {"id_number": id_number},
        "purpose": "subsistence_allowance",
        "case_id": "TEST-0001",
    })
}

/// The problems' paths of a refused change.
fn problem_paths(reply: &Reply) -> Vec<String> {
    reply.json["problems"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["path"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_department_cannot_register_a_connector_at_another_departments_system() {
    let gw = TestGateway::start().await;
    let police = gw.token(Role::DeptAdmin, None);
    let shebao = gw.department(Department::Shebao).base_url();
    let port = shebao.rsplit(':').next().expect("a port").to_owned();
    let hukou_port = gw
        .department(Department::Hukou)
        .base_url()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let before = gw.department(Department::Shebao).requests();

    // The attack as found, and its disguises: a name for the listed IP, and a request
    // path that turns the listed host into credentials in front of another host.
    let attempts = [
        ("psb-insurance", shebao.clone(), None),
        ("psb-insurance", format!("http://localhost:{port}"), None),
        (
            "psb-insurance",
            format!("http://127.0.0.1:{hukou_port}"),
            Some(format!("@127.0.0.1:{port}/si/api/insured/query")),
        ),
    ];
    for (id, base_url, path) in &attempts {
        let refused = put(
            &gw,
            &police,
            id,
            &stolen_shebao(id, base_url, path.as_deref()),
        )
        .await;
        refused.assert_problem(422, "invalid-config");
        let paths = problem_paths(&refused);
        assert!(
            paths
                .iter()
                .any(|p| p == "base_url" || p == "operations.insured_by_id.request.path"),
            "the upstream is named as the problem: {}",
            refused.text
        );
        assert!(
            refused
                .text
                .contains("is not an upstream of department `county-psb`"),
            "{}",
            refused.text
        );
        // The URL the admin sent is not repeated back.
        assert!(
            !refused.text.contains(&format!(":{port}")),
            "{}",
            refused.text
        );
    }

    // Nothing went live: a clerk of another township gets no bank account, for any
    // purpose, and the 人社局's system was never called.
    let person = sample(SampleKind::Pensioner);
    let clerk = gw.token(Role::Clerk, Some("139901201"));
    let answer = gw
        .query_as(&clerk, &insured("psb-insurance", person.id.as_str()))
        .await;
    answer.assert_problem(404, "unknown-connector");
    assert_eq!(gw.department(Department::Shebao).requests(), before);

    // The department's own system is fine.
    let own = put(
        &gw,
        &police,
        "psb-insurance",
        &stolen_shebao(
            "psb-insurance",
            &gw.department(Department::Hukou).base_url(),
            None,
        ),
    )
    .await;
    assert_eq!(own.status, 202, "{}", own.text);
}

#[tokio::test]
async fn a_connector_cannot_take_another_departments_name() {
    let gw = TestGateway::start().await;
    let police = gw.token(Role::DeptAdmin, None);
    let hukou = gw.department(Department::Hukou).base_url();
    let mut body = stolen_shebao("psb-insurance", &hukou, None);
    body["definition"] = json!(body["definition"].as_str().expect("text").edit(
        "department: { id: county-psb }",
        "department: { id: county-psb, name: 县人力资源和社会保障局 }"
    ));
    let refused = put(&gw, &police, "psb-insurance", &body).await;
    refused.assert_problem(422, "invalid-config");
    assert_eq!(
        problem_paths(&refused),
        ["department.name"],
        "{}",
        refused.text
    );

    // Without a name, the county's name for the department is shown.
    let clerk = gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP));
    let catalog = Reply::read(
        client()
            .get(gw.url("/v1/catalog"))
            .bearer_auth(&clerk)
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    let shebao = catalog.json["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .find(|c| c["id"] == "shebao")
        .expect("shebao is listed");
    assert_eq!(shebao["department"]["name"], "县人力资源和社会保障局");
}

/// A plain HTTP server that answers every request with a redirect to `to`, counting
/// the requests it gets.
async fn redirector(to: String) -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, to)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn a_listed_upstream_that_redirects_elsewhere_is_not_followed() {
    // The 公安局's listed system answers with a redirect to the 人社局's.
    let population = crate::helpers::population();
    let departments = sim::spawn_all(population.clone(), [127, 0, 0, 1].into())
        .await
        .expect("departments start");
    let shebao = departments
        .iter()
        .find(|d| d.department == Department::Shebao)
        .expect("shebao")
        .base_url();
    let (redirect, redirected) = redirector(format!("{shebao}/si/api/insured/query")).await;
    let listed = redirect.clone();
    let gw = TestGateway::start_with(move |path, text| {
        if path == "county/gateway.yaml" {
            text.edit(
                "upstreams: [http://127.0.0.1:18101]",
                &format!("upstreams: [http://127.0.0.1:18101, {listed}]"),
            )
        } else {
            text.to_owned()
        }
    })
    .await;
    let police = gw.token(Role::DeptAdmin, None);
    let mut body = stolen_shebao("psb-insurance", &redirect, None);
    // Its own classification, so that only the redirect is under test.
    body["definition"] = json!(
        county_file("county/connectors/shebao.yaml")
            .edit("id: shebao\n", "id: psb-insurance\n")
            .edit(
                "department: { id: county-hrss }",
                "department: { id: county-psb }"
            )
            .edit(
                "base_url: http://127.0.0.1:18102",
                &format!("base_url: {redirect}")
            )
    );
    let proposed = put(&gw, &police, "psb-insurance", &body).await;
    assert_eq!(proposed.status, 202, "{}", proposed.text);
    let governance = persona_token(&gw, Role::Governance, None);
    let approved = post_json(
        &gw.url("/v1/admin/connectors/psb-insurance/versions/1/approve"),
        &governance,
        &json!({}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);

    let person = sample(SampleKind::Pensioner);
    let before = departments
        .iter()
        .find(|d| d.department == Department::Shebao)
        .expect("shebao")
        .requests();
    let answer = gw
        .query(&insured("psb-insurance", person.id.as_str()))
        .await;
    answer.assert_problem(502, "upstream-error");
    assert_eq!(
        redirected.load(Ordering::Relaxed),
        1,
        "the listed system was asked"
    );
    let after = departments
        .iter()
        .find(|d| d.department == Department::Shebao)
        .expect("shebao")
        .requests();
    assert_eq!(after, before, "the redirect was not followed");
    assert!(!answer.text.contains(&shebao), "{}", answer.text);
}

#[tokio::test]
async fn lowering_a_classification_waits_for_the_governance_office_and_raising_does_not() {
    let gw = TestGateway::start().await;
    let police = gw.token(Role::DeptAdmin, None);
    let governance = persona_token(&gw, Role::Governance, None);
    let hukou = gw.department(Department::Hukou).base_url();
    // The 公安局's own copy of its household connector, exactly as classified.
    let definition = |sharing_of_ethnicity: &str| {
        let text = county_file("county/connectors/hukou.yaml")
            .edit("id: hukou\n", "id: hukou2\n")
            .edit(
                "base_url: http://127.0.0.1:18101",
                &format!("base_url: {hukou}"),
            );
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("ethnicity:"))
            .expect("an ethnicity field")
            .to_owned();
        // The field is one or the other.
        let changed = line
            .replace(
                "sharing: conditional",
                &format!("sharing: {sharing_of_ethnicity}"),
            )
            .replace("sharing: open", &format!("sharing: {sharing_of_ethnicity}"));
        assert_ne!(
            changed, line,
            "the ethnicity field's sharing is not written as expected"
        );
        text.edit(&line, &changed)
    };
    let schemas: Value = json!({
        "hukou/person.schema.json":
            serde_json::from_str::<Value>(county_file("schemas/hukou/person.schema.json")).expect("json"),
        "hukou/household.schema.json":
            serde_json::from_str::<Value>(county_file("schemas/hukou/household.schema.json")).expect("json"),
    });
    let body = |sharing: &str| json!({"definition": definition(sharing), "schemas": schemas});

    let first = put(&gw, &police, "hukou2", &body("never")).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let approved = post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/1/approve"),
        &governance,
        &json!({}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);

    // never → open: held, listed for the office, and the version in force stays.
    let lowered = put(&gw, &police, "hukou2", &body("open")).await;
    assert_eq!(lowered.status, 202, "{}", lowered.text);
    assert_eq!(
        lowered.json["loosenings"],
        json!([{
            "operation": "person_by_id",
            "field": "ethnicity",
            "from": {"sharing": "never", "pii": lowered.json["loosenings"][0]["to"]["pii"]},
            "to": {"sharing": "open", "pii": lowered.json["loosenings"][0]["to"]["pii"]},
            "reason": "lowered",
        }])
    );
    let reviews = Reply::read(
        client()
            .get(gw.url("/v1/admin/reviews"))
            .bearer_auth(&governance)
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    assert_eq!(reviews.status, 200, "{}", reviews.text);
    assert_eq!(reviews.json["reviews"][0]["connector"], "hukou2");
    assert_eq!(reviews.json["reviews"][0]["version"], 2);
    assert_eq!(reviews.json["reviews"][0]["review"]["state"], "pending");
    let person = sample(SampleKind::MarriedParent);
    let clerk_lookup = json!({
        "connector": "hukou2",
        "operation": "person_by_id",
        "subject": {"id_number": person.id.as_str()},
        "purpose": "birth_registration",
        "case_id": "TEST-0001",
    });
    let answer = gw.query(&clerk_lookup).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["data"].get("ethnicity").is_none(),
        "{}",
        answer.text
    );

    // The office refuses; nothing changes. A refusal needs a reason.
    let refuse = |body: Value| {
        let gw = &gw;
        let governance = governance.clone();
        async move {
            post_json(
                &gw.url("/v1/admin/connectors/hukou2/versions/2/refuse"),
                &governance,
                &body,
            )
            .await
        }
    };
    refuse(json!({}))
        .await
        .assert_problem(400, "invalid-request");
    let refused = refuse(json!({"reason": "民族不属于无条件共享"})).await;
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(refused.json["review"]["state"], "refused");
    let answer = gw.query(&clerk_lookup).await;
    assert!(
        answer.json["data"].get("ethnicity").is_none(),
        "{}",
        answer.text
    );

    // The same classification again changes nothing; raising one needs nobody.
    let same = put(&gw, &police, "hukou2", &body("never")).await;
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(same.json["unchanged"], true, "{}", same.text);
    let mut raised = body("never");
    raised["definition"] = json!(definition("never").edit(
        "transform: { code: gender }, pii: code, sharing: open",
        "transform: { code: gender }, pii: code, sharing: conditional"
    ));
    let raised = put(&gw, &police, "hukou2", &raised).await;
    assert_eq!(raised.status, 201, "{}", raised.text);
    // Version 2 was refused; the raise is version 3, a draft the bureau activates.
    assert_eq!(raised.json["version"], 3, "{}", raised.text);
    let activated = post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/3/activate"),
        &police,
        &json!({}),
    )
    .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    let answer = gw.query(&clerk_lookup).await;
    assert!(
        answer.json["data"].get("gender").is_none(),
        "{}",
        answer.text
    );
}
