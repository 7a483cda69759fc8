//! Bad requests fail before any department is called, with a problem+json that names
//! what is wrong and echoes nothing the caller sent.

use serde_json::json;
use sim::{Department, SampleKind};

use crate::helpers::{TestGateway, lookup, sample};

/// Recomputes the GB 11643 check digit so only the part under test is wrong.
fn with_check_digit(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

#[tokio::test]
async fn invalid_id_numbers_are_refused_before_any_upstream_call() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    let hukou = gw.department(Department::Hukou);
    let calls_before = hukou.requests();

    let last = id.as_bytes()[17];
    let wrong_check = format!("{}{}", &id[..17], if last == b'0' { '1' } else { '0' });
    let bad_birth = with_check_digit(&format!("{}19901345{}", &id[..6], &id[14..17]));
    let bad_region = with_check_digit(&format!("99{}", &id[2..17]));
    let cases = [
        (wrong_check.clone(), "checksum"),
        (bad_birth.clone(), "birth_date"),
        (bad_region.clone(), "region"),
        (id[..17].to_owned(), "length"),
        (format!("{}A", &id[..17]), "characters"),
        (
            with_check_digit(&format!("{}00{}", &id[..2], &id[4..17])),
            "region",
        ),
    ];
    for (candidate, check) in cases {
        let reply = gw.query(&lookup("hukou", "person_by_id", &candidate)).await;
        reply.assert_problem(400, "invalid-id-number");
        assert_eq!(reply.json["check"], check, "{candidate}: {}", reply.text);
        assert_eq!(reply.json["blame"], "caller");
        assert!(
            !reply.text.contains(&candidate),
            "the ID is echoed: {}",
            reply.text
        );
        assert!(!reply.text.contains(&candidate[..17]));
    }
    assert_eq!(hukou.requests(), calls_before, "no department was called");
}

#[tokio::test]
async fn unknown_connector_operation_and_purpose() {
    let gw = TestGateway::start().await;
    let id = &sample(SampleKind::MarriedParent).id;

    let reply = gw
        .query(&lookup("gongan-secret", "person_by_id", id.as_str()))
        .await;
    reply.assert_problem(404, "unknown-connector");
    assert!(!reply.text.contains("gongan-secret"));

    let reply = gw.query(&lookup("hukou", "everything", id.as_str())).await;
    reply.assert_problem(404, "unknown-operation");
    assert_eq!(reply.json["connector"], "hukou");
    assert!(
        reply.json["operations"]
            .as_array()
            .expect("list")
            .contains(&json!("person_by_id"))
    );

    let mut body = lookup("hukou", "person_by_id", id.as_str());
    body["purpose"] = json!("curiosity");
    let reply = gw.query(&body).await;
    reply.assert_problem(400, "unknown-purpose");
    assert!(!reply.text.contains("curiosity"));
    assert!(!reply.text.contains(id.as_str()));
}

#[tokio::test]
async fn malformed_bodies_are_refused_without_echo() {
    let gw = TestGateway::start().await;
    let id = &sample(SampleKind::MarriedParent).id;

    // Not JSON.
    let broken = format!("{{\"subject\": {{\"id_number\": \"{}\"", id.as_str());
    let reply = gw.post_raw("/v1/query", "application/json", broken).await;
    reply.assert_problem(400, "invalid-request");
    assert!(!reply.text.contains(id.as_str()));

    // Wrong type where the ID should be, and an unknown field carrying the ID.
    for body in [
        json!({"connector": "hukou", "operation": "person_by_id", "subject": {"id_number": 42}, "purpose": "birth_registration", "case_id": "A"}),
        json!({"connector": "hukou", "operation": "person_by_id", "subject": {"id_number": id.as_str(), "name": id.as_str()}, "purpose": "birth_registration", "case_id": "A"}),
        json!({"connector": "hukou", "operation": "person_by_id", "subject": {}, "purpose": "birth_registration", "case_id": "A"}),
        json!({"connector": "hukou", "operation": "person_by_id", "subject": {"id_number": id.as_str()}, "purpose": "birth_registration", "case_id": ""}),
        json!({"connector": "hukou", "operation": "person_by_id", "subject": {"id_number": id.as_str()}, "purpose": "birth_registration", "case_id": format!("case {}", id.as_str())}),
    ] {
        let reply = gw.query(&body).await;
        reply.assert_problem(400, "invalid-request");
        assert!(!reply.text.contains(id.as_str()), "{}", reply.text);
    }

    // Not JSON at all.
    let form = "id_number=1".to_owned();
    let reply = gw
        .post_raw("/v1/query", "application/x-www-form-urlencoded", form)
        .await;
    reply.assert_problem(415, "unsupported-media-type");

    // Too large.
    let huge = format!("{{\"case_id\": \"{}\"}}", "x".repeat(100 * 1024));
    let reply = gw.post_raw("/v1/query", "application/json", huge).await;
    reply.assert_problem(413, "payload-too-large");
}

#[tokio::test]
async fn the_id_may_not_travel_in_the_url() {
    let gw = TestGateway::start().await;
    let id = &sample(SampleKind::MarriedParent).id;
    let url = format!("/v1/query?id_number={}", id.as_str());
    let body = lookup("hukou", "person_by_id", id.as_str()).to_string();
    let reply = gw.post_raw(&url, "application/json", body).await;
    reply.assert_problem(400, "invalid-request");
    assert!(!reply.text.contains(id.as_str()));
}

#[tokio::test]
async fn a_problem_names_the_request_it_answers() {
    let gw = TestGateway::start().await;
    let admin = gw.token(gateway::auth::Role::DeptAdmin, None);
    // A handler that answers its problem through `?` (an unknown connector), and one
    // that writes the id itself (an unknown purpose).
    let response = gw
        .client
        .get(gw.url("/v1/admin/connectors/nope"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("an answer");
    let header = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id")
        .to_owned();
    let reply = crate::helpers::Reply::read(response).await;
    reply.assert_problem(404, "unknown-connector");
    assert_eq!(reply.json["request_id"], header);
    assert_eq!(reply.json["instance"], format!("urn:uuid:{header}"));

    let person = sample(SampleKind::MarriedParent);
    let mut body = lookup("hukou", "person_by_id", person.id.as_str());
    body["purpose"] = json!("curiosity");
    let reply = gw.query(&body).await;
    reply.assert_problem(400, "unknown-purpose");
    assert!(
        reply.json["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}
