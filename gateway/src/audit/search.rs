//! Reading the audit log back: the privacy officer's search (filters on the indexed
//! columns, newest first, keyset pagination on `seq`) and the evidence export (every
//! matching event, oldest first, streamed as CSV or JSON Lines).
//!
//! This module also owns what the other readers ([`report`](super::report),
//! [`anomalies`](super::anomalies)) share: the read-only connection, the normalised
//! time bounds and the error type [`SearchError`].
//!
//! Every function here is blocking (the HTTP layer calls them through
//! `spawn_blocking`) and opens `DATA_DIR/audit.db` read-only on a connection of its
//! own, so it reads a consistent snapshot while the writer keeps appending (WAL).
//!
//! **Time bounds.** The writer stores each event's `time` as RFC 3339 UTC with
//! milliseconds (`2026-03-02T02:15:03.000Z`), so text order is time order. A bound is
//! parsed as RFC 3339 with any offset, converted to UTC, rounded *up* to the next
//! millisecond when it has a finer fraction (stored times are whole milliseconds, so
//! this keeps `from` inclusive and `until` exclusive exactly) and written in the same
//! format; the database then compares text with text through the `time` indexes.
//!
//! **What is read.** The live log only: events that retention has moved into archive
//! segments (`DATA_DIR/archive/`) are not searched, exported or reported.
//!
//! **Ordering and cost.** Pages and exports are in `seq` (chain) order. With a
//! filter, the matching sequence numbers are first collected from the filter's index
//! alone (each index ends in the row id), sorted by SQLite in a temporary b-tree that
//! spills to disk, and only then are the rows themselves read: a page reads its own
//! rows only, an export streams them. Without a filter the table is read in `seq`
//! order directly.
//!
//! **CSV.** The export starts with a UTF-8 byte order mark (so a spreadsheet reads
//! the Chinese as UTF-8), then a header row in the caller's language (zh-CN or en).
//! Cells are quoted per RFC 4180; a cell a spreadsheet would take for a formula (it
//! starts with `=`, `+`, `-`, `@`, a tab or a CR — a `case_id` is free text) is
//! written with a `'` in front, so it is shown as text and never evaluated.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};

use super::event::AuditEvent;
use super::sqlite::AUDIT_FILE;
use crate::labels::Lang;

/// The largest page [`search`] returns; a larger `limit` is refused.
pub const MAX_PAGE: usize = 1000;

/// How long a reader waits for a lock before failing.
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the log could not be read as asked. Messages never contain event contents.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The question itself is wrong (a bad time bound, an empty window, …); the
    /// caller should fix it (HTTP 400, exit code 2). The first value names the field
    /// (`from`, `limit`, `thresholds.office_hours`, …); the message never quotes a
    /// value the caller sent.
    #[error("invalid filter: {1}")]
    InvalidFilter(&'static str, String),
    /// There is no audit database in the data directory.
    #[error("no audit log at {}", .0.display())]
    NoLog(PathBuf),
    /// A stored body is not an audit event (the log should be verified).
    #[error("the stored event with seq {seq} cannot be read: {reason}")]
    Corrupt { seq: u64, reason: String },
    /// The store behind the log failed while opening or reading it (the backend's
    /// own message, e.g. SQLite's).
    #[error("{0}")]
    Backend(String),
    /// Writing the export failed.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// What to look for. Every present criterion must hold (they are combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The subject's pseudonym; the HTTP layer makes it from a citizen ID with the
    /// gateway's pseudonym key.
    pub subject_pseudonym: Option<String>,
    pub user: Option<String>,
    pub township: Option<String>,
    pub connector: Option<String>,
    pub purpose: Option<String>,
    /// A class of HTTP status.
    pub outcome: Option<OutcomeClass>,
    /// One HTTP status exactly.
    pub status: Option<u16>,
    /// RFC 3339; events at or after it.
    pub from: Option<String>,
    /// RFC 3339; events strictly before it.
    pub until: Option<String>,
}

/// A class of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// 2xx: the lookup was answered.
    Ok,
    /// 401 or 403: the caller was not authenticated or the policy refused.
    Refused,
    /// Any other 4xx or 5xx.
    Failed,
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// The chain the event is in, in a log of many chains (PostgreSQL's, one per
    /// replica); `seq` and `hash` are then that chain's. `None` for the embedded log,
    /// whose one chain the page names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    pub seq: u64,
    /// `hash(seq)`, lowercase hex.
    pub hash: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// One page of [`search`] results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The log's chain id (see [`super::Recorded::chain_id`]); empty for a log of
    /// many chains, whose events each name theirs.
    pub chain_id: String,
    pub events: Vec<StoredEvent>,
    /// Pass as `before` for the next (older) page; `None` at the end.
    pub next: Option<u64>,
}

/// The export's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A UTF-8 BOM, a header row in this language, then RFC 4180 records with CRLF
    /// line ends; formula-like cells are neutralized.
    Csv(Lang),
    /// One [`StoredEvent`] JSON object per line.
    JsonLines,
}

/// The events matching `filter`, newest first, at most `limit` of them (1 to
/// [`MAX_PAGE`]; another limit is refused). Keyset pagination on `seq`: with
/// `before`, only events with `seq < before`.
pub fn search(
    data_dir: &Path,
    filter: &Filter,
    before: Option<u64>,
    limit: usize,
) -> Result<Page, SearchError> {
    check_limit(limit)?;
    let mut clause = Clause::of(filter)?;
    let filtered = !clause.conditions.is_empty();
    if let Some(before) = before {
        clause.push("seq < ?", Value::Integer(sql_int(before)));
    }
    let conn = open_log(data_dir)?;
    let sql = page_sql(filtered, &clause.sql());
    // One more than asked: whether it exists says whether there is a next page.
    clause
        .values
        .push(Value::Integer(sql_int(limit as u64 + 1)));
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query(params_from_iter(clause.values.iter()))?;
    let mut events = Vec::with_capacity(limit.min(64));
    let mut more = false;
    while let Some(row) = rows.next()? {
        if events.len() == limit {
            more = true;
            break;
        }
        events.push(stored_event(row)?);
    }
    let next = if more {
        events.last().map(|e: &StoredEvent| e.seq)
    } else {
        None
    };
    let chain_id =
        super::sqlite::read_chain_id(&conn).map_err(|e| SearchError::Backend(e.to_string()))?;
    Ok(Page {
        chain_id,
        events,
        next,
    })
}

/// Writes every event matching `filter` to `out`, oldest first, one row at a time
/// (never all in memory), and returns how many. The export reads one snapshot of the
/// log: events appended meanwhile are not in it.
pub fn export(
    data_dir: &Path,
    filter: &Filter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, SearchError> {
    check_filter(filter)?;
    // Nothing is written when there is no log to read.
    drop(open_log(data_dir)?);
    out.write_all(&format.header())?;
    let mut count = 0u64;
    each_event(data_dir, filter, |stored| {
        out.write_all(&format.encode(&stored)?)?;
        count += 1;
        Ok(true)
    })?;
    out.flush()?;
    Ok(count)
}

/// Calls `each` with every event matching `filter`, oldest first, one row at a
/// time (never all in memory), until it answers `false`. One snapshot of the log:
/// events appended meanwhile are not seen. Blocking.
pub(crate) fn each_event(
    data_dir: &Path,
    filter: &Filter,
    mut each: impl FnMut(StoredEvent) -> Result<bool, SearchError>,
) -> Result<(), SearchError> {
    let clause = Clause::of(filter)?;
    let conn = open_log(data_dir)?;
    let sql = export_sql(&clause.sql());
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query(params_from_iter(clause.values.iter()))?;
    while let Some(row) = rows.next()? {
        if !each(stored_event(row)?)? {
            break;
        }
    }
    Ok(())
}

impl ExportFormat {
    /// What the export starts with: for CSV the BOM and the header row.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let ExportFormat::Csv(lang) = self {
            out.extend_from_slice(UTF8_BOM.as_bytes());
            csv_row(&mut out, csv_header(*lang).iter().map(|h| (*h).to_owned()));
        }
        out
    }

    /// One event as the export writes it (a CSV record, or a JSON line).
    pub fn encode(&self, stored: &StoredEvent) -> Result<Vec<u8>, SearchError> {
        let mut out = Vec::new();
        match self {
            ExportFormat::Csv(_) => csv_row(&mut out, csv_fields(stored)),
            ExportFormat::JsonLines => {
                serde_json::to_writer(&mut out, stored)
                    .map_err(|e| SearchError::Write(e.into()))?;
                out.push(b'\n');
            }
        }
        Ok(out)
    }
}

/// Checks a filter as [`search`] and [`export`] would (its time bounds, its status),
/// without reading the log: an export checks before it starts streaming.
pub fn check_filter(filter: &Filter) -> Result<(), SearchError> {
    Clause::of(filter).map(|_| ())
}

/// A page size is 1 to [`MAX_PAGE`].
pub fn check_limit(limit: usize) -> Result<(), SearchError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(SearchError::InvalidFilter(
            "limit",
            format!("`limit` must be between 1 and {MAX_PAGE}; page with `before` for more"),
        ))
    }
}

/// The query for a page: `where_sql` and then the limit are bound.
fn page_sql(filtered: bool, where_sql: &str) -> String {
    if filtered {
        // The matching seqs are found and sorted in an index alone; only the page's
        // rows are read.
        format!(
            "SELECT seq, hash, body FROM events WHERE seq IN
               (SELECT seq FROM events{where_sql} ORDER BY seq DESC LIMIT ?)
             ORDER BY seq DESC"
        )
    } else {
        format!("SELECT seq, hash, body FROM events{where_sql} ORDER BY seq DESC LIMIT ?")
    }
}

/// The query for an export.
fn export_sql(where_sql: &str) -> String {
    if where_sql.is_empty() {
        "SELECT seq, hash, body FROM events ORDER BY seq ASC".to_owned()
    } else {
        // The matching seqs are collected from an index (SQLite keeps them in a
        // temporary b-tree that spills to disk), then the rows are read in seq order.
        format!(
            "SELECT seq, hash, body FROM events WHERE seq IN (SELECT seq FROM events{where_sql})
             ORDER BY seq ASC"
        )
    }
}

/// Written first in a CSV export, so spreadsheets read it as UTF-8.
pub const UTF8_BOM: &str = "\u{feff}";

/// The header row in a language.
pub fn csv_header(lang: Lang) -> &'static [&'static str; 24] {
    match lang {
        Lang::ZhCn => &CSV_HEADER_ZH,
        Lang::En => &CSV_HEADER,
    }
}

/// The CSV export's columns in Chinese, in [`CSV_HEADER`] order.
pub const CSV_HEADER_ZH: [&str; 24] = [
    "序号",
    "时间",
    "请求编号",
    "用户",
    "角色",
    "乡镇",
    "部门",
    "应用",
    "来源地址",
    "事项",
    "办件编号",
    "数据源",
    "操作",
    "对象假名",
    "对象（脱敏）",
    "返回字段",
    "脱敏字段",
    "未返回字段",
    "规则",
    "策略版本",
    "状态码",
    "问题",
    "上游耗时（毫秒）",
    "哈希",
];

/// The CSV export's columns (their English names), in order.
pub const CSV_HEADER: [&str; 24] = [
    "seq",
    "time",
    "request_id",
    "user",
    "roles",
    "township",
    "department",
    "app",
    "source_ip",
    "purpose",
    "case_id",
    "connector",
    "operation",
    "subject_pseudonym",
    "subject_masked",
    "fields_returned",
    "fields_masked",
    "fields_withheld",
    "rules",
    "policy_version",
    "status",
    "problem",
    "upstream_latency_ms",
    "hash",
];

/// One event's CSV cells, in [`CSV_HEADER`] order: lists joined by `;`, masked
/// fields as `field:mask`, withheld ones as `field:reason`, absent values empty.
fn csv_fields(stored: &StoredEvent) -> [String; 24] {
    let e = &stored.event;
    let opt = |value: &Option<String>| value.clone().unwrap_or_default();
    [
        stored.seq.to_string(),
        e.time.clone(),
        e.request_id.clone(),
        e.caller.user.clone(),
        e.caller.roles.join(";"),
        opt(&e.caller.township),
        opt(&e.caller.department),
        opt(&e.caller.app),
        opt(&e.caller.source_ip),
        opt(&e.purpose),
        opt(&e.case_id),
        opt(&e.connector),
        opt(&e.operation),
        opt(&e.subject_pseudonym),
        opt(&e.subject_masked),
        e.fields_returned.join(";"),
        e.fields_masked
            .iter()
            .map(|m| format!("{}:{}", m.field, m.mask))
            .collect::<Vec<_>>()
            .join(";"),
        e.fields_withheld
            .iter()
            .map(|w| format!("{}:{}", w.field, w.reason))
            .collect::<Vec<_>>()
            .join(";"),
        e.rules.join(";"),
        opt(&e.policy_version),
        e.outcome.status.to_string(),
        opt(&e.outcome.problem),
        e.upstream_latency_ms
            .map(|ms| ms.to_string())
            .unwrap_or_default(),
        stored.hash.clone(),
    ]
}

/// Appends one CSV record and its CRLF.
fn csv_row(out: &mut Vec<u8>, cells: impl IntoIterator<Item = String>) {
    let mut line = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_csv_cell(&mut line, &cell);
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// A cell starting with one of these is a formula to a spreadsheet.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// RFC 4180: a cell holding a comma, a double quote, CR or LF is enclosed in double
/// quotes, with each double quote inside doubled; any other cell is written as is.
/// A formula-like cell gets a `'` in front first.
fn push_csv_cell(line: &mut String, cell: &str) {
    let neutral;
    let cell = if cell.starts_with(FORMULA_STARTS) {
        neutral = format!("'{cell}");
        neutral.as_str()
    } else {
        cell
    };
    if cell.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&cell.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(cell);
    }
}

/// A `WHERE` clause with its bound values (`?` placeholders, in order); values are
/// never written into the SQL text.
#[derive(Debug, Default)]
struct Clause {
    conditions: Vec<&'static str>,
    values: Vec<Value>,
}

impl Clause {
    /// The conditions of `filter`, its time bounds checked and normalised.
    fn of(filter: &Filter) -> Result<Clause, SearchError> {
        let mut clause = Clause::default();
        let text = |s: &String| Value::Text(s.clone());
        if let Some(v) = &filter.subject_pseudonym {
            // The subject, or a person the lookup disclosed through the subject's
            // record (a spouse, a child, a household member).
            clause.push(
                "subject_pseudonym = ? OR seq IN (SELECT seq FROM linked_subjects WHERE pseudonym = ?)",
                text(v),
            );
            clause.values.push(text(v));
        }
        if let Some(v) = &filter.user {
            clause.push("user = ?", text(v));
        }
        if let Some(v) = &filter.township {
            clause.push("township = ?", text(v));
        }
        if let Some(v) = &filter.connector {
            clause.push("connector = ?", text(v));
        }
        if let Some(v) = &filter.purpose {
            clause.push("purpose = ?", text(v));
        }
        // Most events have the same few statuses: when a more selective column is
        // asked for, `+status` keeps SQLite from choosing the status index instead.
        let by_status = clause.conditions.is_empty();
        let outcome = match filter.outcome {
            None => None,
            Some(OutcomeClass::Ok) => {
                Some(["status BETWEEN 200 AND 299", "+status BETWEEN 200 AND 299"])
            }
            Some(OutcomeClass::Refused) => Some(["status IN (401, 403)", "+status IN (401, 403)"]),
            Some(OutcomeClass::Failed) => Some([
                "status BETWEEN 400 AND 599 AND status NOT IN (401, 403)",
                "+status BETWEEN 400 AND 599 AND +status NOT IN (401, 403)",
            ]),
        };
        if let Some([indexed, unindexed]) = outcome {
            clause
                .conditions
                .push(if by_status { indexed } else { unindexed });
        }
        if let Some(status) = filter.status {
            if !(100..=599).contains(&status) {
                return Err(SearchError::InvalidFilter(
                    "status",
                    "`status` is not an HTTP status (100-599)".to_owned(),
                ));
            }
            let condition = if by_status {
                "status = ?"
            } else {
                "+status = ?"
            };
            clause.push(condition, Value::Integer(i64::from(status)));
        }
        let from = filter
            .from
            .as_deref()
            .map(|t| time_bound(Bound::From, t))
            .transpose()?;
        let until = filter
            .until
            .as_deref()
            .map(|t| time_bound(Bound::Until, t))
            .transpose()?;
        if let (Some(from), Some(until)) = (&from, &until)
            && from >= until
        {
            return Err(SearchError::InvalidFilter(
                "until",
                "`from` must be before `until`".into(),
            ));
        }
        if let Some(from) = from {
            clause.push("time >= ?", Value::Text(from));
        }
        if let Some(until) = until {
            clause.push("time < ?", Value::Text(until));
        }
        Ok(clause)
    }

    fn push(&mut self, condition: &'static str, value: Value) {
        self.conditions.push(condition);
        self.values.push(value);
    }

    /// ` WHERE a AND b …`, or nothing when there is no condition.
    fn sql(&self) -> String {
        let mut sql = String::new();
        for (i, condition) in self.conditions.iter().enumerate() {
            let _ = write!(
                sql,
                "{}({condition})",
                if i == 0 { " WHERE " } else { " AND " }
            );
        }
        sql
    }
}

/// Which end of a time window a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Inclusive: events at or after it.
    From,
    /// Exclusive: events before it.
    Until,
}

impl Bound {
    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            Bound::From => "from",
            Bound::Until => "until",
        }
    }
}

/// A time bound parsed (see [`parse_time_bound`]) and written as the store writes
/// times: UTC, milliseconds, `Z`.
fn time_bound(bound: Bound, text: &str) -> Result<String, SearchError> {
    Ok(format_time(parse_time_bound(bound, text)?))
}

/// A time bound as an instant. Two forms, the same in the API and on the command
/// line: an RFC 3339 instant with any offset (a finer fraction than milliseconds is
/// rounded up to the next millisecond, as stored times are whole milliseconds), or a
/// date `2026-12-01` meaning that day in China (UTC+8): as `from`, from its first
/// moment; as `until`, through its last (until the next day's 00:00 CST).
pub fn parse_time_bound(bound: Bound, text: &str) -> Result<DateTime<Utc>, SearchError> {
    let name = bound.name();
    let text = text.trim();
    let instant = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) => {
            let day = match bound {
                Bound::From => Some(day),
                Bound::Until => day.succ_opt(),
            };
            day.and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|t| t.checked_sub_signed(chrono::Duration::hours(8)))
                .map(|t| t.and_utc())
                .ok_or_else(|| {
                    SearchError::InvalidFilter(name, format!("`{name}` is out of range"))
                })?
        }
        Err(_) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                SearchError::InvalidFilter(
                    name,
                    format!(
                        "`{name}` is neither a date such as 2026-03-01 (a day in China) nor an \
                         RFC 3339 time such as 2026-03-01T08:00:00+08:00"
                    ),
                )
            })?
            .with_timezone(&Utc),
    };
    let mut utc = instant;
    let sub_milli = utc.timestamp_subsec_nanos() % 1_000_000;
    if sub_milli != 0 {
        utc += chrono::Duration::nanoseconds(i64::from(1_000_000 - sub_milli));
    }
    if !(1..=9999).contains(&utc.year()) {
        return Err(SearchError::InvalidFilter(
            name,
            format!("`{name}` is outside the years 0001-9999"),
        ));
    }
    Ok(utc)
}

/// The store's time format: RFC 3339 UTC with milliseconds.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Opens `DATA_DIR/audit.db` read-only (never creating it), waiting up to 5 s for a
/// lock.
pub(crate) fn open_log(data_dir: &Path) -> Result<Connection, SearchError> {
    let path = data_dir.join(AUDIT_FILE);
    if !path.is_file() {
        return Err(SearchError::NoLog(path));
    }
    Ok(crate::sqlite::connect_read_only(&path, READ_BUSY_TIMEOUT)?)
}

/// Reads a row of `SELECT seq, hash, body`.
pub(crate) fn stored_event(row: &rusqlite::Row<'_>) -> Result<StoredEvent, SearchError> {
    let seq: i64 = row.get(0)?;
    let seq = u64::try_from(seq).map_err(|_| SearchError::Corrupt {
        seq: 0,
        reason: "a negative sequence number".into(),
    })?;
    let hash: String = row.get(1)?;
    let body: String = row.get(2)?;
    let event = serde_json::from_str(&body).map_err(|e| SearchError::Corrupt {
        seq,
        reason: format!(
            "the body is not an audit event (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    Ok(StoredEvent {
        chain_id: None,
        seq,
        hash,
        event,
    })
}

/// A sequence number or count as an SQLite integer (saturating: no stored sequence
/// number comes near it).
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
