//! Filters and pages for the lists (access requests, grants, connectors, reviews),
//! and the one place URLs may carry a query string.
//!
//! URLs take no query string anywhere else: personal data and credentials travel only
//! in bodies and headers. A listed route ([`ALLOWED`]) takes a fixed set of
//! non-personal parameters — `state`, `township`, `connector`, `cursor`, `limit` —
//! whose values are codes and ids only (letters, digits, `-`, `_`, `.`; at most
//! [`MAX_VALUE`] characters); anything else is refused before a handler runs. An
//! unknown parameter is named in the 400 when its name looks like a name; its value is
//! never repeated.
//!
//! Lists are in a stable order (requests and grants oldest first, connectors and
//! reviews by id and version); `cursor` is opaque (`next_cursor` of the previous
//! page) and `limit` at most [`MAX_LIMIT`] ([`DEFAULT_LIMIT`] when not given).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::problem::{Problem, ProblemKind};
use super::{Authenticated, RequestId};
use crate::app::App;

/// The most items one page holds.
pub const MAX_LIMIT: usize = 200;
/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The longest value of a code or id parameter, in characters.
pub const MAX_VALUE: usize = 80;
/// The longest cursor, in characters.
const MAX_CURSOR: usize = 400;

/// Routes (method and exact path) that take a query string, and the parameters each
/// takes.
const ALLOWED: &[(&str, &str, &[&str])] = &[
    (
        "GET",
        "/v1/access-requests",
        &["state", "township", "connector", "cursor", "limit"],
    ),
    (
        "GET",
        "/v1/grants",
        &["state", "township", "connector", "cursor", "limit"],
    ),
    ("GET", "/v1/admin/connectors", &["state", "cursor", "limit"]),
    (
        "GET",
        "/v1/admin/reviews",
        &["state", "connector", "cursor", "limit"],
    ),
    ("GET", "/v1/corrections", CORRECTIONS),
];

/// The parameters of `GET /v1/corrections`.
pub const CORRECTIONS: &[&str] = &["state", "connector", "overdue", "cursor", "limit"];

/// Console pages (GET) that take a query string: filters of codes, ids, dates and
/// numbers — never a citizen's ID number, which the console only POSTs. A form sends
/// every field, so a value may be empty here.
const CONSOLE: &[(&str, &[&str])] = &[
    ("/console/usage", &["connector", "from", "until"]),
    (
        "/console/audit",
        &[
            "user",
            "township",
            "connector",
            "purpose",
            "outcome",
            "status",
            "from",
            "until",
            "before",
        ],
    ),
    ("/console/signin", &["ended"]),
    ("/console/grants", &["township", "purpose"]),
    ("/console/request", &["op"]),
];

/// Where an OpenID provider sends the browser back: its query carries a one-time
/// code and the state (read by `crate::oidc::Callback`), or the provider's error.
const OIDC_CALLBACK: &str = "/console/oidc/callback";
const OIDC_PARAMETERS: &[&str] = &[
    "code",
    "state",
    "iss",
    "session_state",
    "error",
    "error_description",
    "error_uri",
];
/// The longest callback query accepted.
const MAX_CALLBACK_QUERY: usize = 8192;

/// Checks an OpenID callback's query: only the protocol's parameters, bounded.
fn oidc_callback(query: &str) -> Result<(), Problem> {
    let known = query.split('&').filter(|p| !p.is_empty()).all(|pair| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        OIDC_PARAMETERS.contains(&name)
    });
    if known && query.len() <= MAX_CALLBACK_QUERY {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemKind::InvalidRequest,
            "The sign-in callback takes only the OpenID Connect parameters.",
        ))
    }
}

/// A list's filters and page, parsed from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub state: Option<String>,
    pub township: Option<String>,
    pub connector: Option<String>,
    /// `true` or `false` (corrections).
    pub overdue: Option<String>,
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

fn bad(at: &str, detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidRequest, detail).with("at", at.to_owned())
}

/// A parameter name fit to repeat in an error: short, lowercase letters and `_`.
fn nameable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Checks the query string of a request before any handler runs: `None` when the
/// route takes none, else only its parameters, each once, with valid values.
pub fn check(method: &str, path: &str, query: Option<&str>) -> Result<(), Problem> {
    let Some(query) = query else {
        return Ok(());
    };
    if let Some((_, names)) = CONSOLE.iter().find(|(p, _)| method == "GET" && *p == path) {
        return console(query, names);
    }
    if method == "GET" && path == OIDC_CALLBACK {
        return oidc_callback(query);
    }
    let allowed = ALLOWED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, names)| *names);
    let Some(allowed) = allowed else {
        return Err(Problem::new(
            ProblemKind::InvalidRequest,
            "URLs take no query string here; personal data and credentials travel only in request bodies and headers.",
        ));
    };
    parse(query, allowed).map(|_| ())
}

/// Checks a console page's query: only its parameters, each once, each value empty
/// or a code (letters, digits, `-`, `_`, `.`, at most [`MAX_VALUE`] characters).
fn console(query: &str, allowed: &[&str]) -> Result<(), Problem> {
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let code = value.len() <= MAX_VALUE
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !allowed.contains(&name) || seen.contains(&name) || !code {
            return Err(Problem::new(
                ProblemKind::InvalidRequest,
                format!(
                    "This page takes only these query parameters, each once, with codes as values: {}.",
                    allowed.join(", ")
                ),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// Parses `query` for a route taking the parameters `allowed`.
fn parse(query: &str, allowed: &[&str]) -> Result<ListQuery, Problem> {
    let mut out = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&name) {
            let detail = if nameable(name) {
                format!(
                    "This list takes no query parameter `{name}`; it takes {}.",
                    allowed.join(", ")
                )
            } else {
                format!(
                    "A query parameter is not one this list takes ({}).",
                    allowed.join(", ")
                )
            };
            let problem = Problem::new(ProblemKind::InvalidRequest, detail);
            return Err(if nameable(name) {
                problem.with("at", name.to_owned())
            } else {
                problem
            });
        }
        if seen.contains(&name) {
            return Err(bad(name, format!("`{name}` is given more than once.")));
        }
        seen.push(name);
        match name {
            "limit" => {
                let limit: usize = value
                    .parse()
                    .map_err(|_| bad("limit", "`limit` is a whole number of items."))?;
                if limit == 0 || limit > MAX_LIMIT {
                    return Err(bad(
                        "limit",
                        format!("`limit` is from 1 to {MAX_LIMIT} items."),
                    ));
                }
                out.limit = limit;
            }
            "cursor" => out.after = Some(decode_cursor(value)?),
            _ => {
                let code = value.len() <= MAX_VALUE
                    && !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !code {
                    return Err(bad(
                        name,
                        format!(
                            "`{name}` is a code or id: letters, digits, `-`, `_` and `.`, at most {MAX_VALUE} characters."
                        ),
                    ));
                }
                let slot = match name {
                    "state" => &mut out.state,
                    "township" => &mut out.township,
                    "overdue" => &mut out.overdue,
                    _ => &mut out.connector,
                };
                *slot = Some(value.to_owned());
            }
        }
    }
    Ok(out)
}

fn cursor_problem() -> Problem {
    bad(
        "cursor",
        "`cursor` is not one this list gave; use `next_cursor` from the previous page.",
    )
}

/// The opaque cursor after the item with sort key `key`.
fn encode_cursor(key: &str) -> String {
    let mut out = String::from("c");
    for b in key.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_cursor(text: &str) -> Result<String, Problem> {
    let hex = text
        .strip_prefix('c')
        .filter(|h| text.len() <= MAX_CURSOR && h.len() % 2 == 0)
        .ok_or_else(cursor_problem)?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| cursor_problem())?;
    String::from_utf8(bytes).map_err(|_| cursor_problem())
}

impl ListQuery {
    /// No filter, every item on one page.
    pub fn all() -> ListQuery {
        ListQuery {
            limit: usize::MAX,
            ..ListQuery::default()
        }
    }

    /// The query of a listed route, checked again (the middleware checked it first).
    pub fn of(raw: Option<&str>, allowed_state: &[&str]) -> Result<ListQuery, Problem> {
        let all = ["state", "township", "connector", "cursor", "limit"];
        let query = parse(raw.unwrap_or(""), &all)?;
        if let Some(state) = &query.state
            && !allowed_state.contains(&state.as_str())
        {
            return Err(bad(
                "state",
                format!("`state` is one of {}.", allowed_state.join(", ")),
            ));
        }
        Ok(query)
    }

    /// The query of the listed route taking `names`, checked again, with `state` one
    /// of `allowed_state` and `overdue` (if taken) `true` or `false`.
    pub fn of_route(
        raw: Option<&str>,
        names: &[&str],
        allowed_state: &[&str],
    ) -> Result<ListQuery, Problem> {
        let query = parse(raw.unwrap_or(""), names)?;
        if let Some(state) = &query.state
            && !allowed_state.contains(&state.as_str())
        {
            return Err(bad(
                "state",
                format!("`state` is one of {}.", allowed_state.join(", ")),
            ));
        }
        if let Some(overdue) = &query.overdue
            && overdue != "true"
            && overdue != "false"
        {
            return Err(bad("overdue", "`overdue` is `true` or `false`."));
        }
        Ok(query)
    }

    /// One page of `items` (already filtered, in their stable order; `key` gives each
    /// item's unique sort key) and the cursor of the next page.
    pub fn page<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let start = match &self.after {
            Some(after) => items
                .iter()
                .position(|item| key(item) == *after)
                .map_or(items.len(), |i| i + 1),
            None => 0,
        };
        let mut rest: Vec<T> = items.into_iter().skip(start).collect();
        let next = if rest.len() > self.limit {
            rest.truncate(self.limit);
            rest.last().map(|item| encode_cursor(&key(item)))
        } else {
            None
        };
        (rest, next)
    }

    /// Whether `value` passes the filter `filter` (no filter passes everything).
    pub fn matches(filter: &Option<String>, value: &str) -> bool {
        filter.as_deref().is_none_or(|f| f == value)
    }
}

/// `GET /v1/admin/connectors`: the connectors the caller administers (every one for
/// an operator), by id, with their origin, whether they serve, the version in force
/// and how many drafts wait. `state`: `enabled`, `disabled` or `draft` (no version in
/// force yet).
#[utoipa::path(
    get,
    path = "/v1/admin/connectors",
    tag = "connectors",
    operation_id = "listConnectors",
    summary = "The connectors the caller administers",
    description = "Their own department's (a department admin) or every one (an operator), by \
        id: origin, state, the version in force and how many drafts wait. Filtered and paged.",
    params(
        ("state" = Option<String>, Query, description = "`enabled`, `disabled` or `draft` (no version in force yet)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Items per page, 1–200 (50 by default)."),
    ),
    security(("bearer" = ["dept_admin", "operator"])),
    responses((status = 200, description = "One page of connectors.",
        body = super::admin::answers::ConnectorList), ConnectorListProblems),
)]
pub(crate) async fn connectors(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    if !crate::admin::administers(&caller) {
        return crate::admin::not_admin()
            .for_request(&request_id)
            .into_response();
    }
    let query = match ListQuery::of(raw.as_deref(), &["enabled", "disabled", "draft"]) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let rows = match crate::admin::rows(&app, &caller).await {
        Ok(rows) => rows,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let visible: Vec<Value> = rows
        .into_iter()
        .filter(|row| ListQuery::matches(&query.state, row.state))
        .map(|row| {
            json!({
                "connector": row.connector,
                "department": row.department,
                "origin": row.origin.map_or_else(|| json!("gateway.yaml"), |o| json!(o)),
                "state": row.state,
                "active": row.active,
                "drafts": row.drafts,
            })
        })
        .collect();
    let (page, next) = query.page(visible, |row| {
        row["connector"].as_str().unwrap_or_default().to_owned()
    });
    axum::Json(json!({ "connectors": page, "next_cursor": next })).into_response()
}

crate::problems!(ConnectorListProblems = [Unauthenticated, Forbidden, RegistryUnavailable]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_routes_take_a_query_and_only_their_parameters() {
        assert!(check("GET", "/v1/query", None).is_ok());
        assert!(check("POST", "/v1/query", Some("state=x")).is_err());
        assert!(check("GET", "/v1/grants", Some("state=active&limit=5")).is_ok());
        let unknown = check("GET", "/v1/grants", Some("id_number=139901197503272291"))
            .expect_err("an unknown parameter");
        assert!(unknown.detail.contains("id_number"));
        assert!(!unknown.detail.contains("139901197503272291"));
        let odd = check("GET", "/v1/grants", Some("13990119750327229X=1")).expect_err("refused");
        assert!(!odd.detail.contains("13990119750327229X"));
        let value = check("GET", "/v1/grants", Some("township=%E8%A5%BF")).expect_err("refused");
        assert!(!value.detail.contains("%E8"));
        assert!(check("GET", "/v1/grants", Some("limit=201")).is_err());
        assert!(check("GET", "/v1/grants", Some("limit=0")).is_err());
        assert!(check("GET", "/v1/grants", Some("state=a&state=b")).is_err());
    }

    #[test]
    fn console_pages_take_only_their_filters_and_never_an_id_number() {
        let empty = "user=&township=&connector=&purpose=&outcome=&status=&from=&until=";
        assert!(check("GET", "/console/audit", Some(empty)).is_ok());
        assert!(
            check(
                "GET",
                "/console/audit",
                Some("user=clerk-dongling&from=2026-12-01")
            )
            .is_ok()
        );
        assert!(check("GET", "/console/signin", Some("ended=1")).is_ok());
        for refused in [
            "id_number=139901197503272291",
            "user=%E9%82%93",
            "user=a&user=b",
            "subject=139901197503272291",
        ] {
            let problem = check("GET", "/console/audit", Some(refused)).expect_err(refused);
            assert!(!problem.detail.contains("139901197503272291"));
        }
        assert!(check("POST", "/console/audit", Some("user=x")).is_err());
        assert!(check("GET", "/console/desk", Some("user=x")).is_err());
    }

    #[test]
    fn pages_follow_one_another_without_gaps_or_repeats() {
        let query = ListQuery {
            limit: 2,
            ..ListQuery::default()
        };
        let items: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let (first, next) = query.page(items.clone(), |s| s.clone());
        assert_eq!(first, ["a", "b"]);
        let next = next.expect("a next page");
        let query = ListQuery {
            after: Some(decode_cursor(&next).expect("a cursor")),
            ..query
        };
        let (second, next) = query.page(items.clone(), |s| s.clone());
        assert_eq!(second, ["c", "d"]);
        let query = ListQuery {
            after: Some(decode_cursor(&next.expect("more")).expect("a cursor")),
            ..query
        };
        let (last, next) = query.page(items, |s| s.clone());
        assert_eq!(last, ["e"]);
        assert_eq!(next, None);
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor("c0").is_err());
    }
}
