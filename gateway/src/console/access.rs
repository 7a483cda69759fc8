//! The access desks (乡镇"点菜"、部门"端菜"、收回): the department data admin's
//! requests inbox and grants, and the township lead's view of what the township may
//! see and the request form. Every page and every change runs a use case of
//! [`crate::access`] — the API's own — so department scope (another department's
//! request is unknown, 404; acting on it is refused, 403), the checks and the audit
//! event are the API's. Every POST carries the page's CSRF token; no personal data
//! goes into a URL (request and grant ids, connector and purpose codes only).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use connectors::definition::{FieldDef, LeafField, PiiKind, Sharing};
use serde::Deserialize;
use serde_json::Value;

use super::desk::mask_words;
use super::i18n::Tr;
use super::page::{Chrome, Visit, posted};
use crate::access::{
    self, Approval, GrantFilter, ListedGrant, NewRequest, NotAMask, Reason, approved_as_asked,
};
use crate::auth::{Caller, Role};
use crate::config::{ActiveConfig, ActiveConnector};
use crate::mask::{AddressLevel, Mask};
use crate::policy::{Jurisdiction, Quota, RowRule};
use crate::problem::{Problem, ProblemKind};
use crate::registry::{AccessRequest, RequestState, Revocation};

/// Who works the department's side.
const ADMIN: &[Role] = &[Role::DeptAdmin];
/// Who works the township's side.
const LEAD: &[Role] = &[Role::TownshipLead];
/// A grant ending within this many days is marked as expiring soon.
const EXPIRING_DAYS: i64 = 30;

fn department_name(config: &ActiveConfig, connector: &str) -> String {
    config
        .connectors
        .get(connector)
        .map_or_else(|| connector.to_owned(), |c| c.def.department.name.clone())
}

/// The day part of an RFC 3339 time the registry keeps.
fn day_of(at: &str) -> String {
    at.get(..10).unwrap_or(at).to_owned()
}

/// The places an invalid request or decision went wrong, in words: each path the
/// gateway named (never a value that was sent).
fn problem_lines(t: Tr, problem: &Problem) -> Vec<String> {
    let mut lines = vec![t.problem(problem.kind.slug())];
    for p in problem
        .extensions
        .get("problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = p["path"].as_str().unwrap_or_default();
        let line = match path {
            "confirm" => t.get("access-confirm-needed"),
            "reason" => t.get("access-reason-needed"),
            "justification" => t.get("access-justification-needed"),
            "fields" => t.get("access-fields-needed"),
            _ => t.arg("access-problem-at", "path", path),
        };
        lines.push(line);
    }
    lines
}

/// The masks a department may choose from, by the code a form sends.
fn mask_choices() -> Vec<(&'static str, Mask)> {
    vec![
        ("keep", Mask::Keep),
        ("name", Mask::Name),
        ("id_number", Mask::IdNumber { first: 6, last: 4 }),
        ("phone", Mask::Phone),
        ("date_year", Mask::DateYear),
        ("age_band", Mask::AgeBand),
        ("address_to.village", Mask::AddressTo(AddressLevel::Village)),
        (
            "address_to.township",
            Mask::AddressTo(AddressLevel::Township),
        ),
        ("address_to.county", Mask::AddressTo(AddressLevel::County)),
        ("pseudonym", Mask::Pseudonym),
        ("redact", Mask::Redact),
    ]
}

/// A mask in words.
fn mask_text(t: Tr, mask: &Mask) -> String {
    let words = match mask {
        Mask::Keep => t.get("access-mask-keep"),
        other => mask_words(t, other.operator()),
    };
    match mask {
        Mask::AddressTo(level) => {
            let level = serde_json::to_value(level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{words} ({})", t.get(&format!("access-level-{level}")))
        }
        _ => words,
    }
}

/// A mask as a request or a grant writes it (`"default"` or a mask), in words.
fn mask_value_text(t: Tr, value: &Value) -> String {
    match access::parse_mask(value) {
        Ok(None) => t.get("access-mask-default"),
        Ok(Some(mask)) => mask_text(t, &mask),
        Err(NotAMask) => value.to_string(),
    }
}

fn sharing_words(t: Tr, sharing: Sharing) -> String {
    let key = match sharing {
        Sharing::Open => "access-sharing-open",
        Sharing::Conditional => "access-sharing-conditional",
        Sharing::Never => "access-sharing-never",
    };
    t.get(key)
}

fn pii_words(t: Tr, pii: PiiKind) -> String {
    let code = serde_json::to_value(pii)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    t.maybe(&format!("access-pii-{code}")).unwrap_or(code)
}

/// The title of the field at `path` (`members[].name`) in an operation's record.
fn field_title(connector: &ActiveConnector, operation: &str, path: &str) -> Option<String> {
    let op = connector.def.operations.get(operation)?;
    let mut level: &BTreeMap<String, FieldDef> = &op.record;
    let mut found: Option<&FieldDef> = None;
    for part in path.split('.') {
        let field = level.get(part.trim_end_matches("[]"))?;
        found = Some(field);
        if let Some(next) = field.fields.as_ref().or(field.items.as_ref()) {
            level = next;
        }
    }
    found.and_then(|f| f.title.clone())
}

/// A field of a connector's operation as the pages show it.
struct FieldRow {
    path: String,
    title: String,
    sharing: String,
    pii: String,
    /// The mask asked, or granted, in words.
    mask: String,
    /// Whether a township may ask for it (conditional).
    requestable: bool,
    never: bool,
    /// Whether its box is ticked (a field asked; one picked before a problem).
    ticked: bool,
    /// For the approval form: the masks the department may choose, and which one
    /// is chosen (the one asked).
    choices: Vec<(String, String, bool)>,
}

/// The leaf at `path` of the first operation of `operations` that has it.
fn leaf<'c>(
    connector: Option<&'c ActiveConnector>,
    operations: &[String],
    path: &str,
) -> Option<&'c LeafField> {
    access::leaves(connector?, operations, path)
        .into_iter()
        .flatten()
        .next()
}

/// The rows of the fields a request asks for, with the approval's mask choices.
fn asked_rows(t: Tr, config: &ActiveConfig, request: &AccessRequest) -> Vec<FieldRow> {
    let connector = config.connectors.get(&request.connector);
    request
        .fields
        .iter()
        .map(|(path, asked)| {
            let leaf = leaf(connector, &request.operations, path);
            let title = connector
                .and_then(|c| {
                    request
                        .operations
                        .iter()
                        .find_map(|op| field_title(c, op, path))
                })
                .unwrap_or_default();
            let requested = access::parse_mask(asked).ok().flatten();
            let mut choices = vec![(
                "default".to_owned(),
                match leaf {
                    Some(l) => t.arg(
                        "access-mask-default-is",
                        "mask",
                        &mask_text(t, &Mask::default_for(l.pii)),
                    ),
                    None => t.get("access-mask-default"),
                },
                requested.is_none(),
            )];
            for (code, mask) in mask_choices() {
                let fits = leaf.is_none_or(|l| mask.fits(l.pii));
                // Never less masked than the township asked.
                let allowed =
                    !(mask == Mask::Keep && requested.as_ref().is_some_and(|m| *m != Mask::Keep));
                if fits && allowed {
                    choices.push((
                        code.to_owned(),
                        mask_text(t, &mask),
                        requested.as_ref() == Some(&mask),
                    ));
                }
            }
            FieldRow {
                path: path.clone(),
                title,
                sharing: leaf
                    .map(|l| sharing_words(t, l.sharing))
                    .unwrap_or_default(),
                pii: leaf.map(|l| pii_words(t, l.pii)).unwrap_or_default(),
                mask: mask_value_text(t, asked),
                requestable: true,
                never: leaf.is_some_and(|l| l.sharing == Sharing::Never),
                ticked: true,
                choices,
            }
        })
        .collect()
}

/// A request as a list shows it.
struct RequestRow {
    id: String,
    township: String,
    requested_by: String,
    department: String,
    target: String,
    purposes: String,
    fields: String,
    created: String,
    deadline: String,
    /// The deadline in working days, in words.
    due: String,
    overdue: bool,
    pending: bool,
    /// The state in words: pending, approved as asked or narrowed, refused,
    /// withdrawn, revoked.
    state: String,
    state_code: String,
    /// The department's answer: its note, the refusal's or the revocation's reason.
    answer: Option<String>,
    decided: Option<String>,
    revoked: Option<String>,
}

fn request_row(
    t: Tr,
    config: &ActiveConfig,
    request: &AccessRequest,
    today: NaiveDate,
    revocation: Option<&Revocation>,
    grant: Option<&ListedGrant>,
) -> RequestRow {
    let lang = t.lang;
    let deadline = access::parse_date(&request.deadline);
    let pending = request.state == RequestState::Pending;
    let overdue = access::is_overdue(request, today);
    let due = match deadline {
        Some(d) if pending => {
            let left = config.calendar.working_days_left(today, d);
            if left < 0 {
                t.arg("access-due-overdue", "n", &(-left).to_string())
            } else if left == 0 {
                t.get("access-due-today")
            } else {
                t.arg("access-due-left", "n", &left.to_string())
            }
        }
        _ => String::new(),
    };
    let state_code = match (request.state, revocation) {
        (RequestState::Approved, Some(_)) => "revoked",
        (RequestState::Approved, None) => match grant {
            Some(g) if !approved_as_asked(request, &g.view, config) => "approved_narrowed",
            _ => "approved",
        },
        (RequestState::Pending, _) => "pending",
        (RequestState::Refused, _) => "refused",
        (RequestState::Withdrawn, _) => "withdrawn",
    };
    let answer = match revocation {
        Some(r) => Some(r.reason.clone()),
        None => request.decision_note.clone(),
    };
    RequestRow {
        id: request.id.clone(),
        township: request.township.clone(),
        requested_by: request.requested_by.clone(),
        department: department_name(config, &request.connector),
        target: format!("{}.{}", request.connector, request.operations.join(",")),
        purposes: request
            .purposes
            .iter()
            .map(|p| Tr::new(lang).purpose(config, p))
            .collect::<Vec<_>>()
            .join(&t.get("list-sep")),
        fields: request
            .fields
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(&t.get("list-sep")),
        created: day_of(&request.created_at),
        deadline: request.deadline.clone(),
        due,
        overdue,
        pending,
        state: t.get(&format!("access-state-{state_code}")),
        state_code: state_code.to_owned(),
        answer,
        decided: request.decided_at.as_deref().map(day_of),
        revoked: revocation.map(|r| day_of(&r.at)),
    }
}

// The department's inbox

#[derive(Template)]
#[template(path = "console/access_inbox.html")]
struct InboxPage {
    chrome: Chrome,
    department: String,
    pending: Vec<RequestRow>,
    decided: Vec<RequestRow>,
}

/// `/console/inbox`: the requests addressed to the admin's department, oldest first,
/// each with its deadline in working days; overdue ones marked.
pub(crate) async fn inbox(visit: Visit) -> Response {
    let caller = match visit.require(ADMIN) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let visible = match access::list_requests(app, &who).await {
        Ok(visible) => visible,
        Err(problem) => return visit.refused(&problem),
    };
    let grants = access::list_grants(app, &who, &GrantFilter::default())
        .await
        .unwrap_or_default();
    let config = app.config.load_full();
    let mut requests = visible.requests.clone();
    requests.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let (mut pending, mut decided) = (Vec::new(), Vec::new());
    for r in &requests {
        let grant = grants
            .iter()
            .find(|g| Some(&g.view.id) == r.grant_id.as_ref());
        let row = request_row(
            visit.t,
            &config,
            r,
            visible.today,
            visible.revocation(r),
            grant,
        );
        if row.pending {
            pending.push(row);
        } else {
            decided.push(row);
        }
    }
    decided.reverse();
    let department = caller.department.clone().unwrap_or_default();
    let department = config
        .connectors
        .values()
        .find(|c| c.def.department.id == department && !c.def.department.name.is_empty())
        .map_or(department, |c| c.def.department.name.clone());
    visit.respond(&InboxPage {
        chrome: visit.chrome("/console/inbox"),
        department,
        pending,
        decided,
    })
}

/// A purpose with its legal basis.
struct PurposeRow {
    code: String,
    name: String,
    legal_basis: String,
}

#[derive(Template)]
#[template(path = "console/access_request.html")]
struct RequestPage {
    chrome: Chrome,
    request: RequestRow,
    operations: String,
    roles: String,
    valid_until: String,
    justification: String,
    purposes: Vec<PurposeRow>,
    fields: Vec<FieldRow>,
    grant_id: Option<String>,
    decided_by: Option<String>,
    errors: Vec<String>,
    today: String,
}

async fn request_page(
    visit: &Visit,
    caller: Arc<Caller>,
    id: &str,
    errors: Vec<String>,
) -> Response {
    let app = &visit.console.app;
    let who = visit.who(caller);
    let (request, revocation) = match access::show_request(app, &who, id).await {
        Ok(found) => found,
        Err(problem) => return visit.refused(&problem),
    };
    let grants = access::list_grants(app, &who, &GrantFilter::default())
        .await
        .unwrap_or_default();
    let grant = grants
        .iter()
        .find(|g| Some(&g.view.id) == request.grant_id.as_ref());
    let config = app.config.load_full();
    let t = visit.t;
    let today = crate::policy::china_today();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = RequestPage {
        chrome: visit.chrome("/console/inbox"),
        request: request_row(t, &config, &request, today, revocation.as_ref(), grant),
        operations: request.operations.join(&t.get("list-sep")),
        roles: request
            .roles
            .iter()
            .map(|r| t.get(&format!("role-{r}")))
            .collect::<Vec<_>>()
            .join(&t.get("list-sep")),
        valid_until: request
            .valid_until
            .clone()
            .unwrap_or_else(|| t.get("access-no-end")),
        justification: request.justification.clone(),
        purposes: request
            .purposes
            .iter()
            .map(|code| PurposeRow {
                code: code.clone(),
                name: Tr::new(t.lang).purpose(&config, code),
                legal_basis: config
                    .purposes
                    .get(code)
                    .map(|p| p.legal_basis.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        fields: asked_rows(t, &config, &request),
        grant_id: request.grant_id.clone(),
        decided_by: request.decided_by.clone(),
        errors,
        today: today.to_string(),
    };
    visit.respond_with(status, &page)
}

/// `/console/inbox/{id}`: one request to decide. Another department's request is
/// unknown here (404), as in the API.
pub(crate) async fn request(visit: Visit, Path(id): Path<String>) -> Response {
    let caller = match visit.require(ADMIN) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    request_page(&visit, caller, &id, Vec::new()).await
}

/// The approval form: `keep.<path>` for each field approved, `mask.<path>` its mask
/// code, the validity, the quota and a note.
#[derive(Deserialize)]
pub(crate) struct ApproveForm {
    csrf: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    per_minute: String,
    #[serde(default)]
    per_day: String,
    #[serde(default)]
    per_user_per_day: String,
    #[serde(default)]
    note: String,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

/// A reason, as the refusal form sends it.
#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// A reason with the confirmation a revocation needs.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: Option<String>,
}

/// The request form of a township lead: `field.<path>` and `role.<role>` for each
/// one ticked.
#[derive(Deserialize)]
pub(crate) struct AskForm {
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    justification: String,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

/// Only the token: withdrawing a request.
#[derive(Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
}

posted!(ApproveForm, ReasonForm, RevokeForm, AskForm, TokenForm);

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The approval a form says, or the problem with it (a number that is not one, a
/// mask code the page never offers) — given to the use case, which records it.
fn approval_of(form: &ApproveForm) -> Result<Approval, Problem> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut fields = BTreeMap::new();
    let choices = mask_choices();
    for (key, _) in form.rest.iter().filter(|(k, _)| k.starts_with("keep.")) {
        let path = &key["keep.".len()..];
        let code = form
            .rest
            .get(&format!("mask.{path}"))
            .map_or("default", String::as_str);
        let value = if code == "default" {
            Some(Value::String("default".to_owned()))
        } else {
            choices
                .iter()
                .find(|(c, _)| *c == code)
                .and_then(|(_, m)| serde_json::to_value(m).ok())
        };
        match value {
            Some(v) => {
                fields.insert(path.to_owned(), v);
            }
            None => problems.push((access::field_at(path), "is not a mask".to_owned())),
        }
    }
    let mut number = |name: &str, text: &str| -> Option<u32> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match text.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                problems.push((
                    format!("quota.{name}"),
                    "is not a positive whole number".to_owned(),
                ));
                None
            }
        }
    };
    let quota = Quota {
        per_minute: number("per_minute", &form.per_minute),
        per_day: number("per_day", &form.per_day),
        per_user_per_day: number("per_user_per_day", &form.per_user_per_day),
    };
    if !problems.is_empty() {
        return Err(access::invalid(&problems, "approval"));
    }
    let any_quota =
        quota.per_minute.is_some() || quota.per_day.is_some() || quota.per_user_per_day.is_some();
    Ok(Approval {
        fields: Some(fields),
        valid_until: some(&form.valid_until),
        quota: any_quota.then_some(quota),
        legal_basis: None,
        note: some(&form.note),
    })
}

/// After a change, back to a page (POST, redirect, GET).
fn back_to(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Whether a refusal is one the page shows again with its problems (the person can
/// fix it) rather than an error page.
fn fixable(problem: &Problem) -> bool {
    problem.kind == ProblemKind::InvalidRequest
}

/// Approves a request as asked or narrowed: the API's approval.
pub(crate) async fn approve(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<ApproveForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(ADMIN, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    match access::approve(app, &who, &id, approval_of(&input)).await {
        Ok(decision) => back_to(&format!("/console/inbox/{}", decision.request.id)),
        Err(p) if fixable(&p) => {
            request_page(&visit, caller, &id, problem_lines(visit.t, &p)).await
        }
        Err(p) => visit.refused(&p),
    }
}

/// Refuses a request with a reason: the API's refusal.
pub(crate) async fn refuse(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<ReasonForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(ADMIN, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let reason = Reason {
        reason: input.reason,
    };
    match access::refuse(app, &who, &id, Ok(reason)).await {
        Ok(decision) => back_to(&format!("/console/inbox/{}", decision.request.id)),
        Err(p) if fixable(&p) => {
            request_page(&visit, caller, &id, problem_lines(visit.t, &p)).await
        }
        Err(p) => visit.refused(&p),
    }
}

// The department's grants

/// A grant as the pages show it.
struct GrantRow {
    id: String,
    department: String,
    consumers: String,
    target: String,
    purposes: String,
    fields: Vec<(String, String)>,
    row: Option<String>,
    quota: Option<String>,
    valid: String,
    state: String,
    active: bool,
    expiring: bool,
    approver: String,
    /// For a grant an approval wrote: who approved it in the gateway, and when.
    approved: Option<String>,
    revoked: Option<String>,
    /// Whether the department can revoke it here (an API grant not yet revoked).
    revocable: bool,
    request_id: Option<String>,
}

fn grant_row(t: Tr, config: &ActiveConfig, grant: &ListedGrant, today: NaiveDate) -> GrantRow {
    let lang = t.lang;
    let sep = t.get("list-sep");
    let view = &grant.view;
    let mut consumers: Vec<String> = Vec::new();
    if let Some(roles) = view.consumers["roles"].as_array() {
        consumers.extend(
            roles
                .iter()
                .filter_map(Value::as_str)
                .map(|r| t.get(&format!("role-{r}"))),
        );
    }
    let townships = grant.townships();
    if !townships.is_empty() {
        consumers.push(townships.join(&sep));
    } else if let Some(counties) = view.consumers["counties"].as_array() {
        let counties: Vec<&str> = counties.iter().filter_map(Value::as_str).collect();
        if !counties.is_empty() {
            consumers.push(t.arg("access-county", "county", &counties.join(&sep)));
        }
    }
    let fields = view
        .fields
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(path, mask)| (path.clone(), mask_value_text(t, mask)))
                .collect()
        })
        .unwrap_or_default();
    let quota = view.quota.map(|q| {
        let mut parts = Vec::new();
        if let Some(n) = q.per_minute {
            parts.push(t.arg("access-quota-minute", "n", &n.to_string()));
        }
        if let Some(n) = q.per_day {
            parts.push(t.arg("access-quota-day", "n", &n.to_string()));
        }
        if let Some(n) = q.per_user_per_day {
            parts.push(t.arg("access-quota-user-day", "n", &n.to_string()));
        }
        parts.join(&sep)
    });
    let valid = t.args(
        "access-valid",
        &[
            (
                "from",
                &view
                    .valid_from
                    .map_or_else(|| t.get("access-no-start"), |d| d.to_string()),
            ),
            (
                "until",
                &view
                    .valid_until
                    .map_or_else(|| t.get("access-no-end"), |d| d.to_string()),
            ),
        ],
    );
    let active = grant.state == access::GrantState::Active;
    let expiring = active
        && view
            .valid_until
            .is_some_and(|u| (u - today).num_days() <= EXPIRING_DAYS);
    GrantRow {
        id: view.id.clone(),
        department: department_name(config, &view.connector),
        consumers: consumers.join(" · "),
        target: format!("{}.{}", view.connector, view.operations.join(",")),
        purposes: view
            .purposes
            .iter()
            .map(|p| Tr::new(lang).purpose(config, p))
            .collect::<Vec<_>>()
            .join(&sep),
        fields,
        row: row_words(t, config, &view.id).or_else(|| view.row.clone()),
        quota,
        valid,
        state: t.get(&format!("access-grant-{}", grant.state.as_str())),
        active,
        expiring,
        approver: view.approver.clone(),
        approved: grant.record.as_ref().map(|r| {
            t.args(
                "access-approved-by",
                &[("user", &r.created_by), ("day", &day_of(&r.created_at))],
            )
        }),
        revoked: grant
            .record
            .as_ref()
            .and_then(|r| r.revoked.as_ref())
            .map(|r| {
                t.args(
                    "access-revoked-by",
                    &[
                        ("user", &r.by),
                        ("day", &day_of(&r.at)),
                        ("reason", &r.reason),
                    ],
                )
            }),
        revocable: grant.record.as_ref().is_some_and(|r| r.revoked.is_none()),
        request_id: grant.record.as_ref().and_then(|r| r.request_id.clone()),
    }
}

/// The condition a grant in force holds under, in words: its row condition, or the
/// caller's jurisdiction (`None` when it holds for every subject or is not in force).
fn row_words(t: Tr, config: &ActiveConfig, id: &str) -> Option<String> {
    let grant = config.policies.grants().iter().find(|g| g.id == id)?;
    match (&grant.row, grant.jurisdiction) {
        (Some(row), _) => Some(match row.rule {
            RowRule::CallerTownship => t.arg("access-row-township", "field", &row.field),
            RowRule::CallerCounty => t.arg("access-row-county", "field", &row.field),
            RowRule::CallerVillages => t.arg("access-row-villages", "field", &row.field),
        }),
        (None, Some(Jurisdiction::Township)) => Some(t.get("access-row-jurisdiction")),
        (None, Some(Jurisdiction::Village)) => Some(t.get("access-row-jurisdiction-village")),
        (None, None) => None,
    }
}

/// A choice of a filter or a form.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/access_grants.html")]
struct GrantsPage {
    chrome: Chrome,
    townships: Vec<Choice>,
    purposes: Vec<Choice>,
    grants: Vec<GrantRow>,
    errors: Vec<String>,
}

/// The grants page's filters (codes; empty is any).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GrantsQuery {
    #[serde(default)]
    township: String,
    #[serde(default)]
    purpose: String,
}

async fn grants_page(
    visit: &Visit,
    caller: Arc<Caller>,
    query: &GrantsQuery,
    errors: Vec<String>,
) -> Response {
    let app = &visit.console.app;
    let who = visit.who(caller);
    let all = match access::list_grants(app, &who, &GrantFilter::default()).await {
        Ok(all) => all,
        Err(problem) => return visit.refused(&problem),
    };
    let filter = GrantFilter {
        township: some(&query.township),
        purpose: some(&query.purpose),
    };
    let config = app.config.load_full();
    let t = visit.t;
    let today = crate::policy::china_today();
    let mut townships: Vec<String> = all.iter().flat_map(ListedGrant::townships).collect();
    townships.sort();
    townships.dedup();
    let mut purposes: Vec<String> = all.iter().flat_map(|g| g.view.purposes.clone()).collect();
    purposes.sort();
    purposes.dedup();
    let grants = all
        .iter()
        .filter(|g| {
            filter
                .township
                .as_ref()
                .is_none_or(|w| g.townships().contains(w))
        })
        .filter(|g| {
            filter
                .purpose
                .as_ref()
                .is_none_or(|p| g.view.purposes.contains(p))
        })
        .map(|g| grant_row(t, &config, g, today))
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = GrantsPage {
        chrome: visit.chrome("/console/grants"),
        townships: townships
            .into_iter()
            .map(|w| Choice {
                selected: filter.township.as_deref() == Some(w.as_str()),
                label: w.clone(),
                value: w,
            })
            .collect(),
        purposes: purposes
            .into_iter()
            .map(|p| Choice {
                selected: filter.purpose.as_deref() == Some(p.as_str()),
                label: Tr::new(t.lang).purpose(&config, &p),
                value: p,
            })
            .collect(),
        grants,
        errors,
    };
    visit.respond_with(status, &page)
}

/// `/console/grants`: the department's grants — who may see which fields, for which
/// purpose, masked how, under which condition and quota, until when, approved by
/// whom — filtered by township and purpose; API grants can be revoked here.
pub(crate) async fn grants(
    visit: Visit,
    query: Result<Query<GrantsQuery>, QueryRejection>,
) -> Response {
    let caller = match visit.require(ADMIN) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    grants_page(&visit, caller, &query, Vec::new()).await
}

/// Revokes (收回) a grant with a reason, once the person ticked the confirmation; a
/// revocation without it is refused (and recorded) like one without a reason.
pub(crate) async fn revoke(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(ADMIN, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let reason = if input.confirm.as_deref().is_some_and(|c| !c.is_empty()) {
        Ok(Reason {
            reason: input.reason,
        })
    } else {
        Err(access::invalid(
            &[(
                "confirm".to_owned(),
                "tick the confirmation to revoke".to_owned(),
            )],
            "revocation",
        ))
    };
    match access::revoke(app, &who, &id, reason).await {
        Ok(_) => back_to("/console/grants"),
        Err(p) if fixable(&p) => {
            grants_page(
                &visit,
                caller,
                &GrantsQuery::default(),
                problem_lines(visit.t, &p),
            )
            .await
        }
        Err(p) => visit.refused(&p),
    }
}

// The township lead's desk

#[derive(Template)]
#[template(path = "console/access_township.html")]
struct TownshipPage {
    chrome: Chrome,
    township: String,
    grants: Vec<GrantRow>,
    requests: Vec<RequestRow>,
}

/// `/console/township`: every grant that applies to the township, by department
/// and purpose, those about to expire marked; and the township's requests with the
/// department's answers.
pub(crate) async fn township(visit: Visit) -> Response {
    let caller = match visit.require(LEAD) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller.clone());
    let all = match access::list_grants(app, &who, &GrantFilter::default()).await {
        Ok(all) => all,
        Err(problem) => return visit.refused(&problem),
    };
    let visible = match access::list_requests(app, &who).await {
        Ok(visible) => visible,
        Err(problem) => return visit.refused(&problem),
    };
    let config = app.config.load_full();
    let t = visit.t;
    let mut grants: Vec<GrantRow> = all
        .iter()
        .map(|g| grant_row(t, &config, g, visible.today))
        .collect();
    grants.sort_by(|a, b| {
        (&a.department, &a.purposes, &a.id).cmp(&(&b.department, &b.purposes, &b.id))
    });
    let mut requests: Vec<RequestRow> = visible
        .requests
        .iter()
        .map(|r| {
            let grant = all.iter().find(|g| Some(&g.view.id) == r.grant_id.as_ref());
            request_row(t, &config, r, visible.today, visible.revocation(r), grant)
        })
        .collect();
    requests.reverse();
    visit.respond(&TownshipPage {
        chrome: visit.chrome("/console/township"),
        township: caller.township.clone().unwrap_or_default(),
        grants,
        requests,
    })
}

#[derive(Template)]
#[template(path = "console/access_ask.html")]
struct AskPage {
    chrome: Chrome,
    operations: Vec<Choice>,
    /// The operation chosen, with its department and title.
    chosen: Option<(String, String)>,
    fields: Vec<FieldRow>,
    purposes: Vec<Choice>,
    roles: Vec<Choice>,
    errors: Vec<String>,
    justification: String,
    valid_until: String,
}

/// The request page's choice: `connector.operation`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AskQuery {
    #[serde(default)]
    op: String,
}

/// Every field of an operation, with its classification: conditional ones can be
/// asked for, open ones need no request, never-shared ones cannot be.
fn operation_rows(
    t: Tr,
    connector: &ActiveConnector,
    operation: &str,
    ticked: &[String],
) -> Vec<FieldRow> {
    let Some(op) = connector.operations.get(operation) else {
        return Vec::new();
    };
    op.leaves
        .iter()
        .map(|leaf| FieldRow {
            path: leaf.path.clone(),
            title: field_title(connector, operation, &leaf.path).unwrap_or_default(),
            sharing: sharing_words(t, leaf.sharing),
            pii: pii_words(t, leaf.pii),
            mask: mask_text(t, &Mask::default_for(leaf.pii)),
            requestable: leaf.sharing == Sharing::Conditional,
            never: leaf.sharing == Sharing::Never,
            ticked: ticked.contains(&leaf.path),
            choices: Vec::new(),
        })
        .collect()
}

fn ask_page(
    visit: &Visit,
    config: &ActiveConfig,
    op: &str,
    input: Option<&AskForm>,
    errors: Vec<String>,
) -> AskPage {
    let t = visit.t;
    let lang = t.lang;
    let mut operations = Vec::new();
    for (id, connector) in &config.connectors {
        for (name, operation) in &connector.def.operations {
            let value = format!("{id}.{name}");
            operations.push(Choice {
                selected: value == op,
                label: format!(
                    "{} · {} · {}",
                    connector.def.department.name, connector.def.title, operation.title
                ),
                value,
            });
        }
    }
    let (connector_id, operation) = op.split_once('.').unwrap_or((op, ""));
    let connector = config.connectors.get(connector_id);
    let ticked: Vec<String> = input
        .map(|f| {
            f.rest
                .keys()
                .filter_map(|k| k.strip_prefix("field."))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (chosen, fields) =
        match connector.and_then(|c| c.def.operations.get(operation).map(|o| (c, o))) {
            Some((c, o)) => (
                Some((
                    format!("{} · {}", c.def.department.name, c.def.title),
                    o.title.clone(),
                )),
                operation_rows(t, c, operation, &ticked),
            ),
            None => (None, Vec::new()),
        };
    let purpose = input.map(|f| f.purpose.as_str()).unwrap_or_default();
    let purposes = config
        .purposes
        .iter()
        .map(|p| Choice {
            value: p.code.clone(),
            label: format!(
                "{} — {}",
                super::i18n::pick(lang, &p.name, Some(&p.name_en)),
                p.legal_basis
            ),
            selected: p.code == purpose,
        })
        .collect();
    let roles = access::TOWNSHIP_ROLES
        .iter()
        .map(|r| Choice {
            value: r.as_str().to_owned(),
            label: t.get(&format!("role-{}", r.as_str())),
            selected: match input {
                Some(f) => f.rest.contains_key(&format!("role.{}", r.as_str())),
                None => *r == Role::Clerk,
            },
        })
        .collect();
    AskPage {
        chrome: visit.chrome("/console/request"),
        operations,
        chosen,
        fields,
        purposes,
        roles,
        errors,
        justification: input.map(|f| f.justification.clone()).unwrap_or_default(),
        valid_until: input.map(|f| f.valid_until.clone()).unwrap_or_default(),
    }
}

/// `/console/request` (`?op=connector.operation`): pick a department's operation
/// from the catalog, then the fields (with their classification; never-shared ones
/// cannot be picked), the purpose with its legal basis, who needs them, the reason.
pub(crate) async fn ask_form(
    visit: Visit,
    query: Result<Query<AskQuery>, QueryRejection>,
) -> Response {
    if let Err(response) = visit.require(LEAD) {
        return *response;
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let config = visit.console.app.config.load_full();
    let page = ask_page(&visit, &config, query.op.trim(), None, Vec::new());
    visit.respond(&page)
}

/// Files the request: the API's `POST /v1/access-requests`.
pub(crate) async fn ask(visit: Visit, form: Result<Form<AskForm>, FormRejection>) -> Response {
    let (caller, input) = match visit.accept(LEAD, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let op = input.op.trim().to_owned();
    let (connector, operation) = op.split_once('.').unwrap_or((op.as_str(), ""));
    let fields: BTreeMap<String, Value> = input
        .rest
        .keys()
        .filter_map(|k| k.strip_prefix("field."))
        .map(|path| (path.to_owned(), Value::String("default".to_owned())))
        .collect();
    let roles: Vec<String> = input
        .rest
        .keys()
        .filter_map(|k| k.strip_prefix("role."))
        .map(str::to_owned)
        .collect();
    let body = NewRequest {
        connector: connector.to_owned(),
        operations: if operation.is_empty() {
            Vec::new()
        } else {
            vec![operation.to_owned()]
        },
        purposes: some(&input.purpose).into_iter().collect(),
        fields,
        roles: Some(roles),
        justification: input.justification.clone(),
        valid_until: some(&input.valid_until),
    };
    let who = visit.who(caller);
    match access::create(app, &who, Ok(body)).await {
        Ok(_) => back_to("/console/township"),
        Err(p) if fixable(&p) => {
            let config = app.config.load_full();
            let page = ask_page(
                &visit,
                &config,
                &op,
                Some(&input),
                problem_lines(visit.t, &p),
            );
            visit.respond_with(StatusCode::BAD_REQUEST, &page)
        }
        Err(p) => visit.refused(&p),
    }
}

/// Withdraws a pending request of the township: the API's withdrawal.
pub(crate) async fn withdraw(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let (caller, _) = match visit.accept(LEAD, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let who = visit.who(caller);
    match access::withdraw(&visit.console.app, &who, &id).await {
        Ok(_) => back_to("/console/township"),
        Err(p) => visit.refused(&p),
    }
}
