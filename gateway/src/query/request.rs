//! The lookup request: its body, the subject key the operation takes (the ID number
//! checked against GB 11643 before anything else happens) and the case id. Every
//! error is a problem that names where the body went wrong, never what it held.

use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;
use connectors::definition::SubjectKey;
use connectors::subject::IdNumber;
use serde::Deserialize;

use crate::problem::{Problem, ProblemKind};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    pub(crate) connector: String,
    pub(crate) operation: String,
    pub(crate) subject: SubjectIn,
    pub(crate) purpose: String,
    pub(crate) case_id: String,
    /// Labels beside codes in this language (`crate::labels`).
    #[serde(default)]
    pub(crate) labels: Option<String>,
}

/// Who the lookup is about. Exactly one key, the one the operation takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubjectIn {
    id_number: Option<String>,
    household_number: Option<String>,
}

impl std::fmt::Debug for SubjectIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectIn(..)")
    }
}

/// The validated subject key.
pub(crate) enum SubjectKeyValue {
    Id(IdNumber),
    Household(String),
}

impl SubjectKeyValue {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            SubjectKeyValue::Id(id) => id.as_str(),
            SubjectKeyValue::Household(h) => h,
        }
    }

    /// A form safe for logs.
    pub(crate) fn masked(&self) -> String {
        match self {
            SubjectKeyValue::Id(id) => id.masked(),
            SubjectKeyValue::Household(h) => {
                let keep = h.len().min(4);
                format!("{}{}", "*".repeat(h.len() - keep), &h[h.len() - keep..])
            }
        }
    }
}

pub(crate) fn parse(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<QueryRequest, Problem> {
    parse_json(
        headers,
        body,
        "{connector, operation, subject: {id_number}, purpose, case_id}",
    )
}

/// Parses a JSON request body into `T`; `expected` describes its shape for the error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
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

/// A household number (户号) as a subject key: 6 to 20 digits.
pub(crate) fn household_number(h: String) -> Result<SubjectKeyValue, Problem> {
    if (6..=20).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit()) {
        Ok(SubjectKeyValue::Household(h))
    } else {
        Err(Problem::new(
            ProblemKind::InvalidRequest,
            "A household number is 6 to 20 digits.",
        )
        .with("at", "subject.household_number"))
    }
}

pub(crate) fn subject_key(key: SubjectKey, subject: SubjectIn) -> Result<SubjectKeyValue, Problem> {
    match (key, subject.id_number, subject.household_number) {
        (SubjectKey::IdNumber, Some(id), None) => {
            IdNumber::parse(&id).map(SubjectKeyValue::Id).map_err(|e| {
                Problem::new(ProblemKind::InvalidIdNumber, e.to_string()).with("check", e.code())
            })
        }
        (SubjectKey::HouseholdNumber, None, Some(h)) => household_number(h),
        (key, _, _) => Err(Problem::new(
            ProblemKind::InvalidRequest,
            format!(
                "This operation takes exactly one subject key: subject.{}.",
                key.as_str()
            ),
        )
        .with("at", "subject")),
    }
}

/// A case id names the clerk's case (办件编号). It is required, short, on one line,
/// and may carry no ID number or mobile number: it is logged and audited in clear.
/// Returns the normalized case id (see [`crate::text`]), which is what is recorded.
pub(crate) fn check_case_id(case_id: &str) -> Result<String, Problem> {
    let invalid =
        |detail: String| Problem::new(ProblemKind::InvalidRequest, detail).with("at", "case_id");
    if case_id.contains('\n') {
        return Err(invalid(
            "case_id may not contain control characters.".to_owned(),
        ));
    }
    crate::text::free_text(case_id, 64, true).map_err(|e| match e {
        crate::text::TextError::Empty | crate::text::TextError::TooLong(_) => {
            invalid("case_id is required and at most 64 characters.".to_owned())
        }
        other => invalid(format!("case_id {other}.")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_bounded_and_free_of_id_numbers() {
        assert!(check_case_id("低保-2026-0012").is_ok());
        assert!(check_case_id("").is_err());
        assert!(check_case_id("   ").is_err());
        assert!(check_case_id(&"x".repeat(65)).is_err());
        assert!(check_case_id("a\nb").is_err());
        let id = IdNumber::build(
            "139901",
            chrono::NaiveDate::from_ymd_opt(1990, 3, 7).unwrap(),
            123,
        )
        .unwrap();
        assert!(check_case_id(&format!("case-{}", id.as_str())).is_err());
    }

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
            parse_json::<Body>(
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

    #[test]
    fn household_numbers_are_masked_in_logs() {
        let h = SubjectKeyValue::Household("139901000123".to_owned());
        assert_eq!(h.masked(), "********0123");
    }
}
