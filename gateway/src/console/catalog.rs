//! The shared catalog (共享目录) for every signed-in person: every department's
//! connectors and fields with their sharing type, PII kind and default mask, and the
//! purposes (事项) with their legal bases — searchable (the search is POSTed, so no
//! term lands in a URL). Read from [`crate::catalog::describe`], as `GET /v1/catalog`.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::response::Response;
use serde::Deserialize;

use super::page::{Chrome, Visit, posted};
use crate::auth::Role;
use crate::labels::Lang;

/// Everyone signed in may read the catalog.
pub const CATALOG_ROLES: &[Role] = &Role::ALL;

/// The longest search term, in characters.
const MAX_TERM: usize = 64;

/// A field of the catalog as a page shows it: title, kind of personal data, sharing
/// type and default mask in words (also the connector desk's).
pub(crate) struct FieldRow {
    pub(crate) path: String,
    pub(crate) title: String,
    pub(crate) pii: String,
    pub(crate) sharing: String,
    pub(crate) sharing_code: String,
    pub(crate) mask: String,
    /// The legal basis a conditional field is shared on.
    pub(crate) terms: String,
}

impl FieldRow {
    pub(crate) fn of(t: super::i18n::Tr, f: crate::catalog::Field) -> FieldRow {
        FieldRow {
            title: f.title.unwrap_or_default(),
            pii: f.pii.map_or_else(String::new, |k| {
                t.words("pii", &crate::catalog::pii_code(k))
            }),
            sharing: t.words("sharing", f.sharing),
            sharing_code: f.sharing.to_owned(),
            mask: super::desk::mask_words(t, f.default_mask),
            terms: f.legal_basis.unwrap_or_default(),
            path: f.path,
        }
    }
}

struct OperationRow {
    name: String,
    title: String,
    fields: Vec<FieldRow>,
}

struct ConnectorRow {
    id: String,
    title: String,
    department: String,
    operations: Vec<OperationRow>,
}

struct PurposeRow {
    code: String,
    name: String,
    legal_basis: String,
}

#[derive(Template)]
#[template(path = "console/catalog.html")]
struct CatalogPage {
    chrome: Chrome,
    term: String,
    connectors: Vec<ConnectorRow>,
    purposes: Vec<PurposeRow>,
}

#[derive(Deserialize)]
pub(crate) struct SearchForm {
    csrf: String,
    #[serde(default)]
    q: String,
}

posted!(SearchForm);

fn page(visit: &Visit, term: &str) -> Response {
    let t = visit.t;
    let config = visit.console.app.config.load_full();
    let catalog = crate::catalog::describe(&config);
    let needle = term.to_lowercase();
    let hit = |texts: &[&str]| {
        needle.is_empty() || texts.iter().any(|s| s.to_lowercase().contains(&needle))
    };
    let mut connectors = Vec::new();
    for c in catalog.connectors.into_iter().filter(|c| c.enabled) {
        let title = c.title.clone().unwrap_or_default();
        let department = c
            .department
            .as_ref()
            .map(|d| {
                config
                    .departments
                    .get(&d.id)
                    .map_or_else(|| d.id.clone(), |dep| dep.name.clone())
            })
            .unwrap_or_default();
        let whole = hit(&[&c.id, &title, &department]);
        let operations: Vec<OperationRow> = c
            .operations
            .into_iter()
            .filter_map(|op| {
                let op_hit = whole || hit(&[&op.name, &op.title]);
                let fields: Vec<FieldRow> = op
                    .fields
                    .into_iter()
                    .filter(|f| op_hit || hit(&[&f.path, f.title.as_deref().unwrap_or_default()]))
                    .map(|f| FieldRow::of(t, f))
                    .collect();
                (!fields.is_empty()).then_some(OperationRow {
                    name: op.name,
                    title: op.title,
                    fields,
                })
            })
            .collect();
        if !operations.is_empty() {
            connectors.push(ConnectorRow {
                id: c.id,
                title,
                department,
                operations,
            });
        }
    }
    let purposes = catalog
        .purposes
        .into_iter()
        .filter(|p| hit(&[&p.code, &p.name, &p.name_en, &p.legal_basis]))
        .map(|p| PurposeRow {
            name: match t.lang {
                Lang::En if !p.name_en.is_empty() => p.name_en,
                _ => p.name,
            },
            code: p.code,
            legal_basis: p.legal_basis,
        })
        .collect();
    visit.respond(&CatalogPage {
        chrome: visit.chrome("/console/catalog"),
        term: term.to_owned(),
        connectors,
        purposes,
    })
}

/// `/console/catalog`: the whole catalog.
pub(crate) async fn show(visit: Visit) -> Response {
    if let Err(response) = visit.require(CATALOG_ROLES) {
        return *response;
    }
    page(&visit, "")
}

/// The catalog narrowed to what matches the search term.
pub(crate) async fn search(
    visit: Visit,
    form: Result<Form<SearchForm>, FormRejection>,
) -> Response {
    let (_, form) = match visit.accept(CATALOG_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let term: String = form.q.trim().chars().take(MAX_TERM).collect();
    page(&visit, &term)
}
