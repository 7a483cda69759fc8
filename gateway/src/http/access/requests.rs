//! Asking for fields (`POST /v1/access-requests`), listing and showing requests,
//! withdrawing one: parse, call [`crate::access`], answer.

use super::*;

pub(super) async fn create_request(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let body = crate::http::body::json(&headers, body, access::NEW_REQUEST_SHAPE);
    match access::create(&app, &who, body).await {
        Ok(request) => (
            StatusCode::CREATED,
            axum::Json(access::request_view(
                &request,
                crate::policy::china_today(),
                None,
            )),
        )
            .into_response(),
        Err(problem) => problem.into_response(),
    }
}

pub(super) async fn list_requests(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    peer: Peer,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match ListQuery::of(
        raw.as_deref(),
        &["pending", "approved", "refused", "withdrawn", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let who = who(RequestId(request_id), peer, caller);
    list_of(&app, &who, &query, false).await
}

pub(super) async fn list_overdue(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
) -> Response {
    let who = who(request_id, peer, caller);
    list_of(&app, &who, &ListQuery::all(), true).await
}

/// The visible requests that pass `query`'s filters, oldest first, one page.
async fn list_of(app: &App, who: &Who, query: &ListQuery, only_overdue: bool) -> Response {
    match access::list_requests(app, who).await {
        Ok(visible) => axum::Json(request_page(
            &visible.requests,
            visible.today,
            only_overdue,
            query,
            &visible.revoked,
        ))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// One page of `requests` (oldest first) that pass `query` (and are overdue on
/// `today`, with `only_overdue`), with the cursor of the next page.
pub(super) fn request_page(
    requests: &[AccessRequest],
    today: NaiveDate,
    only_overdue: bool,
    query: &ListQuery,
    revoked: &BTreeMap<String, Revocation>,
) -> Value {
    let filtered: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| !only_overdue || access::is_overdue(r, today))
        .filter(|r| ListQuery::matches(&query.state, access::shown_state(r, revoked)))
        .filter(|r| ListQuery::matches(&query.township, &r.township))
        .filter(|r| ListQuery::matches(&query.connector, &r.connector))
        .collect();
    let (page, next) = query.page(filtered, |r| r.id.clone());
    let views: Vec<Value> = page
        .into_iter()
        .map(|r| {
            let revocation = r.grant_id.as_ref().and_then(|g| revoked.get(g));
            access::request_view(r, today, revocation)
        })
        .collect();
    json!({ "requests": views, "next_cursor": next })
}

pub(super) async fn show_request(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Response {
    let who = who(request_id, peer, caller);
    match access::show_request(&app, &who, &id).await {
        Ok((request, revocation)) => axum::Json(access::request_view(
            &request,
            crate::policy::china_today(),
            revocation.as_ref(),
        ))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// `POST /v1/access-requests/{id}/withdraw`: the township's lead takes back a request
/// that is still pending.
pub(super) async fn withdraw(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Response {
    let who = who(request_id, peer, caller);
    match access::withdraw(&app, &who, &id).await {
        Ok(withdrawn) => axum::Json(access::request_view(
            &withdrawn,
            crate::policy::china_today(),
            None,
        ))
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}
