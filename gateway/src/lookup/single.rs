//! One lookup as a person asks for it — connector, operation and purpose by name,
//! the subject's key and a case id — shared by `POST /v1/query` and the console's
//! single lookup, so both resolve, check and look up the same way. The caller's
//! own limits are taken first ([`admit`]), before the front end reads its input.
//!
//! Only names the gateway knows are recorded in the trail: a caller could put
//! anything, even an ID number, where a connector, operation or purpose should be.

use super::{
    Found, LookupError, Reach, Services, SubjectError, SubjectKeyValue, Target, Trail, lookup,
};
use crate::active::{ActiveConnector, ActiveOperation};
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::limits::Limited;
use crate::policy::Level;
use crate::problem::ProblemKind;
use crate::purpose::Purpose;

/// A lookup as asked. Its `Debug` leaves out the subject.
#[derive(Clone, Default)]
pub struct Ask {
    pub connector: String,
    pub operation: String,
    pub purpose: String,
    pub case_id: String,
    pub id_number: Option<String>,
    pub household_number: Option<String>,
}

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("connector", &self.connector)
            .field("operation", &self.operation)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// Why an asked lookup released nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// No connector with this id is configured.
    UnknownConnector,
    /// The connector has no operation with this name (its operations listed).
    UnknownOperation {
        connector: String,
        operations: Vec<String>,
    },
    /// The purpose is not in the catalog.
    UnknownPurpose,
    /// The case id or the subject's key is wrong.
    Subject(SubjectError),
    /// The lookup itself failed or was refused (also: the connector is switched off).
    Lookup(LookupError),
}

impl AskError {
    /// The problem type this failure answers with (and the audit log records).
    pub fn kind(&self) -> ProblemKind {
        match self {
            AskError::UnknownConnector => ProblemKind::UnknownConnector,
            AskError::UnknownOperation { .. } => ProblemKind::UnknownOperation,
            AskError::UnknownPurpose => ProblemKind::UnknownPurpose,
            AskError::Subject(SubjectError::IdNumber(_)) => ProblemKind::InvalidIdNumber,
            AskError::Subject(_) => ProblemKind::InvalidRequest,
            AskError::Lookup(error) => error.kind(),
        }
    }
}

/// An answered lookup and what it was resolved to.
#[derive(Debug)]
pub struct Answered<'c> {
    pub(crate) found: Found,
    pub connector: &'c ActiveConnector,
    pub operation: &'c str,
    pub purpose: &'c Purpose,
}

/// The caller's own limits for one department lookup.
pub async fn admit(services: Services<'_>, caller: &Caller) -> Result<(), Limited> {
    services
        .limits
        .check_caller(&caller.user, caller.township.as_deref(), 1)
        .await
}

/// A lookup resolved to what the configuration knows, its case id and subject key
/// checked.
#[derive(Debug)]
pub(crate) struct Resolved<'c> {
    pub(crate) connector: &'c ActiveConnector,
    pub(crate) operation: &'c str,
    pub(crate) op: &'c ActiveOperation,
    pub(crate) purpose: &'c Purpose,
    pub(crate) subject: SubjectKeyValue,
}

impl<'c> Resolved<'c> {
    /// The lookup's target at `level`, its subject asked for directly.
    pub(crate) fn target(&self, level: Level) -> Target<'c> {
        Target {
            connector: self.connector,
            operation: self.operation,
            op: self.op,
            purpose: self.purpose,
            reach: Reach::Direct,
            level,
        }
    }
}

/// Resolves `ask` against `config`: connector, operation, purpose, then the case id
/// and the subject's key, each recorded in `trail` once known to be safe to keep.
pub(crate) fn resolve<'c>(
    config: &'c ActiveConfig,
    ask: Ask,
    trail: &mut Trail,
) -> Result<Resolved<'c>, AskError> {
    let Some(connector) = config.connectors.get(&ask.connector) else {
        if config.disabled.contains_key(&ask.connector) {
            // Known to the gateway (so safe to name): switched off for now.
            return Err(AskError::Lookup(super::disabled(config, &ask.connector)));
        }
        return Err(AskError::UnknownConnector);
    };
    let Some((operation, op)) = connector.operations.get_key_value(&ask.operation) else {
        return Err(AskError::UnknownOperation {
            connector: connector.def.id.clone(),
            operations: connector.operations.keys().cloned().collect(),
        });
    };
    let purpose = config
        .purposes
        .get(&ask.purpose)
        .ok_or(AskError::UnknownPurpose)?;
    trail.connector = Some(connector.def.id.clone());
    trail.operation = Some(operation.clone());
    trail.purpose = Some(purpose.code.clone());
    // A case id that fails its checks is not recorded: it may carry an ID number.
    let case_id = super::check_case_id(&ask.case_id).map_err(AskError::Subject)?;
    trail.case_id = Some(case_id);
    let subject = super::subject_key(op.subject, ask.id_number, ask.household_number)
        .map_err(AskError::Subject)?;
    Ok(Resolved {
        connector,
        operation,
        op,
        purpose,
        subject,
    })
}

/// Resolves and runs the lookup `ask` for `caller`, filling `trail`.
pub(crate) async fn ask<'c>(
    services: Services<'_>,
    config: &'c ActiveConfig,
    caller: &Caller,
    ask: Ask,
    trail: &mut Trail,
) -> Result<Answered<'c>, AskError> {
    let resolved = resolve(config, ask, trail)?;
    let target = resolved.target(Level::Read);
    let found = lookup(
        services,
        config,
        caller,
        target,
        &resolved.subject,
        None,
        trail,
    )
    .await
    .map_err(AskError::Lookup)?;
    Ok(Answered {
        found,
        connector: resolved.connector,
        operation: resolved.operation,
        purpose: resolved.purpose,
    })
}
