//! The document as a whole: its snapshot (every change to the public surface shows
//! in review), its shape, and every example in it valid against its own schema. That
//! the answers are what it says is the end-to-end test's (`tests/e2e/openapi.rs`).

use serde_json::{Value, json};

use super::*;
use crate::problem::ProblemKind;

fn doc() -> Value {
    serde_json::to_value(document()).expect("the document serializes")
}

/// The operations: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            out.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    out
}

/// Whether `instance` fits `schema`, a schema of `doc` (its references resolved in
/// `doc`).
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
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn the_document_is_what_the_snapshot_shows() {
    insta::assert_json_snapshot!("openapi", doc());
}

#[test]
fn the_document_is_openapi_3_1_with_every_operation_named_tagged_and_answered() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = std::collections::BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        assert_eq!(
            operation["tags"].as_array().map(Vec::len),
            Some(1),
            "{method} {path}: one tag"
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success"
        );
        for (status, response) in responses {
            let problem = response["content"]
                .get("application/problem+json")
                .is_some();
            assert_eq!(
                problem,
                !status.starts_with('2'),
                "{method} {path} {status}: problems, and only problems, are problem+json"
            );
        }
        // Every operation can be refused a query string (400) and fail (500).
        assert!(responses.contains_key("400") && responses.contains_key("500"));
        // An operation that takes a token says which roles, and can answer 401.
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(
            responses.contains_key("401"),
            bearer,
            "{method} {path}: 401 exactly when a token is needed"
        );
    }
    assert!(ids.len() >= 38, "{} operations", ids.len());
}

#[test]
fn every_problem_type_is_in_the_problem_schema_and_answered_somewhere() {
    let doc = doc();
    let types = &doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"];
    let text = doc["paths"].to_string();
    for kind in ProblemKind::ALL {
        assert!(
            types
                .as_array()
                .is_some_and(|t| t.contains(&json!(kind.type_uri()))),
            "{}",
            kind.slug()
        );
        // Each one some operation can answer with — but `method-not-allowed`, which
        // answers a method no operation has.
        if *kind == ProblemKind::MethodNotAllowed {
            continue;
        }
        assert!(
            text.contains(&format!("\"{}\"", kind.type_uri())),
            "no operation answers {}",
            kind.slug()
        );
    }
}

#[test]
fn every_example_fits_its_schema() {
    let doc = doc();
    let mut checked = 0;
    for (method, path, operation) in operations(&doc) {
        let place = format!("{method} {path}");
        if let Some(content) = operation["requestBody"]["content"].as_object() {
            for media in content.values() {
                let example = media
                    .get("example")
                    .expect("every request body has an example");
                check(&doc, &media["schema"], example)
                    .unwrap_or_else(|e| panic!("{place}: the request example: {e}"));
                checked += 1;
            }
        }
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if let Some(example) = parameter.get("example") {
                check(&doc, &parameter["schema"], example).unwrap_or_else(|e| {
                    panic!("{place}: the example of `{}`: {e}", parameter["name"])
                });
                checked += 1;
            }
        }
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            for media in response["content"].as_object().into_iter().flatten() {
                if let Some(example) = media.1.get("example") {
                    check(&doc, &media.1["schema"], example)
                        .unwrap_or_else(|e| panic!("{place} {status}: the example: {e}"));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "{checked} examples");
}

#[test]
fn every_path_parameter_is_declared() {
    let doc = doc();
    for (method, path, operation) in operations(&doc) {
        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let named: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, named, "{method} {path}");
    }
}

/// The routes of the HTTP layer's source files that are not declared through the
/// document: `(file, line)` for every `.route(`, `.route_service(` or `.nest(`.
fn undocumented_routes(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("the source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            undocumented_routes(&path, out);
            continue;
        }
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        // A file's code, without its tests.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for line in code.lines().map(str::trim) {
            if line.starts_with("//") {
                continue;
            }
            if [".route(", ".route_service(", ".nest("]
                .iter()
                .any(|call| line.contains(call))
            {
                let name = path.file_name().expect("a name").to_string_lossy();
                out.push((name.into_owned(), line.to_owned()));
            }
        }
    }
}

/// The router serves the API from the document's declarations (`routes!`): nowhere
/// does the HTTP layer add a route of its own, but the metrics listener's `/metrics`
/// (the same exposition as the documented `GET /metrics`, without a token, on its own
/// listener). The console's pages are merged in from the console, not here.
#[test]
fn no_route_is_served_without_being_documented() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut found = Vec::new();
    undocumented_routes(&src, &mut found);
    assert_eq!(
        found,
        [(
            "mod.rs".to_owned(),
            ".route(\"/metrics\", get(metrics::exposition))".to_owned()
        )],
        "a route not declared through the OpenAPI document"
    );
    let doc = doc();
    assert!(doc["paths"]["/metrics"]["get"].is_object());
}
