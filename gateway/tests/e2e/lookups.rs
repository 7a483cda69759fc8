//! A good lookup per department: the canonical record with open fields only, the
//! withheld fields listed, and nothing classified `never` anywhere in the answer.

use connectors::sim::SampleKind;
use serde_json::json;

use crate::helpers::{TestGateway, lookup, population};

#[tokio::test]
async fn hukou_person_returns_open_fields_of_the_right_person() {
    let gw = TestGateway::start().await;
    let pop = population();
    let person = pop
        .sample(SampleKind::MarriedParent)
        .expect("a married parent");
    let household = pop.household(&person.household).expect("their household");

    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    let record = &reply.json["record"];
    assert_eq!(record["id_number"], person.id.as_str());
    assert_eq!(record["township_code"], household.township);
    assert_eq!(record["village_code"], household.village);
    assert_eq!(record["status"], "normal");
    assert!(matches!(record["gender"].as_str(), Some("male" | "female")));
    // Conditional fields are withheld and say so; the name is not in the answer.
    assert!(record.get("name").is_none());
    assert!(!reply.text.contains(&person.name));
    let withheld = reply.json["withheld"].as_array().expect("withheld list");
    assert!(
        withheld
            .contains(&json!({"field": "name", "sharing": "conditional", "reason": "not_granted"}))
    );
    assert_eq!(reply.json["policy"]["mode"], "open_only");
    assert_eq!(reply.json["department"]["id"], "county-psb");
    assert_eq!(reply.json["purpose"]["code"], "birth_registration");
    assert!(reply.json["request_id"].as_str().is_some());
}

#[tokio::test]
async fn hukou_household_by_number_and_by_member_agree() {
    let gw = TestGateway::start().await;
    let pop = population();
    let person = pop.sample(SampleKind::Child).expect("a child");
    let household = pop.household(&person.household).expect("household");

    let by_number = gw
        .query(&json!({
            "connector": "hukou", "operation": "household",
            "subject": {"household_number": household.number},
            "purpose": "rural_housing", "case_id": "NFJF-2026-001"
        }))
        .await;
    assert_eq!(by_number.status, 200, "{}", by_number.text);
    let by_member = gw
        .query(&lookup("hukou", "household_by_member", person.id.as_str()))
        .await;
    assert_eq!(by_member.status, 200, "{}", by_member.text);
    assert_eq!(by_number.json["record"], by_member.json["record"]);
    let record = &by_number.json["record"];
    assert_eq!(record["household_number"], household.number);
    let members = record["members"].as_array().expect("members");
    assert_eq!(members.len(), household.members.len());
    // Open member fields only: relation, gender, status — no names, no ID numbers.
    for member in members {
        let keys: Vec<_> = member
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["gender", "relation_to_head", "status"]);
    }
    assert!(!by_number.text.contains(person.id.as_str()));
}

#[tokio::test]
async fn shebao_returns_schemes_but_never_the_bank_account() {
    let gw = TestGateway::start().await;
    let pop = population();
    let person = pop.sample(SampleKind::Pensioner).expect("a pensioner");
    let bank = person
        .insurance
        .bank
        .clone()
        .expect("a pensioner has an account");

    let reply = gw
        .query(&lookup("shebao", "insured_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let schemes = reply.json["record"]["schemes"].as_array().expect("schemes");
    assert_eq!(schemes.len(), person.insurance.records.len());
    for scheme in schemes {
        assert!(scheme["scheme"].as_str().is_some());
        assert!(scheme["status"].as_str().is_some());
        assert!(scheme.get("monthly_pension").is_none(), "conditional");
    }
    assert!(!reply.text.contains(&bank.number));
    assert!(!reply.text.contains(&bank.bank));
    let withheld = reply.json["withheld"].as_array().expect("withheld");
    assert!(
        withheld.contains(
            &json!({"field": "bank_account", "sharing": "never", "reason": "never_shared"})
        )
    );
}

#[tokio::test]
async fn jisheng_returns_children_orders_but_never_health_data() {
    let gw = TestGateway::start().await;
    let pop = population();
    let person = pop
        .sample(SampleKind::MarriedParent)
        .expect("a married parent");

    let reply = gw
        .query(&lookup("jisheng", "fertility_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let record = &reply.json["record"];
    assert_eq!(record["marital_status"], "married");
    let children = record["children"].as_array().expect("children");
    assert_eq!(children.len(), person.fertility.children.len());
    for (child, expected) in children.iter().zip(&person.fertility.children) {
        assert_eq!(child["birth_order"], expected.birth_order);
        assert!(child.get("name").is_none());
        assert!(!reply.text.contains(expected.id.as_str()));
    }
    assert!(record.get("hereditary_disease").is_none());
    assert!(
        record.get("spouse").is_none(),
        "every spouse field is conditional"
    );

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
async fn an_unknown_resident_is_a_clean_404() {
    let gw = TestGateway::start().await;
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
