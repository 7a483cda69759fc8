//! Verification without disclosure (核验) end to end: a clerk of 东岭镇 states what an
//! applicant for the old-age allowance says — name, birth date, the village of their
//! registered address — and the gateway answers match or mismatch per field from
//! the household register, never a value; a lookup for the same purpose reads none
//! of those fields. Every verification is in the audit log with its fields and
//! results but not the stated values, and in the citizen's report; guessing is
//! refused after a few mismatches and flagged for the privacy officer.

use gateway::auth::Role;
use serde_json::{Value, json};
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, population, post_json, sample};

/// A township of the demo county other than [`TOWNSHIP`] (西河乡).
const ELSEWHERE: &str = "139901201";

fn verify_body(id_number: &str, claims: Value) -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "subject": {"id_number": id_number},
        "purpose": "elderly_allowance",
        "case_id": "GLJT-2026-0007",
        "claims": claims,
    })
}

async fn verify(gw: &TestGateway, token: &str, id_number: &str, claims: Value) -> Reply {
    post_json(
        &gw.url("/v1/verify"),
        token,
        &verify_body(id_number, claims),
    )
    .await
}

fn result(reply: &Reply, field: &str) -> (String, Option<String>) {
    let f = &reply.json["fields"][field];
    (
        f["result"].as_str().unwrap_or_default().to_owned(),
        f["reason"].as_str().map(str::to_owned),
    )
}

fn matched() -> (String, Option<String>) {
    ("match".to_owned(), None)
}

fn mismatched() -> (String, Option<String>) {
    ("mismatch".to_owned(), None)
}

#[tokio::test]
async fn a_clerk_verifies_what_a_citizen_states_and_sees_nothing_of_the_record() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let household = population()
        .household(&person.household)
        .expect("the household");
    let id = person.id.as_str();
    let birth = person.birth_date.to_string();
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    let asked_before = gw.department(Department::Hukou).faults.received();

    // What the applicant says, written as a clerk types it: spaces, full-width digits.
    let spaced_name: String = person
        .name
        .chars()
        .map(|c| format!("{c} "))
        .collect::<String>();
    let reply = verify(
        &gw,
        &clerk,
        id,
        json!({
            "name": spaced_name,
            "birth_date": birth,
            "address": {"village_code": household.village},
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(result(&reply, "name"), matched(), "{}", reply.text);
    assert_eq!(result(&reply, "birth_date"), matched(), "{}", reply.text);
    assert_eq!(result(&reply, "address"), matched(), "{}", reply.text);
    assert_eq!(reply.json["department"]["id"], "county-psb");
    assert!(
        reply.audit_event.is_some(),
        "the answer names its audit event"
    );
    // The department was asked; nothing it holds is in the answer.
    assert!(gw.department(Department::Hukou).faults.received() > asked_before);
    for held in [&person.name, &household.address, &household.village] {
        assert!(!reply.text.contains(held.as_str()), "{}", reply.text);
    }

    // A wrong birth date, another village of the township, the address written out
    // with a wrong house number: mismatches, with no hint of the value held.
    let wrong_day = (person.birth_date + chrono::Duration::days(1)).to_string();
    let other_village = population()
        .place_of(household)
        .and_then(|(township, _)| {
            township
                .villages
                .iter()
                .find(|v| v.code != household.village)
        })
        .expect("another village")
        .code
        .clone();
    let reply = verify(
        &gw,
        &clerk,
        id,
        json!({
            "name": person.name,
            "birth_date": wrong_day,
            "address": {"village_code": other_village},
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(result(&reply, "name"), matched());
    assert_eq!(result(&reply, "birth_date"), mismatched());
    assert_eq!(result(&reply, "address"), mismatched());
    assert!(!reply.text.contains(&birth), "{}", reply.text);
    // The address written out: as held, however spaced, or with another house.
    let spaced = format!(" {} ", household.address.replace('村', "村 "));
    let reply = verify(&gw, &clerk, id, json!({"address": spaced})).await;
    assert_eq!(result(&reply, "address"), matched(), "{}", reply.text);
    let next_door = format!("{}附1号", household.address);
    let reply = verify(&gw, &clerk, id, json!({"address": next_door})).await;
    assert_eq!(result(&reply, "address"), mismatched(), "{}", reply.text);

    // A field no grant lets this purpose verify cannot be verified, saying why.
    let reply = verify(&gw, &clerk, id, json!({"ethnicity": person.ethnicity})).await;
    assert_eq!(
        result(&reply, "ethnicity"),
        ("cannot_verify".to_owned(), Some("not_granted".to_owned())),
        "{}",
        reply.text
    );

    // A lookup for the same purpose reads none of them: they are granted for
    // verification only, and the answer says so.
    let looked = gw
        .query(&json!({
            "connector": "hukou",
            "operation": "person_by_id",
            "subject": {"id_number": id},
            "purpose": "elderly_allowance",
            "case_id": "GLJT-2026-0007",
        }))
        .await;
    assert_eq!(looked.status, 200, "{}", looked.text);
    assert!(!looked.text.contains(&person.name), "{}", looked.text);
    let withheld = looked.json["withheld"].as_array().expect("withheld");
    for field in ["name", "birth_date", "address"] {
        let w = withheld
            .iter()
            .find(|w| w["field"] == field)
            .expect("withheld");
        assert_eq!(w["reason"], "verify_only", "{}", looked.text);
    }

    // The privacy officer sees each verification — fields and results, never the
    // values stated — and the citizen's report lists them.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"filter": {"id_number": id, "purpose": "elderly_allowance"}, "limit": 50}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let verifications: Vec<&Value> = found.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "verification")
        .collect();
    assert_eq!(verifications.len(), 5, "{}", found.text);
    let mismatch = verifications
        .iter()
        .find(|e| {
            e["fields_verified"].as_array().is_some_and(|f| {
                f.iter()
                    .any(|f| f["field"] == "birth_date" && f["result"] == "mismatch")
            })
        })
        .expect("the verification with a wrong birth date");
    assert_eq!(mismatch["fields_returned"], json!([]), "{mismatch}");
    for stated in [&wrong_day, &other_village, &spaced_name, &next_door] {
        assert!(!found.text.contains(stated.as_str()), "{}", found.text);
    }
    let report = post_json(
        &gw.url("/v1/audit/report"),
        &officer,
        &json!({"id_number": id}),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let listed: Vec<&Value> = report.json["accesses"]
        .as_array()
        .expect("accesses")
        .iter()
        .filter(|a| a["shown_as"] == "verification")
        .collect();
    assert_eq!(listed.len(), 5, "{}", report.text);
    assert!(
        listed
            .iter()
            .any(|a| a["fields"] == json!(["address", "birth_date", "name"])),
        "{}",
        report.text
    );
}

#[tokio::test]
async fn verification_holds_to_the_township_and_refuses_bad_claims_without_echoing_them() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    // A clerk of another township is refused before anything is compared.
    let outsider = gw.token(Role::Clerk, Some(ELSEWHERE));
    let reply = verify(&gw, &outsider, id, json!({"name": person.name})).await;
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["reason"], "jurisdiction", "{}", reply.text);
    assert!(!reply.text.contains(&person.name));
    // A privacy officer does not verify.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let reply = verify(&gw, &officer, id, json!({"name": person.name})).await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    for claims in [
        json!({}),
        json!({id: person.name}),
        json!({"birth_date": format!("{} 00:00", person.birth_date)}),
        json!({"address": {"village_code": id}}),
        json!({"name": [person.name]}),
    ] {
        let reply = verify(&gw, &clerk, id, claims.clone()).await;
        reply.assert_problem(400, "invalid-request");
        assert_eq!(reply.json["at"], "claims", "{}", reply.text);
        assert!(!reply.text.contains(id), "{claims}: {}", reply.text);
        assert!(
            !reply.text.contains(&person.name),
            "{claims}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn guessing_is_refused_after_a_few_mismatches_and_flagged_for_the_privacy_officer() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    let clerk = gw.token(Role::Clerk, Some(TOWNSHIP));
    // Matches cost nothing.
    for _ in 0..8 {
        let reply = verify(&gw, &clerk, id, json!({"name": person.name})).await;
        assert_eq!(result(&reply, "name"), matched(), "{}", reply.text);
    }
    // Five wrong birth dates for one person (the default limit)...
    for day in 1..=5 {
        let guess = (person.birth_date + chrono::Duration::days(day)).to_string();
        let reply = verify(&gw, &clerk, id, json!({"birth_date": guess})).await;
        assert_eq!(result(&reply, "birth_date"), mismatched(), "{}", reply.text);
    }
    // ...and the sixth verification of that person is refused, whatever it states
    // and whoever asks.
    let right = person.birth_date.to_string();
    let reply = verify(&gw, &clerk, id, json!({"birth_date": right})).await;
    reply.assert_problem(429, "rate-limited");
    assert_eq!(
        reply.json["limit"], "verify-mismatches:subject",
        "{}",
        reply.text
    );
    assert!(!reply.text.contains(&right), "{}", reply.text);
    let colleague = gw.token(Role::TownshipLead, Some(TOWNSHIP));
    let reply = verify(&gw, &colleague, id, json!({"name": person.name})).await;
    reply.assert_problem(429, "rate-limited");
    // Another person of the township can still be verified.
    let other = population()
        .residents()
        .find(|p| {
            p.id.as_str() != id
                && population()
                    .household_of(p.id.as_str())
                    .is_some_and(|h| h.township == TOWNSHIP)
                && p.status == sim::ResidentStatus::Normal
        })
        .expect("another resident");
    let reply = verify(&gw, &clerk, other.id.as_str(), json!({"name": other.name})).await;
    assert_eq!(result(&reply, "name"), matched(), "{}", reply.text);

    // The privacy officer's anomaly report names the clerk.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let now = chrono::Utc::now();
    let window = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "until": (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let found = post_json(&gw.url("/v1/audit/anomalies"), &officer, &window).await;
    assert_eq!(found.status, 200, "{}", found.text);
    let flagged: Vec<&Value> = found.json["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["kind"] == "verification_mismatches")
        .collect();
    assert_eq!(flagged.len(), 2, "{}", found.text);
    // Five mismatches and one refusal for the clerk, the colleague's refusal.
    let events = |a: &Value| a["events"].as_array().map_or(0, Vec::len);
    let mut counts: Vec<usize> = flagged.iter().map(|a| events(a)).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 6], "{}", found.text);
}
