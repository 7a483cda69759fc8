//! Access requests and the grants they become (乡镇"点菜", 部门审批, 收回), as the
//! JSON API answers them; the rules and the use cases are the domain's
//! ([`crate::access`]), shared with the console's access desks.
//!
//! A township lead asks a department for conditional fields of one of its connectors,
//! for purposes, for the township's clerks or grid workers
//! (`POST /v1/access-requests`). The department's own admin — never an operator, never
//! another department, never the person who asked — approves it, possibly narrowing
//! the fields, masking them more, shortening the validity or adding a quota
//! (`…/{id}/approve`), or refuses it with a reason (`…/{id}/refuse`). An approval
//! writes a grant into the registry as a one-grant policy file, compiled exactly as
//! `policies/*.yaml` are, and the configuration it makes is in force when the answer
//! is sent. The department (or an operator) revokes (收回) an API grant with
//! `POST /v1/grants/{id}/revoke`; grants from the county's files are changed by editing
//! the files. `GET /v1/access-requests` (and `/overdue`, `/{id}`) and `GET /v1/grants`
//! list what the caller may see.
//!
//! Each handler parses, calls the use case and answers; a department should answer
//! within `access_requests.deadline_working_days` working days of `gateway.yaml`
//! ([`crate::access::DEADLINE_WORKING_DAYS`] by default), counted in its working-day
//! [`crate::calendar`].

mod answers;
mod decisions;
mod grants;
mod requests;

use std::collections::BTreeMap;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::NaiveDate;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::lists::ListQuery;
use super::problem::Problem;
use super::{Authenticated, Peer, RequestId};
use crate::access::{self, Who};
use crate::app::App;
use crate::registry::{AccessRequest, Revocation};
use answers::{AccessRequestView, Approved, GrantList, Refused, RequestList, Revoked};
use decisions::*;
use grants::*;
use requests::*;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_requests, create_request))
        .routes(routes!(list_overdue))
        .routes(routes!(show_request))
        .routes(routes!(approve))
        .routes(routes!(refuse))
        .routes(routes!(withdraw))
        .routes(routes!(list_grants))
        .routes(routes!(revoke))
}

/// The path parameter of a request's routes.
const REQUEST_ID: &str = "The access request's id.";

crate::problems!(
    /// Reading requests.
    ReadProblems = [Unauthenticated, Forbidden, RegistryUnavailable]
);

crate::problems!(
    /// A department's decision on a request (approve, refuse).
    DecisionProblems = [
        Unauthenticated, Forbidden, UnknownRequest, AlreadyDecided, UnsupportedMediaType,
        PayloadTooLarge, InvalidConfig, ConfigCheckTooSlow, RegistryConflict,
        RegistryUnavailable, AuditUnavailable,
    ]
);

crate::problems!(
    /// The township lead's withdrawal (no body).
    WithdrawProblems = [
        Unauthenticated, Forbidden, UnknownRequest, AlreadyDecided, InvalidConfig,
        ConfigCheckTooSlow, RegistryConflict, RegistryUnavailable, AuditUnavailable,
    ]
);

crate::problems!(
    /// Revoking a grant.
    RevokeProblems = [
        Unauthenticated, Forbidden, UnknownGrant, AlreadyDecided, FileManaged,
        UnsupportedMediaType, PayloadTooLarge, InvalidConfig, ConfigCheckTooSlow,
        RegistryConflict, RegistryUnavailable, AuditUnavailable,
    ]
);

/// Who asks, for the use case.
fn who(
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
) -> Who {
    Who {
        request_id,
        caller,
        peer,
    }
}

/// Reads an optional JSON body: an empty one is `T::default()`.
fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, Problem> {
    if matches!(&body, Ok(b) if b.is_empty()) {
        return Ok(T::default());
    }
    crate::http::body::json(headers, body, expected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::access::is_overdue;
    use crate::access::tests::{day, request};
    use crate::registry::RequestState;

    #[test]
    fn a_pending_request_past_its_deadline_is_overdue_and_listed() {
        let old = request("2026-05-08", RequestState::Pending);
        assert_eq!(old.deadline, "2026-05-22");
        assert!(
            !is_overdue(&old, day("2026-05-22")),
            "due on the day itself"
        );
        assert!(is_overdue(&old, day("2026-05-25")));
        let decided = request("2026-05-08", RequestState::Approved);
        assert!(!is_overdue(&decided, day("2026-05-25")));
        let fresh = AccessRequest {
            id: "ar-fresh".to_owned(),
            ..request("2026-05-20", RequestState::Pending)
        };

        let all = [old, decided, fresh];
        let listed = request_page(
            &all,
            day("2026-05-25"),
            true,
            &ListQuery::all(),
            &BTreeMap::new(),
        );
        let ids: Vec<&str> = listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ar-test"]);
        assert_eq!(listed["requests"][0]["overdue"], true);
        let everything = request_page(
            &all,
            day("2026-05-25"),
            false,
            &ListQuery::all(),
            &BTreeMap::new(),
        );
        assert_eq!(everything["requests"].as_array().unwrap().len(), 3);
        assert_eq!(everything["requests"][2]["overdue"], false);
    }
}
