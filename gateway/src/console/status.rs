//! The operator's status page: readiness, the configuration in force (version, when
//! it was built, from which files and registry revision), the audit log's newest
//! event and checkpoint, whether each department's systems take a connection, and
//! the link to `/metrics`. Read from [`crate::status::status`], as `/readyz` reads
//! its readiness.

use askama::Template;
use axum::response::Response;

use super::page::{Chrome, Visit};
use crate::auth::Role;

/// Who reads the status page.
pub const STATUS_ROLES: &[Role] = &[Role::Operator];

struct ReachRow {
    department: String,
    name: String,
    reachable: usize,
    upstreams: usize,
}

#[derive(Template)]
#[template(path = "console/status.html")]
struct StatusPage {
    chrome: Chrome,
    ready: bool,
    not_ready: String,
    config_version: String,
    loaded_at: String,
    files: Vec<String>,
    registry_revision: u64,
    connectors: usize,
    disabled: usize,
    last_seq: String,
    last_time: String,
    checkpoint_seq: String,
    uncovered: String,
    departments: Vec<ReachRow>,
}

/// `/console/status`.
pub(crate) async fn show(visit: Visit) -> Response {
    if let Err(response) = visit.require(STATUS_ROLES) {
        return *response;
    }
    let t = visit.t;
    let status = crate::status::status(&visit.console.app).await;
    let unknown = || t.get("status-unknown");
    let number = |n: Option<u64>| n.map_or_else(unknown, |n| n.to_string());
    let not_ready = status
        .not_ready
        .iter()
        .map(|part| {
            t.maybe(&format!("status-part-{part}"))
                .unwrap_or_else(|| (*part).to_owned())
        })
        .collect::<Vec<_>>()
        .join(&t.get("list-sep"));
    visit.respond(&StatusPage {
        chrome: visit.chrome("/console/status"),
        ready: status.not_ready.is_empty(),
        not_ready,
        config_version: status.config_version,
        loaded_at: status.loaded_at,
        files: status.files,
        registry_revision: status.registry_revision,
        connectors: status.connectors,
        disabled: status.disabled,
        last_seq: number(status.audit.last_seq),
        last_time: status.audit.last_time.unwrap_or_else(unknown),
        checkpoint_seq: number(status.audit.checkpoint_seq),
        uncovered: number(status.audit.uncovered),
        departments: status
            .departments
            .into_iter()
            .map(|r| ReachRow {
                department: r.department,
                name: r.name,
                reachable: r.reachable,
                upstreams: r.upstreams,
            })
            .collect(),
    })
}
