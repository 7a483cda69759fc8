//! What the registry's backends (SQLite, PostgreSQL) share: the checks a change
//! passes inside a commit — the revision it was validated against, version numbers,
//! activation, review decisions, revocations, request decisions — so both refuse the
//! same changes with the same errors, the decoding of a stored connector version, and
//! the JSON encoding of stored bodies. The backends keep only their SQL.

use std::collections::BTreeMap;

use super::{
    AccessRequest, ConnectorVersion, GrantRecord, Origin, RegistryError, RequestState, Review,
    ReviewState, Revocation,
};

/// The revision a commit validated against `expected` makes, when the registry is at
/// `found`: a [`RegistryError::Conflict`] if another commit came first.
pub(super) fn next_revision(expected: u64, found: u64) -> Result<u64, RegistryError> {
    if found != expected {
        return Err(RegistryError::Conflict { expected, found });
    }
    found
        .checked_add(1)
        .ok_or_else(|| RegistryError::Corrupt("the revision is exhausted".into()))
}

/// The number of connector `id`'s next version, after `last` (0: none yet).
pub(super) fn next_version(id: &str, last: i64) -> Result<i64, RegistryError> {
    last.checked_add(1)
        .filter(|next| u32::try_from(*next).is_ok())
        .ok_or_else(|| {
            RegistryError::Corrupt(format!("connector `{id}` has no version number left"))
        })
}

/// The error for a version a change names that is not stored.
pub(super) fn missing_version(id: &str, number: i64) -> RegistryError {
    RegistryError::Missing(format!("connector `{id}` version {number}"))
}

/// Checks that `version` may go into force as the stored version `stored` (the same
/// content, approved if it needed a review); returns when it goes into force.
pub(super) fn activation(
    stored: &ConnectorVersion,
    version: &ConnectorVersion,
) -> Result<String, RegistryError> {
    let (id, number) = (&version.id, version.version);
    if !stored.same_content(version) {
        return Err(RegistryError::Corrupt(format!(
            "connector `{id}` version {number} is stored with other content"
        )));
    }
    if let Some(review) = &stored.review
        && review.state != ReviewState::Approved
    {
        return Err(RegistryError::Decided(format!(
            "connector `{id}` version {number} is not approved by the classification review"
        )));
    }
    Ok(version
        .activated_at
        .clone()
        .unwrap_or_else(|| stored.created_at.clone()))
}

/// A review's decision, checked against the stored version and the version in force
/// (`current`).
#[derive(Debug)]
pub(super) struct ReviewDecision<'a> {
    /// The review to store.
    pub(super) decision: &'a Review,
    /// For an approval: when the version goes into force.
    pub(super) activated_at: Option<&'a str>,
}

/// Checks `decided` (a stored version with its review decided) against `stored`: the
/// review must still be pending and, for an approval, the version in force
/// (`current`) the one it was proposed over.
pub(super) fn review_decision<'a>(
    stored: &'a ConnectorVersion,
    decided: &'a ConnectorVersion,
    current: Option<i64>,
) -> Result<ReviewDecision<'a>, RegistryError> {
    let (id, number) = (&decided.id, decided.version);
    let Some(review) = stored.review.as_ref() else {
        return Err(RegistryError::Missing(format!(
            "a review of connector `{id}` version {number}"
        )));
    };
    if review.state != ReviewState::Pending {
        return Err(RegistryError::Decided(format!(
            "the review of connector `{id}` version {number} is already decided"
        )));
    }
    let decision = decided
        .review
        .as_ref()
        .ok_or_else(|| RegistryError::Corrupt("a review decision without a review".into()))?;
    if decision.state != ReviewState::Approved {
        return Ok(ReviewDecision {
            decision,
            activated_at: None,
        });
    }
    if current != review.base_version.map(i64::from) {
        return Err(RegistryError::Decided(format!(
            "connector `{id}` changed since version {number} was proposed; it must be proposed again"
        )));
    }
    Ok(ReviewDecision {
        decision,
        activated_at: Some(decision.decided_at.as_deref().unwrap_or(&stored.created_at)),
    })
}

/// The stored grant `id` revoked, unless it already is.
pub(super) fn revoked(
    mut grant: GrantRecord,
    revocation: Revocation,
) -> Result<GrantRecord, RegistryError> {
    if grant.revoked.is_some() {
        return Err(RegistryError::Decided(format!(
            "grant `{}` is already revoked",
            grant.id
        )));
    }
    grant.revoked = Some(revocation);
    Ok(grant)
}

/// Refuses to decide a stored request twice: another writer (another replica) may
/// have decided it since it was read.
pub(super) fn still_pending(stored: &AccessRequest) -> Result<(), RegistryError> {
    if stored.state != RequestState::Pending {
        return Err(RegistryError::Decided(format!(
            "access request `{}` is already decided",
            stored.id
        )));
    }
    Ok(())
}

/// Checks that a stored correction may be answered (it is still open).
pub(super) fn still_open(stored: &super::Correction) -> Result<(), RegistryError> {
    if stored.state != super::CorrectionState::Open {
        return Err(RegistryError::Decided(format!(
            "correction `{}` is already answered",
            stored.id
        )));
    }
    Ok(())
}

/// The stored correction `stored` with its personal data erased at `at`; refused if
/// it was erased before.
pub(super) fn erased(
    mut stored: super::Correction,
    at: String,
) -> Result<super::Correction, RegistryError> {
    if stored.erased_at.is_some() {
        return Err(RegistryError::Decided(format!(
            "correction `{}` is already erased",
            stored.id
        )));
    }
    stored.erased_at = Some(at);
    stored.stated = None;
    Ok(stored)
}

/// The error for adding a `kind` (grant, access request) whose id is taken.
pub(super) fn already_exists(kind: &str, id: &str) -> RegistryError {
    RegistryError::Corrupt(format!("{kind} `{id}` already exists"))
}

/// An `UPDATE` or `DELETE` that should have touched a row: [`RegistryError::Missing`]
/// naming `what` if it did not.
pub(super) fn require_one(
    touched: bool,
    what: impl FnOnce() -> String,
) -> Result<(), RegistryError> {
    if touched {
        Ok(())
    } else {
        Err(RegistryError::Missing(what()))
    }
}

/// The grants in force (not revoked), by id.
pub(super) fn in_force(grants: Vec<GrantRecord>) -> BTreeMap<String, GrantRecord> {
    grants
        .into_iter()
        .filter(|grant| grant.revoked.is_none())
        .map(|grant| (grant.id.clone(), grant))
        .collect()
}

/// A `connector_versions` row before its JSON columns are decoded (each backend
/// reads the columns, in this order, its own way).
#[derive(Debug)]
pub(super) struct RawVersion {
    pub(super) id: String,
    pub(super) version: i64,
    pub(super) department: String,
    pub(super) definition: String,
    pub(super) schemas: String,
    pub(super) origin: String,
    pub(super) created_at: String,
    pub(super) created_by: String,
    pub(super) review: Option<String>,
    pub(super) activated_at: Option<String>,
}

impl RawVersion {
    pub(super) fn decode(self) -> Result<ConnectorVersion, RegistryError> {
        let what = || format!("connector `{}` version {}", self.id, self.version);
        let version = u32::try_from(self.version)
            .map_err(|_| RegistryError::Corrupt(format!("{}: bad version number", what())))?;
        let schemas: BTreeMap<String, String> =
            from_json(&self.schemas, || format!("{}: schemas", what()))?;
        let origin: Origin = from_json(&self.origin, || format!("{}: origin", what()))?;
        let review = match &self.review {
            Some(text) => Some(from_json(text, || format!("{}: review", what()))?),
            None => None,
        };
        Ok(ConnectorVersion {
            id: self.id,
            version,
            department: self.department,
            definition: self.definition,
            schemas,
            origin,
            created_at: self.created_at,
            created_by: self.created_by,
            review,
            activated_at: self.activated_at,
        })
    }
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, RegistryError> {
    serde_json::to_string(value)
        .map_err(|e| RegistryError::Corrupt(format!("cannot encode a record: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, RegistryError> {
    serde_json::from_str(text).map_err(|e| RegistryError::Corrupt(format!("{}: {e}", what())))
}
