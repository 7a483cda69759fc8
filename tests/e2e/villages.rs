//! Villages end to end: a grid worker's token names the villages they serve, and the
//! grid workers' grants hold only for residents of those villages, as the household
//! register says — on the register itself and on a department whose records carry
//! no village. A resident of another village of the same township gets exactly the
//! answer a person nobody knows gets, no department behind the register is asked,
//! and the refusal is in the audit log. Bad `villages` claims are refused, unechoed.

use gateway::auth::{MintClaims, Role};
use serde_json::{Value, json};
use sim::{Department, Person};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, population, post_json};

/// A valid ID number that belongs to nobody in the synthetic county.
fn nobody() -> connectors::subject::IdNumber {
    connectors::subject::IdNumber::build(
        "139901",
        chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date"),
        998,
    )
    .expect("valid")
}

/// Two villages of [`TOWNSHIP`] and a registered resident of each.
fn two_villages() -> ((String, &'static Person), (String, &'static Person)) {
    let population = population();
    let mut found = population
        .townships
        .iter()
        .filter(|t| t.code == TOWNSHIP)
        .flat_map(|t| t.villages.iter())
        .filter_map(|village| {
            let resident = population
                .households
                .iter()
                .filter(|h| h.village == village.code)
                .flat_map(|h| population.members(h))
                .find(|p| p.status == sim::ResidentStatus::Normal)?;
            Some((village.code.clone(), resident))
        });
    let a = found.next().expect("a village with a resident");
    let b = found.next().expect("another village with a resident");
    (a, b)
}

fn elderly(connector: &str, operation: &str, id_number: &str) -> Value {
    json!({
        "connector": connector,
        "operation": operation,
        "subject": {"id_number": id_number},
        "purpose": "elderly_allowance",
        "case_id": "GRID-0001",
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
async fn a_grid_worker_sees_their_villages_residents_only() {
    let gw = TestGateway::start().await;
    let ((village_a, resident_a), (village_b, resident_b)) = two_villages();
    assert_ne!(village_a, village_b);
    let grid = gw.token_in_villages(
        Role::GridWorker,
        Some(TOWNSHIP),
        std::slice::from_ref(&village_a),
    );

    for (connector, operation, rule) in [
        ("hukou", "person_by_id", "hukou-grid-elderly"),
        ("shebao", "insured_by_id", "shebao-grid-elderly"),
    ] {
        let shebao = gw.department(Department::Shebao).requests();
        // A resident of village B of the same township, and a person nobody knows.
        let elsewhere = gw
            .query_as(
                &grid,
                &elderly(connector, operation, resident_b.id.as_str()),
            )
            .await;
        let unknown = gw
            .query_as(&grid, &elderly(connector, operation, nobody().as_str()))
            .await;
        assert_eq!(
            refusal(&elsewhere),
            refusal(&unknown),
            "{connector}: the answers tell a neighbour from nobody"
        );
        assert_eq!(elsewhere.json["rule"], rule, "{}", elsewhere.text);
        for leak in [
            resident_b.id.as_str(),
            resident_b.name.as_str(),
            village_b.as_str(),
        ] {
            assert!(!elsewhere.text.contains(leak), "{}", elsewhere.text);
        }
        // Refused before the department was asked: only the household register,
        // which says where people live, was.
        assert_eq!(gw.department(Department::Shebao).requests(), shebao);

        // A resident of the grid worker's own village: masked, as the grant says.
        let own = gw
            .query_as(
                &grid,
                &elderly(connector, operation, resident_a.id.as_str()),
            )
            .await;
        assert_eq!(own.status, 200, "{connector}: {}", own.text);
        let name = own.json["data"]["name"].as_str().expect("name");
        assert!(name.contains('*'), "{name}");
        assert_ne!(name, resident_a.name);
        assert_eq!(own.json["fields"]["name"]["rule"], rule, "{}", own.text);
    }

    // The clerk of the township still sees the resident of village B: the villages
    // narrow grid workers, nobody else.
    let mut body = elderly("shebao", "insured_by_id", resident_b.id.as_str());
    body["purpose"] = json!("subsistence_allowance");
    let clerk = gw.query(&body).await;
    assert_eq!(clerk.status, 200, "{}", clerk.text);

    // The refusal is in the audit log: who (with their villages), whom, why.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"filter": {"id_number": resident_b.id.as_str(), "user": "grid_worker"}}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let events = found.json["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "one per department: {}", found.text);
    for event in events {
        assert_eq!(event["outcome"]["status"], 403, "{event}");
        assert_eq!(event["jurisdiction"], "outside", "{event}");
        assert_eq!(event["subject_township"], TOWNSHIP, "{event}");
        assert_eq!(event["fields_returned"], json!([]), "{event}");
        assert_eq!(event["caller"]["villages"], json!([village_a]), "{event}");
        let rules = event["rules"].as_array().expect("rules");
        assert!(
            rules
                .iter()
                .any(|r| r == "hukou-grid-elderly" || r == "shebao-grid-elderly"),
            "{event}"
        );
    }
}

#[tokio::test]
async fn bad_villages_claims_are_refused_without_echoing_them() {
    let gw = TestGateway::start().await;
    let (_, (_, resident)) = two_villages();
    let claims = |villages: Vec<String>| MintClaims {
        iss: gateway::demo::ISSUER.to_owned(),
        aud: gateway::demo::AUDIENCE.to_owned(),
        sub: "grid-test".to_owned(),
        roles: vec![Role::GridWorker],
        township: Some(TOWNSHIP.to_owned()),
        villages,
        department: None,
        app: None,
        ttl_s: 600,
        not_before_s: None,
    };
    let another_township = "139901201201".to_owned();
    for (villages, reason) in [
        (Vec::new(), "missing_claim: villages"),
        (
            vec!["13990110120".to_owned()],
            "invalid_villages: not_a_village_code",
        ),
        (
            vec![another_township.clone()],
            "invalid_villages: outside_township",
        ),
        (
            (0..65).map(|n| format!("{TOWNSHIP}{n:03}")).collect(),
            "invalid_villages: too_many",
        ),
    ] {
        let token = gateway::auth::mint(&gw.issuer, &claims(villages.clone())).expect("token");
        let reply = gw
            .query_as(
                &token,
                &elderly("hukou", "person_by_id", resident.id.as_str()),
            )
            .await;
        reply.assert_problem(401, "unauthenticated");
        assert_eq!(reply.json["reason"], reason, "{}", reply.text);
        assert_eq!(reply.json["claim"], "villages", "{}", reply.text);
        for village in &villages {
            assert!(!reply.text.contains(village.as_str()), "{}", reply.text);
        }
    }
}
