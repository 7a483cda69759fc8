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
//! The body's `stated` values, for the form's `verify` fields, are verified (核验)
//! rather than looked up: the form shows match or mismatch, never the value.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use schemas::{FilledForm, FormList, PersonSubject};

mod schemas;

pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(fill_form))
}

/// A form to fill for a person and a case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FillRequest {
    #[schema(value_type = PersonSubject)]
    pub(crate) subject: SubjectIn,
    /// The case (办件) the form is for: free text without personal data.
    #[schema(example = "DEMO-0002")]
    pub(crate) case_id: String,
    /// Labels beside codes in this language (`crate::labels`); else `Accept-Language`.
    #[serde(default)]
    #[schema(value_type = Option<super::request::LabelLanguage>)]
    pub(crate) labels: Option<String>,
    /// What the citizen states for the form's fields to verify (`verify: true` in
    /// `GET /v1/forms`), by field id: a string of at most 200 characters (a date as
    /// `YYYY-MM-DD`); an address also as the division it lies in
    /// (`{"village_code": …}`, `township_code`, `county_code`). The form shows
    /// whether each agrees with the department's record, never the value held.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) stated: Option<serde_json::Map<String, Value>>,
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
                "verify": matches!(f.value, FieldValue::Verify(_)),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The forms the caller may fill.
#[utoipa::path(
    get,
    path = "/v1/forms",
    tag = "forms",
    operation_id = "listForms",
    summary = "The forms the caller may fill",
    description = "Every form whose purpose a grant in force gives the caller, with its \
        sections and fields, its deadline and the most department lookups one fill makes \
        (`max_lookups`, what it counts against the caller's rate limits).",
    security(("bearer" = [])),
    responses((status = 200, description = "The forms.", body = FormList), ListProblems),
)]
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

crate::problems!(ListProblems = [Unauthenticated]);

/// Fills a form.
#[utoipa::path(
    post,
    path = "/v1/forms/{form}/fill",
    tag = "forms",
    operation_id = "fillForm",
    summary = "Fill a form from every department it needs",
    description = "Checks the caller's limits (charged the form's `max_lookups` whole), its \
        grant for the form's purpose, the ID number and the case, then asks every department \
        the form needs at once and merges the answers: each field has its value with its \
        source and age, or says why it has none (`missing.reason`). A department that failed \
        or a deadline that passed makes the form `complete: false`, still 200. Each lookup is \
        an audit event (linked by the request id), all named in `Audit-Event`. The values the \
        citizen states for the form's fields to verify (`stated`) are verified (核验) with one \
        verification per department operation, each counted as a lookup and audited as a \
        `verification`: such a field shows `verification.result` `match`, `mismatch` or \
        `cannot_verify` (with its reason), never the value held.",
    params(("form" = String, Path, description = "The form's id (`GET /v1/forms`).",
        example = "birth-registration")),
    request_body(content = FillRequest, content_type = "application/json",
        example = super::openapi::examples::fill),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The form, filled as far as the policy and the departments allow.",
            body = FilledForm,
            headers(
                ("Audit-Event" = String, description = "The audit events recording this answer, `<chain id>/<seq>/<hash>`, separated by `, ` (the jurisdiction check first)."),
                ("Content-Language" = String, description = "The labels' language, when labels were asked for."),
            )),
        FillProblems,
    ),
)]
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
    let (form, subject, case_id, lang, stated) = match prepared {
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
    let filled = match attempt.fill(&form, &subject, &case_id, &stated).await {
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

crate::problems!(
    /// A fill refused before any department was asked, a person no department knows,
    /// or the jurisdiction check's failure.
    FillProblems = [
        Unauthenticated, InvalidIdNumber, UnsupportedMediaType, PayloadTooLarge, UnknownForm,
        Forbidden, SubjectNotFound, PersonUnknown, RateLimited, DepartmentCapacity,
        ConnectorDisabled, RateLimitUnavailable, UpstreamTimeout, UpstreamUnavailable,
        UpstreamError, UpstreamMalformed, UpstreamOversize, UpstreamSchemaViolation,
        FrontDatabase, AuditUnavailable,
    ]
);

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
        std::collections::BTreeMap<String, Value>,
    ),
    Problem,
> {
    let form = attempt.admit(form_id).await?;
    let request: FillRequest = super::body::json(
        headers,
        body,
        "{subject: {id_number}, case_id, labels, stated}",
    )?;
    let lang = super::labels::requested(request.labels.as_deref(), headers)?;
    let subject = request
        .subject
        .key(connectors::definition::SubjectKey::IdNumber);
    let (subject, case_id) = attempt.person(subject, &request.case_id)?;
    let stated = attempt.stated(&form, request.stated.unwrap_or_default())?;
    Ok((form, subject, case_id, lang, stated))
}
