//! The data-governance office's desk for classification changes (invariant 10): the
//! connector versions that loosen the county's classification wait here until the
//! office approves them (they go into force, checked like any change) or refuses them.
//!
//! - `GET /v1/admin/reviews` — every version that needed a review, pending first
//!   (filters `state`, `connector`; paged, see [`crate::lists`])
//!   (governance, operators and privacy officers see all; a department admin sees
//!   their own department's);
//! - `POST /v1/admin/connectors/{id}/versions/{version}/approve` — `{note?}`;
//! - `POST /v1/admin/connectors/{id}/versions/{version}/refuse` — `{reason}`.
//!
//! Only the governance role decides. Every attempt is an admin event in the audit log.
//! What counts as loosening is [`crate::classification`]'s rule.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::action::Action;
use crate::admin::short;
use crate::app::App;
use crate::auth::{Caller, Role};
use crate::registry::{Change, ConnectorVersion, ReviewState};

/// The rule named when a caller may not decide on classification.
const GOVERNANCE_RULE: &str = "classification-owner";
/// The longest note or reason, in characters.
const MAX_TEXT: usize = 2000;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(approve))
        .routes(routes!(refuse))
}

/// Whether the caller may see the review of a version of `department`'s connector.
fn may_see(caller: &Caller, department: &str) -> bool {
    caller.has_role(Role::Governance)
        || caller.has_role(Role::Operator)
        || caller.has_role(Role::PrivacyOfficer)
        || (caller.has_role(Role::DeptAdmin) && caller.department.as_deref() == Some(department))
}

fn view(version: &ConnectorVersion) -> serde_json::Value {
    json!({
        "connector": version.id,
        "version": version.version,
        "department": version.department,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "content": version.content_digest(),
        "review": version.review,
    })
}

/// The classification reviews.
#[utoipa::path(
    get,
    path = "/v1/admin/reviews",
    tag = "reviews",
    operation_id = "listReviews",
    summary = "Connector versions that needed a classification review",
    description = "Pending first, then by connector and version. The data-governance office, \
        operators and privacy officers see all; a department admin sees their department's. \
        Filtered and paged.",
    params(
        ("state" = Option<String>, Query, description = "`pending`, `approved`, `refused` or `superseded`."),
        ("connector" = Option<String>, Query, description = "A connector id.", example = "hukou-residence"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Items per page, 1–200 (50 by default)."),
    ),
    security(("bearer" = ["governance", "operator", "privacy_officer", "dept_admin"])),
    responses((status = 200, description = "One page of reviews.",
        body = super::admin::answers::ReviewList), ListProblems),
)]
async fn list(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let query = match super::lists::ListQuery::of(
        raw.as_deref(),
        &["pending", "approved", "refused", "superseded"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let may_list = [
        Role::Governance,
        Role::Operator,
        Role::PrivacyOfficer,
        Role::DeptAdmin,
    ]
    .iter()
    .any(|role| caller.has_role(*role));
    if !may_list {
        return not_governance().for_request(&request_id).into_response();
    }
    let all = match app.live.registry().reviewed_versions().await {
        Ok(all) => all,
        Err(e) => return crate::admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let mut visible: Vec<&ConnectorVersion> = all
        .iter()
        .filter(|v| may_see(&caller, &v.department))
        .collect();
    // Pending first, then by connector and version.
    visible.sort_by_key(|v| {
        let pending = v.review.as_ref().map(|r| r.state) == Some(ReviewState::Pending);
        (!pending, v.id.clone(), v.version)
    });
    let reviews: Vec<serde_json::Value> = visible
        .into_iter()
        .map(view)
        .filter(|v| {
            super::lists::ListQuery::matches(
                &query.state,
                v["review"]["state"].as_str().unwrap_or(""),
            ) && super::lists::ListQuery::matches(
                &query.connector,
                v["connector"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let (page, next) = query.page(reviews, |v| {
        format!("{}/{}", v["connector"].as_str().unwrap_or(""), v["version"])
    });
    axum::Json(json!({ "reviews": page, "next_cursor": next })).into_response()
}

fn not_governance() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Only the county's data-governance office decides on classification.",
    )
    .with("rule", GOVERNANCE_RULE)
    .with("reason", "role")
}

fn unknown_review() -> Problem {
    Problem::new(
        ProblemKind::UnknownReview,
        "No version with this number waits for a classification review.",
    )
}

crate::problems!(ListProblems = [Unauthenticated, Forbidden, RegistryUnavailable]);

crate::problems!(
    DecisionProblems = [
        Unauthenticated,
        Forbidden,
        UnknownReview,
        AlreadyDecided,
        UnsupportedMediaType,
        PayloadTooLarge,
        InvalidConfig,
        ConfigCheckTooSlow,
        RegistryConflict,
        RegistryUnavailable,
        AuditUnavailable,
    ]
);

/// `{note}` for an approval, `{reason}` for a refusal.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReviewDecision)]
struct Decision {
    /// An approval's note (optional).
    #[serde(default)]
    note: Option<String>,
    /// A refusal's reason (required to refuse).
    #[serde(default)]
    reason: Option<String>,
}

/// Approves a version's classification review: it goes into force.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/versions/{version}/approve",
    tag = "reviews",
    operation_id = "approveReview",
    summary = "Approve a classification review: the version goes into force",
    description = "The data-governance office only. The version is checked like any change and \
        put in force; an approval is refused once another version came first. Free text \
        without ID numbers or phone numbers, at most 2000 characters. Audited.",
    params(
        ("id" = String, Path, description = "The connector's id.", example = "hukou-residence"),
        ("version" = u32, Path, description = "The version under review.", example = 1),
    ),
    request_body(content = Option<Decision>, content_type = "application/json",
        example = super::openapi::examples::review_approval),
    security(("bearer" = ["governance"])),
    responses((status = 200, description = "Approved and in force.",
        body = super::admin::answers::ReviewedVersion), DecisionProblems),
)]
async fn approve(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(
        app, request_id, peer, caller, id, version, headers, body, true,
    )
    .await
}

/// Refuses a version's classification review.
#[utoipa::path(
    post,
    path = "/v1/admin/connectors/{id}/versions/{version}/refuse",
    tag = "reviews",
    operation_id = "refuseReview",
    summary = "Refuse a classification review, saying why",
    description = "The data-governance office only; the version can no longer be put in force \
        (the department saves it again to have it reviewed). Audited.",
    params(
        ("id" = String, Path, description = "The connector's id.", example = "hukou-residence"),
        ("version" = u32, Path, description = "The version under review.", example = 1),
    ),
    request_body(content = Decision, content_type = "application/json",
        example = super::openapi::examples::review_refusal),
    security(("bearer" = ["governance"])),
    responses((status = 200, description = "Refused.",
        body = super::admin::answers::ReviewedVersion), DecisionProblems),
)]
async fn refuse(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(
        app, request_id, peer, caller, id, version, headers, body, false,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn decide(
    app: App,
    request_id: String,
    peer: Option<std::net::SocketAddr>,
    caller: std::sync::Arc<Caller>,
    id: String,
    version: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> Response {
    let action = if approve { "approve" } else { "refuse" };
    let number: Option<u32> = version.parse().ok().filter(|n| *n > 0);
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!(
            "connector.review.{action} {} v{}",
            short(&id),
            number.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
        ),
    );
    if !caller.has_role(Role::Governance) {
        return act.refuse(not_governance()).await.into_response();
    }
    let Some(number) = number else {
        return act.refuse(unknown_review()).await.into_response();
    };
    let decision = match body {
        Ok(ref bytes) if bytes.is_empty() => Ok(Decision::default()),
        _ => super::body::json::<Decision>(&headers, body, "{note} or {reason}"),
    };
    let decision = match decision {
        Ok(decision) => decision,
        Err(problem) => return act.refuse(problem).await.into_response(),
    };
    let text = if approve {
        decision.note.clone()
    } else {
        decision.reason.clone()
    };
    let text = match check_text(text, !approve, if approve { "note" } else { "reason" }) {
        Ok(text) => text,
        Err(problem) => return act.refuse(problem).await.into_response(),
    };
    let versions = match app.live.registry().connector_versions(&id).await {
        Ok(versions) => versions,
        Err(e) => return crate::admin::registry_unavailable(&request_id, &e).into_response(),
    };
    let Some(mut stored) = versions.into_iter().find(|v| v.version == number) else {
        return act.refuse(unknown_review()).await.into_response();
    };
    act.event.connector = Some(stored.id.clone());
    let Some(review) = stored.review.as_mut() else {
        return act.refuse(unknown_review()).await.into_response();
    };
    if review.state != ReviewState::Pending {
        let p = Problem::new(
            ProblemKind::AlreadyDecided,
            "This version's review is already decided, or a later version superseded it.",
        );
        return act.refuse(p).await.into_response();
    }
    review.state = if approve {
        ReviewState::Approved
    } else {
        ReviewState::Refused
    };
    review.decided_at =
        Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    review.decided_by = Some(caller.user.clone());
    review.note = text;
    act.event.operation = Some(format!(
        "connector.review.{action} {} v{number} content={}",
        stored.id,
        stored.content_digest()
    ));
    let answer = view(&stored);
    match act.commit(vec![Change::DecideReview(stored)]).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, connector = %id, version = number, "classification review {action}d");
            let mut answer = answer;
            answer["config_version"] = json!(changed.version);
            axum::Json(answer).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// A note (optional) or a reason (required), as free text ([`crate::text`]).
fn check_text(text: Option<String>, required: bool, name: &str) -> Result<Option<String>, Problem> {
    let text = text.unwrap_or_default();
    match crate::text::free_text(&text, MAX_TEXT, required) {
        Ok(text) if text.is_empty() => Ok(None),
        Ok(text) => Ok(Some(text)),
        Err(crate::text::TextError::Empty) => Err(invalid(name, "say why")),
        Err(e) => Err(invalid(name, &e.to_string())),
    }
}

fn invalid(name: &str, problem: &str) -> Problem {
    Problem::new(ProblemKind::InvalidRequest, format!("{name}: {problem}."))
        .with("at", name.to_owned())
}
