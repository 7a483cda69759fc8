//! The privacy officer's request bodies and the anomaly report's answer.

use serde::Deserialize;

use crate::audit::anomalies::{Anomaly, Thresholds};
use crate::audit::search::OutcomeClass;

/// What each route's body looks like, for the error that names where it went wrong.
pub(crate) trait Shape {
    const EXPECTED: &'static str;
}

impl Shape for SearchIn {
    const EXPECTED: &'static str = "{filter: {id_number, user, township, connector, purpose, outcome, status, from, until}, before, limit}";
}

impl Shape for ExportIn {
    const EXPECTED: &'static str = "{filter: {id_number, user, township, connector, purpose, outcome, status, from, until}, format, lang}";
}

impl Shape for ReportIn {
    const EXPECTED: &'static str = "{id_number}";
}

impl Shape for AnomaliesIn {
    const EXPECTED: &'static str = "{from, until, thresholds: {subjects_per_hour, denials_per_10_min, office_hours, limit_refusals_per_day, verify_mismatches_per_day}}";
}

/// A search or export filter as a privacy officer sends it: the citizen by ID
/// number, `id_number` as everywhere else (the gateway turns it into the pseudonym
/// the log holds), the rest as the log stores them; `from` and `until` are dates
/// (a day in China) or RFC 3339 instants.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditFilter)]
pub(crate) struct FilterIn {
    /// The citizen (the gateway searches the pseudonym the log holds).
    #[schema(example = "13990119750327229X", pattern = "^[0-9]{17}[0-9X]$")]
    pub(crate) id_number: Option<String>,
    /// The caller's user (`sub`).
    #[schema(example = "clerk-dongling")]
    pub(crate) user: Option<String>,
    /// The caller's township code.
    #[schema(example = "139901101")]
    pub(crate) township: Option<String>,
    #[schema(example = "hukou")]
    pub(crate) connector: Option<String>,
    #[schema(example = "birth_registration")]
    pub(crate) purpose: Option<String>,
    pub(crate) outcome: Option<OutcomeClass>,
    /// The HTTP status answered.
    #[schema(example = 200)]
    pub(crate) status: Option<u16>,
    /// Events at or after: a date (a day in China) or an RFC 3339 instant.
    #[schema(example = "2026-01-01")]
    pub(crate) from: Option<String>,
    /// Events before: a date (up to the end of that day in China) or an RFC 3339 instant.
    #[schema(example = "2026-12-31")]
    pub(crate) until: Option<String>,
}

/// A search of the audit log, newest first, one page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditSearch)]
pub(crate) struct SearchIn {
    #[serde(default)]
    pub(crate) filter: FilterIn,
    /// Events before this seq: the `next` of the previous page.
    pub(crate) before: Option<u64>,
    /// Events per page (100 when not given).
    #[schema(example = 10)]
    pub(crate) limit: Option<usize>,
}

/// An export of the events a filter selects, oldest first, streamed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditExport)]
pub(crate) struct ExportIn {
    #[serde(default)]
    pub(crate) filter: FilterIn,
    pub(crate) format: ExportFormatIn,
    /// The CSV header's language (`zh-CN` or `en`); else `Accept-Language`, else zh-CN.
    #[schema(value_type = Option<crate::http::request::LabelLanguage>)]
    pub(crate) lang: Option<String>,
}

/// `csv`: a UTF-8 BOM, a header row, RFC 4180 records; `jsonl`: one event per line.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ExportFormat)]
pub(crate) enum ExportFormatIn {
    Csv,
    Jsonl,
}

/// A citizen's access report: who saw their data, when and why.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CitizenReportRequest)]
pub(crate) struct ReportIn {
    #[schema(example = "13990119750327229X", pattern = "^[0-9]{17}[0-9X]$")]
    pub(crate) id_number: String,
}

/// The anomaly report over a window of at most 31 days.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnomalyRequest)]
pub(crate) struct AnomaliesIn {
    /// A date (a day in China) or an RFC 3339 instant.
    #[schema(example = "2026-12-01")]
    pub(crate) from: String,
    /// At most 31 days after `from`.
    #[schema(example = "2026-12-31")]
    pub(crate) until: String,
    /// When a pattern becomes an anomaly (each member has its default).
    #[serde(default)]
    pub(crate) thresholds: Option<Thresholds>,
}

/// The anomaly report.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AnomalyList {
    pub(crate) anomalies: Vec<Anomaly>,
}
