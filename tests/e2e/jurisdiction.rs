//! Jurisdiction end to end: a clerk sees nothing that needs a grant about a person
//! who does not live in their township — through a lookup on any department, any
//! form, the household operations — and gets the same answer for a person registered
//! elsewhere as for a person nobody knows. Every person a released view discloses
//! (spouse, children) finds the access in their own report.

use crate::helpers::Edit as _;
use gateway::auth::Role;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, post_json, sample};

/// A township of the demo county other than [`TOWNSHIP`] (西河乡).
const ELSEWHERE: &str = "139901201";

/// A valid ID number that belongs to nobody in the synthetic county.
fn nobody() -> connectors::subject::IdNumber {
    connectors::subject::IdNumber::build(
        "139901",
        chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date"),
        999,
    )
    .expect("valid")
}

fn query(connector: &str, operation: &str, subject: Value, purpose: &str) -> Value {
    json!({
        "connector": connector,
        "operation": operation,
        "subject": subject,
        "purpose": purpose,
        "case_id": "JUR-0001",
    })
}

/// What an outsider learns from a refusal: everything but the request's own ids.
fn refusal(reply: &Reply) -> Value {
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["reason"], "jurisdiction", "{}", reply.text);
    let mut shown = reply.json.clone();
    if let Some(map) = shown.as_object_mut() {
        map.remove("request_id");
        map.remove("instance");
    }
    shown
}

#[tokio::test]
async fn a_person_elsewhere_and_a_person_nobody_knows_get_the_same_refusal_from_every_department() {
    let gw = TestGateway::start().await;
    // A 东岭镇 resident, looked up by a clerk of 西河乡.
    let resident = sample(SampleKind::MarriedParent);
    let outsider = gw.token(Role::Clerk, Some(ELSEWHERE));
    for (connector, operation, purpose) in [
        ("hukou", "person_by_id", "birth_registration"),
        ("jisheng", "fertility_by_id", "birth_registration"),
        ("shebao", "insured_by_id", "subsistence_allowance"),
        ("hukou", "household_by_member", "subsistence_allowance"),
    ] {
        let elsewhere = gw
            .query_as(
                &outsider,
                &query(
                    connector,
                    operation,
                    json!({"id_number": resident.id.as_str()}),
                    purpose,
                ),
            )
            .await;
        let unknown = gw
            .query_as(
                &outsider,
                &query(
                    connector,
                    operation,
                    json!({"id_number": nobody().as_str()}),
                    purpose,
                ),
            )
            .await;
        assert_eq!(
            refusal(&elsewhere),
            refusal(&unknown),
            "{connector}.{operation}: the answers tell a resident from nobody"
        );
        for leak in [resident.id.as_str(), resident.name.as_str()] {
            assert!(!elsewhere.text.contains(leak), "{}", elsewhere.text);
        }
    }
    // By household number, too.
    let household = gw
        .query_as(
            &outsider,
            &query(
                "hukou",
                "household",
                json!({"household_number": resident.household}),
                "subsistence_allowance",
            ),
        )
        .await;
    refusal(&household);

    // The clerk of the resident's own township is answered, by every department.
    for (connector, operation, purpose) in [
        ("jisheng", "fertility_by_id", "birth_registration"),
        ("shebao", "insured_by_id", "subsistence_allowance"),
    ] {
        let reply = gw
            .query(&query(
                connector,
                operation,
                json!({"id_number": resident.id.as_str()}),
                purpose,
            ))
            .await;
        assert_eq!(reply.status, 200, "{connector}: {}", reply.text);
    }
}

#[tokio::test]
async fn no_form_fills_anything_for_a_person_outside_the_callers_township() {
    // Six fills of the largest forms at once would pass the default per-user rate.
    let gw = TestGateway::start_with(|path, text| match path {
        "county/gateway.yaml" => text.edit(
            "per_user: { per_minute: 120, burst: 30 }",
            "per_user: { per_minute: 6000, burst: 1000 }",
        ),
        _ => text.to_owned(),
    })
    .await;
    let resident = sample(SampleKind::MarriedParent);
    let outsider = gw.token(Role::Clerk, Some(ELSEWHERE));
    let shebao = gw.department(Department::Shebao).requests();
    let jisheng = gw.department(Department::Jisheng).requests();
    for form in [
        "birth-registration",
        "subsistence-allowance",
        "rural-housing",
    ] {
        let url = gw.url(&format!("/v1/forms/{form}/fill"));
        let body = json!({"subject": {"id_number": resident.id.as_str()}, "case_id": "JUR-0002"});
        let reply = post_json(&url, &outsider, &body).await;
        let elsewhere = refusal(&reply);
        assert!(reply.json.get("sections").is_none(), "{}", reply.text);
        for leak in [resident.id.as_str(), resident.name.as_str()] {
            assert!(!reply.text.contains(leak), "{form}: {}", reply.text);
        }
        let body = json!({"subject": {"id_number": nobody().as_str()}, "case_id": "JUR-0002"});
        let unknown = post_json(&url, &outsider, &body).await;
        assert_eq!(elsewhere, refusal(&unknown), "{form}");
    }
    // Checked before any department was asked: only the household register (户籍),
    // which says where people live, was.
    assert_eq!(gw.department(Department::Shebao).requests(), shebao);
    assert_eq!(gw.department(Department::Jisheng).requests(), jisheng);

    // The check is in the audit log, and the officer sees it flagged.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"filter": {"id_number": resident.id.as_str()}}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let events = found.json["events"].as_array().expect("events");
    assert_eq!(events.len(), 3, "one check per form: {}", found.text);
    assert!(
        events.iter().all(|e| e["jurisdiction"] == "outside"
            && e["subject_township"] == TOWNSHIP
            && e["fields_returned"] == json!([])),
        "{}",
        found.text
    );
}

#[tokio::test]
async fn the_spouse_and_children_a_fill_discloses_each_find_it_in_their_own_report() {
    let gw = TestGateway::start().await;
    let parent = sample(SampleKind::MarriedParent);
    let spouse = parent.fertility.spouse.as_ref().expect("married");
    let children = &parent.fertility.children;
    assert!(!children.is_empty());
    let url = gw.url("/v1/forms/birth-registration/fill");
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let body = json!({"subject": {"id_number": parent.id.as_str()}, "case_id": "JUR-0003"});
    let filled = post_json(&url, &token, &body).await;
    assert_eq!(filled.status, 200, "{}", filled.text);
    assert!(filled.text.contains(children[0].name.as_str()));

    let officer = gw.token(Role::PrivacyOfficer, None);
    for (who, id) in
        std::iter::once(("spouse", &spouse.id)).chain(children.iter().map(|c| ("child", &c.id)))
    {
        let report = post_json(
            &gw.url("/v1/audit/report"),
            &officer,
            &json!({"id_number": id.as_str()}),
        )
        .await;
        assert_eq!(report.status, 200, "{}", report.text);
        let accesses = report.json["accesses"].as_array().expect("accesses");
        let through_parent: Vec<&Value> = accesses
            .iter()
            .filter(|a| a["shown_as"] == "linked" && a["connector"] == "jisheng")
            .collect();
        assert_eq!(through_parent.len(), 1, "{who}: {}", report.text);
        let fields = through_parent[0]["fields"].as_array().expect("fields");
        let expected = if who == "spouse" {
            "spouse.name"
        } else {
            "children[].name"
        };
        assert!(fields.contains(&json!(expected)), "{who}: {}", report.text);
        assert_eq!(through_parent[0]["case_id"], "JUR-0003");

        // And the officer's search by citizen finds the same access.
        let found = post_json(
            &gw.url("/v1/audit/search"),
            &officer,
            &json!({"filter": {"id_number": id.as_str(), "connector": "jisheng"}}),
        )
        .await;
        let events = found.json["events"].as_array().expect("events");
        assert!(!events.is_empty(), "{who}: {}", found.text);
    }
}

#[tokio::test]
async fn a_household_counts_its_current_members_only_and_says_so() {
    let gw = TestGateway::start().await;
    let population = crate::helpers::population();
    // A 东岭镇 household with a member who moved out or died, filled for a member
    // still registered.
    let (household, applicant) = population
        .households
        .iter()
        .filter(|h| h.township == TOWNSHIP)
        .find_map(|h| {
            let members: Vec<_> = population
                .people
                .iter()
                .filter(|p| p.household == h.number)
                .collect();
            let gone = members
                .iter()
                .any(|p| p.status != sim::ResidentStatus::Normal);
            let here = members
                .iter()
                .find(|p| p.status == sim::ResidentStatus::Normal);
            if gone { here.map(|p| (h, *p)) } else { None }
        })
        .expect("a household with a member gone");
    let current = population
        .people
        .iter()
        .filter(|p| p.household == household.number && p.status == sim::ResidentStatus::Normal)
        .count();
    let url = gw.url("/v1/forms/subsistence-allowance/fill");
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let body = json!({"subject": {"id_number": applicant.id.as_str()}, "case_id": "JUR-0004"});
    let filled = post_json(&url, &token, &body).await;
    assert_eq!(filled.status, 200, "{}", filled.text);
    let size = filled.json["sections"][0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["id"] == "household_size")
        .expect("household_size")
        .clone();
    assert_eq!(size["value"], json!(current), "{size}");
    assert_eq!(size["counted"], json!({"status": "normal"}), "{size}");
}

#[tokio::test]
async fn a_form_for_a_person_no_department_knows_says_so_and_is_audited() {
    // Grants that hold county-wide: nothing to hide about who exists.
    let gw = TestGateway::start_with(|path, text| {
        if path.starts_with("policies/") {
            text.edit("    jurisdiction: township\n", "")
        } else {
            text.to_owned()
        }
    })
    .await;
    let url = gw.url("/v1/forms/birth-registration/fill");
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let body = json!({"subject": {"id_number": nobody().as_str()}, "case_id": "JUR-0005"});
    let reply = post_json(&url, &token, &body).await;
    reply.assert_problem(404, "person-unknown");
    assert!(!reply.text.contains(nobody().as_str()));
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"filter": {"id_number": nobody().as_str()}}),
    )
    .await;
    let events = found.json["events"].as_array().expect("events");
    assert!(!events.is_empty(), "{}", found.text);
    assert!(
        events.iter().all(|e| e["outcome"]["status"] == 404),
        "{}",
        found.text
    );
}
