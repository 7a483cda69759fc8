//! Free text and request bodies as an attacker writes them (issue 8, finding 5; issue
//! 9, finding 3): an ID number hidden in a case id or a justification with zero-width
//! characters, spaces or full-width digits is refused; a mobile number too; a key in a
//! bad body is never echoed; data after the JSON body is refused.

use gateway::auth::Role;
use gateway::demo;
use serde_json::json;
use sim::SampleKind;

use crate::helpers::{TestGateway, lookup, post_json, sample};

fn disguises(id: &str) -> Vec<String> {
    let zero_width: String = id.chars().flat_map(|c| [c, '\u{200b}']).collect();
    let spaced: String = id
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i > 0 && i % 6 == 0).then_some(' ').into_iter().chain([c]))
        .collect();
    let full_width: String = id
        .chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).expect("a char"),
            'X' => 'Ｘ',
            other => other,
        })
        .collect();
    vec![zero_width, spaced, full_width]
}

#[tokio::test]
async fn a_disguised_id_number_in_a_case_id_is_refused_and_not_recorded() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    for disguise in disguises(person.id.as_str()) {
        let mut body = lookup("hukou", "person_by_id", person.id.as_str());
        body["case_id"] = json!(format!("案{disguise}"));
        let reply = gw.query(&body).await;
        reply.assert_problem(400, "invalid-request");
        assert_eq!(reply.json["at"], "case_id", "{}", reply.text);
        assert!(reply.text.contains("ID number"), "{}", reply.text);
    }
    let mut body = lookup("hukou", "person_by_id", person.id.as_str());
    body["case_id"] = json!("联系 138 1234 5678");
    gw.query(&body).await.assert_problem(400, "invalid-request");
}

#[tokio::test]
async fn free_text_in_access_requests_carries_no_id_or_mobile_number() {
    let gw = TestGateway::start().await;
    let persona = demo::Persona {
        name: "lead-dongling",
        about: "a test persona",
        role: Role::TownshipLead,
        township: Some(crate::helpers::TOWNSHIP),
        villages: &[],
        department: None,
    };
    let lead = demo::persona_token(&gw.issuer, &persona).expect("a token");
    let person = sample(SampleKind::Pensioner);
    let mut texts = disguises(person.id.as_str());
    texts.push(person.id.as_str().to_owned());
    texts.push("请联系13812345678".to_owned());
    for text in texts {
        let reply = post_json(
            &gw.url("/v1/access-requests"),
            &lead,
            &json!({
                "connector": "hukou",
                "operations": ["person_by_id"],
                "purposes": ["elderly_allowance"],
                "fields": {"name": "default"},
                "justification": format!("为{text}办理"),
            }),
        )
        .await;
        reply.assert_problem(400, "invalid-request");
        assert_eq!(
            reply.json["problems"][0]["path"], "justification",
            "{}",
            reply.text
        );
        assert!(!reply.text.contains(person.id.as_str()), "{}", reply.text);
    }
}

#[tokio::test]
async fn a_bad_body_echoes_no_key_and_trailing_data_is_refused() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let id = person.id.as_str();
    for body in [
        format!(r#"{{"{id}": 1}}"#),
        format!(
            r#"{{"connector":"hukou","operation":"person_by_id","subject":{{"{id}":"x"}},"purpose":"birth_registration","case_id":"A"}}"#
        ),
    ] {
        let reply = gw.post_raw("/v1/query", "application/json", body).await;
        reply.assert_problem(400, "invalid-request");
        assert!(!reply.text.contains(id), "{}", reply.text);
    }
    let good = lookup("hukou", "person_by_id", id).to_string();
    let reply = gw
        .post_raw(
            "/v1/query",
            "application/json",
            format!("{good} {{\"more\":1}}"),
        )
        .await;
    reply.assert_problem(400, "invalid-request");
    assert!(
        reply.text.contains("data after the JSON value"),
        "{}",
        reply.text
    );
}
