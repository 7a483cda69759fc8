//! A front database in a SQLite file (the demo's, and a county's smallest setup): a
//! few read-only connections, each opened `SQLITE_OPEN_READ_ONLY` with `query_only`
//! on, so that no statement can write; statements run on blocking threads and are
//! interrupted at the deadline. Rows come back as JSON objects keyed by the columns
//! the operation declares.
//!
//! A department replaces its export whole (a new file renamed over the old one); an
//! open connection would go on reading the old file, so a connection is reused only
//! while the path still names the file it opened, and one that met a fault is closed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Number, Value};
use tokio::sync::{Mutex, Semaphore};

use super::server::Writable;
use super::{FrontError, Query};

/// Read-only connections to one SQLite front database.
#[derive(Debug)]
pub struct SqliteFront {
    path: PathBuf,
    /// Connections not in use, with the file (inode) each opened; opened as needed
    /// up to `permits`.
    idle: Mutex<Vec<(Connection, u64)>>,
    permits: Semaphore,
}

impl SqliteFront {
    /// Up to `pool` connections to the file at `path` (opened at the first query).
    pub fn new(path: &Path, pool: usize) -> SqliteFront {
        SqliteFront {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool.max(1)),
        }
    }

    /// Runs `query` within `wait` for a connection and `limit` for the statement.
    pub(super) async fn rows(
        &self,
        query: &Query,
        key: &str,
        wait: Duration,
        limit: Duration,
    ) -> Result<Vec<Value>, FrontError> {
        let _permit = super::connection_permit(&self.permits, wait).await?;
        let (connection, file) = self.checkout().await?;
        let interrupt = connection.get_interrupt_handle();
        let (query, key) = (query.clone(), key.to_owned());
        let mut running = tokio::task::spawn_blocking(move || {
            let rows = read(&connection, &query, &key);
            (connection, rows)
        });
        let (connection, rows) = match tokio::time::timeout(limit, &mut running).await {
            Ok(done) => done.map_err(|_| FrontError::Unreachable)?,
            Err(_) => {
                // Stops the statement; the connection comes back once it has.
                interrupt.interrupt();
                let (connection, _) = running.await.map_err(|_| FrontError::Unreachable)?;
                self.idle.lock().await.push((connection, file));
                return Err(FrontError::Timeout);
            }
        };
        // A connection that met a fault is closed: the next one opens the file anew.
        if rows.is_ok() {
            self.idle.lock().await.push((connection, file));
        }
        rows
    }

    /// An idle connection to the file the path names now, or a new one.
    async fn checkout(&self) -> Result<(Connection, u64), FrontError> {
        use std::os::unix::fs::MetadataExt as _;
        let now = std::fs::metadata(&self.path)
            .map_err(|_| FrontError::Unreachable)?
            .ino();
        let mut idle = self.idle.lock().await;
        // Connections to a file since replaced are closed.
        idle.retain(|(_, file)| *file == now);
        if let Some(taken) = idle.pop() {
            return Ok(taken);
        }
        drop(idle);
        Ok((open(&self.path)?, now))
    }

    /// Whether the gateway could write the file (it opens it read-only all the same).
    pub(super) fn could_write(&self) -> Writable {
        // Opening for writing changes nothing; it only asks whether we could.
        if std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .is_ok()
        {
            Writable::Yes
        } else {
            Writable::No
        }
    }
}

#[cfg(test)]
impl SqliteFront {
    /// Runs a statement that writes on one of the gateway's connections.
    pub(super) async fn try_write(&self, sql: &str) -> Result<(), FrontError> {
        let (connection, file) = self.checkout().await?;
        let done = connection.execute_batch(sql).map_err(classify);
        self.idle.lock().await.push((connection, file));
        done
    }
}

/// A read-only connection to the file at `path`.
pub(super) fn open(path: &Path) -> Result<Connection, FrontError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|_| FrontError::Unreachable)?;
    connection
        .execute_batch("PRAGMA query_only = ON;")
        .map_err(|_| FrontError::Unreachable)?;
    // A double-quoted name is never read as a string.
    connection
        .set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
        .map_err(|_| FrontError::Unreachable)?;
    connection
        .busy_timeout(Duration::from_millis(500))
        .map_err(|_| FrontError::Unreachable)?;
    Ok(connection)
}

fn read(connection: &Connection, query: &Query, key: &str) -> Result<Vec<Value>, FrontError> {
    let mut statement = connection.prepare_cached(&query.sql).map_err(classify)?;
    let mut rows = statement.query([key]).map_err(classify)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(classify)? {
        let mut object = Map::with_capacity(query.columns.len());
        for (i, column) in query.columns.iter().enumerate() {
            let value = match row.get_ref(i).map_err(classify)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Number(n.into()),
                ValueRef::Real(x) => Number::from_f64(x)
                    .map(Value::Number)
                    .ok_or(FrontError::Drift)?,
                ValueRef::Text(text) => Value::String(
                    std::str::from_utf8(text)
                        .map_err(|_| FrontError::Drift)?
                        .to_owned(),
                ),
                ValueRef::Blob(_) => return Err(FrontError::Drift),
            };
            object.insert(column.clone(), value);
        }
        out.push(Value::Object(object));
        if out.len() >= query.limit {
            break;
        }
    }
    Ok(out)
}

/// What a SQLite failure means for the department, without its text.
fn classify(error: rusqlite::Error) -> FrontError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            rusqlite::ErrorCode::OperationInterrupted => FrontError::Timeout,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                FrontError::Timeout
            }
            rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::NotADatabase
            | rusqlite::ErrorCode::DatabaseCorrupt
            | rusqlite::ErrorCode::SystemIoFailure => FrontError::Unreachable,
            rusqlite::ErrorCode::ReadOnly => FrontError::Refused,
            rusqlite::ErrorCode::PermissionDenied
            | rusqlite::ErrorCode::AuthorizationForStatementDenied => FrontError::Credentials,
            // "no such table", "no such column": the export is not what was declared.
            _ => FrontError::Drift,
        },
        rusqlite::Error::InvalidColumnIndex(_) | rusqlite::Error::InvalidColumnType(..) => {
            FrontError::Drift
        }
        _ => FrontError::Drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exhausted_pool_is_said_so_and_recovers_by_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("front.db");
        Connection::open(&path)
            .and_then(|db| {
                db.execute_batch(
                    "CREATE TABLE t (k TEXT, v TEXT); INSERT INTO t VALUES ('a', 'x');",
                )
            })
            .expect("a front database");
        let front = SqliteFront::new(&path, 1);
        let query = Query {
            sql: "SELECT `v` FROM `t` WHERE `k` = ? LIMIT 2".into(),
            columns: vec!["v".to_owned()].into(),
            limit: 2,
        };
        let wait = Duration::from_millis(20);
        let limit = Duration::from_secs(5);
        // Every connection is taken (the one there is, by another lookup).
        let held = front.permits.acquire().await.expect("the permit");
        assert_eq!(
            front.rows(&query, "a", wait, limit).await,
            Err(FrontError::PoolExhausted)
        );
        drop(held);
        let rows = front.rows(&query, "a", wait, limit).await.expect("rows");
        assert_eq!(rows, vec![serde_json::json!({"v": "x"})]);
    }

    #[tokio::test]
    async fn an_export_replaced_whole_is_read_at_the_next_lookup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("front.db");
        let export = |file: &Path, value: &str| {
            Connection::open(file)
                .and_then(|db| {
                    db.execute_batch(&format!(
                        "CREATE TABLE t (k TEXT, v TEXT); INSERT INTO t VALUES ('a', '{value}');"
                    ))
                })
                .expect("an export");
        };
        export(&path, "old");
        let front = SqliteFront::new(&path, 2);
        let query = Query {
            sql: "SELECT `v` FROM `t` WHERE `k` = ? LIMIT 2".into(),
            columns: vec!["v".to_owned()].into(),
            limit: 2,
        };
        let wait = Duration::from_secs(5);
        let read = || front.rows(&query, "a", wait, wait);
        assert_eq!(read().await, Ok(vec![serde_json::json!({"v": "old"})]));
        // The department writes a new file and renames it over the old one, while the
        // gateway holds a connection to the old one.
        let next = dir.path().join("front.db.new");
        export(&next, "new");
        std::fs::rename(&next, &path).expect("renamed");
        assert_eq!(read().await, Ok(vec![serde_json::json!({"v": "new"})]));
    }
}
