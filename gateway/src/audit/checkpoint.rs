//! Checkpoints: the signed head of the hash chain, as a text a witness can keep
//! (format in the [module docs of `audit`](super)), and the Ed25519 key that signs
//! them, kept in `audit-signing.key` (PKCS#8, created on first start with mode 0600).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::AuditError;

/// The first line of every checkpoint.
pub const HEADER: &str = "county-gateway audit checkpoint v1";

/// Signs checkpoints with the log's key.
#[derive(Debug)]
pub(crate) struct Signer {
    key: Ed25519KeyPair,
    public_key: String,
}

impl Signer {
    pub(crate) fn new(key: Ed25519KeyPair) -> Signer {
        let public_key = BASE64.encode(key.public_key().as_ref());
        Signer { key, public_key }
    }

    /// The checkpoint text for the chain head `(seq, hash)` at `time`.
    pub(crate) fn checkpoint(&self, seq: u64, hash_hex: &str, time: &str) -> String {
        let signed = format!(
            "{HEADER}\nseq: {seq}\nhash: {hash_hex}\ntime: {time}\nkey: {}\n",
            self.public_key
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}signature: {}\n", BASE64.encode(signature.as_ref()))
    }
}

/// A checkpoint read back from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    /// Lowercase hex.
    pub hash: String,
    pub time: String,
    /// The raw Ed25519 public key named in the text.
    pub key: Vec<u8>,
    signature: Vec<u8>,
    signed_len: usize,
}

impl Checkpoint {
    /// Reads a checkpoint text; the problem says which line is wrong.
    pub fn parse(text: &str) -> Result<Checkpoint, String> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err("the checkpoint text does not end with a newline".into());
        };
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, seq, hash, time, key, signature] = lines.as_slice() else {
            return Err(format!(
                "the checkpoint has {} lines instead of 6",
                lines.len()
            ));
        };
        if *header != HEADER {
            return Err("the checkpoint header is not the v1 header".into());
        }
        let seq = field(seq, "seq")?
            .parse::<u64>()
            .ok()
            .filter(|seq| *seq > 0)
            .ok_or("the checkpoint's seq is not a positive number")?;
        let hash = field(hash, "hash")?;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err("the checkpoint's hash is not 64 lowercase hex digits".into());
        }
        let time = field(time, "time")?;
        chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| "the checkpoint's time is not RFC 3339")?;
        let key = BASE64
            .decode(field(key, "key")?)
            .map_err(|_| "the checkpoint's key is not base64")?;
        let signature_line = *signature;
        let signature = BASE64
            .decode(field(signature, "signature")?)
            .map_err(|_| "the checkpoint's signature is not base64")?;
        let signed_len = body.len() - signature_line.len();
        Ok(Checkpoint {
            seq,
            hash: hash.to_owned(),
            time: time.to_owned(),
            key,
            signature,
            signed_len,
        })
    }

    /// Checks the signature over `text` (the text this checkpoint was parsed from)
    /// with `public_key`, and that the text names that key.
    pub fn check_signature(&self, text: &str, public_key: &[u8]) -> Result<(), String> {
        if self.key != public_key {
            return Err("the checkpoint names another key than the log's".into());
        }
        let signed = text
            .as_bytes()
            .get(..self.signed_len)
            .ok_or("the checkpoint text is not the one parsed")?;
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(signed, &self.signature)
            .map_err(|_| "the checkpoint's signature is not valid".to_owned())
    }
}

fn field<'a>(line: &'a str, name: &str) -> Result<&'a str, String> {
    line.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(": "))
        .ok_or_else(|| format!("the checkpoint has no '{name}: ' line where expected"))
}

/// Reads the signing key, or creates it (mode 0600) when `may_create` and it does not
/// exist yet.
pub(crate) fn load_or_create_key(path: &Path, may_create: bool) -> Result<Signer, AuditError> {
    match read_key(path) {
        Ok(key) => return Ok(Signer::new(key)),
        Err(AuditError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if !may_create {
        return Err(AuditError::Key(
            "the key file is missing but the log already has signed checkpoints; \
             restore the key instead of starting a new one"
                .into(),
        ));
    }
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| AuditError::Key("cannot generate a key".into()))?;
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match created {
        Ok(file) => file,
        // Another process created it first: use that one.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return read_key(path).map(Signer::new),
        Err(source) => {
            return Err(AuditError::Io {
                what: "cannot create the audit checkpoint key",
                source,
            });
        }
    };
    let write = |file: &mut std::fs::File| -> std::io::Result<()> {
        file.write_all(document.as_ref())?;
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write(&mut file).map_err(|source| AuditError::Io {
        what: "cannot write the audit checkpoint key",
        source,
    })?;
    tracing::info!("created a new audit checkpoint key");
    let key = Ed25519KeyPair::from_pkcs8(document.as_ref())
        .map_err(|_| AuditError::Key("the generated key does not load".into()))?;
    Ok(Signer::new(key))
}

fn read_key(path: &Path) -> Result<Ed25519KeyPair, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
        what: "cannot read the audit checkpoint key",
        source,
    })?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!("the audit checkpoint key is readable by other users; chmod 600 it");
    }
    Ed25519KeyPair::from_pkcs8(&bytes)
        .map_err(|_| AuditError::Key("the key file is not an Ed25519 PKCS#8 key".into()))
}

/// The public half of the key in `path`, raw (32 bytes).
pub(crate) fn public_key(path: &Path) -> Result<Vec<u8>, AuditError> {
    Ok(read_key(path)?.public_key().as_ref().to_vec())
}
