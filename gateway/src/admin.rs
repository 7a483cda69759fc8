//! Department and operator actions on the running gateway. So far: purging a
//! connector's record cache (`POST /v1/admin/connectors/{id}/cache/purge`), which the
//! connector's own department admin or an operator may do — for example after the
//! department corrected a record that must not be served stale. Every attempt, allowed
//! or not, is an admin event in the audit log.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::audit::{AuditCaller, AuditEvent, AuditOutcome};
use crate::auth::{Caller, Role};
use crate::problem::{Problem, ProblemKind};
use crate::server::{App, Authenticated, Peer, RequestId};

/// The rule named when a caller may not act on a connector.
const OWNER_RULE: &str = "connector-owner";

pub(crate) fn routes() -> Router<App> {
    Router::new().route("/v1/admin/connectors/{id}/cache/purge", post(purge_cache))
}

/// Whether `caller` may administer connectors of `department`: its own department
/// admin, or an operator.
pub(crate) fn may_administer(caller: &Caller, department: &str) -> bool {
    caller.has_role(Role::Operator)
        || (caller.has_role(Role::DeptAdmin) && caller.department.as_deref() == Some(department))
}

async fn purge_cache(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let config = app.config.load_full();
    let connector = config.connectors.get(&id);
    let answer = match connector {
        _ if !caller.has_role(Role::Operator) && !caller.has_role(Role::DeptAdmin) => {
            Err(Problem::new(
                ProblemKind::Forbidden,
                "Only department admins and operators administer connectors.",
            )
            .with("rule", OWNER_RULE)
            .with("reason", "role"))
        }
        None => Err(Problem::new(
            ProblemKind::UnknownConnector,
            "No connector with this id is configured.",
        )),
        Some(c) if !may_administer(&caller, &c.def.department.id) => Err(Problem::new(
            ProblemKind::Forbidden,
            "A department admin administers only their own department's connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role")),
        Some(c) => {
            let entries = match &c.cache {
                Some(cache) => {
                    let before = cache.stats().await.entries;
                    cache.purge();
                    Some(before)
                }
                None => None,
            };
            Ok(json!({
                "connector": c.def.id,
                "cache": if entries.is_some() { "purged" } else { "off" },
                "entries_purged": entries.unwrap_or(0),
            }))
        }
    };
    let mut event = AuditEvent::admin(
        &request_id,
        AuditCaller::of(&caller, peer),
        "connector.cache.purge",
    );
    // Only a connector id the gateway knows is recorded.
    event.connector = connector.map(|c| c.def.id.clone());
    if let Err(p) = &answer {
        event.outcome = AuditOutcome {
            status: p.kind.status().as_u16(),
            problem: Some(p.kind.slug().to_owned()),
        };
    }
    if let Err(e) = app.audit.append(event).await {
        return crate::server::audit_unavailable(&request_id, &e);
    }
    match answer {
        Ok(body) => {
            tracing::info!(request_id, user = %caller.user, connector = %id, "connector cache purged");
            axum::Json(body).into_response()
        }
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}
