//! The front-database connector kind (`kind: sql`, 前置库): a department exports what
//! it agrees to share into a table or view of a staging database, and each operation
//! reads one subject's row(s) from it with a `SELECT` written from checked names
//! ([`select`]), the subject's key bound as its only parameter, over a read-only
//! connection. Rows become a JSON record that the same mapping as the HTTP kind's
//! turns into the canonical record, so code tables, schema checks, cache, capacity,
//! audit and masks are the HTTP kind's too.
//!
//! Where the database is belongs to the county's operator, not to the connector's
//! author: a definition names its department's front database (`database:`), and the
//! gateway hands the connector the connection it declared for that department: a
//! SQLite file ([`sqlite`]), MySQL or MariaDB ([`mysql`]), or PostgreSQL
//! ([`postgres`]), each read-only and each with a statement time limit of its own
//! besides the connector's.
//!
//! A fault is named by its kind ([`FrontError`]) — unreachable, credentials refused,
//! too slow, no connection free, the export not as declared, two rows for one person —
//! never by the database's words or a row's content.

pub mod mysql;
pub mod postgres;
pub mod select;
pub mod server;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{ConnectorDef, DefinitionProblem, OperationCall, Transport};
use crate::mapping::map_record;
use crate::{BuildError, Connector, FetchContext, FetchError, Fetched};
use mysql::MysqlFront;
use postgres::PostgresFront;
pub use select::{Dialect, Rows, SelectDef};
use server::Writable;
use sqlite::SqliteFront;

/// The connector-side settings of `kind: sql`: which of its department's front
/// databases it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSettings {
    /// The name the operator gave the department's front database.
    pub database: String,
}

impl SqlSettings {
    pub(crate) fn problems(&self) -> Vec<DefinitionProblem> {
        if select::is_identifier(&self.database) {
            Vec::new()
        } else {
            vec![DefinitionProblem {
                path: "database".into(),
                message: "must name the department's front database: a plain identifier".into(),
            }]
        }
    }
}

/// How reading a front database failed, without the database's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrontError {
    #[error("the front database cannot be reached")]
    Unreachable,
    #[error("the front database refused the gateway's credentials")]
    Credentials,
    #[error("the front database did not answer in time")]
    Timeout,
    #[error("every connection to the front database is in use")]
    PoolExhausted,
    #[error("the front database's export is not what the connector declares")]
    Drift,
    #[error("the front database refused the statement")]
    Refused,
    #[error("the front database holds more than one row for one person")]
    DuplicateRows,
    #[error("the front database holds more rows for one person than the list may have")]
    TooManyRows,
}

impl FrontError {
    /// Every fault, in the order the docs list them.
    pub const ALL: [FrontError; 8] = [
        FrontError::Unreachable,
        FrontError::Credentials,
        FrontError::Timeout,
        FrontError::PoolExhausted,
        FrontError::Drift,
        FrontError::Refused,
        FrontError::DuplicateRows,
        FrontError::TooManyRows,
    ];

    /// The fault's name in answers, metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            FrontError::Unreachable => "unreachable",
            FrontError::Credentials => "credentials_refused",
            FrontError::Timeout => "statement_timeout",
            FrontError::PoolExhausted => "pool_exhausted",
            FrontError::Drift => "schema_drift",
            FrontError::Refused => "statement_refused",
            FrontError::DuplicateRows => "duplicate_rows",
            FrontError::TooManyRows => "too_many_rows",
        }
    }
}

/// Where a front database is, and the connections to it.
#[derive(Debug)]
pub enum Front {
    Sqlite(SqliteFront),
    Mysql(MysqlFront),
    Postgres(PostgresFront),
}

impl Front {
    /// The dialect its statements are written in.
    pub fn dialect(&self) -> Dialect {
        match self {
            Front::Sqlite(_) => Dialect::Sqlite,
            Front::Mysql(_) => Dialect::Mysql,
            Front::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn rows(
        &self,
        query: &Query,
        key: &str,
        wait: std::time::Duration,
        limit: std::time::Duration,
    ) -> Result<Vec<Value>, FrontError> {
        match self {
            Front::Sqlite(front) => front.rows(query, key, wait, limit).await,
            Front::Mysql(front) => front.rows(query, key, wait, limit).await,
            Front::Postgres(front) => front.rows(query, key, wait, limit).await,
        }
    }

    /// Whether the gateway could change the front database (`gateway check` warns):
    /// a file it may write to, or a database user with a write privilege.
    pub async fn could_write(&self, wait: std::time::Duration) -> Result<bool, FrontError> {
        let writable = match self {
            Front::Sqlite(front) => front.could_write(),
            Front::Mysql(front) => front.could_write(wait).await?,
            Front::Postgres(front) => front.could_write(wait).await?,
        };
        Ok(writable == Writable::Yes)
    }
}

#[cfg(test)]
impl Front {
    /// Runs a statement that writes on one of the gateway's own connections.
    pub(crate) async fn try_write(&self, sql: &str) -> Result<(), FrontError> {
        match self {
            Front::Sqlite(front) => front.try_write(sql).await,
            Front::Mysql(front) => front.try_write(sql).await,
            Front::Postgres(front) => front.try_write(sql).await,
        }
    }
}

/// One of a front database's `pool` connections, waited for at most `wait`: every
/// driver counts its connections in use this way, so that "none free" is told apart
/// from "cannot connect".
async fn connection_permit(
    permits: &tokio::sync::Semaphore,
    wait: std::time::Duration,
) -> Result<tokio::sync::SemaphorePermit<'_>, FrontError> {
    tokio::time::timeout(wait, permits.acquire())
        .await
        .map_err(|_| FrontError::PoolExhausted)?
        .map_err(|_| FrontError::Unreachable)
}

/// One operation's statement and what it reads.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) sql: Arc<str>,
    pub(crate) columns: Arc<[String]>,
    /// The most rows read (one more than an answer may have).
    pub(crate) limit: usize,
}

/// A connector reading a front database.
#[derive(Debug)]
pub struct SqlConnector {
    def: Arc<ConnectorDef>,
    front: Arc<Front>,
    /// Per operation: the statement and what it reads.
    queries: BTreeMap<String, (Rows, Query)>,
}

impl SqlConnector {
    /// The connector for `def`, reading `front`.
    pub fn new(def: Arc<ConnectorDef>, front: Arc<Front>) -> Result<SqlConnector, BuildError> {
        if !matches!(def.transport, Transport::Sql(_)) {
            return Err(BuildError::Client {
                kind: "SQL",
                problem: "the definition is not of kind sql".into(),
            });
        }
        let mut queries = BTreeMap::new();
        for (name, op) in &def.operations {
            let OperationCall::Sql(select) = &op.call else {
                return Err(BuildError::Operation {
                    operation: name.clone(),
                    problem: "has no `select`".into(),
                });
            };
            let query = Query {
                sql: select.statement(front.dialect()).into(),
                columns: select.columns.clone().into(),
                limit: usize::try_from(select.row_limit()).unwrap_or(usize::MAX) + 1,
            };
            queries.insert(name.clone(), (select.rows, query));
        }
        Ok(SqlConnector {
            def,
            front,
            queries,
        })
    }

    async fn call(
        &self,
        operation: &str,
        key: &str,
        context: &FetchContext,
    ) -> Result<Fetched, FetchError> {
        let (Some(op), Some((rows, query))) = (
            self.def.operations.get(operation),
            self.queries.get(operation),
        ) else {
            return Err(FetchError::UnknownOperation);
        };
        let limit = context.time_limit(&self.def.timeouts)?;
        let most = query.limit - 1;
        let started = Instant::now();
        let fault = |fault: FrontError| {
            // The kind of fault for the operator; never the database's words.
            tracing::warn!(connector = %self.def.id, operation, fault = fault.code(), "front database");
            FetchError::FrontDatabase(fault)
        };
        let found = self
            .front
            .rows(query, key, self.def.timeouts.connect(), limit)
            .await
            .map_err(fault)?;
        let latency = started.elapsed();
        let data = match rows {
            Rows::One => match found.len() {
                0 => return Err(FetchError::NotFound),
                1 => found.into_iter().next().unwrap_or(Value::Null),
                // Two rows for one person: the department's export is broken.
                _ => return Err(fault(FrontError::DuplicateRows)),
            },
            Rows::Many if found.len() > most => return Err(fault(FrontError::TooManyRows)),
            Rows::Many if found.is_empty() => return Err(FetchError::NotFound),
            Rows::Many => serde_json::json!({ "rows": found }),
        };
        let record = map_record(&self.def, &op.record, &data).map_err(FetchError::Mapping)?;
        Ok(Fetched { record, latency })
    }
}

impl Connector for SqlConnector {
    fn definition(&self) -> &Arc<ConnectorDef> {
        &self.def
    }

    fn fetch<'a>(
        &'a self,
        operation: &'a str,
        key: &'a str,
        context: &'a FetchContext,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(self.call(operation, key, context))
    }
}
