//! The daily quota counts' SQLite file (`DATA_DIR/quota.db` in a gateway): table
//! `day_counts (day, key, count)`, one row per counter and day (`day` as
//! `YYYY-MM-DD`, China Standard Time). Opened and migrated by [`crate::sqlite`] (WAL,
//! `synchronous=FULL`, so a committed write survives a power cut).
//!
//! [`super::daily`] decides what to write and when; this module only reads and
//! writes rows, on one connection kept behind a mutex that is only ever locked off
//! the runtime's workers (calls are rare and short).

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::{Connection, params};
use tokio::sync::{Mutex, MutexGuard};

use super::StateError;
use crate::sqlite::{Journal, Schema};

impl From<rusqlite::Error> for StateError {
    fn from(error: rusqlite::Error) -> StateError {
        StateError::Backend(format!("SQLite: {error}"))
    }
}

/// How long a write waits for another writer of the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const DAY_FORMAT: &str = "%Y-%m-%d";

/// The file's schema; entry `i` takes it from version `i` to `i + 1`.
const SCHEMA: Schema = Schema {
    name: "daily counts",
    migrations: &[
        // 1: the counts. `IF NOT EXISTS`: the counts were once a table of the store's
        // `gateway.db`, whose meta row says version 1 too (see `crate::store`).
        "CREATE TABLE IF NOT EXISTS day_counts (
             day TEXT NOT NULL,
             key TEXT NOT NULL,
             count INTEGER NOT NULL,
             PRIMARY KEY (day, key)
         ) STRICT, WITHOUT ROWID;",
    ],
};

/// Rows as `(day, key, count)`.
pub(super) type Rows = Vec<(NaiveDate, String, u32)>;

/// The open table.
pub(super) struct CountFile {
    path: std::path::PathBuf,
    state: Mutex<FileState>,
}

/// The connection, and what it has done.
pub(super) struct FileState {
    conn: Connection,
    /// Rows of days before this one were already removed.
    pruned_before: Option<NaiveDate>,
}

impl CountFile {
    /// Opens the file at `path`, creating the table if needed, and reads every row:
    /// `(day, key, count)`. Rows whose day does not parse are left out.
    pub(super) fn open(path: &Path) -> Result<(CountFile, Rows), StateError> {
        let conn = crate::sqlite::open(path, &SCHEMA, Journal::PreferWal, BUSY_TIMEOUT)
            .map_err(|e| StateError::Backend(format!("the daily counts: {e}")))?
            .conn;
        let rows = {
            let read = |conn: &Connection| -> Result<Rows, rusqlite::Error> {
                let mut statement = conn.prepare("SELECT day, key, count FROM day_counts")?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (day, key, count) = row?;
                    if let Ok(day) = NaiveDate::parse_from_str(&day, DAY_FORMAT) {
                        out.push((day, key, u32::try_from(count.max(0)).unwrap_or(u32::MAX)));
                    }
                }
                Ok(out)
            };
            read(&conn)?
        };
        let state = FileState {
            conn,
            pruned_before: None,
        };
        Ok((
            CountFile {
                path: path.to_owned(),
                state: Mutex::new(state),
            },
            rows,
        ))
    }

    /// Proves the file takes a write right now (on a connection of its own, rolled
    /// back at once). Blocking.
    pub(super) fn probe(&self) -> Result<(), StateError> {
        Ok(crate::sqlite::probe_write(&self.path, BUSY_TIMEOUT)?)
    }

    /// The connection, waiting for it. Never call this on a runtime worker: on the
    /// blocking pool, or outside a runtime.
    pub(super) fn lock(&self) -> MutexGuard<'_, FileState> {
        self.state.blocking_lock()
    }

    /// The connection if it is free.
    pub(super) fn try_lock(&self) -> Option<MutexGuard<'_, FileState>> {
        self.state.try_lock().ok()
    }
}

impl FileState {
    /// Raises each row to at least its given count (never lowers one), in one
    /// transaction.
    pub(super) fn reserve(
        &mut self,
        rows: &[(NaiveDate, String, u32)],
    ) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO day_counts (day, key, count) VALUES (?1, ?2, ?3)
                   ON CONFLICT (day, key) DO UPDATE SET count = max(count, excluded.count)",
            )?;
            for (day, key, count) in rows {
                upsert.execute(params![day.format(DAY_FORMAT).to_string(), key, count])?;
            }
        }
        tx.commit()
    }

    /// Replaces the whole table with these rows, in one transaction.
    pub(super) fn replace_all(
        &mut self,
        rows: &[(NaiveDate, String, u32)],
    ) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM day_counts", [])?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO day_counts (day, key, count) VALUES (?1, ?2, ?3)")?;
            for (day, key, count) in rows {
                insert.execute(params![day.format(DAY_FORMAT).to_string(), key, count])?;
            }
        }
        tx.commit()
    }

    /// Removes the rows of days before `today`, once a day.
    pub(super) fn prune(&mut self, today: NaiveDate) -> Result<(), rusqlite::Error> {
        if self.pruned_before.is_some_and(|d| d >= today) {
            return Ok(());
        }
        self.conn.execute(
            "DELETE FROM day_counts WHERE day < ?1",
            [today.format(DAY_FORMAT).to_string()],
        )?;
        self.pruned_before = Some(today);
        Ok(())
    }
}
