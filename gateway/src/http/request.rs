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
