//! The privacy officer's desk (隐私官): audit search (filters other than the
//! citizen's ID number in the URL, so a view can be bookmarked; the ID number only
//! ever POSTed), one event in full with its place in the hash chain, exports of
//! exactly what a filter shows, the citizen's report ("who saw my data"), the
//! anomaly report, and the log's integrity with a button that verifies it now.
//!
//! Every page runs a use case of [`crate::privacy`], which records each use in the
//! audit log before anything is shown.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use connectors::subject::IdNumber;
use serde::Deserialize;

use super::page::{Chrome, Visit, posted};
use crate::audit::search::{ExportFormat, OutcomeClass, StoredEvent};
use crate::auth::Role;
use crate::privacy::{Criteria, Officer, PrivacyError};
use crate::problem::ProblemKind;

const OFFICER: &[Role] = &[Role::PrivacyOfficer];
/// Events on one page of the search.
const PAGE: usize = 50;

/// The filters as a form sends them; empty means "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct FilterForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    township: String,
    #[serde(default)]
    connector: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

/// The filters with the citizen's ID number, POSTed.
#[derive(Deserialize)]
pub(crate) struct CitizenForm {
    #[serde(default)]
    id_number: String,
    #[serde(flatten)]
    filter: FilterForm,
    csrf: String,
}

posted!(CitizenForm, ExportForm, ReportForm, WindowForm, CsrfOnly);

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The criteria of a filter form; `Err` names the field that is wrong.
fn criteria(form: &FilterForm, id_number: Option<IdNumber>) -> Result<Criteria, &'static str> {
    let outcome = match form.outcome.trim() {
        "" => None,
        "ok" => Some(OutcomeClass::Ok),
        "refused" => Some(OutcomeClass::Refused),
        "failed" => Some(OutcomeClass::Failed),
        _ => return Err("outcome"),
    };
    let status = match some(&form.status) {
        None => None,
        Some(s) => Some(s.parse::<u16>().map_err(|_| "status")?),
    };
    Ok(Criteria {
        id_number,
        user: some(&form.user),
        township: some(&form.township),
        connector: some(&form.connector),
        purpose: some(&form.purpose),
        outcome,
        status,
        from: some(&form.from),
        until: some(&form.until),
    })
}

fn officer<'a>(
    visit: &'a Visit,
    caller: &'a crate::auth::Caller,
) -> Result<Officer<'a>, Box<Response>> {
    let app = &visit.console.app;
    Officer::new(
        &*app.audit_reader,
        &*app.audit,
        &app.pseudonym,
        caller,
        &visit.request_id,
        visit.peer,
    )
    .map_err(|_| Box::new(visit.error(StatusCode::FORBIDDEN, "error-forbidden", None)))
}

/// The 400 page naming the filter that is wrong (never its value).
fn bad_filter(visit: &Visit, field: &str) -> Response {
    visit.error(
        StatusCode::BAD_REQUEST,
        "error-bad-form",
        Some(visit.t.arg("audit-bad-filter", "field", field)),
    )
}

/// The citizen named by an ID number field: none when empty; a wrong one is the
/// 400 page (the number is not echoed).
fn citizen(visit: &Visit, raw: &str) -> Result<Option<IdNumber>, Box<Response>> {
    match some(raw) {
        None => Ok(None),
        Some(raw) => IdNumber::parse(&raw).map(Some).map_err(|_| {
            Box::new(visit.problem(
                StatusCode::BAD_REQUEST,
                ProblemKind::InvalidIdNumber.slug(),
                None,
            ))
        }),
    }
}

fn failed(visit: &Visit, error: PrivacyError) -> Response {
    match error {
        PrivacyError::NotOfficer => visit.error(StatusCode::FORBIDDEN, "error-forbidden", None),
        PrivacyError::Invalid(field, _) => bad_filter(visit, field),
        PrivacyError::NotRecorded => visit.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::AuditUnavailable.slug(),
            None,
        ),
        PrivacyError::Unreadable => visit.problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::Internal.slug(),
            None,
        ),
    }
}

/// One event as a row of the results.
struct EventRow {
    seq: u64,
    time: String,
    kind: String,
    user: String,
    township: String,
    what: String,
    purpose: String,
    subject: String,
    status: u16,
    outcome: String,
}

fn row(visit: &Visit, stored: &StoredEvent) -> EventRow {
    let e = &stored.event;
    let kind = match e.kind {
        crate::audit::EventKind::Lookup => visit.t.get("kind-lookup"),
        crate::audit::EventKind::Admin => visit.t.get("kind-admin"),
        crate::audit::EventKind::Verification => visit.t.get("kind-verification"),
    };
    let what = match (&e.connector, &e.operation) {
        (Some(c), Some(o)) => format!("{c} · {o}"),
        (None, Some(o)) => o.clone(),
        (Some(c), None) => c.clone(),
        (None, None) => String::new(),
    };
    let outcome = match &e.outcome.problem {
        Some(slug) => visit.t.problem(slug),
        None => visit.t.get("audit-outcome-ok"),
    };
    EventRow {
        seq: stored.seq,
        time: e.time.clone(),
        kind,
        user: e.caller.user.clone(),
        township: e.caller.township.clone().unwrap_or_default(),
        what,
        purpose: e
            .purpose
            .as_deref()
            .map(|p| visit.t.purpose(&visit.console.app.config.load(), p))
            .unwrap_or_default(),
        subject: e.subject_masked.clone().unwrap_or_default(),
        status: e.outcome.status,
        outcome,
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filter: FilterForm,
    /// The citizen filter is on (its value is never put back in the page's URL).
    citizen: bool,
    /// The ID number, for the POSTed forms of the next page and exports only.
    id_number: String,
    rows: Vec<EventRow>,
    next: Option<u64>,
    /// The query string of the next page (filters only).
    next_query: Option<String>,
    /// The filters as hidden fields of the POSTed forms.
    hidden: Vec<(&'static str, String)>,
    /// The export formats and their buttons' words.
    exports: Vec<(&'static str, String)>,
}

impl FilterForm {
    /// The filters other than `before`, by name.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("user", self.user.clone()),
            ("township", self.township.clone()),
            ("connector", self.connector.clone()),
            ("purpose", self.purpose.clone()),
            ("outcome", self.outcome.clone()),
            ("status", self.status.clone()),
            ("from", self.from.clone()),
            ("until", self.until.clone()),
        ]
    }
}

/// Audit search by the filters in the URL.
pub(crate) async fn search(
    visit: Visit,
    query: Result<Query<FilterForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match visit.require(OFFICER) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let Ok(Query(filter)) = query else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    run_search(&visit, &caller, filter, None).await
}

/// Audit search with the citizen's ID number (POSTed).
pub(crate) async fn search_citizen(
    visit: Visit,
    form: Result<Form<CitizenForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(OFFICER, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let id = match citizen(&visit, &form.id_number) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    run_search(&visit, &caller, form.filter, id).await
}

async fn run_search(
    visit: &Visit,
    caller: &crate::auth::Caller,
    filter: FilterForm,
    id: Option<IdNumber>,
) -> Response {
    let officer = match officer(visit, caller) {
        Ok(o) => o,
        Err(response) => return *response,
    };
    let citizen = id.is_some();
    let id_number = id
        .as_ref()
        .map(|i| i.as_str().to_owned())
        .unwrap_or_default();
    let criteria = match criteria(&filter, id) {
        Ok(c) => c,
        Err(field) => return bad_filter(visit, field),
    };
    let before = match some(&filter.before) {
        None => None,
        Some(b) => match b.parse::<u64>() {
            Ok(b) => Some(b),
            Err(_) => return bad_filter(visit, "before"),
        },
    };
    let page = match officer.search(&criteria, before, PAGE).await {
        Ok(page) => page,
        Err(e) => return failed(visit, e),
    };
    let rows = page.events.iter().map(|e| row(visit, e)).collect();
    let next_query = page.next.filter(|_| !citizen).map(|next| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("user", &filter.user),
            ("township", &filter.township),
            ("connector", &filter.connector),
            ("purpose", &filter.purpose),
            ("outcome", &filter.outcome),
            ("status", &filter.status),
            ("from", &filter.from),
            ("until", &filter.until),
        ] {
            if let Some(v) = some(value) {
                pairs.push((name, v));
            }
        }
        pairs.push(("before", next.to_string()));
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let hidden = filter.pairs();
    let exports = vec![
        ("csv", visit.t.get("audit-export-csv")),
        ("jsonl", visit.t.get("audit-export-jsonl")),
    ];
    visit.respond(&AuditPage {
        chrome: visit.chrome("/console/audit"),
        hidden,
        exports,
        filter,
        citizen,
        id_number,
        rows,
        next: page.next,
        next_query,
    })
}

/// What an export sends: the same filters, and the format.
#[derive(Deserialize)]
pub(crate) struct ExportForm {
    #[serde(default)]
    id_number: String,
    #[serde(flatten)]
    filter: FilterForm,
    format: String,
    csrf: String,
}

/// Exports exactly what the filter shows, as CSV (in the page's language) or JSON
/// Lines.
pub(crate) async fn export(
    visit: Visit,
    form: Result<Form<ExportForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(OFFICER, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let format = match form.format.as_str() {
        "csv" => ExportFormat::Csv(visit.t.lang),
        "jsonl" => ExportFormat::JsonLines,
        _ => return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None),
    };
    let id = match citizen(&visit, &form.id_number) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let criteria = match criteria(&form.filter, id) {
        Ok(c) => c,
        Err(field) => return bad_filter(&visit, field),
    };
    let officer = match officer(&visit, &caller) {
        Ok(o) => o,
        Err(response) => return *response,
    };
    let filter = match officer.export(&criteria).await {
        Ok(filter) => filter,
        Err(e) => return failed(&visit, e),
    };
    crate::http::privacy::export_body(
        visit.console.app.audit_reader.clone(),
        filter,
        format,
        visit.request_id.clone(),
    )
}

/// A labelled value of an event.
struct Item {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct EventPage {
    chrome: Chrome,
    seq: u64,
    items: Vec<Item>,
    returned: Vec<String>,
    masked: Vec<(String, String)>,
    withheld: Vec<(String, String)>,
    rules: Vec<String>,
    hash: String,
    prev: String,
}

/// One event in full.
pub(crate) async fn event(visit: Visit, Path(seq): Path<u64>) -> Response {
    let caller = match visit.require(OFFICER) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let officer = match officer(&visit, &caller) {
        Ok(o) => o,
        Err(response) => return *response,
    };
    let (stored, prev) = match officer.event(seq).await {
        Ok(Some(found)) => found,
        Ok(None) => return visit.error(StatusCode::NOT_FOUND, "error-not-found", None),
        Err(e) => return failed(&visit, e),
    };
    let t = visit.t;
    let e = &stored.event;
    let none = || t.get("event-none");
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(none);
    let outcome = match &e.outcome.problem {
        Some(slug) => format!("{} ({})", t.problem(slug), e.outcome.status),
        None => format!("{} ({})", t.get("audit-outcome-ok"), e.outcome.status),
    };
    let items = vec![
        Item {
            label: t.get("event-when"),
            value: e.time.clone(),
        },
        Item {
            label: t.get("event-who"),
            value: e.caller.user.clone(),
        },
        Item {
            label: t.get("event-office"),
            value: e
                .caller
                .township
                .clone()
                .or_else(|| e.caller.department.clone())
                .unwrap_or_else(none),
        },
        Item {
            label: t.get("audit-subject"),
            value: opt(&e.subject_masked),
        },
        Item {
            label: t.get("event-what"),
            value: match (&e.connector, &e.operation) {
                (Some(c), Some(o)) => format!("{c} · {o}"),
                (None, Some(o)) => o.clone(),
                _ => none(),
            },
        },
        Item {
            label: t.get("event-form"),
            value: opt(&e.form),
        },
        Item {
            label: t.get("event-purpose"),
            value: opt(&e.purpose),
        },
        Item {
            label: t.get("event-case"),
            value: opt(&e.case_id),
        },
        Item {
            label: t.get("event-outcome"),
            value: outcome,
        },
        Item {
            label: t.get("event-policy"),
            value: opt(&e.policy_version),
        },
        Item {
            label: t.get("event-latency"),
            value: e
                .upstream_latency_ms
                .map_or_else(none, |ms| format!("{ms} ms")),
        },
        Item {
            label: t.get("request-id"),
            value: e.request_id.clone(),
        },
    ];
    visit.respond(&EventPage {
        chrome: visit.chrome("/console/audit"),
        seq: stored.seq,
        items,
        returned: e.fields_returned.clone(),
        masked: e
            .fields_masked
            .iter()
            .map(|m| (m.field.clone(), m.mask.clone()))
            .collect(),
        withheld: e
            .fields_withheld
            .iter()
            .map(|w| {
                let reason = visit.reason(&w.reason).unwrap_or_else(|| w.reason.clone());
                (w.field.clone(), reason)
            })
            .collect(),
        rules: e.rules.clone(),
        hash: stored.hash.clone(),
        prev: prev.unwrap_or_else(|| "0".repeat(64)),
    })
}

#[derive(Template)]
#[template(path = "console/report_form.html")]
struct ReportFormPage {
    chrome: Chrome,
}

/// The citizen report's form.
pub(crate) async fn report_page(visit: Visit) -> Response {
    if let Err(response) = visit.require(OFFICER) {
        return *response;
    }
    visit.respond(&ReportFormPage {
        chrome: visit.chrome("/console/report"),
    })
}

#[derive(Deserialize)]
pub(crate) struct ReportForm {
    id_number: String,
    csrf: String,
}

struct AccessRow {
    time: String,
    office: String,
    person: String,
    department: String,
    purpose: String,
    case_id: String,
    shown: String,
    fields: String,
}

#[derive(Template)]
#[template(path = "console/report.html")]
struct ReportPage {
    chrome: Chrome,
    subject: String,
    issued: String,
    position: u64,
    rows: Vec<AccessRow>,
    withheld: u64,
}

/// The citizen's report: who saw their data (delayed disclosure honoured).
pub(crate) async fn report(
    visit: Visit,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(OFFICER, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let id = match citizen(&visit, &form.id_number) {
        Ok(Some(id)) => id,
        Ok(None) => return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None),
        Err(response) => return *response,
    };
    let officer = match officer(&visit, &caller) {
        Ok(o) => o,
        Err(response) => return *response,
    };
    let today = visit.console.app.clock.today();
    let (report, head) = match officer.report(&id, today).await {
        Ok(found) => found,
        Err(e) => return failed(&visit, e),
    };
    let config = visit.console.app.config.load_full();
    let t = visit.t;
    let rows = report
        .accesses
        .iter()
        .map(|a| {
            let shown = serde_json::to_value(a.shown_as)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let department = a
                .connector
                .as_ref()
                .and_then(|c| config.connectors.get(c))
                .map(|c| c.def.department.name.clone())
                .or_else(|| a.department.clone())
                .unwrap_or_default();
            let purpose = a
                .purpose
                .as_deref()
                .map(|p| visit.t.purpose(&visit.console.app.config.load(), p))
                .unwrap_or_default();
            AccessRow {
                time: a.time.clone(),
                office: a.township.clone().unwrap_or_default(),
                person: a.user.clone(),
                department,
                purpose,
                case_id: a.case_id.clone().unwrap_or_default(),
                shown: t.get(&format!("shown-{shown}")),
                fields: a.fields.join(&t.get("list-sep")),
            }
        })
        .collect();
    visit.respond(&ReportPage {
        chrome: visit.chrome("/console/report"),
        subject: id.masked(),
        issued: today.to_string(),
        position: head,
        rows,
        withheld: report.withheld_until_later,
    })
}

#[derive(Deserialize)]
pub(crate) struct WindowForm {
    from: String,
    until: String,
    csrf: String,
}

struct AnomalyRow {
    kind: String,
    user: String,
    detail: String,
    events: Vec<u64>,
}

#[derive(Template)]
#[template(path = "console/anomalies.html")]
struct AnomaliesPage {
    chrome: Chrome,
    from: String,
    until: String,
    ran: bool,
    rows: Vec<AnomalyRow>,
}

/// The anomaly report's form (the last seven days by default).
pub(crate) async fn anomalies_page(visit: Visit) -> Response {
    if let Err(response) = visit.require(OFFICER) {
        return *response;
    }
    let today = visit.console.app.clock.today();
    let from = today - chrono::Days::new(7);
    visit.respond(&AnomaliesPage {
        chrome: visit.chrome("/console/anomalies"),
        from: from.to_string(),
        until: (today + chrono::Days::new(1)).to_string(),
        ran: false,
        rows: Vec::new(),
    })
}

/// The anomaly report for a window.
pub(crate) async fn anomalies(
    visit: Visit,
    form: Result<Form<WindowForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(OFFICER, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let officer = match officer(&visit, &caller) {
        Ok(o) => o,
        Err(response) => return *response,
    };
    let found = match officer
        .anomalies(form.from.clone(), form.until.clone(), Default::default())
        .await
    {
        Ok(found) => found,
        Err(e) => return failed(&visit, e),
    };
    let rows = found
        .into_iter()
        .map(|a| {
            let kind = serde_json::to_value(a.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            AnomalyRow {
                kind: visit.t.get(&format!("anomaly-{kind}")),
                user: a.user,
                detail: a.detail,
                events: a.events,
            }
        })
        .collect();
    visit.respond(&AnomaliesPage {
        chrome: visit.chrome("/console/anomalies"),
        from: form.from,
        until: form.until,
        ran: true,
        rows,
    })
}

/// A verification of the log run from the console.
#[derive(Debug)]
pub struct Verified {
    /// RFC 3339.
    pub at: String,
    pub passed: bool,
    /// Events checked, or where the log is broken (no event contents).
    pub events: u64,
    pub failure: Option<String>,
}

#[derive(Template)]
#[template(path = "console/integrity.html")]
struct IntegrityPage {
    chrome: Chrome,
    checkpoint: Option<String>,
    /// The outcome of the last verification, in words, and when it ran.
    verified: Option<(bool, String, String)>,
}

const INTEGRITY: &[Role] = &[Role::PrivacyOfficer, Role::Operator];

async fn integrity_page(visit: &Visit) -> Response {
    let backend = visit.console.app.storage.audit_backend();
    let checkpoint = match backend.latest_checkpoint().await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(request_id = %visit.request_id, error = %e, "the latest checkpoint could not be read");
            None
        }
    };
    let verified = visit.console.last_verified.load_full().map(|v| {
        let text = match &v.failure {
            None => visit
                .t
                .arg("integrity-verified-ok", "n", &v.events.to_string()),
            Some(failure) => visit.t.arg("integrity-verified-bad", "detail", failure),
        };
        (v.passed, text, v.at.clone())
    });
    visit.respond(&IntegrityPage {
        chrome: visit.chrome("/console/integrity"),
        checkpoint,
        verified,
    })
}

/// The log's integrity: the latest signed checkpoint.
pub(crate) async fn integrity(visit: Visit) -> Response {
    if let Err(response) = visit.require(INTEGRITY) {
        return *response;
    }
    integrity_page(&visit).await
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

/// Verifies the whole log now (as `gateway audit verify` does) and shows the outcome.
pub(crate) async fn verify(visit: Visit, form: Result<Form<CsrfOnly>, FormRejection>) -> Response {
    let (caller, _) = match visit.accept(INTEGRITY, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let event = crate::audit::AuditEvent::admin(
        &visit.request_id,
        crate::audit::AuditCaller::of(&caller, visit.peer),
        "audit.verify",
    );
    if app.audit.append(event).await.is_err() {
        return visit.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::AuditUnavailable.slug(),
            None,
        );
    }
    let expect = app.config.load().audit.expectations();
    let at = app.clock.now_rfc3339();
    let verified = match app.storage.audit_backend().verify(expect).await {
        Ok(report) => Verified {
            at,
            passed: true,
            events: report.events,
            failure: None,
        },
        Err(failure) => {
            tracing::error!(request_id = %visit.request_id, error = %failure, "the audit log failed its verification");
            Verified {
                at,
                passed: false,
                events: 0,
                failure: Some(failure.to_string()),
            }
        }
    };
    visit
        .console
        .last_verified
        .store(Some(std::sync::Arc::new(verified)));
    integrity_page(&visit).await
}
