//! Checkpoints: the signed head of the hash chain, as a text a witness can keep
//! (format in the [module docs of `audit`](super)), and the Ed25519 key that signs
//! them, kept in `audit-signing.key` (PKCS#8, created on first start with mode 0600).
//! The writer signs v2 checkpoints, which name the previous checkpoint (its seq and
//! the SHA-256 of its text) and the writer's [`Cadence`]; v1 checkpoints, written by
//! older gateways, are still read.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::AuditError;
use super::cadence::Cadence;

/// The first line of every checkpoint the writer makes.
pub const HEADER: &str = "county-gateway audit checkpoint v2";

/// The first line of a checkpoint made by a gateway before v2.
pub const HEADER_V1: &str = "county-gateway audit checkpoint v1";

/// What every checkpoint header starts with (to split a file of many).
const HEADER_PREFIX: &str = "county-gateway audit checkpoint v";

/// What every county checkpoint header starts with (see
/// [`county`](super::postgres::county)); a file of them splits the same way.
const COUNTY_HEADER_PREFIX: &str = "county-gateway audit county checkpoint v";

/// Which signed texts of a log its witnesses keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WitnessedKind {
    /// The checkpoints of its one chain (the embedded log).
    Chain,
    /// Its county checkpoints, each naming every chain's head (a log of many
    /// chains, on PostgreSQL).
    County,
}

/// The previous checkpoint a v2 checkpoint names: its seq and the SHA-256 of its
/// whole text. The first checkpoint of a log names seq 0 and 32 zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prev {
    pub seq: u64,
    pub text_sha256: [u8; 32],
}

impl Prev {
    /// What the first checkpoint of a log names.
    pub const NONE: Prev = Prev {
        seq: 0,
        text_sha256: [0; 32],
    };

    /// The checkpoint at `seq` whose text is `text`.
    pub fn of(seq: u64, text: &str) -> Prev {
        Prev {
            seq,
            text_sha256: text_sha256(text),
        }
    }
}

/// SHA-256 of a checkpoint's whole text (every line, the signature's included).
pub fn text_sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

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

    /// The raw public key.
    pub(crate) fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The v2 checkpoint text for the chain head `(seq, hash)` at `time`, following
    /// `prev`, made by a writer with `cadence`.
    pub(crate) fn checkpoint(
        &self,
        seq: u64,
        hash_hex: &str,
        time: &str,
        prev: &Prev,
        cadence: &Cadence,
    ) -> String {
        let signed = format!(
            "{HEADER}\nseq: {seq}\nhash: {hash_hex}\ntime: {time}\nprev: {} {}\n\
             cadence: {}\nkey: {}\n",
            prev.seq,
            hex::encode(prev.text_sha256),
            cadence.text(),
            self.public_key
        );
        self.signed(signed)
    }

    /// A v1 checkpoint, as gateways before v2 wrote them (for tests of old logs).
    #[cfg(test)]
    pub(crate) fn checkpoint_v1(&self, seq: u64, hash_hex: &str, time: &str) -> String {
        let signed = format!(
            "{HEADER_V1}\nseq: {seq}\nhash: {hash_hex}\ntime: {time}\nkey: {}\n",
            self.public_key
        );
        self.signed(signed)
    }

    /// `signed` (lines ending in newlines) followed by its `signature:` line.
    pub(crate) fn signed(&self, signed: String) -> String {
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}signature: {}\n", BASE64.encode(signature.as_ref()))
    }
}

/// A checkpoint read back from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1 or 2.
    pub version: u8,
    pub seq: u64,
    /// Lowercase hex.
    pub hash: String,
    pub time: String,
    /// The previous checkpoint (v2 only).
    pub prev: Option<Prev>,
    /// The cadence its writer ran with (v2 only).
    pub cadence: Option<Cadence>,
    /// The raw Ed25519 public key named in the text.
    pub key: Vec<u8>,
    signature: Vec<u8>,
    signed_len: usize,
}

impl Checkpoint {
    /// Reads a checkpoint text (v1 or v2); the problem says which line is wrong.
    pub fn parse(text: &str) -> Result<Checkpoint, String> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err("the checkpoint text does not end with a newline".into());
        };
        let lines: Vec<&str> = body.split('\n').collect();
        let (version, seq, hash, time, prev, cadence, key, signature) = match lines.as_slice() {
            [header, seq, hash, time, key, signature] if *header == HEADER_V1 => {
                (1, seq, hash, time, None, None, key, signature)
            }
            [header, seq, hash, time, prev, cadence, key, signature] if *header == HEADER => (
                2,
                seq,
                hash,
                time,
                Some(prev),
                Some(cadence),
                key,
                signature,
            ),
            [header, ..] if *header != HEADER && *header != HEADER_V1 => {
                return Err("the checkpoint header is not a v1 or v2 header".into());
            }
            _ => {
                return Err(format!(
                    "the checkpoint has {} lines, which is not what its version has",
                    lines.len()
                ));
            }
        };
        let seq = field(seq, "seq")?
            .parse::<u64>()
            .ok()
            .filter(|seq| *seq > 0)
            .ok_or("the checkpoint's seq is not a positive number")?;
        let hash = field(hash, "hash")?;
        if !is_hex64(hash) {
            return Err("the checkpoint's hash is not 64 lowercase hex digits".into());
        }
        let time = field(time, "time")?;
        chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| "the checkpoint's time is not RFC 3339")?;
        let prev = match prev {
            None => None,
            Some(line) => Some(parse_prev(field(line, "prev")?, seq)?),
        };
        let cadence = match cadence {
            None => None,
            Some(line) => Some(
                Cadence::parse(field(line, "cadence")?)
                    .ok_or("the checkpoint's cadence is not `N events, M ms`")?,
            ),
        };
        let key = BASE64
            .decode(field(key, "key")?)
            .map_err(|_| "the checkpoint's key is not base64")?;
        let signature_line = *signature;
        let signature = BASE64
            .decode(field(signature, "signature")?)
            .map_err(|_| "the checkpoint's signature is not base64")?;
        let signed_len = body.len() - signature_line.len();
        Ok(Checkpoint {
            version,
            seq,
            hash: hash.to_owned(),
            time: time.to_owned(),
            prev,
            cadence,
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

    /// The checkpoint's time in ms since the epoch (checked RFC 3339 when parsed).
    pub fn time_ms(&self) -> i64 {
        super::cadence::time_ms(&self.time).unwrap_or(i64::MIN)
    }
}

/// Splits a text of checkpoints written one after the other (as a witness serves
/// them) into the texts of each, in order. Blank lines between them are dropped;
/// anything before the first header is returned as a text of its own, so that it
/// fails to parse instead of being skipped.
pub fn split_texts(text: &str) -> Vec<&str> {
    let mut texts = Vec::new();
    let mut begun = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let header = line.starts_with(HEADER_PREFIX) || line.starts_with(COUNTY_HEADER_PREFIX);
        if header && at > begun {
            texts.push(&text[begun..at]);
            begun = at;
        }
        at += line.len();
    }
    if at > begun {
        texts.push(&text[begun..at]);
    }
    texts
        .into_iter()
        .map(|piece| {
            let kept = piece.trim_end_matches('\n').len();
            // Keep the text's own final newline, drop blank lines after it.
            &piece[..(kept + 1).min(piece.len())]
        })
        .filter(|piece| !piece.trim().is_empty())
        .collect()
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<seq> <64 hex>`, naming a checkpoint before `seq`.
fn parse_prev(text: &str, seq: u64) -> Result<Prev, String> {
    let bad = || "the checkpoint's prev is not `<seq> <64 lowercase hex digits>`".to_owned();
    let (prev_seq, digest) = text.split_once(' ').ok_or_else(bad)?;
    let prev_seq: u64 = prev_seq.parse().map_err(|_| bad())?;
    if !is_hex64(digest) {
        return Err(bad());
    }
    if prev_seq >= seq {
        return Err("the checkpoint's prev is not before it".into());
    }
    let mut text_sha256 = [0; 32];
    hex::decode_to_slice(digest, &mut text_sha256).map_err(|_| bad())?;
    Ok(Prev {
        seq: prev_seq,
        text_sha256,
    })
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

/// Reads a pinned public key: standard base64 (with padding) of 32 bytes, as the
/// `key:` line of a checkpoint and `gateway audit public-key` write it.
pub fn parse_public_key(text: &str) -> Result<Vec<u8>, String> {
    let raw = BASE64
        .decode(text.trim())
        .map_err(|_| "is not standard base64".to_owned())?;
    if raw.len() != 32 {
        return Err(format!(
            "is {} bytes; an Ed25519 public key is 32 bytes",
            raw.len()
        ));
    }
    Ok(raw)
}

/// A public key as a checkpoint's `key:` line writes it.
pub fn encode_public_key(raw: &[u8]) -> String {
    BASE64.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(Ed25519KeyPair::generate().unwrap())
    }

    #[test]
    fn a_file_of_checkpoints_splits_into_each_and_blank_lines_are_dropped() {
        let signer = signer();
        let cadence = Cadence::default();
        let first = signer.checkpoint(
            3,
            &"a".repeat(64),
            "2026-03-02T08:00:00.000Z",
            &Prev::NONE,
            &cadence,
        );
        let second = signer.checkpoint(
            9,
            &"b".repeat(64),
            "2026-03-02T08:00:10.000Z",
            &Prev::of(3, &first),
            &cadence,
        );
        let file = format!("{first}\n{second}\n\n");
        let texts = split_texts(&file);
        assert_eq!(texts, [first.as_str(), second.as_str()]);
        for text in texts {
            let parsed = Checkpoint::parse(text).unwrap();
            parsed.check_signature(text, signer.public_key()).unwrap();
        }
        assert_eq!(
            Checkpoint::parse(&second).unwrap().prev,
            Some(Prev::of(3, &first))
        );
        // Something before the first header is kept, to fail on its own.
        let texts = split_texts("junk\n");
        assert_eq!(texts, ["junk\n"]);
        assert!(Checkpoint::parse(texts[0]).is_err());
        assert!(split_texts("\n\n").is_empty());
    }

    #[test]
    fn a_prev_must_be_before_the_checkpoint_and_well_formed() {
        let signer = signer();
        let cadence = Cadence::default();
        let later = Prev {
            seq: 9,
            text_sha256: [1; 32],
        };
        let text = signer.checkpoint(
            9,
            &"a".repeat(64),
            "2026-03-02T08:00:00.000Z",
            &later,
            &cadence,
        );
        let problem = Checkpoint::parse(&text).unwrap_err();
        assert!(problem.contains("not before it"), "{problem}");
        let text = signer.checkpoint(
            10,
            &"a".repeat(64),
            "2026-03-02T08:00:00.000Z",
            &later,
            &cadence,
        );
        let broken = text.replace("prev: 9 ", "prev: 9 x");
        assert!(Checkpoint::parse(&broken).is_err());
        assert!(Checkpoint::parse(&text.replace("v2\n", "v3\n")).is_err());
    }

    #[test]
    fn a_pinned_key_is_32_bytes_of_base64() {
        let signer = signer();
        let text = encode_public_key(signer.public_key());
        assert_eq!(parse_public_key(&text).unwrap(), signer.public_key());
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key(&BASE64.encode([0u8; 31])).is_err());
    }
}
