//! Asking for fields (`POST /v1/access-requests`), listing and showing requests,
//! withdrawing one: parse, call [`crate::access`], answer.

use super::*;

/// Files an access request.
#[utoipa::path(
    post,
    path = "/v1/access-requests",
    tag = "access",
    operation_id = "createAccessRequest",
    summary = "Ask a department for fields, for purposes (乡镇点菜)",
    description = "A township lead asks, for their township, for conditional fields of one \
        connector's operations, for purposes, for the township's roles, with a justification \
        (free text without ID numbers or phone numbers). The department should answer within \
        `access_requests.deadline_working_days` working days. A second pending request for \
        exactly the same is refused (409 `duplicate-request`). Audited.",
    request_body(content = crate::access::NewRequest, content_type = "application/json",
        example = crate::http::openapi::examples::access_request),
    security(("bearer" = ["township_lead"])),
    responses((status = 201, description = "Filed, pending.", body = AccessRequestView),
        CreateProblems),
)]
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

crate::problems!(
    CreateProblems = [
        Unauthenticated,
        Forbidden,
        DuplicateRequest,
        UnsupportedMediaType,
        PayloadTooLarge,
        InvalidConfig,
        ConfigCheckTooSlow,
        RegistryConflict,
        AlreadyDecided,
        RegistryUnavailable,
        AuditUnavailable,
    ]
);

/// The requests the caller may see.
#[utoipa::path(
    get,
    path = "/v1/access-requests",
    tag = "access",
    operation_id = "listAccessRequests",
    summary = "The access requests the caller may see",
    description = "Their township's (a township lead), their department's (a department \
        admin) or all (operators, privacy officers), oldest first. Filtered and paged.",
    params(
        ("state" = Option<String>, Query, description = "`pending`, `approved`, `refused`, `withdrawn` or `revoked`."),
        ("township" = Option<String>, Query, description = "A township code.", example = "139901101"),
        ("connector" = Option<String>, Query, description = "A connector id.", example = "hukou"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Items per page, 1–200 (50 by default)."),
    ),
    security(("bearer" = ["township_lead", "dept_admin", "operator", "privacy_officer"])),
    responses((status = 200, description = "One page of requests.", body = RequestList),
        ReadProblems),
)]
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

/// The overdue requests.
#[utoipa::path(
    get,
    path = "/v1/access-requests/overdue",
    tag = "access",
    operation_id = "listOverdueAccessRequests",
    summary = "The pending requests past their deadline",
    description = "Of those the caller may see, oldest first, on one page.",
    security(("bearer" = ["township_lead", "dept_admin", "operator", "privacy_officer"])),
    responses((status = 200, description = "The overdue requests.", body = RequestList),
        ReadProblems),
)]
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

/// One request.
#[utoipa::path(
    get,
    path = "/v1/access-requests/{id}",
    tag = "access",
    operation_id = "showAccessRequest",
    summary = "One access request",
    description = "Another township's or department's request is unknown (404), as if it did \
        not exist.",
    params(("id" = String, Path, description = REQUEST_ID,
        example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    security(("bearer" = ["township_lead", "dept_admin", "operator", "privacy_officer"])),
    responses((status = 200, description = "The request.", body = AccessRequestView),
        ShowProblems),
)]
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

crate::problems!(
    ShowProblems = [
        Unauthenticated,
        Forbidden,
        UnknownRequest,
        RegistryUnavailable
    ]
);

/// `POST /v1/access-requests/{id}/withdraw`: the township's lead takes back a request
/// that is still pending.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/withdraw",
    tag = "access",
    operation_id = "withdrawAccessRequest",
    summary = "Withdraw a pending request",
    description = "The township's lead takes back their township's request while it is \
        pending. Audited.",
    params(("id" = String, Path, description = REQUEST_ID,
        example = "ar-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    security(("bearer" = ["township_lead"])),
    responses((status = 200, description = "Withdrawn.", body = AccessRequestView),
        WithdrawProblems),
)]
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
