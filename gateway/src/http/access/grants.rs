//! Grants in force and past (`GET /v1/grants`) and taking one back (收回,
//! `POST /v1/grants/{id}/revoke`): parse, call [`crate::access`], answer.

use super::*;

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
