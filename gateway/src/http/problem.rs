//! The one error type of the HTTP boundary, an RFC 9457
//! `application/problem+json` body.
//!
//! Use [`Problem`] for every error a handler returns; domain errors become one in
//! [`super::error`]. Its kind comes from the catalogue in [`crate::problem`].
//! `detail` and the extension members are written by the gateway, never copied from
//! upstream answers or request data, so an error body cannot leak personal data or
//! department content. Internal causes go to the log.

pub use crate::problem::{Blame, Problem, ProblemKind};

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
