//! The registry on PostgreSQL, for many replicas: the [`Registry`] operations on the
//! tables of migration 1 (`pg/migrations/0001_registry.sql`), in the schema the pool's
//! connections use, and how a replica hears of another's commits.
//!
//! Every commit is one transaction that locks the revision row (`SELECT … FOR
//! UPDATE`), so commits from several replicas serialize, and checks the revision it
//! was validated against before it writes: the loser of a race gets
//! [`RegistryError::Conflict`]. The checks a change passes are the SQLite registry's
//! ([`super::common`]). A commit also notifies its new revision on the schema's
//! `registry` channel (delivered when it commits); [`PgRegistry`]'s `watch` listens on
//! a connection of its own and still reads the revision every period, since
//! notifications sent while that connection is down are lost.
//!
//! Driver errors become [`RegistryError::Backend`] in [`crate::pg::describe`]'s words,
//! never the server's text (which can quote a stored value).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel, Notification, Row, Transaction};

use super::common::{
    RawVersion, activation, already_exists, erased, from_json, in_force, missing_version,
    next_revision, next_version, require_one, review_decision, revoked, still_open, still_pending,
    to_json,
};
use super::{
    AccessRequest, Change, ConnectorVersion, Correction, GrantRecord, PolicyFileRecord,
    RegisteredConnector, Registry, RegistryCopy, RegistryError, ReviewState, Snapshot, Stated,
};
use crate::pg::{Pg, PgError};

/// The notification channel's topic ([`Pg::channel`]): each commit's new revision.
const TOPIC: &str = "registry";

/// The first and the longest wait before listening again after the listening
/// connection failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The registry in a PostgreSQL schema (already migrated). Cloning is cheap: clones
/// share the pool.
#[derive(Debug, Clone)]
pub struct PgRegistry {
    pg: Pg,
}

impl PgRegistry {
    pub fn new(pg: Pg) -> PgRegistry {
        PgRegistry { pg }
    }

    async fn client(&self) -> Result<crate::pg::PgClient, RegistryError> {
        Ok(self.pg.client().await?)
    }

    /// Writes `copy` into this registry, which must be empty (revision 0, nothing
    /// registered), in one transaction: versions with their numbers, reviews and
    /// activation times, grants and requests in their order, the revision as it was.
    pub async fn import(&self, copy: &RegistryCopy) -> Result<(), RegistryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match import_into(&tx, copy, &self.pg.channel(TOPIC)).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                if tx.rollback().await.is_err() {
                    // The connection is broken; the server ends the transaction.
                }
                Err(e)
            }
        }
    }
}

/// [`PgRegistry::import`]'s writes in its transaction `tx`.
async fn import_into(
    tx: &Transaction<'_>,
    copy: &RegistryCopy,
    channel: &str,
) -> Result<(), RegistryError> {
    let found = read_revision(tx, LOCK_REVISION).await?;
    let versions: i64 = tx
        .query_one("SELECT count(*) FROM connector_versions", &[])
        .await?
        .try_get(0)?;
    if found != 0 || versions != 0 {
        return Err(RegistryError::Decided(format!(
            "the PostgreSQL registry is not empty (revision {found}, {versions} connector versions); a copy goes only into an empty one"
        )));
    }
    for version in &copy.versions {
        tx.execute(
            "INSERT INTO connector_versions
               (id, version, department, definition, schemas, origin, created_at, created_by,
                review, activated_at)
               VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8,
                       $9::text::jsonb, $10)",
            &[
                &version.id,
                &i64::from(version.version),
                &version.department,
                &version.definition,
                &to_json(&version.schemas)?,
                &to_json(&version.origin)?,
                &version.created_at,
                &version.created_by,
                &version.review.as_ref().map(to_json).transpose()?,
                &version.activated_at,
            ],
        )
        .await?;
    }
    for (id, current, enabled) in &copy.connectors {
        tx.execute(
            "INSERT INTO connectors (id, current_version, enabled) VALUES ($1, $2, $3)",
            &[id, &i64::from(*current), enabled],
        )
        .await?;
    }
    for (table, files) in [
        ("policy_files", &copy.policy_files),
        ("purpose_files", &copy.purpose_files),
    ] {
        for file in files {
            put_file(tx, table, file).await?;
        }
    }
    // Oldest first: the identity column keeps their order.
    for grant in &copy.grants {
        add_body(tx, "grants", "grant", &grant.id, grant).await?;
    }
    for request in &copy.requests {
        add_body(
            tx,
            "access_requests",
            "access request",
            &request.id,
            request,
        )
        .await?;
    }
    for correction in &copy.corrections {
        add_correction(tx, correction).await?;
    }
    let revision = i64::try_from(copy.revision)
        .map_err(|_| RegistryError::Corrupt("the revision is too large".into()))?;
    tx.execute("UPDATE registry_revision SET revision = $1", &[&revision])
        .await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&channel, &copy.revision.to_string()],
    )
    .await?;
    Ok(())
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(error: tokio_postgres::Error) -> RegistryError {
        RegistryError::Backend(format!("PostgreSQL: {}", crate::pg::describe(&error)))
    }
}

impl From<PgError> for RegistryError {
    fn from(error: PgError) -> RegistryError {
        RegistryError::Backend(error.to_string())
    }
}

impl Registry for PgRegistry {
    fn revision(&self) -> BoxFuture<'_, Result<u64, RegistryError>> {
        Box::pin(async move { read_revision(&**self.client().await?, READ_REVISION).await })
    }

    fn watch(self: Arc<Self>, every: Duration) -> BoxStream<'static, Result<u64, RegistryError>> {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watch = Watch {
            listening: Listening::Connecting(Box::pin(listen(self.pg.clone(), Duration::ZERO))),
            registry: Arc::downgrade(&self),
            seen: None,
            tick,
            backoff: FIRST_BACKOFF,
            check_now: false,
        };
        Box::pin(futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        }))
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            // One read-only transaction on one snapshot: every table at one revision.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let snapshot = Snapshot {
                revision: read_revision(&*tx, READ_REVISION).await?,
                connectors: read_connectors(&*tx).await?,
                policy_files: read_files(&*tx, "policy_files").await?,
                purpose_files: read_files(&*tx, "purpose_files").await?,
                grants: in_force(read_bodies(&*tx, "grants", "grant").await?),
            };
            tx.commit().await?;
            Ok(snapshot)
        })
    }

    fn commit(
        &self,
        expected: u64,
        changes: Vec<Change>,
    ) -> BoxFuture<'_, Result<u64, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            match write(&tx, expected, changes, &self.pg.channel(TOPIC)).await {
                Ok(revision) => {
                    tx.commit().await?;
                    Ok(revision)
                }
                Err(e) => {
                    // Now, not when the pooled connection next runs: the revision row
                    // stays locked until then.
                    if tx.rollback().await.is_err() {
                        // The connection is broken; the server ends the transaction.
                    }
                    Err(e)
                }
            }
        })
    }

    fn connector_versions(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            read_versions(&**client, "WHERE id = $1 ORDER BY version", &[&id]).await
        })
    }

    fn all_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            read_versions(&**client, "ORDER BY id, version", &[]).await
        })
    }

    fn reviewed_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            read_versions(
                &**client,
                "WHERE review IS NOT NULL ORDER BY id, version",
                &[],
            )
            .await
        })
    }

    fn access_requests(&self) -> BoxFuture<'_, Result<Vec<AccessRequest>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            read_bodies(&**client, "access_requests", "access request").await
        })
    }

    fn grants(&self) -> BoxFuture<'_, Result<Vec<GrantRecord>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            read_bodies(&**client, "grants", "grant").await
        })
    }

    fn corrections(&self) -> BoxFuture<'_, Result<Vec<Correction>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!("SELECT {CORRECTION_COLUMNS} FROM corrections ORDER BY created_seq"),
                    &[],
                )
                .await?;
            rows.iter().map(decode_correction).collect()
        })
    }
}

/// The columns [`decode_correction`] reads, in order.
const CORRECTION_COLUMNS: &str = "id, body::text, stated_value, note";

/// A `corrections` row of [`CORRECTION_COLUMNS`].
fn decode_correction(row: &Row) -> Result<Correction, RegistryError> {
    let id: String = row.try_get(0)?;
    let body: String = row.try_get(1)?;
    let value: Option<String> = row.try_get(2)?;
    let note: Option<String> = row.try_get(3)?;
    let mut correction: Correction = from_json(&body, || format!("correction `{id}`"))?;
    correction.stated = value.map(|value| Stated {
        value,
        note: note.unwrap_or_default(),
    });
    Ok(correction)
}

/// The stored correction `id`, locked for the rest of the transaction.
async fn read_correction(tx: &Transaction<'_>, id: &str) -> Result<Correction, RegistryError> {
    let row = tx
        .query_opt(
            &format!("SELECT {CORRECTION_COLUMNS} FROM corrections WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await?
        .ok_or_else(|| RegistryError::Missing(format!("correction `{id}`")))?;
    decode_correction(&row)
}

/// Adds a correction after the ones already there; its id must be new.
async fn add_correction(
    tx: &Transaction<'_>,
    correction: &Correction,
) -> Result<(), RegistryError> {
    let stated = correction.stated.as_ref();
    let inserted = tx
        .execute(
            "INSERT INTO corrections (id, body, stated_value, note)
               VALUES ($1, $2::text::jsonb, $3, $4)
               ON CONFLICT (id) DO NOTHING",
            &[
                &correction.id,
                &to_json(correction)?,
                &stated.map(|s| s.value.as_str()),
                &stated.map(|s| s.note.as_str()),
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(already_exists("correction", &correction.id));
    }
    Ok(())
}

const READ_REVISION: &str = "SELECT revision FROM registry_revision";
const LOCK_REVISION: &str = "SELECT revision FROM registry_revision FOR UPDATE";

/// The revision, read with `sql` ([`READ_REVISION`] or [`LOCK_REVISION`]).
async fn read_revision<C: GenericClient + Sync>(
    client: &C,
    sql: &str,
) -> Result<u64, RegistryError> {
    let row = client
        .query_opt(sql, &[])
        .await?
        .ok_or_else(|| RegistryError::Corrupt("the revision is missing".into()))?;
    let revision: i64 = row.try_get(0)?;
    u64::try_from(revision)
        .map_err(|_| RegistryError::Corrupt(format!("the revision {revision} is negative")))
}

/// A commit's writes in its transaction `tx`: the revision `expected` checked (under
/// the revision row's lock: a commit under way elsewhere is waited for, then its
/// revision seen), `changes` applied, the revision advanced and notified on
/// `channel` (delivered when `tx` commits). Returns the new revision.
async fn write(
    tx: &Transaction<'_>,
    expected: u64,
    changes: Vec<Change>,
    channel: &str,
) -> Result<u64, RegistryError> {
    let revision = next_revision(expected, read_revision(tx, LOCK_REVISION).await?)?;
    for change in changes {
        apply(tx, change).await?;
    }
    let stored = i64::try_from(revision)
        .map_err(|_| RegistryError::Corrupt("the revision is exhausted".into()))?;
    tx.execute("UPDATE registry_revision SET revision = $1", &[&stored])
        .await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&channel, &revision.to_string()],
    )
    .await?;
    Ok(revision)
}

/// Applies one change inside the commit's transaction.
async fn apply(tx: &Transaction<'_>, change: Change) -> Result<(), RegistryError> {
    match change {
        Change::PutConnector(version) => put_connector(tx, version).await,
        Change::SaveDraft(version) => insert_version(tx, &version, None).await.map(|_| ()),
        Change::ActivateVersion(version) => activate_version(tx, version).await,
        Change::DecideReview(version) => decide_review(tx, version).await,
        Change::SetConnectorEnabled { id, enabled } => {
            let updated = tx
                .execute(
                    "UPDATE connectors SET enabled = $2 WHERE id = $1",
                    &[&id, &enabled],
                )
                .await?;
            require_one(updated > 0, || format!("connector `{id}`"))
        }
        Change::RemoveConnector { id } => {
            let deleted = tx
                .execute("DELETE FROM connectors WHERE id = $1", &[&id])
                .await?;
            require_one(deleted > 0, || format!("connector `{id}`"))
        }
        Change::PutPolicyFile(file) => put_file(tx, "policy_files", &file).await,
        Change::RemovePolicyFile { path } => remove_file(tx, "policy_files", "policy", &path).await,
        Change::PutPurposeFile(file) => put_file(tx, "purpose_files", &file).await,
        Change::RemovePurposeFile { path } => {
            remove_file(tx, "purpose_files", "purpose", &path).await
        }
        Change::AddGrant(grant) => add_body(tx, "grants", "grant", &grant.id, &grant).await,
        Change::RevokeGrant { id, revocation } => {
            let grant: GrantRecord = read_body(tx, "grants", "grant", &id).await?;
            update_body(tx, "grants", &id, &revoked(grant, revocation)?).await
        }
        Change::AddRequest(request) => {
            add_body(
                tx,
                "access_requests",
                "access request",
                &request.id,
                &request,
            )
            .await
        }
        Change::DecideRequest(request) => {
            let stored: AccessRequest =
                read_body(tx, "access_requests", "access request", &request.id).await?;
            still_pending(&stored)?;
            update_body(tx, "access_requests", &request.id, &request).await
        }
        Change::AddCorrection(correction) => add_correction(tx, &correction).await,
        Change::AnswerCorrection(correction) => {
            still_open(&read_correction(tx, &correction.id).await?)?;
            update_body(tx, "corrections", &correction.id, &correction).await
        }
        Change::EraseCorrection { id, at } => {
            let erased = erased(read_correction(tx, &id).await?, at)?;
            tx.execute(
                "UPDATE corrections SET body = $2::text::jsonb, stated_value = NULL, note = NULL
                   WHERE id = $1",
                &[&id, &to_json(&erased)?],
            )
            .await?;
            Ok(())
        }
    }
}

/// Registers a connector or adds a version of it, enabled. The version number given
/// is ignored: the registry numbers versions. Content equal to the current version's
/// makes no new version.
async fn put_connector(
    tx: &Transaction<'_>,
    version: ConnectorVersion,
) -> Result<(), RegistryError> {
    if let Some(current) = current_version(tx, &version.id).await?
        && current.same_content(&version)
    {
        tx.execute(
            "UPDATE connectors SET enabled = true WHERE id = $1",
            &[&version.id],
        )
        .await?;
        return Ok(());
    }
    let next = insert_version(tx, &version, Some(&version.created_at)).await?;
    set_current(tx, &version.id, next).await
}

/// Stores `version` under the next version number (in force since `activated_at`, or
/// a draft), superseding any version of the connector still pending review; returns
/// the number.
async fn insert_version(
    tx: &Transaction<'_>,
    version: &ConnectorVersion,
    activated_at: Option<&str>,
) -> Result<i64, RegistryError> {
    tx.execute(
        "UPDATE connector_versions SET review = jsonb_set(review, '{state}', $3::text::jsonb)
           WHERE id = $1 AND review -> 'state' = $2::text::jsonb",
        &[
            &version.id,
            &to_json(&ReviewState::Pending)?,
            &to_json(&ReviewState::Superseded)?,
        ],
    )
    .await?;
    let last: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM connector_versions WHERE id = $1",
            &[&version.id],
        )
        .await?
        .try_get(0)?;
    let next = next_version(&version.id, last)?;
    let review = version.review.as_ref().map(to_json).transpose()?;
    tx.execute(
        "INSERT INTO connector_versions
           (id, version, department, definition, schemas, origin, created_at, created_by, review,
            activated_at)
           VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $9::text::jsonb, $10)",
        &[
            &version.id,
            &next,
            &version.department,
            &version.definition,
            &to_json(&version.schemas)?,
            &to_json(&version.origin)?,
            &version.created_at,
            &version.created_by,
            &review,
            &activated_at,
        ],
    )
    .await?;
    Ok(next)
}

/// Puts a stored version in force, enabled, if its review (if any) approved it.
async fn activate_version(
    tx: &Transaction<'_>,
    version: ConnectorVersion,
) -> Result<(), RegistryError> {
    let (id, number) = (&version.id, i64::from(version.version));
    let stored = read_version(tx, id, number)
        .await?
        .ok_or_else(|| missing_version(id, number))?;
    let at = activation(&stored, &version)?;
    set_current(tx, id, number).await?;
    set_activated_at(tx, id, number, &at).await
}

/// Records a review's decision; an approved version goes into force.
async fn decide_review(
    tx: &Transaction<'_>,
    decided: ConnectorVersion,
) -> Result<(), RegistryError> {
    let (id, number) = (&decided.id, i64::from(decided.version));
    let stored = read_version(tx, id, number)
        .await?
        .ok_or_else(|| missing_version(id, number))?;
    let current: Option<i64> = tx
        .query_opt(
            "SELECT current_version FROM connectors WHERE id = $1",
            &[id],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let checked = review_decision(&stored, &decided, current)?;
    if let Some(at) = checked.activated_at {
        set_current(tx, id, number).await?;
        set_activated_at(tx, id, number, at).await?;
    }
    tx.execute(
        "UPDATE connector_versions SET review = $3::text::jsonb WHERE id = $1 AND version = $2",
        &[id, &number, &to_json(checked.decision)?],
    )
    .await?;
    Ok(())
}

/// Puts version `number` of connector `id` in force, enabled (registering it if new).
async fn set_current(tx: &Transaction<'_>, id: &str, number: i64) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO connectors (id, current_version, enabled) VALUES ($1, $2, true)
           ON CONFLICT (id) DO UPDATE SET current_version = excluded.current_version,
                                          enabled = true",
        &[&id, &number],
    )
    .await?;
    Ok(())
}

async fn set_activated_at(
    tx: &Transaction<'_>,
    id: &str,
    number: i64,
    at: &str,
) -> Result<(), RegistryError> {
    tx.execute(
        "UPDATE connector_versions SET activated_at = $3 WHERE id = $1 AND version = $2",
        &[&id, &number, &at],
    )
    .await?;
    Ok(())
}

/// Stores an applied file in `table` (`policy_files` or `purpose_files`), replacing
/// the one at its path.
async fn put_file(
    tx: &Transaction<'_>,
    table: &str,
    file: &PolicyFileRecord,
) -> Result<(), RegistryError> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (path, text) VALUES ($1, $2)
               ON CONFLICT (path) DO UPDATE SET text = excluded.text"
        ),
        &[&file.path, &file.text],
    )
    .await?;
    Ok(())
}

/// Forgets the applied file at `path` in `table`; `kind` names it in the error.
async fn remove_file(
    tx: &Transaction<'_>,
    table: &str,
    kind: &str,
    path: &str,
) -> Result<(), RegistryError> {
    let deleted = tx
        .execute(&format!("DELETE FROM {table} WHERE path = $1"), &[&path])
        .await?;
    require_one(deleted > 0, || format!("{kind} file `{path}`"))
}

/// Adds `body` (a `kind`, for messages) to `table` (`grants` or `access_requests`)
/// after the ones already there; its id must be new.
async fn add_body<T: serde::Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    kind: &str,
    id: &str,
    body: &T,
) -> Result<(), RegistryError> {
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {table} (id, body) VALUES ($1, $2::text::jsonb)
                   ON CONFLICT (id) DO NOTHING"
            ),
            &[&id, &to_json(body)?],
        )
        .await?;
    if inserted == 0 {
        return Err(already_exists(kind, id));
    }
    Ok(())
}

/// The stored body `id` of `table`, a `kind` (for messages).
async fn read_body<T: serde::de::DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &str,
    kind: &str,
    id: &str,
) -> Result<T, RegistryError> {
    let row = tx
        .query_opt(
            &format!("SELECT body::text FROM {table} WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| RegistryError::Missing(format!("{kind} `{id}`")))?;
    from_json(&row.try_get::<_, String>(0)?, || format!("{kind} `{id}`"))
}

/// Replaces the stored body `id` of `table`, keeping its place.
async fn update_body<T: serde::Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    id: &str,
    body: &T,
) -> Result<(), RegistryError> {
    tx.execute(
        &format!("UPDATE {table} SET body = $2::text::jsonb WHERE id = $1"),
        &[&id, &to_json(body)?],
    )
    .await?;
    Ok(())
}

/// The columns [`raw_version`] reads, in order (JSON as text).
const VERSION_COLUMNS: &str = "id, version, department, definition, schemas::text, \
     origin::text, created_at, created_by, review::text, activated_at";

/// A `connector_versions` row of [`VERSION_COLUMNS`].
fn raw_version(row: &Row) -> Result<RawVersion, tokio_postgres::Error> {
    Ok(RawVersion {
        id: row.try_get(0)?,
        version: row.try_get(1)?,
        department: row.try_get(2)?,
        definition: row.try_get(3)?,
        schemas: row.try_get(4)?,
        origin: row.try_get(5)?,
        created_at: row.try_get(6)?,
        created_by: row.try_get(7)?,
        review: row.try_get(8)?,
        activated_at: row.try_get(9)?,
    })
}

/// The connector versions `rest` (the query after its `FROM`) selects, decoded.
async fn read_versions<C: GenericClient + Sync>(
    client: &C,
    rest: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<ConnectorVersion>, RegistryError> {
    let rows = client
        .query(
            &format!("SELECT {VERSION_COLUMNS} FROM connector_versions {rest}"),
            params,
        )
        .await?;
    rows.iter().map(|row| raw_version(row)?.decode()).collect()
}

async fn read_version<C: GenericClient + Sync>(
    client: &C,
    id: &str,
    number: i64,
) -> Result<Option<ConnectorVersion>, RegistryError> {
    let mut found =
        read_versions(client, "WHERE id = $1 AND version = $2", &[&id, &number]).await?;
    Ok(found.pop())
}

/// The version of connector `id` in force, if it is registered.
async fn current_version(
    tx: &Transaction<'_>,
    id: &str,
) -> Result<Option<ConnectorVersion>, RegistryError> {
    let mut found = read_versions(
        tx,
        "JOIN connectors USING (id) WHERE id = $1 AND version = current_version",
        &[&id],
    )
    .await?;
    Ok(found.pop())
}

async fn read_connectors<C: GenericClient + Sync>(
    client: &C,
) -> Result<BTreeMap<String, RegisteredConnector>, RegistryError> {
    let rows = client
        .query(
            &format!(
                "SELECT {VERSION_COLUMNS}, enabled FROM connector_versions
                   JOIN connectors USING (id) WHERE version = current_version ORDER BY id"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let current = raw_version(row)?.decode()?;
            let enabled: bool = row.try_get(10)?;
            Ok((current.id.clone(), RegisteredConnector { current, enabled }))
        })
        .collect()
}

/// The files of `table` (`policy_files` or `purpose_files`), by path.
async fn read_files<C: GenericClient + Sync>(
    client: &C,
    table: &str,
) -> Result<BTreeMap<String, PolicyFileRecord>, RegistryError> {
    let rows = client
        .query(
            &format!("SELECT path, text FROM {table} ORDER BY path"),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let file = PolicyFileRecord {
                path: row.try_get(0)?,
                text: row.try_get(1)?,
            };
            Ok((file.path.clone(), file))
        })
        .collect()
}

/// The JSON bodies of `table` (`grants` or `access_requests`), each a `kind` (for
/// messages), oldest first.
async fn read_bodies<C: GenericClient + Sync, T: serde::de::DeserializeOwned>(
    client: &C,
    table: &str,
    kind: &str,
) -> Result<Vec<T>, RegistryError> {
    let rows = client
        .query(
            &format!("SELECT id, body::text FROM {table} ORDER BY created_seq"),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0)?;
            let body: String = row.try_get(1)?;
            from_json(&body, || format!("{kind} `{id}`"))
        })
        .collect()
}

/// A watch's state: the registry (held weakly), the last revision it yielded, the
/// period of its revision checks and its listening connection.
struct Watch {
    registry: Weak<PgRegistry>,
    seen: Option<u64>,
    tick: tokio::time::Interval,
    listening: Listening,
    /// The wait before listening again after the next failure.
    backoff: Duration,
    /// Whether to read the revision before waiting for anything: once listening
    /// (again), since notifications sent before were not heard.
    check_now: bool,
}

/// The connection a watch listens on.
enum Listening {
    /// Connecting and sending `LISTEN` (after a pause when it failed before).
    Connecting(BoxFuture<'static, Result<Listener, PgError>>),
    Listening(Listener),
}

struct Listener {
    /// Kept: the connection closes when it is dropped.
    _client: tokio_postgres::Client,
    notifications: UnboundedReceiver<Notification>,
}

/// What a watch waits for.
enum Event {
    /// Time for a revision check.
    Tick,
    /// A notification's payload (a new revision).
    Notified(String),
    Listening(Listener),
    /// The listening connection could not be made or dropped.
    Failed(String),
}

impl Listening {
    /// The next thing the connection has to say (cancel-safe).
    async fn event(&mut self) -> Event {
        match self {
            Listening::Connecting(connecting) => match connecting.await {
                Ok(listener) => Event::Listening(listener),
                Err(e) => Event::Failed(e.to_string()),
            },
            Listening::Listening(listener) => match listener.notifications.recv().await {
                Some(notification) => Event::Notified(notification.payload().to_owned()),
                None => Event::Failed("the listening connection closed".to_owned()),
            },
        }
    }
}

impl Watch {
    /// The next revision to yield (or failure to read it); `None` once the registry
    /// is gone.
    async fn next(&mut self) -> Option<Result<u64, RegistryError>> {
        loop {
            let event = if std::mem::take(&mut self.check_now) {
                Event::Tick
            } else {
                tokio::select! {
                    biased;
                    _ = self.tick.tick() => Event::Tick,
                    event = self.listening.event() => event,
                }
            };
            match event {
                Event::Tick => {
                    let revision = self.registry.upgrade()?.revision().await;
                    match revision {
                        Ok(revision) if self.seen == Some(revision) => continue,
                        Ok(revision) => self.seen = Some(revision),
                        Err(_) => {}
                    }
                    return Some(revision);
                }
                Event::Notified(payload) => {
                    if self.registry.strong_count() == 0 {
                        return None;
                    }
                    match payload.parse::<u64>() {
                        // A late notification (a check saw its revision first) says nothing.
                        Ok(revision) if self.seen.is_none_or(|seen| revision > seen) => {
                            self.seen = Some(revision);
                            return Some(Ok(revision));
                        }
                        Ok(_) => {}
                        Err(_) => self.check_now = true,
                    }
                }
                Event::Listening(listener) => {
                    self.listening = Listening::Listening(listener);
                    self.backoff = FIRST_BACKOFF;
                    self.check_now = true;
                }
                Event::Failed(why) => {
                    let pg = self.registry.upgrade()?.pg.clone();
                    tracing::warn!(
                        error = %why,
                        retry_in_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
                        "registry changes are not heard from the other replicas (checked every period instead); listening again"
                    );
                    self.listening = Listening::Connecting(Box::pin(listen(pg, self.backoff)));
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// After `pause`, a connection of its own listening on the registry's channel.
async fn listen(pg: Pg, pause: Duration) -> Result<Listener, PgError> {
    tokio::time::sleep(pause).await;
    let (client, notifications) = pg.dedicated().await?;
    client
        .batch_execute(&format!("LISTEN {}", pg.channel(TOPIC)))
        .await
        .map_err(|e| PgError::query(&e))?;
    Ok(Listener {
        _client: client,
        notifications,
    })
}
