//! The one reader of JSON request bodies, with one set of rules: the content type
//! must be `application/json`, the body fits the size limit, the shape is the
//! declared one (`deny_unknown_fields` on every body type) with one value and nothing
//! after it. An error names where the body went wrong — only declared field names and
//! list positions — and never echoes what was sent.

use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;

use super::problem::{Problem, ProblemKind};

/// Parses a JSON request body into `T`; `expected` describes its shape for the error.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, Problem> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "Send the request body as application/json.",
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                ProblemKind::PayloadTooLarge,
                "The request body is too large.",
            )
        } else {
            Problem::new(
                ProblemKind::InvalidRequest,
                "The request body could not be read.",
            )
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Name where the body went wrong and what kind of error it is; never echo
        // the body: serde's messages can quote the offending value, and a path can
        // hold a key the caller wrote (an ID number as a key), so only the declared
        // field names of `expected` and list positions are named.
        let what = match e.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the body is not well-formed JSON"
            }
            _ => "the body does not have the expected fields and types",
        };
        Problem::new(
            ProblemKind::InvalidRequest,
            format!("Expected {expected}: {what}."),
        )
        .with("at", declared_path(e.path(), expected))
    })?;
    // One JSON value and nothing after it.
    de.end().map_err(|_| {
        Problem::new(
            ProblemKind::InvalidRequest,
            format!("Expected {expected}: the body has data after the JSON value."),
        )
    })?;
    Ok(value)
}

/// The part of `path` made of field names that `expected` declares and list
/// positions; it stops at the first segment that is neither.
fn declared_path(path: &serde_path_to_error::Path, expected: &str) -> String {
    use serde_path_to_error::Segment;
    let declared: std::collections::BTreeSet<&str> = expected
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .collect();
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key }
                if declared.contains(key.as_str()) =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_body_names_only_declared_fields_and_refuses_trailing_data() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            subject: std::collections::BTreeMap<String, u32>,
            case_id: String,
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        let parse = |body: &str| {
            json::<Body>(
                &headers,
                Ok(Bytes::from(body.to_owned())),
                "{subject, case_id}",
            )
        };
        let id = "13990119750327229X";
        for body in [
            format!(r#"{{"{id}": 1}}"#),
            format!(r#"{{"subject": {{"{id}": "x"}}, "case_id": "c"}}"#),
            format!(r#"{{"subject": {{}}, "case_id": 1, "{id}": 2}}"#),
        ] {
            let problem = parse(&body).unwrap_err();
            let text = serde_json::to_string(&problem.extensions).unwrap() + &problem.detail;
            assert!(!text.contains(id), "{text}");
        }
        let problem = parse(r#"{"subject": {"a": "x"}, "case_id": "c"}"#).unwrap_err();
        assert_eq!(problem.extensions["at"], "subject");
        let problem = parse(r#"{"subject": {}, "case_id": "c"} {"more": 1}"#).unwrap_err();
        assert!(
            problem.detail.contains("data after the JSON value"),
            "{}",
            problem.detail
        );
        assert!(parse(r#"{"subject": {}, "case_id": "c"}  "#).is_ok());
    }
}
