//! The admin API's request bodies for connectors: a definition to save, a reason
//! for an action, a trial call.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;

use crate::problem::Problem;

/// Why, in the person's words (kept in the audit event): optional, at most 2000
/// characters of free text without ID numbers or phone numbers. An empty body is no
/// reason.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ActionReason)]
pub(super) struct ReasonBody {
    #[serde(default)]
    #[schema(example = "部门系统升级维护，今晚 22:00 恢复")]
    reason: Option<String>,
}

/// The optional `{reason}` body of an action; an empty body is no reason.
pub(super) fn reason_of(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, Problem> {
    match &body {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        _ => crate::http::body::json::<ReasonBody>(headers, body, "{reason}").map(|b| b.reason),
    }
}

/// A connector as the admin API takes it: the definition (YAML text, or the same as a
/// JSON object) and the schemas its operations name (path → schema, JSON object or
/// text).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectorDefinition)]
pub(super) struct ConnectorBody {
    /// The connector definition, as in `county/connectors/*.yaml`: YAML text, or the
    /// same as a JSON object.
    pub(super) definition: serde_json::Value,
    /// The JSON Schemas its operations name: path → schema (a JSON object, or text).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(super) schemas: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The text of a definition or schema sent as a string or an object; `None` for
/// anything else (the error says so without quoting it).
pub(super) fn as_text(value: &serde_json::Value, yaml: bool) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(_) if yaml => serde_yaml_ng::to_string(value).ok(),
        serde_json::Value::Object(_) => serde_json::to_string_pretty(value).ok(),
        _ => None,
    }
}

/// One trial call to the department.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectorTestRequest)]
pub(super) struct TestBody {
    /// The operation to call.
    #[schema(example = "residence_by_id")]
    pub(super) operation: String,
    pub(super) subject: TestSubject,
}

/// The sample subject: an ID number, or for a household operation a household
/// number (in `id_number`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestSubject)]
pub(super) struct TestSubject {
    #[schema(example = "13990119750327229X")]
    pub(super) id_number: String,
}

impl std::fmt::Debug for TestSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestSubject(..)")
    }
}
