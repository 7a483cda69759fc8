//! What the two server drivers (MySQL/MariaDB and PostgreSQL) share: the pool's size,
//! the server-side statement time limit, and when to speak TLS — a server on the
//! loopback interface is reached in the clear unless a CA bundle is named, any other
//! only over TLS (rustls), verified against the public web roots or, when named, only
//! the operator's CA bundle.

use std::path::PathBuf;
use std::time::Duration;

/// How a front database on a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Connections kept at most.
    pub pool: usize,
    /// Set on every connection: the server stops a statement running longer.
    pub statement_timeout: Duration,
    /// The CA bundle (PEM) the server's certificate must chain to.
    pub tls_ca_file: Option<PathBuf>,
}

impl ServerSettings {
    /// `None`: in the clear; `Some(None)`: TLS with the public web roots;
    /// `Some(Some(file))`: TLS with only `file`'s certificates.
    pub(super) fn tls(&self, host: &str) -> Option<Option<PathBuf>> {
        match (&self.tls_ca_file, is_loopback(host)) {
            (Some(file), _) => Some(Some(file.clone())),
            (None, true) => None,
            (None, false) => Some(None),
        }
    }
}

/// Whether `host` (a name or an IP address, bracketed or not) is this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a server's address before any driver reads it: one of `schemes`, naming a
/// database, and carrying no options (`?…`) that could switch TLS or the time limits
/// off. `example` shows the expected form in the message; the address is never quoted.
pub(super) fn check_address(url: &str, schemes: &[&str], example: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("is not an address like {example}"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!("needs an address like {example}"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(
            "the address must not carry options (`?…`): TLS and time limits are settings of their own"
                .into(),
        );
    }
    if parsed.path().trim_start_matches('/').is_empty() {
        return Err(format!("the address must name the database ({example})"));
    }
    Ok(())
}

/// Whether the gateway's database user could change the front database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writable {
    Yes,
    No,
}
