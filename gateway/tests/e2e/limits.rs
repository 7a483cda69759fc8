//! Rate limits end to end: a user, a township and a grant's quota each stop their own
//! caller with a 429 that says which limit and when to come back (and names no user
//! or township); a department's capacity stops calls before they reach its system and
//! says it is the department's limit; and cache hits cost the department nothing.

use connectors::sim::{Department, SampleKind};
use gateway::auth::Role;
use gateway::demo::{self, Persona};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, lookup, population, post_json, sample};

/// Another township of the demo county, with its own residents.
const OTHER_TOWNSHIP: &str = "139901201";

/// A token for a caller with this user id (`sub`), role and township.
fn token_for(
    gw: &TestGateway,
    name: &'static str,
    role: Role,
    township: Option<&'static str>,
) -> String {
    let persona = Persona {
        name,
        about: "a test caller",
        role,
        township,
        department: None,
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

/// POSTs a lookup and keeps the answer's headers.
async fn query_with_headers(gw: &TestGateway, token: &str, body: &Value) -> (Reply, HeaderMap) {
    let request = gw
        .client
        .post(gw.url("/v1/query"))
        .bearer_auth(token)
        .json(body);
    let response = request.send().await.expect("an answer");
    let headers = response.headers().clone();
    (Reply::read(response).await, headers)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("an ASCII header")
}

/// Asserts a 429 of `kind` naming `limit`, with `Retry-After`, `RateLimit-Policy`
/// (`"<limit>";q=<q>;w=<w>`) and `RateLimit` (`r=0`) headers that agree.
fn assert_limited(reply: &Reply, headers: &HeaderMap, kind: &str, limit: &str, q: u32, w: u32) {
    reply.assert_problem(429, kind);
    assert_eq!(reply.json["limit"], limit, "{}", reply.text);
    let retry: u64 = header(headers, "retry-after")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(reply.json["retry_after_s"], retry);
    assert_eq!(
        header(headers, "ratelimit-policy"),
        format!("\"{limit}\";q={q};w={w}")
    );
    assert_eq!(
        header(headers, "ratelimit"),
        format!("\"{limit}\";r=0;t={retry}")
    );
}

/// A resident of `township` (row conditions hold for its callers).
fn resident_of(township: &str) -> &'static connectors::sim::Person {
    population()
        .sample_in(SampleKind::MarriedParent, township)
        .expect("a resident")
}

#[tokio::test]
async fn a_user_over_their_own_limit_is_stopped_and_their_colleague_is_not() {
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.replace(
            "per_user: { per_minute: 120, burst: 30 }",
            "per_user: { per_minute: 3, burst: 3 }",
        ),
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let zhao = token_for(&gw, "clerk-zhao-lei", Role::Clerk, Some(TOWNSHIP));
    for _ in 0..3 {
        let (reply, _) = query_with_headers(&gw, &zhao, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let calls = gw.department(Department::Hukou).requests();
    let (reply, headers) = query_with_headers(&gw, &zhao, &body).await;
    assert_limited(&reply, &headers, "rate-limited", "user", 3, 60);
    assert_eq!(reply.json["blame"], "caller");
    for leak in ["clerk-zhao-lei", TOWNSHIP, person.id.as_str(), &person.name] {
        assert!(!reply.text.contains(leak), "{leak} in {}", reply.text);
        for (name, value) in &headers {
            let value = value.to_str().unwrap_or_default();
            assert!(!value.contains(leak), "{leak} in the {name} header");
        }
    }
    assert_eq!(gw.department(Department::Hukou).requests(), calls);
    // Filling a form is a request like any other.
    let url = gw.url("/v1/forms/birth-registration/fill");
    let fill = json!({"subject": {"id_number": person.id.as_str()}, "case_id": "SYDJ-1"});
    let response = gw
        .client
        .post(&url)
        .bearer_auth(&zhao)
        .json(&fill)
        .send()
        .await
        .expect("an answer");
    let headers = response.headers().clone();
    let refused = Reply::read(response).await;
    assert_limited(&refused, &headers, "rate-limited", "user", 3, 60);
    assert_eq!(gw.department(Department::Hukou).requests(), calls);

    // A colleague in the same township has their own limit.
    let qian = token_for(&gw, "clerk-qian-fang", Role::Clerk, Some(TOWNSHIP));
    let (reply, _) = query_with_headers(&gw, &qian, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_townships_users_share_its_limit_and_other_townships_do_not() {
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.replace(
            "per_township: { per_minute: 1200, burst: 200 }",
            "per_township: { per_minute: 2, burst: 2 }",
        ),
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let zhao = token_for(&gw, "clerk-zhao-lei", Role::Clerk, Some(TOWNSHIP));
    let qian = token_for(&gw, "clerk-qian-fang", Role::Clerk, Some(TOWNSHIP));
    for token in [&zhao, &qian] {
        let (reply, _) = query_with_headers(&gw, token, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    for token in [&zhao, &qian] {
        let (reply, headers) = query_with_headers(&gw, token, &body).await;
        assert_limited(&reply, &headers, "rate-limited", "township", 2, 60);
        assert!(!reply.text.contains(TOWNSHIP), "{}", reply.text);
        assert!(!reply.text.contains("clerk-"), "{}", reply.text);
    }

    // Another township's clerk, looking up one of their own residents, is unaffected.
    let sun = token_for(&gw, "clerk-sun-li", Role::Clerk, Some(OTHER_TOWNSHIP));
    let theirs = resident_of(OTHER_TOWNSHIP);
    let (reply, _) = query_with_headers(
        &gw,
        &sun,
        &lookup("hukou", "person_by_id", theirs.id.as_str()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_grants_quota_stops_that_grant_only() {
    let gw = TestGateway::start_with(|path, text| match path {
        "policies/hukou.yaml" => {
            assert!(text.contains("quota: { per_day: 500 }"));
            text.replace("quota: { per_day: 500 }", "quota: { per_day: 2 }")
        }
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    for _ in 0..2 {
        let (reply, _) = query_with_headers(&gw, &clerk, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let (reply, headers) = query_with_headers(&gw, &clerk, &body).await;
    assert_limited(
        &reply,
        &headers,
        "rate-limited",
        "grant:hukou-birth-registration",
        2,
        86_400,
    );
    assert!(!reply.text.contains(TOWNSHIP), "{}", reply.text);

    // Another grant of the same department, and another department's grant for the
    // same purpose, still answer.
    let mut household = lookup("hukou", "household_by_member", person.id.as_str());
    household["purpose"] = json!("subsistence_allowance");
    let (reply, _) = query_with_headers(&gw, &clerk, &household).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let births = lookup("jisheng", "fertility_by_id", person.id.as_str());
    let (reply, _) = query_with_headers(&gw, &clerk, &births).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // The quota is the township's: another township's clerk has their own.
    let theirs = resident_of(OTHER_TOWNSHIP);
    let other = gw.token(Role::Clerk, Some(OTHER_TOWNSHIP));
    let (reply, _) = query_with_headers(
        &gw,
        &other,
        &lookup("hukou", "person_by_id", theirs.id.as_str()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // A form for the same purpose shows the household fields as rate limited.
    let url = gw.url("/v1/forms/birth-registration/fill");
    let fill = json!({"subject": {"id_number": person.id.as_str()}, "case_id": "SYDJ-1"});
    let filled = post_json(&url, &clerk, &fill).await;
    assert_eq!(filled.status, 200, "{}", filled.text);
    assert_eq!(filled.json["complete"], false);
    let applicant = section_fields(&filled.json, "applicant");
    for f in &applicant {
        match f["source"]["connector"].as_str() {
            Some(connector) => assert_ne!(connector, "hukou", "{f}"),
            None => assert_eq!(f["missing"]["reason"], "rate_limited", "{f}"),
        }
    }
    assert_eq!(
        field_of(&applicant, "name")["missing"],
        json!({"reason": "rate_limited", "rule": "grant:hukou-birth-registration", "connector": "hukou"})
    );
    assert_eq!(
        field_of(&applicant, "marital_status")["source"]["connector"],
        "jisheng"
    );
}

/// The fields of a section that is not repeated.
fn section_fields<'a>(body: &'a Value, section: &str) -> Vec<&'a Value> {
    body["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == section)
        .and_then(|s| s["fields"].as_array())
        .expect("the section's fields")
        .iter()
        .collect()
}

fn field_of<'a>(fields: &[&'a Value], id: &str) -> &'a Value {
    fields
        .iter()
        .find(|f| f["id"] == id)
        .copied()
        .unwrap_or_else(|| panic!("no field {id}"))
}

/// The demo county with hukou's capacity at one call a second, cache on or off.
async fn hukou_at_one_a_second(cache: bool) -> TestGateway {
    TestGateway::start_with(move |path, text| match path {
        "county/connectors/hukou.yaml" => {
            let text = text.replace(
                "capacity: { per_second: 200, burst: 100 }",
                "capacity: { per_second: 1, burst: 1 }",
            );
            if cache {
                text
            } else {
                text.replace(
                    "cache: { ttl_s: 60, not_found_ttl_s: 10, max_mib: 64 }",
                    "cache: { ttl_s: 0, not_found_ttl_s: 0, max_mib: 64 }",
                )
            }
        }
        _ => text.to_owned(),
    })
    .await
}

#[tokio::test]
async fn a_department_at_capacity_is_not_called_and_says_it_is_the_departments_limit() {
    let gw = hukou_at_one_a_second(false).await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let calls = gw.department(Department::Hukou).requests();
    let (first, _) = query_with_headers(&gw, &clerk, &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let (second, headers) = query_with_headers(&gw, &clerk, &body).await;
    assert_limited(
        &second,
        &headers,
        "department-capacity",
        "connector:hukou",
        1,
        1,
    );
    assert_eq!(second.json["blame"], "department");
    assert_eq!(second.json["connector"], "hukou");
    assert!(!second.text.contains(person.id.as_str()));
    assert_eq!(
        gw.department(Department::Hukou).requests() - calls,
        1,
        "the refused call reached the department"
    );

    // A form needing hukou now: its fields say the department is busy; the others
    // are filled.
    let url = gw.url("/v1/forms/birth-registration/fill");
    let fill = json!({"subject": {"id_number": person.id.as_str()}, "case_id": "SYDJ-1"});
    let filled = post_json(&url, &clerk, &fill).await;
    assert_eq!(filled.status, 200, "{}", filled.text);
    assert_eq!(filled.json["complete"], false, "{}", filled.text);
    let applicant = section_fields(&filled.json, "applicant");
    assert_eq!(
        field_of(&applicant, "name")["missing"],
        json!({"reason": "department_busy", "rule": "connector:hukou", "connector": "hukou"})
    );
    let spouse = section_fields(&filled.json, "spouse");
    for f in applicant.iter().chain(&spouse) {
        match f["source"]["connector"].as_str() {
            Some(connector) => assert_ne!(connector, "hukou", "{f}"),
            None => assert_eq!(f["missing"]["reason"], "department_busy", "{f}"),
        }
    }
    assert_eq!(
        field_of(&applicant, "marital_status")["source"]["connector"],
        "jisheng"
    );
    let busy = filled.json["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .filter(|l| l["connector"] == "hukou")
        .all(|l| l["outcome"] == "department-capacity" && l["reason"] == "department_busy");
    assert!(busy, "{}", filled.json["lookups"]);
    assert_eq!(
        gw.department(Department::Hukou).requests() - calls,
        1,
        "a refused form lookup reached the department"
    );
}

#[tokio::test]
async fn cache_hits_cost_the_department_nothing() {
    let gw = hukou_at_one_a_second(true).await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let calls = gw.department(Department::Hukou).requests();
    for i in 0..5 {
        let (reply, _) = query_with_headers(&gw, &clerk, &body).await;
        assert_eq!(reply.status, 200, "lookup {i}: {}", reply.text);
        assert_eq!(reply.json["cache_hit"], i > 0, "lookup {i}");
    }
    assert_eq!(gw.department(Department::Hukou).requests() - calls, 1);

    // The one call spent the capacity: someone not in the cache has to wait.
    let someone = sample(SampleKind::Pensioner);
    let (reply, headers) = query_with_headers(
        &gw,
        &clerk,
        &lookup("hukou", "person_by_id", someone.id.as_str()),
    )
    .await;
    assert_limited(
        &reply,
        &headers,
        "department-capacity",
        "connector:hukou",
        1,
        1,
    );
    assert_eq!(gw.department(Department::Hukou).requests() - calls, 1);
}
