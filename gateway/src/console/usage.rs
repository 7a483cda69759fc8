//! "Who used my data" for a department admin: lookups of one of their connectors per
//! township, purpose and operation over a chosen period, answered, refused and
//! failed — counts only, no personal data. The period and the connector are codes in
//! the query string (`/console/usage?connector=hukou&from=2026-11-01&until=2026-11-30`,
//! days in China time, both ends included). Counted by [`crate::usage::usage`] from
//! the audit log; a department admin reaches only their own connectors
//! ([`crate::admin::readable`]).

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, TimeZone};
use serde::Deserialize;

use super::connectors::ADMIN_ROLES;
use super::page::{Chrome, Visit};

/// The longest period counted at once, in days.
pub const MAX_DAYS: i64 = 366;
/// The period shown when none is chosen: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsageQuery {
    #[serde(default)]
    connector: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

struct Choice {
    id: String,
    title: String,
    selected: bool,
}

struct UseRow {
    township: String,
    purpose: String,
    operation: String,
    answered: u64,
    refused: u64,
    failed: u64,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    chrome: Chrome,
    connectors: Vec<Choice>,
    from: String,
    until: String,
    rows: Vec<UseRow>,
    total: u64,
    truncated: bool,
    error: Option<String>,
}

/// The start of a China-time day, in UTC.
fn day_start(day: NaiveDate) -> Option<chrono::DateTime<chrono::Utc>> {
    let china = chrono::FixedOffset::east_opt(8 * 3600)?;
    let start = day.and_hms_opt(0, 0, 0)?;
    china
        .from_local_datetime(&start)
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `/console/usage`.
pub(crate) async fn show(
    visit: Visit,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match visit.require(ADMIN_ROLES) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let Ok(Query(query)) = query else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    let app = &visit.console.app;
    let t = visit.t;
    let rows = match crate::admin::rows(app, &caller).await {
        Ok(rows) => rows,
        Err(p) => return visit.problem(p.kind.status(), p.kind.slug(), None),
    };
    let config = app.config.load_full();
    let chosen = query
        .connector
        .filter(|c| !c.is_empty())
        .or_else(|| rows.first().map(|r| r.connector.clone()));
    let today = app.clock.today();
    let parse = |text: Option<String>| {
        text.filter(|s| !s.is_empty())
            .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
    };
    let (from, until) = match (parse(query.from), parse(query.until)) {
        (Some(None), _) | (_, Some(None)) => {
            return visit.error(StatusCode::BAD_REQUEST, "usage-bad-dates", None);
        }
        (from, until) => {
            let until = until.flatten().unwrap_or(today);
            let from = from
                .flatten()
                .unwrap_or(until - chrono::Duration::days(DEFAULT_DAYS - 1));
            (from, until)
        }
    };
    let days = (until - from).num_days() + 1;
    let mut page = UsagePage {
        chrome: visit.chrome("/console/usage"),
        connectors: rows
            .iter()
            .map(|r| Choice {
                title: config
                    .connectors
                    .get(&r.connector)
                    .map_or_else(|| r.connector.clone(), |c| c.def.title.clone()),
                selected: Some(&r.connector) == chosen.as_ref(),
                id: r.connector.clone(),
            })
            .collect(),
        from: from.to_string(),
        until: until.to_string(),
        rows: Vec::new(),
        total: 0,
        truncated: false,
        error: None,
    };
    if !(1..=MAX_DAYS).contains(&days) {
        page.error = Some(t.arg("usage-bad-period", "max", &MAX_DAYS.to_string()));
        return visit.respond_with(StatusCode::BAD_REQUEST, &page);
    }
    let Some(connector) = chosen else {
        return visit.respond(&page);
    };
    if let Err(p) = crate::admin::readable(app, &caller, &connector).await {
        return visit.problem(p.kind.status(), p.kind.slug(), None);
    }
    let (Some(start), Some(end)) = (day_start(from), until.succ_opt().and_then(day_start)) else {
        return visit.error(StatusCode::BAD_REQUEST, "usage-bad-dates", None);
    };
    match crate::usage::usage(app, &connector, start, end).await {
        Ok(usage) => {
            page.truncated = usage.truncated;
            for (key, count) in usage.rows {
                page.total += count.answered + count.refused + count.failed;
                page.rows.push(UseRow {
                    township: if key.township.is_empty() {
                        t.get("usage-no-township")
                    } else {
                        key.township
                    },
                    purpose: t.purpose(&config, &key.purpose),
                    operation: key.operation,
                    answered: count.answered,
                    refused: count.refused,
                    failed: count.failed,
                });
            }
            visit.respond(&page)
        }
        Err(p) => {
            page.error = Some(t.problem(p.kind.slug()));
            visit.respond_with(p.kind.status(), &page)
        }
    }
}
