//! The one error type of the HTTP boundary, an RFC 9457
//! `application/problem+json` body.
//!
//! Use [`Problem`] for every error a handler returns; domain errors become one in
//! [`super::error`]. Its kind comes from the catalogue in [`crate::problem`].
//! `detail` and the extension members are written by the gateway, never copied from
//! upstream answers or request data, so an error body cannot leak personal data or
//! department content. Internal causes go to the log.

use axum::http::{HeaderName, HeaderValue};

pub use crate::problem::{Blame, ProblemKind};
use serde_json::{Map, Value, json};

/// An error answer. Build with [`Problem::new`] and add members with [`Problem::with`].
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Written by the gateway; never contains request data or upstream content.
    pub detail: String,
    pub extensions: Map<String, Value>,
    pub request_id: Option<String>,
    /// Extra response headers (`Retry-After`, `RateLimit`), written by the gateway.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            extensions: Map::new(),
            request_id: None,
            headers: Vec::new(),
        }
    }

    /// Adds an extension member (a gateway-made value such as a connector id or a
    /// schema path).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    pub fn for_request(mut self, request_id: &str) -> Problem {
        self.request_id = Some(request_id.to_owned());
        self
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": self.kind.status().as_u16(),
            "detail": self.detail,
            "blame": self.kind.blame().as_str(),
        });
        if let Some(id) = &self.request_id {
            body["instance"] = Value::String(format!("urn:uuid:{id}"));
            body["request_id"] = Value::String(id.clone());
        }
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extensions {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        body
    }
}

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_follows_rfc_9457() {
        let p = Problem::new(ProblemKind::UpstreamSchemaViolation, "x")
            .with("connector", "hukou")
            .for_request("0192");
        let body = p.body();
        assert_eq!(body["type"], "/problems/upstream-schema-violation");
        assert_eq!(body["status"], 502);
        assert_eq!(body["instance"], "urn:uuid:0192");
        assert_eq!(body["connector"], "hukou");
        assert_eq!(body["blame"], "department");
    }

    #[test]
    fn extensions_cannot_overwrite_standard_members() {
        let body = Problem::new(ProblemKind::Internal, "x")
            .with("status", 200)
            .body();
        assert_eq!(body["status"], 500);
    }
}
