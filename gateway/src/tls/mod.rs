//! Serving the gateway over TLS, optionally with client certificates (mTLS).
//!
//! This module owns three things:
//!
//! - [`ServerTlsConfig`] (in this file): the `tls:` section of the gateway file, and turning it
//!   into a rustls server configuration while reporting every problem at once
//!   (unreadable or invalid files, a key that does not belong to the certificate, an
//!   expired certificate, client certificates required without a CA to check them
//!   against);
//! - [`serve_tls`] (`serve.rs`): the accept loop — TLS handshakes with a time limit,
//!   HTTP/1.1 and HTTP/2 (chosen by ALPN) per connection, graceful shutdown with a
//!   bounded grace period;
//! - [`ClientCert`] (in this file): the verified client certificate of a connection, handed to
//!   every request on it as a request extension, next to axum's
//!   `ConnectInfo<SocketAddr>`. Its subject, and the validity check of the server
//!   certificate, come from `der.rs` (x509-parser, and the RFC 4514 form of a name).
//!
//! Private keys are read here and handed to rustls; they never appear in a log line,
//! a `Debug` output or an error message.

mod der;
mod serve;
#[cfg(test)]
mod tests;

pub use serve::serve_tls;

use connectors::files::FileRoots;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The `tls:` section of the gateway file:
///
/// ```yaml
/// tls: { cert: server.pem, key: server.key, client_ca: townships-ca.pem, require_client_cert: true }
/// ```
///
/// `client_ca` alone asks township apps for a certificate but also serves those
/// without one (the request then carries no [`ClientCert`]); with
/// `require_client_cert` a connection without a valid certificate is refused.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Refuse connections that present no valid client certificate.
    #[serde(default)]
    pub require_client_cert: bool,
}

impl ServerTlsConfig {
    /// Builds the rustls server configuration (ALPN `h2`, `http/1.1`), or returns every
    /// problem at once as (path in the gateway file, message). Relative paths are
    /// resolved against `base_dir`, the directory of the gateway file.
    pub fn load(&self, base_dir: &Path) -> Result<Arc<ServerConfig>, Vec<(String, String)>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| problems.push((path.to_owned(), message));

        let cert_path = base_dir.join(&self.cert);
        let mut cert_reported = false;
        let chain = match read_certs(&cert_path) {
            Ok(chain) => {
                if let Err(message) = check_validity(&chain[0], std::time::SystemTime::now()) {
                    problem("tls.cert", format!("{}: {message}", cert_path.display()));
                    cert_reported = true;
                }
                Some(chain)
            }
            Err(message) => {
                problem("tls.cert", message);
                None
            }
        };
        let key_path = base_dir.join(&self.key);
        let signing_key = match read_key(&key_path) {
            Ok(key) => match provider.key_provider.load_private_key(key) {
                Ok(key) => Some(key),
                Err(e) => {
                    problem(
                        "tls.key",
                        format!("{}: not a usable private key: {e}", key_path.display()),
                    );
                    None
                }
            },
            Err(message) => {
                problem("tls.key", message);
                None
            }
        };
        let certified = match (chain, signing_key) {
            (Some(chain), Some(key)) => {
                let certified = CertifiedKey::new(chain, key);
                match certified.keys_match() {
                    Ok(())
                    | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                        Some(certified)
                    }
                    Err(rustls::Error::InconsistentKeys(_)) => {
                        problem(
                            "tls.key",
                            format!(
                                "{} does not belong to the certificate in {}",
                                key_path.display(),
                                cert_path.display()
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        if !cert_reported {
                            problem(
                                "tls.cert",
                                format!(
                                    "{}: the first certificate is invalid: {e}",
                                    cert_path.display()
                                ),
                            );
                        }
                        None
                    }
                }
            }
            _ => None,
        };
        let verifier = match (&self.client_ca, self.require_client_cert) {
            (None, true) => {
                problem(
                    "tls.require_client_cert",
                    "needs tls.client_ca: the CA certificates that township apps' certificates must chain to".into(),
                );
                None
            }
            (None, false) => Some(WebPkiClientVerifier::no_client_auth()),
            (Some(ca), required) => {
                let ca_path = base_dir.join(ca);
                match client_verifier(&ca_path, required, &provider) {
                    Ok(verifier) => Some(verifier),
                    Err(message) => {
                        problem("tls.client_ca", message);
                        None
                    }
                }
            }
        };

        let (Some(certified), Some(verifier), true) = (certified, verifier, problems.is_empty())
        else {
            return Err(problems);
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| vec![("tls".to_owned(), format!("TLS protocol versions: {e}"))])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = alpn_protocols();
        Ok(Arc::new(config))
    }
}

fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// A PEM file's bytes: a regular file of at most 1 MiB.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    FileRoots::anywhere()
        .read(path, connectors::tls::MAX_PEM_BYTES)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {}", path.display(), pem_problem(&e, "certificate")))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (BEGIN CERTIFICATE) in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&read_pem(path)?)
        .map_err(|e| format!("{}: {}", path.display(), pem_problem(&e, "private key")))
}

/// Why a PEM file could not be read, without quoting any of its content.
fn pem_problem(err: &pem::Error, what: &str) -> String {
    match err {
        pem::Error::Io(e) => format!("cannot read the file: {e}"),
        pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        _ => format!("not a well-formed PEM {what} file"),
    }
}

fn client_verifier(
    ca_path: &Path,
    required: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in read_certs(ca_path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            format!(
                "{}: certificate {} is not a usable CA certificate: {e}",
                ca_path.display(),
                i + 1
            )
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|e| format!("{}: {e}", ca_path.display()))
}

/// The leaf certificate must be valid now.
fn check_validity(leaf: &CertificateDer<'_>, now: std::time::SystemTime) -> Result<(), String> {
    let Some(info) = der::parse(leaf) else {
        return Err("the first certificate is not a well-formed X.509 certificate".into());
    };
    let now = match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    if info.not_after < now {
        return Err(format!(
            "the certificate expired at {}",
            der::format_time(info.not_after)
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "the certificate is not valid before {}",
            der::format_time(info.not_before)
        ));
    }
    Ok(())
}

/// The verified client certificate of an mTLS connection. Every request on the
/// connection carries it as an extension (`Option<Extension<ClientCert>>` in a
/// handler), so handlers and the audit log can tell which township app called.
/// Requests on connections without a client certificate carry none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate's subject as an RFC 4514 string, e.g. `CN=app,O=Township`.
    pub subject: String,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub sha256: String,
}

impl ClientCert {
    /// Describes a (verified) leaf certificate. A subject that cannot be decoded is
    /// reported as an empty string; the fingerprint always identifies the certificate.
    pub fn from_der(leaf: &CertificateDer<'_>) -> ClientCert {
        ClientCert {
            subject: der::parse(leaf)
                .map(|info| info.subject)
                .unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(leaf.as_ref())),
        }
    }
}
