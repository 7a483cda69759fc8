//! Serving the gateway over TLS, optionally with client certificates (mTLS).
//!
//! This module owns three things:
//!
//! - [`ServerTlsConfig`]: the `tls:` section of the gateway file, and turning it into a
//!   rustls server configuration while reporting every problem at once (unreadable or
//!   invalid files, a key that does not belong to the certificate, an expired
//!   certificate, client certificates required without a CA to check them against);
//! - [`serve_tls`]: the accept loop — TLS handshakes with a time limit, HTTP/1.1 and
//!   HTTP/2 (chosen by ALPN) per connection, graceful shutdown with a bounded grace
//!   period;
//! - [`ClientCert`]: the verified client certificate of a connection, handed to every
//!   request on it as a request extension, next to axum's `ConnectInfo<SocketAddr>`.
//!
//! Private keys are read here and handed to rustls; they never appear in a log line,
//! a `Debug` output or an error message.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once shutdown begins.
const GRACE_PERIOD: Duration = Duration::from_secs(10);
/// How long an HTTP/1.1 client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
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
    PrivateKeyDer::from_pem_file(path)
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
    let Some(info) = x509::parse(leaf) else {
        return Err("the first certificate is not a well-formed X.509 certificate".into());
    };
    let now = match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    if info.not_after < now {
        return Err(format!(
            "the certificate expired at {}",
            x509::format_time(info.not_after)
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "the certificate is not valid before {}",
            x509::format_time(info.not_before)
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
            subject: x509::parse(leaf)
                .map(|info| info.subject)
                .unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(leaf.as_ref())),
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes; then stops
/// accepting, lets in-flight requests finish for up to 10 s and closes what remains.
///
/// Each connection negotiates HTTP/2 or HTTP/1.1 by ALPN (`h2`, `http/1.1` are offered
/// if `config` names none). A handshake must finish within 10 s; a failed handshake
/// is logged at debug and never stops the server. Each request carries
/// `ConnectInfo<SocketAddr>` and, on mTLS connections, the [`ClientCert`].
pub async fn serve_tls(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = if config.alpn_protocols.is_empty() {
        let mut config = (*config).clone();
        config.alpn_protocols = alpn_protocols();
        Arc::new(config)
    } else {
        config
    };
    let acceptor = TlsAcceptor::from(config);
    let (closing_tx, closing_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(
                        acceptor.clone(),
                        tcp,
                        peer,
                        router.clone(),
                        closing_rx.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting connections failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: no new connections; finishing in-flight requests"
    );
    // Every connection sees the change and shuts down gracefully.
    let _ = closing_tx.send(());
    let drained = tokio::time::timeout(GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "grace period over; closing the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    mut closing: watch::Receiver<()>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = closing.changed() => return,
    };
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(ClientCert::from_der);
    let service = router.map_request(move |mut request: http::Request<Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        if let Some(cert) = &client_cert {
            extensions.insert(cert.clone());
        }
        request
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closing.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Just enough X.509 DER decoding for a certificate's subject and validity.
mod x509 {
    use rustls_pki_types::CertificateDer;

    /// What the gateway wants to know about a certificate.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct CertInfo {
        /// RFC 4514 string of the subject.
        pub(super) subject: String,
        /// Unix seconds.
        pub(super) not_before: i64,
        /// Unix seconds.
        pub(super) not_after: i64,
    }

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;

    /// One DER element: its tag, its content and the whole encoding.
    struct Tlv<'a> {
        tag: u8,
        content: &'a [u8],
        whole: &'a [u8],
    }

    /// Splits the first element off `input`.
    fn next<'a>(input: &mut &'a [u8]) -> Option<Tlv<'a>> {
        let data: &'a [u8] = input;
        let (&tag, rest) = data.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers do not occur in the parts we read
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let header = data.len() - rest.len();
        let tlv = Tlv {
            tag,
            content: &rest[..len],
            whole: &data[..header + len],
        };
        *input = &rest[len..];
        Some(tlv)
    }

    fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
        let data: &'a [u8] = input;
        let mut cursor = data;
        let tlv = next(&mut cursor)?;
        if tlv.tag != tag {
            return None;
        }
        let content = tlv.content;
        *input = cursor;
        Some(content)
    }

    pub(super) fn parse(cert: &CertificateDer<'_>) -> Option<CertInfo> {
        let mut input: &[u8] = cert.as_ref();
        let mut certificate = expect(&mut input, SEQUENCE)?;
        let mut tbs = expect(&mut certificate, SEQUENCE)?;
        if tbs.first() == Some(&VERSION) {
            expect(&mut tbs, VERSION)?;
        }
        expect(&mut tbs, INTEGER)?; // serial number
        expect(&mut tbs, SEQUENCE)?; // signature algorithm
        expect(&mut tbs, SEQUENCE)?; // issuer
        let mut validity = expect(&mut tbs, SEQUENCE)?;
        let not_before = time(&mut validity)?;
        let not_after = time(&mut validity)?;
        let subject = expect(&mut tbs, SEQUENCE)?;
        Some(CertInfo {
            subject: name(subject)?,
            not_before,
            not_after,
        })
    }

    fn time(input: &mut &[u8]) -> Option<i64> {
        let tlv = next(input)?;
        let text = std::str::from_utf8(tlv.content).ok()?;
        let text = text.strip_suffix('Z')?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, rest) = match (tlv.tag, text.len()) {
            (UTC_TIME, 12) => {
                let yy: i32 = text[..2].parse().ok()?;
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
            }
            (GENERALIZED_TIME, 14) => (text[..4].parse().ok()?, &text[4..]),
            _ => return None,
        };
        let part = |i: usize| rest[i..i + 2].parse::<u32>().ok();
        let date = chrono::NaiveDate::from_ymd_opt(year, part(0)?, part(2)?)?;
        let at = date.and_hms_opt(part(4)?, part(6)?, part(8)?)?;
        Some(at.and_utc().timestamp())
    }

    pub(super) fn format_time(unix: i64) -> String {
        chrono::DateTime::from_timestamp(unix, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| unix.to_string())
    }

    /// An RFC 4514 string: RDNs last to first, joined by `,`; multi-valued RDNs by `+`.
    fn name(mut rdns: &[u8]) -> Option<String> {
        let mut parts = Vec::new();
        while !rdns.is_empty() {
            let mut set = expect(&mut rdns, SET)?;
            let mut attributes = Vec::new();
            while !set.is_empty() {
                let mut attribute = expect(&mut set, SEQUENCE)?;
                let oid = expect(&mut attribute, OID)?;
                let value = next(&mut attribute)?;
                attributes.push(format!(
                    "{}={}",
                    attribute_type(oid),
                    attribute_value(&value)
                ));
            }
            parts.push(attributes.join("+"));
        }
        parts.reverse();
        Some(parts.join(","))
    }

    fn attribute_type(oid: &[u8]) -> String {
        // 2.5.4.x is encoded as 55 04 x.
        let short = match oid {
            [0x55, 0x04, 3] => "CN",
            [0x55, 0x04, 5] => "serialNumber",
            [0x55, 0x04, 6] => "C",
            [0x55, 0x04, 7] => "L",
            [0x55, 0x04, 8] => "ST",
            [0x55, 0x04, 9] => "STREET",
            [0x55, 0x04, 10] => "O",
            [0x55, 0x04, 11] => "OU",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
            _ => return dotted(oid),
        };
        short.to_owned()
    }

    fn dotted(oid: &[u8]) -> String {
        let mut arcs: Vec<u64> = Vec::new();
        let mut value: u64 = 0;
        for &b in oid {
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (value / 40).min(2);
                    arcs.push(first);
                    arcs.push(value - first * 40);
                } else {
                    arcs.push(value);
                }
                value = 0;
            }
        }
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    fn attribute_value(value: &Tlv<'_>) -> String {
        let text = match value.tag {
            // UTF8String, PrintableString, IA5String
            0x0c | 0x13 | 0x16 => std::str::from_utf8(value.content).ok().map(str::to_owned),
            // TeletexString, read as Latin-1
            0x14 => Some(value.content.iter().map(|&b| char::from(b)).collect()),
            // BMPString (UTF-16BE)
            0x1e => {
                let pairs = value.content.chunks_exact(2);
                if pairs.remainder().is_empty() {
                    let units: Vec<u16> = pairs.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                    String::from_utf16(&units).ok()
                } else {
                    None
                }
            }
            _ => None,
        };
        match text {
            Some(text) => escape(&text),
            None => format!("#{}", hex::encode(value.whole)),
        }
    }

    /// RFC 4514 §2.4 escaping.
    fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let last = text.chars().count().saturating_sub(1);
        for (i, c) in text.chars().enumerate() {
            match c {
                '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '#' if i == 0 => out.push_str("\\#"),
                ' ' if i == 0 || i == last => out.push_str("\\ "),
                '\0' => out.push_str("\\00"),
                _ => out.push(c),
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn special_characters_are_escaped() {
            assert_eq!(escape(" a,b+c "), "\\ a\\,b\\+c\\ ");
            assert_eq!(escape("#x"), "\\#x");
            assert_eq!(escape("乡镇"), "乡镇");
        }

        #[test]
        fn unknown_attribute_types_are_dotted() {
            // 1.2.840.113549.1.9.1 (emailAddress)
            assert_eq!(
                dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
                "1.2.840.113549.1.9.1"
            );
        }

        #[test]
        fn names_read_last_rdn_first_with_multi_valued_rdns_and_bmp_strings() {
            let name_der = [
                // SET { C = PrintableString "CN" }
                0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'C', b'N',
                // SET { CN = BMPString "ab", O = PrintableString "X" }
                0x31, 0x17, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00, b'a', 0x00,
                b'b', 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x01, b'X',
            ];
            assert_eq!(name(&name_der).as_deref(), Some("CN=ab+O=X,C=CN"));
            // An INTEGER value is shown as #hex of its encoding.
            let odd = [
                0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x02, 0x01, 0x07,
            ];
            assert_eq!(name(&odd).as_deref(), Some("CN=#020107"));
            assert_eq!(name(&[0x31, 0x05, 0x30]), None);
        }

        #[test]
        fn garbage_is_not_a_certificate() {
            assert_eq!(parse(&CertificateDer::from(vec![0x30, 0x05, 1, 2])), None);
            assert_eq!(parse(&CertificateDer::from(Vec::new())), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Extension;
    use axum::routing::get;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use tokio::sync::{Notify, oneshot};

    /// A CA that signs leaf certificates.
    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            Ca {
                issuer: Issuer::new(params, key),
                pem,
            }
        }

        /// (certificate PEM, key PEM)
        fn leaf(&self, names: &[&str], dn: &[(DnType, &str)], server: bool) -> (String, String) {
            let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            for (ty, value) in dn {
                params.distinguished_name.push(ty.clone(), *value);
            }
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    /// Certificates for one test, written to a temporary directory.
    struct Pki {
        dir: tempfile::TempDir,
        server_ca: Ca,
        client_ca: Ca,
    }

    impl Pki {
        fn new() -> Pki {
            connectors::install_crypto_provider();
            let dir = tempfile::tempdir().unwrap();
            let server_ca = Ca::new("County Server CA");
            let client_ca = Ca::new("Townships CA");
            let (cert, key) = server_ca.leaf(
                &["localhost", "127.0.0.1"],
                &[(DnType::CommonName, "gateway.county.test")],
                true,
            );
            std::fs::write(dir.path().join("server.pem"), cert).unwrap();
            std::fs::write(dir.path().join("server.key"), key).unwrap();
            std::fs::write(dir.path().join("townships-ca.pem"), &client_ca.pem).unwrap();
            Pki {
                dir,
                server_ca,
                client_ca,
            }
        }

        fn config(&self, client_ca: bool, require: bool) -> ServerTlsConfig {
            ServerTlsConfig {
                cert: "server.pem".into(),
                key: "server.key".into(),
                client_ca: client_ca.then(|| "townships-ca.pem".into()),
                require_client_cert: require,
            }
        }

        fn write(&self, name: &str, contents: &str) {
            std::fs::write(self.dir.path().join(name), contents).unwrap();
        }

        /// A client trusting the server CA, optionally presenting a certificate.
        fn client(&self, identity: Option<(String, String)>, alpn: &[&str]) -> reqwest::Client {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.server_ca.pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
            let mut config = match identity {
                Some((cert, key)) => {
                    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap();
                    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                    builder.with_client_auth_cert(chain, key).unwrap()
                }
                None => builder.with_no_client_auth(),
            };
            config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
            reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .build()
                .unwrap()
        }
    }

    async fn whoami(
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        cert: Option<Extension<ClientCert>>,
    ) -> String {
        let subject = cert.map_or_else(|| "anonymous".to_owned(), |Extension(c)| c.subject);
        format!("{subject} from {}", peer.ip())
    }

    /// A running server and the means to stop it.
    struct Running {
        url: String,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Running {
        async fn start(config: Arc<ServerConfig>, router: axum::Router) -> Running {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve_tls(listener, router, config, async move {
                let _ = stopped.await;
            }));
            Running {
                url: format!("https://localhost:{port}"),
                stop: Some(stop),
                task,
            }
        }

        async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            tokio::time::timeout(Duration::from_secs(15), self.task)
                .await
                .expect("serve_tls did not finish after shutdown")
                .unwrap()
                .unwrap();
        }
    }

    fn router() -> axum::Router {
        axum::Router::new().route("/whoami", get(whoami))
    }

    #[tokio::test]
    async fn serves_http1_and_http2_over_tls() {
        let pki = Pki::new();
        let config = pki.config(false, false).load(pki.dir.path()).unwrap();
        let server = Running::start(config, router()).await;
        let url = format!("{}/whoami", server.url);

        let h2 = pki.client(None, &["h2", "http/1.1"]);
        let response = h2.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.text().await.unwrap(), "anonymous from 127.0.0.1");

        let h1 = pki.client(None, &["http/1.1"]);
        let response = h1.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_11);

        // A client that does not trust the county CA refuses the server.
        let stranger = reqwest::Client::builder().build().unwrap();
        assert!(stranger.get(&url).send().await.is_err());
        server.stop().await;
    }

    #[tokio::test]
    async fn mtls_admits_only_clients_of_the_township_ca() {
        let pki = Pki::new();
        let config = pki.config(true, true).load(pki.dir.path()).unwrap();
        let server = Running::start(config, router()).await;
        let url = format!("{}/whoami", server.url);

        let no_cert = pki.client(None, &["h2", "http/1.1"]);
        assert!(no_cert.get(&url).send().await.is_err());

        let rogue_ca = Ca::new("Rogue CA");
        let rogue = rogue_ca.leaf(&[], &[(DnType::CommonName, "sanhe-app")], false);
        let wrong_ca = pki.client(Some(rogue), &["h2", "http/1.1"]);
        assert!(wrong_ca.get(&url).send().await.is_err());

        let identity = pki.client_ca.leaf(
            &[],
            &[
                (DnType::OrganizationName, "三河镇人民政府"),
                (DnType::CommonName, "sanhe-app, desk 2"),
            ],
            false,
        );
        for alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
            let township = pki.client(Some(identity.clone()), alpn);
            let response = township.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.text().await.unwrap(),
                "CN=sanhe-app\\, desk 2,O=三河镇人民政府 from 127.0.0.1"
            );
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn client_ca_without_requirement_serves_both() {
        let pki = Pki::new();
        let config = pki.config(true, false).load(pki.dir.path()).unwrap();
        let server = Running::start(config, router()).await;
        let url = format!("{}/whoami", server.url);

        let anonymous = pki.client(None, &["h2"]);
        let text = anonymous
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "anonymous from 127.0.0.1");

        let identity = pki
            .client_ca
            .leaf(&[], &[(DnType::CommonName, "app")], false);
        let township = pki.client(Some(identity), &["h2"]);
        let text = township
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "CN=app from 127.0.0.1");

        let rogue = Ca::new("Rogue CA").leaf(&[], &[(DnType::CommonName, "app")], false);
        let wrong_ca = pki.client(Some(rogue), &["h2"]);
        assert!(wrong_ca.get(&url).send().await.is_err());
        server.stop().await;
    }

    #[tokio::test]
    async fn the_fingerprint_is_the_sha256_of_the_leaf() {
        let pki = Pki::new();
        let (cert, _) = pki
            .client_ca
            .leaf(&[], &[(DnType::CommonName, "app")], false);
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let client = ClientCert::from_der(&der);
        assert_eq!(client.subject, "CN=app");
        assert_eq!(client.sha256, hex::encode(Sha256::digest(der.as_ref())));
        assert_eq!(client.sha256.len(), 64);
    }

    #[tokio::test]
    async fn a_failed_handshake_does_not_stop_the_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let pki = Pki::new();
        let config = pki.config(false, false).load(pki.dir.path()).unwrap();
        let server = Running::start(config, router()).await;
        let addr = server.url.trim_start_matches("https://").to_owned();

        // Plain HTTP to the TLS port.
        let mut plain = TcpStream::connect(&addr).await.unwrap();
        plain
            .write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = plain.read_to_end(&mut sink).await;

        let client = pki.client(None, &["h2"]);
        let response = client
            .get(format!("{}/whoami", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() {
        let pki = Pki::new();
        let config = pki.config(false, false).load(pki.dir.path()).unwrap();
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let router = axum::Router::new().route(
            "/slow",
            get({
                let (entered, release) = (entered.clone(), release.clone());
                move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }
            }),
        );
        let mut server = Running::start(config, router).await;
        let url = server.url.clone();
        let client = pki.client(None, &["h2", "http/1.1"]);
        let in_flight = tokio::spawn({
            let client = client.clone();
            let url = format!("{url}/slow");
            async move { client.get(url).send().await?.text().await }
        });
        entered.notified().await;

        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        // The listener closes: new connections are refused.
        let addr = url.trim_start_matches("https://").to_owned();
        let mut refused = false;
        for _ in 0..1000 {
            if TcpStream::connect(&addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(refused, "the listener still accepts after shutdown");

        release.notify_one();
        assert_eq!(in_flight.await.unwrap().unwrap(), "done");
        server.stop().await;
    }

    #[test]
    fn load_reports_every_problem_at_once() {
        let pki = Pki::new();
        let config = ServerTlsConfig {
            cert: "missing.pem".into(),
            key: "missing.key".into(),
            client_ca: None,
            require_client_cert: true,
        };
        let problems = config.load(pki.dir.path()).unwrap_err();
        let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["tls.cert", "tls.key", "tls.require_client_cert"]);
        assert!(problems[0].1.contains("missing.pem"), "{problems:?}");

        // A key from another certificate, a CA file that holds no certificate.
        let (_, other_key) = pki
            .server_ca
            .leaf(&["localhost"], &[(DnType::CommonName, "x")], true);
        pki.write("other.key", &other_key);
        pki.write("not-a-ca.pem", "hello\n");
        let config = ServerTlsConfig {
            cert: "server.pem".into(),
            key: "other.key".into(),
            client_ca: Some("not-a-ca.pem".into()),
            require_client_cert: true,
        };
        let problems = config.load(pki.dir.path()).unwrap_err();
        let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["tls.key", "tls.client_ca"], "{problems:?}");
        assert!(problems[0].1.contains("does not belong"), "{problems:?}");

        // Files that are not what they claim to be; no key material in any message.
        let key_pem = std::fs::read_to_string(pki.dir.path().join("server.key")).unwrap();
        pki.write("swapped.pem", &key_pem);
        pki.write("broken.key", "-----BEGIN PRIVATE KEY-----\nnot base64!\n");
        let config = ServerTlsConfig {
            cert: "swapped.pem".into(),
            key: "broken.key".into(),
            client_ca: None,
            require_client_cert: false,
        };
        let problems = config.load(pki.dir.path()).unwrap_err();
        let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["tls.cert", "tls.key"], "{problems:?}");
        let key_body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for (_, message) in &problems {
            assert!(!message.contains(&key_body[..16]), "{message}");
            assert!(!message.contains("not base64"), "{message}");
        }

        // Well-formed PEM around something that is no certificate: one problem.
        pki.write(
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let config = ServerTlsConfig {
            cert: "junk.pem".into(),
            key: "server.key".into(),
            client_ca: None,
            require_client_cert: false,
        };
        let problems = config.load(pki.dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "tls.cert");
    }

    #[test]
    fn an_expired_certificate_is_a_problem() {
        let pki = Pki::new();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &pki.server_ca.issuer).unwrap();
        pki.write("old.pem", &cert.pem());
        pki.write("old.key", &key.serialize_pem());
        let config = ServerTlsConfig {
            cert: "old.pem".into(),
            key: "old.key".into(),
            client_ca: None,
            require_client_cert: false,
        };
        let problems = config.load(pki.dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "tls.cert");
        assert!(
            problems[0].1.contains("expired at 2001-01-01T00:00:00Z"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_section_parses_with_defaults_and_rejects_unknown_keys() {
        let config: ServerTlsConfig =
            serde_yaml_ng::from_str("{ cert: server.pem, key: server.key }").unwrap();
        assert_eq!(config.client_ca, None);
        assert!(!config.require_client_cert);
        assert!(
            serde_yaml_ng::from_str::<ServerTlsConfig>("{ cert: a, key: b, password: c }").is_err()
        );
    }
}
