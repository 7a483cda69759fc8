//! Listing and showing the corrections a caller may see, and the owning department's
//! answer: accept (the cached records of the person on the connector are dropped on
//! every replica) or reject with a reason.

use serde::Deserialize;

use super::*;
use crate::admin::registry_unavailable;
use crate::app::App;
use crate::registry::Change;

/// Answers run one at a time in this process, so two admins answering the same
/// correction at once cannot both succeed (the registry refuses the second anyway).
static ANSWERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `POST /v1/corrections/{id}/accept` and `…/reject`: the department's words.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CorrectionAnswer)]
pub struct AnswerBody {
    /// Why the department holds its value right (required to reject), or a note on
    /// the acceptance: free text without ID numbers or phone numbers, at most 2000
    /// characters.
    #[serde(default)]
    #[schema(example = "经核对户籍档案，原登记无误。")]
    pub reason: Option<String>,
}

/// The corrections the caller may see, in queue order (open first, oldest first):
/// their department's (its admin) or their township's (its lookup roles).
pub async fn list(app: &App, who: &Who) -> Result<Vec<Correction>, Problem> {
    if !may_list(&who.caller) {
        return Err(not_listed().for_request(&who.request_id));
    }
    let mut visible: Vec<Correction> = app
        .live
        .registry()
        .corrections()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?
        .into_iter()
        .filter(|c| super::visible(&who.caller, c))
        .collect();
    queue_order(&mut visible);
    Ok(visible)
}

/// One correction the caller may see; another township's or department's is unknown
/// (404), as if it did not exist.
pub async fn show(app: &App, who: &Who, id: &str) -> Result<Correction, Problem> {
    list(app, who)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| unknown().for_request(&who.request_id))
}

/// The department's admin accepts: the department has corrected its own system. The
/// cached records of the person on the connector are dropped here and on every other
/// replica, so the next lookup reads the corrected record.
pub async fn accept(
    app: &App,
    who: &Who,
    id: &str,
    body: Result<AnswerBody, Problem>,
) -> Result<Correction, Problem> {
    let (mut act, note) = begin(app, who, id, "accept", body, false).await?;
    let _one_at_a_time = ANSWERS.lock().await;
    let open = answerable(app, who, id, &mut act).await?;
    let config = app.config.load_full();
    let dropped = match config
        .connectors
        .get(&open.connector)
        .and_then(|c| c.cache.as_ref())
    {
        Some(cache) => {
            let key = app.pseudonym.clone();
            let dropped = cache
                .purge_subject(|s| key.pseudonym(s), &open.subject_pseudonym)
                .await;
            crate::cluster::announce_subject_purge(
                &app.storage,
                &open.connector,
                &open.subject_pseudonym,
            )
            .await;
            dropped
        }
        None => 0,
    };
    let accepted = Correction {
        state: CorrectionState::Accepted,
        answered_at: Some(app.clock.now_rfc3339()),
        answered_by: Some(who.caller.user.clone()),
        reason: note,
        ..open
    };
    act.event.operation = Some(format!(
        "{} cache_purged={dropped}",
        event_operation("accepted", &accepted)
    ));
    act.commit(vec![Change::AnswerCorrection(accepted.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, "correction" = %accepted.id, "dropped" = dropped, "correction accepted");
    Ok(accepted)
}

/// The department's admin rejects, saying why.
pub async fn reject(
    app: &App,
    who: &Who,
    id: &str,
    body: Result<AnswerBody, Problem>,
) -> Result<Correction, Problem> {
    let (mut act, reason) = begin(app, who, id, "reject", body, true).await?;
    let _one_at_a_time = ANSWERS.lock().await;
    let open = answerable(app, who, id, &mut act).await?;
    let rejected = Correction {
        state: CorrectionState::Rejected,
        answered_at: Some(app.clock.now_rfc3339()),
        answered_by: Some(who.caller.user.clone()),
        reason,
        ..open
    };
    act.event.operation = Some(event_operation("rejected", &rejected));
    act.commit(vec![Change::AnswerCorrection(rejected.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, "correction" = %rejected.id, "correction rejected");
    Ok(rejected)
}

/// The open correction `id` that the caller's department answers; a refusal is
/// recorded (with `act`'s event) and is the answer. Anyone but the owning
/// department's admin finds no such correction (404); an answered one is 409.
/// The start of an answer (`verb`: accept or reject): its admin event begun and the
/// department's words checked (`required` for a rejection); a bad body is refused
/// and audited.
async fn begin(
    app: &App,
    who: &Who,
    id: &str,
    verb: &str,
    body: Result<AnswerBody, Problem>,
    required: bool,
) -> Result<(crate::action::Action, Option<String>), Problem> {
    let act = who.start(
        app,
        &format!("correction.{verb} {}", crate::admin::short(id)),
    );
    let body = match body {
        Ok(body) => body,
        Err(p) => return Err(act.refuse(p).await),
    };
    match crate::action::reason(body.reason.as_deref(), required) {
        Ok(words) => Ok((act, words)),
        Err(p) => Err(act.refuse(p).await),
    }
}

async fn answerable(
    app: &App,
    who: &Who,
    id: &str,
    act: &mut crate::action::Action,
) -> Result<Correction, Problem> {
    let all = app
        .live
        .registry()
        .corrections()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let problem = match all
        .into_iter()
        .find(|c| c.id == id && answers(&who.caller, c))
    {
        None => unknown(),
        Some(c) => {
            act.event.connector = Some(c.connector.clone());
            act.event.subject_pseudonym = Some(c.subject_pseudonym.clone());
            act.event.subject_masked = Some(c.subject_masked.clone());
            act.event.case_id = Some(c.case_id.clone());
            if c.state == CorrectionState::Open {
                return Ok(c);
            }
            Problem::new(
                ProblemKind::AlreadyDecided,
                "The correction was already answered.",
            )
            .with("state", c.state.as_str())
        }
    };
    Err(act.refuse_now(problem).await)
}
