//! PostgreSQL, the store of many replicas: the `store:` settings for it, the
//! connection pool every PostgreSQL store shares ([`Pg`]), dedicated connections (for
//! `LISTEN` and for advisory locks held as long as a process lives), and the schema's
//! versioned migrations ([`migrations`]).
//!
//! Everything the gateway keeps lives in one schema of one database (`schema:`,
//! default `gateway`), set as each connection's `search_path`, so several counties (or
//! tests) can share a server without seeing each other. Advisory-lock keys and
//! notification channels are derived from the schema's name for the same reason.
//!
//! **TLS.** rustls only. The URL's `sslmode` decides (`disable`, `prefer`,
//! `require`); without one, a server on the loopback interface is reached in the
//! clear and any other only over TLS (`require`), whose certificate must chain to the
//! public web roots or to `tls_ca_file`.
//!
//! **Secrets.** The address may carry a password: it comes from the file, the
//! environment or a file of its own ([`ServerUrl`]) and is only ever shown through
//! [`crate::secrets::redact_url`]. Errors say what went wrong (unreachable, refused,
//! authentication failed, a schema too new) without the server's own text where that
//! could quote a value.

pub mod migrations;
#[cfg(test)]
pub(crate) mod testing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt as _;
use serde::Deserialize;
use tokio_postgres::AsyncMessage;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::secrets::ServerUrl;

/// The longest schema name accepted (PostgreSQL allows 63 bytes; channel names add a
/// prefix).
const MAX_SCHEMA_CHARS: usize = 40;

/// `store: { kind: postgres, … }` in `gateway.yaml`:
///
/// ```yaml
/// store:
///   kind: postgres
///   url_env: GATEWAY_POSTGRES_URL   # or url: / url_file:, exactly one
///   schema: gateway                 # default
///   pool_size: 16                   # default
///   connect_timeout_ms: 5000        # default
///   migrate: auto                   # default; `manual`: only `gateway migrate` migrates
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// The server's address, written here (no password in it, please).
    #[serde(default)]
    pub url: Option<String>,
    /// … or the environment variable holding it.
    #[serde(default)]
    pub url_env: Option<String>,
    /// … or a file holding it (relative to `gateway.yaml`).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The schema everything is kept in.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Connections kept open per replica.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long connecting (and waiting for a free connection) may take.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A CA bundle (PEM) to trust for the server's certificate, beside the public web
    /// roots; relative to `gateway.yaml`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Whether a replica applies missing migrations when it starts.
    #[serde(default)]
    pub migrate: Migrate,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("server", &self.server())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("migrate", &self.migrate)
            .finish()
    }
}

/// When the schema is migrated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Migrate {
    /// At start, by the first replica to take the migration lock.
    #[default]
    Auto,
    /// Only by `gateway migrate`; a replica refuses to start on an older schema.
    Manual,
}

fn default_schema() -> String {
    "gateway".to_owned()
}

fn default_pool_size() -> usize {
    16
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl PgSettings {
    /// Settings for `url` with every default (the command line, tests).
    pub fn new(url: impl Into<String>) -> PgSettings {
        PgSettings {
            url: Some(url.into()),
            url_env: None,
            url_file: None,
            schema: default_schema(),
            pool_size: default_pool_size(),
            connect_timeout_ms: default_connect_timeout_ms(),
            tls_ca_file: None,
            migrate: Migrate::Auto,
        }
    }

    /// Where the address comes from.
    pub fn server(&self) -> ServerUrl {
        ServerUrl {
            url: self.url.clone(),
            url_env: self.url_env.clone(),
            url_file: self.url_file.clone(),
        }
    }

    /// Problems with the settings' form, as (setting, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = self.server().problem() {
            problems.push(("url", problem.to_owned()));
        }
        if !valid_schema(&self.schema) {
            problems.push((
                "schema",
                format!(
                    "must be 1 to {MAX_SCHEMA_CHARS} characters of a-z, 0-9 and _, starting with a letter"
                ),
            ));
        }
        if !(1..=256).contains(&self.pool_size) {
            problems.push(("pool_size", "must be 1 to 256".to_owned()));
        }
        if !(100..=120_000).contains(&self.connect_timeout_ms) {
            problems.push((
                "connect_timeout_ms",
                "must be 100 to 120000 (two minutes)".to_owned(),
            ));
        }
        problems
    }
}

fn valid_schema(schema: &str) -> bool {
    schema.len() <= MAX_SCHEMA_CHARS
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why PostgreSQL could not be used. Messages never quote the address's password or a
/// stored value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgError {
    #[error("the PostgreSQL settings: {0}")]
    Settings(String),
    #[error("PostgreSQL at {at} cannot be reached: {why}")]
    Unreachable { at: String, why: String },
    #[error("PostgreSQL at {at} refused the credentials (authentication failed)")]
    Auth { at: String },
    #[error("PostgreSQL at {at}: database `{database}` does not exist")]
    NoDatabase { at: String, database: String },
    #[error(
        "the PostgreSQL schema `{schema}` is at version {found}, newer than this gateway knows ({known}); run a newer gateway"
    )]
    TooNew {
        schema: String,
        found: u32,
        known: u32,
    },
    #[error("PostgreSQL: {0}")]
    Query(String),
}

impl PgError {
    /// A query's failure, by its SQLSTATE and kind rather than the server's text (which
    /// can quote a row's values).
    pub fn query(error: &tokio_postgres::Error) -> PgError {
        PgError::Query(describe(error))
    }
}

/// A driver error in words that never quote a value: the SQLSTATE's code and the
/// constraint or table it names, or the kind of I/O failure.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("SQLSTATE {}", db.code().code());
        if let Some(table) = db.table() {
            text.push_str(&format!(" on table {table}"));
        }
        if let Some(constraint) = db.constraint() {
            text.push_str(&format!(" (constraint {constraint})"));
        }
        return text;
    }
    if error.is_closed() {
        return "the connection is closed".to_owned();
    }
    match std::error::Error::source(error).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => format!("connection failed: {}", io.kind()),
        None => "the connection failed".to_owned(),
    }
}

/// The PostgreSQL stores' shared connection pool and settings. Cloning is cheap.
#[derive(Clone)]
pub struct Pg(Arc<Inner>);

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    schema: Arc<str>,
    at: Arc<str>,
    migrate: Migrate,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("at", &self.0.at)
            .field("schema", &self.0.schema)
            .finish()
    }
}

/// A pooled connection.
pub type PgClient = deadpool_postgres::Object;

impl Pg {
    /// Builds the pool (no connection is made until one is asked for). `base` is the
    /// folder of `gateway.yaml`, for relative files.
    pub fn new(settings: &PgSettings, base: &std::path::Path) -> Result<Pg, PgError> {
        if let Some((setting, message)) = settings.problems().into_iter().next() {
            return Err(PgError::Settings(format!("{setting}: {message}")));
        }
        let server = settings.server().relative_to(base);
        let url = server
            .resolve()
            .map_err(|e| PgError::Settings(e.to_string()))?;
        let at = crate::secrets::redact_url(&url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            PgError::Settings(format!(
                "{} is not a PostgreSQL address (postgres://user@host:port/database)",
                server.describe()
            ))
        })?;
        if !url.contains("sslmode=") {
            let loopback = config.get_hosts().iter().all(|host| match host {
                Host::Tcp(name) => {
                    name == "localhost"
                        || name
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                Host::Unix(_) => true,
            });
            config.ssl_mode(if loopback {
                SslMode::Disable
            } else {
                SslMode::Require
            });
        }
        let timeout = Duration::from_millis(settings.connect_timeout_ms);
        config.connect_timeout(timeout);
        config.application_name("county-gateway");
        config.options(format!("-c search_path={}", settings.schema));
        let tls = MakeRustlsConnect::new(client_tls(
            settings.tls_ca_file.as_ref().map(|file| base.join(file)),
        )?);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| PgError::Settings(e.to_string()))?;
        Ok(Pg(Arc::new(Inner {
            pool,
            config,
            tls,
            schema: settings.schema.as_str().into(),
            at: at.into(),
            migrate: settings.migrate,
        })))
    }

    /// Where the server is, fit to print.
    pub fn location(&self) -> String {
        format!("{} (schema {})", self.0.at, self.0.schema)
    }

    /// Whether a replica migrates the schema when it starts.
    pub fn migrate_mode(&self) -> Migrate {
        self.0.migrate
    }

    /// The schema everything is kept in.
    pub fn schema(&self) -> &str {
        &self.0.schema
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<PgClient, PgError> {
        self.0.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => self.connect_error(&e),
            deadpool_postgres::PoolError::Timeout(_) => PgError::Unreachable {
                at: self.0.at.to_string(),
                why: "no connection within the connect timeout".to_owned(),
            },
            other => PgError::Unreachable {
                at: self.0.at.to_string(),
                why: other.to_string(),
            },
        })
    }

    /// A connection of its own, outside the pool: for advisory locks held while the
    /// process lives and for `LISTEN`. Notifications arrive on the receiver; the
    /// receiver ends when the connection does.
    pub async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
        ),
        PgError,
    > {
        let (client, mut connection) = self
            .0
            .config
            .connect(self.0.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        if tx.send(notification).is_err() {
                            // Nobody listens any more; the connection still serves its client.
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok((client, rx))
    }

    /// A stable advisory-lock key for `name` within this schema.
    pub fn lock_key(&self, name: &str) -> i64 {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::new()
            .chain_update(b"county-gateway/lock\0")
            .chain_update(self.0.schema.as_bytes())
            .chain_update([0])
            .chain_update(name.as_bytes())
            .finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        i64::from_be_bytes(bytes)
    }

    /// The notification channel for `topic` within this schema (an identifier:
    /// lowercase letters, digits and `_`).
    pub fn channel(&self, topic: &str) -> String {
        format!("gw_{}_{}", self.0.schema, topic)
    }

    fn connect_error(&self, error: &tokio_postgres::Error) -> PgError {
        let at = self.0.at.to_string();
        if let Some(db) = error.as_db_error() {
            let code = db.code().code();
            // 28P01 invalid_password, 28000 invalid_authorization_specification.
            if code.starts_with("28") {
                return PgError::Auth { at };
            }
            // 3D000 invalid_catalog_name.
            if code == "3D000" {
                let database = self.0.config.get_dbname().unwrap_or("").to_owned();
                return PgError::NoDatabase { at, database };
            }
        }
        PgError::Unreachable {
            at,
            why: describe(error),
        }
    }
}

/// The rustls client configuration for the server: the public web roots, plus the
/// operator's CA bundle if one is named.
fn client_tls(ca_file: Option<PathBuf>) -> Result<rustls::ClientConfig, PgError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = ca_file {
        let certs = CertificateDer::pem_file_iter(&file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                PgError::Settings(format!(
                    "tls_ca_file {}: not a readable PEM bundle ({e})",
                    file.display()
                ))
            })?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| PgError::Settings(format!("tls_ca_file {}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
