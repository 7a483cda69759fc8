//! The corrections desk (数据纠错): the department admin's queue — open first, oldest
//! first, overdue marked with the working days past — where each correction is opened
//! and accepted or rejected with a reason, and the filing township's list of its own
//! corrections with their state and answer. Every page and every change runs a use
//! case of [`crate::corrections`] — the API's own — so department scope (another
//! department's correction is unknown, 404), the checks and the audit events are the
//! API's. Every POST carries the page's CSRF token; URLs carry correction ids only.

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::i18n::Tr;
use super::page::{Chrome, Visit, posted};
use crate::auth::Role;
use crate::corrections::{self, AnswerBody, CorrectionView, NewCorrection, SubjectBody};
use crate::problem::ProblemKind;
use crate::registry::CorrectionState;

/// Who works the desk: the answering department and the filing township.
const ROLES: &[Role] = &[
    Role::DeptAdmin,
    Role::Clerk,
    Role::GridWorker,
    Role::TownshipLead,
];

/// A correction as the pages show it.
struct Row {
    view: CorrectionView,
    state: String,
    created: String,
    due: String,
}

fn row(t: Tr, view: CorrectionView) -> Row {
    let state = t.get(&format!("correction-state-{}", view.state.as_str()));
    let due = if view.overdue {
        t.arg(
            "correction-overdue-by",
            "days",
            &view.working_days_overdue.to_string(),
        )
    } else {
        String::new()
    };
    Row {
        created: view
            .created_at
            .get(..10)
            .unwrap_or(&view.created_at)
            .to_owned(),
        state,
        due,
        view,
    }
}

#[derive(Template)]
#[template(path = "console/corrections.html")]
struct QueuePage {
    chrome: Chrome,
    department: bool,
    open: Vec<Row>,
    answered: Vec<Row>,
}

/// `/console/corrections`: the department's queue, or the township's corrections.
pub(crate) async fn queue(visit: Visit) -> Response {
    let caller = match visit.require(ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let all = match corrections::list(app, &who).await {
        Ok(all) => all,
        Err(problem) => return visit.refused(&problem),
    };
    let today = app.clock.today();
    let calendar = &app.config.load().calendar;
    let (open, answered): (Vec<Row>, Vec<Row>) = all
        .iter()
        .map(|c| row(visit.t, CorrectionView::of(c, today, calendar)))
        .partition(|r| r.view.state == CorrectionState::Open);
    visit.respond(&QueuePage {
        chrome: visit.chrome("/console/corrections"),
        department: caller.has_role(Role::DeptAdmin),
        open,
        answered,
    })
}

#[derive(Template)]
#[template(path = "console/correction.html")]
struct CorrectionPage {
    chrome: Chrome,
    c: Row,
    answers: bool,
    errors: Vec<String>,
}

async fn correction_page(visit: &Visit, id: &str, errors: Vec<String>) -> Response {
    let caller = match visit.require(ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let c = match corrections::show(app, &who, id).await {
        Ok(c) => c,
        Err(problem) => return visit.refused(&problem),
    };
    let answers = corrections::answers(&caller, &c) && c.state == CorrectionState::Open;
    visit.respond(&CorrectionPage {
        chrome: visit.chrome("/console/corrections"),
        c: row(visit.t, CorrectionView::now(app, &c)),
        answers,
        errors,
    })
}

/// `/console/corrections/{id}`: one correction, with the answer forms for its
/// department's admin while it is open.
pub(crate) async fn show(visit: Visit, Path(id): Path<String>) -> Response {
    correction_page(&visit, &id, Vec::new()).await
}

/// The department's words, as the answer forms send them.
#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

posted!(AnswerForm);

async fn answer(
    visit: Visit,
    id: String,
    form: Result<Form<AnswerForm>, FormRejection>,
    accept: bool,
) -> Response {
    let (caller, input) = match visit.accept(&[Role::DeptAdmin], form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller);
    let body = AnswerBody {
        reason: Some(input.reason).filter(|r| !r.trim().is_empty()),
    };
    let done = if accept {
        corrections::accept(app, &who, &id, Ok(body)).await
    } else {
        corrections::reject(app, &who, &id, Ok(body)).await
    };
    match done {
        Ok(c) => Redirect::to(&format!("/console/corrections/{}", c.id)).into_response(),
        Err(p) if p.kind == ProblemKind::InvalidRequest => {
            correction_page(&visit, &id, vec![visit.t.get("correction-reason-needed")]).await
        }
        Err(p) => visit.refused(&p),
    }
}

/// What "report a wrong value" sends: from the filled form the value's place (and
/// the subject's ID number, in the body only), then from the report page what the
/// citizen states.
#[derive(Deserialize)]
pub(crate) struct ReportForm {
    csrf: String,
    connector: String,
    operation: String,
    field: String,
    /// The field's title as the form showed it.
    #[serde(default)]
    title: String,
    id_number: String,
    case_id: String,
    /// Absent on the way from the filled form: the report page is shown.
    stated_value: Option<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    evidence: String,
}

posted!(ReportForm);

#[derive(Template)]
#[template(path = "console/correction_report.html")]
struct ReportPage {
    chrome: Chrome,
    department: String,
    connector: String,
    operation: String,
    field: String,
    title: String,
    id_number: String,
    subject_masked: String,
    case_id: String,
    errors: Vec<String>,
}

/// `POST /console/corrections/report`: from a filled form's "report a wrong value",
/// the page asking what the citizen states; from that page, the correction filed
/// through the API's use case, then shown.
pub(crate) async fn report(
    visit: Visit,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let (caller, input) =
        match visit.accept(&[Role::Clerk, Role::GridWorker, Role::TownshipLead], form) {
            Ok(accepted) => accepted,
            Err(response) => return *response,
        };
    let app = &visit.console.app;
    let page = |errors: Vec<String>| {
        let config = app.config.load();
        let department = config
            .connectors
            .get(&input.connector)
            .map(|c| c.def.department.name.clone())
            .unwrap_or_default();
        let subject_masked = crate::lookup::subject_key(
            connectors::definition::SubjectKey::IdNumber,
            Some(input.id_number.clone()),
            None,
        )
        .map(|s| s.masked())
        .unwrap_or_default();
        ReportPage {
            chrome: visit.chrome("/console/corrections"),
            department,
            connector: input.connector.clone(),
            operation: input.operation.clone(),
            field: input.field.clone(),
            title: input.title.clone(),
            id_number: input.id_number.clone(),
            subject_masked,
            case_id: input.case_id.clone(),
            errors,
        }
    };
    let Some(stated_value) = input.stated_value.clone() else {
        return visit.respond(&page(Vec::new()));
    };
    let who = visit.who(caller);
    let body = NewCorrection {
        connector: input.connector.clone(),
        operation: input.operation.clone(),
        field: input.field.clone(),
        subject: SubjectBody {
            id_number: input.id_number.clone(),
        },
        stated_value,
        note: input.note.clone(),
        case_id: input.case_id.clone(),
        evidence: input.evidence.clone(),
    };
    match corrections::file(app, &who, Ok(body)).await {
        Ok(c) => Redirect::to(&format!("/console/corrections/{}", c.id)).into_response(),
        Err(p) if p.kind == ProblemKind::InvalidRequest => visit.respond_with(
            p.kind.status(),
            &page(vec![visit.t.get("correction-report-invalid")]),
        ),
        Err(p) => visit.refused(&p),
    }
}

/// Accepts a correction: the API's acceptance.
pub(crate) async fn accept(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Response {
    answer(visit, id, form, true).await
}

/// Rejects a correction with a reason: the API's rejection.
pub(crate) async fn reject(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Response {
    answer(visit, id, form, false).await
}
