//! A front database in PostgreSQL: a pool of connections opened with
//! `default_transaction_read_only` on and a `statement_timeout` (both as connection
//! options, so they hold from the first statement), statements prepared once per
//! connection with the subject's key bound. A statement past the connector's own
//! time limit is cancelled on the server and its connection is not reused. Rows come
//! back as JSON objects keyed by the operation's declared columns.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Number, Value as Json};
use tokio::sync::Semaphore;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::server::{ServerSettings, Writable};
use super::{FrontError, Query};

/// Connections to one PostgreSQL front database.
pub struct PostgresFront {
    pool: Pool,
    tls: MakeRustlsConnect,
    permits: Semaphore,
}

impl std::fmt::Debug for PostgresFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the password.
        f.debug_struct("PostgresFront").finish_non_exhaustive()
    }
}

impl PostgresFront {
    /// A front database at `url` (`postgres://user:password@host:port/database`, no
    /// query). Nothing is connected yet.
    pub fn new(url: &str, settings: &ServerSettings) -> Result<PostgresFront, String> {
        super::server::check_address(
            url,
            &["postgres", "postgresql"],
            "postgres://user@host/database",
        )?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| "is not a postgres:// address".to_owned())?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            _ => return Err("the address must name a host".into()),
        };
        let tls = settings.tls(&host);
        config.ssl_mode(if tls.is_some() {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        config.application_name("county-gateway-front");
        config.options(format!(
            "-c default_transaction_read_only=on -c statement_timeout={}",
            settings.statement_timeout.as_millis()
        ));
        let tls = MakeRustlsConnect::new(client_tls(tls.flatten())?);
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|_| "the connection pool cannot be made".to_owned())?;
        Ok(PostgresFront {
            pool,
            tls,
            permits: Semaphore::new(settings.pool),
        })
    }

    async fn client(&self, wait: Duration) -> Result<deadpool_postgres::Object, FrontError> {
        tokio::time::timeout(wait, self.pool.get())
            .await
            .map_err(|_| FrontError::Unreachable)?
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => classify(&e),
                _ => FrontError::Unreachable,
            })
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
        let client = self.client(wait).await?;
        let run = async {
            let statement = client
                .prepare_cached(&query.sql)
                .await
                .map_err(|e| classify(&e))?;
            client
                .query(&statement, &[&key])
                .await
                .map_err(|e| classify(&e))
        };
        let rows = match tokio::time::timeout(limit, run).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(FrontError::Drift)) => {
                // The export changed under a statement this connection prepared; a
                // fresh connection prepares it again once the department has fixed it.
                drop(deadpool_postgres::Object::take(client));
                return Err(FrontError::Drift);
            }
            Ok(Err(fault)) => return Err(fault),
            Err(_) => {
                // Stop it on the server, and do not hand the busy connection out again.
                let cancel = client.cancel_token();
                let tls = self.tls.clone();
                drop(deadpool_postgres::Object::take(client));
                tokio::spawn(async move { cancel.cancel_query(tls).await });
                return Err(FrontError::Timeout);
            }
        };
        rows.iter()
            .take(query.limit)
            .map(|row| object(row, &query.columns))
            .collect()
    }

    /// Whether the gateway's user may change anything in the database: a superuser,
    /// or a write privilege on a table or view outside the system schemas.
    pub async fn could_write(&self, wait: Duration) -> Result<Writable, FrontError> {
        let client = self.client(wait).await?;
        let row = client
            .query_one(
                "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                     OR EXISTS (
                       SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                         AND n.nspname NOT LIKE 'pg_toast%'
                         AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))",
                &[],
            )
            .await
            .map_err(|e| classify(&e))?;
        let writable: Option<bool> = row.try_get(0).map_err(|_| FrontError::Drift)?;
        Ok(if writable.unwrap_or(false) {
            Writable::Yes
        } else {
            Writable::No
        })
    }
}

#[cfg(test)]
impl PostgresFront {
    /// Runs a statement that writes on one of the gateway's connections.
    pub(super) async fn try_write(&self, sql: &str) -> Result<(), FrontError> {
        let client = self.client(Duration::from_secs(5)).await?;
        client.batch_execute(sql).await.map_err(|e| classify(&e))
    }
}

/// The rustls client configuration: the public web roots, or only `ca_file`'s.
fn client_tls(ca_file: Option<std::path::PathBuf>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(&file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|_| {
                    format!("tls_ca_file {}: not a readable PEM bundle", file.display())
                })?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|_| format!("tls_ca_file {}: not a CA certificate", file.display()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| "TLS cannot be set up".to_owned())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn object(row: &tokio_postgres::Row, columns: &Arc<[String]>) -> Result<Json, FrontError> {
    if row.len() != columns.len() {
        return Err(FrontError::Drift);
    }
    let mut object = Map::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        object.insert(name.clone(), cell(row, i)?);
    }
    Ok(Json::Object(object))
}

/// One value as JSON: text as a string, integers, floats and booleans as such,
/// NUMERIC as its exact digits (a string, as money is written in the other kinds),
/// dates as ISO 8601 text. Any other type is not what an export of personal records
/// is declared with: drift.
fn cell(row: &tokio_postgres::Row, i: usize) -> Result<Json, FrontError> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
    ) -> Result<Option<T>, FrontError> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|_| FrontError::Drift)
    }
    let kind = row.columns().get(i).ok_or(FrontError::Drift)?.type_();
    let value = match *kind {
        Type::TEXT | Type::VARCHAR | Type::NAME => get::<String>(row, i)?.map(Json::String),
        // char(n) pads with spaces.
        Type::BPCHAR => get::<String>(row, i)?.map(|s| Json::String(s.trim_end().to_owned())),
        Type::INT2 => get::<i16>(row, i)?.map(|n| Json::Number(n.into())),
        Type::INT4 => get::<i32>(row, i)?.map(|n| Json::Number(n.into())),
        Type::INT8 => get::<i64>(row, i)?.map(|n| Json::Number(n.into())),
        Type::FLOAT4 => match get::<f32>(row, i)? {
            Some(x) => Some(
                Number::from_f64(f64::from(x))
                    .map(Json::Number)
                    .ok_or(FrontError::Drift)?,
            ),
            None => None,
        },
        Type::FLOAT8 => match get::<f64>(row, i)? {
            Some(x) => Some(
                Number::from_f64(x)
                    .map(Json::Number)
                    .ok_or(FrontError::Drift)?,
            ),
            None => None,
        },
        Type::NUMERIC => get::<rust_decimal::Decimal>(row, i)?.map(|d| Json::String(d.to_string())),
        Type::BOOL => get::<bool>(row, i)?.map(Json::Bool),
        Type::DATE => get::<chrono::NaiveDate>(row, i)?
            .map(|d| Json::String(d.format("%Y-%m-%d").to_string())),
        Type::TIMESTAMP => get::<chrono::NaiveDateTime>(row, i)?
            .map(|t| Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string())),
        _ => return Err(FrontError::Drift),
    };
    Ok(value.unwrap_or(Json::Null))
}

/// What a PostgreSQL failure means for the department, without its text.
fn classify(error: &tokio_postgres::Error) -> FrontError {
    let Some(db) = error.as_db_error() else {
        return FrontError::Unreachable;
    };
    let code = db.code();
    if code.code().starts_with("28") {
        return FrontError::Credentials;
    }
    match *code {
        SqlState::QUERY_CANCELED => FrontError::Timeout,
        SqlState::UNDEFINED_TABLE | SqlState::UNDEFINED_COLUMN | SqlState::UNDEFINED_FUNCTION => {
            FrontError::Drift
        }
        SqlState::READ_ONLY_SQL_TRANSACTION | SqlState::INSUFFICIENT_PRIVILEGE => {
            FrontError::Refused
        }
        SqlState::INVALID_CATALOG_NAME => FrontError::Unreachable,
        SqlState::TOO_MANY_CONNECTIONS => FrontError::PoolExhausted,
        _ if code.code().starts_with("08") || code.code().starts_with("57") => {
            FrontError::Unreachable
        }
        _ => FrontError::Drift,
    }
}
