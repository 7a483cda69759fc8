//! The access workflow as its users read it back, and lists filtered and paged: a
//! request whose grant was revoked shows `revoked` (when, by whom); a grant shows the
//! row condition it enforces; a township lead withdraws a pending request and a
//! second identical one is refused naming the first; lists take only their own
//! non-personal query parameters, and pages follow one another.

use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, client, post_json};

const REQUESTS: &str = "/v1/access-requests";

fn persona(
    gw: &TestGateway,
    name: &'static str,
    role: Role,
    township: Option<&'static str>,
    department: Option<&'static str>,
) -> String {
    let persona = demo::Persona {
        name,
        about: "a test persona",
        role,
        township,
        villages: &[],
        department,
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

fn lead(gw: &TestGateway) -> String {
    persona(
        gw,
        "lead-dongling",
        Role::TownshipLead,
        Some(TOWNSHIP),
        None,
    )
}

fn psb_admin(gw: &TestGateway) -> String {
    persona(gw, "psb-admin", Role::DeptAdmin, None, Some("county-psb"))
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

/// A request for hukou fields under `purpose`.
fn request_for(purpose: &str) -> Value {
    json!({
        "connector": "hukou",
        "operations": ["person_by_id"],
        "purposes": [purpose],
        "fields": { "name": "default", "birth_date": "default" },
        "justification": "窗口办理时需核对申请人信息（仅限本乡镇）。",
    })
}

async fn file(gw: &TestGateway, body: &Value) -> String {
    let reply = post_json(&gw.url(REQUESTS), &lead(gw), body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json["id"].as_str().expect("an id").to_owned()
}

async fn approve(gw: &TestGateway, id: &str) -> Reply {
    let approved = post_json(
        &gw.url(&format!("{REQUESTS}/{id}/approve")),
        &psb_admin(gw),
        &json!({"note": "同意。"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    approved
}

#[tokio::test]
async fn a_revoked_grant_shows_on_its_request_and_a_grant_shows_its_row_condition() {
    let gw = TestGateway::start().await;
    let id = file(&gw, &request_for("elderly_allowance")).await;
    let approved = approve(&gw, &id).await;
    // The grant keeps clerks to their own township's residents, and says so.
    let grant = &approved.json["grant"];
    assert!(
        grant["row"].as_str().is_some_and(|r| !r.is_empty()),
        "the enforced row condition is shown: {}",
        approved.text
    );
    let listed = get_as(&gw, "/v1/grants", &lead(&gw)).await;
    let ours = listed.json["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["id"] == id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(ours["row"], grant["row"], "{}", listed.text);
    // Instants are UTC with `Z`; validity days are plain dates.
    assert!(
        ours["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{ours}"
    );
    assert_eq!(
        ours["valid_from"].as_str().map(str::len),
        Some(10),
        "{ours}"
    );

    let revoked = post_json(
        &gw.url(&format!("/v1/grants/{id}/revoke")),
        &psb_admin(&gw),
        &json!({"reason": "核对已改由民政系统完成。"}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let request = get_as(&gw, &format!("{REQUESTS}/{id}"), &lead(&gw)).await;
    assert_eq!(request.status, 200, "{}", request.text);
    assert_eq!(request.json["state"], "revoked", "{}", request.text);
    assert_eq!(request.json["revoked"]["by"], "psb-admin");
    assert!(
        request.json["revoked"]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{}",
        request.text
    );
    let listed = get_as(&gw, &format!("{REQUESTS}?state=revoked"), &lead(&gw)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["requests"][0]["id"], id.as_str());
    let approved_only = get_as(&gw, &format!("{REQUESTS}?state=approved"), &lead(&gw)).await;
    assert_eq!(approved_only.json["requests"], json!([]));
}

#[tokio::test]
async fn a_lead_withdraws_a_pending_request_and_a_second_identical_one_names_the_first() {
    let gw = TestGateway::start().await;
    let first = file(&gw, &request_for("elderly_allowance")).await;
    let again = post_json(
        &gw.url(REQUESTS),
        &lead(&gw),
        &request_for("elderly_allowance"),
    )
    .await;
    again.assert_problem(409, "duplicate-request");
    assert_eq!(again.json["duplicate_of"], first.as_str());
    // A request for something else is not a duplicate.
    let other = file(&gw, &request_for("birth_registration")).await;
    assert_ne!(other, first);

    // Only the township's lead withdraws, and only a pending request.
    let withdraw = |token: String, id: String| {
        let gw = &gw;
        async move {
            post_json(
                &gw.url(&format!("{REQUESTS}/{id}/withdraw")),
                &token,
                &json!({}),
            )
            .await
        }
    };
    withdraw(psb_admin(&gw), first.clone())
        .await
        .assert_problem(403, "forbidden");
    let elsewhere = persona(
        &gw,
        "lead-xihe",
        Role::TownshipLead,
        Some("139901102"),
        None,
    );
    withdraw(elsewhere, first.clone())
        .await
        .assert_problem(404, "unknown-access-request");
    let withdrawn = withdraw(lead(&gw), first.clone()).await;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
    assert_eq!(withdrawn.json["state"], "withdrawn");
    withdraw(lead(&gw), first.clone())
        .await
        .assert_problem(409, "already-decided");
    post_json(
        &gw.url(&format!("{REQUESTS}/{first}/approve")),
        &psb_admin(&gw),
        &json!({}),
    )
    .await
    .assert_problem(409, "already-decided");
    // Withdrawn, it no longer blocks the same request.
    file(&gw, &request_for("elderly_allowance")).await;

    // The withdrawal is in the audit log.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"limit": 500}),
    )
    .await;
    let withdrawals: Vec<&Value> = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["operation"] == format!("access.withdraw {first}").as_str())
        .collect();
    let mut statuses: Vec<u64> = withdrawals
        .iter()
        .filter_map(|e| e["outcome"]["status"].as_u64())
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 403, 404, 409],
        "every attempt: {withdrawals:?}"
    );
}

#[tokio::test]
async fn lists_take_their_own_parameters_only_and_pages_follow_one_another() {
    let gw = TestGateway::start().await;
    let purposes = [
        "elderly_allowance",
        "birth_registration",
        "low_income_assistance",
    ];
    let mut ids = Vec::new();
    for purpose in purposes {
        let reply = post_json(&gw.url(REQUESTS), &lead(&gw), &request_for(purpose)).await;
        if reply.status == 201 {
            ids.push(reply.json["id"].as_str().expect("id").to_owned());
        }
    }
    assert!(ids.len() >= 2, "at least two requests filed");
    let admin = psb_admin(&gw);

    // Page by page, in the order they were made, without gaps or repeats.
    let mut seen = Vec::new();
    let mut path = format!("{REQUESTS}?state=pending&connector=hukou&limit=1");
    loop {
        let page = get_as(&gw, &path, &admin).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let requests = page.json["requests"].as_array().expect("requests");
        assert!(requests.len() <= 1, "{}", page.text);
        seen.extend(
            requests
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
        match page.json["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("{REQUESTS}?state=pending&connector=hukou&limit=1&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let filtered = get_as(&gw, &format!("{REQUESTS}?township=139901102"), &admin).await;
    assert_eq!(filtered.json["requests"], json!([]), "{}", filtered.text);
    let grants = get_as(&gw, "/v1/grants?connector=shebao&limit=200", &admin).await;
    assert_eq!(grants.status, 200, "{}", grants.text);
    assert!(
        grants.json["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .all(|g| g["connector"] == "shebao"),
        "{}",
        grants.text
    );
    let connectors = get_as(&gw, "/v1/admin/connectors?state=enabled", &admin).await;
    assert_eq!(connectors.status, 200, "{}", connectors.text);
    let listed: Vec<&str> = connectors.json["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .filter_map(|c| c["connector"].as_str())
        .collect();
    assert!(listed.contains(&"hukou"), "{}", connectors.text);
    assert!(
        !listed.contains(&"shebao"),
        "another department's connector: {}",
        connectors.text
    );
    let reviews = get_as(
        &gw,
        "/v1/admin/reviews?state=pending",
        &gw.token(Role::Operator, None),
    )
    .await;
    assert_eq!(reviews.status, 200, "{}", reviews.text);

    // Anything else is refused, naming the parameter and never its value.
    let id_number = "13990119750327229X";
    let unknown = get_as(&gw, &format!("{REQUESTS}?id_number={id_number}"), &admin).await;
    unknown.assert_problem(400, "invalid-request");
    assert!(unknown.text.contains("id_number"), "{}", unknown.text);
    assert!(!unknown.text.contains(id_number), "{}", unknown.text);
    let bad_value = get_as(&gw, &format!("{REQUESTS}?township={id_number}%20x"), &admin).await;
    bad_value.assert_problem(400, "invalid-request");
    assert!(!bad_value.text.contains(id_number), "{}", bad_value.text);
    let too_many = get_as(&gw, &format!("{REQUESTS}?limit=5000"), &admin).await;
    too_many.assert_problem(400, "invalid-request");
    assert!(too_many.text.contains("200"), "{}", too_many.text);
    let bad_state = get_as(&gw, &format!("{REQUESTS}?state=lost"), &admin).await;
    bad_state.assert_problem(400, "invalid-request");
    let bad_cursor = get_as(&gw, &format!("{REQUESTS}?cursor=abc"), &admin).await;
    bad_cursor.assert_problem(400, "invalid-request");
    // Routes that are no list still take no query string at all.
    let catalog = get_as(&gw, "/v1/catalog?state=pending", &admin).await;
    catalog.assert_problem(400, "invalid-request");
}
