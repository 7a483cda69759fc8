//! Access requests (乡镇"点菜"), their approval or refusal by the owning department,
//! and revocation (收回) of the grants they became: the clerk's very next lookup
//! follows each decision without a restart, only the owning department decides (and
//! never on its own request), and every action is an admin event in the audit log.

use crate::helpers::Edit as _;
use gateway::auth::{MintClaims, Role, mint};
use gateway::county::COUNTY_FILES;
use gateway::demo;
use serde_json::{Value, json};
use sim::SampleKind;

use crate::helpers::{Reply, TOWNSHIP, TestGateway, client, lookup, post_json, sample};

const REQUESTS: &str = "/v1/access-requests";

/// A token for a named persona (its name is the user id, `sub`).
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

/// The lead of the default clerk's township.
fn lead(gw: &TestGateway) -> String {
    persona(
        gw,
        "lead-dongling",
        Role::TownshipLead,
        Some(TOWNSHIP),
        None,
    )
}

/// The admin of the public security bureau, which owns `hukou`.
fn psb_admin(gw: &TestGateway) -> String {
    persona(gw, "psb-admin", Role::DeptAdmin, None, Some("county-psb"))
}

/// The admin of the human-resources bureau, which owns `shebao`.
fn hrss_admin(gw: &TestGateway) -> String {
    persona(gw, "hrss-admin", Role::DeptAdmin, None, Some("county-hrss"))
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

async fn post_as(gw: &TestGateway, path: &str, token: &str, body: &Value) -> Reply {
    post_json(&gw.url(path), token, body).await
}

/// The old-age allowance request: the default clerk sees none of these hukou fields
/// under `elderly_allowance` (only grid workers have a grant for it).
fn elderly_request() -> Value {
    json!({
        "connector": "hukou",
        "operations": ["person_by_id"],
        "purposes": ["elderly_allowance"],
        "fields": { "name": "default", "birth_date": "default", "address": "default" },
        "justification": "窗口办理高龄津贴时需核对申请人年龄（仅限本乡镇）。",
    })
}

/// Files the elderly-allowance request as the township lead; returns its id.
async fn file_request(gw: &TestGateway) -> String {
    let reply = post_as(gw, REQUESTS, &lead(gw), &elderly_request()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json["id"].as_str().expect("an id").to_owned()
}

/// The default clerk's old-age-allowance lookup of a pensioner of the township.
async fn clerk_lookup(gw: &TestGateway) -> Reply {
    let person = sample(SampleKind::Pensioner);
    let mut body = lookup("hukou", "person_by_id", person.id.as_str());
    body["purpose"] = json!("elderly_allowance");
    let reply = gw.query(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

fn withheld(reply: &Reply, field: &str) -> Option<Value> {
    reply.json["withheld"]
        .as_array()
        .expect("withheld")
        .iter()
        .find(|w| w["field"] == field)
        .cloned()
}

/// The admin events of the access workflow in the audit log, oldest first.
async fn access_events(gw: &TestGateway) -> Vec<Value> {
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"limit": 1000}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let mut events: Vec<Value> = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|op| op.starts_with("access.") || op.starts_with("grant."))
        })
        .cloned()
        .collect();
    events.sort_by_key(|e| e["seq"].as_u64().unwrap_or_default());
    events
}

fn today() -> String {
    gateway::policy::china_today().to_string()
}

#[tokio::test]
async fn a_request_approved_narrowed_and_masked_shows_at_the_next_lookup_and_revocation_withholds_it_again()
 {
    let gw = TestGateway::start().await;
    let pensioner = sample(SampleKind::Pensioner);

    // Before: the clerk gets no birth date for an old-age allowance (the county
    // grants it for verification only).
    let before = clerk_lookup(&gw).await;
    assert_eq!(
        withheld(&before, "birth_date"),
        Some(
            json!({"field": "birth_date", "sharing": "conditional", "reason": "verify_only",
                    "rule": "hukou-elderly-allowance-verify"})
        )
    );

    // The township lead orders (点菜).
    let asked = post_as(&gw, REQUESTS, &lead(&gw), &elderly_request()).await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let id = asked.json["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("ar-"), "{id}");
    assert_eq!(asked.json["state"], "pending");
    assert_eq!(asked.json["township"], TOWNSHIP);
    assert_eq!(asked.json["department"], "county-psb");
    assert_eq!(asked.json["requested_by"], "lead-dongling");
    assert_eq!(asked.json["roles"], json!(["clerk"]));
    assert_eq!(asked.json["overdue"], false);
    assert!(asked.json["deadline"].as_str().expect("deadline") > today().as_str());

    // The department sees it; another department does not.
    let inbox = get_as(&gw, REQUESTS, &psb_admin(&gw)).await;
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    assert_eq!(inbox.json["requests"][0]["id"], id.as_str());
    let elsewhere = get_as(&gw, REQUESTS, &hrss_admin(&gw)).await;
    assert_eq!(elsewhere.json["requests"], json!([]));
    get_as(&gw, &format!("{REQUESTS}/{id}"), &hrss_admin(&gw))
        .await
        .assert_problem(404, "unknown-access-request");
    let mine = get_as(&gw, &format!("{REQUESTS}/{id}"), &lead(&gw)).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json["state"], "pending");

    // The department approves less than was asked: no address, the birth date only
    // as an age band, the name with its default mask, for a month.
    let until = (gateway::policy::china_today() + chrono::Duration::days(30)).to_string();
    let approved = post_as(
        &gw,
        &format!("{REQUESTS}/{id}/approve"),
        &psb_admin(&gw),
        &json!({
            "fields": { "birth_date": "age_band", "name": "default" },
            "valid_until": until,
            "quota": { "per_day": 100 },
            "note": "只批年龄段。",
        }),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.json["request"]["state"], "approved");
    assert_eq!(approved.json["request"]["decided_by"], "psb-admin");
    assert_eq!(approved.json["request"]["grant_id"], id.as_str());
    let grant = &approved.json["grant"];
    assert_eq!(grant["id"], id.as_str());
    assert_eq!(
        grant["fields"],
        json!({"birth_date": "age_band", "name": "name"})
    );
    assert_eq!(grant["valid_from"], today());
    assert_eq!(grant["valid_until"], until);
    assert_eq!(grant["quota"]["per_day"], 100);
    assert_eq!(grant["state"], "active");
    assert_eq!(grant["origin"], "api");
    assert_eq!(grant["approver"], "psb-admin");
    assert_eq!(grant["consumers"]["townships"], json!([TOWNSHIP]));
    assert_eq!(
        grant["legal_basis"], "《中华人民共和国老年人权益保障法》",
        "the purpose's legal basis by default"
    );
    assert!(approved.json["config_version"].as_str().is_some());

    // The clerk's very next lookup shows the fields as approved.
    let after = clerk_lookup(&gw).await;
    assert_eq!(
        after.json["fields"]["birth_date"],
        json!({"mask": "age_band", "rule": id})
    );
    let band = after.json["data"]["birth_date"].as_str().expect("a band");
    assert!(band.ends_with('+') || band.contains('-'), "{band}");
    assert!(!after.text.contains(&pensioner.birth_date.to_string()));
    let name = after.json["data"]["name"].as_str().expect("a name");
    assert!(name.contains('*') && name != pensioner.name, "{name}");
    assert_eq!(
        withheld(&after, "address").map(|w| w["reason"].clone()),
        Some(json!("verify_only")),
        "the address was not approved: it stays for verification only"
    );

    // Both sides list the grant.
    let listed = get_as(&gw, "/v1/grants", &lead(&gw)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let grants = listed.json["grants"].as_array().expect("grants");
    let ours = grants
        .iter()
        .find(|g| g["id"] == id.as_str())
        .expect("ours");
    assert_eq!(ours["request_id"], id.as_str());
    assert_eq!(ours["created_by"], "psb-admin");
    assert_eq!(ours["revoked"], Value::Null);
    assert!(
        grants
            .iter()
            .any(|g| g["id"] == "hukou-birth-registration" && g["origin"] == "file"),
        "the county's file grants for the township are listed too"
    );
    let hrss = get_as(&gw, "/v1/grants", &hrss_admin(&gw)).await;
    assert!(
        !hrss.json["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["connector"] == "hukou"),
        "{}",
        hrss.text
    );

    // Revoked (收回): the next lookup withholds the fields again, no restart.
    let revoke = format!("/v1/grants/{id}/revoke");
    post_as(&gw, &revoke, &psb_admin(&gw), &json!({"reason": ""}))
        .await
        .assert_problem(400, "invalid-request");
    let revoked = post_as(
        &gw,
        &revoke,
        &psb_admin(&gw),
        &json!({"reason": "高龄津贴核对已改由民政系统完成。"}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.json["grant"]["state"], "revoked");
    assert_eq!(revoked.json["grant"]["revoked"]["by"], "psb-admin");
    let again = clerk_lookup(&gw).await;
    assert_eq!(
        withheld(&again, "birth_date").map(|w| w["reason"].clone()),
        Some(json!("verify_only"))
    );
    assert!(again.json["data"].get("birth_date").is_none());
    post_as(&gw, &revoke, &psb_admin(&gw), &json!({"reason": "again"}))
        .await
        .assert_problem(409, "already-decided");
    let listed = get_as(&gw, "/v1/grants", &psb_admin(&gw)).await;
    let ours = listed.json["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["id"] == id.as_str())
        .cloned()
        .expect("a revoked grant stays listed");
    assert_eq!(ours["state"], "revoked");

    // Every action is an admin event naming the user and what changed; the
    // department's reason for taking access back is in its event, the township's own
    // words (its reason, the approval's note) stay out of the log.
    let events = access_events(&gw).await;
    let ops: Vec<(&str, &str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().expect("operation"),
                e["caller"]["user"].as_str().expect("user"),
                e["outcome"]["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            (
                format!(
                    "access.request {id} hukou ops=person_by_id purposes=elderly_allowance fields=address,birth_date,name roles=clerk"
                )
                .as_str(),
                "lead-dongling",
                200
            ),
            (
                format!(
                    "access.approve {id} grant={id} fields=birth_date:age_band,name:name valid_until={until} quota=-/min,100/day"
                )
                .as_str(),
                "psb-admin",
                200
            ),
            (format!("grant.revoke {id}").as_str(), "psb-admin", 400),
            (format!("grant.revoke {id}").as_str(), "psb-admin", 200),
            (format!("grant.revoke {id}").as_str(), "psb-admin", 409),
        ]
    );
    assert!(events.iter().all(|e| e["kind"] == "admin"
        && e["connector"] == "hukou"
        && e["subject_pseudonym"].is_null()));
    let log = serde_json::to_string(&events).expect("json");
    for text in ["窗口办理高龄津贴", "只批年龄段"] {
        assert!(!log.contains(text), "free text in the log: {text}");
    }
    let revoked = events
        .iter()
        .find(|e| e["operation"] == format!("grant.revoke {id}") && e["outcome"]["status"] == 200)
        .expect("the revocation's event");
    assert_eq!(revoked["reason"], "高龄津贴核对已改由民政系统完成。");
}

#[tokio::test]
async fn only_the_owning_department_approves_and_never_its_own_request() {
    let gw = TestGateway::start().await;
    let id = file_request(&gw).await;
    let approve = format!("{REQUESTS}/{id}/approve");

    let by_lead = post_as(&gw, &approve, &lead(&gw), &json!({})).await;
    by_lead.assert_problem(403, "forbidden");
    assert_eq!(by_lead.json["rule"], "grant-owner");
    let by_operator = post_as(&gw, &approve, &gw.token(Role::Operator, None), &json!({})).await;
    by_operator.assert_problem(403, "forbidden");
    assert_eq!(by_operator.json["rule"], "grant-owner");
    let by_hrss = post_as(&gw, &approve, &hrss_admin(&gw), &json!({})).await;
    by_hrss.assert_problem(403, "forbidden");
    assert_eq!(by_hrss.json["rule"], "grant-owner");
    post_as(
        &gw,
        &format!("{REQUESTS}/ar-nonesuch/approve"),
        &psb_admin(&gw),
        &json!({}),
    )
    .await
    .assert_problem(404, "unknown-access-request");

    // One person who is both the township's lead and the bureau's admin: they may
    // ask, but someone else must decide.
    let claims = MintClaims {
        iss: demo::ISSUER.to_owned(),
        aud: demo::AUDIENCE.to_owned(),
        sub: "two-hats".to_owned(),
        roles: vec![Role::TownshipLead, Role::DeptAdmin],
        township: Some(TOWNSHIP.to_owned()),
        villages: Vec::new(),
        department: Some("county-psb".to_owned()),
        app: None,
        ttl_s: 3600,
        not_before_s: None,
    };
    let both = mint(&gw.issuer, &claims).expect("a token");
    // (Not the same fields as the pending request: that would be a duplicate.)
    let mut theirs = elderly_request();
    theirs["fields"] = json!({ "name": "default" });
    let own = post_as(&gw, REQUESTS, &both, &theirs).await;
    assert_eq!(own.status, 201, "{}", own.text);
    let own_id = own.json["id"].as_str().expect("id");
    let self_approved = post_as(
        &gw,
        &format!("{REQUESTS}/{own_id}/approve"),
        &both,
        &json!({}),
    )
    .await;
    self_approved.assert_problem(403, "forbidden");
    assert_eq!(self_approved.json["rule"], "four-eyes");
    let self_refused = post_as(
        &gw,
        &format!("{REQUESTS}/{own_id}/refuse"),
        &both,
        &json!({"reason": "x"}),
    )
    .await;
    assert_eq!(self_refused.json["rule"], "four-eyes");

    // Nothing changed: still pending, and no grant.
    let still = get_as(&gw, &format!("{REQUESTS}/{id}"), &psb_admin(&gw)).await;
    assert_eq!(still.json["state"], "pending");
    let grants = get_as(&gw, "/v1/grants", &psb_admin(&gw)).await;
    assert!(
        !grants.json["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["origin"] == "api")
    );

    // Every refused attempt is recorded, with who tried.
    let events = access_events(&gw).await;
    let refusals: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| !o.starts_with("access.request"))
        })
        .map(|e| {
            (
                e["caller"]["user"].as_str().expect("user"),
                e["outcome"]["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        refusals,
        [
            ("lead-dongling", 403),
            ("operator", 403),
            ("hrss-admin", 403),
            ("psb-admin", 404),
            ("two-hats", 403),
            ("two-hats", 403),
        ]
    );
}

#[tokio::test]
async fn a_refusal_needs_a_reason_and_a_decided_request_is_not_decided_again() {
    let gw = TestGateway::start().await;
    let refused_id = file_request(&gw).await;
    let refuse = format!("{REQUESTS}/{refused_id}/refuse");
    let no_reason = post_as(&gw, &refuse, &psb_admin(&gw), &json!({"reason": "  "})).await;
    no_reason.assert_problem(400, "invalid-request");
    assert_eq!(no_reason.json["problems"][0]["path"], "reason");
    let refused = post_as(
        &gw,
        &refuse,
        &psb_admin(&gw),
        &json!({"reason": "高龄津贴由民政部门核发，请向民政局申请。"}),
    )
    .await;
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(refused.json["request"]["state"], "refused");
    assert_eq!(
        refused.json["request"]["decision_note"],
        "高龄津贴由民政部门核发，请向民政局申请。"
    );
    assert_eq!(refused.json["request"]["grant_id"], Value::Null);
    post_as(
        &gw,
        &format!("{REQUESTS}/{refused_id}/approve"),
        &psb_admin(&gw),
        &json!({}),
    )
    .await
    .assert_problem(409, "already-decided");

    let approved_id = file_request(&gw).await;
    let approve = format!("{REQUESTS}/{approved_id}/approve");
    let first = post_as(&gw, &approve, &psb_admin(&gw), &json!({})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        first.json["grant"]["fields"],
        json!({"address": {"address_to": "township"}, "birth_date": "date_year", "name": "name"}),
        "as requested, each field with its default mask"
    );
    assert_eq!(first.json["grant"]["valid_until"], Value::Null);
    let second = post_as(&gw, &approve, &psb_admin(&gw), &json!({})).await;
    second.assert_problem(409, "already-decided");
    post_as(
        &gw,
        &format!("{REQUESTS}/{approved_id}/refuse"),
        &psb_admin(&gw),
        &json!({"reason": "too late"}),
    )
    .await
    .assert_problem(409, "already-decided");

    let ops: Vec<String> = access_events(&gw)
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["outcome"]["status"],
                e["operation"].as_str().expect("op")
            )
        })
        .collect();
    assert!(
        ops.contains(&format!("400 access.refuse {refused_id}")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&format!("200 access.refuse {refused_id}")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&format!("409 access.approve {refused_id}")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&format!("409 access.approve {approved_id}")),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|o| o.contains("民政")), "{ops:?}");
}

#[tokio::test]
async fn a_request_for_never_shared_or_unknown_fields_lists_every_problem() {
    let gw = TestGateway::start().await;
    let body = json!({
        "connector": "shebao",
        "operations": ["insured_by_id", "everything"],
        "purposes": ["subsistence_allowance", "curiosity"],
        "fields": {
            "bank_account": "keep",
            "shoe_size": "default",
            "gender": "default",
            "name": "phone",
            "110105194912310021": "keep",
        },
        "roles": ["clerk", "dept_admin"],
        "justification": " ",
        "valid_until": "2001-01-01",
    });
    let reply = post_as(&gw, REQUESTS, &lead(&gw), &body).await;
    reply.assert_problem(400, "invalid-request");
    let problems = reply.json["problems"].as_array().expect("problems");
    let paths: Vec<&str> = problems.iter().filter_map(|p| p["path"].as_str()).collect();
    assert_eq!(
        paths,
        [
            "operations[1]",
            "purposes[1]",
            "fields",
            "fields.bank_account",
            "fields.gender",
            "fields.name",
            "fields.shoe_size",
            "roles[1]",
            "justification",
            "valid_until",
        ],
        "{}",
        reply.text
    );
    let message = |path: &str| {
        problems
            .iter()
            .find(|p| p["path"] == path)
            .and_then(|p| p["message"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        message("operations[1]"),
        "is not an operation of the connector"
    );
    assert!(message("purposes[1]").contains("purpose catalog"));
    assert_eq!(
        message("fields.bank_account"),
        "never shared; cannot be requested"
    );
    assert!(message("fields.gender").contains("open"));
    assert!(message("fields.name").contains("does not fit"));
    assert!(message("fields.shoe_size").contains("not a field"));
    assert!(message("roles[1]").contains("township roles"));
    assert_eq!(
        message("justification"),
        "say why the township needs these fields"
    );
    assert_eq!(message("valid_until"), "is in the past");
    assert!(!reply.text.contains("110105194912310021"), "not echoed");

    let unknown = post_as(
        &gw,
        REQUESTS,
        &lead(&gw),
        &json!({"connector": "nonesuch", "operations": ["x"], "purposes": ["birth_registration"],
                "fields": {"name": "default"}, "justification": "j"}),
    )
    .await;
    unknown.assert_problem(400, "invalid-request");
    assert_eq!(unknown.json["problems"][0]["path"], "connector");
    assert!(!unknown.text.contains("nonesuch"));
    let empty = post_as(
        &gw,
        REQUESTS,
        &lead(&gw),
        &json!({"connector": "hukou", "operations": ["person_by_id"],
                "purposes": ["birth_registration"], "fields": {}, "justification": "j"}),
    )
    .await;
    empty.assert_problem(400, "invalid-request");
    assert_eq!(
        empty.json["problems"],
        json!([{"path": "fields", "message": "request at least one field"}])
    );

    // Only a township lead asks.
    let by_clerk = post_as(
        &gw,
        REQUESTS,
        &gw.token(Role::Clerk, Some(TOWNSHIP)),
        &elderly_request(),
    )
    .await;
    by_clerk.assert_problem(403, "forbidden");
    assert_eq!(by_clerk.json["rule"], "access-roles");
    let listed = get_as(&gw, REQUESTS, &gw.token(Role::Clerk, Some(TOWNSHIP))).await;
    listed.assert_problem(403, "forbidden");
    assert_eq!(listed.json["rule"], "access-roles");

    // Nothing was recorded as a request; every attempt was audited as refused.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let all = get_as(&gw, REQUESTS, &officer).await;
    assert_eq!(all.json["requests"], json!([]));
    let statuses: Vec<u64> = access_events(&gw)
        .await
        .iter()
        .map(|e| e["outcome"]["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [400, 400, 400, 403]);
}

#[tokio::test]
async fn a_grant_that_does_not_compile_changes_nothing() {
    let gw = TestGateway::start().await;
    let id = file_request(&gw).await;
    let approve = format!("{REQUESTS}/{id}/approve");
    // A phone mask on a date: the configuration it would make does not load.
    let reply = post_as(
        &gw,
        &approve,
        &psb_admin(&gw),
        &json!({"fields": {"birth_date": "phone"}}),
    )
    .await;
    reply.assert_problem(422, "invalid-config");
    let problems = reply.json["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p["file"]
            .as_str()
            .is_some_and(|f| f.contains(&format!("grants/{id}.yaml")))
            && p["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not fit"))),
        "{}",
        reply.text
    );
    // Widening is refused before anything is compiled: a field not asked for, or
    // unmasked where the township named a mask.
    let mut body = elderly_request();
    body["fields"] = json!({"birth_date": "age_band"});
    let asked = post_as(&gw, REQUESTS, &lead(&gw), &body).await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let masked_id = asked.json["id"].as_str().expect("id");
    let widened = post_as(
        &gw,
        &format!("{REQUESTS}/{masked_id}/approve"),
        &psb_admin(&gw),
        &json!({"fields": {"birth_date": "keep", "name": "keep"}}),
    )
    .await;
    widened.assert_problem(400, "invalid-request");
    let paths: Vec<&str> = widened.json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        ["fields.birth_date", "fields.name"],
        "{}",
        widened.text
    );

    let still = get_as(&gw, &format!("{REQUESTS}/{id}"), &lead(&gw)).await;
    assert_eq!(still.json["state"], "pending");
    let clerk = clerk_lookup(&gw).await;
    assert!(withheld(&clerk, "birth_date").is_some());
    // Then a valid approval still goes through: a request's "default" leaves the mask
    // to the department, which may show the field as it is.
    let ok = post_as(
        &gw,
        &approve,
        &psb_admin(&gw),
        &json!({"fields": {"birth_date": "keep"}}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["grant"]["fields"], json!({"birth_date": "keep"}));
}

#[tokio::test]
async fn a_grant_valid_until_today_is_active_and_no_later_than_asked() {
    let gw = TestGateway::start().await;
    let until = (gateway::policy::china_today() + chrono::Duration::days(7)).to_string();
    let mut body = elderly_request();
    body["valid_until"] = json!(until);
    let asked = post_as(&gw, REQUESTS, &lead(&gw), &body).await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    assert_eq!(asked.json["valid_until"], until);
    let id = asked.json["id"].as_str().expect("id");
    let approve = format!("{REQUESTS}/{id}/approve");

    let later = (gateway::policy::china_today() + chrono::Duration::days(8)).to_string();
    let too_long = post_as(
        &gw,
        &approve,
        &psb_admin(&gw),
        &json!({"valid_until": later}),
    )
    .await;
    too_long.assert_problem(400, "invalid-request");
    assert_eq!(too_long.json["problems"][0]["path"], "valid_until");

    let approved = post_as(
        &gw,
        &approve,
        &psb_admin(&gw),
        &json!({"valid_until": today(), "fields": {"birth_date": "age_band"}}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.json["grant"]["valid_until"], today());
    assert_eq!(approved.json["grant"]["state"], "active");
    let clerk = clerk_lookup(&gw).await;
    assert_eq!(clerk.json["fields"]["birth_date"]["rule"], id);
}

#[tokio::test]
async fn file_grants_are_revoked_by_editing_the_files() {
    let gw = TestGateway::start().await;
    let reply = post_as(
        &gw,
        "/v1/grants/hukou-birth-registration/revoke",
        &psb_admin(&gw),
        &json!({"reason": "test"}),
    )
    .await;
    reply.assert_problem(409, "file-managed");
    assert_eq!(reply.json["origin"], "gateway.yaml");
    post_as(
        &gw,
        "/v1/grants/ar-nonesuch/revoke",
        &psb_admin(&gw),
        &json!({"reason": "test"}),
    )
    .await
    .assert_problem(404, "unknown-grant");
    let by_clerk = post_as(
        &gw,
        "/v1/grants/hukou-birth-registration/revoke",
        &gw.token(Role::Clerk, Some(TOWNSHIP)),
        &json!({"reason": "test"}),
    )
    .await;
    by_clerk.assert_problem(403, "forbidden");
    assert_eq!(by_clerk.json["rule"], "grant-owner");

    // Still in force.
    let person = sample(SampleKind::MarriedParent);
    let clerk = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(
        clerk.json["fields"]["name"]["rule"],
        "hukou-birth-registration"
    );

    // A department admin lists its own file grants with their state.
    let listed = get_as(&gw, "/v1/grants", &psb_admin(&gw)).await;
    let grants = listed.json["grants"].as_array().expect("grants");
    assert!(!grants.is_empty());
    assert!(
        grants.iter().all(|g| g["connector"] == "hukou"),
        "{}",
        listed.text
    );
    assert!(
        grants
            .iter()
            .all(|g| g["origin"] == "file" && g["state"] == "active")
    );

    let statuses: Vec<(String, u64)> = access_events(&gw)
        .await
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().expect("op").to_owned(),
                e["outcome"]["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("grant.revoke hukou-birth-registration".to_owned(), 409),
            ("grant.revoke ar-nonesuch".to_owned(), 404),
            ("grant.revoke hukou-birth-registration".to_owned(), 403),
        ]
    );
}

#[tokio::test]
async fn the_overdue_list_holds_only_pending_requests_past_their_deadline() {
    // The county gives departments three working days.
    let gw = TestGateway::start_with(|path, text| {
        if path == "county/gateway.yaml" {
            text.edit("deadline_working_days: 10", "deadline_working_days: 3")
        } else {
            text.to_owned()
        }
    })
    .await;
    let asked = post_as(&gw, REQUESTS, &lead(&gw), &elderly_request()).await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let id = asked.json["id"].as_str().expect("id").to_owned();
    // Three working days of the county's calendar (holidays off, 调休 days worked).
    let calendar = COUNTY_FILES
        .iter()
        .find(|(path, _)| *path == "county/calendar.yaml")
        .map(|(_, text)| gateway::calendar::Calendar::from_yaml(text))
        .expect("the county's calendar")
        .expect("it loads");
    let due = calendar.add_working_days(gateway::policy::china_today(), 3);
    assert_eq!(asked.json["deadline"], due.to_string());
    // A fresh request is due in ten working days, so nothing is overdue yet (the
    // listing filter itself is unit-tested with a back-dated request).
    let overdue = get_as(&gw, &format!("{REQUESTS}/overdue"), &psb_admin(&gw)).await;
    assert_eq!(overdue.status, 200, "{}", overdue.text);
    assert_eq!(overdue.json["requests"], json!([]));
    let all = get_as(&gw, REQUESTS, &gw.token(Role::Operator, None)).await;
    assert_eq!(all.json["requests"][0]["id"], id.as_str());
    assert_eq!(all.json["requests"][0]["overdue"], false);
    get_as(
        &gw,
        &format!("{REQUESTS}/overdue"),
        &gw.token(Role::Clerk, Some(TOWNSHIP)),
    )
    .await
    .assert_problem(403, "forbidden");
}
