//! The privacy officer's API over the audit log: search, export, a citizen's access
//! report and the anomaly report, on the use cases of [`crate::privacy`]. Only
//! callers with the `privacy_officer` role get in (others: 403). Every route is a
//! POST with a JSON body — a citizen's ID number never travels in a URL — and every
//! use is itself recorded in the audit log as an admin event before anything is
//! returned (no audit, no data).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use connectors::subject::IdNumber;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::audit::search::{ExportFormat, SearchError};
use crate::auth::{Caller, Role};
use crate::labels::Lang;
use crate::privacy::{Criteria, Officer, PrivacyError};
use bodies::{
    AnomaliesIn, AnomalyList, ExportFormatIn, ExportIn, FilterIn, ReportIn, SearchIn, Shape,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) mod bodies;

pub use crate::privacy::OFFICER_RULE;

/// A page of a search when no `limit` is given.
const DEFAULT_PAGE: usize = 100;

/// How many exported events (at most) go out in one chunk of the body.
const EXPORT_CHUNK_EVENTS: usize = 64;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(search_events))
        .routes(routes!(export_events))
        .routes(routes!(report))
        .routes(routes!(anomaly_report))
}

crate::problems!(
    AnomalyProblems = [
        Unauthenticated,
        Forbidden,
        PayloadTooLarge,
        UnsupportedMediaType,
        AuditUnavailable,
    ]
);

crate::problems!(
    /// What the privacy officer's routes can answer besides their results.
    OfficerProblems = [
        Unauthenticated, InvalidIdNumber, Forbidden, PayloadTooLarge, UnsupportedMediaType,
        AuditUnavailable,
    ]
);

/// What every route needs: the officer, the request context and the parsed body.
struct Call<T> {
    app: App,
    caller: Arc<Caller>,
    request_id: String,
    peer: Option<std::net::SocketAddr>,
    /// The language `Accept-Language` asks for, if it names one the gateway speaks.
    accept_language: Option<Lang>,
    body: T,
}

impl<T: DeserializeOwned + Shape> Call<T> {
    fn open(
        app: App,
        request_id: String,
        peer: Option<std::net::SocketAddr>,
        caller: Arc<Caller>,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Call<T>, Problem> {
        if !caller.has_role(Role::PrivacyOfficer) {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                "Only privacy officers read the audit log.",
            )
            .with("rule", OFFICER_RULE)
            .with("reason", "role")
            .for_request(&request_id));
        }
        let body = super::body::json::<T>(headers, body, T::EXPECTED)
            .map_err(|problem| problem.for_request(&request_id))?;
        Ok(Call {
            app,
            caller,
            request_id,
            peer,
            accept_language: None,
            body,
        })
    }

    /// The officer's use cases for this request.
    fn officer(&self) -> Officer<'_> {
        Officer {
            reader: &*self.app.audit_reader,
            audit: &*self.app.audit,
            pseudonym: &self.app.pseudonym,
            caller: &self.caller,
            request_id: &self.request_id,
            peer: self.peer,
        }
    }

    /// The criteria of a filter; a bad citizen ID is a 400.
    fn criteria(&self, filter: &FilterIn) -> Result<Criteria, Box<Response>> {
        let id_number = match &filter.id_number {
            Some(raw) => Some(IdNumber::parse(raw).map_err(|e| {
                Box::new(
                    Problem::new(ProblemKind::InvalidIdNumber, e.to_string())
                        .with("check", e.code())
                        .with("at", "filter.id_number")
                        .for_request(&self.request_id)
                        .into_response(),
                )
            })?),
            None => None,
        };
        Ok(Criteria {
            id_number,
            user: filter.user.clone(),
            township: filter.township.clone(),
            connector: filter.connector.clone(),
            purpose: filter.purpose.clone(),
            outcome: filter.outcome,
            status: filter.status,
            from: filter.from.clone(),
            until: filter.until.clone(),
        })
    }

    /// The answer for a use case's failure: a bad filter is the caller's 400 naming
    /// the field (under `within`, e.g. `filter.`, for the fields of a filter);
    /// anything else is the gateway's.
    fn failed(&self, error: PrivacyError, within: &str) -> Response {
        let problem = match error {
            PrivacyError::Invalid(field, why) => {
                let within = if field == "limit" { "" } else { within };
                invalid(field, &why, within)
            }
            PrivacyError::NotRecorded => Problem::new(
                ProblemKind::AuditUnavailable,
                "The audit log could not record this request, so nothing was returned.",
            ),
            PrivacyError::NotOfficer => Problem::new(
                ProblemKind::Forbidden,
                "Only privacy officers read the audit log.",
            )
            .with("rule", OFFICER_RULE)
            .with("reason", "role"),
            PrivacyError::Unreadable => {
                Problem::new(ProblemKind::Internal, "The audit log could not be read.")
            }
        };
        problem.for_request(&self.request_id).into_response()
    }
}

impl<T: DeserializeOwned + Shape + Send> FromRequest<App> for Call<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &App) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let RequestId(request_id) = RequestId::from_request_parts(&mut parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Peer(peer) = match Peer::from_request_parts(&mut parts, app).await {
            Ok(peer) => peer,
            Err(never) => match never {},
        };
        let Authenticated(caller) = Authenticated::from_request_parts(&mut parts, app).await?;
        let accept_language = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language);
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), app).await;
        let mut call = Call::open(app.clone(), request_id, peer, caller, &headers, bytes)
            .map_err(IntoResponse::into_response)?;
        call.accept_language = accept_language;
        Ok(call)
    }
}

/// The 400 for a bad filter or window, naming the field (under `within`, e.g.
/// `filter.`, for the fields of a filter).
fn invalid(field: &str, why: &str, within: &str) -> Problem {
    Problem::new(
        ProblemKind::InvalidRequest,
        format!("The request is not valid: {why}."),
    )
    .with("at", format!("{within}{field}"))
}

/// Searches the audit log.
#[utoipa::path(
    post,
    path = "/v1/audit/search",
    tag = "audit",
    operation_id = "searchAudit",
    summary = "Search the audit log",
    description = "The events a filter selects, newest first, one page (`next` is the \
        `before` of the next page). Each event carries its place in the hash chain (`seq`, \
        `hash`), pseudonyms and masked forms only. Privacy officers only; the search itself is \
        recorded in the log first.",
    request_body(content = SearchIn, content_type = "application/json",
        example = super::openapi::examples::audit_search),
    security(("bearer" = ["privacy_officer"])),
    responses((status = 200, description = "A page of events.", body = crate::audit::search::Page),
        OfficerProblems),
)]
async fn search_events(call: Call<SearchIn>) -> Response {
    let criteria = match call.criteria(&call.body.filter) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let limit = call.body.limit.unwrap_or(DEFAULT_PAGE);
    match call
        .officer()
        .search(&criteria, call.body.before, limit)
        .await
    {
        Ok(page) => axum::Json(page).into_response(),
        Err(e) => call.failed(e, "filter."),
    }
}

/// Exports audit events.
#[utoipa::path(
    post,
    path = "/v1/audit/export",
    tag = "audit",
    operation_id = "exportAudit",
    summary = "Export audit events (CSV or JSON Lines)",
    description = "Every event a filter selects, oldest first, streamed as an attachment: CSV \
        (a UTF-8 BOM, a header row in `lang`, RFC 4180 records; formula-like cells \
        neutralized) or JSON Lines (one event per line, as the search shows it). Privacy \
        officers only; the export is recorded in the log first.",
    request_body(content = ExportIn, content_type = "application/json",
        example = super::openapi::examples::audit_export),
    security(("bearer" = ["privacy_officer"])),
    responses(
        (status = 200, description = "The events.",
            content(
                (String = "text/csv; charset=utf-8"),
                (String = "application/x-ndjson"),
            ),
            headers(("Content-Disposition" = String,
                description = "`attachment; filename=\"audit.csv\"` or `\"audit.jsonl\"`."))),
        OfficerProblems,
    ),
)]
async fn export_events(call: Call<ExportIn>) -> Response {
    let criteria = match call.criteria(&call.body.filter) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    if let Err(SearchError::InvalidFilter(field, why)) =
        crate::audit::check_filter(&call.officer().filter(&criteria))
    {
        return invalid(field, &why, "filter.")
            .for_request(&call.request_id)
            .into_response();
    }
    let lang = match call.body.lang.as_deref() {
        None => call.accept_language.unwrap_or_default(),
        Some(tag) => match Lang::parse(tag) {
            Some(lang) => lang,
            None => {
                return Problem::new(
                    ProblemKind::InvalidRequest,
                    "`lang` is not a language the gateway writes (zh-CN or en).",
                )
                .with("at", "lang")
                .for_request(&call.request_id)
                .into_response();
            }
        },
    };
    let filter = match call.officer().export(&criteria).await {
        Ok(filter) => filter,
        Err(e) => return call.failed(e, "filter."),
    };
    let format = match call.body.format {
        ExportFormatIn::Csv => ExportFormat::Csv(lang),
        ExportFormatIn::Jsonl => ExportFormat::JsonLines,
    };
    export_body(
        call.app.audit_reader.clone(),
        filter,
        format,
        call.request_id.clone(),
    )
}

/// The export's body, streamed: events are read as the body is sent, a few at a
/// time. A failure ends the body where it is (logged, never sent).
pub(crate) fn export_body(
    reader: Arc<dyn crate::audit::AuditReader>,
    filter: crate::audit::search::Filter,
    format: ExportFormat,
    request_id: String,
) -> Response {
    let (media, name) = match format {
        ExportFormat::Csv(_) => ("text/csv; charset=utf-8", "audit.csv"),
        ExportFormat::JsonLines => ("application/x-ndjson", "audit.jsonl"),
    };
    let header = futures::stream::once(futures::future::ready(Ok(format.header())));
    let events = reader
        .events(filter)
        .map(move |event| event.and_then(|stored| format.encode(&stored)));
    let chunks =
        header
            .chain(events)
            .ready_chunks(EXPORT_CHUNK_EVENTS)
            .scan(false, move |failed, items| {
                if *failed {
                    return futures::future::ready(None);
                }
                let mut chunk = Vec::new();
                for item in items {
                    match item {
                        Ok(bytes) => chunk.extend_from_slice(&bytes),
                        Err(e) => {
                            tracing::warn!(request_id, error = %e, "an audit export stopped");
                            *failed = true;
                            break;
                        }
                    }
                }
                futures::future::ready(Some(Ok::<_, std::io::Error>(Bytes::from(chunk))))
            });
    let mut response = Body::from_stream(chunks).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A citizen's access report.
#[utoipa::path(
    post,
    path = "/v1/audit/report",
    tag = "audit",
    operation_id = "citizenReport",
    summary = "Who saw a citizen's data (a citizen's access report)",
    description = "Every lookup that released data about the citizen — as its subject, as part \
        of another person's record, or as a residence check — oldest first: when, who, which \
        township and department, for what purpose and case, which fields. Accesses held back \
        by delayed disclosure are only counted. Privacy officers only; recorded in the log \
        first.",
    request_body(content = ReportIn, content_type = "application/json",
        example = super::openapi::examples::audit_report),
    security(("bearer" = ["privacy_officer"])),
    responses((status = 200, description = "The report.", body = crate::audit::CitizenReport),
        OfficerProblems),
)]
async fn report(call: Call<ReportIn>) -> Response {
    let id = match IdNumber::parse(&call.body.id_number) {
        Ok(id) => id,
        Err(e) => {
            return Problem::new(ProblemKind::InvalidIdNumber, e.to_string())
                .with("check", e.code())
                .with("at", "id_number")
                .for_request(&call.request_id)
                .into_response();
        }
    };
    let today = crate::policy::china_today();
    match call.officer().report(&id, today).await {
        Ok((report, _)) => axum::Json(report).into_response(),
        Err(e) => call.failed(e, ""),
    }
}

/// The anomaly report.
#[utoipa::path(
    post,
    path = "/v1/audit/anomalies",
    tag = "audit",
    operation_id = "auditAnomalies",
    summary = "Patterns worth a look in the audit log",
    description = "Users who looked up many people in an hour, lookups without a case, outside \
        the caller's township or outside office hours, bursts of refusals and repeated rate \
        limiting, over a window of at most 31 days, each with the events behind it. Privacy \
        officers only; recorded in the log first.",
    request_body(content = AnomaliesIn, content_type = "application/json",
        example = super::openapi::examples::audit_anomalies),
    security(("bearer" = ["privacy_officer"])),
    responses((status = 200, description = "The anomalies found.", body = AnomalyList),
        AnomalyProblems),
)]
async fn anomaly_report(call: Call<AnomaliesIn>) -> Response {
    let from = call.body.from.clone();
    let until = call.body.until.clone();
    let thresholds = call.body.thresholds.clone().unwrap_or_default();
    match call.officer().anomalies(from, until, thresholds).await {
        Ok(anomalies) => axum::Json(AnomalyList { anomalies }).into_response(),
        Err(e) => call.failed(e, ""),
    }
}
