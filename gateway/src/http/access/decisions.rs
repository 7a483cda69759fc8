//! A department's decision on a request (`…/{id}/approve`, `…/{id}/refuse`): parse,
//! call [`crate::access`], answer.

use super::*;

/// Approves a request: the grant is in force when the answer is sent.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/approve",
    tag = "access",
    operation_id = "approveAccessRequest",
    summary = "Grant a request, as asked or narrower (部门端菜)",
    description = "The owning department's admin — never an operator, never the person who \
        asked — approves, possibly narrowing the fields, masking them more, shortening the \
        validity or adding a quota. The grant is written as a one-grant policy file, checked \
        like any change, and in force when the answer is sent; its id is the request's. Every \
        member of the body is optional (an empty body grants as asked). Audited.",
    params(("id" = String, Path, description = REQUEST_ID,
        example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    request_body(content = Option<crate::access::Approval>, content_type = "application/json",
        example = crate::http::openapi::examples::approval),
    security(("bearer" = ["dept_admin"])),
    responses((status = 200, description = "Approved; the grant is in force.", body = Approved),
        DecisionProblems),
)]
pub(super) async fn approve(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let approval = body_or_default(&headers, body, access::APPROVAL_SHAPE);
    match access::approve(&app, &who, &id, approval).await {
        Ok(decision) => {
            let today = crate::policy::china_today();
            let config = app.config.load();
            let grant = decision.grant.as_ref().map(|record| {
                let in_force = config.policies.grants().iter().find(|g| g.id == record.id);
                access::api_grant_view(record, today, in_force)
            });
            axum::Json(json!({
                "request": access::request_view(&decision.request, today, None),
                "grant": grant,
                "config_version": decision.config_version,
            }))
            .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// Refuses a request.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/refuse",
    tag = "access",
    operation_id = "refuseAccessRequest",
    summary = "Refuse a request, saying why",
    description = "The owning department's admin, with a reason (free text without ID numbers \
        or phone numbers). Audited.",
    params(("id" = String, Path, description = REQUEST_ID,
        example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    request_body(content = crate::access::Reason, content_type = "application/json",
        example = crate::http::openapi::examples::refusal),
    security(("bearer" = ["dept_admin"])),
    responses((status = 200, description = "Refused.", body = Refused), DecisionProblems),
)]
pub(super) async fn refuse(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let reason = body_or_default(&headers, body, access::REASON_SHAPE);
    match access::refuse(&app, &who, &id, reason).await {
        Ok(decision) => axum::Json(json!({
            "request": access::request_view(&decision.request, crate::policy::china_today(), None),
            "config_version": decision.config_version,
        }))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}
