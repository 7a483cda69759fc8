//! One helper for every admin action (connectors, drafts, reviews, access requests,
//! grants), whichever front end asks for it: the action's audit event is started
//! with the request, and recorded exactly once whatever happens — refused or failed
//! before changing anything ([`Action::refuse`]), committed with the change it makes
//! ([`Action::commit`]), or done without a change ([`Action::record`]). If even
//! that record cannot be made, the problem is `audit-unavailable` (503) and nothing
//! else.

use std::net::SocketAddr;

use serde_json::json;

use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent, AuditOutcome};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemKind};

/// Who asks for an action, whichever front end they came through: the request's id,
/// the signed-in caller and the peer's address (for the audit event).
#[derive(Debug, Clone)]
pub struct Who {
    pub request_id: String,
    pub caller: std::sync::Arc<Caller>,
    pub peer: Option<SocketAddr>,
}

impl Who {
    /// Starts `operation` for this person (see [`Action::start`]).
    pub fn start(&self, app: &App, operation: &str) -> Action {
        Action::start(app, &self.request_id, &self.caller, self.peer, operation)
    }
}

/// An admin action under way, with the audit event that will record it.
#[derive(Debug)]
pub struct Action {
    app: App,
    request_id: String,
    /// What the audit log will say about the action; steps add what they learn.
    pub event: AuditEvent,
}

impl Action {
    /// Starts `operation` (ids only, never personal data) for `caller`.
    pub fn start(
        app: &App,
        request_id: &str,
        caller: &Caller,
        peer: Option<SocketAddr>,
        operation: &str,
    ) -> Action {
        Action {
            app: app.clone(),
            request_id: request_id.to_owned(),
            event: AuditEvent::admin(request_id, AuditCaller::of(caller, peer), operation),
        }
    }

    /// Records the action as refused (or failed before changing anything); the
    /// problem to answer with is `problem`, or `audit-unavailable` when even the
    /// refusal could not be recorded.
    pub async fn refuse(self, problem: Problem) -> Problem {
        let mut event = self.event;
        event.outcome = AuditOutcome {
            status: problem.kind.status().as_u16(),
            problem: Some(problem.kind.slug().to_owned()),
        };
        if let Err(e) = self.app.audit.append(event).await {
            return audit_unavailable(&self.request_id, &e);
        }
        problem.for_request(&self.request_id)
    }

    /// Records a refusal now, leaving this action's event as it is (for a check that
    /// ends the handler on failure).
    pub async fn refuse_now(&self, problem: Problem) -> Problem {
        Action {
            app: self.app.clone(),
            request_id: self.request_id.clone(),
            event: self.event.clone(),
        }
        .refuse(problem)
        .await
    }

    /// Records the action as it stands (its outcome already set), without a change.
    pub async fn record(self) -> Result<(), Problem> {
        self.app
            .audit
            .append(self.event)
            .await
            .map(|_| ())
            .map_err(|e| audit_unavailable(&self.request_id, &e))
    }

    /// Checks, records, commits and puts in force `changes`; a failure is the
    /// problem to answer with (recorded as a refusal). An invalid change lists every
    /// configuration problem, naming registry objects by their place under
    /// `/@registry/`.
    pub async fn commit(
        self,
        changes: Vec<crate::registry::Change>,
    ) -> Result<crate::live::Changed, Problem> {
        use crate::live::ChangeError;
        use crate::registry::RegistryError;
        // The refusal is an event of its own: the change's event may be in the log
        // already (the registry failed after it was recorded), and the log must say
        // the change did not happen, not refuse a second copy of that event.
        let mut refusal = self.event.clone();
        refusal.event_id = uuid::Uuid::now_v7().to_string();
        let problem = match self.app.change(changes, self.event).await {
            Ok(changed) => return Ok(changed),
            Err(ChangeError::Invalid(problems)) => {
                let list: Vec<serde_json::Value> = problems
                    .iter()
                    .map(|p| {
                        json!({
                            "file": p.file.display().to_string(),
                            "path": p.path,
                            "message": p.message,
                        })
                    })
                    .collect();
                Problem::new(
                    ProblemKind::InvalidConfig,
                    format!(
                        "The change would make {} configuration problem(s); nothing was changed.",
                        list.len()
                    ),
                )
                .with("problems", list)
            }
            Err(ChangeError::Audit(e)) => {
                return Err(audit_unavailable(&self.request_id, &e));
            }
            Err(ChangeError::Registry(RegistryError::Decided(why))) => Problem::new(
                ProblemKind::AlreadyDecided,
                format!("{why}; nothing was changed."),
            ),
            Err(ChangeError::TooSlow) => Problem::new(
                ProblemKind::ConfigCheckTooSlow,
                "The change could not be checked in time; nothing was changed.",
            ),
            Err(ChangeError::Registry(RegistryError::Conflict { .. })) => Problem::new(
                ProblemKind::RegistryConflict,
                "The registry changed meanwhile; nothing was changed. Send the request again.",
            ),
            Err(e) => {
                tracing::error!(request_id = %self.request_id, error = %e, "a registry change failed");
                Problem::new(
                    ProblemKind::RegistryUnavailable,
                    "The registry could not be changed; nothing was changed.",
                )
            }
        };
        Err(Action {
            event: refusal,
            ..self
        }
        .refuse(problem)
        .await)
    }
}

/// The problem when the audit log cannot record an action: 503 and nothing else (the
/// cause goes to the log).
pub fn audit_unavailable(request_id: &str, error: &dyn std::fmt::Display) -> Problem {
    tracing::error!(request_id, error = %error, "the audit log could not record a request; nothing was returned");
    Problem::new(
        ProblemKind::AuditUnavailable,
        "The audit log could not record this request, so nothing was returned.",
    )
    .for_request(request_id)
}

/// A reason for an admin change as the audit event keeps it: checked free text
/// ([`crate::text::free_text`]: no control characters, no ID numbers or phone
/// numbers), at most [`crate::audit::MAX_REASON_CHARS`] characters. `required` says
/// whether an empty reason is refused.
pub fn reason(text: Option<&str>, required: bool) -> Result<Option<String>, Problem> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() && !required {
        return Ok(None);
    }
    match crate::text::free_text(text, crate::audit::MAX_REASON_CHARS, true) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let why = match e {
                crate::text::TextError::Empty => "say why".to_owned(),
                e => e.to_string(),
            };
            Err(Problem::new(
                ProblemKind::InvalidRequest,
                format!("The reason is not accepted: {why}."),
            )
            .with("at", "reason"))
        }
    }
}
