//! What a witness reads of a signed text, whichever log it comes from: a chain's v2
//! checkpoint (the embedded log, one chain) or a v2 county checkpoint (a log of many
//! chains on PostgreSQL, see [`county`](crate::audit::postgres::county)). Both are
//! kept by one rule — a larger seq, a time not before the head's, naming the head as
//! the previous text — so the witness needs of each only which log it belongs to (its
//! kind and key), its seq, time and previous text, and a hash to show as the head:
//! the chain's hash at that seq for a chain checkpoint, the SHA-256 of the whole text
//! for a county checkpoint.
//!
//! A log is its kind and its key: the county checkpoints of a key are a log apart
//! from the chain checkpoints of the same key (a county that moved its embedded log
//! to PostgreSQL keeps both at its witnesses).

use crate::audit::checkpoint::{Checkpoint, Prev, WitnessedKind, encode_public_key, text_sha256};
use crate::audit::postgres::county::CountyCheckpoint;

/// A signed text, read and its signature checked against the key it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: WitnessedKind,
    /// The raw Ed25519 public key of the log.
    pub key: Vec<u8>,
    pub seq: u64,
    /// Lowercase hex: the chain's hash at `seq`, or the county checkpoint's text hash.
    pub hash: String,
    /// As the text states it (RFC 3339).
    pub time: String,
    /// The same, in milliseconds since the epoch.
    pub time_ms: i64,
    /// The previous text it names.
    pub prev: Prev,
}

/// Why a text is not one a witness keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the text is not a checkpoint or a county checkpoint")]
    Malformed,
    #[error("only v2 texts, which name the one before them, are kept")]
    TooOld,
    #[error("the signature is not valid for the key the text names")]
    Signature,
}

impl Entry {
    /// Reads `text` and checks its signature with the key it names.
    pub fn parse(text: &str) -> Result<Entry, EntryError> {
        if let Ok(checkpoint) = Checkpoint::parse(text) {
            let Some(prev) = checkpoint.prev else {
                return Err(EntryError::TooOld);
            };
            checkpoint
                .check_signature(text, &checkpoint.key)
                .map_err(|_| EntryError::Signature)?;
            return Ok(Entry {
                kind: WitnessedKind::Chain,
                time_ms: checkpoint.time_ms(),
                time: checkpoint.time,
                key: checkpoint.key,
                seq: checkpoint.seq,
                hash: checkpoint.hash,
                prev,
            });
        }
        let county = CountyCheckpoint::parse(text).map_err(|_| EntryError::Malformed)?;
        let (Some(seq), Some(prev_seq)) = (county.seq, county.prev_seq) else {
            return Err(EntryError::TooOld);
        };
        county
            .check_signature(text, &county.key)
            .map_err(|_| EntryError::Signature)?;
        Ok(Entry {
            kind: WitnessedKind::County,
            time_ms: crate::audit::cadence::time_ms(&county.time).unwrap_or(i64::MIN),
            time: county.time,
            key: county.key,
            seq,
            hash: hex::encode(text_sha256(text)),
            prev: Prev {
                seq: prev_seq,
                text_sha256: county.prev,
            },
        })
    }
}

/// The name the witness's store files a log under: the key (standard base64) for a
/// chain's checkpoints, as witnesses always did, and `county:` before it for county
/// checkpoints.
pub fn log_name(kind: WitnessedKind, key: &[u8]) -> String {
    match kind {
        WitnessedKind::Chain => encode_public_key(key),
        WitnessedKind::County => format!("county:{}", encode_public_key(key)),
    }
}

/// The path segment after `/v1/logs/{key}/` that names a log's kind in the
/// witness's API: nothing for a chain, `county/` for county checkpoints.
pub fn path_part(kind: WitnessedKind) -> &'static str {
    match kind {
        WitnessedKind::Chain => "",
        WitnessedKind::County => "county/",
    }
}
