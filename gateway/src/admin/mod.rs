//! Connector administration, whichever front end asks (the admin API in
//! [`crate::http::admin`] and [`crate::http::drafts`], the department admin's pages in
//! [`crate::console`]): who may administer which connector ([`may_administer`],
//! [`Ownership`]), the list of a person's connectors ([`rows`]), and the actions —
//! disable and enable ([`set_enabled`]), purge the record cache ([`purge_cache`]),
//! test against the department ([`test`]), save a new version as a draft
//! ([`versions::save`]) and put a version in force ([`versions::put_in_force`]).
//!
//! A department admin acts on their own department's connectors only; an operator on
//! any. Connectors that came from files are changed by editing the files. Every
//! attempt, allowed or not, is an admin event in the audit log, with the person's
//! reason when they gave one.

pub mod edit;
pub mod trial;
pub mod versions;

use std::collections::BTreeMap;

use crate::action::{Action, Who};
use crate::app::App;
use crate::audit::AuditOutcome;
use crate::auth::{Caller, Role};
use crate::problem::{Problem, ProblemKind};
use crate::registry::{ConnectorVersion, Origin, RegisteredConnector, RegistryError, ReviewState};

pub use trial::{Tried, try_operation};

/// The rule named when a caller may not act on a connector.
const OWNER_RULE: &str = "connector-owner";

/// Whether the caller administers connectors at all: an operator, or a department's
/// admin (for their own department's, see [`may_administer`]).
pub fn administers(caller: &Caller) -> bool {
    caller.has_role(Role::Operator) || caller.has_role(Role::DeptAdmin)
}

/// Whether `caller` may administer connectors of `department`: its own department
/// admin, or an operator.
pub fn may_administer(caller: &Caller, department: &str) -> bool {
    caller.has_role(Role::Operator)
        || (caller.has_role(Role::DeptAdmin) && caller.department.as_deref() == Some(department))
}

/// Whether `caller` is `department`'s own admin: the one person who may see the
/// department's records in a test call (an operator of the gateway may not).
pub fn is_own_admin(caller: &Caller, department: &str) -> bool {
    caller.has_role(Role::DeptAdmin) && caller.department.as_deref() == Some(department)
}

/// The problem when the registry cannot be read (the cause goes to the log).
pub fn registry_unavailable(request_id: &str, error: &RegistryError) -> Problem {
    tracing::error!(request_id, error = %error, "the registry cannot be read");
    Problem::new(
        ProblemKind::RegistryUnavailable,
        "The registry cannot be read right now.",
    )
    .for_request(request_id)
}

pub fn not_admin() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "Only department admins and operators administer connectors.",
    )
    .with("rule", OWNER_RULE)
    .with("reason", "role")
}

pub fn not_owner() -> Problem {
    Problem::new(
        ProblemKind::Forbidden,
        "A department admin administers only their own department's connectors.",
    )
    .with("rule", OWNER_RULE)
    .with("reason", "role")
}

pub fn file_managed(origin: &str) -> Problem {
    Problem::new(
        ProblemKind::FileManaged,
        "This connector is managed by the county's files; edit the file and apply it.",
    )
    .with("origin", origin)
}

pub fn unknown_connector() -> Problem {
    Problem::new(
        ProblemKind::UnknownConnector,
        "No connector with this id is configured.",
    )
}

pub fn unknown_version() -> Problem {
    Problem::new(
        ProblemKind::UnknownVersion,
        "The connector has no version with this number.",
    )
}

/// An id from a URL or a form as it may appear in an audit record: an id's shape (a
/// lowercase letter, then lowercase letters, digits, `-` and `_`, at most 80), or
/// `?`. Anything else is not recorded: a mistyped path could hold an ID number.
pub fn short(id: &str) -> String {
    let shaped = id.len() <= 80
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if shaped {
        id.to_owned()
    } else {
        "?".to_owned()
    }
}

/// Where a version stands: `active` (the one in force), `draft` (never served),
/// `awaiting_review`, `refused`, `superseded` (a later version came first while it
/// waited for review) or `previous` (served before).
pub fn state(version: &ConnectorVersion, current: Option<u32>) -> &'static str {
    if Some(version.version) == current {
        return "active";
    }
    match version.review.as_ref().map(|r| r.state) {
        Some(ReviewState::Pending) => "awaiting_review",
        Some(ReviewState::Refused) => "refused",
        Some(ReviewState::Superseded) => "superseded",
        _ if version.activated_at.is_some() => "previous",
        _ => "draft",
    }
}

/// Whether a version can no longer be put in force: its review was refused or
/// superseded.
pub fn closed(version: &ConnectorVersion) -> bool {
    matches!(
        version.review.as_ref().map(|r| r.state),
        Some(ReviewState::Refused | ReviewState::Superseded)
    )
}

/// Who may act on a connector, and where it came from.
#[derive(Debug)]
pub enum Ownership {
    /// Not configured anywhere.
    Unknown,
    /// Listed in `gateway.yaml`'s files.
    MainFile { department: String },
    /// In the registry, with a version in force.
    Registered(Box<RegisteredConnector>),
    /// In the registry with versions but none in force: drafts of a new connector
    /// (or the versions of one `gateway apply` removed); the last version.
    Drafts(Box<ConnectorVersion>),
}

impl Ownership {
    /// The owning department, when the connector is known.
    pub fn department(&self) -> Option<&str> {
        match self {
            Ownership::Unknown => None,
            Ownership::MainFile { department } => Some(department),
            Ownership::Registered(c) => Some(&c.current.department),
            Ownership::Drafts(v) => Some(&v.department),
        }
    }

    /// The version in force, if any.
    pub fn current(&self) -> Option<u32> {
        match self {
            Ownership::Registered(c) => Some(c.current.version),
            _ => None,
        }
    }

    /// Whether the connector's versions come from the county's files.
    pub fn file_managed(&self) -> bool {
        match self {
            Ownership::MainFile { .. } => true,
            Ownership::Registered(c) => c.current.origin.is_file(),
            Ownership::Drafts(v) => v.origin.is_file(),
            Ownership::Unknown => false,
        }
    }

    /// The problem when `caller` may not change the connector's versions: unknown,
    /// managed by files, or another department's.
    pub fn refuse_change(&self, caller: &Caller) -> Option<Problem> {
        match self {
            Ownership::Unknown => Some(unknown_connector()),
            Ownership::MainFile { .. } => Some(file_managed("gateway.yaml")),
            Ownership::Registered(c) if !may_administer(caller, &c.current.department) => {
                Some(not_owner())
            }
            Ownership::Registered(c) if c.current.origin.is_file() => {
                Some(file_managed(&c.current.origin.describe()))
            }
            Ownership::Drafts(v) if !may_administer(caller, &v.department) => Some(not_owner()),
            Ownership::Drafts(v) if v.origin.is_file() => Some(file_managed(&v.origin.describe())),
            _ => None,
        }
    }
}

/// Who owns connector `id`, and where it came from.
pub async fn ownership(app: &App, id: &str) -> Result<Ownership, RegistryError> {
    let snapshot = app.live.registry().snapshot().await?;
    if let Some(c) = snapshot.connectors.get(id) {
        return Ok(Ownership::Registered(Box::new(c.clone())));
    }
    if let Some(c) = app.config.load().connectors.get(id) {
        return Ok(Ownership::MainFile {
            department: c.def.department.id.clone(),
        });
    }
    let versions = app.live.registry().connector_versions(id).await?;
    Ok(match versions.into_iter().last() {
        Some(last) => Ownership::Drafts(Box::new(last)),
        None => Ownership::Unknown,
    })
}

/// The connector a read is about, with its versions, if `caller` may read it.
pub async fn readable(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<(Ownership, Vec<ConnectorVersion>), Problem> {
    if !administers(caller) {
        return Err(not_admin());
    }
    let owned = ownership(app, id).await?;
    let department = owned.department().ok_or_else(unknown_connector)?;
    if !may_administer(caller, department) {
        return Err(not_owner());
    }
    if matches!(owned, Ownership::MainFile { .. }) {
        return Ok((owned, Vec::new()));
    }
    let versions = app.live.registry().connector_versions(id).await?;
    Ok((owned, versions))
}

/// One connector as its administrators list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub connector: String,
    pub department: String,
    /// Where its versions come from; `None` for `gateway.yaml`'s own files.
    pub origin: Option<Origin>,
    /// `enabled`, `disabled` or `draft` (no version in force).
    pub state: &'static str,
    pub active: Option<u32>,
    /// Versions waiting to be put in force (drafts, or awaiting review).
    pub drafts: usize,
}

/// The connectors `caller` administers, by id: their own department's (a department
/// admin) or all (an operator).
pub async fn rows(app: &App, caller: &Caller) -> Result<Vec<Row>, Problem> {
    if !administers(caller) {
        return Err(not_admin());
    }
    let registry = app.live.registry();
    let snapshot = registry.snapshot().await?;
    let versions = registry.all_versions().await?;
    let config = app.config.load_full();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (id, c) in &config.connectors {
        if snapshot.connectors.contains_key(id) {
            continue;
        }
        rows.insert(
            id.clone(),
            Row {
                connector: id.clone(),
                department: c.def.department.id.clone(),
                origin: None,
                state: "enabled",
                active: None,
                drafts: 0,
            },
        );
    }
    let mut by_id: BTreeMap<&str, Vec<&ConnectorVersion>> = BTreeMap::new();
    for v in &versions {
        by_id.entry(v.id.as_str()).or_default().push(v);
    }
    for (id, list) in by_id {
        let registered = snapshot.connectors.get(id);
        let current = registered.map(|c| c.current.version);
        let Some(last) = list.last() else { continue };
        if registered.is_none() && last.origin.is_file() {
            // A file connector `gateway apply` removed: kept for the record only.
            continue;
        }
        let drafts = list
            .iter()
            .filter(|v| matches!(state(v, current), "draft" | "awaiting_review"))
            .count();
        let (state, department, origin) = match registered {
            Some(c) if c.enabled => ("enabled", &c.current.department, &c.current.origin),
            Some(c) => ("disabled", &c.current.department, &c.current.origin),
            None => ("draft", &last.department, &last.origin),
        };
        rows.insert(
            id.to_owned(),
            Row {
                connector: id.to_owned(),
                department: department.clone(),
                origin: Some(origin.clone()),
                state,
                active: current,
                drafts,
            },
        );
    }
    Ok(rows
        .into_values()
        .filter(|row| may_administer(caller, &row.department))
        .collect())
}

/// The start of an action on connector `id` by `who`: the audit event, and the
/// reason checked (an unacceptable reason is refused and recorded).
async fn start(
    app: &App,
    who: &Who,
    operation: &str,
    reason: Option<&str>,
) -> Result<Action, Problem> {
    let mut act = who.start(app, operation);
    if !administers(&who.caller) {
        return Err(act.refuse(not_admin()).await);
    }
    match crate::action::reason(reason, false) {
        Ok(reason) => act.event.reason = reason,
        Err(p) => return Err(act.refuse(p).await),
    }
    Ok(act)
}

/// Disables or enables connector `id` (a registered connector in force, not one
/// managed by files), with the person's reason; the configuration's new version.
pub async fn set_enabled(
    app: &App,
    who: &Who,
    id: &str,
    enabled: bool,
    reason: Option<&str>,
) -> Result<String, Problem> {
    let action = if enabled { "enable" } else { "disable" };
    let operation = format!("connector.{action} {}", short(id));
    let mut act = start(app, who, &operation, reason).await?;
    let owned = ownership(app, id)
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let problem = match &owned {
        Ownership::Drafts(v) if may_administer(&who.caller, &v.department) => Some(Problem::new(
            ProblemKind::UnknownVersion,
            "No version of this connector is in force yet; activate a draft first.",
        )),
        known => known.refuse_change(&who.caller),
    };
    if !matches!(owned, Ownership::Unknown) {
        act.event.connector = Some(id.to_owned());
    }
    if let Some(problem) = problem {
        return Err(act.refuse(problem).await);
    }
    let change = crate::registry::Change::SetConnectorEnabled {
        id: id.to_owned(),
        enabled,
    };
    let changed = act.commit(vec![change]).await?;
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, connector = %id, enabled, "connector {action}d");
    Ok(changed.version)
}

/// What purging a connector's record cache did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub connector: String,
    /// `false` when the connector keeps no cache.
    pub cache: bool,
    /// How many records were dropped.
    pub entries: u64,
}

/// Drops every cached record of connector `id` (for example after the department
/// corrected a record that must not be served stale), with the person's reason.
pub async fn purge_cache(
    app: &App,
    who: &Who,
    id: &str,
    reason: Option<&str>,
) -> Result<Purged, Problem> {
    let mut act = start(app, who, "connector.cache.purge", reason).await?;
    let config = app.config.load_full();
    let Some(c) = config.connectors.get(id) else {
        return Err(act.refuse(unknown_connector()).await);
    };
    // Only a connector id the gateway knows is recorded.
    act.event.connector = Some(c.def.id.clone());
    if !may_administer(&who.caller, &c.def.department.id) {
        return Err(act.refuse(not_owner()).await);
    }
    let entries = match &c.cache {
        Some(cache) => {
            let before = cache.stats().await.entries;
            cache.purge();
            crate::cluster::announce_purge(&app.storage, id).await;
            Some(before)
        }
        None => None,
    };
    act.event.outcome = AuditOutcome {
        status: 200,
        problem: None,
    };
    act.record().await?;
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, connector = %id, "connector cache purged");
    Ok(Purged {
        connector: c.def.id.clone(),
        cache: entries.is_some(),
        entries: entries.unwrap_or(0),
    })
}

/// Makes one call to the department for `operation` of connector `id` (the version
/// in force) with a sample subject (an ID number, or a household number for
/// household operations), and says whether the answer fits the mapping and schema
/// and how long it took. The record itself is in the answer only for the
/// department's own admin, and is never stored; the call is audited like a lookup
/// (the subject's pseudonym).
pub async fn test(
    app: &App,
    who: &Who,
    id: &str,
    operation: &str,
    subject: &str,
) -> Result<Tried, Problem> {
    let mut act = start(app, who, &format!("connector.test {}", short(id)), None).await?;
    let config = app.config.load_full();
    let Some(connector) = config.connectors.get(id) else {
        return Err(act.refuse(unknown_connector()).await);
    };
    act.event.connector = Some(id.to_owned());
    if !may_administer(&who.caller, &connector.def.department.id) {
        return Err(act.refuse(not_owner()).await);
    }
    let Some(op) = connector.operations.get(operation) else {
        let p = Problem::new(
            ProblemKind::UnknownOperation,
            "The connector has no operation with this name.",
        );
        return Err(act.refuse(p).await);
    };
    act.event.operation = Some(format!("connector.test {id}.{operation}"));
    let key = if op.subject == connectors::definition::SubjectKey::IdNumber {
        connectors::subject::IdNumber::parse(subject)
            .map(crate::lookup::SubjectKeyValue::Id)
            .map_err(|_| {
                Problem::new(
                    ProblemKind::InvalidIdNumber,
                    "The test subject's ID number fails the GB 11643 check; no department was called.",
                )
            })
    } else {
        crate::lookup::household_number(subject.to_owned()).map_err(Problem::from)
    };
    let key = match key {
        Ok(key) => key,
        Err(p) => return Err(act.refuse(p).await),
    };
    let mut tried = try_operation(app, connector, operation, op, &key, &mut act.event).await;
    if !is_own_admin(&who.caller, &connector.def.department.id) {
        tried.record = None;
    }
    act.record().await?;
    Ok(tried)
}
