//! Rate limits end to end: a user, a township and a grant's quota each stop their own
//! caller with a 429 that says which limit and when to come back (and names no user
//! or township); a department's capacity stops calls before they reach its system and
//! says it is the department's limit; and cache hits cost the department nothing.
//!
//! And the attacks of issue 13 replayed: a clerk's form fills count their department
//! lookups against the clerk's limit and are refused whole; clerks cannot use up their
//! township's daily quota; daily counts survive a restart and a crash of the real
//! binary; a clerk who keeps running into limits is on the anomaly report.

use crate::helpers::Edit as _;
use gateway::auth::{Role, SigningKey};
use gateway::demo::{self, Persona};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::binary::{Running, url_in, write_county};
use crate::helpers::{Reply, TOWNSHIP, TestGateway, client, lookup, population, post_json, sample};

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
        villages: &[],
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
fn resident_of(township: &str) -> &'static sim::Person {
    population()
        .sample_in(SampleKind::MarriedParent, township)
        .expect("a resident")
}

/// The 低保 form looking up one member: it makes up to 3 lookups (the household, and
/// 社保 and 民政 for the member), the birth registration form 4, so that a limit with
/// a burst of 4 fits every form.
fn forms_of_four(path: &str, text: &str) -> String {
    rows_looked_up(path, text, 1)
}

/// The 低保 form looking up at most `rows` members (the household, and two lookups
/// for each of them).
fn rows_looked_up(path: &str, text: &str, rows: usize) -> String {
    match path {
        "forms/subsistence-allowance.yaml" => text.edit(
            "lookup_each: true\n",
            &format!("lookup_each: true\n    max_rows: {rows}\n"),
        ),
        _ => text.to_owned(),
    }
}

#[tokio::test]
async fn a_user_over_their_own_limit_is_stopped_and_their_colleague_is_not() {
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.edit(
            "per_user: { per_minute: 120, burst: 30 }",
            "per_user: { per_minute: 4, burst: 4 }",
        ),
        _ => forms_of_four(path, text),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let zhao = token_for(&gw, "clerk-zhao-lei", Role::Clerk, Some(TOWNSHIP));
    for _ in 0..4 {
        let (reply, _) = query_with_headers(&gw, &zhao, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let calls = gw.department(Department::Hukou).requests();
    let (reply, headers) = query_with_headers(&gw, &zhao, &body).await;
    assert_limited(&reply, &headers, "rate-limited", "user", 4, 60);
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
    assert_limited(&refused, &headers, "rate-limited", "user", 4, 60);
    assert_eq!(gw.department(Department::Hukou).requests(), calls);

    // A colleague in the same township has their own limit.
    let qian = token_for(&gw, "clerk-qian-fang", Role::Clerk, Some(TOWNSHIP));
    let (reply, _) = query_with_headers(&gw, &qian, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_townships_users_share_its_limit_and_other_townships_do_not() {
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.edit(
            "per_township: { per_minute: 1200, burst: 200 }",
            "per_township: { per_minute: 4, burst: 4 }",
        ),
        _ => forms_of_four(path, text),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let zhao = token_for(&gw, "clerk-zhao-lei", Role::Clerk, Some(TOWNSHIP));
    let qian = token_for(&gw, "clerk-qian-fang", Role::Clerk, Some(TOWNSHIP));
    for token in [&zhao, &qian, &zhao, &qian] {
        let (reply, _) = query_with_headers(&gw, token, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    for token in [&zhao, &qian] {
        let (reply, headers) = query_with_headers(&gw, token, &body).await;
        assert_limited(&reply, &headers, "rate-limited", "township", 4, 60);
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
            // One user may use the whole of this quota.
            text.edit(
                "quota: { per_day: 500 }",
                "quota: { per_day: 2, per_user_per_day: 2 }",
            )
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
            let text = text.edit(
                "capacity: { per_second: 200, burst: 100 }",
                "capacity: { per_second: 1, burst: 1 }",
            );
            if cache {
                text
            } else {
                text.edit(
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

    // A form now: the household register, which says where the person lives, is
    // busy, so nothing that needs the caller's jurisdiction can be shown. The fill
    // stops before any other department is asked, and says whose limit it is.
    let jisheng = gw.department(Department::Jisheng).requests();
    let url = gw.url("/v1/forms/birth-registration/fill");
    let fill = json!({"subject": {"id_number": person.id.as_str()}, "case_id": "SYDJ-1"});
    let filled = post_json(&url, &clerk, &fill).await;
    filled.assert_problem(429, "department-capacity");
    assert_eq!(filled.json["connector"], "hukou", "{}", filled.text);
    assert_eq!(filled.json["blame"], "department");
    assert!(!filled.text.contains(person.id.as_str()));
    assert_eq!(gw.department(Department::Jisheng).requests(), jisheng);
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

/// Every department's requests so far.
fn department_requests(gw: &TestGateway) -> u64 {
    gw.departments.iter().map(|d| d.requests()).sum()
}

/// One member of each of `n` different households registered in `township`.
fn households_in(township: &str, n: usize) -> Vec<&'static sim::Person> {
    let population = population();
    let mut seen = std::collections::BTreeSet::new();
    let people: Vec<_> = population
        .residents()
        .filter(|p| {
            population
                .household_of(p.id.as_str())
                .is_some_and(|h| h.township == township)
                && seen.insert(p.household.clone())
        })
        .take(n)
        .collect();
    assert_eq!(people.len(), n, "{township} has {n} households");
    people
}

/// POSTs a form fill and keeps the answer's headers.
async fn fill_with_headers(
    gw: &TestGateway,
    token: &str,
    form: &str,
    id_number: &str,
) -> (Reply, HeaderMap) {
    let url = gw.url(&format!("/v1/forms/{form}/fill"));
    let body = json!({"subject": {"id_number": id_number}, "case_id": "DB-2026-0001"});
    let response = gw
        .client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let headers = response.headers().clone();
    (Reply::read(response).await, headers)
}

/// A privacy officer's POST.
async fn officer(gw: &TestGateway, path: &str, body: &Value) -> Reply {
    let token = gw.token(Role::PrivacyOfficer, None);
    post_json(&gw.url(path), &token, body).await
}

/// The attack: one clerk fills 低保 forms (a household lookup and two per member)
/// as fast as they can, for household after household. The user's limit holds in
/// department lookups: the departments see at most that many, the fills that get
/// through are whole, and the rest are refused whole before anything is fetched.
#[tokio::test]
async fn a_clerks_fills_stop_at_their_own_limit_counted_in_department_lookups() {
    // 50 lookups, refilled too slowly to matter while the test runs.
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.edit(
            "per_user: { per_minute: 120, burst: 30 }",
            "per_user: { count: 50, window_s: 86400, burst: 50 }",
        ),
        _ => text.to_owned(),
    })
    .await;
    let zhao = token_for(&gw, "clerk-zhao-lei", Role::Clerk, Some(TOWNSHIP));
    // The form says what a fill costs: the household, and 社保 and 民政 for each of up
    // to 10 members.
    let listed = gw
        .client
        .get(gw.url("/v1/forms"))
        .bearer_auth(&zhao)
        .send()
        .await
        .expect("an answer");
    let listed = Reply::read(listed).await;
    let form = listed.json["forms"]
        .as_array()
        .expect("forms")
        .iter()
        .find(|f| f["id"] == "subsistence-allowance")
        .expect("the clerk may fill 低保 forms");
    assert_eq!(form["max_lookups"], 21);

    let before = department_requests(&gw);
    let mut filled = 0;
    let mut refused = 0;
    for member in households_in(TOWNSHIP, 20) {
        let asked = department_requests(&gw);
        let (reply, headers) =
            fill_with_headers(&gw, &zhao, "subsistence-allowance", member.id.as_str()).await;
        if reply.status == 200 {
            filled += 1;
            // Whole: nothing of it was cut by the clerk's own limit.
            assert_eq!(reply.json["complete"], true, "{}", reply.text);
            assert!(!reply.text.contains("rate_limited"), "{}", reply.text);
            let household = population()
                .household(&member.household)
                .expect("household");
            let rows = reply.json["sections"]
                .as_array()
                .expect("sections")
                .iter()
                .find(|s| s["id"] == "members")
                .and_then(|s| s["rows"].as_array())
                .expect("rows");
            assert_eq!(rows.len(), household.members.len());
        } else {
            refused += 1;
            assert_limited(&reply, &headers, "rate-limited", "user", 50, 86_400);
            assert_eq!(reply.json["lookups"], 21, "{}", reply.text);
            assert_eq!(
                department_requests(&gw),
                asked,
                "a refused fill reached a department"
            );
            for leak in ["clerk-zhao-lei", TOWNSHIP, member.id.as_str()] {
                assert!(!reply.text.contains(leak), "{leak} in {}", reply.text);
            }
        }
    }
    let reached = department_requests(&gw) - before;
    assert!(
        reached <= 50,
        "{reached} department lookups for one clerk whose limit is 50"
    );
    assert_eq!((filled, refused), (2, 18), "two fills of 21 fit in 50");

    // Each refused fill is in the audit log as a refusal; and the clerk who kept
    // running into the limit is on the privacy officer's anomaly report.
    let search = officer(
        &gw,
        "/v1/audit/search",
        &json!({"filter": {"user": "clerk-zhao-lei", "status": 429}, "limit": 100}),
    )
    .await;
    assert_eq!(search.status, 200, "{}", search.text);
    let events = search.json["events"].as_array().expect("events");
    assert_eq!(events.len(), 18);
    assert!(
        events
            .iter()
            .all(|e| e["form"] == "subsistence-allowance"
                && e["outcome"]["problem"] == "rate-limited"),
        "{}",
        search.text
    );
    let anomalies = report_anomalies(&gw).await;
    let flagged: Vec<&Value> = anomalies
        .iter()
        .filter(|a| a["kind"] == "repeatedly_limited")
        .collect();
    assert_eq!(flagged.len(), 1, "{anomalies:?}");
    assert_eq!(flagged[0]["user"], "clerk-zhao-lei");
    assert_eq!(flagged[0]["events"].as_array().map(Vec::len), Some(18));
}

/// The anomalies of the last day.
async fn report_anomalies(gw: &TestGateway) -> Vec<Value> {
    let now = chrono::Utc::now();
    let window = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "until": (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let found = officer(gw, "/v1/audit/anomalies", &window).await;
    assert_eq!(found.status, 200, "{}", found.text);
    found.json["anomalies"]
        .as_array()
        .expect("anomalies")
        .clone()
}

/// The attack: four clerks of 东岭镇 look residents up for birth registration until
/// the township's daily quota of the household registration grant is gone, and the
/// clerk with a real applicant is refused. Each user now has a share of the day (a
/// fifth by default): the four use up their shares, the real clerk gets through.
#[tokio::test]
async fn clerks_cannot_use_up_their_townships_daily_quota_and_the_real_clerk_gets_through() {
    let gw = TestGateway::start_with(|path, text| match path {
        // 10 a day for the township: 2 for each user.
        "policies/hukou.yaml" => text.edit("quota: { per_day: 500 }", "quota: { per_day: 10 }"),
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let grant = "grant:hukou-birth-registration";
    let share = format!("{grant}:user");
    let attackers = [
        "clerk-zhao-lei",
        "clerk-qian-fang",
        "clerk-sun-li",
        "clerk-li-na",
    ];
    for name in attackers {
        let token = token_for(&gw, name, Role::Clerk, Some(TOWNSHIP));
        for i in 0..15 {
            let (reply, headers) = query_with_headers(&gw, &token, &body).await;
            if i < 2 {
                assert_eq!(reply.status, 200, "{}", reply.text);
            } else {
                assert_limited(&reply, &headers, "rate-limited", &share, 2, 86_400);
                assert!(
                    reply.json["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("share"))
                );
                for leak in [name, TOWNSHIP] {
                    assert!(!reply.text.contains(leak), "{leak} in {}", reply.text);
                    for (header, value) in &headers {
                        let value = value.to_str().unwrap_or_default();
                        assert!(!value.contains(leak), "{leak} in the {header} header");
                    }
                }
            }
        }
    }
    // The clerk with the real applicant still gets through.
    let real = token_for(&gw, "clerk-zhou-min", Role::Clerk, Some(TOWNSHIP));
    let (reply, _) = query_with_headers(&gw, &real, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (reply, _) = query_with_headers(&gw, &real, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Five users have used the township's ten: now the whole is gone, for everyone.
    let sixth = token_for(&gw, "clerk-wu-gang", Role::Clerk, Some(TOWNSHIP));
    let (reply, headers) = query_with_headers(&gw, &sixth, &body).await;
    assert_limited(&reply, &headers, "rate-limited", grant, 10, 86_400);

    // The metrics count the refusals by kind only, naming no one.
    let metrics = Reply::read(
        client()
            .get(gw.url("/metrics"))
            .bearer_auth(gw.token(Role::Operator, None))
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == r#"gateway_rate_limited_total{limit="grant_user_share"} 52"#),
        "{}",
        metrics.text
    );
    for leak in attackers.iter().chain(&[TOWNSHIP, "clerk-"]) {
        assert!(!metrics.text.contains(leak), "{leak} in the metrics");
    }
    // Each attacker ran into their limit 13 times: four anomalies, one per clerk.
    let anomalies = report_anomalies(&gw).await;
    let mut flagged: Vec<&str> = anomalies
        .iter()
        .filter(|a| a["kind"] == "repeatedly_limited")
        .filter_map(|a| a["user"].as_str())
        .collect();
    flagged.sort_unstable();
    let mut expected = attackers.to_vec();
    expected.sort_unstable();
    assert_eq!(flagged, expected);
}

/// `gateway serve` of the county written in `dir`, on `data_dir`: the process and its
/// lookup URL.
async fn serve(dir: &std::path::Path, data_dir: &std::path::Path) -> (Running, String) {
    let config = dir.join("county/gateway.yaml");
    let mut serve = Running::spawn(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
    ]);
    let gateway = url_in(&serve.line(|l| l.contains("listening on")).await);
    (serve, format!("{gateway}/v1/query"))
}

/// Daily quotas are counted per calendar day and survive the gateway: a clean restart
/// keeps the exact counts, a crash (SIGKILL) forgets none. The real binary, on one data
/// directory, in front of the simulated departments.
#[tokio::test]
async fn daily_quota_counts_survive_a_restart_and_a_crash_of_the_gateway() {
    let departments = sim::spawn_all(population().clone(), [127, 0, 0, 1].into())
        .await
        .expect("departments start");
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |path, text| {
        let mut text = text.to_owned();
        for (department, port) in [
            (Department::Hukou, 18101),
            (Department::Shebao, 18102),
            (Department::Jisheng, 18103),
        ] {
            // The connector's base URL, and its department's upstream in gateway.yaml.
            if path == format!("county/connectors/{}.yaml", department.id())
                || path == "county/gateway.yaml"
            {
                let url = departments
                    .iter()
                    .find(|d| d.department == department)
                    .expect("every department runs")
                    .base_url();
                text = text.replace(&format!("http://127.0.0.1:{port}"), &url);
            }
        }
        // Small daily quotas that one user may use whole.
        match path {
            "policies/hukou.yaml" => text.replacen(
                "quota: { per_day: 500 }",
                "quota: { per_day: 2, per_user_per_day: 2 }",
                1,
            ),
            "policies/jisheng.yaml" => text.replacen(
                "quota: { per_day: 500 }",
                "quota: { per_day: 3, per_user_per_day: 3 }",
                1,
            ),
            _ => text,
        }
    });
    let data_dir = dir.path().join("data");
    let (issuer, _, public_pem) = SigningKey::generate_es256(demo::ISSUER).expect("key");
    gateway::datadir::create_dir(&data_dir.join("keys")).expect("keys dir");
    std::fs::write(data_dir.join("keys/county-demo-idp.pub.pem"), public_pem).expect("key");
    let persona = Persona {
        name: "clerk-zhao-lei",
        about: "a test caller",
        role: Role::Clerk,
        township: Some(TOWNSHIP),
        villages: &[],
        department: None,
    };
    let token = demo::persona_token(&issuer, &persona).expect("a token");
    let person = sample(SampleKind::MarriedParent);
    let household = lookup("hukou", "person_by_id", person.id.as_str());
    let births = lookup("jisheng", "fertility_by_id", person.id.as_str());
    let hukou_quota = "grant:hukou-birth-registration";
    let day = gateway::policy::china_today();
    // A quota starts again at midnight (China Standard Time): should the test run
    // across it, what it sees after is a new day, not a lost count.
    let same_day = || gateway::policy::china_today() == day;

    let (first, url) = serve(dir.path(), &data_dir).await;
    for _ in 0..2 {
        let reply = post_json(&url, &token, &household).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let reply = post_json(&url, &token, &household).await;
    reply.assert_problem(429, "rate-limited");
    assert_eq!(reply.json["limit"], hukou_quota);
    first.terminate().await;

    // Restarted cleanly: the day's count is still spent.
    let (second, url) = serve(dir.path(), &data_dir).await;
    let reply = post_json(&url, &token, &household).await;
    if !same_day() {
        testkit::skip(
            "daily quota counts survive a restart",
            "China's midnight passed during the test, so the day's counts started again",
            false,
        );
        return;
    }
    reply.assert_problem(429, "rate-limited");
    assert_eq!(reply.json["limit"], hukou_quota);
    // Another grant's quota, used up and then the process killed.
    for _ in 0..3 {
        let reply = post_json(&url, &token, &births).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    second.stop().await;

    let (third, url) = serve(dir.path(), &data_dir).await;
    let calls = departments
        .iter()
        .find(|d| d.department == Department::Jisheng)
        .expect("jisheng runs")
        .requests();
    let births_again = post_json(&url, &token, &births).await;
    let household_again = post_json(&url, &token, &household).await;
    let calls_after = departments
        .iter()
        .find(|d| d.department == Department::Jisheng)
        .expect("jisheng runs")
        .requests();
    third.terminate().await;
    if !same_day() {
        testkit::skip(
            "daily quota counts survive a restart",
            "China's midnight passed during the test, so the day's counts started again",
            false,
        );
        return;
    }
    births_again.assert_problem(429, "rate-limited");
    assert_eq!(
        births_again.json["limit"],
        "grant:jisheng-birth-registration"
    );
    household_again.assert_problem(429, "rate-limited");
    assert_eq!(
        calls_after, calls,
        "a refused lookup reached the department"
    );
}

/// A fill is charged for up to `max_rows` members; a bigger household is listed whole,
/// but the members past that are not looked up, and the form says so.
#[tokio::test]
async fn a_household_bigger_than_the_form_paid_for_is_listed_but_not_all_looked_up() {
    let gw = TestGateway::start_with(|path, text| rows_looked_up(path, text, 3)).await;
    let population = population();
    let (member, size) = population
        .residents()
        .filter_map(|p| {
            let household = population.household_of(p.id.as_str())?;
            (household.township == TOWNSHIP && household.members.len() >= 5)
                .then_some((p, household.members.len()))
        })
        .next()
        .expect("a household of five or more");
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let shebao = gw.department(Department::Shebao).requests();
    let (reply, _) =
        fill_with_headers(&gw, &clerk, "subsistence-allowance", member.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["complete"], false, "{}", reply.text);
    assert_eq!(gw.department(Department::Shebao).requests() - shebao, 3);
    let rows = reply.json["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == "members")
        .and_then(|s| s["rows"].as_array())
        .expect("rows");
    assert_eq!(rows.len(), size);
    for (i, row) in rows.iter().enumerate() {
        let fields = row["fields"].as_array().expect("fields");
        let pension = fields
            .iter()
            .find(|f| f["id"] == "resident_pension")
            .expect("the pension field");
        let name = fields.iter().find(|f| f["id"] == "name").expect("name");
        assert!(name["value"].is_string(), "row {i}: {name}");
        if i < 3 {
            assert!(pension.get("missing").is_none(), "row {i}: {pension}");
        } else {
            assert_eq!(pension["missing"]["reason"], "too_many_rows", "row {i}");
        }
    }
    let gaps = reply.json["missing"].as_array().expect("missing");
    assert!(
        gaps.iter()
            .any(|g| g["reason"] == "too_many_rows" && g["row"] == 3),
        "{gaps:?}"
    );
}
