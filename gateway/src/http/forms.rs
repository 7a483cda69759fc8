//! Auto-filled forms (自助填表): `GET /v1/forms` lists the forms a caller may fill
//! (those whose purpose a grant in force gives them); `POST /v1/forms/{form}/fill`
//! with `{subject: {id_number}, case_id}` fills one from every department it needs.
//!
//! Templates and their checks are in `template`; the fan-out, provenance and
//! reasons for missing fields in `fill`. The answer is 200 with `complete: false`
//! when a department failed or the form's deadline passed; every field either has a
//! value with its source and age, or says why it has none. Each department lookup is
//! audited like `/v1/query`; a fill that fails before any lookup leaves one event.
//! A fill counts against the caller's rate limits as the most lookups its form can
//! make (`max_lookups`, shown by `GET /v1/forms`), charged whole before it starts.

use std::time::Instant;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::audit_unavailable;
use super::problem::{Problem, ProblemKind};
use super::request::SubjectIn;
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::fill::{self, Unfilled, may_use};
use crate::forms::{FieldValue, Form, Scope};
use crate::lookup::{SubjectError, SubjectKeyValue, Trail, check_case_id};

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v1/forms", get(list))
        .route("/v1/forms/{form}/fill", post(fill_form))
}

/// The fill request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FillRequest {
    subject: SubjectIn,
    case_id: String,
    /// Labels beside codes in this language (`crate::labels`).
    #[serde(default)]
    labels: Option<String>,
}

fn describe(config: &ActiveConfig, form: &Form) -> Value {
    let purpose = config.purposes.get(&form.purpose);
    json!({
        "id": form.id,
        "title": form.title,
        "title_en": form.title_en,
        "purpose": {
            "code": form.purpose,
            "name": purpose.map(|p| p.name.clone()),
            "name_en": purpose.map(|p| p.name_en.clone()),
        },
        "deadline_ms": form.deadline.as_millis() as u64,
        "max_lookups": form.max_lookups,
        "sections": form.sections.iter().map(|s| json!({
            "id": s.id,
            "title": s.title,
            "title_en": s.title_en,
            "repeated": matches!(s.scope, Scope::Repeat { .. }),
            "fields": s.fields.iter().map(|f| json!({
                "id": f.id,
                "title": f.title,
                "title_en": f.title_en,
                "type": f.kind.as_str(),
                "input": matches!(f.value, FieldValue::Input),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn list(State(app): State<App>, Authenticated(caller): Authenticated) -> Response {
    let config = app.config.load_full();
    let forms: Vec<Value> = config
        .forms
        .iter()
        .filter(|f| may_use(&config, &caller, &f.purpose, app.clock.today()))
        .map(|f| describe(&config, f))
        .collect();
    axum::Json(json!({ "forms": forms })).into_response()
}

async fn fill_form(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(form_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let config = app.config.load_full();
    let mut trail = Trail::default();
    let prepared = prepare(&app, &config, &caller, &form_id, &headers, body, &mut trail).await;
    let (form, subject, case_id, lang) = match prepared {
        Ok(ready) => ready,
        Err(problem) => {
            // Nothing was looked up: one event records the refused fill.
            let event = trail.event(
                &request_id,
                &caller,
                peer,
                problem.kind.status().as_u16(),
                Some(problem.kind.slug()),
            );
            if let Err(e) = app.audit.append(event).await {
                return audit_unavailable(&request_id, &e);
            }
            return problem.for_request(&request_id).into_response();
        }
    };
    let Some(purpose) = config.purposes.get(&form.purpose) else {
        return Problem::new(
            ProblemKind::Internal,
            "The form's purpose is not configured.",
        )
        .for_request(&request_id)
        .into_response();
    };
    let ctx = fill::Context {
        services: app.services(&request_id),
        audit: &*app.audit,
        config: &config,
        caller: &caller,
        form: &form,
        purpose,
        request_id: &request_id,
        peer,
        case_id: &case_id,
        deadline: Instant::now() + form.deadline,
        today: app.clock.today(),
        subject: &subject,
    };
    let filled = fill::fill(&ctx).await;
    if !filled.audited {
        return audit_unavailable(&request_id, &"a form lookup was not recorded");
    }
    if let Some(unfilled) = filled.problem {
        tracing::info!(
            request_id,
            user = %caller.user,
            form = %form.id,
            subject = %subject.masked(),
            outcome = unfilled.kind().slug(),
            "form not filled"
        );
        let problem = match unfilled {
            Unfilled::Lookup(error) => Problem::from(error),
            Unfilled::PersonUnknown => Problem::new(
                ProblemKind::PersonUnknown,
                "No department this form asks holds a record of this person; check the ID number with the citizen.",
            ),
        };
        return problem.for_request(&request_id).into_response();
    }
    tracing::info!(
        request_id,
        user = %caller.user,
        form = %form.id,
        subject = %subject.masked(),
        lookups = filled.lookups.len(),
        complete = filled.body["complete"].as_bool().unwrap_or(false),
        "form filled"
    );
    super::labels::respond(&filled.body, lang)
}

/// Everything checked before any department is asked: the caller's own limits,
/// charged the form's cost (the most lookups it makes; 1 for an unknown form), the
/// form, the caller's grant for its purpose, the body, the ID number and case id.
/// A fill that does not fit the caller's limits is refused whole: nothing is fetched.
async fn prepare(
    app: &App,
    config: &ActiveConfig,
    caller: &Caller,
    form_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    trail: &mut Trail,
) -> Result<
    (
        std::sync::Arc<Form>,
        connectors::subject::IdNumber,
        String,
        Option<crate::labels::Lang>,
    ),
    Problem,
> {
    trail.policy_version = Some(config.policies.version.clone());
    // Only a form id the gateway knows is recorded or echoed.
    let form = config.forms.get(form_id).cloned();
    if let Some(form) = &form {
        trail.form = Some(form.id.clone());
        trail.purpose = Some(form.purpose.clone());
    }
    let cost = form.as_ref().map_or(1, |f| f.max_lookups);
    app.limits
        .check_caller(&caller.user, caller.township.as_deref(), cost)
        .await
        .map_err(Problem::from)?;
    let form = form.ok_or_else(|| {
        Problem::new(
            ProblemKind::UnknownForm,
            "No form template with this id is configured; GET /v1/forms lists yours.",
        )
    })?;
    if !may_use(config, caller, &form.purpose, app.clock.today()) {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "No grant in force gives this caller the form's purpose.",
        )
        .with("reason", "not_granted")
        .with("rule", "forms"));
    }
    let request: FillRequest =
        super::body::json(headers, body, "{subject: {id_number}, case_id, labels}")?;
    let lang = super::labels::requested(request.labels.as_deref(), headers)?;
    let case_id = check_case_id(&request.case_id)?;
    trail.case_id = Some(case_id.clone());
    let subject = match request
        .subject
        .key(connectors::definition::SubjectKey::IdNumber)?
    {
        SubjectKeyValue::Id(id) => id,
        SubjectKeyValue::Household(_) => return Err(SubjectError::PersonOnly.into()),
    };
    trail.subject_pseudonym = Some(app.pseudonym.pseudonym(subject.as_str()));
    trail.subject_masked = Some(subject.masked());
    Ok((form, subject, case_id, lang))
}
