//! A department's decision on a request (`…/{id}/approve`, `…/{id}/refuse`): parse,
//! call [`crate::access`], answer.

use super::*;

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
