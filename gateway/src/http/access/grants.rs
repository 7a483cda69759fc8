//! Grants in force and past (`GET /v1/grants`) and taking one back (收回,
//! `POST /v1/grants/{id}/revoke`): parse, call [`crate::access`], answer.

use super::*;

/// The grants the caller may see.
#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "access",
    operation_id = "listGrants",
    summary = "The grants the caller may see",
    description = "The county's file grants and those approved requests wrote, as the caller \
        may see them, with their state today and the row condition they enforce, oldest \
        first. Filtered and paged.",
    params(
        ("state" = Option<String>, Query, description = "`active`, `not_yet_valid`, `expired` or `revoked`."),
        ("township" = Option<String>, Query, description = "A township code.", example = "139901101"),
        ("connector" = Option<String>, Query, description = "A connector id.", example = "hukou"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Items per page, 1–200 (50 by default)."),
    ),
    security(("bearer" = ["township_lead", "dept_admin", "operator", "privacy_officer"])),
    responses((status = 200, description = "One page of grants.", body = GrantList), ReadProblems),
)]
pub(super) async fn list_grants(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    peer: Peer,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    let who = who(RequestId(request_id), peer, caller);
    if !access::may_list(&who.caller) {
        return access::not_listed()
            .for_request(&who.request_id)
            .into_response();
    }
    let query = match ListQuery::of(
        raw.as_deref(),
        &["active", "not_yet_valid", "expired", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&who.request_id).into_response(),
    };
    let listed = match access::list_grants(&app, &who, &access::GrantFilter::default()).await {
        Ok(listed) => listed,
        Err(problem) => return problem.into_response(),
    };
    let filtered: Vec<&access::ListedGrant> = listed
        .iter()
        .filter(|g| ListQuery::matches(&query.state, g.state.as_str()))
        .filter(|g| ListQuery::matches(&query.connector, &g.view.connector))
        .filter(|g| {
            query
                .township
                .as_ref()
                .is_none_or(|t| g.townships().contains(t))
        })
        .collect();
    let (page, next) = query.page(filtered, |g| g.view.id.clone());
    let grants: Vec<Value> = page.into_iter().map(access::ListedGrant::to_json).collect();
    axum::Json(json!({ "grants": grants, "next_cursor": next })).into_response()
}

/// Revokes an API grant.
#[utoipa::path(
    post,
    path = "/v1/grants/{id}/revoke",
    tag = "access",
    operation_id = "revokeGrant",
    summary = "Take a grant back (收回), saying why",
    description = "The granting department's admin or an operator revokes a grant an approved \
        request made (its id is the request's); the next lookup no longer sees it. Grants from \
        the county's files are changed in the files (409 `file-managed`). Audited.",
    params(("id" = String, Path, description = "The grant's id.",
        example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    request_body(content = crate::access::Reason, content_type = "application/json",
        example = crate::http::openapi::examples::revocation),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "Revoked.", body = Revoked), RevokeProblems),
)]
pub(super) async fn revoke(
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
    match access::revoke(&app, &who, &id, reason).await {
        Ok(revoked) => axum::Json(json!({
            "grant": access::api_grant_view(&revoked.grant, crate::policy::china_today(), None),
            "config_version": revoked.config_version,
        }))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}
