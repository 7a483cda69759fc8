//! Lookups under the demo county's policies, one per department: granted fields
//! masked as the grant says, every returned field naming its rule, withheld fields
//! with their reason, `never` fields nowhere, and refusals naming the deciding rule.

use crate::helpers::Edit as _;
use gateway::auth::Role;
use serde_json::json;
use sim::SampleKind;

use crate::helpers::{TOWNSHIP, TestGateway, lookup, population, sample};

#[tokio::test]
async fn a_clerk_registering_a_birth_sees_a_masked_registration_of_their_own_township() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let household = population()
        .household(&person.household)
        .expect("household");

    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    let data = &reply.json["data"];
    assert_eq!(data["id_number"], person.id.as_str());
    assert_eq!(data["name"], person.name);
    assert_eq!(data["township_code"], household.township);
    // The address is cut to the village: the 组/号 part never leaves.
    let address = data["address"].as_str().expect("address");
    assert!(household.address.starts_with(address), "{address}");
    assert!(
        address.ends_with('村') || address.ends_with("社区"),
        "{address}"
    );
    assert_eq!(
        reply.json["fields"]["address"],
        json!({"mask": "address_to", "rule": "hukou-birth-registration"})
    );
    assert_eq!(
        reply.json["fields"]["gender"],
        json!({"mask": "keep", "rule": "open"})
    );
    let withheld = reply.json["withheld"].as_array().expect("withheld");
    assert!(withheld.contains(
        &json!({"field": "status_changed_on", "sharing": "conditional", "reason": "not_granted"})
    ));
    assert!(
        reply.json["decision"]["rules"]
            .as_array()
            .expect("rules")
            .contains(&json!("hukou-birth-registration"))
    );
    assert!(reply.json["decision"]["policy_version"].as_str().is_some());
}

#[tokio::test]
async fn a_clerk_of_another_township_is_refused_by_jurisdiction() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let other = gw.token(Role::Clerk, Some("139901201"));
    let reply = gw
        .query_as(&other, &lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["rule"], "hukou-birth-registration");
    assert_eq!(reply.json["reason"], "jurisdiction");
    assert!(!reply.text.contains(person.id.as_str()));
    assert!(!reply.text.contains(&person.name));
}

#[tokio::test]
async fn roles_and_deny_rules_refuse_before_any_department_is_called() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let calls = gw.department(sim::Department::Hukou).requests();

    let officer = gw.token(Role::PrivacyOfficer, None);
    let reply = gw
        .query_as(
            &officer,
            &lookup("hukou", "person_by_id", person.id.as_str()),
        )
        .await;
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["rule"], "lookup-roles");

    let grid = gw.token(Role::GridWorker, Some(TOWNSHIP));
    let mut body = lookup("hukou", "household_by_member", person.id.as_str());
    body["purpose"] = json!("subsistence_allowance");
    let reply = gw.query_as(&grid, &body).await;
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["rule"], "deny-grid-workers-households");
    assert_eq!(reply.json["reason"], "denied_by_rule");

    assert_eq!(gw.department(sim::Department::Hukou).requests(), calls);
}

#[tokio::test]
async fn a_grid_worker_sees_a_masked_name_and_an_age_band() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let grid = gw.token(Role::GridWorker, Some(TOWNSHIP));
    let mut body = lookup("hukou", "person_by_id", person.id.as_str());
    body["purpose"] = json!("elderly_allowance");
    let reply = gw.query_as(&grid, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let name = reply.json["data"]["name"].as_str().expect("name");
    assert_ne!(name, person.name);
    assert!(name.contains('*'));
    let band = reply.json["data"]["birth_date"].as_str().expect("band");
    assert!(band.ends_with('+') || band.contains('-'), "{band}");
    assert!(!reply.text.contains(&person.birth_date.to_string()));
}

#[tokio::test]
async fn household_by_number_and_by_member_agree_and_mask_member_ids() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Child);
    let household = population()
        .household(&person.household)
        .expect("household");

    let by_number = gw
        .query(&json!({
            "connector": "hukou", "operation": "household",
            "subject": {"household_number": household.number},
            "purpose": "rural_housing", "case_id": "NFJF-2026-001"
        }))
        .await;
    assert_eq!(by_number.status, 200, "{}", by_number.text);
    let mut body = lookup("hukou", "household_by_member", person.id.as_str());
    body["purpose"] = json!("rural_housing");
    let by_member = gw.query(&body).await;
    assert_eq!(by_member.status, 200, "{}", by_member.text);
    assert_eq!(by_number.json["data"], by_member.json["data"]);
    let members = by_number.json["data"]["members"]
        .as_array()
        .expect("members");
    assert_eq!(members.len(), household.members.len());
    for member in members {
        let id = member["id_number"].as_str().expect("masked id");
        assert_eq!(id.len(), 18);
        assert_eq!(&id[6..14], "********", "the birth date never shows");
        assert!(member["name"].as_str().is_some());
    }
    assert!(!by_number.text.contains(person.id.as_str()));
}

#[tokio::test]
async fn shebao_shows_pensions_for_subsistence_but_never_the_bank_account() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let bank = person
        .insurance
        .bank
        .clone()
        .expect("a pensioner has an account");
    let mut body = lookup("shebao", "insured_by_id", person.id.as_str());
    body["purpose"] = json!("subsistence_allowance");

    let reply = gw.query(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let schemes = reply.json["data"]["schemes"].as_array().expect("schemes");
    assert_eq!(schemes.len(), person.insurance.records.len());
    assert!(
        schemes
            .iter()
            .any(|s| s["monthly_pension"].as_f64().is_some_and(|p| p > 0.0))
    );
    for scheme in schemes {
        assert_eq!(
            scheme["start_date"].as_str().map(str::len),
            Some(4),
            "year only"
        );
    }
    assert!(!reply.text.contains(&bank.number));
    assert!(!reply.text.contains(&bank.bank));
    let withheld = reply.json["withheld"].as_array().expect("withheld");
    assert!(
        withheld.contains(
            &json!({"field": "bank_account", "sharing": "never", "reason": "never_shared"})
        )
    );

    // For a purpose with no shebao grant, only open fields leave.
    let reply = gw
        .query(&lookup("shebao", "insured_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["data"].get("name").is_none());
    assert!(
        reply.json["data"]["schemes"][0]
            .get("monthly_pension")
            .is_none()
    );
}

#[tokio::test]
async fn jisheng_shows_children_for_a_birth_registration_but_never_health_data() {
    let gw = TestGateway::start().await;
    let pop = population();
    let person = sample(SampleKind::MarriedParent);
    let reply = gw
        .query(&lookup("jisheng", "fertility_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let data = &reply.json["data"];
    assert_eq!(data["marital_status"], "married");
    let children = data["children"].as_array().expect("children");
    assert_eq!(children.len(), person.fertility.children.len());
    for (child, expected) in children.iter().zip(&person.fertility.children) {
        assert_eq!(child["birth_order"], expected.birth_order);
        assert_eq!(child["name"], expected.name);
        assert!(
            !reply.text.contains(expected.id.as_str()),
            "child IDs are masked"
        );
    }
    assert!(data.get("hereditary_disease").is_none());

    // Someone whose hereditary-disease note is not empty: it never shows.
    let noted = pop
        .people
        .iter()
        .find(|p| p.fertility.hereditary_note != "无")
        .expect("someone with a note");
    let reply = gw
        .query(&lookup("jisheng", "fertility_by_id", noted.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains(&noted.fertility.hereditary_note));
}

#[tokio::test]
async fn an_unknown_resident_is_a_clean_404_where_grants_hold_county_wide() {
    // Grants without jurisdiction (a county whose policies let every township see
    // everyone): nothing to hide, so an unknown person is a plain 404. (With
    // jurisdiction, the answer is the refusal a person elsewhere gets: see
    // `jurisdiction.rs`.)
    let gw = TestGateway::start_with(|path, text| {
        if path.starts_with("policies/") {
            text.edit("    jurisdiction: township\n", "")
        } else {
            text.to_owned()
        }
    })
    .await;
    // A valid ID number that belongs to nobody in the synthetic county.
    let nobody = connectors::subject::IdNumber::build(
        "110101",
        chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date"),
        999,
    )
    .expect("valid");
    for (connector, operation) in [
        ("hukou", "person_by_id"),
        ("shebao", "insured_by_id"),
        ("jisheng", "fertility_by_id"),
    ] {
        let reply = gw
            .query(&lookup(connector, operation, nobody.as_str()))
            .await;
        reply.assert_problem(404, "subject-not-found");
        assert!(!reply.text.contains(nobody.as_str()));
    }
}

#[tokio::test]
async fn the_department_hears_which_gateway_request_asked() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::Pensioner);
    let reply = gw
        .query(&lookup("shebao", "insured_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let department = gw.department(sim::Department::Shebao);
    assert_eq!(
        department.faults.last_request_id().as_deref(),
        reply.json["request_id"].as_str(),
        "the department's log and the gateway's meet on the request id"
    );
}
