//! The privacy officer's API over the audit log: search, export, a citizen's access
//! report and the anomaly report, on the use cases of [`crate::privacy`]. Only
//! callers with the `privacy_officer` role get in (others: 403). Every route is a
//! POST with a JSON body — a citizen's ID number never travels in a URL — and every
//! use is itself recorded in the audit log as an admin event before anything is
//! returned (no audit, no data).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use connectors::subject::IdNumber;
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::audit::anomalies::Thresholds;
use crate::audit::search::{ExportFormat, OutcomeClass, SearchError};
use crate::auth::{Caller, Role};
use crate::labels::Lang;
use crate::privacy::{Criteria, Officer, PrivacyError};

pub use crate::privacy::OFFICER_RULE;

/// A page of a search when no `limit` is given.
const DEFAULT_PAGE: usize = 100;

/// How many exported events (at most) go out in one chunk of the body.
const EXPORT_CHUNK_EVENTS: usize = 64;

/// What each route's body looks like, for the error that names where it went wrong.
trait Shape {
    const EXPECTED: &'static str;
}

impl Shape for SearchIn {
    const EXPECTED: &'static str = "{filter: {id_number, user, township, connector, purpose, outcome, status, from, until}, before, limit}";
}

impl Shape for ExportIn {
    const EXPECTED: &'static str = "{filter: {id_number, user, township, connector, purpose, outcome, status, from, until}, format, lang}";
}

impl Shape for ReportIn {
    const EXPECTED: &'static str = "{id_number}";
}

impl Shape for AnomaliesIn {
    const EXPECTED: &'static str = "{from, until, thresholds: {subjects_per_hour, denials_per_10_min, office_hours, limit_refusals_per_day}}";
}

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v1/audit/search", post(search_events))
        .route("/v1/audit/export", post(export_events))
        .route("/v1/audit/report", post(report))
        .route("/v1/audit/anomalies", post(anomaly_report))
}

/// A search or export filter as a privacy officer sends it: the citizen by ID
/// number, `id_number` as everywhere else (the gateway turns it into the pseudonym
/// the log holds), the rest as the log stores them; `from` and `until` are dates
/// (a day in China) or RFC 3339 instants.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterIn {
    id_number: Option<String>,
    user: Option<String>,
    township: Option<String>,
    connector: Option<String>,
    purpose: Option<String>,
    outcome: Option<OutcomeClass>,
    status: Option<u16>,
    from: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchIn {
    #[serde(default)]
    filter: FilterIn,
    before: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportIn {
    #[serde(default)]
    filter: FilterIn,
    format: ExportFormatIn,
    /// The CSV header's language (`zh-CN` or `en`); else `Accept-Language`, else zh-CN.
    lang: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExportFormatIn {
    Csv,
    Jsonl,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportIn {
    id_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomaliesIn {
    from: String,
    until: String,
    #[serde(default)]
    thresholds: Option<Thresholds>,
}

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
        Ok(page) => {
            axum::Json(json!({"chain_id": page.chain_id, "events": page.events, "next": page.next}))
                .into_response()
        }
        Err(e) => call.failed(e, "filter."),
    }
}

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

async fn anomaly_report(call: Call<AnomaliesIn>) -> Response {
    let from = call.body.from.clone();
    let until = call.body.until.clone();
    let thresholds = call.body.thresholds.clone().unwrap_or_default();
    match call.officer().anomalies(from, until, thresholds).await {
        Ok(found) => axum::Json(json!({"anomalies": found})).into_response(),
        Err(e) => call.failed(e, ""),
    }
}
