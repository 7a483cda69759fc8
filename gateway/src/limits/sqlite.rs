//! The daily quota counts' table in the store's SQLite file: `day_counts (day, key,
//! count)`, one row per counter and day (`day` as `YYYY-MM-DD`, China Standard Time).
//! The table is created on open if missing; the file is shared with the store's other
//! tables (WAL, `synchronous=FULL`, so a committed write survives a power cut).
//!
//! [`super::daily`] decides what to write and when; this module only reads and
//! writes rows, on one connection kept behind a mutex (calls are rare and short).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::{Connection, params};

/// How long a write waits for another writer of the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const DAY_FORMAT: &str = "%Y-%m-%d";

/// The open table.
pub(super) struct CountFile {
    conn: Mutex<Connection>,
}

impl CountFile {
    /// Opens the file at `path`, creating the table if needed, and reads every row:
    /// `(day, key, count)`. Rows whose day does not parse are left out.
    pub(super) fn open(
        path: &Path,
    ) -> Result<(CountFile, Vec<(NaiveDate, String, u32)>), rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS day_counts (
                 day TEXT NOT NULL,
                 key TEXT NOT NULL,
                 count INTEGER NOT NULL,
                 PRIMARY KEY (day, key)
             ) STRICT, WITHOUT ROWID;",
        )?;
        let rows = {
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
            out
        };
        Ok((
            CountFile {
                conn: Mutex::new(conn),
            },
            rows,
        ))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Raises each row to at least its given count (never lowers one), in one
    /// transaction.
    pub(super) fn reserve(
        conn: &mut Connection,
        rows: &[(NaiveDate, String, u32)],
    ) -> Result<(), rusqlite::Error> {
        let tx = conn.transaction()?;
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
        conn: &mut Connection,
        rows: &[(NaiveDate, String, u32)],
    ) -> Result<(), rusqlite::Error> {
        let tx = conn.transaction()?;
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

    /// Removes the rows of days before `today`.
    pub(super) fn prune(conn: &mut Connection, today: NaiveDate) -> Result<(), rusqlite::Error> {
        conn.execute(
            "DELETE FROM day_counts WHERE day < ?1",
            [today.format(DAY_FORMAT).to_string()],
        )?;
        Ok(())
    }
}
