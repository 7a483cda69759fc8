//! The wire shapes of the connector administration answers (the admin API, drafts
//! and reviews), for the API document. The handlers write these answers as JSON (the
//! members of the registry's types in the byte order of their names); these types say
//! what they hold, and the truthfulness test holds the answers to them. No member
//! beyond those listed. A few simple answers are written from these types
//! ([`Purged`], [`Switched`]).

#![allow(dead_code, reason = "schemas: only their shapes are used")]

use serde::Serialize;
use utoipa::ToSchema;

use crate::classification::{FieldChange, Loosening, OperationChange};
use crate::registry::{Origin, Review};

/// Where a connector's versions come from: `gateway.yaml`'s own files, or the
/// registry (made through the API, or imported from a file by `gateway apply`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ConnectorOrigin {
    MainFile(MainFile),
    Registry(Origin),
}

/// A connector `gateway.yaml` lists.
#[derive(Serialize, ToSchema)]
pub(crate) enum MainFile {
    #[serde(rename = "gateway.yaml")]
    GatewayYaml,
}

/// Where a version stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VersionState {
    /// In force.
    Active,
    /// Saved, never served.
    Draft,
    /// Loosens the county's classification; waits for the data-governance office.
    AwaitingReview,
    /// Its review was refused.
    Refused,
    /// A later version came first while it waited for review.
    Superseded,
    /// Served before.
    Previous,
}

/// What purging a connector's record cache did. (Members in the byte order of their
/// names, as `json!` wrote them.)
#[derive(Serialize, ToSchema)]
#[schema(as = CachePurged)]
pub(crate) struct Purged {
    /// `off`: the connector keeps no cache.
    #[schema(value_type = CacheState)]
    pub(crate) cache: &'static str,
    #[schema(example = "hukou")]
    pub(crate) connector: String,
    /// How many records were dropped.
    pub(crate) entries_purged: u64,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum CacheState {
    Purged,
    Off,
}

/// A connector switched on or off. (Members in the byte order of their names.)
#[derive(Serialize, ToSchema)]
pub(crate) struct Switched {
    /// The configuration's new version.
    pub(crate) config_version: String,
    pub(crate) connector: String,
    pub(crate) enabled: bool,
}

/// The connectors a caller administers, one page.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorList {
    connectors: Vec<ConnectorRow>,
    /// The `cursor` of the next page; `null` on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A connector as its administrators list it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorRow {
    #[schema(example = "hukou")]
    connector: String,
    #[schema(example = "county-psb")]
    department: String,
    origin: ConnectorOrigin,
    state: ConnectorState,
    /// The version in force (none for `gateway.yaml`'s connectors, which have no
    /// versions in the registry).
    #[schema(required = true)]
    active: Option<u32>,
    /// Versions waiting to be put in force.
    drafts: usize,
}

/// Whether a connector serves.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConnectorState {
    Enabled,
    Disabled,
    /// No version in force yet.
    Draft,
}

/// A saved connector version.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedConnector {
    #[schema(example = "hukou-residence")]
    connector: String,
    /// The version saved (or the existing one with the same content).
    #[schema(required = true, example = 1)]
    version: Option<u32>,
    state: VersionState,
    /// The version in force.
    #[schema(required = true)]
    active: Option<u32>,
    /// The same content as an existing version: nothing new was saved.
    unchanged: bool,
    /// The content's digest.
    #[schema(example = "3f9a0c51e2b7")]
    content: String,
    /// Where to test the new version.
    #[schema(example = "/v1/admin/connectors/hukou-residence/versions/1/test")]
    test: Option<String>,
    /// Where to put it in force (a draft that needs no review).
    activate: Option<String>,
    detail: Option<String>,
    /// How the version loosens the classification in force (202: it waits for the
    /// data-governance office).
    loosenings: Option<Vec<Loosening>>,
}

/// A connector's versions, newest last.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionList {
    connector: String,
    #[schema(required = true)]
    origin: Option<ConnectorOrigin>,
    enabled: bool,
    /// The version in force (absent for `gateway.yaml`'s connectors).
    current: Option<u32>,
    versions: Vec<VersionEntry>,
}

/// A version as the list shows it: its summary, definition and schema paths.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionEntry {
    version: u32,
    /// In force.
    current: bool,
    state: VersionState,
    created_at: String,
    created_by: String,
    #[schema(required = true)]
    activated_at: Option<String>,
    origin: Origin,
    content: String,
    #[schema(required = true)]
    review: Option<Review>,
    /// The definition (YAML).
    definition: String,
    /// The schema paths it names.
    schemas: Vec<String>,
}

/// A version without its content.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionSummary {
    version: u32,
    state: VersionState,
    /// RFC 3339, UTC.
    created_at: String,
    /// The user (or `gateway apply`) that made it.
    created_by: String,
    /// When it last went into force.
    #[schema(required = true)]
    activated_at: Option<String>,
    origin: Origin,
    /// The content's digest.
    content: String,
    /// Its classification review, when it loosens the classification.
    #[schema(required = true)]
    review: Option<Review>,
}

/// A version in full.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FullVersion {
    version: u32,
    state: VersionState,
    created_at: String,
    created_by: String,
    #[schema(required = true)]
    activated_at: Option<String>,
    origin: Origin,
    content: String,
    #[schema(required = true)]
    review: Option<Review>,
    /// The definition (YAML).
    definition: String,
    /// Schema path → the schema (JSON; text if it is not JSON).
    #[schema(value_type = Object)]
    schemas: serde_json::Value,
}

/// A connector as its administrators see it: the version in force and the drafts.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorStatus {
    #[schema(example = "hukou-residence")]
    connector: String,
    #[schema(required = true, example = "county-psb")]
    department: Option<String>,
    #[schema(required = true)]
    origin: Option<ConnectorOrigin>,
    enabled: bool,
    /// The version in force.
    #[schema(required = true)]
    active: Option<u32>,
    /// The version in force in full (registry connectors).
    in_force: Option<FullVersion>,
    /// The definition in force, YAML (`gateway.yaml`'s connectors).
    definition: Option<String>,
    /// Versions waiting to be put in force.
    drafts: Vec<VersionSummary>,
    /// How many versions there are (registry connectors).
    versions: Option<usize>,
}

/// What changed from one version to another.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionDiff {
    connector: String,
    from: u32,
    to: u32,
    /// The same definition and schemas.
    same_content: bool,
    /// Top-level members of the definition that differ (`base_url`, `timeouts`, …).
    connector_changed: Vec<String>,
    operations: OperationsDiff,
    fields: FieldsDiff,
    /// Schema paths whose schema differs.
    schemas_changed: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationsDiff {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<OperationChange>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldsDiff {
    added: Vec<FieldChange>,
    removed: Vec<FieldChange>,
    /// Sharing type or kind of personal data changed.
    reclassified: Vec<FieldChange>,
    /// Read from another department field, or transformed otherwise.
    remapped: Vec<FieldChange>,
}

/// A version put in force (activation or rollback).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InForce {
    connector: String,
    version: u32,
    /// The version in force now.
    active: u32,
    /// It was in force (and enabled) already: nothing changed.
    unchanged: bool,
    /// The version in force before.
    previous: Option<u32>,
    /// The configuration's new version.
    config_version: Option<String>,
}

/// How a trial call to the department went: whether the answer fits, never the data.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorTest {
    connector: String,
    operation: String,
    outcome: TestOutcome,
    /// Milliseconds, to a tenth.
    latency_ms: f64,
    violation: Option<Violation>,
    /// What went wrong, in the connector's words (never record content).
    error: Option<String>,
}

/// The trial calls of a version, one per operation.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionTest {
    connector: String,
    version: u32,
    state: VersionState,
    /// Every operation's answer fits.
    ok: bool,
    operations: Vec<OperationTest>,
}

/// One operation's trial call.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationTest {
    operation: String,
    /// The answer fits (`not_found` fits too).
    ok: bool,
    outcome: TestOutcome,
    latency_ms: Option<f64>,
    violation: Option<Violation>,
    /// What went wrong, or why the operation was not tested.
    problem: Option<String>,
}

/// A trial call's outcome.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TestOutcome {
    Conforms,
    NotFound,
    SchemaViolation,
    MappingViolation,
    TimedOut,
    Malformed,
    Oversize,
    UpstreamError,
    /// The operation takes a subject key the request did not give.
    NotTested,
}

/// Where a record broke its schema.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Violation {
    schema_path: String,
    instance_path: String,
}

/// The versions that needed a classification review, pending first, one page.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewList {
    reviews: Vec<ReviewedVersion>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A version under (or after) classification review.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewedVersion {
    #[schema(example = "hukou-residence")]
    connector: String,
    version: u32,
    #[schema(example = "county-psb")]
    department: String,
    created_at: String,
    created_by: String,
    content: String,
    #[schema(required = true)]
    review: Option<Review>,
    /// After a decision: the configuration's new version.
    config_version: Option<String>,
}
