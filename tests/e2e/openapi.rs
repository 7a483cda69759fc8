//! The API document is truthful: fetched from the running gateway (no token), every
//! operation in it is sent its own example — path parameters, body, and the token of
//! the first demo persona holding one of its roles — in an order that makes them work
//! (the connector examples register a connector, the access examples file a request
//! and decide it), and each answer's status is one the document lists for it, its
//! media type one it lists for that status, and its body valid against the schema
//! it gives. Every documented route is served (none falls to the router's fallback),
//! and every operation is exercised.

use std::collections::{BTreeMap, BTreeSet};

use gateway::demo::{self, PERSONAS};
use serde_json::{Value, json};

use crate::helpers::TestGateway;

/// The operations in the order they are sent; each one at least once. The access
/// request is filed twice: once to be withdrawn, once to be approved and revoked.
const ORDER: &[&str] = &[
    "openapi",
    "healthz",
    "readyz",
    "problemType",
    "catalog",
    "listForms",
    "lookup",
    "verify",
    "fillForm",
    "fileCorrection",
    "listCorrections",
    "showCorrection",
    "acceptCorrection",
    "rejectCorrection",
    "putConnector",
    "showConnector",
    "connectorVersions",
    "showConnectorVersion",
    "diffConnectorVersions",
    "testConnectorVersion",
    "listReviews",
    "approveReview",
    "refuseReview",
    "listConnectors",
    "testConnector",
    "disableConnector",
    "enableConnector",
    "purgeConnectorCache",
    "activateConnectorVersion",
    "rollbackConnector",
    "createAccessRequest",
    "withdrawAccessRequest",
    "createAccessRequest",
    "showAccessRequest",
    "listAccessRequests",
    "listOverdueAccessRequests",
    "approveAccessRequest",
    "refuseAccessRequest",
    "listGrants",
    "revokeGrant",
    "searchAudit",
    "exportAudit",
    "citizenReport",
    "auditAnomalies",
    "metrics",
];

/// Operations whose example, in this order, is refused by design: the review was
/// approved a moment before, the request too, and the correction accepted (409
/// `already-decided`).
const REFUSED: &[&str] = &["refuseReview", "refuseAccessRequest", "rejectCorrection"];

/// One operation of the document.
struct Operation {
    method: String,
    path: String,
    spec: Value,
}

fn operations(doc: &Value) -> BTreeMap<String, Operation> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("a path item") {
            let id = spec["operationId"].as_str().expect("an operationId");
            out.insert(
                id.to_owned(),
                Operation {
                    method: method.clone(),
                    path: path.clone(),
                    spec: spec.clone(),
                },
            );
        }
    }
    out
}

/// The token for an operation: none when it needs none; else the first demo persona
/// holding one of its roles (any persona's when it names none: a clerk's).
fn token(gw: &TestGateway, spec: &Value) -> Option<String> {
    let requirement = spec["security"]
        .as_array()?
        .iter()
        .find_map(|r| r.get("bearer"))?;
    let roles: Vec<&str> = requirement
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let persona = PERSONAS
        .iter()
        .find(|p| roles.is_empty() || roles.contains(&p.role.as_str()))
        .expect("a demo persona with one of the roles");
    Some(demo::persona_token(&gw.issuer, persona).expect("a token"))
}

/// Whether `instance` fits `schema`, a schema of `doc`: the document is the root
/// resource, so `#/components/schemas/…` resolve in it.
fn check(doc: &Value, schema: &Value, instance: &Value) -> Result<(), String> {
    let mut root = doc.clone();
    root["$defs"] = json!({ "target": schema });
    root["$ref"] = json!("#/$defs/target");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at `{}`", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The media type without its parameters.
fn essence(media: &str) -> &str {
    media.split(';').next().unwrap_or_default().trim()
}

#[tokio::test]
async fn every_documented_example_gets_a_documented_answer() {
    let gw = TestGateway::start().await;
    let client = crate::helpers::client();
    let served = client
        .get(gw.url("/openapi.json"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-type"],
        "application/json",
        "the document is JSON"
    );
    let doc: Value = served.json().await.expect("the document");
    assert_eq!(doc["openapi"], "3.1.0");
    let operations = operations(&doc);
    // The check is not vacuous: an empty object is no lookup's answer.
    let answer = &operations["lookup"].spec["responses"]["200"]["content"]["application/json"];
    assert!(check(&doc, &answer["schema"], &json!({})).is_err());
    let ordered: BTreeSet<&str> = ORDER.iter().copied().collect();
    let documented: BTreeSet<&str> = operations.keys().map(String::as_str).collect();
    assert_eq!(
        ordered, documented,
        "every documented operation is exercised"
    );

    // Values earlier answers made, for the path parameters of later requests.
    let mut made: BTreeMap<&str, String> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for id in ORDER {
        let op = &operations[*id];
        let mut path = op.path.clone();
        for parameter in op.spec["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "path" {
                continue;
            }
            let name = parameter["name"].as_str().expect("a name");
            let example = &parameter["example"];
            // A request's (and its grant's) id is the one the gateway made.
            let access = op.path.starts_with("/v1/access-requests/{id}")
                || op.path.starts_with("/v1/grants/{id}");
            // A correction's id likewise (the lookup before it showed the value).
            let correction = op.path.starts_with("/v1/corrections/{id}");
            let value = match (access, made.get("access request"), example) {
                (true, Some(made), _) => made.clone(),
                _ if correction && made.contains_key("correction") => made["correction"].clone(),
                (_, _, Value::String(s)) => s.clone(),
                (_, _, Value::Null) => panic!("{id}: the path parameter `{name}` has no example"),
                (_, _, other) => other.to_string(),
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        let body = op.spec["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|media| media["example"].clone());
        let token = token(&gw, &op.spec);
        let (status, text, answer) =
            exchange(&client, &gw, &doc, op, &path, token, body.as_ref()).await;
        outcomes.push(format!("{id} {} {path} → {status}", op.method));
        match answer {
            Err(problems) => failures.extend(problems.into_iter().map(|p| format!("{id}: {p}"))),
            Ok(body) if *id == "createAccessRequest" && status == 201 => {
                made.insert(
                    "access request",
                    body["id"].as_str().expect("an id").to_owned(),
                );
            }
            Ok(body) if *id == "fileCorrection" && status == 201 => {
                made.insert("correction", body["id"].as_str().expect("an id").to_owned());
            }
            Ok(_) => {}
        }
        let worked = if REFUSED.contains(id) {
            status == 409
        } else {
            (200..300).contains(&status)
        };
        if !worked {
            failures.push(format!("{id}: its example answered {status}: {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nin order:\n{}",
        failures.join("\n"),
        outcomes.join("\n")
    );
}

/// Sends `body` (JSON) to `path` as operation `op` with `token`, and checks the
/// answer against the document: its status is documented, its media type documented
/// for that status, a JSON body fits the documented schema, it is not the router's
/// fallback, and the headers its response documents are there (the labels' language
/// only when asked for). The status, the body's text, and the JSON body or what did
/// not fit.
async fn exchange(
    client: &reqwest::Client,
    gw: &TestGateway,
    doc: &Value,
    op: &Operation,
    path: &str,
    token: Option<String>,
    body: Option<&Value>,
) -> (u16, String, Result<Value, Vec<String>>) {
    let method =
        reqwest::Method::from_bytes(op.method.to_uppercase().as_bytes()).expect("a method");
    let mut request = client.request(method, gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let answer = request.send().await.expect("an answer");
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let media = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = answer.text().await.expect("a body");
    let Some(response) = op.spec["responses"].get(status.to_string()) else {
        let problem = format!("{status} is not documented: {text}");
        return (status, text, Err(vec![problem]));
    };
    let Some((_, documented)) = response["content"]
        .as_object()
        .and_then(|c| c.iter().find(|(m, _)| essence(m) == essence(&media)))
    else {
        let problem = format!("{status}: `{media}` is not documented");
        return (status, text, Err(vec![problem]));
    };
    let mut problems = Vec::new();
    let mut json = Value::Null;
    if ["application/json", "application/problem+json"].contains(&essence(&media)) {
        json = serde_json::from_str(&text).expect("a JSON body");
        // The router's own fallbacks: nothing at this path, or not this method.
        let fallback = json["type"] == "/problems/method-not-allowed"
            || (json["type"] == "/problems/not-found"
                && json["detail"] == "Nothing is served at this path.");
        if fallback {
            problems.push(format!("the router does not serve {} {path}", op.method));
        }
        if let Err(e) = check(doc, &documented["schema"], &json) {
            problems.push(format!("{status}: the body does not fit: {e}\n{text}"));
        }
    }
    for name in response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|h| h.0)
    {
        if name != "Content-Language" && !headers.contains_key(name.as_str()) {
            problems.push(format!("{status}: no `{name}` header"));
        }
    }
    let answer = if problems.is_empty() {
        Ok(json)
    } else {
        Err(problems)
    };
    (status, text, answer)
}

/// The document is public and the same on every request; any other method on its
/// path is refused like on every path.
#[tokio::test]
async fn the_document_needs_no_token_and_takes_no_query_string() {
    let gw = TestGateway::start().await;
    let first = gw.get("/openapi.json").await;
    let second = gw.get("/openapi.json").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text, second.text);
    gw.get("/openapi.json?x=1")
        .await
        .assert_problem(400, "invalid-request");
    let posted = crate::helpers::client()
        .post(gw.url("/openapi.json"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(posted.status(), 405);
}

/// The problems every operation documents are the ones it answers: each operation
/// that takes a token answers 401 without one, and each one answers 400 to a query
/// parameter it does not take; both with the headers and bodies the document gives.
#[tokio::test]
async fn every_operation_answers_its_documented_refusals() {
    let gw = TestGateway::start().await;
    let client = crate::helpers::client();
    let doc = gw.get("/openapi.json").await.json;
    let mut failures = Vec::new();
    for (id, op) in operations(&doc) {
        // Any value fits a path parameter here: the refusals come first.
        let path = op
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method =
            reqwest::Method::from_bytes(op.method.to_uppercase().as_bytes()).expect("a method");
        let secured = op.spec["security"].is_array();
        let cases = [
            (secured, path.clone(), None, 401, "unauthenticated"),
            (
                true,
                format!("{path}?unknown=1"),
                token(&gw, &op.spec),
                400,
                "invalid-request",
            ),
        ];
        for (applies, url, token, status, kind) in cases {
            if !applies {
                continue;
            }
            let mut request = client.request(method.clone(), gw.url(&url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = request.send().await.expect("an answer");
            let got = answer.status().as_u16();
            let challenge = answer.headers().contains_key("www-authenticate");
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            let documented = &op.spec["responses"][status.to_string()];
            if got != status || body["type"] != format!("/problems/{kind}") {
                failures.push(format!("{id} {url}: {got} {body}"));
                continue;
            }
            let schema = &documented["content"]["application/problem+json"]["schema"];
            if let Err(e) = check(&doc, schema, &body) {
                failures.push(format!("{id} {url}: {status} does not fit: {e}"));
            }
            if documented["headers"].get("WWW-Authenticate").is_some() && !challenge {
                failures.push(format!("{id} {url}: no challenge"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Answers the examples do not reach fit the document too: `gateway.yaml`'s own
/// connectors (no versions in the registry), a cache that holds records, answers with
/// labels, an export as JSON Lines, and the usual refusals of a lookup.
#[tokio::test]
async fn other_shapes_of_the_answers_fit_the_document_too() {
    let gw = TestGateway::start().await;
    let client = crate::helpers::client();
    let doc = gw.get("/openapi.json").await.json;
    let operations = operations(&doc);
    let persona = |name: &str| {
        let persona = PERSONAS.iter().find(|p| p.name == name).expect("a persona");
        Some(demo::persona_token(&gw.issuer, persona).expect("a token"))
    };
    let lookup = |edit: &dyn Fn(&mut Value)| {
        let mut body = json!({
            "connector": "hukou",
            "operation": "person_by_id",
            "subject": {"id_number": "13990119750327229X"},
            "purpose": "birth_registration",
            "case_id": "DEMO-0001",
        });
        edit(&mut body);
        Some(body)
    };
    let cases: Vec<(&str, &str, &str, Option<Value>, u16)> = vec![
        (
            "showConnector",
            "/v1/admin/connectors/hukou",
            "admin-psb",
            None,
            200,
        ),
        (
            "connectorVersions",
            "/v1/admin/connectors/hukou/versions",
            "admin-psb",
            None,
            200,
        ),
        (
            "lookup",
            "/v1/query",
            "clerk-dongling",
            lookup(&|b| b["labels"] = json!("en")),
            200,
        ),
        (
            "purgeConnectorCache",
            "/v1/admin/connectors/hukou/cache/purge",
            "admin-psb",
            None,
            200,
        ),
        (
            "fillForm",
            "/v1/forms/birth-registration/fill",
            "clerk-dongling",
            Some(
                json!({"subject": {"id_number": "13990119750327229X"}, "case_id": "DEMO-0002", "labels": "zh-CN"}),
            ),
            200,
        ),
        ("lookup", "/v1/query", "clerk-xihe", lookup(&|_| {}), 403),
        (
            "lookup",
            "/v1/query",
            "clerk-dongling",
            lookup(&|b| b["subject"]["id_number"] = json!("13990119750327229Y")),
            400,
        ),
        (
            "lookup",
            "/v1/query",
            "clerk-dongling",
            lookup(&|b| b["connector"] = json!("nope")),
            404,
        ),
        (
            "lookup",
            "/v1/query",
            "clerk-dongling",
            lookup(&|b| b["purpose"] = json!("nope")),
            400,
        ),
        (
            "exportAudit",
            "/v1/audit/export",
            "privacy-officer",
            Some(json!({"format": "jsonl"})),
            200,
        ),
        (
            "showAccessRequest",
            "/v1/access-requests/ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e",
            "lead-dongling",
            None,
            404,
        ),
        (
            "disableConnector",
            "/v1/admin/connectors/hukou/disable",
            "admin-psb",
            None,
            409,
        ),
        ("listGrants", "/v1/grants", "admin-psb", None, 200),
    ];
    let mut failures = Vec::new();
    for (id, path, who, body, expected) in cases {
        let op = &operations[id];
        let (status, text, answer) =
            exchange(&client, &gw, &doc, op, path, persona(who), body.as_ref()).await;
        if let Err(problems) = answer {
            failures.extend(problems.into_iter().map(|p| format!("{id} {path}: {p}")));
        }
        if status != expected {
            failures.push(format!(
                "{id} {path} as {who}: {status}, not {expected}: {text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
