//! The registry: what departments and townships change while the gateway runs —
//! connectors and their versions, policy files and purpose files (the purpose
//! catalog) applied with `gateway apply`, grants made by approving access requests,
//! the requests themselves, and townships' corrections of departments' values
//! (数据纠错, [`Correction`]).
//!
//! The registry sits behind the small [`Registry`] trait (the embedded SQLite file
//! [`SqliteRegistry`] on one machine; [`PgRegistry`] on PostgreSQL, for many replicas). Every write
//! is one [`Change`] list committed atomically against the revision it was checked
//! against, so a change validated by loading the whole configuration cannot race
//! another writer (another request, or `gateway apply` from the command line). The
//! running gateway builds its configuration from the files named in `gateway.yaml`
//! plus a [`Snapshot`] of the registry (see [`crate::config`]), and swaps it in
//! whole ([`crate::live`]).
//!
//! Objects have an [`Origin`]: those that came from files (`gateway apply`) are
//! edited only by editing the files and applying them again; the API refuses them.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

mod common;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use postgres::PgRegistry;
pub use sqlite::{REGISTRY_FILE, SqliteRegistry};

/// Where a registry object came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Made through the admin API.
    Api,
    /// Imported by `gateway apply` from this file (relative to the applied directory).
    File {
        #[schema(example = "connectors/hukou.yaml")]
        path: String,
    },
}

impl Origin {
    pub fn is_file(&self) -> bool {
        matches!(self, Origin::File { .. })
    }

    /// For messages: `the API` or `file connectors/hukou.yaml`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Api => "the API".to_owned(),
            Origin::File { path } => format!("file {path}"),
        }
    }
}

/// One version of a connector: its definition and the schemas its operations name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorVersion {
    pub id: String,
    /// 1, 2, …; a new one for every change of definition or schemas.
    pub version: u32,
    /// The owning department's id (from the definition).
    pub department: String,
    /// The definition as YAML (JSON is YAML too).
    pub definition: String,
    /// Schema path as the definition names it (e.g. `hukou/person.schema.json`) →
    /// the schema's JSON text.
    pub schemas: BTreeMap<String, String>,
    pub origin: Origin,
    /// RFC 3339.
    pub created_at: String,
    /// The user (or `gateway apply`) that made this version.
    pub created_by: String,
    /// The data-governance review of a version that loosens the county's
    /// classification ([`crate::classification`]); `None` when it needed none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// When the version last went into force (RFC 3339); `None` for a draft that
    /// never served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
}

/// The data-governance office's review of a connector version that loosens the
/// county's classification. Until it is approved, the version does not serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    pub state: ReviewState,
    /// The version in force when this one was proposed (`None`: the connector was
    /// new). An approval is refused once another version is in force.
    pub base_version: Option<u32>,
    /// Every field the version loosens.
    pub loosenings: Vec<crate::classification::Loosening>,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    /// The reviewer's note (a refusal's reason).
    pub note: Option<String>,
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Waiting for the data-governance office.
    Pending,
    /// Approved: the version went into force.
    Approved,
    Refused,
    /// A later version of the connector was proposed or put in force first.
    Superseded,
}

impl ConnectorVersion {
    /// Whether two versions say the same thing (definition and schemas).
    pub fn same_content(&self, other: &ConnectorVersion) -> bool {
        self.definition == other.definition && self.schemas == other.schemas
    }

    /// A short digest of the definition and schemas, for audit records and version
    /// lists: equal content, equal digest.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut hash = Sha256::new();
        for text in std::iter::once(&self.definition).chain(self.schemas.values()) {
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        hash.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A connector in the registry: its current version and whether it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredConnector {
    pub current: ConnectorVersion,
    pub enabled: bool,
}

/// A file imported by `gateway apply`: a policy file (grants and deny rules) or a
/// purpose file (entries of the purpose catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFileRecord {
    /// Relative to the applied directory, e.g. `policies/hukou.yaml` or
    /// `purposes.yaml`.
    pub path: String,
    pub text: String,
}

/// Why a grant stopped being in force before its validity ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// A grant made through the API (by approving an access request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The rule id, e.g. `ar-0193…`.
    pub id: String,
    /// The department that granted it (the connector's owner).
    pub department: String,
    pub connector: String,
    /// The township it was granted to.
    pub township: String,
    /// A policy file holding exactly this grant, as YAML.
    pub policy: String,
    /// The access request it came from.
    pub request_id: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked: Option<Revocation>,
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Refused,
    /// Withdrawn by its township before a decision.
    Withdrawn,
}

/// A township's request for fields of a connector, for a purpose (乡镇"点菜").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub township: String,
    /// The township lead who asked.
    pub requested_by: String,
    pub connector: String,
    /// The connector's department, which decides.
    pub department: String,
    pub operations: Vec<String>,
    pub purposes: Vec<String>,
    /// Leaf field path → requested mask (`default` or a mask), as JSON.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The roles of the township that would use the grant (e.g. `clerk`).
    pub roles: Vec<String>,
    pub justification: String,
    /// The last day the grant is wanted for, if the township says.
    pub valid_until: Option<String>,
    pub created_at: String,
    /// The day by which the department should answer (working days from creation).
    pub deadline: String,
    pub state: RequestState,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    /// A refusal's reason, or the approver's note.
    pub decision_note: Option<String>,
    /// The grant an approval made.
    pub grant_id: Option<String>,
}

/// Where a correction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionState {
    /// Waiting for the owning department.
    Open,
    /// The department corrected its own system.
    Accepted,
    /// The department holds its value right (with its reason).
    Rejected,
}

impl CorrectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionState::Open => "open",
            CorrectionState::Accepted => "accepted",
            CorrectionState::Rejected => "rejected",
        }
    }
}

/// What a citizen states about a wrong value: personal data, kept in columns of
/// their own (never in the correction's JSON body) so that retention can erase them
/// (overwrite them with NULL) and leave the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stated {
    /// The value the citizen states.
    pub value: String,
    /// The clerk's note (may be empty).
    pub note: String,
}

/// A township's report that a department's value is wrong (数据纠错), routed to the
/// connector's owning department. The subject is kept as its pseudonym and masked
/// form only; what the citizen states is [`Correction::stated`] until erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// `cr-` and a UUIDv7 in lowercase hex.
    pub id: String,
    pub connector: String,
    /// The connector's department when filed, which answers.
    pub department: String,
    pub operation: String,
    /// The leaf path of the value said to be wrong (`name`, `address.village_code`).
    pub field: String,
    pub subject_pseudonym: String,
    pub subject_masked: String,
    pub case_id: String,
    /// Where the evidence is (a document's reference; free text, no personal numbers).
    pub evidence: String,
    /// The township that filed it, and who.
    pub township: String,
    pub filed_by: String,
    pub created_at: String,
    /// The day by which the department should answer (working days from filing).
    pub deadline: String,
    pub state: CorrectionState,
    pub answered_at: Option<String>,
    pub answered_by: Option<String>,
    /// A rejection's reason (or an acceptance's note), in the department's words.
    pub reason: Option<String>,
    /// When retention erased what the citizen stated.
    pub erased_at: Option<String>,
    /// What the citizen stated; `None` once erased. Never in the JSON body.
    #[serde(skip)]
    pub stated: Option<Stated>,
}

/// What the running configuration is built from, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub revision: u64,
    /// Every registered connector (disabled ones too), by id.
    pub connectors: BTreeMap<String, RegisteredConnector>,
    /// Applied policy files, by path.
    pub policy_files: BTreeMap<String, PolicyFileRecord>,
    /// Applied purpose files (more purposes for the catalog), by path.
    pub purpose_files: BTreeMap<String, PolicyFileRecord>,
    /// Grants made through the API that are not revoked, by id.
    pub grants: BTreeMap<String, GrantRecord>,
}

/// Everything a registry holds, as read through [`Registry`], to move a county to
/// another store (`gateway migrate-store`): versions keep their numbers, reviews and
/// activation times, grants and requests their order, and the revision its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCopy {
    pub revision: u64,
    /// Every version of every connector (removed connectors' too), by id and number.
    pub versions: Vec<ConnectorVersion>,
    /// The registered connectors: id, the version in force, whether it serves.
    pub connectors: Vec<(String, u32, bool)>,
    pub policy_files: Vec<PolicyFileRecord>,
    pub purpose_files: Vec<PolicyFileRecord>,
    /// Every grant made through the API, revoked ones too, oldest first.
    pub grants: Vec<GrantRecord>,
    /// Every access request, oldest first.
    pub requests: Vec<AccessRequest>,
    /// Every correction, oldest first, with what is left of its personal data.
    pub corrections: Vec<Correction>,
}

impl RegistryCopy {
    /// Reads everything `registry` holds. The parts are read one after another: copy
    /// from a registry nobody changes meanwhile (a stopped gateway's).
    pub async fn read(registry: &dyn Registry) -> Result<RegistryCopy, RegistryError> {
        let snapshot = registry.snapshot().await?;
        Ok(RegistryCopy {
            revision: snapshot.revision,
            versions: registry.all_versions().await?,
            connectors: snapshot
                .connectors
                .values()
                .map(|c| (c.current.id.clone(), c.current.version, c.enabled))
                .collect(),
            policy_files: snapshot.policy_files.into_values().collect(),
            purpose_files: snapshot.purpose_files.into_values().collect(),
            grants: registry.grants().await?,
            requests: registry.access_requests().await?,
            corrections: registry.corrections().await?,
        })
    }
}

/// One write to the registry. A list of them is committed atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new version of a connector (registered if new), enabled. A definition and
    /// schemas equal to the current version's make no new version.
    PutConnector(ConnectorVersion),
    /// Serves a connector, or stops serving it (its versions are kept).
    SetConnectorEnabled {
        id: String,
        enabled: bool,
    },
    /// A draft: a new version kept without serving (numbered by the registry). One
    /// that loosens the classification carries a pending `review`. Earlier versions
    /// of the connector still pending review are superseded.
    SaveDraft(ConnectorVersion),
    /// Puts a stored version (same id, number and content) in force, enabled: a
    /// draft's activation or a rollback to an earlier version. Refused with
    /// [`RegistryError::Decided`] if its review is pending, refused or superseded.
    ActivateVersion(ConnectorVersion),
    /// Records the review of a proposed version (same id and version number, with
    /// the review decided); an approved one goes into force, enabled. Refused with
    /// [`RegistryError::Decided`] if the review is no longer pending or another
    /// version went into force since the proposal.
    DecideReview(ConnectorVersion),
    /// Forgets a file-managed connector that its directory no longer holds (its
    /// versions are kept for the record).
    RemoveConnector {
        id: String,
    },
    PutPolicyFile(PolicyFileRecord),
    RemovePolicyFile {
        path: String,
    },
    PutPurposeFile(PolicyFileRecord),
    RemovePurposeFile {
        path: String,
    },
    AddGrant(GrantRecord),
    RevokeGrant {
        id: String,
        revocation: Revocation,
    },
    AddRequest(AccessRequest),
    /// Replaces a request with its decided form (same id).
    DecideRequest(AccessRequest),
    /// A new correction, open, with what the citizen stated.
    AddCorrection(Correction),
    /// Replaces an open correction with its answered form (same id; what the citizen
    /// stated is kept). Refused with [`RegistryError::Decided`] once answered.
    AnswerCorrection(Correction),
    /// Erases what the citizen stated in a correction (NULL), noting when. Refused
    /// with [`RegistryError::Decided`] if already erased.
    EraseCorrection {
        id: String,
        at: String,
    },
}

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The store behind the registry failed (the backend's own message, e.g.
    /// SQLite's).
    #[error("{0}")]
    Backend(String),
    #[error("a stored registry row cannot be read: {0}")]
    Corrupt(String),
    #[error("the registry changed (now at revision {found}, expected {expected}); try again")]
    Conflict { expected: u64, found: u64 },
    #[error("the change names something the registry does not hold: {0}")]
    Missing(String),
    #[error("{0}")]
    Decided(String),
    #[error("the registry's schema version {found} is newer than this gateway knows ({known})")]
    TooNew { found: u32, known: u32 },
    #[error("the registry task failed: {0}")]
    Task(String),
}

/// The registry's storage.
pub trait Registry: Send + Sync + std::fmt::Debug + 'static {
    /// The current revision (0 for an empty registry); it grows with every commit.
    fn revision(&self) -> BoxFuture<'_, Result<u64, RegistryError>>;
    /// Change notifications: the current revision first, then every new revision
    /// seen (a failure to read it is an item too; the stream goes on). The stream
    /// holds the registry weakly and ends once the registry is dropped.
    ///
    /// The default polls [`Registry::revision`] every `every`; a backend that can be
    /// told of commits (PostgreSQL's `LISTEN`) answers sooner.
    fn watch(self: Arc<Self>, every: Duration) -> BoxStream<'static, Result<u64, RegistryError>> {
        let registry = Arc::downgrade(&self);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Box::pin(futures::stream::unfold(
            (registry, None, tick),
            |(registry, mut seen, mut tick)| async move {
                loop {
                    tick.tick().await;
                    let revision = registry.upgrade()?.revision().await;
                    match revision {
                        Ok(revision) if seen == Some(revision) => continue,
                        Ok(revision) => seen = Some(revision),
                        Err(_) => {}
                    }
                    return Some((revision, (registry, seen, tick)));
                }
            },
        ))
    }
    /// Proves the registry can be read right now (for `/readyz`); by default, by
    /// reading the revision.
    fn ready(&self) -> BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(async move { self.revision().await.map(|_| ()) })
    }
    /// Everything the configuration is built from, at one revision.
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, RegistryError>>;
    /// Applies `changes` in one transaction if the registry is still at `expected`;
    /// returns the new revision. Fails with [`RegistryError::Conflict`] otherwise.
    fn commit(
        &self,
        expected: u64,
        changes: Vec<Change>,
    ) -> BoxFuture<'_, Result<u64, RegistryError>>;
    /// Every version of a connector, oldest first (empty if it was never registered).
    fn connector_versions(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>>;
    /// Every version of every connector, by connector id and version.
    fn all_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>>;
    /// Every connector version that needed a classification review, in any state,
    /// by connector id and version.
    fn reviewed_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>>;
    /// Every access request, oldest first.
    fn access_requests(&self) -> BoxFuture<'_, Result<Vec<AccessRequest>, RegistryError>>;
    /// Every grant made through the API, revoked ones too, oldest first.
    fn grants(&self) -> BoxFuture<'_, Result<Vec<GrantRecord>, RegistryError>>;
    /// Every correction, oldest first, with what is left of its personal data.
    fn corrections(&self) -> BoxFuture<'_, Result<Vec<Correction>, RegistryError>>;
}

impl Snapshot {
    /// The snapshot `changes` would make, as [`Registry::commit`] applies them (the
    /// revision is not advanced), so a change can be checked by loading the
    /// configuration it would give before it is committed.
    pub fn with(&self, changes: &[Change]) -> Result<Snapshot, RegistryError> {
        let mut next = self.clone();
        for change in changes {
            match change {
                Change::PutConnector(v) => match next.connectors.get_mut(&v.id) {
                    Some(c) if c.current.same_content(v) => c.enabled = true,
                    Some(c) => {
                        let version = c.current.version + 1;
                        c.current = ConnectorVersion {
                            version,
                            ..v.clone()
                        };
                        c.enabled = true;
                    }
                    None => {
                        next.connectors.insert(
                            v.id.clone(),
                            RegisteredConnector {
                                current: ConnectorVersion {
                                    version: v.version.max(1),
                                    ..v.clone()
                                },
                                enabled: true,
                            },
                        );
                    }
                },
                Change::SaveDraft(_) => {}
                Change::ActivateVersion(v) => {
                    next.connectors.insert(
                        v.id.clone(),
                        RegisteredConnector {
                            current: v.clone(),
                            enabled: true,
                        },
                    );
                }
                Change::DecideReview(v) => {
                    if v.review.as_ref().map(|r| r.state) == Some(ReviewState::Approved) {
                        next.connectors.insert(
                            v.id.clone(),
                            RegisteredConnector {
                                current: v.clone(),
                                enabled: true,
                            },
                        );
                    }
                }
                Change::SetConnectorEnabled { id, enabled } => {
                    next.connectors
                        .get_mut(id)
                        .ok_or_else(|| RegistryError::Missing(format!("connector `{id}`")))?
                        .enabled = *enabled;
                }
                Change::RemoveConnector { id } => {
                    next.connectors.remove(id);
                }
                Change::PutPolicyFile(file) => {
                    next.policy_files.insert(file.path.clone(), file.clone());
                }
                Change::RemovePolicyFile { path } => {
                    next.policy_files.remove(path);
                }
                Change::PutPurposeFile(file) => {
                    next.purpose_files.insert(file.path.clone(), file.clone());
                }
                Change::RemovePurposeFile { path } => {
                    next.purpose_files.remove(path);
                }
                Change::AddGrant(grant) => {
                    next.grants.insert(grant.id.clone(), grant.clone());
                }
                Change::RevokeGrant { id, .. } => {
                    next.grants.remove(id);
                }
                Change::AddRequest(_)
                | Change::DecideRequest(_)
                | Change::AddCorrection(_)
                | Change::AnswerCorrection(_)
                | Change::EraseCorrection { .. } => {}
            }
        }
        Ok(next)
    }

    /// The snapshot `changes` would make if every draft they save were put in force:
    /// a draft is checked like a change in force before it is kept.
    pub fn as_proposed(&self, changes: &[Change]) -> Result<Snapshot, RegistryError> {
        let changes: Vec<Change> = changes
            .iter()
            .map(|change| match change {
                Change::SaveDraft(v) => Change::PutConnector(v.clone()),
                other => other.clone(),
            })
            .collect();
        self.with(&changes)
    }
}
