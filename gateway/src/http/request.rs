//! The lookup request's body and the wire shape of a subject (`{id_number}` or
//! `{household_number}`), read through [`super::body`] and checked by
//! [`crate::lookup::subject`].

use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;
use connectors::definition::SubjectKey;
use serde::Deserialize;

use super::problem::Problem;
use crate::lookup::{SubjectError, SubjectKeyValue};

/// A lookup: one subject, through one operation of one connector, for a purpose and
/// a case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LookupRequest)]
pub(crate) struct QueryRequest {
    /// The connector's id (`GET /v1/catalog` lists them).
    #[schema(example = "hukou")]
    pub(crate) connector: String,
    /// One of the connector's operations.
    #[schema(example = "person_by_id")]
    pub(crate) operation: String,
    pub(crate) subject: SubjectIn,
    /// A purpose code of the county's purpose catalog (事项目录).
    #[schema(example = "birth_registration")]
    pub(crate) purpose: String,
    /// The case (办件) the lookup is for: free text without personal data.
    #[schema(example = "DEMO-0001")]
    pub(crate) case_id: String,
    /// Labels beside codes in this language (`crate::labels`); else `Accept-Language`.
    #[serde(default)]
    #[schema(value_type = Option<LabelLanguage>)]
    pub(crate) labels: Option<String>,
}

/// Who a lookup is about: exactly one key, the one the operation takes
/// (`subject` in the catalog).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Subject)]
pub(crate) struct SubjectIn {
    /// A resident ID number (GB 11643: 18 characters, valid check digit).
    #[schema(example = "13990119750327229X", pattern = "^[0-9]{17}[0-9X]$")]
    id_number: Option<String>,
    /// A household registration number (户号).
    #[schema(example = "205000006")]
    household_number: Option<String>,
}

/// A language the gateway writes labels in.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "a schema: the wire values of `labels` and `lang`")]
pub(crate) enum LabelLanguage {
    #[schema(rename = "zh-CN")]
    ZhCn,
    #[schema(rename = "en")]
    En,
}

impl std::fmt::Debug for SubjectIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectIn(..)")
    }
}

impl SubjectIn {
    /// The keys as given, unchecked: (ID number, household number).
    pub(crate) fn into_parts(self) -> (Option<String>, Option<String>) {
        (self.id_number, self.household_number)
    }

    /// The subject key `key`, checked.
    pub(crate) fn key(self, key: SubjectKey) -> Result<SubjectKeyValue, SubjectError> {
        crate::lookup::subject_key(key, self.id_number, self.household_number)
    }
}

pub(crate) fn parse(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<QueryRequest, Problem> {
    super::body::json(
        headers,
        body,
        "{connector, operation, subject: {id_number}, purpose, case_id}",
    )
}
