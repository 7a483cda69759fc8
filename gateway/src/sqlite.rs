//! How every SQLite file of the gateway is opened: the audit log, the registry, the
//! daily quota counts and a witness's store. One place sets what they all need —
//! the file created private (`0600`, in a `0700` data directory) before SQLite first
//! opens it, WAL journaling, `synchronous=FULL` (a committed write survives a power
//! cut), a busy timeout — and migrates the schema.
//!
//! **Migrations.** Each file keeps its schema version in a `meta (key, value)` table,
//! row `schema_version`; entry `i` of a [`Schema`]'s migrations takes the schema from
//! version `i` to `i + 1`. [`open`] applies the missing ones in order, in one
//! `IMMEDIATE` transaction with the version update, and refuses a file a newer
//! gateway wrote. A file without the row is at version 0.
//!
//! Only the SQLite implementations of the stores use this module; their errors wrap
//! [`OpenError`] in a message, so no store's trait-level error names SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

/// A database's schema: its name (for messages) and its migrations.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// What the file holds, for messages and logs (`"audit"`, `"registry"`).
    pub name: &'static str,
    /// Entry `i` takes the schema from version `i` to `i + 1`.
    pub migrations: &'static [&'static str],
}

impl Schema {
    /// The schema version this code writes.
    pub const fn version(&self) -> u32 {
        self.migrations.len() as u32
    }
}

/// What a file needs of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// WAL or nothing: a file that refuses it is an error.
    RequireWal,
    /// WAL if the file takes it; otherwise a warning, and readers wait for writers.
    PreferWal,
}

/// Why a file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory or the file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file refuses WAL mode and [`Journal::RequireWal`] was asked.
    #[error("the database refuses WAL mode (it is in {mode} mode)")]
    NotWal { mode: String },
    /// The file was written by a newer gateway.
    #[error("version {found} was written by a newer gateway; this one knows up to {known}")]
    TooNew { found: u32, known: u32 },
    /// The stored schema version is not a number.
    #[error("the schema version is not a number")]
    BadVersion,
}

/// An open, migrated file.
#[derive(Debug)]
pub struct Opened {
    pub conn: Connection,
    /// The database file.
    pub path: PathBuf,
    /// The schema version the file had before this open (0: new, or unversioned).
    pub migrated_from: u32,
}

/// Opens the file at `path`, creating its directory and the file privately if
/// needed, with WAL (as `journal` asks), `synchronous=FULL` and a busy timeout of
/// `busy`, and migrates it to `schema`. Blocking.
pub fn open(
    path: &Path,
    schema: &Schema,
    journal: Journal,
    busy: Duration,
) -> Result<Opened, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::datadir::create_dir(dir).map_err(|source| OpenError::Create {
            path: dir.to_owned(),
            source,
        })?;
    }
    let path = path.to_owned();
    crate::datadir::create_private_file(&path).map_err(|source| OpenError::Create {
        path: path.clone(),
        source,
    })?;
    let mut conn = Connection::open(&path)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        match journal {
            Journal::RequireWal => return Err(OpenError::NotWal { mode }),
            Journal::PreferWal => tracing::warn!(
                path = %path.display(),
                mode,
                "the {} database refuses WAL mode; readers will wait for writers",
                schema.name
            ),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(busy)?;
    let migrated_from = migrate(&mut conn, schema)?;
    Ok(Opened {
        conn,
        path,
        migrated_from,
    })
}

/// Another connection to a file [`open`] already created and migrated: read-write,
/// `synchronous=FULL`, busy timeout `busy`. Blocking.
pub fn connect(path: &Path, busy: Duration) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// A read-only connection to an existing file, busy timeout `busy`. Blocking.
pub fn connect_read_only(path: &Path, busy: Duration) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    Ok(conn)
}

/// Proves the file takes a write transaction right now (rolled back at once), for
/// readiness probes. Blocking.
pub fn probe_write(path: &Path, busy: Duration) -> Result<(), rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
}

/// The schema version stored in `conn`'s `meta` table (0 when there is none).
pub fn schema_version(conn: &Connection) -> Result<u32, OpenError> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    match found {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| OpenError::BadVersion),
    }
}

/// Applies `schema`'s missing migrations in order, in one transaction; returns the
/// version found before.
pub fn migrate(conn: &mut Connection, schema: &Schema) -> Result<u32, OpenError> {
    let known = schema.version();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    )?;
    let found = schema_version(&tx)?;
    if found > known {
        return Err(OpenError::TooNew { found, known });
    }
    if found == known {
        return Ok(found);
    }
    for migration in schema.migrations.get(found as usize..).unwrap_or_default() {
        tx.execute_batch(migration)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [known.to_string()],
    )?;
    tx.commit()?;
    tracing::info!(
        from = found,
        to = known,
        "{} database schema migrated",
        schema.name
    );
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SCHEMA: Schema = Schema {
        name: "test",
        migrations: &[
            "CREATE TABLE a (x INTEGER) STRICT;",
            "ALTER TABLE a ADD COLUMN y TEXT;",
        ],
    };

    #[test]
    fn a_new_file_is_private_in_wal_mode_and_migrated_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let opened = open(
            &dir.join("t.db"),
            &SCHEMA,
            Journal::RequireWal,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(opened.migrated_from, 0);
        let mode = std::fs::metadata(&opened.path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let journal: String = opened
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(schema_version(&opened.conn).unwrap(), 2);
        drop(opened);
        let again = open(
            &dir.join("t.db"),
            &SCHEMA,
            Journal::RequireWal,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(again.migrated_from, 2);
        connect(&again.path, Duration::ZERO).unwrap();
        connect_read_only(&again.path, Duration::ZERO).unwrap();
        probe_write(&again.path, Duration::ZERO).unwrap();
    }

    #[test]
    fn missing_migrations_apply_in_order_and_a_newer_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let first = Schema {
            name: "test",
            migrations: &SCHEMA.migrations[..1],
        };
        let opened = open(
            &root.path().join("t.db"),
            &first,
            Journal::PreferWal,
            Duration::ZERO,
        )
        .unwrap();
        drop(opened);
        let opened = open(
            &root.path().join("t.db"),
            &SCHEMA,
            Journal::PreferWal,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(opened.migrated_from, 1);
        opened
            .conn
            .execute("INSERT INTO a (x, y) VALUES (1, 'b')", [])
            .unwrap();
        drop(opened);
        let refused = open(
            &root.path().join("t.db"),
            &first,
            Journal::PreferWal,
            Duration::ZERO,
        );
        assert!(
            matches!(refused, Err(OpenError::TooNew { found: 2, known: 1 })),
            "{refused:?}"
        );
    }
}
