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
use super::problem::Problem;
use super::request::SubjectIn;
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::config::ActiveConfig;
use crate::fill::{Attempt, may_use};
use crate::forms::{FieldValue, Form, Scope};

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
    let mut attempt = Attempt::new(
        app.services(&request_id),
        &*app.audit,
        &config,
        &caller,
        peer,
    );
    let prepared = prepare(&mut attempt, &form_id, &headers, body).await;
    let (form, subject, case_id, lang) = match prepared {
        Ok(ready) => ready,
        Err(problem) => {
            // Nothing was looked up: one event records the refused fill.
            let status = problem.kind.status().as_u16();
            if let Err(e) = attempt.record_refusal(status, problem.kind.slug()).await {
                return audit_unavailable(&request_id, &e);
            }
            return problem.for_request(&request_id).into_response();
        }
    };
    let filled = match attempt.fill(&form, &subject, &case_id).await {
        Ok(filled) => filled,
        Err(refused) => {
            return Problem::from(refused)
                .for_request(&request_id)
                .into_response();
        }
    };
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
        return Problem::from(unfilled)
            .for_request(&request_id)
            .into_response();
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
    let mut response = super::labels::respond(&filled.body, lang);
    super::receipt::attach(&mut response, &filled.recorded);
    response
}

/// Everything checked before any department is asked: the caller's own limits,
/// charged the form's cost, the form, the caller's grant for its purpose
/// ([`Attempt::admit`]), then the body, the ID number and case id. A fill that does
/// not fit the caller's limits is refused whole: nothing is fetched.
async fn prepare(
    attempt: &mut Attempt<'_>,
    form_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<
    (
        std::sync::Arc<Form>,
        connectors::subject::IdNumber,
        String,
        Option<crate::labels::Lang>,
    ),
    Problem,
> {
    let form = attempt.admit(form_id).await?;
    let request: FillRequest =
        super::body::json(headers, body, "{subject: {id_number}, case_id, labels}")?;
    let lang = super::labels::requested(request.labels.as_deref(), headers)?;
    let subject = request
        .subject
        .key(connectors::definition::SubjectKey::IdNumber);
    let (subject, case_id) = attempt.person(subject, &request.case_id)?;
    Ok((form, subject, case_id, lang))
}
