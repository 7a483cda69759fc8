//! The witness's own configuration file (`witness.yaml`): where it listens, its data
//! directory, its TLS (client certificates required) and the allow-list of clients —
//! each known by its certificate's SHA-256 fingerprint and allowed to submit
//! checkpoints for the checkpoint keys listed with it.
//!
//! ```yaml
//! listen: 0.0.0.0:8443
//! data_dir: witness-data
//! tls: { cert: certs/witness.pem, key: certs/witness.key, client_ca: certs/counties-ca.pem, require_client_cert: true }
//! clients:
//!   - name: county-139901
//!     certificate_sha256: "3f:a1:…"            # `openssl x509 -noout -fingerprint -sha256 -in client.pem`
//!     checkpoint_keys: ["base64 public key"]    # `gateway audit public-key --data-dir …` on the gateway
//! ```
//!
//! Every listed client may read what the witness holds (checkpoints carry no personal
//! data); only the clients that list a log's key may submit checkpoints for it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::audit::checkpoint::parse_public_key;
use crate::tls::ServerTlsConfig;

/// The largest configuration file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// `witness.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessFile {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Relative to this file unless absolute.
    pub data_dir: PathBuf,
    /// Must require client certificates.
    pub tls: ServerTlsConfig,
    pub clients: Vec<ClientEntry>,
}

/// One client allowed to talk to the witness.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// For the witness's records and logs.
    pub name: String,
    /// The SHA-256 fingerprint of the client's certificate: 64 hex digits, colons
    /// and case as `openssl` prints them are accepted.
    pub certificate_sha256: String,
    /// The checkpoint keys (base64) whose checkpoints this client may submit.
    #[serde(default)]
    pub checkpoint_keys: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

/// A client the witness knows, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedClient {
    pub name: String,
    /// Lowercase hex.
    pub certificate_sha256: String,
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: ServerTlsConfig,
    pub clients: Vec<AllowedClient>,
    /// The directory of the file; TLS paths resolve against it.
    pub base_dir: PathBuf,
}

/// A fingerprint as 64 lowercase hex digits, whatever `openssl` made of it.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

impl WitnessConfig {
    /// Reads and checks `path`; every problem at once, as `path: message` lines.
    pub fn load(path: &Path) -> Result<WitnessConfig, Vec<String>> {
        let text = read_small(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let file: WitnessFile =
            serde_yaml_ng::from_str(&text).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let base_dir = path.parent().unwrap_or(Path::new("")).to_owned();
        let mut problems = Vec::new();
        if !file.tls.require_client_cert || file.tls.client_ca.is_none() {
            problems.push(
                "tls: a witness requires client certificates: set client_ca and \
                 require_client_cert: true"
                    .to_owned(),
            );
        }
        if file.clients.is_empty() {
            problems.push("clients: list at least one client".to_owned());
        }
        let mut clients = Vec::new();
        let mut fingerprints = BTreeSet::new();
        for (i, entry) in file.clients.iter().enumerate() {
            let fingerprint = normalize_fingerprint(&entry.certificate_sha256);
            match &fingerprint {
                None => problems.push(format!(
                    "clients[{i}].certificate_sha256: not a SHA-256 fingerprint (64 hex digits)"
                )),
                Some(fingerprint) if !fingerprints.insert(fingerprint.clone()) => {
                    problems.push(format!(
                        "clients[{i}].certificate_sha256: a second client with this certificate"
                    ));
                }
                Some(_) => {}
            }
            let mut keys = Vec::new();
            for (j, key) in entry.checkpoint_keys.iter().enumerate() {
                match parse_public_key(key) {
                    Ok(key) => keys.push(key),
                    Err(problem) => {
                        problems.push(format!("clients[{i}].checkpoint_keys[{j}]: {problem}"));
                    }
                }
            }
            if let Some(certificate_sha256) = fingerprint {
                clients.push(AllowedClient {
                    name: entry.name.clone(),
                    certificate_sha256,
                    keys,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect());
        }
        let data_dir = base_dir.join(&file.data_dir);
        Ok(WitnessConfig {
            listen: file.listen,
            data_dir,
            tls: file.tls,
            clients,
            base_dir,
        })
    }
}

/// A regular file of at most [`MAX_FILE_BYTES`].
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_openssl_prints_them_are_read() {
        let hex = "ab".repeat(32);
        let openssl: String = hex
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize_fingerprint(&openssl), Some(hex.clone()));
        assert_eq!(normalize_fingerprint(&hex), Some(hex));
        assert_eq!(normalize_fingerprint("abcd"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn a_witness_without_required_client_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.yaml");
        std::fs::write(
            &path,
            "data_dir: data\ntls: { cert: a.pem, key: a.key }\nclients:\n  - name: x\n    \
             certificate_sha256: nope\n    checkpoint_keys: [AAAA]\n",
        )
        .unwrap();
        let problems = WitnessConfig::load(&path).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("requires client certificates"));
        assert!(problems[1].contains("certificate_sha256"));
    }
}
