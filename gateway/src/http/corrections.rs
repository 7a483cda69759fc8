//! Data correction (数据纠错) as the JSON API answers it; the rules and the use cases
//! are the domain's ([`crate::corrections`]), shared with the console.
//!
//! A township's clerk, grid worker or lead flags a value they were shown
//! (`POST /v1/corrections`); the owning department's admin lists its queue
//! (`GET /v1/corrections`, open first, oldest first, overdue marked), opens one
//! (`GET /v1/corrections/{id}`) and accepts it (`…/accept`: the department corrected
//! its system, the gateway drops the cached records of the person on the connector)
//! or rejects it with a reason (`…/reject`). The filing township lists its own. Each
//! handler parses, calls the use case and answers; errors never echo the stated value
//! or the ID number.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::lists::{CORRECTIONS, ListQuery};
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::corrections::{self, CorrectionView, Who};
use crate::problem::Problem;
use crate::registry::Correction;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list, file))
        .routes(routes!(show))
        .routes(routes!(accept))
        .routes(routes!(reject))
}

/// The path parameter of a correction's routes.
const CORRECTION_ID: &str = "The correction's id.";

crate::problems!(
    FileProblems = [
        Unauthenticated,
        Forbidden,
        InvalidIdNumber,
        UnsupportedMediaType,
        PayloadTooLarge,
        RegistryConflict,
        RegistryUnavailable,
        AuditUnavailable,
    ]
);

crate::problems!(
    /// Reading corrections.
    ReadProblems = [Unauthenticated, Forbidden, RegistryUnavailable]
);

crate::problems!(
    ShowProblems = [
        Unauthenticated,
        Forbidden,
        UnknownCorrection,
        RegistryUnavailable
    ]
);

crate::problems!(
    /// A department's answer.
    AnswerProblems = [
        Unauthenticated, UnknownCorrection, AlreadyDecided, UnsupportedMediaType,
        PayloadTooLarge, RegistryConflict, RegistryUnavailable, AuditUnavailable,
    ]
);

/// One page of corrections.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CorrectionList {
    corrections: Vec<CorrectionView>,
    /// The `cursor` of the next page (`null` on the last).
    next_cursor: Option<String>,
}

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
) -> Result<T, crate::problem::Problem> {
    if matches!(&body, Ok(b) if b.is_empty()) {
        return Ok(T::default());
    }
    crate::http::body::json(headers, body, expected)
}

const ANSWER_SHAPE: &str = "{reason?}";

/// Files a correction.
#[utoipa::path(
    post,
    path = "/v1/corrections",
    tag = "corrections",
    operation_id = "fileCorrection",
    summary = "Flag a wrong value for its department to correct (数据纠错)",
    description = "A township's clerk, grid worker or lead flags one field of one operation \
        of a connector for a person, with the value the citizen states, a note, the case id \
        and an evidence reference. Only a value the township was shown can be flagged: the \
        audit log must hold a lookup by the township of that person, connector and \
        operation that released the field in the last 30 days (403 `forbidden`, rule \
        `correction-shown`, otherwise); a `never` field cannot be flagged. The owning \
        department should answer within `corrections.deadline_working_days` working days. \
        The stated value and the note are erased `corrections.retention_days` days after \
        the answer. Audited (without the stated value, the note or the ID number).",
    request_body(content = crate::corrections::NewCorrection, content_type = "application/json",
        example = crate::http::openapi::examples::correction),
    security(("bearer" = ["clerk", "grid_worker", "township_lead"])),
    responses((status = 201, description = "Filed, open.", body = CorrectionView),
        FileProblems),
)]
async fn file(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let body = crate::http::body::json(&headers, body, corrections::NEW_CORRECTION_SHAPE);
    match corrections::file(&app, &who, body).await {
        Ok(c) => (
            StatusCode::CREATED,
            axum::Json(CorrectionView::now(&app, &c)),
        )
            .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The corrections the caller may see.
#[utoipa::path(
    get,
    path = "/v1/corrections",
    tag = "corrections",
    operation_id = "listCorrections",
    summary = "A department's correction queue, or a township's corrections",
    description = "The owning department's admin sees its department's, the filing \
        township's clerks, grid workers and leads see their township's: open ones first, \
        then oldest first, each overdue one marked with the working days past its deadline. \
        Filtered and paged.",
    params(
        ("state" = Option<String>, Query, description = "`open`, `accepted` or `rejected`."),
        ("connector" = Option<String>, Query, description = "A connector id.", example = "hukou"),
        ("overdue" = Option<String>, Query, description = "`true`: only open ones past their deadline; `false`: only the others."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Items per page, 1–200 (50 by default)."),
    ),
    security(("bearer" = ["dept_admin", "clerk", "grid_worker", "township_lead"])),
    responses((status = 200, description = "One page of corrections.", body = CorrectionList),
        ReadProblems),
)]
async fn list(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    peer: Peer,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match ListQuery::of_route(
        raw.as_deref(),
        CORRECTIONS,
        &["open", "accepted", "rejected"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let who = who(RequestId(request_id), peer, caller);
    match corrections::list(&app, &who).await {
        Ok(all) => {
            let config = app.config.load();
            axum::Json(page(&all, app.clock.today(), &config.calendar, &query)).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// One page of `all` (in queue order) that passes `query` on `today`.
pub(crate) fn page(
    all: &[Correction],
    today: NaiveDate,
    calendar: &crate::calendar::Calendar,
    query: &ListQuery,
) -> CorrectionList {
    let filtered: Vec<CorrectionView> = all
        .iter()
        .map(|c| CorrectionView::of(c, today, calendar))
        .filter(|v| ListQuery::matches(&query.state, v.state.as_str()))
        .filter(|v| ListQuery::matches(&query.connector, &v.connector))
        .filter(|v| {
            query
                .overdue
                .as_deref()
                .is_none_or(|o| (o == "true") == v.overdue)
        })
        .collect();
    let (corrections, next_cursor) = query.page(filtered, |v| v.id.clone());
    CorrectionList {
        corrections,
        next_cursor,
    }
}

/// One correction.
#[utoipa::path(
    get,
    path = "/v1/corrections/{id}",
    tag = "corrections",
    operation_id = "showCorrection",
    summary = "One correction",
    description = "Another township's or department's correction is unknown (404), as if it \
        did not exist.",
    params(("id" = String, Path, description = CORRECTION_ID,
        example = "cr-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    security(("bearer" = ["dept_admin", "clerk", "grid_worker", "township_lead"])),
    responses((status = 200, description = "The correction.", body = CorrectionView),
        ShowProblems),
)]
async fn show(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Response {
    let who = who(request_id, peer, caller);
    answered(&app, corrections::show(&app, &who, &id).await)
}

/// Accepts a correction.
#[utoipa::path(
    post,
    path = "/v1/corrections/{id}/accept",
    tag = "corrections",
    operation_id = "acceptCorrection",
    summary = "The department corrected its system",
    description = "The owning department's admin accepts once the department has corrected \
        its own system; the gateway drops the cached records of the person on the connector \
        (on every replica), so the next lookup reads the corrected record. An optional note. \
        Anyone else finds no such correction (404). Audited.",
    params(("id" = String, Path, description = CORRECTION_ID,
        example = "cr-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    request_body(content = Option<crate::corrections::AnswerBody>, content_type = "application/json",
        example = crate::http::openapi::examples::correction_acceptance),
    security(("bearer" = ["dept_admin"])),
    responses((status = 200, description = "Accepted.", body = CorrectionView), AnswerProblems),
)]
async fn accept(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let body = body_or_default(&headers, body, ANSWER_SHAPE);
    answered(&app, corrections::accept(&app, &who, &id, body).await)
}

/// Rejects a correction.
#[utoipa::path(
    post,
    path = "/v1/corrections/{id}/reject",
    tag = "corrections",
    operation_id = "rejectCorrection",
    summary = "The department holds its value right, saying why",
    description = "The owning department's admin, with a reason (free text without ID numbers \
        or phone numbers). Anyone else finds no such correction (404). Audited.",
    params(("id" = String, Path, description = CORRECTION_ID,
        example = "cr-0198a1c25e3f7b2d9c4e6f8a0b1c2d3e")),
    request_body(content = crate::corrections::AnswerBody, content_type = "application/json",
        example = crate::http::openapi::examples::correction_rejection),
    security(("bearer" = ["dept_admin"])),
    responses((status = 200, description = "Rejected.", body = CorrectionView), AnswerProblems),
)]
async fn reject(
    State(app): State<App>,
    request_id: RequestId,
    peer: Peer,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = who(request_id, peer, caller);
    let body = body_or_default(&headers, body, ANSWER_SHAPE);
    answered(&app, corrections::reject(&app, &who, &id, body).await)
}

/// A correction as answered, or the problem.
fn answered(app: &App, result: Result<Correction, Problem>) -> Response {
    match result {
        Ok(c) => axum::Json(CorrectionView::now(app, &c)).into_response(),
        Err(problem) => problem.into_response(),
    }
}
