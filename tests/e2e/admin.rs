//! Department and operator actions: purging a connector's record cache (only its own
//! department admin or an operator, always audited), and the `/metrics` counters.

use crate::helpers::Edit as _;
use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TestGateway, client, lookup, post_json, sample};

const PURGE_HUKOU: &str = "/v1/admin/connectors/hukou/cache/purge";

/// A department admin's token for `department`.
fn admin_of(gw: &TestGateway, department: &'static str) -> String {
    let persona = demo::Persona {
        name: "dept-admin",
        about: "a test department admin",
        role: Role::DeptAdmin,
        township: None,
        villages: &[],
        department: Some(department),
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

async fn purge(gw: &TestGateway, token: &str) -> Reply {
    post_json(&gw.url(PURGE_HUKOU), token, &json!({})).await
}

#[tokio::test]
async fn the_owning_department_purges_its_cache_and_the_next_lookup_calls_it_again() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let hukou = gw.department(Department::Hukou);
    let before = hukou.requests();
    assert_eq!(gw.query(&body).await.json["cache_hit"], false);
    assert_eq!(gw.query(&body).await.json["cache_hit"], true);
    assert_eq!(hukou.requests() - before, 1, "the second lookup was a hit");

    let purged = purge(&gw, &admin_of(&gw, "county-psb")).await;
    assert_eq!(purged.status, 200, "{}", purged.text);
    assert_eq!(purged.json["cache"], "purged");
    assert_eq!(purged.json["entries_purged"], 1);

    let again = gw.query(&body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["cache_hit"], false);
    assert_eq!(
        hukou.requests() - before,
        2,
        "the purge sent the lookup upstream"
    );
}

#[tokio::test]
async fn only_the_owner_or_an_operator_may_purge_and_every_attempt_is_audited() {
    let gw = TestGateway::start().await;
    let other_department = purge(&gw, &admin_of(&gw, "county-hrss")).await;
    other_department.assert_problem(403, "forbidden");
    assert_eq!(other_department.json["rule"], "connector-owner");
    let clerk = purge(&gw, &gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP))).await;
    clerk.assert_problem(403, "forbidden");
    let unknown = post_json(
        &gw.url("/v1/admin/connectors/nonesuch/cache/purge"),
        &gw.token(Role::Operator, None),
        &json!({}),
    )
    .await;
    unknown.assert_problem(404, "unknown-connector");
    assert!(!unknown.text.contains("nonesuch"), "{}", unknown.text);
    let operator = purge(&gw, &gw.token(Role::Operator, None)).await;
    assert_eq!(operator.status, 200, "{}", operator.text);

    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(&gw.url("/v1/audit/search"), &officer, &json!({"limit": 50})).await;
    assert_eq!(found.status, 200, "{}", found.text);
    let purges: Vec<&Value> = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["operation"] == "connector.cache.purge")
        .collect();
    let statuses: Vec<u64> = purges
        .iter()
        .filter_map(|e| e["outcome"]["status"].as_u64())
        .collect();
    assert_eq!(purges.len(), 4, "{}", found.text);
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 2);
    assert!(statuses.contains(&404) && statuses.contains(&200));
    assert!(
        purges
            .iter()
            .any(|e| e["caller"]["department"] == "county-hrss"),
        "who tried is recorded"
    );
}

#[tokio::test]
async fn metrics_count_cache_hits_misses_and_refusals_without_personal_data() {
    let gw = TestGateway::start_with(|path, text| {
        if path == "county/gateway.yaml" {
            // No forms: a fill makes more lookups at once than this burst takes.
            text.edit(
                "per_user: { per_minute: 120, burst: 30 }",
                "per_user: { per_minute: 2, burst: 2 }",
            )
            .lines()
            .filter(|line| *line != "forms:" && !line.contains("../forms/"))
            .collect::<Vec<_>>()
            .join("\n")
        } else {
            text.to_owned()
        }
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    assert_eq!(gw.query(&body).await.status, 200);
    assert_eq!(gw.query(&body).await.status, 200);
    gw.query(&body).await.assert_problem(429, "rate-limited");

    // Operators only: nobody else learns how busy each department is.
    let anonymous = gw.get("/metrics").await;
    anonymous.assert_problem(401, "unauthenticated");
    let clerk = client()
        .get(gw.url("/metrics"))
        .bearer_auth(gw.token(Role::Clerk, Some(crate::helpers::TOWNSHIP)))
        .send()
        .await
        .expect("an answer");
    assert_eq!(clerk.status(), 403);
    let response = client()
        .get(gw.url("/metrics"))
        .bearer_auth(gw.token(Role::Operator, None))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"gateway_cache_misses_total{connector="hukou"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gateway_cache_hits_total{connector="hukou"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gateway_rate_limited_total{limit="user"} 1"#),
        "{text}"
    );
    // The audit writer committed the lookups' events in one batch or more, each
    // counted once in the histogram's buckets.
    let batches: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("gateway_audit_commit_seconds_count "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a batch count: {text}"));
    assert!(batches >= 1, "{text}");
    assert!(
        text.contains(&format!(
            "gateway_audit_commit_seconds_bucket{{le=\"+Inf\"}} {batches}\n"
        )),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!text.contains(person.id.as_str()));
    assert!(!text.contains(crate::helpers::TOWNSHIP));
    assert!(!text.contains("clerk"), "no user names: {text}");
}

/// The labels of every sample line of an OpenMetrics text: (metric, key, value).
fn labels(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((metric, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((set, _)) = rest.rsplit_once('}') else {
            panic!("a label set without its end: {line}")
        };
        for pair in set.split("\",") {
            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
            let value = value.trim_end_matches('"');
            found.push((metric.to_owned(), key.to_owned(), value.to_owned()));
        }
    }
    found
}

// RED metrics: requests by route template, method and status class, department calls
// by connector, operation and outcome, policy decisions by outcome and reason, with
// durations. Every label value comes from a fixed set: a path a caller typed, an ID
// number, a user or a township never becomes one.
#[tokio::test]
async fn red_metrics_count_requests_calls_and_decisions_with_fixed_labels_only() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    assert_eq!(
        gw.query(&lookup("hukou", "person_by_id", id)).await.status,
        200
    );
    let outsider = gw.token(Role::Clerk, Some("139901201"));
    let refused = gw
        .query_as(&outsider, &lookup("hukou", "person_by_id", id))
        .await;
    assert_eq!(refused.status, 403);
    let typed = format!("/v1/people/{id}");
    assert_eq!(gw.get(&typed).await.status, 404);

    let text = client()
        .get(gw.url("/metrics"))
        .bearer_auth(gw.token(Role::Operator, None))
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("text");
    for line in [
        r#"gateway_http_requests_total{route="/v1/query",method="POST",status="2xx"} 1"#,
        r#"gateway_http_requests_total{route="/v1/query",method="POST",status="4xx"} 1"#,
        r#"gateway_http_requests_total{route="(unmatched)",method="GET",status="4xx"} 1"#,
        r#"gateway_http_request_seconds_count{route="/v1/query"} 2"#,
        r#"gateway_upstream_calls_total{connector="hukou",operation="person_by_id",outcome="ok"}"#,
        r#"gateway_upstream_seconds_count{connector="hukou",operation="person_by_id"}"#,
        r#"gateway_policy_decisions_total{outcome="allowed",reason="granted"} 1"#,
        r#"gateway_policy_decisions_total{outcome="refused",reason="jurisdiction"} 1"#,
        r#"gateway_config_info{version=""#,
        "gateway_audit_commit_seconds_count ",
        "gateway_audit_queue_depth ",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }

    // The demo county's connectors and their operations, from its files.
    let mut connectors = Vec::new();
    let mut operations = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../county/connectors");
    for file in std::fs::read_dir(dir).expect("the county's connectors") {
        let text = std::fs::read_to_string(file.expect("a file").path()).expect("YAML");
        let def = connectors::ConnectorDef::from_yaml(&text).expect("a definition");
        operations.extend(def.operations.keys().cloned());
        connectors.push(def.id.clone());
    }
    for (metric, key, value) in labels(&text) {
        let fixed = match key.as_str() {
            "route" => {
                // A template: literal names (`v1`) and `{parameters}`, never a value.
                value == "(unmatched)"
                    || (value.starts_with('/')
                        && value
                            .split('/')
                            .all(|part| part.chars().filter(char::is_ascii_digit).count() < 3))
            }
            "method" => [
                "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
            ]
            .contains(&value.as_str()),
            "status" => ["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&value.as_str()),
            "connector" => connectors.contains(&value),
            "operation" => operations.contains(&value),
            "outcome" => [
                "ok",
                "schema",
                "busy",
                "not_found",
                "timeout",
                "unavailable",
                "status",
                "rejected",
                "oversize",
                "malformed",
                "mapping",
                "unknown_operation",
                "allowed",
                "refused",
            ]
            .contains(&value.as_str()),
            "reason" => [
                "granted",
                "role",
                "denied_by_rule",
                "row_condition",
                "jurisdiction",
            ]
            .contains(&value.as_str()),
            // The configuration's version: a hash of what is in force.
            "version" => value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)),
            "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
            "limit" => [
                "user",
                "township",
                "grant",
                "grant_user_share",
                "connector",
                "verify_mismatches",
            ]
            .contains(&value.as_str()),
            _ => false,
        };
        assert!(fixed, "{metric}: {key}={value:?} is not from a fixed set");
    }
    assert!(!text.contains(id), "an ID number in the metrics");
    assert!(!text.contains(&typed), "a typed path in the metrics");
    assert!(!text.contains("139901201") && !text.contains(crate::helpers::TOWNSHIP));
}
