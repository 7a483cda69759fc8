//! The privacy officer's surface end to end: after a few lookups, an officer lists
//! them, filters by citizen, exports CSV, gets the citizen's access report; other
//! roles are refused; and every use of the audit log is itself recorded.

use gateway::auth::Role;
use serde_json::{Value, json};
use sim::SampleKind;

use crate::helpers::{Reply, TestGateway, lookup, sample};

async fn officer(gw: &TestGateway, path: &str, body: &Value) -> Reply {
    let token = gw.token(Role::PrivacyOfficer, None);
    crate::helpers::post_json(&gw.url(path), &token, body).await
}

#[tokio::test]
async fn an_officer_lists_exports_and_reports_who_looked_at_a_citizen() {
    let gw = TestGateway::start().await;
    let parent = sample(SampleKind::MarriedParent);
    let pensioner = sample(SampleKind::Pensioner);
    for id in [&parent.id, &parent.id, &pensioner.id] {
        let reply = gw
            .query(&lookup("hukou", "person_by_id", id.as_str()))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }

    // Everything, newest first, two per page.
    let page = officer(&gw, "/v1/audit/search", &json!({"limit": 2})).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let events = page.json["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["subject_masked"], pensioner.id.masked());
    let next = page.json["next"].as_u64().expect("a next page");
    let rest = officer(
        &gw,
        "/v1/audit/search",
        &json!({"limit": 2, "before": next}),
    )
    .await;
    // The third lookup, then the gateway's start-up record of its configuration.
    let rest = rest.json["events"].as_array().expect("events");
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1]["kind"], "admin");

    // By citizen: the ID number goes in the body, the log is searched by pseudonym.
    let mine = officer(
        &gw,
        "/v1/audit/search",
        &json!({"filter": {"id_number": parent.id.as_str()}}),
    )
    .await;
    assert_eq!(mine.json["events"].as_array().expect("events").len(), 2);
    assert!(
        !mine.text.contains(parent.id.as_str()),
        "the bare ID is echoed"
    );

    // CSV export: a header and one row per lookup (the officer's own searches are
    // admin events, recorded too).
    let csv = officer(
        &gw,
        "/v1/audit/export",
        &json!({"format": "csv", "filter": {"status": 200}}),
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("\u{feff}序号,"), "{}", lines[0]);
    assert!(
        lines.iter().filter(|l| l.contains("person_by_id")).count() == 3,
        "{}",
        csv.text
    );

    // The citizen's report: who, when, for what, which fields.
    let report = officer(
        &gw,
        "/v1/audit/report",
        &json!({"id_number": parent.id.as_str()}),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let accesses = report.json["accesses"].as_array().expect("accesses");
    assert_eq!(accesses.len(), 2);
    assert_eq!(accesses[0]["purpose"], "birth_registration");
    assert_eq!(accesses[0]["user"], "clerk");
    assert!(
        accesses[0]["fields"]
            .as_array()
            .expect("fields")
            .contains(&json!("name"))
    );

    // Anomalies over the last day answer (normal traffic in office hours or not).
    let today = chrono::Utc::now();
    let window = json!({
        "from": (today - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "until": (today + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let found = officer(&gw, "/v1/audit/anomalies", &window).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert!(found.json["anomalies"].as_array().is_some());

    // The officer's own reads are in the log as admin events.
    let admin = officer(
        &gw,
        "/v1/audit/search",
        &json!({"filter": {"user": "privacy_officer"}}),
    )
    .await;
    let kinds: Vec<&Value> = admin.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| *k == "admin"),
        "{kinds:?}"
    );
    assert!(gateway::audit::verify(&gw.data_dir.path().join("data")).is_ok());
}

#[tokio::test]
async fn only_privacy_officers_read_the_audit_log() {
    let gw = TestGateway::start().await;
    for role in [Role::Clerk, Role::DeptAdmin, Role::Operator] {
        let township = (role == Role::Clerk).then_some(crate::helpers::TOWNSHIP);
        let token = gw.token(role, township);
        let reply =
            crate::helpers::post_json(&gw.url("/v1/audit/search"), &token, &json!({})).await;
        reply.assert_problem(403, "forbidden");
        assert_eq!(reply.json["rule"], "privacy-officer-only");
    }
    let reply = Reply::read(
        gw.client
            .post(gw.url("/v1/audit/search"))
            .json(&json!({}))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    reply.assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn bad_officer_requests_are_clear_400s_that_echo_nothing() {
    let gw = TestGateway::start().await;
    let id = sample(SampleKind::MarriedParent).id.as_str();
    // The right digits with a wrong check digit.
    let wrong = if id.ends_with('0') { '1' } else { '0' };
    let bad_id = format!("{}{wrong}", &id[..17]);
    let cases = [
        (
            "/v1/audit/search",
            json!({"filter": {"bogus": 1}}),
            "invalid-request",
        ),
        (
            "/v1/audit/search",
            json!({"filter": {"from": "yesterday"}}),
            "invalid-request",
        ),
        (
            "/v1/audit/search",
            json!({"filter": {"id_number": bad_id}}),
            "invalid-id-number",
        ),
        (
            "/v1/audit/report",
            json!({"id_number": bad_id}),
            "invalid-id-number",
        ),
        (
            "/v1/audit/export",
            json!({"format": "xlsx"}),
            "invalid-request",
        ),
        (
            "/v1/audit/anomalies",
            json!({"from": "2026-01-01T00:00:00Z"}),
            "invalid-request",
        ),
    ];
    for (path, body, kind) in cases {
        let reply = officer(&gw, path, &body).await;
        reply.assert_problem(400, kind);
        assert!(
            !reply.text.contains(&bad_id),
            "{path} echoed the ID: {}",
            reply.text
        );
    }
}

/// The bytes of an export, exactly as a spreadsheet would read them, with an optional
/// `Accept-Language`.
async fn export_bytes(gw: &TestGateway, accept_language: Option<&str>, body: &Value) -> String {
    let token = gw.token(Role::PrivacyOfficer, None);
    let mut request = gw
        .client
        .post(gw.url("/v1/audit/export"))
        .bearer_auth(&token)
        .json(body);
    if let Some(lang) = accept_language {
        request = request.header("accept-language", lang);
    }
    let response = request.send().await.expect("answer");
    assert_eq!(response.status(), 200);
    String::from_utf8(response.bytes().await.expect("body").to_vec()).expect("UTF-8")
}

#[tokio::test]
async fn a_csv_export_is_safe_to_open_in_a_spreadsheet_and_speaks_the_callers_language() {
    let gw = TestGateway::start().await;
    let parent = sample(SampleKind::MarriedParent);
    let mut body = lookup("hukou", "person_by_id", parent.id.as_str());
    body["case_id"] = json!("=HYPERLINK(\"http://evil.example\",\"点击\")");
    let reply = gw.query(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let filter = json!({"status": 200, "connector": "hukou"});

    // Default: Chinese headers, a BOM first, the formula written as text.
    let csv = export_bytes(&gw, None, &json!({"format": "csv", "filter": filter})).await;
    let text = csv.strip_prefix('\u{feff}').expect("a UTF-8 BOM first");
    assert!(text.starts_with("序号,时间,"), "{text}");
    assert!(text.contains(",\"'=HYPERLINK("), "{text}");
    assert!(!text.contains(",\"=HYPERLINK("), "{text}");

    // English by Accept-Language, or by the body (which wins).
    let english = export_bytes(
        &gw,
        Some("en-GB,en;q=0.9"),
        &json!({"format": "csv", "filter": filter}),
    )
    .await;
    assert!(english.starts_with("\u{feff}seq,time,"), "{english}");
    let chinese = export_bytes(
        &gw,
        Some("en"),
        &json!({"format": "csv", "filter": filter, "lang": "zh-CN"}),
    )
    .await;
    assert!(chinese.starts_with("\u{feff}序号,"), "{chinese}");
    let bad = officer(
        &gw,
        "/v1/audit/export",
        &json!({"format": "csv", "lang": "fr"}),
    )
    .await;
    bad.assert_problem(400, "invalid-request");
    assert_eq!(bad.json["at"], "lang");
}

#[tokio::test]
async fn the_officers_api_takes_one_id_name_dates_and_a_capped_limit_and_names_bad_fields() {
    let gw = TestGateway::start().await;
    let parent = sample(SampleKind::MarriedParent);
    let reply = gw
        .query(&lookup("hukou", "person_by_id", parent.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("CST"))
        .date_naive()
        .to_string();

    // `id_number` in search, export and report alike; a date is that day in China.
    let found = officer(
        &gw,
        "/v1/audit/search",
        &json!({"filter": {"id_number": parent.id.as_str(), "from": today, "until": today, "connector": "hukou"}}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json["events"].as_array().expect("events").len(), 1);
    let exported = officer(
        &gw,
        "/v1/audit/export",
        &json!({"format": "jsonl", "filter": {"id_number": parent.id.as_str(), "from": today, "connector": "hukou"}}),
    )
    .await;
    assert_eq!(exported.status, 200, "{}", exported.text);
    assert_eq!(exported.text.lines().count(), 1, "{}", exported.text);

    // Each mistake is a 400 naming the field, never echoing the value.
    let cases = [
        (
            "/v1/audit/search",
            json!({"filter": {"citizen_id_number": parent.id.as_str()}}),
            "filter",
        ),
        ("/v1/audit/search", json!({"limit": 5000}), "limit"),
        ("/v1/audit/search", json!({"limit": 0}), "limit"),
        (
            "/v1/audit/search",
            json!({"filter": {"from": "2026-02-30"}}),
            "filter.from",
        ),
        (
            "/v1/audit/search",
            json!({"filter": {"status": "two hundred"}}),
            "filter.status",
        ),
        (
            "/v1/audit/export",
            json!({"format": "csv", "filter": {"until": "soon-ish"}}),
            "filter.until",
        ),
        (
            "/v1/audit/anomalies",
            json!({"from": "2026-03-01", "until": "2026-06-01"}),
            "until",
        ),
    ];
    for (path, body, at) in cases {
        let reply = officer(&gw, path, &body).await;
        reply.assert_problem(400, "invalid-request");
        assert_eq!(reply.json["at"], at, "{path} {body}: {}", reply.text);
        for echoed in [parent.id.as_str(), "2026-02-30", "two hundred", "soon-ish"] {
            assert!(
                !reply.text.contains(echoed),
                "{path} echoed: {}",
                reply.text
            );
        }
    }
    let limit = officer(&gw, "/v1/audit/search", &json!({"limit": 5000})).await;
    assert!(
        limit.json["detail"]
            .as_str()
            .expect("detail")
            .contains("1000"),
        "{}",
        limit.text
    );
}

#[tokio::test]
async fn no_case_id_counts_only_lookups_that_reached_a_department() {
    let gw = TestGateway::start().await;
    let parent = sample(SampleKind::MarriedParent);
    // Refused before any department is asked: a bad case id, an unknown connector, an
    // oversized body.
    let mut no_case = lookup("hukou", "person_by_id", parent.id.as_str());
    no_case["case_id"] = json!("");
    let mut unknown = lookup("nowhere", "person_by_id", parent.id.as_str());
    unknown["case_id"] = json!("");
    for body in [no_case, unknown] {
        let reply = gw.query(&body).await;
        assert!(matches!(reply.status, 400 | 404), "{}", reply.text);
    }
    let big = gw
        .post_raw("/v1/query", "application/json", "x".repeat(200_000))
        .await;
    assert_eq!(big.status, 413, "{}", big.text);
    let now = chrono::Utc::now();
    let window = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "until": (now + chrono::Duration::minutes(1)).to_rfc3339(),
    });
    let found = officer(&gw, "/v1/audit/anomalies", &window).await;
    assert_eq!(found.status, 200, "{}", found.text);
    let kinds: Vec<&Value> = found.json["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .map(|a| &a["kind"])
        .collect();
    assert!(!kinds.contains(&&json!("no_case_id")), "{}", found.text);
}
