//! Retention of what the citizen stated in a correction: kept while the correction is
//! open and `corrections.retention_days` days after its answer, then erased
//! (overwritten with NULL) — ids, pseudonym, state and answer stay, and so does the
//! audit trail, which never held the value. [`sweep`] is one pass at the app's
//! clock; [`spawn_sweeper`] runs it every [`SWEEP_EVERY`] beside the other background
//! tasks ([`crate::startup`]). With several replicas each sweeps; the registry
//! refuses a second erasure of the same correction, which is then skipped.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::app::App;
use crate::audit::{AuditCaller, AuditEvent};
use crate::live::ChangeError;
use crate::registry::{Change, RegistryError};

/// How often the sweeper looks for stated values past their retention.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whether what the citizen stated in `c` is past its retention at `now`: the
/// correction was answered more than `retention_days` days before, and the value is
/// still held.
pub fn erasable(c: &Correction, now: DateTime<Utc>, retention_days: u32) -> bool {
    if c.state == CorrectionState::Open || c.stated.is_none() || c.erased_at.is_some() {
        return false;
    }
    let Some(answered) = c
        .answered_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
    else {
        // An answer without a readable time: erase rather than keep forever.
        return true;
    };
    answered.with_timezone(&Utc) + chrono::Duration::days(i64::from(retention_days)) <= now
}

/// Erases what the citizen stated in every correction past its retention at the
/// app's clock, one audited change each (`correction.erased`, by the gateway).
/// Returns how many were erased.
pub async fn sweep(app: &App) -> Result<usize, ChangeError> {
    let now = app.clock.now();
    let retention_days = app.config.load().corrections.retention_days;
    let due: Vec<Correction> = app
        .live
        .registry()
        .corrections()
        .await?
        .into_iter()
        .filter(|c| erasable(c, now, retention_days))
        .collect();
    let mut erased = 0;
    for c in due {
        let request_id = uuid::Uuid::now_v7().to_string();
        let mut event = AuditEvent::admin(
            &request_id,
            AuditCaller::gateway(),
            &event_operation("erased", &c),
        );
        event.connector = Some(c.connector.clone());
        event.subject_pseudonym = Some(c.subject_pseudonym.clone());
        event.subject_masked = Some(c.subject_masked.clone());
        event.case_id = Some(c.case_id.clone());
        let change = Change::EraseCorrection {
            id: c.id.clone(),
            at: app.clock.now_rfc3339(),
        };
        match app.change(vec![change], event).await {
            Ok(_) => erased += 1,
            // Another replica erased it first.
            Err(ChangeError::Registry(RegistryError::Decided(_))) => {}
            Err(e) => return Err(e),
        }
    }
    if erased > 0 {
        tracing::info!(
            "erased" = erased,
            "stated values of answered corrections erased after retention"
        );
    }
    Ok(erased)
}

/// Runs [`sweep`] now and every [`SWEEP_EVERY`]; a failed pass is logged and tried
/// again at the next.
pub fn spawn_sweeper(app: &App) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&app).await {
                tracing::warn!(error = %e, "the correction retention sweep failed; trying again later");
            }
        }
    })
}
