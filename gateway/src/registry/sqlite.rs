//! The embedded registry: `DATA_DIR/registry.db` (SQLite, WAL, `synchronous=FULL`),
//! its schema and migrations, and the [`Registry`] operations on it. Calls are rare
//! (a change through the admin API, `gateway apply`, a reload) but for the watcher's
//! once-a-second look at the revision, so calls run on a blocking thread on one kept
//! connection (a call made while it is in use opens its own; opening and closing one
//! every second would create and delete the WAL files each time); every commit is one
//! `IMMEDIATE` transaction that checks the revision it was validated against before it
//! writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::Mutex;

use super::common::{
    RawVersion, activation, already_exists, erased, from_json, in_force, missing_version,
    next_revision, next_version, require_one, review_decision, revoked, still_open, still_pending,
    to_json,
};
use super::{
    AccessRequest, Change, ConnectorVersion, Correction, GrantRecord, PolicyFileRecord,
    RegisteredConnector, Registry, RegistryError, ReviewState, Revocation, Snapshot, Stated,
};

/// The registry database's file name inside the data directory.
pub const REGISTRY_FILE: &str = "registry.db";

/// How long a call waits for a lock held by another writer (another request, or
/// `gateway apply` in another process) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: connectors and their versions, policy files, grants, access requests, and
    // the revision every commit increments.
    "CREATE TABLE connector_versions (
         id TEXT NOT NULL,
         version INTEGER NOT NULL,
         department TEXT NOT NULL,
         definition TEXT NOT NULL,
         schemas TEXT NOT NULL,
         origin TEXT NOT NULL,
         created_at TEXT NOT NULL,
         created_by TEXT NOT NULL,
         PRIMARY KEY (id, version)
     ) STRICT;
     CREATE TABLE connectors (
         id TEXT PRIMARY KEY,
         current_version INTEGER NOT NULL,
         enabled INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE policy_files (path TEXT PRIMARY KEY, text TEXT NOT NULL) STRICT;
     CREATE TABLE grants (
         id TEXT PRIMARY KEY,
         body TEXT NOT NULL,
         created_seq INTEGER NOT NULL UNIQUE
     ) STRICT;
     CREATE TABLE access_requests (
         id TEXT PRIMARY KEY,
         body TEXT NOT NULL,
         created_seq INTEGER NOT NULL UNIQUE
     ) STRICT;
     INSERT INTO meta (key, value) VALUES ('revision', '0');",
    // 2: purpose files (more purposes for the catalog) applied with `gateway apply`.
    "CREATE TABLE purpose_files (path TEXT PRIMARY KEY, text TEXT NOT NULL) STRICT;",
    // 3: the data-governance review of versions that loosen the classification (JSON,
    // NULL when a version needed none).
    "ALTER TABLE connector_versions ADD COLUMN review TEXT;",
    // 4: drafts. When a version last went into force (NULL: a draft that never
    // served). Before drafts, every version that needed no review or was approved
    // went into force when it was made.
    "ALTER TABLE connector_versions ADD COLUMN activated_at TEXT;
     UPDATE connector_versions SET activated_at = created_at
       WHERE review IS NULL OR json_extract(review, '$.state') = 'approved';",
    // 5: townships' corrections of departments' values. What the citizen stated is
    // in columns of its own, so that retention overwrites it with NULL and keeps the
    // body (ids, pseudonym, state, answer).
    "CREATE TABLE corrections (
         id TEXT PRIMARY KEY,
         body TEXT NOT NULL,
         stated_value TEXT,
         note TEXT,
         created_seq INTEGER NOT NULL UNIQUE
     ) STRICT;",
];

/// The schema version this code writes.
#[cfg(test)]
pub(super) const SCHEMA_VERSION: u32 = SCHEMA.version();

/// The registry in an SQLite file. Cloning is cheap: clones share the kept
/// connection.
#[derive(Debug, Clone)]
pub struct SqliteRegistry {
    path: PathBuf,
    /// The file opened at `path` (device and inode): a commit checks that it is still
    /// there.
    file: (u64, u64),
    /// The connection kept between calls; empty while a call uses it.
    kept: Arc<Mutex<Option<Connection>>>,
}

impl SqliteRegistry {
    /// Opens (creating and migrating if needed) `DATA_DIR/registry.db`. Blocking: call
    /// it before serving or from `spawn_blocking`.
    pub fn open(data_dir: &Path) -> Result<SqliteRegistry, RegistryError> {
        let opened = crate::sqlite::open(
            &data_dir.join(REGISTRY_FILE),
            &SCHEMA,
            crate::sqlite::Journal::PreferWal,
            BUSY_TIMEOUT,
        )
        .map_err(open_error)?;
        let path = opened.path;
        let file = file_at(&path)?;
        Ok(SqliteRegistry {
            path,
            file,
            kept: Arc::new(Mutex::new(None)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a blocking thread, on the kept connection if it is free.
    async fn with_connection<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, RegistryError> + Send + 'static,
    {
        let path = self.path.clone();
        let kept = self.kept.clone();
        tokio::task::spawn_blocking(move || {
            let free = kept.try_lock().ok().and_then(|mut slot| slot.take());
            let mut conn = match free {
                Some(conn) => conn,
                None => connect(&path)?,
            };
            let result = work(&mut conn);
            // A transaction left open by a failed call must not be kept.
            if conn.is_autocommit()
                && let Ok(mut slot) = kept.try_lock()
                && slot.is_none()
            {
                *slot = Some(conn);
            }
            result
        })
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?
    }
}

impl Registry for SqliteRegistry {
    fn revision(&self) -> BoxFuture<'_, Result<u64, RegistryError>> {
        Box::pin(self.with_connection(|conn| read_revision(conn)))
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, RegistryError>> {
        Box::pin(self.with_connection(|conn| {
            // One read transaction: every table is read at the same revision.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let snapshot = Snapshot {
                revision: read_revision(&tx)?,
                connectors: read_connectors(&tx)?,
                policy_files: read_files(&tx, "policy_files")?,
                purpose_files: read_files(&tx, "purpose_files")?,
                grants: in_force(read_grants(&tx)?),
            };
            tx.finish()?;
            Ok(snapshot)
        }))
    }

    fn commit(
        &self,
        expected: u64,
        changes: Vec<Change>,
    ) -> BoxFuture<'_, Result<u64, RegistryError>> {
        let (path, file) = (self.path.clone(), self.file);
        Box::pin(self.with_connection(move |conn| {
            still_there(&path, file)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let revision = next_revision(expected, read_revision(&tx)?)?;
            for change in changes {
                apply(&tx, change)?;
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'revision'",
                [revision.to_string()],
            )?;
            tx.commit()?;
            Ok(revision)
        }))
    }

    fn connector_versions(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        let id = id.to_owned();
        Box::pin(self.with_connection(move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE id = ?1 ORDER BY version"
            ))?;
            let rows = statement
                .query_map([&id], raw_version)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(RawVersion::decode).collect()
        }))
    }

    fn all_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        Box::pin(self.with_connection(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM connector_versions ORDER BY id, version"
            ))?;
            let rows = statement
                .query_map([], raw_version)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(RawVersion::decode).collect()
        }))
    }

    fn reviewed_versions(&self) -> BoxFuture<'_, Result<Vec<ConnectorVersion>, RegistryError>> {
        Box::pin(self.with_connection(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM connector_versions
                   WHERE review IS NOT NULL ORDER BY id, version"
            ))?;
            let rows = statement
                .query_map([], raw_version)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(RawVersion::decode).collect()
        }))
    }

    fn access_requests(&self) -> BoxFuture<'_, Result<Vec<AccessRequest>, RegistryError>> {
        Box::pin(self.with_connection(|conn| {
            read_bodies(
                conn,
                "SELECT id, body FROM access_requests ORDER BY created_seq",
                "access request",
            )
        }))
    }

    fn grants(&self) -> BoxFuture<'_, Result<Vec<GrantRecord>, RegistryError>> {
        Box::pin(self.with_connection(|conn| read_grants(conn)))
    }

    fn corrections(&self) -> BoxFuture<'_, Result<Vec<Correction>, RegistryError>> {
        Box::pin(self.with_connection(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, body, stated_value, note FROM corrections ORDER BY created_seq",
            )?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, body, value, note)| decode_correction(&id, &body, value, note))
                .collect()
        }))
    }
}

/// A stored correction: its body and what is left of the citizen's statement.
fn decode_correction(
    id: &str,
    body: &str,
    value: Option<String>,
    note: Option<String>,
) -> Result<Correction, RegistryError> {
    let mut correction: Correction = from_json(body, || format!("correction `{id}`"))?;
    correction.stated = value.map(|value| Stated {
        value,
        note: note.unwrap_or_default(),
    });
    Ok(correction)
}

/// The stored correction `id`, in the commit's transaction.
fn read_correction(tx: &Transaction<'_>, id: &str) -> Result<Correction, RegistryError> {
    let row: Option<(String, Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT body, stated_value, note FROM corrections WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let (body, value, note) =
        row.ok_or_else(|| RegistryError::Missing(format!("correction `{id}`")))?;
    decode_correction(id, &body, value, note)
}

/// Opens the (already created and migrated) database for one call. Deleted content
/// is overwritten (`secure_delete`), so a correction's stated value erased by
/// retention does not linger in the file's free pages.
/// The device and inode of the file at `path`.
fn file_at(path: &Path) -> Result<(u64, u64), RegistryError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)
        .map_err(|e| RegistryError::Backend(format!("{}: {e}", path.display())))?;
    Ok((meta.dev(), meta.ino()))
}

/// Refuses a change when the registry file the gateway opened was removed or
/// replaced under it: the change would go to a file the next start does not read.
fn still_there(path: &Path, opened: (u64, u64)) -> Result<(), RegistryError> {
    if file_at(path).ok() == Some(opened) {
        return Ok(());
    }
    let problem = format!(
        "the registry file {} was removed or replaced under the running gateway; changes \
         are refused, as the next start would not see them (put it back and restart)",
        path.display()
    );
    tracing::error!(%problem, "registry change refused");
    Err(RegistryError::Backend(problem))
}

fn connect(path: &Path) -> Result<Connection, RegistryError> {
    let conn = crate::sqlite::connect(path, BUSY_TIMEOUT)?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(conn)
}

impl From<rusqlite::Error> for RegistryError {
    fn from(error: rusqlite::Error) -> RegistryError {
        RegistryError::Backend(format!("SQLite: {error}"))
    }
}

/// The registry database's schema, as the shared helper migrates it.
const SCHEMA: crate::sqlite::Schema = crate::sqlite::Schema {
    name: "registry",
    migrations: MIGRATIONS,
};

/// An open that failed, as the registry reports it.
fn open_error(error: crate::sqlite::OpenError) -> RegistryError {
    use crate::sqlite::OpenError;
    match error {
        OpenError::Create { path, source } => RegistryError::DataDir { path, source },
        OpenError::TooNew { found, known } => RegistryError::TooNew { found, known },
        OpenError::BadVersion => {
            RegistryError::Corrupt("the schema version is not a number".into())
        }
        OpenError::Sqlite(e) => e.into(),
        other @ OpenError::NotWal { .. } => RegistryError::Corrupt(other.to_string()),
    }
}

fn read_revision(conn: &Connection) -> Result<u64, RegistryError> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |row| {
            row.get(0)
        })
        .optional()?;
    let text = text.ok_or_else(|| RegistryError::Corrupt("the revision is missing".into()))?;
    text.parse()
        .map_err(|_| RegistryError::Corrupt(format!("the revision `{text}` is not a number")))
}

/// Applies one change inside the commit's transaction.
fn apply(tx: &Transaction<'_>, change: Change) -> Result<(), RegistryError> {
    match change {
        Change::PutConnector(version) => put_connector(tx, version),
        Change::SaveDraft(version) => insert_version(tx, &version, None).map(|_| ()),
        Change::ActivateVersion(version) => activate_version(tx, version),
        Change::DecideReview(version) => decide_review(tx, version),
        Change::SetConnectorEnabled { id, enabled } => {
            let updated = tx.execute(
                "UPDATE connectors SET enabled = ?2 WHERE id = ?1",
                params![id, i64::from(enabled)],
            )?;
            require_one(updated > 0, || format!("connector `{id}`"))
        }
        Change::RemoveConnector { id } => {
            let deleted = tx.execute("DELETE FROM connectors WHERE id = ?1", [&id])?;
            require_one(deleted > 0, || format!("connector `{id}`"))
        }
        Change::PutPolicyFile(file) => put_file(tx, "policy_files", &file),
        Change::RemovePolicyFile { path } => remove_file(tx, "policy_files", "policy", &path),
        Change::PutPurposeFile(file) => put_file(tx, "purpose_files", &file),
        Change::RemovePurposeFile { path } => remove_file(tx, "purpose_files", "purpose", &path),
        Change::AddGrant(grant) => {
            if exists(tx, "SELECT 1 FROM grants WHERE id = ?1", &grant.id)? {
                return Err(already_exists("grant", &grant.id));
            }
            tx.execute(
                "INSERT INTO grants (id, body, created_seq)
                   VALUES (?1, ?2, (SELECT coalesce(max(created_seq), 0) + 1 FROM grants))",
                params![grant.id, to_json(&grant)?],
            )?;
            Ok(())
        }
        Change::RevokeGrant { id, revocation } => revoke_grant(tx, &id, revocation),
        Change::AddRequest(request) => {
            if exists(
                tx,
                "SELECT 1 FROM access_requests WHERE id = ?1",
                &request.id,
            )? {
                return Err(already_exists("access request", &request.id));
            }
            tx.execute(
                "INSERT INTO access_requests (id, body, created_seq)
                   VALUES (?1, ?2,
                           (SELECT coalesce(max(created_seq), 0) + 1 FROM access_requests))",
                params![request.id, to_json(&request)?],
            )?;
            Ok(())
        }
        Change::DecideRequest(request) => {
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM access_requests WHERE id = ?1",
                    [&request.id],
                    |row| row.get(0),
                )
                .optional()?;
            let body = body.ok_or_else(|| {
                RegistryError::Missing(format!("access request `{}`", request.id))
            })?;
            let stored: AccessRequest =
                from_json(&body, || format!("access request `{}`", request.id))?;
            still_pending(&stored)?;
            tx.execute(
                "UPDATE access_requests SET body = ?2 WHERE id = ?1",
                params![request.id, to_json(&request)?],
            )?;
            Ok(())
        }
        Change::AddCorrection(correction) => {
            if exists(
                tx,
                "SELECT 1 FROM corrections WHERE id = ?1",
                &correction.id,
            )? {
                return Err(already_exists("correction", &correction.id));
            }
            let stated = correction.stated.as_ref();
            tx.execute(
                "INSERT INTO corrections (id, body, stated_value, note, created_seq)
                   VALUES (?1, ?2, ?3, ?4,
                           (SELECT coalesce(max(created_seq), 0) + 1 FROM corrections))",
                params![
                    correction.id,
                    to_json(&correction)?,
                    stated.map(|s| s.value.as_str()),
                    stated.map(|s| s.note.as_str()),
                ],
            )?;
            Ok(())
        }
        Change::AnswerCorrection(correction) => {
            still_open(&read_correction(tx, &correction.id)?)?;
            tx.execute(
                "UPDATE corrections SET body = ?2 WHERE id = ?1",
                params![correction.id, to_json(&correction)?],
            )?;
            Ok(())
        }
        Change::EraseCorrection { id, at } => {
            let erased = erased(read_correction(tx, &id)?, at)?;
            tx.execute(
                "UPDATE corrections SET body = ?2, stated_value = NULL, note = NULL
                   WHERE id = ?1",
                params![id, to_json(&erased)?],
            )?;
            Ok(())
        }
    }
}

/// Registers a connector or adds a version of it, enabled. The version number given
/// is ignored: the registry numbers versions. Content equal to the current version's
/// makes no new version.
fn put_connector(tx: &Transaction<'_>, version: ConnectorVersion) -> Result<(), RegistryError> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT current_version FROM connectors WHERE id = ?1",
            [&version.id],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(current) = current {
        let stored = read_version(tx, &version.id, current)?;
        if stored.same_content(&version) {
            tx.execute(
                "UPDATE connectors SET enabled = 1 WHERE id = ?1",
                [&version.id],
            )?;
            return Ok(());
        }
    }
    let next = insert_version(tx, &version, Some(&version.created_at))?;
    tx.execute(
        "INSERT INTO connectors (id, current_version, enabled) VALUES (?1, ?2, 1)
           ON CONFLICT (id) DO UPDATE SET current_version = excluded.current_version,
                                          enabled = 1",
        params![version.id, next],
    )?;
    Ok(())
}

/// Stores `version` under the next version number (in force since `activated_at`, or
/// a draft), superseding any version of the connector still pending review; returns
/// the number.
fn insert_version(
    tx: &Transaction<'_>,
    version: &ConnectorVersion,
    activated_at: Option<&str>,
) -> Result<i64, RegistryError> {
    supersede_pending(tx, &version.id)?;
    let last: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM connector_versions WHERE id = ?1",
        [&version.id],
        |row| row.get(0),
    )?;
    let next = next_version(&version.id, last)?;
    let review = version.review.as_ref().map(to_json).transpose()?;
    tx.execute(
        "INSERT INTO connector_versions
           (id, version, department, definition, schemas, origin, created_at, created_by, review,
            activated_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            version.id,
            next,
            version.department,
            version.definition,
            to_json(&version.schemas)?,
            to_json(&version.origin)?,
            version.created_at,
            version.created_by,
            review,
            activated_at,
        ],
    )?;
    Ok(next)
}

/// Marks every version of connector `id` that is still pending review as superseded.
fn supersede_pending(tx: &Transaction<'_>, id: &str) -> Result<(), RegistryError> {
    let pending: Vec<i64> = {
        let mut statement = tx.prepare(
            "SELECT version FROM connector_versions
               WHERE id = ?1 AND review IS NOT NULL AND json_extract(review, '$.state') = 'pending'",
        )?;
        statement
            .query_map([id], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    for number in pending {
        let mut stored = read_version(tx, id, number)?;
        if let Some(review) = stored.review.as_mut() {
            review.state = ReviewState::Superseded;
        }
        tx.execute(
            "UPDATE connector_versions SET review = ?3 WHERE id = ?1 AND version = ?2",
            params![id, number, stored.review.as_ref().map(to_json).transpose()?],
        )?;
    }
    Ok(())
}

/// Puts a stored version in force, enabled, if its review (if any) approved it.
fn activate_version(tx: &Transaction<'_>, version: ConnectorVersion) -> Result<(), RegistryError> {
    let (id, number) = (&version.id, i64::from(version.version));
    let stored = read_version(tx, id, number).map_err(|_| missing_version(id, number))?;
    let at = activation(&stored, &version)?;
    tx.execute(
        "INSERT INTO connectors (id, current_version, enabled) VALUES (?1, ?2, 1)
           ON CONFLICT (id) DO UPDATE SET current_version = excluded.current_version,
                                          enabled = 1",
        params![id, number],
    )?;
    tx.execute(
        "UPDATE connector_versions SET activated_at = ?3 WHERE id = ?1 AND version = ?2",
        params![id, number, at],
    )?;
    Ok(())
}

/// Records a review's decision; an approved version goes into force.
fn decide_review(tx: &Transaction<'_>, decided: ConnectorVersion) -> Result<(), RegistryError> {
    let (id, number) = (&decided.id, i64::from(decided.version));
    let stored = read_version(tx, id, number).map_err(|_| missing_version(id, number))?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT current_version FROM connectors WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .optional()?;
    let checked = review_decision(&stored, &decided, current)?;
    if let Some(at) = checked.activated_at {
        tx.execute(
            "INSERT INTO connectors (id, current_version, enabled) VALUES (?1, ?2, 1)
               ON CONFLICT (id) DO UPDATE SET current_version = excluded.current_version,
                                              enabled = 1",
            params![id, number],
        )?;
        tx.execute(
            "UPDATE connector_versions SET activated_at = ?3 WHERE id = ?1 AND version = ?2",
            params![id, number, at],
        )?;
    }
    tx.execute(
        "UPDATE connector_versions SET review = ?3 WHERE id = ?1 AND version = ?2",
        params![id, number, to_json(checked.decision)?],
    )?;
    Ok(())
}

fn revoke_grant(
    tx: &Transaction<'_>,
    id: &str,
    revocation: Revocation,
) -> Result<(), RegistryError> {
    let body: Option<String> = tx
        .query_row("SELECT body FROM grants WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?;
    let body = body.ok_or_else(|| RegistryError::Missing(format!("grant `{id}`")))?;
    let grant: GrantRecord = from_json(&body, || format!("grant `{id}`"))?;
    let grant = revoked(grant, revocation)?;
    tx.execute(
        "UPDATE grants SET body = ?2 WHERE id = ?1",
        params![id, to_json(&grant)?],
    )?;
    Ok(())
}

/// Stores an applied file in `table` (one of this module's file tables), replacing
/// the one at its path.
fn put_file(
    tx: &Transaction<'_>,
    table: &str,
    file: &PolicyFileRecord,
) -> Result<(), RegistryError> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (path, text) VALUES (?1, ?2)
               ON CONFLICT (path) DO UPDATE SET text = excluded.text"
        ),
        params![file.path, file.text],
    )?;
    Ok(())
}

/// Forgets the applied file at `path` in `table`; `kind` names it in the error.
fn remove_file(
    tx: &Transaction<'_>,
    table: &str,
    kind: &str,
    path: &str,
) -> Result<(), RegistryError> {
    let deleted = tx.execute(&format!("DELETE FROM {table} WHERE path = ?1"), [path])?;
    require_one(deleted > 0, || format!("{kind} file `{path}`"))
}

fn exists(conn: &Connection, sql: &str, id: &str) -> Result<bool, RegistryError> {
    Ok(conn.query_row(sql, [id], |_| Ok(())).optional()?.is_some())
}

/// The columns [`raw_version`] reads, in order.
const VERSION_COLUMNS: &str = "id, version, department, definition, schemas, origin, \
     created_at, created_by, review, activated_at";

/// A `connector_versions` row of [`VERSION_COLUMNS`].
fn raw_version(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawVersion> {
    Ok(RawVersion {
        id: row.get(0)?,
        version: row.get(1)?,
        department: row.get(2)?,
        definition: row.get(3)?,
        schemas: row.get(4)?,
        origin: row.get(5)?,
        created_at: row.get(6)?,
        created_by: row.get(7)?,
        review: row.get(8)?,
        activated_at: row.get(9)?,
    })
}

fn read_version(
    conn: &Connection,
    id: &str,
    version: i64,
) -> Result<ConnectorVersion, RegistryError> {
    let raw = conn
        .query_row(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE id = ?1 AND version = ?2"
            ),
            params![id, version],
            raw_version,
        )
        .optional()?
        .ok_or_else(|| {
            RegistryError::Corrupt(format!(
                "connector `{id}`: its current version {version} is not stored"
            ))
        })?;
    raw.decode()
}

fn read_connectors(
    conn: &Connection,
) -> Result<BTreeMap<String, RegisteredConnector>, RegistryError> {
    let mut statement =
        conn.prepare("SELECT id, current_version, enabled FROM connectors ORDER BY id")?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, current, enabled)| {
            let current = read_version(conn, &id, current)?;
            Ok((
                id,
                RegisteredConnector {
                    current,
                    enabled: enabled != 0,
                },
            ))
        })
        .collect()
}

/// The files of `table` (`policy_files` or `purpose_files`), by path.
fn read_files(
    conn: &Connection,
    table: &str,
) -> Result<BTreeMap<String, PolicyFileRecord>, RegistryError> {
    let mut statement = conn.prepare(&format!("SELECT path, text FROM {table} ORDER BY path"))?;
    let files = statement
        .query_map([], |row| {
            Ok(PolicyFileRecord {
                path: row.get(0)?,
                text: row.get(1)?,
            })
        })?
        .map(|file| file.map(|file| (file.path.clone(), file)))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(files)
}

/// Every grant, revoked ones too, oldest first.
fn read_grants(conn: &Connection) -> Result<Vec<GrantRecord>, RegistryError> {
    read_bodies(
        conn,
        "SELECT id, body FROM grants ORDER BY created_seq",
        "grant",
    )
}

/// Decodes the JSON bodies of `sql`'s rows (`id, body`), each a `kind` (for messages).
fn read_bodies<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    kind: &str,
) -> Result<Vec<T>, RegistryError> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, body)| from_json(&body, || format!("{kind} `{id}`")))
        .collect()
}
