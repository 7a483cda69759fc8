//! The wire shapes of the forms API's answers, for the API document: the answers are
//! built as JSON (`describe` here, the filled form in [`crate::fill`]), and these
//! types say what they hold. The truthfulness test holds the answers to them.

#![allow(dead_code, reason = "schemas: only their shapes are used")]

use serde_json::Value;
use utoipa::ToSchema;

/// The person a form is filled for.
#[derive(ToSchema)]
pub(crate) struct PersonSubject {
    /// A resident ID number (GB 11643: 18 characters, valid check digit).
    #[schema(example = "13990119750327229X", pattern = "^[0-9]{17}[0-9X]$")]
    id_number: String,
}

/// The forms a caller may fill.
#[derive(ToSchema)]
pub(crate) struct FormList {
    forms: Vec<FormDescription>,
}

/// A form template.
#[derive(ToSchema)]
pub(crate) struct FormDescription {
    #[schema(example = "birth-registration")]
    id: String,
    #[schema(example = "生育登记")]
    title: String,
    #[schema(required = true)]
    title_en: Option<String>,
    purpose: FormPurpose,
    /// How long a fill may take before the form is answered as it stands.
    deadline_ms: u64,
    /// The most department lookups one fill makes: what it counts against the
    /// caller's rate limits.
    max_lookups: u32,
    sections: Vec<SectionDescription>,
}

/// A form's purpose.
#[derive(ToSchema)]
pub(crate) struct FormPurpose {
    #[schema(example = "birth_registration")]
    code: String,
    #[schema(required = true, example = "生育登记")]
    name: Option<String>,
    #[schema(required = true, example = "Birth registration")]
    name_en: Option<String>,
}

/// A section of a form template.
#[derive(ToSchema)]
pub(crate) struct SectionDescription {
    id: String,
    title: String,
    #[schema(required = true)]
    title_en: Option<String>,
    /// One row per item of a list (children, household members).
    repeated: bool,
    fields: Vec<FieldDescription>,
}

/// A field of a form template.
#[derive(ToSchema)]
pub(crate) struct FieldDescription {
    id: String,
    title: String,
    #[schema(required = true)]
    title_en: Option<String>,
    #[schema(rename = "type")]
    kind: FormFieldType,
    /// Filled in by the clerk, not from a department.
    input: bool,
    /// The clerk types what the citizen states (the fill's `stated`) and the form
    /// shows whether the department's record agrees, never the value.
    verify: bool,
}

/// A form field's type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum FormFieldType {
    Text,
    Date,
    Code,
    IdNumber,
    Integer,
    Number,
    Boolean,
}

/// A filled form.
#[derive(ToSchema)]
pub(crate) struct FilledForm {
    request_id: String,
    form: FilledFormName,
    purpose: FilledPurpose,
    case_id: String,
    /// The subject's ID number, masked.
    #[schema(example = "139901********229X")]
    subject: String,
    /// Every department answered in time (a field may still be missing by policy).
    complete: bool,
    deadline_ms: u64,
    elapsed_ms: u64,
    sections: Vec<FilledSection>,
    /// Every field without a value, and why.
    missing: Vec<MissingValue>,
    /// Every department lookup the fill made.
    lookups: Vec<FormLookup>,
}

#[derive(ToSchema)]
pub(crate) struct FilledFormName {
    #[schema(example = "birth-registration")]
    id: String,
    title: String,
    #[schema(required = true)]
    title_en: Option<String>,
}

#[derive(ToSchema)]
pub(crate) struct FilledPurpose {
    #[schema(example = "birth_registration")]
    code: String,
    name: String,
}

/// A section of a filled form: its fields, or for a repeated section its rows.
#[derive(ToSchema)]
pub(crate) struct FilledSection {
    id: String,
    title: String,
    title_en: Option<String>,
    /// A section about a linked person (a spouse): that person as the caller's view
    /// shows them.
    subject: Option<Value>,
    fields: Option<Vec<FilledField>>,
    rows: Option<Vec<FilledRow>>,
    /// Why a repeated section has no rows.
    missing: Option<Why>,
}

/// One row of a repeated section.
#[derive(ToSchema)]
pub(crate) struct FilledRow {
    fields: Vec<FilledField>,
}

/// A field's value with its provenance, or why it has none.
#[derive(ToSchema)]
pub(crate) struct FilledField {
    id: String,
    title: String,
    title_en: Option<String>,
    #[schema(rename = "type")]
    kind: FormFieldType,
    /// The value (`null` when missing, or for a field the clerk fills in); with labels
    /// asked for, `value_label` beside a code.
    #[schema(required = true)]
    value: Option<Value>,
    /// The clerk fills it in.
    input: Option<bool>,
    /// Whether the value comes from a department (through the gateway).
    verified: Option<bool>,
    /// A field to verify: the citizen states its value, the form never shows one.
    verify: Option<bool>,
    /// What the stated value came to (a field to verify with a value stated).
    verification: Option<FieldVerification>,
    source: Option<FieldSource>,
    /// When the department answered (RFC 3339, UTC).
    fetched_at: Option<String>,
    age_s: Option<i64>,
    masked: Option<bool>,
    /// The mask applied, when masked.
    mask: Option<String>,
    /// How the value was computed from released values (`age`, `count`, `any`, `sum`).
    derived: Option<String>,
    /// For a count: the item values counted.
    #[schema(value_type = Option<Object>)]
    counted: Option<Value>,
    missing: Option<Why>,
}

/// What a stated value came to.
#[derive(ToSchema)]
pub(crate) struct FieldVerification {
    /// `match`, `mismatch` or `cannot_verify`.
    #[schema(example = "match")]
    result: String,
    /// Why it could not be verified: as `POST /v1/verify` says (`not_granted`,
    /// `never_shared`, `jurisdiction`, `not_found`, `department_unavailable`, …), or
    /// `rate_limited`, `timed_out`, `department_busy`, `invalid_value`, `gateway_error`.
    reason: Option<String>,
}

/// Where a value came from.
#[derive(ToSchema)]
pub(crate) struct FieldSource {
    department: Option<FormDepartment>,
    connector: String,
    operation: String,
}

/// A department by id and name.
#[derive(ToSchema)]
pub(crate) struct FormDepartment {
    #[schema(example = "county-psb")]
    id: String,
    #[schema(example = "县公安局")]
    name: String,
}

/// Why a value is missing.
#[derive(ToSchema)]
pub(crate) struct Why {
    /// `not_granted`, `row_condition`, `denied_by_rule`, `jurisdiction`, `not_found`,
    /// `no_subject`, `masked`, `timed_out`, `rate_limited`, `department_busy`,
    /// `department_unavailable`, `too_many_rows`, `not_stated` (a field to verify
    /// without a stated value) or `gateway_error`; with labels asked
    /// for, `reason_label` beside it.
    #[schema(example = "not_granted")]
    reason: String,
    /// The deciding rule, when a rule decided.
    rule: Option<String>,
    /// The connector concerned.
    connector: Option<String>,
}

/// A field without a value, and where it is.
#[derive(ToSchema)]
pub(crate) struct MissingValue {
    /// The field's id (`*` for a repeated section without rows).
    field: String,
    section: String,
    /// The row of a repeated section.
    row: Option<u32>,
    #[schema(example = "not_granted")]
    reason: String,
}

/// One department lookup of a fill.
#[derive(ToSchema)]
pub(crate) struct FormLookup {
    connector: String,
    operation: String,
    #[schema(required = true)]
    department: Option<FormDepartment>,
    /// The masked ID number the lookup was for, or `linked`.
    subject: String,
    /// `ok`, or the problem type's slug of its failure.
    #[schema(example = "ok")]
    outcome: String,
    cache_hit: Option<bool>,
    fetched_at: Option<String>,
    /// Why it failed (as in `missing`).
    reason: Option<String>,
    /// A verification of stated values (kind `verification` in the audit log).
    verification: Option<bool>,
}
