//! The desk's verification page (核验): for each department operation and purpose
//! whose grants let this person verify fields, a form where the clerk types what
//! the citizen states; the answer shows, per field, ✓ 一致, ✗ 不一致 or why it could
//! not be verified — never the value the department holds. It runs the API's use
//! case ([`crate::verification::verify`]), so policy, limits and the audit event
//! (fields and results, not the stated values) are the API's own.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::response::Response;
use connectors::definition::PiiKind;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::desk::{DESK_ROLES, audit_unavailable, lookup_failed, subject_message};
use super::i18n::Tr;
use super::page::{Chrome, Visit, posted};
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::lookup::Trail;
use crate::lookup::single::{self, Ask, AskError};
use crate::verification::{self, Outcome, VerifyAsk, VerifyError};

/// The prefix of a stated value's input name: `claim.<field path>`.
const CLAIM: &str = "claim.";

/// A field the person may verify, as an input.
struct ClaimInput {
    /// `claim.<path>`.
    name: String,
    /// The input's id (the path with dots as dashes).
    id: String,
    label: String,
    /// `date` for dates, `text` otherwise.
    kind: &'static str,
    /// Whether a division code (6, 9 or 12 digits) may be typed instead.
    address: bool,
}

/// One operation × purpose the person may verify fields of.
struct Card {
    /// What the card's element ids start with: connector, operation and purpose.
    key: String,
    /// `connector/operation`.
    target: String,
    purpose: String,
    title: String,
    inputs: Vec<ClaimInput>,
}

#[derive(Template)]
#[template(path = "console/verify.html")]
struct VerifyPage {
    chrome: Chrome,
    cards: Vec<Card>,
    error: Option<String>,
}

/// One stated field's answer, in words.
struct ResultRow {
    name: String,
    /// `match`, `mismatch` or `cannot_verify` (the CSS class too).
    result: &'static str,
    words: String,
}

#[derive(Template)]
#[template(path = "console/verified.html")]
struct VerifiedPage {
    chrome: Chrome,
    department: String,
    purpose: String,
    case_id: String,
    rows: Vec<ResultRow>,
}

/// What the verification form sends: the target, subject and case, and
/// `claim.<path>` inputs.
#[derive(Deserialize)]
pub(crate) struct VerifyForm {
    target: String,
    purpose: String,
    id_number: String,
    case_id: String,
    csrf: String,
    #[serde(flatten)]
    claims: BTreeMap<String, String>,
}

posted!(VerifyForm);

/// The operations and purposes this person's grants let them verify fields of, each
/// with the fields (outside lists) a grant reads or verifies.
fn cards(visit: &Visit, config: &ActiveConfig, caller: &Caller) -> Vec<Card> {
    let today = visit.console.app.clock.today();
    let mut fields: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for grant in config.policies.grants() {
        if !(grant.valid.contains(today) && grant.consumers.matches(caller)) {
            continue;
        }
        let verifiable = grant
            .verify
            .iter()
            .chain(grant.fields.keys())
            .filter(|f| !f.contains("[]"));
        for operation in &grant.operations {
            for purpose in &grant.purposes {
                fields
                    .entry((grant.connector.clone(), operation.clone(), purpose.clone()))
                    .or_default()
                    .extend(verifiable.clone().cloned());
            }
        }
    }
    // Only operations whose grants verify something they do not read: the others
    // are better served by the single lookup.
    let verify_only: BTreeSet<(String, String)> = config
        .policies
        .grants()
        .iter()
        .filter(|g| !g.verify.is_empty() && g.consumers.matches(caller))
        .flat_map(|g| {
            g.operations
                .iter()
                .map(|o| (g.connector.clone(), o.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let t = Tr::new(visit.t.lang);
    fields
        .into_iter()
        .filter(|((c, o, _), _)| verify_only.contains(&(c.clone(), o.clone())))
        .filter_map(|((connector, operation, purpose), paths)| {
            let active = config.connectors.get(&connector)?;
            let op = active.operations.get(&operation)?;
            if op.subject != connectors::definition::SubjectKey::IdNumber {
                return None;
            }
            let def = active.def.operations.get(&operation)?;
            let titles: BTreeMap<String, String> = connectors::ConnectorDef::leaf_defs(def)
                .into_iter()
                .filter_map(|(path, f)| f.title.clone().map(|t| (path, t)))
                .collect();
            let inputs = op
                .leaves
                .iter()
                .filter(|leaf| paths.contains(&leaf.path))
                .map(|leaf| ClaimInput {
                    name: format!("{CLAIM}{}", leaf.path),
                    id: format!("claim-{}", leaf.path.replace('.', "-")),
                    label: titles
                        .get(&leaf.path)
                        .cloned()
                        .unwrap_or_else(|| leaf.path.clone()),
                    kind: if leaf.pii == PiiKind::Date {
                        "date"
                    } else {
                        "text"
                    },
                    address: leaf.pii == PiiKind::Address,
                })
                .collect();
            let key = format!("verify-{connector}-{operation}-{purpose}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Some(Card {
                key,
                target: format!("{connector}/{operation}"),
                title: format!(
                    "{} · {} · {}",
                    active.def.department.name,
                    def.title,
                    t.purpose(config, &purpose)
                ),
                purpose,
                inputs,
            })
        })
        .collect()
}

/// The verification forms.
pub(crate) async fn page(visit: Visit) -> Response {
    let caller = match visit.require(DESK_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let config = visit.console.app.config.load_full();
    visit.respond(&VerifyPage {
        chrome: visit.chrome("/console/verify"),
        cards: cards(&visit, &config, &caller),
        error: None,
    })
}

/// The stated values as the API takes them: each non-empty `claim.<path>` input
/// under its path; an address typed as 6, 9 or 12 digits is the division it names.
fn claims_of(inputs: &BTreeMap<String, String>) -> Value {
    let mut claims = Map::new();
    for (name, value) in inputs {
        let Some(path) = name.strip_prefix(CLAIM) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let digits = value.bytes().all(|b| b.is_ascii_digit());
        let stated = match (path.ends_with("address"), digits, value.len()) {
            (true, true, 12) => serde_json::json!({"village_code": value}),
            (true, true, 9) => serde_json::json!({"township_code": value}),
            (true, true, 6) => serde_json::json!({"county_code": value}),
            _ => Value::String(value.to_owned()),
        };
        // Nested paths as nested objects, as the record is shaped.
        let mut at = &mut claims;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                at.insert(part.to_owned(), stated.clone());
            } else {
                let next = at
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = next else {
                    break;
                };
                at = next;
            }
        }
    }
    Value::Object(claims)
}

/// Runs a verification: the API's `/v1/verify`, shown as a page.
pub(crate) async fn verify(
    visit: Visit,
    form: Result<Form<VerifyForm>, FormRejection>,
) -> Response {
    let (caller, input) = match visit.accept(DESK_ROLES, form) {
        Ok(accepted) => accepted,
        Err(response) => return *response,
    };
    let app = &visit.console.app;
    let services = app.services(&visit.request_id);
    let mut trail = Trail::verification();
    let config = app.config.load_full();
    let (connector, operation) = input
        .target
        .split_once('/')
        .map_or((input.target.as_str(), ""), |(c, o)| (c, o));
    let ask = VerifyAsk {
        lookup: Ask {
            connector: connector.to_owned(),
            operation: operation.to_owned(),
            purpose: input.purpose.clone(),
            case_id: input.case_id.clone(),
            id_number: Some(input.id_number.trim().to_owned()),
            household_number: None,
        },
        claims: claims_of(&input.claims),
    };
    let verified = match single::admit(services, &caller).await {
        Err(limited) => Err(VerifyError::Ask(AskError::Lookup(
            crate::lookup::LookupError::Limited(limited),
        ))),
        Ok(()) => verification::verify(services, &config, &caller, ask, &mut trail).await,
    };
    let (status, problem) = match &verified {
        Ok(_) => (200, None),
        Err(e) => (e.kind().status().as_u16(), Some(e.kind().slug())),
    };
    let event = trail.event(&visit.request_id, &caller, visit.peer, status, problem);
    if app.audit.append(event).await.is_err() {
        return audit_unavailable(&visit);
    }
    let again = |message: String| {
        let page = VerifyPage {
            chrome: visit.chrome("/console/verify"),
            cards: cards(&visit, &config, &caller),
            error: Some(message),
        };
        visit.respond_with(axum::http::StatusCode::BAD_REQUEST, &page)
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(VerifyError::Ask(AskError::Subject(error))) => {
            return again(subject_message(&visit, &error));
        }
        Err(VerifyError::Claims(_)) => return again(visit.t.get("verify-claims-bad")),
        Err(VerifyError::Ask(AskError::Lookup(error))) => return lookup_failed(&visit, &error),
        Err(VerifyError::Ask(other)) => {
            let kind = other.kind();
            return visit.problem(kind.status(), kind.slug(), None);
        }
    };
    let rows = verified
        .fields
        .iter()
        .map(|(path, r)| {
            let words = match (r.result, r.reason) {
                (Outcome::Match, _) => visit.t.get("verify-match"),
                (Outcome::Mismatch, _) => visit.t.get("verify-mismatch"),
                (Outcome::CannotVerify, reason) => {
                    let why = reason.map(|r| r.as_str()).unwrap_or_default();
                    let reason = visit
                        .reason(why)
                        .unwrap_or_else(|| visit.t.get(&format!("verify-reason-{why}")));
                    visit.t.arg("verify-cannot", "reason", &reason)
                }
            };
            ResultRow {
                name: path.clone(),
                result: r.result.as_str(),
                words,
            }
        })
        .collect();
    let department = config
        .departments
        .get(verified.department)
        .map_or_else(|| verified.department.to_owned(), |d| d.name.clone());
    visit.respond(&VerifiedPage {
        chrome: visit.chrome("/console/verify"),
        department,
        purpose: Tr::new(visit.t.lang).purpose(&config, verified.purpose),
        case_id: input.case_id,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_become_the_apis_claims() {
        let inputs: BTreeMap<String, String> = [
            ("claim.name", " 邓俊浩 "),
            ("claim.birth_date", "1975-03-27"),
            ("claim.address", "139901101203"),
            ("claim.spouse.name", "王芳"),
            ("claim.ethnicity", ""),
            ("target", "hukou/person_by_id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            claims_of(&inputs),
            serde_json::json!({
                "name": "邓俊浩",
                "birth_date": "1975-03-27",
                "address": {"village_code": "139901101203"},
                "spouse": {"name": "王芳"},
            })
        );
        let written: BTreeMap<String, String> =
            [("claim.address".to_owned(), "东岭镇九里店村3组".to_owned())].into();
        assert_eq!(
            claims_of(&written),
            serde_json::json!({"address": "东岭镇九里店村3组"})
        );
    }
}
