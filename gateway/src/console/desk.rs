//! The clerk's and grid worker's desk (办事): the forms the signed-in person may
//! fill, filling one for a citizen (ID number and case number POSTed, never in a
//! URL), the filled form section by section with each value's source, age, mask and
//! "verified" mark or the reason it is missing, ready to print; and the single
//! lookup. Both run the same use cases as the API ([`crate::fill::Attempt`],
//! [`crate::lookup::single`]), so policy, quotas, masks and the audit event are the
//! API's own.

use askama::Template;
use axum::Form;
use axum::extract::Path;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::i18n::{Tr, pick};
use super::page::{Chrome, Visit, posted};
use crate::auth::{Caller, Role};
use crate::config::ActiveConfig;
use crate::fill::{Attempt, Refused, Unfilled, may_use};
use crate::forms::{FieldValue, Form as FormTemplate, Scope};
use crate::labels::label_answer;
use crate::lookup::single::{self, Ask, AskError};
use crate::lookup::{LookupError, Trail, subject_key};
use crate::problem::ProblemKind;

/// Who works at the desk.
pub const DESK_ROLES: &[Role] = &[Role::Clerk, Role::GridWorker, Role::TownshipLead];

/// A form as the desk lists it.
struct FormCard {
    id: String,
    title: String,
    purpose: String,
    departments: String,
}

#[derive(Template)]
#[template(path = "console/desk.html")]
struct DeskPage {
    chrome: Chrome,
    forms: Vec<FormCard>,
}

/// The departments a form asks, by name, in the order the form first names them.
fn departments(config: &ActiveConfig, form: &FormTemplate) -> Vec<String> {
    let mut connectors: Vec<&str> = Vec::new();
    for section in &form.sections {
        match &section.scope {
            Scope::Subject => {}
            Scope::Linked(source) | Scope::Repeat { list: source, .. } => {
                connectors.push(&source.connector);
            }
        }
        connectors.extend(
            section
                .fields
                .iter()
                .filter_map(|f| f.lookup().or_else(|| f.verify()))
                .map(|s| s.connector.as_str()),
        );
    }
    let mut names: Vec<String> = Vec::new();
    for id in connectors {
        let name = config
            .connectors
            .get(id)
            .map_or_else(|| id.to_owned(), |c| c.def.department.name.clone());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The start page of the desk: the forms this person may fill.
pub(crate) async fn desk(visit: Visit) -> Response {
    let caller = match visit.require(DESK_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let config = visit.console.app.config.load_full();
    let today = visit.console.app.clock.today();
    let lang = visit.t.lang;
    let forms = config
        .forms
        .iter()
        .filter(|f| may_use(&config, &caller, &f.purpose, today))
        .map(|f| FormCard {
            id: f.id.clone(),
            title: pick(lang, &f.title, f.title_en.as_deref()).to_owned(),
            purpose: Tr::new(lang).purpose(&config, &f.purpose),
            departments: departments(&config, f).join(&visit.t.get("list-sep")),
        })
        .collect();
    visit.respond(&DeskPage {
        chrome: visit.chrome("/console/desk"),
        forms,
    })
}

#[derive(Template)]
#[template(path = "console/form.html")]
struct FormPage {
    chrome: Chrome,
    id: String,
    title: String,
    purpose: String,
    departments: String,
    /// Why the last try was refused, in words (never what was sent).
    error: Option<String>,
    /// The fields to verify: what the citizen states, typed by the clerk.
    verify: Vec<VerifyInput>,
}

/// A field of the form to verify (核验): an input for what the citizen states.
struct VerifyInput {
    id: String,
    title: String,
    date: bool,
    address: bool,
}

/// The form to fill: the citizen's ID number and the case number.
pub(crate) async fn form_page(visit: Visit, Path(form_id): Path<String>) -> Response {
    let caller = match visit.require(DESK_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let config = visit.console.app.config.load_full();
    let Some(form) = config.forms.get(&form_id) else {
        return visit.problem(StatusCode::NOT_FOUND, ProblemKind::UnknownForm.slug(), None);
    };
    let today = visit.console.app.clock.today();
    if !may_use(&config, &caller, &form.purpose, today) {
        return visit.problem(
            StatusCode::FORBIDDEN,
            ProblemKind::Forbidden.slug(),
            Some("not_granted"),
        );
    }
    visit.respond(&form_page_for(&visit, &config, form, None))
}

fn form_page_for(
    visit: &Visit,
    config: &ActiveConfig,
    form: &FormTemplate,
    error: Option<String>,
) -> FormPage {
    let lang = visit.t.lang;
    FormPage {
        chrome: visit.chrome("/console/desk"),
        id: form.id.clone(),
        title: pick(lang, &form.title, form.title_en.as_deref()).to_owned(),
        purpose: Tr::new(lang).purpose(config, &form.purpose),
        departments: departments(config, form).join(&visit.t.get("list-sep")),
        error,
        verify: form
            .sections
            .iter()
            .flat_map(|s| &s.fields)
            .filter_map(|f| {
                let source = f.verify()?;
                Some(VerifyInput {
                    id: f.id.clone(),
                    title: pick(lang, &f.title, f.title_en.as_deref()).to_owned(),
                    date: f.kind == crate::forms::FieldType::Date,
                    address: source.path == "address" || source.path.ends_with(".address"),
                })
            })
            .collect(),
    }
}

/// What the fill form sends.
#[derive(Deserialize)]
pub(crate) struct FillForm {
    id_number: String,
    case_id: String,
    csrf: String,
    /// `stated_<field id>`: what the citizen states for a field to verify.
    #[serde(flatten)]
    stated: std::collections::BTreeMap<String, String>,
}

impl FillForm {
    /// The values stated for the form's fields to verify, by field id (empty ones
    /// left out; other keys ignored).
    fn stated(&self) -> serde_json::Map<String, Value> {
        self.stated
            .iter()
            .filter_map(|(key, value)| {
                let id = key.strip_prefix("stated_")?;
                let value = value.trim();
                (!value.is_empty()).then(|| (id.to_owned(), Value::String(value.to_owned())))
            })
            .collect()
    }
}

posted!(FillForm, LookupForm);

/// One value of a filled form, as the page shows it.
struct FieldView {
    title: String,
    value: String,
    source: Option<String>,
    age: Option<String>,
    mask: Option<String>,
    verified: bool,
    derived: bool,
    input: bool,
    missing: Option<String>,
    /// Where a wrong value of the form's subject can be reported (数据纠错): the
    /// department's connector, operation and field.
    report: Option<ReportTarget>,
    /// A field to verify: what the verification came to, in words, and its result
    /// (`match`, `mismatch`, `cannot_verify`).
    verification: Option<VerifiedView>,
}

/// What a field to verify came to: in words, and as `match`, `mismatch` or
/// `cannot_verify` (the page's style).
struct VerifiedView {
    words: String,
    result: String,
}

/// A department value of the form's subject that a clerk may report as wrong.
struct ReportTarget {
    connector: String,
    operation: String,
    field: String,
}

/// A section: its fields, or a table of rows (household members).
struct SectionView {
    title: String,
    /// The person a linked section is about (as the view shows them).
    about: Option<String>,
    fields: Vec<FieldView>,
    repeated: bool,
    columns: Vec<String>,
    rows: Vec<Vec<FieldView>>,
    missing: Option<String>,
}

#[derive(Template)]
#[template(path = "console/filled.html")]
struct FilledPage {
    chrome: Chrome,
    form_id: String,
    title: String,
    purpose: String,
    case_id: String,
    subject: String,
    date: String,
    township: String,
    complete: bool,
    /// Departments that did not answer in time or failed.
    failed: Vec<String>,
    /// For the retry of an incomplete form: the ID number, POSTed again from a
    /// hidden field (never in a URL; the page is not stored).
    retry_id: String,
    /// The form's subject, POSTed from a hidden field by "report a wrong value"
    /// (never in a URL).
    subject_id: String,
    sections: Vec<SectionView>,
}

/// Fills a form for a citizen: the API's fill, shown as a page.
pub(crate) async fn fill(
    visit: Visit,
    Path(form_id): Path<String>,
    form: Result<Form<FillForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(DESK_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let config = app.config.load_full();
    let mut attempt = Attempt::new(
        app.services(&visit.request_id),
        &*app.audit,
        &config,
        &caller,
        visit.peer,
    );
    let admitted = match attempt.admit(&form_id).await {
        Ok(form) => attempt
            .person(
                subject_key(
                    connectors::definition::SubjectKey::IdNumber,
                    Some(input.id_number.trim().to_owned()),
                    None,
                ),
                &input.case_id,
            )
            .and_then(|person| {
                let stated = attempt.stated(&form, input.stated())?;
                Ok((form, person, stated))
            }),
        Err(refused) => Err(refused),
    };
    let (form, (subject, case_id), stated) = match admitted {
        Ok(ready) => ready,
        Err(refused) => {
            let kind = refused.kind();
            if attempt
                .record_refusal(kind.status().as_u16(), kind.slug())
                .await
                .is_err()
            {
                return audit_unavailable(&visit);
            }
            return refused_page(&visit, &config, &form_id, refused);
        }
    };
    let filled = match attempt.fill(&form, &subject, &case_id, &stated).await {
        Ok(filled) => filled,
        Err(refused) => return refused_page(&visit, &config, &form_id, refused),
    };
    if !filled.audited {
        return audit_unavailable(&visit);
    }
    if let Some(unfilled) = filled.problem {
        return match unfilled {
            Unfilled::Lookup(error) => lookup_failed(&visit, &error),
            Unfilled::PersonUnknown => visit.problem(
                StatusCode::NOT_FOUND,
                ProblemKind::PersonUnknown.slug(),
                None,
            ),
        };
    }
    tracing::info!(
        request_id = %visit.request_id,
        user = %caller.user,
        form = %form.id,
        subject = %subject.masked(),
        "form filled in the console"
    );
    let mut body = filled.body;
    label_answer(&mut body, visit.t.lang);
    let mut page = filled_page(&visit, &config, &caller, &form, &body);
    page.subject_id = subject.as_str().to_owned();
    if !page.complete {
        page.retry_id = subject.as_str().to_owned();
    }
    visit.respond(&page)
}

pub(super) fn audit_unavailable(visit: &Visit) -> Response {
    visit.problem(
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemKind::AuditUnavailable.slug(),
        None,
    )
}

/// A refused fill: the form again with the reason for a wrong ID number or case
/// number; a page explaining the refusal otherwise.
fn refused_page(visit: &Visit, config: &ActiveConfig, form_id: &str, refused: Refused) -> Response {
    let kind = refused.kind();
    match (&refused, config.forms.get(form_id)) {
        (Refused::Subject(error), Some(form)) => {
            let message = subject_message(visit, error);
            let page = form_page_for(visit, config, form, Some(message));
            visit.respond_with(kind.status(), &page)
        }
        (Refused::Stated(_), Some(form)) => {
            let message = visit.t.get("fill-stated-bad");
            let page = form_page_for(visit, config, form, Some(message));
            visit.respond_with(kind.status(), &page)
        }
        (Refused::NotGranted, _) => visit.problem(kind.status(), kind.slug(), Some("not_granted")),
        _ => visit.problem(kind.status(), kind.slug(), None),
    }
}

/// What is wrong with an ID number or a case number, in words (never the value).
pub(super) fn subject_message(visit: &Visit, error: &crate::lookup::SubjectError) -> String {
    match error {
        crate::lookup::SubjectError::IdNumber(e) if e.code() == "length" => {
            visit.t.get("fill-id-number-short")
        }
        crate::lookup::SubjectError::IdNumber(e) if e.code() == "check_digit" => {
            visit.t.get("fill-id-number-bad")
        }
        crate::lookup::SubjectError::IdNumber(_) => visit
            .t
            .problem(crate::problem::ProblemKind::InvalidIdNumber.slug()),
        _ => visit.t.get("fill-case-id-help"),
    }
}

/// A lookup's failure as a page: the refusal's reason in words, the rule.
pub(super) fn lookup_failed(visit: &Visit, error: &LookupError) -> Response {
    let kind = error.kind();
    let reason = match error {
        LookupError::Refused(refusal) => Some(refusal.reason.as_str()),
        _ => None,
    };
    visit.problem(kind.status(), kind.slug(), reason)
}

/// A value as words: its label when it has one, yes/no for a boolean.
fn text_of(t: Tr, value: &Value, label: Option<&Value>) -> String {
    if let Some(Value::String(label)) = label {
        return label.clone();
    }
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => t.get("value-true"),
        Value::Bool(false) => t.get("value-false"),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| text_of(t, v, None))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(&t.get("list-sep")),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !k.ends_with("_label"))
            .map(|(k, v)| {
                let label = map.get(&format!("{k}_label"));
                text_of(t, v, label)
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// A mask's name in words (its code when the catalogue has none).
pub(crate) fn mask_words(t: Tr, mask: &str) -> String {
    t.words("mask", mask)
}

fn field_view(t: Tr, field: &Value) -> FieldView {
    let lang = t.lang;
    let title = pick(
        lang,
        field["title"].as_str().unwrap_or_default(),
        field["title_en"].as_str(),
    )
    .to_owned();
    let missing = field.get("missing").map(|m| {
        m["reason_label"]
            .as_str()
            .or_else(|| m["reason"].as_str())
            .unwrap_or_default()
            .to_owned()
    });
    let department = field["source"]["department"]["name"]
        .as_str()
        .map(str::to_owned);
    FieldView {
        title,
        value: text_of(t, &field["value"], field.get("value_label")),
        source: department,
        age: field["age_s"].as_i64().map(|s| t.age(s)),
        mask: field["mask"].as_str().map(|m| mask_words(t, m)),
        verified: field["verified"].as_bool().unwrap_or(false),
        derived: field.get("derived").is_some(),
        input: field["input"].as_bool().unwrap_or(false),
        missing,
        report: None,
        verification: field.get("verification").map(|v| {
            let result = v["result"].as_str().unwrap_or_default();
            let words = match result {
                "match" => t.get("verify-match"),
                "mismatch" => t.get("verify-mismatch"),
                _ => {
                    let why = v["reason_label"]
                        .as_str()
                        .or_else(|| v["reason"].as_str())
                        .unwrap_or_default();
                    t.arg("verify-cannot", "reason", why)
                }
            };
            VerifiedView {
                words,
                result: result.to_owned(),
            }
        }),
    }
}

fn fields_of(t: Tr, value: &Value) -> Vec<FieldView> {
    value["fields"]
        .as_array()
        .map(|fields| fields.iter().map(|f| field_view(t, f)).collect())
        .unwrap_or_default()
}

fn filled_page(
    visit: &Visit,
    config: &ActiveConfig,
    caller: &Caller,
    form: &FormTemplate,
    body: &Value,
) -> FilledPage {
    let t = visit.t;
    let lang = t.lang;
    let sections = form
        .sections
        .iter()
        .zip(body["sections"].as_array().into_iter().flatten())
        .map(|(template, section)| {
            let repeated = matches!(template.scope, Scope::Repeat { .. });
            let rows: Vec<Vec<FieldView>> = section["rows"]
                .as_array()
                .map(|rows| rows.iter().map(|r| fields_of(t, r)).collect())
                .unwrap_or_default();
            let mut fields = fields_of(t, section);
            if matches!(template.scope, Scope::Subject) {
                // The subject's own department values may be reported as wrong.
                for (view, field) in fields.iter_mut().zip(&template.fields) {
                    if let FieldValue::From(crate::forms::template::SourceRef::Lookup(source)) =
                        &field.value
                        && view.missing.is_none()
                        && !view.derived
                    {
                        view.report = Some(ReportTarget {
                            connector: source.connector.clone(),
                            operation: source.operation.clone(),
                            field: source.path.clone(),
                        });
                    }
                }
            }
            SectionView {
                title: pick(lang, &template.title, template.title_en.as_deref()).to_owned(),
                about: section.get("subject").map(|s| text_of(t, s, None)),
                fields,
                repeated,
                columns: template
                    .fields
                    .iter()
                    .filter(|f| !matches!(f.value, FieldValue::Input) || !repeated)
                    .map(|f| pick(lang, &f.title, f.title_en.as_deref()).to_owned())
                    .collect(),
                rows,
                missing: section.get("missing").map(|m| {
                    m["reason_label"]
                        .as_str()
                        .or_else(|| m["reason"].as_str())
                        .unwrap_or_default()
                        .to_owned()
                }),
            }
        })
        .collect();
    let mut failed: Vec<String> = Vec::new();
    for lookup in body["lookups"].as_array().into_iter().flatten() {
        let outcome = lookup["outcome"].as_str().unwrap_or_default();
        let answered = matches!(outcome, "ok" | "subject-not-found" | "forbidden");
        let name = lookup["department"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !answered && !failed.contains(&name) {
            failed.push(name);
        }
    }
    FilledPage {
        chrome: visit.chrome("/console/desk"),
        form_id: form.id.clone(),
        title: pick(lang, &form.title, form.title_en.as_deref()).to_owned(),
        purpose: Tr::new(lang).purpose(config, &form.purpose),
        case_id: body["case_id"].as_str().unwrap_or_default().to_owned(),
        subject: body["subject"].as_str().unwrap_or_default().to_owned(),
        date: visit.console.app.clock.today().to_string(),
        township: caller.township.clone().unwrap_or_default(),
        complete: body["complete"].as_bool().unwrap_or(false),
        failed,
        retry_id: String::new(),
        subject_id: String::new(),
        sections,
    }
}

/// A connector operation the person may pick for a single lookup.
struct Choice {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "console/lookup.html")]
struct LookupPage {
    chrome: Chrome,
    operations: Vec<Choice>,
    purposes: Vec<Choice>,
    error: Option<String>,
}

/// The operations taking an ID number, and the purposes a grant in force gives
/// this person.
fn choices(visit: &Visit, config: &ActiveConfig, caller: &Caller) -> (Vec<Choice>, Vec<Choice>) {
    let lang = visit.t.lang;
    let today = visit.console.app.clock.today();
    let mut operations = Vec::new();
    for (id, connector) in &config.connectors {
        for (name, op) in &connector.operations {
            if op.subject != connectors::definition::SubjectKey::IdNumber {
                continue;
            }
            operations.push(Choice {
                value: format!("{id}/{name}"),
                label: format!("{} · {name}", connector.def.department.name),
            });
        }
    }
    let mut purposes: Vec<Choice> = Vec::new();
    for grant in config.policies.grants() {
        if !(grant.valid.contains(today) && grant.consumers.matches(caller)) {
            continue;
        }
        for code in &grant.purposes {
            if !purposes.iter().any(|p| &p.value == code) {
                purposes.push(Choice {
                    value: code.clone(),
                    label: Tr::new(lang).purpose(config, code),
                });
            }
        }
    }
    (operations, purposes)
}

/// The single lookup's form.
pub(crate) async fn lookup_page(visit: Visit) -> Response {
    let caller = match visit.require(DESK_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let config = visit.console.app.config.load_full();
    let (operations, purposes) = choices(&visit, &config, &caller);
    visit.respond(&LookupPage {
        chrome: visit.chrome("/console/lookup"),
        operations,
        purposes,
        error: None,
    })
}

/// What the single lookup form sends.
#[derive(Deserialize)]
pub(crate) struct LookupForm {
    /// `connector/operation`.
    target: String,
    purpose: String,
    id_number: String,
    case_id: String,
    csrf: String,
}

/// One released field of a lookup.
struct Row {
    name: String,
    value: String,
    mask: Option<String>,
}

/// One withheld field and why.
struct WithheldRow {
    name: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "console/answer.html")]
struct AnswerPage {
    chrome: Chrome,
    department: String,
    operation: String,
    purpose: String,
    case_id: String,
    age: String,
    cache_hit: bool,
    rows: Vec<Row>,
    withheld: Vec<WithheldRow>,
}

/// Runs a single lookup: the API's `/v1/query`, shown as a page.
pub(crate) async fn lookup(
    visit: Visit,
    form: Result<Form<LookupForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(DESK_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let services = app.services(&visit.request_id);
    let mut trail = Trail::default();
    let config = app.config.load_full();
    let (connector, operation) = input
        .target
        .split_once('/')
        .map_or((input.target.as_str(), ""), |(c, o)| (c, o));
    let answered = match single::admit(services, &caller).await {
        Err(limited) => Err(AskError::Lookup(LookupError::Limited(limited))),
        Ok(()) => {
            let ask = Ask {
                connector: connector.to_owned(),
                operation: operation.to_owned(),
                purpose: input.purpose.clone(),
                case_id: input.case_id.clone(),
                id_number: Some(input.id_number.trim().to_owned()),
                household_number: None,
            };
            single::ask(services, &config, &caller, ask, &mut trail).await
        }
    };
    let (status, problem) = match &answered {
        Ok(_) => (200, None),
        Err(e) => (e.kind().status().as_u16(), Some(e.kind().slug())),
    };
    let event = trail.event(&visit.request_id, &caller, visit.peer, status, problem);
    if app.audit.append(event).await.is_err() {
        return audit_unavailable(&visit);
    }
    let answered = match answered {
        Ok(answered) => answered,
        Err(AskError::Subject(error)) => {
            let (operations, purposes) = choices(&visit, &config, &caller);
            let kind = AskError::Subject(error.clone()).kind();
            let message = subject_message(&visit, &error);
            let page = LookupPage {
                chrome: visit.chrome("/console/lookup"),
                operations,
                purposes,
                error: Some(message),
            };
            return visit.respond_with(kind.status(), &page);
        }
        Err(AskError::Lookup(error)) => return lookup_failed(&visit, &error),
        Err(other) => {
            let kind = other.kind();
            return visit.problem(kind.status(), kind.slug(), None);
        }
    };
    let found = &answered.found;
    let mut data = serde_json::json!({ "data": found.outcome.data.clone() });
    label_answer(&mut data, visit.t.lang);
    let rows = found
        .outcome
        .fields
        .iter()
        .map(|(path, returned)| Row {
            name: path.clone(),
            value: text_of(
                visit.t,
                &walk(&data["data"], path),
                Some(&walk_label(&data["data"], path)),
            ),
            mask: Some(returned.mask)
                .filter(|m| *m != "keep")
                .map(|m| mask_words(visit.t, m)),
        })
        .collect();
    let withheld = found
        .outcome
        .withheld
        .iter()
        .map(|w| WithheldRow {
            name: w.field.clone(),
            reason: visit
                .reason(w.reason.as_str())
                .unwrap_or_else(|| w.reason.as_str().to_owned()),
        })
        .collect();
    let fetched_at = found.record.fetched_at();
    let age = (app.clock.now() - fetched_at).num_seconds();
    visit.respond(&AnswerPage {
        chrome: visit.chrome("/console/lookup"),
        department: answered.connector.def.department.name.clone(),
        operation: answered.operation.to_owned(),
        purpose: Tr::new(visit.t.lang).purpose(&config, &answered.purpose.code),
        case_id: input.case_id,
        age: visit.t.age(age),
        cache_hit: found.cache_hit,
        rows,
        withheld,
    })
}

/// The value at a dotted path of a record (`address.village_code`).
fn walk(value: &Value, path: &str) -> Value {
    let mut at = value;
    for part in path.split('.') {
        match at.get(part.trim_end_matches("[]")) {
            Some(next) => at = next,
            None => return Value::Null,
        }
    }
    at.clone()
}

/// The label beside the value at a dotted path, if the labels gave one.
fn walk_label(value: &Value, path: &str) -> Value {
    match path.rsplit_once('.') {
        Some((parent, last)) => walk(value, &format!("{parent}.{last}_label")),
        None => walk(value, &format!("{path}_label")),
    }
}
