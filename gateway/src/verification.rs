//! Verification without disclosure (核验): a caller states values of a person's record
//! — what the citizen says — and learns, field by field, `match`, `mismatch` or
//! `cannot_verify` (with why), never the value the department holds nor how it
//! differs.
//!
//! A verification runs the lookup pipeline at [`Level::Verify`]: the same resolution,
//! policy (a field read or `verify` granted may be compared; a `never` field cannot),
//! quotas, jurisdiction, cache, department call and schema check, and one audit event
//! of kind `verification` that names the fields compared and their results, never
//! the values stated. The comparison is a function of equality only, after the
//! normalization of the field's kind ([`same`]):
//!
//! - names, addresses written out and free text: full-width forms read as half-width,
//!   spaces dropped, the middle dots of minority names made one, Latin letters in
//!   lower case;
//! - ID numbers: a lower-case check letter `x` is `X`;
//! - dates: `YYYY-MM-DD` exactly (a claim that is not such a date is refused);
//! - amounts and counts: as decimal numbers (`520` is `520.00`);
//! - codes and everything else: exactly, after trimming;
//! - an address claimed as a division (`{"village_code": "139901101203"}`, or
//!   `township_code`, `county_code`): matches every address within it, compared with
//!   the division code beside the address (`village_code`, else `township_code`, of
//!   the record or of the nested object the address is in);
//! - a field the department holds empty matches no stated value.
//!
//! Guess-and-check is how a record is enumerated, so mismatches are limited per
//! subject and per user (`rate_limits.verify_mismatches_*`): a place is taken before
//! the department is asked and given back when nothing mismatched.

use std::collections::BTreeMap;

use connectors::definition::{LeafField, PiiKind};
use serde::Serialize;
use serde_json::Value;

use crate::audit::VerifiedField;
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::lookup::single::{self, Ask, AskError, Resolved};
use crate::lookup::{LookupError, Services, Trail, lookup};
use crate::policy::{Level, WithheldReason};
use crate::problem::ProblemKind;

/// The most fields one verification compares.
pub const MAX_CLAIMS: usize = 20;
/// The longest stated value, in characters.
pub const MAX_CLAIM_CHARS: usize = 200;

/// A verification as asked. Its `Debug` leaves out the subject and the claims.
#[derive(Clone, Default)]
pub struct VerifyAsk {
    /// Connector, operation, purpose, case id and subject, as for a lookup.
    pub lookup: Ask,
    /// The stated values, shaped like the record (`{"name": …, "address":
    /// {"village_code": …}}`).
    pub claims: Value,
}

impl std::fmt::Debug for VerifyAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyAsk")
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

/// What one stated value came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Match,
    Mismatch,
    CannotVerify,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::CannotVerify => "cannot_verify",
        }
    }
}

/// Why a stated value could not be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CannotVerify {
    /// No grant lets this caller read or verify the field for this purpose.
    NotGranted,
    /// Classified `never` (不予共享): not even confirmed.
    NeverShared,
    /// A deny rule names the field.
    DeniedByRule,
    /// The grants' row condition does not hold for this person.
    RowCondition,
    /// The grants hold for residents of the caller's area only.
    Jurisdiction,
    /// The department has no record of this person.
    NotFound,
    /// The department could not be asked or did not answer usably.
    DepartmentUnavailable,
}

impl CannotVerify {
    pub fn as_str(self) -> &'static str {
        match self {
            CannotVerify::NotGranted => "not_granted",
            CannotVerify::NeverShared => "never_shared",
            CannotVerify::DeniedByRule => "denied_by_rule",
            CannotVerify::RowCondition => "row_condition",
            CannotVerify::Jurisdiction => "jurisdiction",
            CannotVerify::NotFound => "not_found",
            CannotVerify::DepartmentUnavailable => "department_unavailable",
        }
    }

    fn of(reason: WithheldReason) -> CannotVerify {
        match reason {
            // A `verify` grant is what lets a field be verified: not the case here.
            WithheldReason::NotGranted | WithheldReason::VerifyOnly => CannotVerify::NotGranted,
            WithheldReason::NeverShared => CannotVerify::NeverShared,
            WithheldReason::DeniedByRule => CannotVerify::DeniedByRule,
            WithheldReason::RowCondition => CannotVerify::RowCondition,
            WithheldReason::Jurisdiction => CannotVerify::Jurisdiction,
        }
    }
}

/// One field's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldResult {
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CannotVerify>,
}

impl FieldResult {
    const MATCH: FieldResult = FieldResult {
        result: Outcome::Match,
        reason: None,
    };
    const MISMATCH: FieldResult = FieldResult {
        result: Outcome::Mismatch,
        reason: None,
    };

    fn cannot(reason: CannotVerify) -> FieldResult {
        FieldResult {
            result: Outcome::CannotVerify,
            reason: Some(reason),
        }
    }
}

/// What is wrong with the stated values. Never carries a stated value, and names a
/// field only when it is one of the operation's (a key could be anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// `claims` is not an object with at least one field.
    Empty,
    /// More than [`MAX_CLAIMS`] fields.
    TooMany,
    /// A key that is not a field of the operation (not named back).
    UnknownField,
    /// A field inside a list: a verification confirms one value of the subject.
    InList(String),
    /// A value that is not a string or number of at most [`MAX_CLAIM_CHARS`]
    /// characters, not a date for a date field, or a division that is not one.
    Malformed(String),
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::Empty => {
                f.write_str("`claims` must be an object stating at least one field")
            }
            ClaimError::TooMany => write!(f, "at most {MAX_CLAIMS} fields are verified at once"),
            ClaimError::UnknownField => {
                f.write_str("a stated field is not a field of this operation (see GET /v1/catalog)")
            }
            ClaimError::InList(field) => write!(
                f,
                "`{field}` is inside a list; a verification confirms one value of the person"
            ),
            ClaimError::Malformed(field) => write!(
                f,
                "the value stated for `{field}` is not one this field can hold (a string or \
                 number of at most {MAX_CLAIM_CHARS} characters; a date as YYYY-MM-DD; an \
                 address as text or as one of village_code (12 digits), township_code (9) or \
                 county_code (6))"
            ),
        }
    }
}

/// Why a verification answered nothing field by field.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyError {
    /// As for a lookup: unknown names, a bad subject, refused, limited.
    Ask(AskError),
    Claims(ClaimError),
}

impl VerifyError {
    /// The problem type this failure answers with (and the audit log records).
    pub fn kind(&self) -> ProblemKind {
        match self {
            VerifyError::Ask(error) => error.kind(),
            VerifyError::Claims(_) => ProblemKind::InvalidRequest,
        }
    }
}

/// An answered verification.
#[derive(Debug)]
pub struct Verified<'c> {
    pub resolved_connector: &'c str,
    pub department: &'c str,
    pub operation: &'c str,
    pub purpose: &'c str,
    /// Each stated field, by dotted path, and what it came to.
    pub fields: BTreeMap<String, FieldResult>,
    pub policy_version: String,
}

/// A stated value, checked against its field's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Claim {
    Value(String),
    /// An address stated as the division it lies in (6, 9 or 12 digits).
    Division(String),
}

/// Resolves and runs the verification `ask` for `caller`, filling `trail` (marked a
/// verification from the start, so a refusal is one too).
pub(crate) async fn verify<'c>(
    services: Services<'_>,
    config: &'c ActiveConfig,
    caller: &Caller,
    ask: VerifyAsk,
    trail: &mut Trail,
) -> Result<Verified<'c>, VerifyError> {
    verify_by(services, config, caller, ask, None, trail).await
}

/// [`verify`], the department's answer waited for until `deadline` if one is given
/// (a form's deadline).
pub(crate) async fn verify_by<'c>(
    services: Services<'_>,
    config: &'c ActiveConfig,
    caller: &Caller,
    ask: VerifyAsk,
    deadline: Option<std::time::Instant>,
    trail: &mut Trail,
) -> Result<Verified<'c>, VerifyError> {
    trail.verification = true;
    let resolved = single::resolve(config, ask.lookup, trail).map_err(VerifyError::Ask)?;
    let claims = claims(&ask.claims, &resolved.op.leaves).map_err(VerifyError::Claims)?;
    let pseudonym = services.pseudonym.pseudonym(resolved.subject.as_str());
    let place = services
        .limits
        .take_mismatch(&pseudonym, &caller.user)
        .await
        .map_err(|limited| VerifyError::Ask(AskError::Lookup(LookupError::Limited(limited))))?;
    let target = resolved.target(Level::Verify);
    let looked = lookup(
        services,
        config,
        caller,
        target,
        &resolved.subject,
        deadline,
        trail,
    )
    .await;
    let fields: BTreeMap<String, FieldResult> = match looked {
        Ok(found) => {
            let record = match &*found.record {
                crate::cache::Entry::Found(record) => Some(&record.value),
                crate::cache::Entry::NotFound { .. } => None,
            };
            claims
                .iter()
                .map(|(path, (claim, leaf))| {
                    let withheld = found.outcome.withheld.iter().find(|w| &w.field == path);
                    let result = match (withheld, found.outcome.fields.contains_key(path)) {
                        (Some(w), _) => FieldResult::cannot(CannotVerify::of(w.reason)),
                        (None, false) => FieldResult::cannot(CannotVerify::NotGranted),
                        (None, true) => {
                            let held = at_path(&found.outcome.data, path);
                            let division = record.and_then(|r| division_for(r, path));
                            if same(leaf.pii, claim, held, division.as_deref()) {
                                FieldResult::MATCH
                            } else {
                                FieldResult::MISMATCH
                            }
                        }
                    };
                    (path.clone(), result)
                })
                .collect()
        }
        Err(error) => {
            let reason = match &error {
                LookupError::NotFound { .. } => CannotVerify::NotFound,
                LookupError::Upstream { .. }
                | LookupError::Busy { .. }
                | LookupError::Schema { .. }
                | LookupError::Disabled { .. }
                | LookupError::NotConfigured { .. } => CannotVerify::DepartmentUnavailable,
                LookupError::Refused(_) | LookupError::Limited(_) => {
                    services.limits.give_back_mismatch(place).await;
                    return Err(VerifyError::Ask(AskError::Lookup(error)));
                }
            };
            claims
                .keys()
                .map(|path| (path.clone(), FieldResult::cannot(reason)))
                .collect()
        }
    };
    if !fields.values().any(|f| f.result == Outcome::Mismatch) {
        services.limits.give_back_mismatch(place).await;
    }
    trail.verified = fields
        .iter()
        .map(|(field, r)| VerifiedField {
            field: field.clone(),
            reason: r.reason.map(|r| r.as_str().to_owned()),
            result: r.result.as_str().to_owned(),
        })
        .collect();
    let Resolved {
        connector,
        operation,
        purpose,
        ..
    } = resolved;
    Ok(Verified {
        resolved_connector: &connector.def.id,
        department: &connector.def.department.id,
        operation,
        purpose: &purpose.code,
        fields,
        policy_version: config.policies.version.clone(),
    })
}

/// The stated values by dotted path, each with its field, checked.
fn claims<'l>(
    claims: &Value,
    leaves: &'l [LeafField],
) -> Result<BTreeMap<String, (Claim, &'l LeafField)>, ClaimError> {
    let Value::Object(top) = claims else {
        return Err(ClaimError::Empty);
    };
    let mut out = BTreeMap::new();
    flatten(top, "", leaves, &mut out)?;
    if out.is_empty() {
        return Err(ClaimError::Empty);
    }
    if out.len() > MAX_CLAIMS {
        return Err(ClaimError::TooMany);
    }
    Ok(out)
}

fn flatten<'l>(
    object: &serde_json::Map<String, Value>,
    prefix: &str,
    leaves: &'l [LeafField],
    out: &mut BTreeMap<String, (Claim, &'l LeafField)>,
) -> Result<(), ClaimError> {
    if object.len() > MAX_CLAIMS {
        return Err(ClaimError::TooMany);
    }
    for (name, value) in object {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let leaf = leaves.iter().find(|l| l.path == path);
        match (leaf, value) {
            (Some(leaf), Value::Object(division)) if leaf.pii == PiiKind::Address => {
                let claim = division_claim(division).ok_or(ClaimError::Malformed(path.clone()))?;
                out.insert(path, (claim, leaf));
            }
            (Some(leaf), value) => {
                let claim =
                    value_claim(leaf.pii, value).ok_or(ClaimError::Malformed(path.clone()))?;
                out.insert(path, (claim, leaf));
            }
            (None, Value::Object(inner)) => {
                let inner_prefix = format!("{path}.");
                if !leaves.iter().any(|l| l.path.starts_with(&inner_prefix)) {
                    return Err(ClaimError::UnknownField);
                }
                flatten(inner, &path, leaves, out)?;
            }
            (None, _) => {
                let list = format!("{path}[].");
                return Err(if leaves.iter().any(|l| l.path.starts_with(&list)) {
                    ClaimError::InList(path)
                } else {
                    ClaimError::UnknownField
                });
            }
        }
    }
    Ok(())
}

/// A stated scalar, checked for the field's kind.
fn value_claim(kind: PiiKind, value: &Value) -> Option<Claim> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.chars().count() > MAX_CLAIM_CHARS {
        return None;
    }
    if kind == PiiKind::Date {
        chrono::NaiveDate::parse_from_str(half_width(&text).trim(), "%Y-%m-%d").ok()?;
    }
    Some(Claim::Value(text))
}

/// An address stated as a division: exactly one of `village_code` (12 digits),
/// `township_code` (9) or `county_code` (6).
pub(crate) fn division_claim(object: &serde_json::Map<String, Value>) -> Option<Claim> {
    let mut entries = object.iter();
    let (key, value) = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    let digits = match key.as_str() {
        "village_code" => 12,
        "township_code" => 9,
        "county_code" => 6,
        _ => return None,
    };
    let code = value.as_str()?;
    (code.len() == digits && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Claim::Division(code.to_owned()))
}

/// The record's most precise division code: its `village_code`, else its
/// `township_code`.
fn division_of(record: &Value) -> Option<String> {
    let code = |name: &str, digits: usize| {
        record
            .get(name)
            .and_then(Value::as_str)
            .filter(|c| c.len() == digits && c.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    };
    code("village_code", 12).or_else(|| code("township_code", 9))
}

/// The division code of the object an address at `path` belongs to: the record's own
/// for a top-level address, a spouse's for `spouse.address`.
fn division_for(record: &Value, path: &str) -> Option<String> {
    match path.rsplit_once('.') {
        Some((parent, _)) => division_of(at_path(record, parent)),
        None => division_of(record),
    }
}

/// The value at a dotted path (no lists) of a record.
fn at_path<'v>(record: &'v Value, path: &str) -> &'v Value {
    path.split('.')
        .try_fold(record, |v, name| v.get(name))
        .unwrap_or(&Value::Null)
}

/// Whether the stated `claim` is the `held` value, under the rules of the field's
/// `kind` (module docs); `division` is the record's division code, for an address
/// stated as a division. A function of equality only: nothing else of either value
/// decides.
fn same(kind: PiiKind, claim: &Claim, held: &Value, division: Option<&str>) -> bool {
    match claim {
        Claim::Division(code) => division.is_some_and(|d| d.starts_with(code.as_str())),
        Claim::Value(stated) => {
            let held = match held {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            match kind {
                PiiKind::Name | PiiKind::Address | PiiKind::FreeText => {
                    text_form(stated) == text_form(&held)
                }
                PiiKind::IdNumber => id_form(stated) == id_form(&held),
                PiiKind::Money | PiiKind::Count => match (decimal(stated), decimal(&held)) {
                    (Some(a), Some(b)) => a == b,
                    _ => plain(stated) == plain(&held),
                },
                PiiKind::Date
                | PiiKind::Phone
                | PiiKind::Account
                | PiiKind::Health
                | PiiKind::Code
                | PiiKind::None => plain(stated) == plain(&held),
            }
        }
    }
}

/// Full-width ASCII forms and the ideographic space as their half-width selves.
fn half_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Half-width and trimmed: the form of codes, dates and numbers.
fn plain(s: &str) -> String {
    half_width(s).trim().to_owned()
}

/// The form names and addresses are compared in: half-width, no spaces at all, one
/// middle dot, Latin letters in lower case.
fn text_form(s: &str) -> String {
    half_width(s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{00B7}' | '\u{2022}' | '\u{2027}' | '\u{30FB}' | '\u{FF65}' | '\u{2219}' => '·',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// An ID number's form: half-width, trimmed, the check letter upper case.
fn id_form(s: &str) -> String {
    plain(s).to_ascii_uppercase()
}

/// A decimal number's canonical digits (`0520.50` → `520.5`), or `None`.
fn decimal(s: &str) -> Option<String> {
    let s = plain(s);
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let zero = whole == "0" && fraction.is_empty();
    let sign = if negative && !zero { "-" } else { "" };
    Some(if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    })
}

#[cfg(test)]
mod tests;
