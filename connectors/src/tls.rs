//! A connector's client TLS: which roots it trusts for its department (the public web
//! roots, or only the department's own CA bundle) and which certificate it presents
//! (mTLS to the department). This module owns reading those files and building the
//! rustls client configuration the HTTP connector's client uses.
//!
//! Errors name the setting and the file and say why it failed; they never quote a
//! file's content, so a private key cannot leak into a log or a `gateway check` report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::definition::ClientTlsDef;
use crate::files::{FileError, FileRoots};

/// Why a connector's TLS settings could not be turned into a client configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("tls.{setting}: {}{reason}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    File {
        /// `ca_bundle`, `client_cert` or `client_key`.
        setting: &'static str,
        /// The file as resolved against the connector file's directory; absent when the
        /// path is outside the allowed folders (it is not echoed).
        file: Option<PathBuf>,
        reason: String,
    },
    /// `client_cert` and `client_key` must be given together.
    #[error("tls.client_cert and tls.client_key must be given together")]
    IncompleteIdentity,
    /// rustls refused the configuration.
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// The largest PEM file a connector's TLS settings may name.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Builds the rustls client configuration for one connector. Without a `tls` section
/// (or without `ca_bundle`) the public web roots (webpki-roots) are trusted; with
/// `ca_bundle` only its certificates are. With `client_cert` and `client_key` the
/// certificate is presented to the department. Relative paths are resolved against
/// `base_dir`, the directory of the connector file; files are read through `roots`
/// (regular files only, at most [`MAX_PEM_BYTES`], from the allowed folders).
pub fn client_config(
    def: Option<&ClientTlsDef>,
    base_dir: &Path,
    roots: &FileRoots,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let default = ClientTlsDef::default();
    let def = def.unwrap_or(&default);

    let trusted = match &def.ca_bundle {
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Some(bundle) => {
            let file = base_dir.join(bundle);
            let mut trusted = RootCertStore::empty();
            let certs = read_certs("ca_bundle", &file, roots)?;
            for (i, cert) in certs.into_iter().enumerate() {
                trusted.add(cert).map_err(|e| TlsError::File {
                    setting: "ca_bundle",
                    file: Some(file.clone()),
                    reason: format!("certificate {} is not a usable CA certificate: {e}", i + 1),
                })?;
            }
            trusted
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Settings(e.to_string()))?
        .with_root_certificates(trusted);

    match (&def.client_cert, &def.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let cert_file = base_dir.join(cert);
            let key_file = base_dir.join(key);
            let chain = read_certs("client_cert", &cert_file, roots)?;
            let pem = read_pem("client_key", &key_file, roots)?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::File {
                setting: "client_key",
                file: Some(key_file.clone()),
                reason: pem_reason(&e, "private key"),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => TlsError::File {
                        setting: "client_key",
                        file: Some(key_file),
                        reason: format!(
                            "does not belong to the certificate in {}",
                            cert_file.display()
                        ),
                    },
                    rustls::Error::General(_) => TlsError::File {
                        setting: "client_key",
                        file: Some(key_file),
                        reason: "not a usable private key (RSA, ECDSA or Ed25519)".into(),
                    },
                    other => TlsError::File {
                        setting: "client_cert",
                        file: Some(cert_file),
                        reason: format!("not a usable certificate: {other}"),
                    },
                })
        }
        _ => Err(TlsError::IncompleteIdentity),
    }
}

/// The bytes of one PEM file named by `setting`, read by the rules of [`FileRoots`].
fn read_pem(setting: &'static str, file: &Path, roots: &FileRoots) -> Result<Vec<u8>, TlsError> {
    roots.read(file, MAX_PEM_BYTES).map_err(|e| TlsError::File {
        setting,
        // A path outside the allowed folders is not repeated back.
        file: (e != FileError::NotAllowed).then(|| file.to_owned()),
        reason: e.to_string(),
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certs(
    setting: &'static str,
    file: &Path,
    roots: &FileRoots,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(setting, file, roots)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File {
            setting,
            file: Some(file.to_owned()),
            reason: pem_reason(&e, "certificate"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            setting,
            file: Some(file.to_owned()),
            reason: "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
        });
    }
    Ok(certs)
}

/// Why a PEM file could not be read, without quoting any of its content.
fn pem_reason(err: &pem::Error, what: &str) -> String {
    match err {
        pem::Error::Io(e) => format!("cannot read the file: {e}"),
        pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        _ => format!("not a well-formed PEM {what} file"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Test certificates (from the shared `testkit::pki`), and an HTTPS department that
    //! requires client certificates.

    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use testkit::pki::Usage;

    /// A temporary directory, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new() -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "connectors-tls-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("certs")).unwrap();
            TempDir(dir)
        }

        pub(crate) fn write(&self, name: &str, contents: &str) {
            std::fs::write(self.0.join(name), contents).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A [`testkit::pki::Ca`] in the shape this crate's tests use: the PEM as a field,
    /// leaves as (certificate PEM, key PEM) for a server or a client.
    pub(crate) struct Ca {
        ca: testkit::pki::Ca,
        pub(crate) pem: String,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let ca = testkit::pki::Ca::new(name);
            let pem = ca.pem().to_owned();
            Ca { ca, pem }
        }

        /// (certificate PEM, key PEM)
        pub(crate) fn leaf(&self, names: &[&str], server: bool) -> (String, String) {
            let usage = if server { Usage::Server } else { Usage::Client };
            let leaf = self.ca.leaf(names, "connectors test", usage);
            (leaf.cert_pem, leaf.key_pem)
        }
    }

    /// A department served over HTTPS on 127.0.0.1 that requires a client certificate
    /// signed by `client_ca`. It answers every request with `body`, one request per
    /// connection, on a thread of its own; `served` counts the requests it received in
    /// full from a client it accepted.
    pub(crate) struct Department {
        pub(crate) port: u16,
        pub(crate) served: Arc<AtomicUsize>,
    }

    impl Department {
        pub(crate) fn start(server_ca: &Ca, client_ca: &Ca, body: &'static str) -> Department {
            let leaf = server_ca
                .ca
                .leaf(&["localhost", "127.0.0.1"], "department", Usage::Server);
            let mut roots = RootCertStore::empty();
            roots.add(client_ca.ca.cert_der()).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .unwrap();
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(leaf.chain(), leaf.key())
                    .unwrap(),
            );
            // Bound before the thread starts: the department is ready on return.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let served = Arc::new(AtomicUsize::new(0));
            let counter = served.clone();
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    let Ok(tcp) = tcp else { continue };
                    let _ = answer(tcp, config.clone(), body, &counter);
                }
            });
            Department { port, served }
        }
    }

    /// Answers one request; counts it in `served` once it has been read in full from
    /// an authenticated client — before the answer is written, so that a client which
    /// has the answer always finds it counted.
    fn answer(
        tcp: std::net::TcpStream,
        config: Arc<rustls::ServerConfig>,
        body: &str,
        served: &AtomicUsize,
    ) -> std::io::Result<()> {
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        let mut reader = BufReader::new(rustls::StreamOwned::new(connection, tcp));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            }
        }
        let mut request_body = vec![0; length];
        reader.read_exact(&mut request_body)?;
        served.fetch_add(1, Ordering::SeqCst);
        let stream = reader.get_mut();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.conn.send_close_notify();
        stream.flush()
    }

    #[test]
    fn without_settings_the_web_roots_are_trusted() {
        crate::install_crypto_provider();
        let dir = TempDir::new();
        let config = client_config(None, &dir.0, &FileRoots::within([&dir.0])).unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());
        let config = client_config(
            Some(&ClientTlsDef::default()),
            &dir.0,
            &FileRoots::within([&dir.0]),
        )
        .unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_bundle_and_an_identity_are_read_relative_to_the_connector_file() {
        crate::install_crypto_provider();
        let dir = TempDir::new();
        let ca = Ca::new("Department CA");
        let (cert, key) = ca.leaf(&[], false);
        dir.write("certs/ca.pem", &ca.pem);
        dir.write("certs/gw.pem", &cert);
        dir.write("certs/gw.key", &key);
        let def = ClientTlsDef {
            ca_bundle: Some("certs/ca.pem".into()),
            client_cert: Some("certs/gw.pem".into()),
            client_key: Some("certs/gw.key".into()),
        };
        let config = client_config(Some(&def), &dir.0, &FileRoots::within([&dir.0])).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn errors_name_the_setting_and_file_but_never_the_key() {
        crate::install_crypto_provider();
        let dir = TempDir::new();
        let ca = Ca::new("Department CA");
        let (cert, key) = ca.leaf(&[], false);
        let (_, other_key) = ca.leaf(&[], false);
        dir.write("ca.pem", &ca.pem);
        dir.write("gw.pem", &cert);
        dir.write("gw.key", &key);
        dir.write("other.key", &other_key);
        dir.write(
            "broken.key",
            "-----BEGIN PRIVATE KEY-----\nMIIB not base64!\n",
        );
        dir.write("empty.pem", "");
        let def = |ca: Option<&str>, cert: Option<&str>, key: Option<&str>| ClientTlsDef {
            ca_bundle: ca.map(Into::into),
            client_cert: cert.map(Into::into),
            client_key: key.map(Into::into),
        };
        let fail = |d: ClientTlsDef| {
            client_config(Some(&d), &dir.0, &FileRoots::within([&dir.0])).unwrap_err()
        };

        let err = fail(def(Some("missing.pem"), None, None));
        assert!(
            matches!(&err, TlsError::File { setting: "ca_bundle", file, .. } if file.as_ref().is_some_and(|f| f.ends_with("missing.pem"))),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("tls.ca_bundle: "), "{err}");
        assert!(err.to_string().contains("no such file"), "{err}");

        let err = fail(def(Some("empty.pem"), None, None));
        assert!(
            matches!(
                err,
                TlsError::File {
                    setting: "ca_bundle",
                    ..
                }
            ),
            "{err:?}"
        );

        let err = fail(def(None, Some("gw.pem"), Some("other.key")));
        assert!(
            matches!(
                err,
                TlsError::File {
                    setting: "client_key",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("does not belong"), "{err}");

        // A key where the certificate should be: no certificate in it, key not quoted.
        let err = fail(def(None, Some("gw.key"), Some("gw.key")));
        assert!(
            matches!(
                err,
                TlsError::File {
                    setting: "client_cert",
                    ..
                }
            ),
            "{err:?}"
        );

        let err = fail(def(None, Some("gw.pem"), Some("broken.key")));
        assert!(
            matches!(
                err,
                TlsError::File {
                    setting: "client_key",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("MIIB"), "{err}");

        let err = fail(def(None, Some("gw.pem"), Some("gw.pem")));
        assert!(
            matches!(
                err,
                TlsError::File {
                    setting: "client_key",
                    ..
                }
            ),
            "{err:?}"
        );

        let err = fail(def(None, Some("gw.pem"), None));
        assert_eq!(err, TlsError::IncompleteIdentity);

        let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        for d in [
            def(None, Some("gw.key"), Some("gw.key")),
            def(None, Some("gw.pem"), Some("other.key")),
            def(Some("gw.key"), None, None),
        ] {
            let err = fail(d);
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&key_body[..24]), "{text}");
        }
    }
}
