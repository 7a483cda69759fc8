//! The answer ↔ audit binding: an answer that released data names the audit events
//! that record it, in an `Audit-Event` header — `<chain id>/<seq>/<hash>` for each
//! event (a form's lookups are several, separated by `, `). A township app can keep
//! it as proof of what it received; a privacy officer finds the same chain id, seq
//! and hash in the audit search, and `gateway audit verify` checks that the hash is
//! the chain's at that seq. It carries no personal data: the chain id is random, the
//! hash covers the whole event.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::audit::Recorded;

/// The header naming the audit events of an answer.
pub const AUDIT_EVENT: HeaderName = HeaderName::from_static("audit-event");

/// Names `recorded` on `response` (nothing when there is none).
pub(crate) fn attach(response: &mut Response, recorded: &[Recorded]) {
    if recorded.is_empty() {
        return;
    }
    let value = recorded
        .iter()
        .map(|r| format!("{}/{}/{}", r.chain_id, r.seq, r.hash))
        .collect::<Vec<_>>()
        .join(", ");
    // Hex digits, digits and separators: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(AUDIT_EVENT, value);
    }
}
