//! A front database in MySQL or MariaDB: a pool of connections, each made read-only
//! (`SET SESSION TRANSACTION READ ONLY`) with a server-side statement time limit
//! (MariaDB's `max_statement_time`, MySQL's `max_execution_time`) as soon as it is
//! opened and again each time the pool resets it for reuse. Which of the two servers it is, is asked once, at the first connection;
//! until a connection succeeds, every lookup tries again, so the pool comes back by
//! itself when the database does. Statements are prepared and the subject's key is
//! bound. Rows come back as JSON objects keyed by the operation's declared columns.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, SslOpts, Value};
use serde_json::{Map, Number, Value as Json};
use tokio::sync::{OnceCell, Semaphore};

use super::server::{ServerSettings, Writable};
use super::{FrontError, Query};

/// Connections to one MySQL or MariaDB front database.
pub struct MysqlFront {
    opts: Opts,
    settings: ServerSettings,
    /// Made at the first connection that succeeds.
    pool: OnceCell<Pool>,
    permits: Semaphore,
}

impl std::fmt::Debug for MysqlFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options hold the password.
        f.debug_struct("MysqlFront")
            .field("host", &self.opts.ip_or_hostname())
            .field("port", &self.opts.tcp_port())
            .finish_non_exhaustive()
    }
}

impl MysqlFront {
    /// A front database at `url` (`mysql://user:password@host:port/database`, no
    /// query). Nothing is connected yet.
    pub fn new(url: &str, settings: ServerSettings) -> Result<MysqlFront, String> {
        super::server::check_address(url, &["mysql"], "mysql://user@host/database")?;
        let opts = Opts::from_url(url).map_err(|_| "is not a mysql:// address".to_owned())?;
        let tls = settings.tls(opts.ip_or_hostname());
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(64)
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            let mut ssl = SslOpts::default();
            if let Some(ca) = tls {
                ssl = ssl
                    .with_root_certs(vec![ca.into()])
                    .with_disable_built_in_roots(true);
            }
            builder = builder.ssl_opts(ssl);
        }
        Ok(MysqlFront {
            opts: builder.into(),
            permits: Semaphore::new(settings.pool),
            settings,
            pool: OnceCell::new(),
        })
    }

    /// The pool, made at the first connection that succeeds: which server answers
    /// decides the statement that sets its time limit.
    async fn pool(&self, wait: Duration) -> Result<&Pool, FrontError> {
        self.pool
            .get_or_try_init(|| async {
                let mut first =
                    tokio::time::timeout(wait, mysql_async::Conn::new(self.opts.clone()))
                        .await
                        .map_err(|_| FrontError::Unreachable)?
                        .map_err(classify)?;
                let version: Option<String> = first
                    .query_first("SELECT VERSION()")
                    .await
                    .map_err(classify)?;
                let _ = first.disconnect().await;
                let limit = self.settings.statement_timeout.as_millis();
                let timeout = if version.is_some_and(|v| v.contains("MariaDB")) {
                    // Seconds, fractions allowed.
                    format!("SET SESSION max_statement_time = {}", limit as f64 / 1000.0)
                } else {
                    format!("SET SESSION max_execution_time = {limit}")
                };
                let constraints =
                    PoolConstraints::new(0, self.settings.pool).ok_or(FrontError::Unreachable)?;
                let opts = OptsBuilder::from_opts(self.opts.clone())
                    .setup(vec![
                        "SET SESSION TRANSACTION READ ONLY".to_owned(),
                        timeout,
                    ])
                    .pool_opts(
                        PoolOpts::default()
                            .with_constraints(constraints)
                            .with_inactive_connection_ttl(Duration::from_secs(60)),
                    );
                Ok(Pool::new(opts))
            })
            .await
    }

    /// A pooled connection, within `wait`.
    async fn conn(&self, wait: Duration) -> Result<mysql_async::Conn, FrontError> {
        let pool = self.pool(wait).await?;
        tokio::time::timeout(wait, pool.get_conn())
            .await
            .map_err(|_| FrontError::Unreachable)?
            .map_err(classify)
    }

    /// Runs `query` within `wait` for a connection and `limit` for the statement.
    pub(super) async fn rows(
        &self,
        query: &Query,
        key: &str,
        wait: Duration,
        limit: Duration,
    ) -> Result<Vec<Json>, FrontError> {
        let _permit = super::connection_permit(&self.permits, wait).await?;
        let mut conn = self.conn(wait).await?;
        let rows: Vec<Row> = tokio::time::timeout(limit, conn.exec(query.sql.as_ref(), (key,)))
            .await
            .map_err(|_| FrontError::Timeout)?
            .map_err(classify)?;
        rows.iter()
            .take(query.limit)
            .map(|row| object(row, &query.columns))
            .collect()
    }

    /// Whether the gateway's user may change anything in the database: a privilege
    /// to write, on the server, the database or one of its tables.
    pub async fn could_write(&self, wait: Duration) -> Result<Writable, FrontError> {
        let mut conn = self.conn(wait).await?;
        // Privileges are listed for the account the server matched ('user'@'host').
        let writes: Option<i64> = conn
            .query_first(
                "SELECT COUNT(*) FROM (
                   SELECT PRIVILEGE_TYPE, GRANTEE FROM information_schema.USER_PRIVILEGES
                   UNION ALL SELECT PRIVILEGE_TYPE, GRANTEE FROM information_schema.SCHEMA_PRIVILEGES
                     WHERE TABLE_SCHEMA = DATABASE()
                   UNION ALL SELECT PRIVILEGE_TYPE, GRANTEE FROM information_schema.TABLE_PRIVILEGES
                     WHERE TABLE_SCHEMA = DATABASE()
                 ) p
                 WHERE p.GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''',
                                          SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')
                   AND p.PRIVILEGE_TYPE IN ('INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP',
                                            'ALTER', 'INDEX', 'CREATE VIEW', 'TRIGGER',
                                            'ALTER ROUTINE', 'CREATE ROUTINE', 'SUPER')",
            )
            .await
            .map_err(classify)?;
        Ok(if writes.unwrap_or(0) > 0 {
            Writable::Yes
        } else {
            Writable::No
        })
    }
}

#[cfg(test)]
impl MysqlFront {
    /// Runs a statement that writes on one of the gateway's connections.
    pub(super) async fn try_write(&self, sql: &str) -> Result<(), FrontError> {
        let mut conn = self.conn(Duration::from_secs(5)).await?;
        conn.exec_drop(sql, ()).await.map_err(classify)
    }
}

fn object(row: &Row, columns: &Arc<[String]>) -> Result<Json, FrontError> {
    if row.len() != columns.len() {
        return Err(FrontError::Drift);
    }
    let mut object = Map::with_capacity(columns.len());
    for ((column, name), value) in row.columns_ref().iter().zip(columns.iter()).zip(0..) {
        let value = row.as_ref(value).ok_or(FrontError::Drift)?;
        object.insert(
            name.clone(),
            cell(column.column_type(), column.character_set(), value)?,
        );
    }
    Ok(Json::Object(object))
}

/// One value as JSON: text as a string, integers and floats as numbers, DECIMAL as
/// its exact digits (a string, as money is written in the other kinds), dates as ISO
/// 8601 text. Binary data is not something an export of personal records should hold:
/// drift.
fn cell(kind: ColumnType, charset: u16, value: &Value) -> Result<Json, FrontError> {
    const BINARY: u16 = 63;
    Ok(match value {
        Value::NULL => Json::Null,
        Value::Int(n) => Json::Number((*n).into()),
        Value::UInt(n) => Json::Number((*n).into()),
        Value::Float(x) => Number::from_f64(f64::from(*x))
            .map(Json::Number)
            .ok_or(FrontError::Drift)?,
        Value::Double(x) => Number::from_f64(*x)
            .map(Json::Number)
            .ok_or(FrontError::Drift)?,
        Value::Bytes(bytes) => {
            let decimal = matches!(
                kind,
                ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL
            );
            if charset == BINARY && !decimal {
                return Err(FrontError::Drift);
            }
            Json::String(
                std::str::from_utf8(bytes)
                    .map_err(|_| FrontError::Drift)?
                    .to_owned(),
            )
        }
        Value::Date(y, m, d, h, mi, s, _) => Json::String(match kind {
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => {
                format!("{y:04}-{m:02}-{d:02}")
            }
            _ => format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        }),
        Value::Time(..) => return Err(FrontError::Drift),
    })
}

/// What a MySQL or MariaDB failure means for the department, without its text.
fn classify(error: mysql_async::Error) -> FrontError {
    match &error {
        mysql_async::Error::Server(server) => match server.code {
            // Access denied for the user, or to the database.
            1044 | 1045 | 1698 => FrontError::Credentials,
            // Unknown database.
            1049 => FrontError::Unreachable,
            // No such table, unknown column, a view whose definition no longer holds.
            1146 | 1054 | 1356 => FrontError::Drift,
            // MariaDB's max_statement_time, MySQL's max_execution_time; a killed query.
            1969 | 3024 | 1317 => FrontError::Timeout,
            // A read-only transaction; a statement the user may not run.
            1792 | 1142 | 1143 => FrontError::Refused,
            // Too many connections.
            1040 | 1203 => FrontError::PoolExhausted,
            _ => FrontError::Drift,
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => FrontError::Unreachable,
        _ => FrontError::Unreachable,
    }
}
