//! The department data admin's connector desk (部门管理员): "my connectors" (each
//! with its state, version in force, last test, the department's health over the
//! last hour and the cache), a connector's page (operations; every field with its
//! title, PII kind, sharing type and default mask; versions and the diff between two;
//! a test call whose record is shown to the department's own admin only, never
//! stored; disable, enable and purge, each confirmed and with a reason that goes into
//! the audit event), and registering or changing a connector by uploading its
//! definition and schemas (every problem the check finds is shown, nothing is saved
//! then) and putting a draft in force.
//!
//! Every read and change is a call of [`crate::admin`], the same as the admin API's;
//! a department admin reaches only their own department's connectors there.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::i18n::Tr;
use super::page::{Chrome, Visit, posted};
use crate::admin::{self, Ownership};
use crate::auth::Role;
use crate::problem::{Problem, ProblemKind};
use crate::registry::ConnectorVersion;

/// Who works at the connector desk.
pub const ADMIN_ROLES: &[Role] = &[Role::DeptAdmin, Role::Operator];

/// The largest definition or schema file taken from an upload, in bytes.
pub const MAX_UPLOAD_FILE: usize = 256 * 1024;
/// The most schema files one upload takes.
pub const MAX_UPLOAD_SCHEMAS: usize = 20;

struct RowView {
    id: String,
    title: String,
    kind: String,
    department: String,
    version: String,
    state: String,
    state_words: String,
    last_test: String,
    health: String,
    cache: String,
}

#[derive(Template)]
#[template(path = "console/connectors.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<RowView>,
}

/// The newest test call of connector `id`: its outcome and time, from the audit log.
async fn last_test(visit: &Visit, id: &str) -> Option<(String, String)> {
    let filter = crate::audit::Filter {
        connector: Some(id.to_owned()),
        ..crate::audit::Filter::default()
    };
    let page = visit
        .console
        .app
        .audit_reader
        .search(filter, None, 200)
        .await
        .ok()?;
    page.events.iter().find_map(|e| {
        let op = e.event.operation.as_deref()?;
        if !op.starts_with("connector.test ") {
            return None;
        }
        let outcome = op
            .split_whitespace()
            .find_map(|w| w.strip_prefix("outcome="))
            .unwrap_or(if e.event.outcome.status < 300 {
                "conforms"
            } else {
                "refused"
            })
            .to_owned();
        Some((outcome, e.event.time.clone()))
    })
}

/// `/console/connectors`: the connectors the person administers.
pub(crate) async fn list(visit: Visit) -> Response {
    let caller = match visit.require(ADMIN_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let rows = match admin::rows(app, &caller).await {
        Ok(rows) => rows,
        Err(p) => return visit.refused(&p),
    };
    let t = visit.t;
    let config = app.config.load_full();
    let now = app.clock.now();
    let mut views = Vec::new();
    for row in rows {
        let active = config.connectors.get(&row.connector);
        let title = active.map_or_else(|| row.connector.clone(), |c| c.def.title.clone());
        let kind = active.map_or_else(String::new, |c| c.def.transport.kind().to_owned());
        let department = config
            .departments
            .get(&row.department)
            .map_or_else(|| row.department.clone(), |d| d.name.clone());
        let version = match (&row.origin, row.active) {
            (None, _) => t.get("conn-origin-main"),
            (Some(_), Some(n)) => format!("v{n}"),
            (Some(_), None) => "—".to_owned(),
        };
        let last_test = match last_test(&visit, &row.connector).await {
            Some((outcome, at)) => format!("{} · {at}", t.words("outcome", &outcome)),
            None => t.get("conn-never-tested"),
        };
        let health = match crate::usage::health(app, &row.connector, now).await {
            Ok(h) => t.args(
                "conn-health-line",
                &[
                    ("answers", &h.answers.to_string()),
                    ("errors", &h.errors.to_string()),
                    (
                        "median",
                        &h.median_ms
                            .map_or_else(|| "—".to_owned(), |m| m.to_string()),
                    ),
                ],
            ),
            Err(_) => t.get("conn-health-unknown"),
        };
        let cache = match active.and_then(|c| c.cache.as_ref()) {
            Some(cache) => {
                let stats = cache.stats().await;
                t.args(
                    "conn-cache-line",
                    &[
                        ("entries", &stats.entries.to_string()),
                        ("hits", &stats.hits.to_string()),
                        ("misses", &stats.misses.to_string()),
                    ],
                )
            }
            None => t.get("conn-cache-off"),
        };
        views.push(RowView {
            title,
            kind,
            department,
            version,
            state: row.state.to_owned(),
            state_words: t.words("conn-state", row.state),
            last_test,
            health,
            cache,
            id: row.connector,
        });
    }
    visit.respond(&ListPage {
        chrome: visit.chrome("/console/connectors"),
        rows: views,
    })
}

struct OperationView {
    name: String,
    title: String,
    subject: String,
    fields: Vec<super::catalog::FieldRow>,
}

struct VersionView {
    number: u32,
    state: String,
    state_words: String,
    created: String,
    activated: String,
    /// It may be put in force from here.
    activatable: bool,
}

struct RecordLine {
    path: String,
    title: String,
    value: String,
    sharing: String,
}

/// A test call's outcome as the page shows it.
struct TestView {
    ok: bool,
    outcome: String,
    latency: String,
    /// The canonical record with each field's classification (the department's own
    /// admin only).
    record: Vec<RecordLine>,
    shown: bool,
}

struct DiffView {
    from: u32,
    to: u32,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/connector.html")]
struct ConnectorPage {
    chrome: Chrome,
    id: String,
    title: String,
    department: String,
    kind: String,
    state: String,
    state_words: String,
    origin: String,
    /// Disable, enable and new versions are for files to change.
    file_managed: bool,
    enabled: bool,
    in_force: bool,
    cache: bool,
    operations: Vec<OperationView>,
    versions: Vec<VersionView>,
    test: Option<TestView>,
    diff: Option<DiffView>,
    notice: Option<String>,
    error: Option<String>,
}

/// The definition a connector's page describes: the one in force, else the newest
/// version's.
fn definition_of(
    config: &crate::config::ActiveConfig,
    id: &str,
    owned: &Ownership,
    versions: &[ConnectorVersion],
) -> Option<connectors::ConnectorDef> {
    if let Some(c) = config.connectors.get(id) {
        return Some((*c.def).clone());
    }
    let text = match owned {
        Ownership::Registered(c) => &c.current.definition,
        _ => &versions.last()?.definition,
    };
    connectors::ConnectorDef::from_yaml(text).ok()
}

fn operations(t: Tr, def: &connectors::ConnectorDef) -> Vec<OperationView> {
    def.operations
        .iter()
        .map(|(name, op)| OperationView {
            name: name.clone(),
            title: op.title.clone(),
            subject: t.words("conn-subject", op.subject.as_str()),
            fields: crate::catalog::fields(def, op)
                .into_iter()
                .map(|f| super::catalog::FieldRow::of(t, f))
                .collect(),
        })
        .collect()
}

/// What the page shows besides the connector itself.
#[derive(Default)]
struct Extras {
    test: Option<TestView>,
    diff: Option<DiffView>,
    notice: Option<String>,
    error: Option<String>,
}

async fn connector_page(visit: &Visit, id: &str, status: StatusCode, extras: Extras) -> Response {
    let caller = match visit.require(ADMIN_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let (owned, versions) = match admin::readable(app, &caller, id).await {
        Ok(found) => found,
        Err(p) => return visit.refused(&p),
    };
    let t = visit.t;
    let config = app.config.load_full();
    let def = definition_of(&config, id, &owned, &versions);
    let current = owned.current();
    let (enabled, state) = match &owned {
        Ownership::Registered(c) if c.enabled => (true, "enabled"),
        Ownership::Registered(_) => (false, "disabled"),
        Ownership::MainFile { .. } => (true, "enabled"),
        Ownership::Drafts(_) | Ownership::Unknown => (false, "draft"),
    };
    let origin = match &owned {
        Ownership::MainFile { .. } => t.get("conn-origin-main"),
        Ownership::Registered(c) => origin_words(t, &c.current.origin),
        Ownership::Drafts(v) => origin_words(t, &v.origin),
        Ownership::Unknown => String::new(),
    };
    let department = owned.department().unwrap_or_default().to_owned();
    let department = config
        .departments
        .get(&department)
        .map_or(department, |d| d.name.clone());
    let file_managed = owned.file_managed();
    let versions = versions
        .iter()
        .rev()
        .map(|v| {
            let state = admin::state(v, current);
            VersionView {
                number: v.version,
                state: state.to_owned(),
                state_words: t.words("conn-version", state),
                created: format!("{} · {}", v.created_at, v.created_by),
                activated: v.activated_at.clone().unwrap_or_default(),
                activatable: !file_managed && matches!(state, "draft" | "previous"),
            }
        })
        .collect();
    let page = ConnectorPage {
        chrome: visit.chrome("/console/connectors"),
        id: id.to_owned(),
        title: def
            .as_ref()
            .map_or_else(|| id.to_owned(), |d| d.title.clone()),
        kind: def
            .as_ref()
            .map_or_else(String::new, |d| d.transport.kind().to_owned()),
        department,
        state: state.to_owned(),
        state_words: t.words("conn-state", state),
        origin,
        file_managed,
        enabled,
        in_force: config.connectors.contains_key(id),
        cache: config.connectors.get(id).is_some_and(|c| c.cache.is_some()),
        operations: def.as_ref().map(|d| operations(t, d)).unwrap_or_default(),
        versions,
        test: extras.test,
        diff: extras.diff,
        notice: extras.notice,
        error: extras.error,
    };
    visit.respond_with(status, &page)
}

fn origin_words(t: Tr, origin: &crate::registry::Origin) -> String {
    match origin {
        crate::registry::Origin::Api => t.get("conn-origin-api"),
        crate::registry::Origin::File { path } => t.arg("conn-origin-file", "path", path),
    }
}

/// `/console/connectors/{id}`: one connector.
pub(crate) async fn show(visit: Visit, Path(id): Path<String>) -> Response {
    connector_page(&visit, &id, StatusCode::OK, Extras::default()).await
}

#[derive(Deserialize)]
pub(crate) struct TestForm {
    csrf: String,
    operation: String,
    subject: String,
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    csrf: String,
    /// `disable`, `enable` or `purge`.
    action: String,
    #[serde(default)]
    reason: String,
    /// The confirmation checkbox.
    #[serde(default)]
    confirm: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct DiffForm {
    csrf: String,
    from: u32,
    to: u32,
}

#[derive(Deserialize)]
pub(crate) struct ActivateForm {
    csrf: String,
    version: u32,
}

posted!(TestForm, ChangeForm, DiffForm, ActivateForm);

/// A text's words for the person, from a domain refusal: the problem's words and,
/// for a reason that was not accepted, why.
fn refusal_words(t: Tr, problem: &Problem) -> String {
    let mut text = t.problem(problem.kind.slug());
    if problem.extensions.get("at").and_then(Value::as_str) == Some("reason") {
        text = format!("{text} {}", t.get("conn-reason-not-accepted"));
    }
    text
}

/// Makes a test call and shows its outcome (and, to the department's own admin, the
/// record with each field's classification; never stored).
pub(crate) async fn test(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<TestForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(ADMIN_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let t = visit.t;
    let who = visit.who(caller);
    let subject = form.subject.trim().to_uppercase();
    let extras = match admin::test(app, &who, &id, &form.operation, &subject).await {
        Ok(tried) => {
            let config = app.config.load_full();
            let fields: BTreeMap<String, crate::catalog::Field> = config
                .connectors
                .get(&id)
                .and_then(|c| {
                    let op = c.def.operations.get(&form.operation)?;
                    Some(crate::catalog::fields(&c.def, op))
                })
                .unwrap_or_default()
                .into_iter()
                .map(|f| (f.path.clone(), f))
                .collect();
            let shown = tried.record.is_some();
            let record = tried
                .record
                .as_ref()
                .map(|r| record_lines(t, r, &fields))
                .unwrap_or_default();
            Extras {
                test: Some(TestView {
                    ok: tried.ok,
                    outcome: t.words("outcome", tried.outcome),
                    latency: format!("{:.1}", tried.latency_ms),
                    record,
                    shown,
                }),
                ..Extras::default()
            }
        }
        Err(p) if p.kind == ProblemKind::Forbidden || p.kind == ProblemKind::UnknownConnector => {
            return visit.refused(&p);
        }
        Err(p) => Extras {
            error: Some(refusal_words(t, &p)),
            ..Extras::default()
        },
    };
    connector_page(&visit, &id, StatusCode::OK, extras).await
}

/// The record's leaves, in the order of the connector's fields, with their
/// classification.
fn record_lines(
    t: Tr,
    record: &Value,
    fields: &BTreeMap<String, crate::catalog::Field>,
) -> Vec<RecordLine> {
    let mut lines = Vec::new();
    flatten(record, "", &mut |path, value| {
        let pattern = path_pattern(path);
        let field = fields.get(&pattern);
        lines.push(RecordLine {
            title: field
                .and_then(|f| f.title.clone())
                .unwrap_or_else(|| pattern.clone()),
            sharing: field.map_or_else(String::new, |f| t.words("sharing", f.sharing)),
            value: match value {
                Value::String(s) => s.clone(),
                Value::Null => "—".to_owned(),
                other => other.to_string(),
            },
            path: path.to_owned(),
        });
    });
    lines
}

/// `children[0].name` → `children[].name`, as the catalog names fields.
fn path_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

fn flatten(value: &Value, at: &str, each: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                flatten(v, &path, each);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &format!("{at}[{i}]"), each);
            }
        }
        leaf => each(at, leaf),
    }
}

/// Disables, enables or purges the cache: confirmed, with a reason.
pub(crate) async fn change(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<ChangeForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(ADMIN_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let t = visit.t;
    if form.confirm.is_none() || form.reason.trim().is_empty() {
        let extras = Extras {
            error: Some(t.get("conn-confirm-needed")),
            ..Extras::default()
        };
        return connector_page(&visit, &id, StatusCode::BAD_REQUEST, extras).await;
    }
    let app = &visit.console.app;
    let who = visit.who(caller);
    let reason = Some(form.reason.as_str());
    let done = match form.action.as_str() {
        "disable" => admin::set_enabled(app, &who, &id, false, reason)
            .await
            .map(|_| t.get("conn-disabled-done")),
        "enable" => admin::set_enabled(app, &who, &id, true, reason)
            .await
            .map(|_| t.get("conn-enabled-done")),
        "purge" => admin::purge_cache(app, &who, &id, reason)
            .await
            .map(|p| t.arg("conn-purged-done", "n", &p.entries.to_string())),
        _ => {
            return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
        }
    };
    after_change(&visit, &id, done).await
}

/// The connector's page after a change: what was done, or why not (a page of its own
/// when the person may not see the connector at all).
async fn after_change(visit: &Visit, id: &str, done: Result<String, Problem>) -> Response {
    let extras = match done {
        Ok(notice) => Extras {
            notice: Some(notice),
            ..Extras::default()
        },
        Err(p) if p.kind == ProblemKind::Forbidden || p.kind == ProblemKind::UnknownConnector => {
            return visit.refused(&p);
        }
        Err(p) => {
            let extras = Extras {
                error: Some(refusal_words(visit.t, &p)),
                ..Extras::default()
            };
            return connector_page(visit, id, p.kind.status(), extras).await;
        }
    };
    connector_page(visit, id, StatusCode::OK, extras).await
}

/// What changed between two versions.
pub(crate) async fn diff(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<DiffForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(ADMIN_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let t = visit.t;
    let (_, versions) = match admin::readable(app, &caller, &id).await {
        Ok(found) => found,
        Err(p) => return visit.refused(&p),
    };
    let parse = |n: u32| {
        versions
            .iter()
            .find(|v| v.version == n)
            .and_then(|v| connectors::ConnectorDef::from_yaml(&v.definition).ok())
    };
    let (Some(old), Some(new)) = (parse(form.from), parse(form.to)) else {
        let extras = Extras {
            error: Some(t.problem(ProblemKind::UnknownVersion.slug())),
            ..Extras::default()
        };
        return connector_page(&visit, &id, StatusCode::NOT_FOUND, extras).await;
    };
    let changes = crate::classification::diff(&old, &new);
    let sep = t.get("list-sep");
    let class = |c: &Option<crate::classification::FieldClass>| {
        c.as_ref().map_or_else(String::new, |c| {
            format!(
                "{} / {}",
                t.words("sharing", c.sharing.as_str()),
                t.words("pii", &crate::catalog::pii_code(c.pii))
            )
        })
    };
    let fields = |items: &[crate::classification::FieldChange]| {
        items
            .iter()
            .map(|f| format!("{}.{}", f.operation, f.field))
            .collect::<Vec<_>>()
            .join(&sep)
    };
    let mut lines = Vec::new();
    let named: [(&str, String); 7] = [
        ("conn-diff-connector", changes.connector.join(&sep)),
        ("conn-diff-ops-added", changes.operations_added.join(&sep)),
        (
            "conn-diff-ops-removed",
            changes.operations_removed.join(&sep),
        ),
        (
            "conn-diff-ops-changed",
            changes
                .operations_changed
                .iter()
                .map(|o| o.operation.clone())
                .collect::<Vec<_>>()
                .join(&sep),
        ),
        ("conn-diff-fields-added", fields(&changes.fields_added)),
        ("conn-diff-fields-removed", fields(&changes.fields_removed)),
        (
            "conn-diff-fields-remapped",
            fields(&changes.fields_remapped),
        ),
    ];
    for (key, list) in named {
        if !list.is_empty() {
            lines.push(t.arg(key, "list", &list));
        }
    }
    for r in &changes.fields_reclassified {
        lines.push(t.args(
            "conn-diff-reclassified",
            &[
                ("field", &format!("{}.{}", r.operation, r.field)),
                ("from", &class(&r.from)),
                ("to", &class(&r.to)),
            ],
        ));
    }
    if lines.is_empty() {
        lines.push(t.get("conn-diff-none"));
    }
    let extras = Extras {
        diff: Some(DiffView {
            from: form.from,
            to: form.to,
            lines,
        }),
        ..Extras::default()
    };
    connector_page(&visit, &id, StatusCode::OK, extras).await
}

/// Puts a version in force (a draft, or one that served before).
pub(crate) async fn activate(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<ActivateForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(ADMIN_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let t = visit.t;
    let who = visit.who(caller);
    let current = match admin::ownership(app, &id).await {
        Ok(owned) => owned.current(),
        Err(e) => return visit.refused(&admin::registry_unavailable(&who.request_id, &e)),
    };
    // Back to a version that served before is a rollback; a draft is activated.
    let rollback = current.is_some_and(|c| form.version < c);
    let done = admin::versions::put_in_force(app, &who, &id, Some(form.version), rollback)
        .await
        .map(|done| t.arg("conn-activated", "version", &done.version.to_string()));
    after_change(&visit, &id, done).await
}

/// A problem the check found, as the upload page lists it.
struct CheckLine {
    place: String,
    message: String,
}

#[derive(Template)]
#[template(path = "console/connector_upload.html")]
struct UploadPage {
    chrome: Chrome,
    problems: Vec<CheckLine>,
    error: Option<String>,
}

/// `/console/connectors/new`: the upload form.
pub(crate) async fn upload_page(visit: Visit) -> Response {
    if let Err(response) = visit.require(ADMIN_ROLES) {
        return *response;
    }
    visit.respond(&UploadPage {
        chrome: visit.chrome("/console/connectors/new"),
        problems: Vec::new(),
        error: None,
    })
}

/// The problems a refusal lists (`problems`: file, path, message).
fn check_lines(problem: &Problem) -> Vec<CheckLine> {
    problem
        .extensions
        .get("problems")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|item| CheckLine {
                    place: [item["file"].as_str(), item["path"].as_str()]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" · "),
                    message: item["message"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What an upload carried.
#[derive(Default)]
struct Upload {
    csrf: String,
    definition: Option<String>,
    /// Schema files by their file name.
    schemas: Vec<(String, String)>,
}

/// Why an upload could not be read (said in the page's words).
enum Unreadable {
    Form,
    TooLarge,
    NotText,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, Unreadable> {
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|_| Unreadable::Form)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|_| Unreadable::Form)?;
        if bytes.len() > MAX_UPLOAD_FILE {
            return Err(Unreadable::TooLarge);
        }
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| Unreadable::NotText)?;
        match name.as_str() {
            "csrf" => upload.csrf = text,
            "definition" if !text.trim().is_empty() => upload.definition = Some(text),
            "schema" if !text.trim().is_empty() => {
                if upload.schemas.len() >= MAX_UPLOAD_SCHEMAS {
                    return Err(Unreadable::TooLarge);
                }
                let file_name = file_name.unwrap_or_default();
                let base = file_name
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                upload.schemas.push((base, text));
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// The schema paths a definition names, matched to uploaded files by file name.
fn match_schemas(definition: &str, files: &[(String, String)]) -> BTreeMap<String, String> {
    let Ok(def) = connectors::ConnectorDef::from_yaml(definition) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for op in def.operations.values() {
        let path = op.schema.clone();
        let base = path.rsplit('/').next().unwrap_or_default();
        if let Some((_, text)) = files.iter().find(|(name, _)| name == base) {
            out.insert(path, text.clone());
        }
    }
    out
}

/// Checks an uploaded definition (and schemas) and saves it as a new draft version;
/// every problem is listed and nothing is saved when the check fails.
pub(crate) async fn upload(
    visit: Visit,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let caller = match visit.require(ADMIN_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let t = visit.t;
    let page = |problems: Vec<CheckLine>, error: Option<String>, status: StatusCode| {
        visit.respond_with(
            status,
            &UploadPage {
                chrome: visit.chrome("/console/connectors/new"),
                problems,
                error,
            },
        )
    };
    let Ok(multipart) = multipart else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    let upload = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(why) => {
            let key = match why {
                Unreadable::Form => "error-bad-form",
                Unreadable::TooLarge => "conn-upload-too-large",
                Unreadable::NotText => "conn-upload-not-text",
            };
            return page(Vec::new(), Some(t.get(key)), StatusCode::BAD_REQUEST);
        }
    };
    if let Err(response) = visit.check_post(&upload.csrf) {
        return *response;
    }
    let Some(definition) = upload.definition else {
        return page(
            Vec::new(),
            Some(t.get("conn-upload-no-definition")),
            StatusCode::BAD_REQUEST,
        );
    };
    let schemas = match_schemas(&definition, &upload.schemas);
    let who = visit.who(caller);
    match admin::versions::save(&visit.console.app, &who, None, definition, schemas).await {
        Ok(saved) => {
            let target = format!("/console/connectors/{}", admin::short(&saved.connector));
            Redirect::to(&target).into_response()
        }
        Err(p) => {
            let problems = check_lines(&p);
            let error = t.arg("conn-upload-refused", "problem", &refusal_words(t, &p));
            page(problems, Some(error), p.kind.status())
        }
    }
}

struct SharingChoice {
    code: &'static str,
    words: String,
    selected: bool,
}

struct EditField {
    /// The form field's name: `sharing:OPERATION:PATH`.
    name: String,
    title: String,
    path: String,
    choices: Vec<SharingChoice>,
}

struct EditOperation {
    title: String,
    fields: Vec<EditField>,
}

#[derive(Template)]
#[template(path = "console/connector_edit.html")]
struct EditPage {
    chrome: Chrome,
    id: String,
    file_managed: bool,
    title: String,
    /// An HTTP connector's base URL; empty for a front-database connector, whose
    /// connection is the operator's (no field is shown).
    base_url: String,
    connect_ms: String,
    total_ms: String,
    per_second: String,
    burst: String,
    ttl_s: String,
    not_found_ttl_s: String,
    operations: Vec<EditOperation>,
    problems: Vec<CheckLine>,
    error: Option<String>,
    notice: Option<String>,
}

/// The edit form for `def`.
fn edit_page(
    visit: &Visit,
    id: &str,
    def: &connectors::ConnectorDef,
    file_managed: bool,
) -> EditPage {
    let t = visit.t;
    let operations = def
        .operations
        .iter()
        .map(|(name, op)| EditOperation {
            title: format!("{} ({name})", op.title),
            fields: crate::catalog::fields(def, op)
                .into_iter()
                .map(|f| EditField {
                    name: format!("sharing:{name}:{}", f.path),
                    title: f.title.clone().unwrap_or_default(),
                    choices: ["open", "conditional", "never"]
                        .into_iter()
                        .map(|code| SharingChoice {
                            code,
                            words: t.words("sharing", code),
                            selected: code == f.sharing,
                        })
                        .collect(),
                    path: f.path,
                })
                .collect(),
        })
        .collect();
    EditPage {
        chrome: visit.chrome("/console/connectors"),
        id: id.to_owned(),
        file_managed,
        title: def.title.clone(),
        base_url: match &def.transport {
            connectors::definition::Transport::Http(http) => http.base_url.clone(),
            connectors::definition::Transport::Sql(_) => String::new(),
        },
        connect_ms: def.timeouts.connect_ms.to_string(),
        total_ms: def.timeouts.total_ms.to_string(),
        per_second: def
            .capacity
            .as_ref()
            .map_or_else(String::new, |c| c.per_second.to_string()),
        burst: def
            .capacity
            .as_ref()
            .and_then(|c| c.burst)
            .map_or_else(String::new, |b| b.to_string()),
        ttl_s: def.cache.ttl_s.to_string(),
        not_found_ttl_s: def.cache.not_found_ttl_s.to_string(),
        operations,
        problems: Vec::new(),
        error: None,
        notice: None,
    }
}

/// `/console/connectors/{id}/edit`: the common changes, as a form.
pub(crate) async fn edit_form(visit: Visit, Path(id): Path<String>) -> Response {
    let caller = match visit.require(ADMIN_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let who = visit.who(caller);
    let base = match admin::edit::base(app, &who, &id).await {
        Ok(base) => base,
        Err(p) => return visit.refused(&p),
    };
    visit.respond(&edit_page(&visit, &id, &base.def, base.file_managed))
}

#[derive(Deserialize)]
pub(crate) struct EditForm {
    csrf: String,
    title: String,
    #[serde(default)]
    base_url: String,
    connect_ms: String,
    total_ms: String,
    #[serde(default)]
    per_second: String,
    #[serde(default)]
    burst: String,
    ttl_s: String,
    not_found_ttl_s: String,
    /// `sharing:OPERATION:PATH` → `open`, `conditional` or `never`.
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

posted!(EditForm);

/// The changes a posted edit form asks for; the names of the settings that are not
/// numbers (or sharing types) when it cannot be read.
fn changes_of(form: &EditForm) -> Result<admin::edit::CommonChanges, Vec<&'static str>> {
    let mut bad = Vec::new();
    let mut number = |text: &str, name: &'static str| -> Option<u64> {
        let parsed = text.trim().parse().ok();
        if parsed.is_none() {
            bad.push(name);
        }
        parsed
    };
    let connect_ms = number(&form.connect_ms, "connect_ms");
    let total_ms = number(&form.total_ms, "total_ms");
    let ttl_s = number(&form.ttl_s, "ttl_s");
    let not_found_ttl_s = number(&form.not_found_ttl_s, "not_found_ttl_s");
    let capacity = if form.per_second.trim().is_empty() {
        None
    } else {
        let per_second = number(&form.per_second, "per_second").and_then(|n| u32::try_from(n).ok());
        let burst = if form.burst.trim().is_empty() {
            None
        } else {
            number(&form.burst, "burst").and_then(|n| u32::try_from(n).ok())
        };
        per_second.map(|per_second| connectors::definition::CapacityDef { per_second, burst })
    };
    let mut sharing = BTreeMap::new();
    for (name, value) in &form.rest {
        let Some(rest) = name.strip_prefix("sharing:") else {
            continue;
        };
        let (Some((operation, path)), Some(kind)) = (
            rest.split_once(':'),
            match value.as_str() {
                "open" => Some(connectors::definition::Sharing::Open),
                "conditional" => Some(connectors::definition::Sharing::Conditional),
                "never" => Some(connectors::definition::Sharing::Never),
                _ => None,
            },
        ) else {
            bad.push("sharing");
            continue;
        };
        sharing.insert((operation.to_owned(), path.to_owned()), kind);
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    Ok(admin::edit::CommonChanges {
        title: Some(form.title.trim().to_owned()),
        base_url: Some(form.base_url.trim().to_owned()).filter(|u| !u.is_empty()),
        connect_ms,
        total_ms,
        capacity: Some(capacity),
        cache_ttl_s: ttl_s,
        not_found_ttl_s,
        sharing,
    })
}

/// Saves the edit form's changes as a new draft version (checked like an upload).
pub(crate) async fn edit(
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Response {
    let (caller, form) = match visit.accept(ADMIN_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let t = visit.t;
    let who = visit.who(caller);
    let base = match admin::edit::base(app, &who, &id).await {
        Ok(base) => base,
        Err(p) => return visit.refused(&p),
    };
    let mut page = edit_page(&visit, &id, &base.def, base.file_managed);
    let changes = match changes_of(&form) {
        Ok(changes) => changes,
        Err(bad) => {
            page.error = Some(t.arg("conn-edit-not-numbers", "list", &bad.join(", ")));
            return visit.respond_with(StatusCode::BAD_REQUEST, &page);
        }
    };
    match Box::pin(admin::edit::edit(app, &who, &id, &changes)).await {
        Ok(Some(_)) => {
            Redirect::to(&format!("/console/connectors/{}", admin::short(&id))).into_response()
        }
        Ok(None) => {
            page.notice = Some(t.get("conn-edit-unchanged"));
            visit.respond(&page)
        }
        Err(p) if p.kind == ProblemKind::Forbidden || p.kind == ProblemKind::UnknownConnector => {
            visit.refused(&p)
        }
        Err(p) => {
            page.problems = check_lines(&p);
            page.error = Some(t.arg("conn-upload-refused", "problem", &refusal_words(t, &p)));
            visit.respond_with(p.kind.status(), &page)
        }
    }
}
