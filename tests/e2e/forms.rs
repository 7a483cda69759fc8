//! Auto-filled forms end to end: a clerk fills a form for a citizen and gets every
//! field with its source and age, or the reason it has none; the departments are
//! asked at once (not one after another), once per person however many clerks fill
//! the same form; one department down or hanging costs only its own fields; the cache
//! never widens a view; and every department lookup is in the audit log under the
//! fill's request id.

use crate::helpers::Edit as _;
use std::collections::BTreeMap;
use std::time::Duration;

use gateway::auth::Role;
use serde_json::{Value, json};
use sim::{Department, Faults, SampleKind};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, lookup, population, post_json, sample};

/// Reasons a field may lack a value because of the policy or the person's record —
/// not because a department failed.
const POLICY_REASONS: [&str; 7] = [
    "not_granted",
    "never_shared",
    "denied_by_rule",
    "row_condition",
    "not_found",
    "no_subject",
    "masked",
];

const CASE_ID: &str = "SYDJ-2026-0042";

fn fill_body(id_number: &str) -> Value {
    json!({"subject": {"id_number": id_number}, "case_id": CASE_ID})
}

/// Fills `form` for `id_number` with this bearer token.
async fn fill_as(gw: &TestGateway, token: &str, form: &str, id_number: &str) -> Reply {
    let url = gw.url(&format!("/v1/forms/{form}/fill"));
    post_json(&url, token, &fill_body(id_number)).await
}

/// Fills `form` for `id_number` as a clerk of [`TOWNSHIP`].
async fn fill(gw: &TestGateway, form: &str, id_number: &str) -> Reply {
    fill_as(gw, &gw.token(Role::Clerk, Some(TOWNSHIP)), form, id_number).await
}

/// `GET /v1/forms` with this bearer token.
async fn list_forms(gw: &TestGateway, token: &str) -> Reply {
    let request = gw.client.get(gw.url("/v1/forms")).bearer_auth(token);
    Reply::read(request.send().await.expect("an answer")).await
}

/// Every field of a filled form as (section id, field), rows flattened.
fn fields(body: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for section in body["sections"].as_array().expect("sections") {
        let id = section["id"].as_str().expect("section id").to_owned();
        for field in section["fields"].as_array().into_iter().flatten() {
            out.push((id.clone(), field));
        }
        for row in section["rows"].as_array().into_iter().flatten() {
            for field in row["fields"].as_array().expect("row fields") {
                out.push((id.clone(), field));
            }
        }
    }
    out
}

/// The named field of a section that is not repeated.
fn field<'a>(body: &'a Value, section: &str, id: &str) -> &'a Value {
    body["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == section)
        .and_then(|s| s["fields"].as_array())
        .and_then(|fs| fs.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no field {section}/{id}"))
}

fn is_input(field: &Value) -> bool {
    field["input"] == true
}

/// The connector a field's value came from, if it has one.
fn source(field: &Value) -> Option<&str> {
    field["source"]["connector"].as_str()
}

/// The reason a field has no value, if it has none.
fn missing_reason(field: &Value) -> Option<&str> {
    field["missing"]["reason"].as_str()
}

/// Lookups of a fill per connector.
fn lookups_per_connector(body: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in body["lookups"].as_array().expect("lookups") {
        let connector = l["connector"].as_str().expect("connector").to_owned();
        *out.entry(connector).or_insert(0) += 1;
    }
    out
}

/// Every run of 18 characters in `text` that is a valid ID number in clear.
fn clear_ids(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(18)
        .map(|w| w.iter().collect::<String>())
        .filter(|candidate| connectors::subject::IdNumber::parse(candidate).is_ok())
        .collect()
}

/// The demo's birth-registration form without its spouse section: every lookup it
/// makes can start at once (the spouse's needs the births record first).
fn without_spouse(path: &str, text: &str) -> String {
    if path != "forms/birth-registration.yaml" {
        return text.to_owned();
    }
    let start = text.find("  - id: spouse\n").expect("a spouse section");
    let end = text.find("  - id: children\n").expect("a children section");
    assert!(start < end);
    format!("{}{}", &text[..start], &text[end..])
}

#[tokio::test]
async fn departments_are_asked_at_once_so_a_form_takes_the_slowest_not_the_sum() {
    // Long department time limits and form deadline: asked one after another, the
    // second department would not hear of the fill while the first still hangs.
    let gw = TestGateway::start_with(|path, text| {
        let text = if path.starts_with("county/connectors/") {
            text.edit("total_ms: 3000", "total_ms: 30000")
        } else if path == "forms/birth-registration.yaml" {
            text.edit("deadline_ms: 2500", "deadline_ms: 30000")
        } else {
            text.to_owned()
        };
        without_spouse(path, &text)
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let reply = fill_as(&gw, &token, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["complete"], true, "{}", reply.text);
    assert!(
        body["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .all(|s| s["id"] != "spouse")
    );
    // All three departments were asked, each once.
    let per_connector = lookups_per_connector(body);
    assert_eq!(
        per_connector,
        BTreeMap::from([
            ("hukou".into(), 1),
            ("jisheng".into(), 1),
            ("shebao".into(), 1)
        ]),
        "{}",
        reply.text
    );
    for (section, f) in fields(body) {
        let ok = is_input(f)
            || source(f).is_some()
            || missing_reason(f).is_some_and(|r| POLICY_REASONS.contains(&r));
        assert!(ok, "{section}/{f}");
    }

    // Proved at the departments: 社保 and 计生 each hold their answer until both
    // have been asked about a second person (nothing cached). Asked one after the
    // other, the first would wait for the second until the form's deadline, and the
    // form would come back incomplete.
    let other = population()
        .people
        .iter()
        .find(|p| {
            p.id != person.id
                && population()
                    .household(&p.household)
                    .is_some_and(|h| h.township == TOWNSHIP)
                && p.status == sim::ResidentStatus::Normal
        })
        .expect("another resident");
    let meeting = sim::Rendezvous::new(2);
    for department in [Department::Shebao, Department::Jisheng] {
        gw.department(department)
            .faults
            .meet_at(Some(meeting.clone()));
    }
    let reply = fill_as(&gw, &token, "birth-registration", other.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["complete"], true, "{}", reply.text);
    assert_eq!(meeting.arrived(), 2, "both departments were asked");
}

#[tokio::test]
async fn a_department_down_costs_only_its_own_fields() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    gw.set_faults(
        Department::Shebao,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let reply = fill(&gw, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["complete"], false, "{}", reply.text);

    // The insurance fields say the department is unavailable, and which.
    for id in ["employee_medical", "resident_medical"] {
        let f = field(body, "applicant", id);
        assert_eq!(f["value"], Value::Null);
        assert_eq!(
            f["missing"],
            json!({"reason": "department_unavailable", "connector": "shebao"}),
            "{f}"
        );
        assert!(f.get("source").is_none());
        let gap = json!({"section": "applicant", "field": id, "reason": "department_unavailable"});
        assert!(
            body["missing"].as_array().expect("missing").contains(&gap),
            "{}",
            body["missing"]
        );
    }
    // Everything from the other departments is there.
    for (section, f) in fields(body) {
        let id = f["id"].as_str().expect("id");
        if is_input(f) || ["employee_medical", "resident_medical"].contains(&id) {
            continue;
        }
        let from = source(f).unwrap_or_else(|| panic!("{section}/{id} has no value: {f}"));
        assert!(
            from == "hukou" || from == "jisheng",
            "{section}/{id} from {from}"
        );
    }
    let shebao: Vec<&Value> = body["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .filter(|l| l["connector"] == "shebao")
        .collect();
    assert_eq!(shebao.len(), 1);
    assert_eq!(shebao[0]["outcome"], "upstream-error");
    assert_eq!(shebao[0]["reason"], "department_unavailable");
    assert!(
        !reply.text.contains("系统繁忙"),
        "the department's message leaked"
    );
}

#[tokio::test]
async fn a_hanging_department_is_cut_off_at_the_forms_deadline() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    gw.set_faults(
        Department::Shebao,
        Faults {
            hang: true,
            ..Faults::default()
        },
    );
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    // The department hangs and never answers: the fill answering at all is the
    // deadline at work; the hanging department's fields say so below.
    let reply = fill_as(&gw, &token, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["deadline_ms"].as_u64(), Some(2_500));
    assert_eq!(body["complete"], false, "{}", reply.text);
    for id in ["employee_medical", "resident_medical"] {
        let f = field(body, "applicant", id);
        assert_eq!(
            f["missing"],
            json!({"reason": "timed_out", "connector": "shebao"}),
            "{f}"
        );
    }
    for (section, f) in fields(body) {
        let id = f["id"].as_str().expect("id");
        if is_input(f) || ["employee_medical", "resident_medical"].contains(&id) {
            continue;
        }
        assert!(source(f).is_some(), "{section}/{id} has no value: {f}");
    }
    let timed_out = body["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .find(|l| l["connector"] == "shebao")
        .expect("the shebao lookup");
    assert_eq!(timed_out["outcome"], "upstream-timeout");
    assert_eq!(timed_out["reason"], "timed_out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_clerks_filling_one_household_ask_each_department_once_per_person() {
    // Limits high enough that none of them is what this test sees.
    let gw = TestGateway::start_with(|path, text| match path {
        // A fill counts its form's most lookups (21): 100 fills at once are 2,100.
        "county/gateway.yaml" => text
            .edit(
                "per_user: { per_minute: 120, burst: 30 }",
                "per_user: { per_minute: 60000, burst: 4000 }",
            )
            .edit(
                "per_township: { per_minute: 1200, burst: 200 }",
                "per_township: { per_minute: 60000, burst: 4000 }",
            ),
        "policies/hukou.yaml" | "policies/shebao.yaml" => {
            text.edit("per_day: 300 }", "per_day: 100000 }")
        }
        "policies/minzheng.yaml" => text.edit("per_day: 600 }", "per_day: 100000 }"),
        // A hundred fills at once keep a debug build's two cores busy for seconds:
        // this test counts department calls, so no fill may hit its deadline.
        "forms/subsistence-allowance.yaml" => text.edit("deadline_ms: 2500", "deadline_ms: 30000"),
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let household = population()
        .household(&person.household)
        .expect("household");
    for department in [Department::Hukou, Department::Shebao, Department::Jisheng] {
        gw.set_faults(
            department,
            Faults {
                latency_ms: 100,
                ..Faults::default()
            },
        );
    }
    let before: Vec<u64> = gw.departments.iter().map(|d| d.requests()).collect();
    let url = gw.url("/v1/forms/subsistence-allowance/fill");
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    // One client for all (making a client per request costs more than the fills).
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let request = gw
                .client
                .post(&url)
                .bearer_auth(&token)
                .json(&fill_body(person.id.as_str()));
            tokio::spawn(async move { Reply::read(request.send().await.expect("an answer")).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in futures::future::join_all(tasks).await {
        replies.push(task.expect("the fill task"));
    }
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["complete"], true, "{}", reply.text);
    }
    // One fill asks hukou for the household, shebao and minzheng for every member.
    let one = lookups_per_connector(&replies[0].json);
    assert_eq!(one.get("hukou"), Some(&1), "{one:?}");
    for connector in ["shebao", "minzheng"] {
        assert_eq!(
            one.get(connector),
            Some(&(household.members.len() as u64)),
            "{one:?}"
        );
    }
    for (d, before) in gw.departments.iter().zip(before) {
        let mut expected = one.get(d.department.id()).copied().unwrap_or(0);
        if d.department == Department::Hukou {
            // Once more, before anything else: where the subject lives.
            expected += 1;
        }
        assert_eq!(
            d.requests() - before,
            expected,
            "{} was asked {} times for 100 fills",
            d.department.id(),
            d.requests() - before
        );
    }
    // Exactly the lookups that reached a department and found a record say they were
    // not cache hits (one who has no 低保 is `not_found`, which names no cache).
    let misses = replies
        .iter()
        .flat_map(|r| r.json["lookups"].as_array().expect("lookups"))
        .filter(|l| l["cache_hit"] == false)
        .count() as u64;
    let found = replies[0].json["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .filter(|l| l["outcome"] == "ok")
        .count() as u64;
    assert!(found > one.get("hukou").copied().unwrap_or(0));
    assert_eq!(misses, found);
}

#[tokio::test]
async fn a_cached_record_is_served_to_a_narrower_grant_narrowed() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let calls = gw.department(Department::Hukou).requests();

    // A clerk registering a birth: the name in full, the exact date of birth.
    let broad = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(broad.status, 200, "{}", broad.text);
    assert_eq!(broad.json["cache_hit"], false);
    assert_eq!(broad.json["data"]["name"], person.name);
    assert_eq!(
        broad.json["data"]["birth_date"],
        person.birth_date.to_string()
    );

    // A grid worker of the same township, for the old-age allowance, within the TTL.
    let grid = gw.token(Role::GridWorker, Some(TOWNSHIP));
    let mut body = lookup("hukou", "person_by_id", person.id.as_str());
    body["purpose"] = json!("elderly_allowance");
    let narrow = gw.query_as(&grid, &body).await;
    assert_eq!(narrow.status, 200, "{}", narrow.text);
    assert_eq!(narrow.json["cache_hit"], true, "{}", narrow.text);
    assert_eq!(narrow.json["fetched_at"], broad.json["fetched_at"]);
    assert!(narrow.json["age_s"].as_u64().is_some());
    let name = narrow.json["data"]["name"].as_str().expect("name");
    assert_ne!(name, person.name);
    assert!(name.contains('*'), "{name}");
    assert_eq!(narrow.json["fields"]["name"]["mask"], "name");
    assert_eq!(narrow.json["fields"]["birth_date"]["mask"], "age_band");
    let band = narrow.json["data"]["birth_date"].as_str().expect("band");
    assert_ne!(band, person.birth_date.to_string());
    assert!(!narrow.text.contains(&person.name));
    assert!(!narrow.text.contains(&person.birth_date.to_string()));
    // Not granted to a grid worker at all: the household number.
    assert!(narrow.json["data"].get("household_number").is_none());
    let broad_address = broad.json["data"]["address"].as_str().expect("address");
    let narrow_address = narrow.json["data"]["address"].as_str().expect("address");
    assert!(
        broad_address.starts_with(narrow_address) && broad_address != narrow_address,
        "{narrow_address} is not cut further than {broad_address}"
    );

    // A clerk of another township: the record is cached, the jurisdiction still holds.
    let other = gw.token(Role::Clerk, Some("139901201"));
    let refused = gw
        .query_as(&other, &lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    refused.assert_problem(403, "forbidden");
    assert_eq!(refused.json["reason"], "jurisdiction");
    assert!(!refused.text.contains(&person.name));

    assert_eq!(gw.department(Department::Hukou).requests() - calls, 1);
}

#[tokio::test]
async fn every_value_names_its_source_and_age_and_the_spouse_shows_masked() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let spouse = person.fertility.spouse.as_ref().expect("a spouse");
    // The household register was read a while ago (the gateway's clock is moved
    // on, not waited for): its values come from the cache and say how old they are.
    let earlier = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(earlier.status, 200, "{}", earlier.text);
    gw.clock.advance(Duration::from_secs(2));
    let reply = fill(&gw, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    let name = field(body, "applicant", "name");
    assert_eq!(name["fetched_at"], earlier.json["fetched_at"]);
    assert!(name["age_s"].as_u64().expect("age_s") >= 1, "{name}");
    let married = field(body, "applicant", "marital_status");
    assert!(married["fetched_at"].as_str() > name["fetched_at"].as_str());
    let own_hukou = body["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .find(|l| l["connector"] == "hukou" && l["subject"] != "linked")
        .expect("the applicant's hukou lookup");
    assert_eq!(own_hukou["cache_hit"], true);
    assert_eq!(body["form"]["id"], "birth-registration");
    assert_eq!(body["purpose"]["code"], "birth_registration");
    assert_eq!(body["case_id"], CASE_ID);
    assert_eq!(body["subject"], person.id.masked());

    let departments = [
        ("hukou", "county-psb"),
        ("shebao", "county-hrss"),
        ("jisheng", "county-hc"),
    ];
    let mut valued = 0;
    for (section, f) in fields(body) {
        let id = f["id"].as_str().expect("id");
        if is_input(f) {
            assert_eq!(f["value"], Value::Null);
            assert_eq!(f["verified"], false);
            continue;
        }
        let Some(connector) = source(f) else {
            let reason = missing_reason(f).unwrap_or_else(|| panic!("{section}/{id}: {f}"));
            assert!(POLICY_REASONS.contains(&reason), "{section}/{id}: {f}");
            continue;
        };
        valued += 1;
        let (_, department) = departments
            .iter()
            .find(|(c, _)| *c == connector)
            .unwrap_or_else(|| panic!("{section}/{id} from an unknown connector"));
        assert_eq!(f["source"]["department"]["id"], *department, "{f}");
        assert!(f["source"]["department"]["name"].as_str().is_some());
        assert!(f["source"]["operation"].as_str().is_some());
        let fetched_at = f["fetched_at"].as_str().expect("fetched_at");
        assert!(
            chrono::DateTime::parse_from_rfc3339(fetched_at).is_ok(),
            "{section}/{id}: {fetched_at}"
        );
        assert!(f["age_s"].as_u64().is_some(), "{section}/{id}: {f}");
        assert_eq!(f["verified"], true);
        match f["masked"].as_bool().expect("masked") {
            true => assert!(f["mask"].as_str().is_some(), "{f}"),
            false => assert!(f.get("mask").is_none(), "{f}"),
        }
    }
    assert!(valued >= 10, "only {valued} fields have values");

    // The address is cut to the village as the grant says.
    let address = field(body, "applicant", "address");
    assert_eq!(address["masked"], true);
    assert_eq!(address["mask"], "address_to");

    // The spouse: shown by the masked link only, no ID number in clear anywhere.
    let section = body["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == "spouse")
        .expect("a spouse section");
    let shown = section["subject"].as_str().expect("the spouse as linked");
    assert_eq!(shown, spouse.id.masked());
    assert!(clear_ids(&section.to_string()).is_empty(), "{section}");
    assert!(!reply.text.contains(spouse.id.as_str()));
    // The only ID number in clear is the applicant's own, which the clerk typed.
    for id in clear_ids(&reply.text) {
        assert_eq!(id, person.id.as_str());
    }
    let linked = body["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .filter(|l| l["subject"] == "linked")
        .count();
    assert_eq!(linked, 1, "{}", body["lookups"]);
}

#[tokio::test]
async fn each_caller_lists_only_the_forms_a_grant_gives_them() {
    let gw = TestGateway::start().await;
    let mut demo = vec![
        "birth-registration",
        "elderly-allowance",
        "rural-housing",
        "subsistence-allowance",
    ];
    demo.sort_unstable();
    for role in [Role::Clerk, Role::TownshipLead] {
        let reply = list_forms(&gw, &gw.token(role, Some(TOWNSHIP))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let forms = reply.json["forms"].as_array().expect("forms");
        let mut ids: Vec<&str> = forms
            .iter()
            .map(|f| f["id"].as_str().expect("id"))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, demo, "{role:?}");
        for form in forms {
            assert_eq!(form["deadline_ms"], 2_500);
            assert!(form["purpose"]["code"].as_str().is_some());
            assert!(form["purpose"]["name"].as_str().is_some());
            let sections = form["sections"].as_array().expect("sections");
            assert!(!sections.is_empty());
            for field in sections
                .iter()
                .flat_map(|s| s["fields"].as_array().expect("fields"))
            {
                assert!(field["input"].is_boolean(), "{field}");
                assert!(field["type"].as_str().is_some(), "{field}");
            }
        }
    }
    let birth = list_forms(&gw, &gw.token(Role::Clerk, Some(TOWNSHIP))).await;
    let birth = birth.json["forms"]
        .as_array()
        .expect("forms")
        .iter()
        .find(|f| f["id"] == "birth-registration")
        .cloned()
        .expect("birth registration");
    assert_eq!(birth["purpose"]["code"], "birth_registration");
    assert_eq!(birth["purpose"]["name"], "生育登记");
    let repeated: Vec<&Value> = birth["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter(|s| s["repeated"] == true)
        .map(|s| &s["id"])
        .collect();
    assert_eq!(repeated, [&json!("children")]);

    // A grid worker's only grants are for the old-age allowance: its form only.
    let grid = list_forms(&gw, &gw.token(Role::GridWorker, Some(TOWNSHIP))).await;
    assert_eq!(grid.status, 200, "{}", grid.text);
    let ids: Vec<&Value> = grid.json["forms"]
        .as_array()
        .expect("forms")
        .iter()
        .map(|f| &f["id"])
        .collect();
    assert_eq!(ids, [&json!("elderly-allowance")], "{}", grid.text);
    // Privacy officers and department admins look nothing up.
    for (role, township) in [(Role::PrivacyOfficer, None), (Role::DeptAdmin, None)] {
        let reply = list_forms(&gw, &gw.token(role, township)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["forms"], json!([]), "{role:?}");
    }
    let anonymous = Reply::read(
        gw.client
            .get(gw.url("/v1/forms"))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    anonymous.assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn bad_fills_are_clear_errors_that_echo_nothing() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    let wrong = if id.ends_with('0') { '1' } else { '0' };
    let bad_id = format!("{}{wrong}", &id[..17]);
    let hukou = gw.department(Department::Hukou).requests();
    let mut bodies = Vec::new();

    let unknown = fill(&gw, "zz-no-such-form-4711", id).await;
    unknown.assert_problem(404, "unknown-form");
    assert!(
        !unknown.text.contains("zz-no-such-form-4711"),
        "{}",
        unknown.text
    );
    bodies.push(unknown);
    // An ID number where the form id goes is not echoed either.
    let smuggled = fill(&gw, id, id).await;
    smuggled.assert_problem(404, "unknown-form");
    bodies.push(smuggled);

    let grid = gw.token(Role::GridWorker, Some(TOWNSHIP));
    let refused = fill_as(&gw, &grid, "birth-registration", id).await;
    refused.assert_problem(403, "forbidden");
    assert_eq!(refused.json["reason"], "not_granted");
    bodies.push(refused);

    let invalid = fill(&gw, "birth-registration", &bad_id).await;
    invalid.assert_problem(400, "invalid-id-number");
    bodies.push(invalid);

    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let url = gw.url("/v1/forms/birth-registration/fill");
    for body in [
        json!({"subject": {"id_number": id}}),
        json!({"subject": {"id_number": id}, "case_id": CASE_ID, "extra": id}),
        json!({"subject": {"household_number": "205000006"}, "case_id": CASE_ID}),
        json!({"subject": {"id_number": id}, "case_id": format!("case {id}")}),
        json!([id]),
    ] {
        let reply = post_json(&url, &token, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.content_type, "application/problem+json");
        bodies.push(reply);
    }

    for reply in &bodies {
        for leak in [id, bad_id.as_str(), person.name.as_str()] {
            assert!(!reply.text.contains(leak), "{leak} echoed: {}", reply.text);
        }
        assert!(clear_ids(&reply.text).is_empty(), "{}", reply.text);
    }
    assert_eq!(
        gw.department(Department::Hukou).requests(),
        hukou,
        "a refused fill asked a department"
    );
}

#[tokio::test]
async fn a_privacy_officer_finds_every_lookup_of_a_fill_under_its_request_id() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let spouse = person.fertility.spouse.as_ref().expect("a spouse");
    let reply = fill(&gw, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let request_id = reply.json["request_id"].as_str().expect("request_id");
    let lookups = reply.json["lookups"].as_array().expect("lookups");

    let officer = gw.token(Role::PrivacyOfficer, None);
    let search = |id: &str| {
        let body = json!({"filter": {"id_number": id}});
        let url = gw.url("/v1/audit/search");
        let officer = officer.clone();
        async move { post_json(&url, &officer, &body).await }
    };

    // The applicant: one event per lookup made for them, all under the fill's id.
    let found = search(person.id.as_str()).await;
    assert_eq!(found.status, 200, "{}", found.text);
    let all: Vec<&Value> = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["request_id"] == request_id)
        .collect();
    // First, before any department was asked: where the applicant lives (the
    // household register was asked; nothing of it was shown).
    let (checks, events): (Vec<&Value>, Vec<&Value>) = all
        .into_iter()
        .partition(|e| e["fields_returned"] == json!([]) && e["jurisdiction"] == "inside");
    assert_eq!(checks.len(), 1, "{}", found.text);
    assert_eq!(checks[0]["connector"], "hukou");
    assert_eq!(checks[0]["subject_township"], TOWNSHIP);
    let own: Vec<&Value> = lookups
        .iter()
        .filter(|l| l["subject"] != "linked")
        .collect();
    assert_eq!(events.len(), own.len(), "{}", found.text);
    assert_eq!(events.len(), 3);
    let mut audited: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "lookup");
            assert_eq!(e["form"], "birth-registration");
            assert_eq!(e["purpose"], "birth_registration");
            assert_eq!(e["case_id"], CASE_ID);
            assert_eq!(e["outcome"]["status"], 200);
            assert_eq!(e["subject_masked"], person.id.masked());
            (
                e["connector"].as_str().expect("connector").to_owned(),
                e["operation"].as_str().expect("operation").to_owned(),
            )
        })
        .collect();
    audited.sort();
    let mut filled: Vec<(String, String)> = own
        .iter()
        .map(|l| {
            (
                l["connector"].as_str().expect("connector").to_owned(),
                l["operation"].as_str().expect("operation").to_owned(),
            )
        })
        .collect();
    filled.sort();
    assert_eq!(audited, filled);
    assert!(!found.text.contains(person.id.as_str()));

    // The spouse, looked up through the link, is in the log under the same fill.
    let theirs = search(spouse.id.as_str()).await;
    let events: Vec<&Value> = theirs.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["request_id"] == request_id)
        .collect();
    // Looked up through the link (户籍), and shown in the applicant's births
    // record (计生): both found by the spouse's ID number.
    assert_eq!(events.len(), 2, "{}", theirs.text);
    let hukou = events
        .iter()
        .find(|e| e["connector"] == "hukou")
        .expect("the spouse's own lookup");
    assert_eq!(hukou["form"], "birth-registration");
    assert_eq!(hukou["jurisdiction"], "linked");
    let shown = events
        .iter()
        .find(|e| e["connector"] == "jisheng")
        .expect("the applicant's births record");
    assert_eq!(shown["subject_masked"], person.id.masked());
    let spouse_pseudonym = hukou["subject_pseudonym"].clone();
    let linked = shown["linked"]
        .as_array()
        .expect("linked")
        .iter()
        .find(|l| l["pseudonym"] == spouse_pseudonym)
        .expect("the spouse among the linked");
    assert!(
        linked["fields"]
            .as_array()
            .expect("fields")
            .contains(&json!("spouse.name"))
    );
    assert!(!theirs.text.contains(spouse.id.as_str()));

    assert!(gateway::audit::verify(&gw.data_dir.path().join("data")).is_ok());
}

#[tokio::test]
async fn what_the_policy_withholds_is_a_reason_not_an_incomplete_form() {
    // A county whose household-register grant has a row condition (not jurisdiction)
    // and whose births grant holds county-wide: a form for a resident of another
    // township fills what the births record gives and says why the rest is missing.
    let gw = TestGateway::start_with(|path, text| match path {
        "policies/hukou.yaml" => text.edit(
            "    jurisdiction: township\n",
            "    row: { field: township_code, equals: caller_township }\n",
        ),
        "policies/jisheng.yaml" => text.edit("    jurisdiction: township\n", ""),
        _ => text.to_owned(),
    })
    .await;
    let person = sample(SampleKind::MarriedParent);
    let other = gw.token(Role::Clerk, Some("139901201"));
    let reply = fill_as(&gw, &other, "birth-registration", person.id.as_str()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["complete"], true, "{}", reply.text);
    let name = field(body, "applicant", "name");
    assert_eq!(
        name["missing"],
        json!({"reason": "row_condition", "rule": "hukou-birth-registration", "connector": "hukou"})
    );
    assert_eq!(
        field(body, "applicant", "marital_status")["source"]["connector"],
        "jisheng"
    );
    for (section, f) in fields(body) {
        if let Some(reason) = missing_reason(f) {
            assert!(POLICY_REASONS.contains(&reason), "{section}: {f}");
        }
    }
    assert!(
        !reply.text.contains(&person.name),
        "the row condition leaked the name"
    );
    let hukou = body["lookups"]
        .as_array()
        .expect("lookups")
        .iter()
        .find(|l| l["connector"] == "hukou")
        .expect("the hukou lookup");
    assert_eq!(hukou["outcome"], "forbidden");
    assert_eq!(hukou["reason"], "row_condition");
}
