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
