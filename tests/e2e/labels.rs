//! Codes in words: the catalog serves every code table in zh-CN and en, and a lookup
//! or a form fill asked for labels (in the body or by `Accept-Language`) carries a
//! label beside each code and each reason; without asking, answers are unchanged.

use gateway::auth::Role;
use serde_json::{Value, json};
use sim::SampleKind;

use crate::helpers::{Reply, TOWNSHIP, TestGateway, lookup, sample};

/// POSTs `body` to `path` as a clerk, with an optional `Accept-Language`.
async fn post(gw: &TestGateway, path: &str, language: Option<&str>, body: &Value) -> Reply {
    let mut request = gw
        .client
        .post(gw.url(path))
        .bearer_auth(gw.token(Role::Clerk, Some(TOWNSHIP)))
        .json(body);
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    Reply::read(request.send().await.expect("an answer")).await
}

#[tokio::test]
async fn the_catalog_serves_every_code_table_in_both_languages() {
    let gw = TestGateway::start().await;
    let reply = Reply::read(
        gw.client
            .get(gw.url("/v1/catalog"))
            .bearer_auth(gw.token(Role::Clerk, Some(TOWNSHIP)))
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let tables = &reply.json["code_tables"];
    assert_eq!(
        tables["gender"]["female"],
        json!({"zh-CN": "女", "en": "female"})
    );
    for table in [
        "gender",
        "ethnicity",
        "relation",
        "hukou_type",
        "status",
        "marital_status",
        "scheme",
        "insured_status",
        "reasons",
    ] {
        assert!(
            tables[table].as_object().is_some_and(|t| !t.is_empty()),
            "{table}"
        );
    }
    assert_eq!(tables["reasons"]["not_granted"]["zh-CN"], "无授权");
    let hukou = reply.json["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .find(|c| c["id"] == "hukou")
        .expect("hukou");
    let person = &hukou["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .find(|o| o["name"] == "person_by_id")
        .expect("person_by_id")["fields"];
    let field = |path: &str| {
        person
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["path"] == path)
            .expect("the field")
            .clone()
    };
    assert_eq!(field("gender")["code_table"], "gender");
    assert_eq!(field("relation_to_head")["code_table"], "relation");
    assert!(field("name").get("code_table").is_none());
}

#[tokio::test]
async fn a_lookup_asked_for_labels_carries_words_beside_its_codes() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let plain = lookup("hukou", "person_by_id", person.id.as_str());
    let gender = |reply: &Reply| reply.json["data"]["gender"].as_str().map(str::to_owned);

    // No request for labels: codes only, as before.
    let codes = post(&gw, "/v1/query", None, &plain).await;
    assert_eq!(codes.status, 200, "{}", codes.text);
    assert!(codes.json["data"].get("gender_label").is_none());

    let mut chinese = plain.clone();
    chinese["labels"] = json!("zh-CN");
    let zh = post(&gw, "/v1/query", Some("en"), &chinese).await;
    assert_eq!(zh.status, 200, "{}", zh.text);
    let expected_zh = match gender(&zh).as_deref() {
        Some("male") => "男",
        Some("female") => "女",
        other => panic!("gender {other:?}"),
    };
    assert_eq!(zh.json["data"]["gender_label"], expected_zh);
    assert!(
        zh.json["data"]["hukou_type_label"].is_string(),
        "{}",
        zh.text
    );
    assert!(
        zh.json["data"]["ethnicity_label"]
            .as_str()
            .is_some_and(|e| e.ends_with('族'))
    );
    let withheld = zh.json["withheld"].as_array().expect("withheld");
    assert!(
        withheld.iter().all(|w| w["reason_label"].is_string()),
        "{}",
        zh.text
    );

    let en = post(&gw, "/v1/query", Some("en-US,en;q=0.9"), &plain).await;
    assert_eq!(en.status, 200, "{}", en.text);
    assert_eq!(
        en.json["data"]["gender_label"],
        gender(&en).expect("gender")
    );

    let mut bad = plain.clone();
    bad["labels"] = json!("fr");
    let refused = post(&gw, "/v1/query", None, &bad).await;
    refused.assert_problem(400, "invalid-request");
    assert_eq!(refused.json["at"], "labels");
}

#[tokio::test]
async fn a_form_asked_for_labels_labels_its_coded_fields_and_reasons() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let body = json!({
        "subject": {"id_number": person.id.as_str()},
        "case_id": "TEST-0002",
        "labels": "zh-CN",
    });
    let reply = post(&gw, "/v1/forms/birth-registration/fill", None, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut coded = 0;
    let mut stack = vec![&reply.json];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if object.get("type") == Some(&json!("code"))
                    && object.get("value").is_some_and(Value::is_string)
                {
                    coded += 1;
                    assert!(object["value_label"].is_string(), "{value}");
                }
                if object.get("reason").is_some_and(Value::is_string) {
                    assert!(object["reason_label"].is_string(), "{value}");
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(coded > 0, "{}", reply.text);
}
