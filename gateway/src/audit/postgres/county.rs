//! County checkpoints: one signed text naming the head of every chain of a log of
//! many chains at once, so that deleting a whole chain (its events, checkpoints and
//! its row) or the tail of one — which that chain's own checkpoints cannot show —
//! is detected by `verify`. The text, every line ending in a newline:
//!
//! ```text
//! county-gateway audit county checkpoint v2
//! seq: <this county checkpoint's number: 1 for the first, then one more each time>
//! time: <RFC 3339 UTC with milliseconds>
//! prev: <the previous county checkpoint's seq (0 for the first)> <64 lowercase hex digits: SHA-256 of its whole text; 64 zeros for the first>
//! chain: <chain id> <seq> <64 lowercase hex digits: hash(seq); 64 zeros for seq 0>
//! …one `chain:` line per chain, in chain id order…
//! key: <standard base64 with padding of the 32-byte Ed25519 public key>
//! signature: <standard base64 with padding of the Ed25519 signature over the lines above>
//! ```
//!
//! Signed with the same key as the chains' checkpoints. `prev` makes them a chain of
//! their own, so a removed county checkpoint is named by the next one, and a witness
//! keeps them by the same rule as a chain's checkpoints (a larger seq, a time not
//! before, naming the one it holds). Version 1, written before county checkpoints
//! were numbered, has no `seq:` line and its `prev:` is the hash alone; it is still
//! read (the database numbers it, migration 3).

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::super::checkpoint::{Signer, text_sha256};

/// The first line of every county checkpoint written now.
pub const COUNTY_HEADER: &str = "county-gateway audit county checkpoint v2";

/// The first line of a county checkpoint written before they were numbered.
const COUNTY_HEADER_V1: &str = "county-gateway audit county checkpoint v1";

/// One chain's head as a county checkpoint names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHeadLine {
    pub chain_id: String,
    pub seq: u64,
    /// Lowercase hex.
    pub hash: String,
}

/// A county checkpoint read back from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountyCheckpoint {
    /// Its number (v2; `None` for v1, which the database numbers).
    pub seq: Option<u64>,
    pub time: String,
    /// The previous county checkpoint's seq (v2; `None` for v1).
    pub prev_seq: Option<u64>,
    /// SHA-256 of the previous county checkpoint's text (zeros for the first).
    pub prev: [u8; 32],
    pub chains: Vec<ChainHeadLine>,
    pub key: Vec<u8>,
    signature: Vec<u8>,
    signed_len: usize,
}

/// The text of county checkpoint `seq` over `chains`, after the one whose seq and
/// text are `prev` (none: the first, and `seq` is 1).
pub(crate) fn sign(
    signer: &Signer,
    seq: u64,
    time: &str,
    prev: Option<(u64, &str)>,
    chains: &[ChainHeadLine],
) -> String {
    let (prev_seq, prev_hash) = prev.map_or((0, [0; 32]), |(seq, text)| (seq, text_sha256(text)));
    let mut signed = format!(
        "{COUNTY_HEADER}\nseq: {seq}\ntime: {time}\nprev: {prev_seq} {}\n",
        hex::encode(prev_hash)
    );
    signed.push_str(&chain_lines(chains));
    signed.push_str(&format!("key: {}\n", BASE64.encode(signer.public_key())));
    signer.signed(signed)
}

/// The `chain:` lines of a county checkpoint (to compare two without their times).
pub(crate) fn chain_lines(chains: &[ChainHeadLine]) -> String {
    chains
        .iter()
        .map(|c| format!("chain: {} {} {}\n", c.chain_id, c.seq, c.hash))
        .collect()
}

impl CountyCheckpoint {
    /// Reads a county checkpoint; the problem says which line is wrong.
    pub fn parse(text: &str) -> Result<CountyCheckpoint, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or("the county checkpoint does not end with a newline")?;
        let mut lines: Vec<&str> = body.split('\n').collect();
        let v2 = match lines.first() {
            Some(&COUNTY_HEADER) => true,
            Some(&COUNTY_HEADER_V1) => false,
            _ => return Err("the county checkpoint's header is not a county checkpoint's".into()),
        };
        let seq = if v2 {
            if lines.len() < 2 {
                return Err("the county checkpoint has too few lines".into());
            }
            let seq = field(lines.remove(1), "seq")?
                .parse::<u64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or("the county checkpoint's seq is not a positive number")?;
            Some(seq)
        } else {
            None
        };
        let [_header, time, prev, middle @ .., key, signature] = lines.as_slice() else {
            return Err("the county checkpoint has too few lines".into());
        };
        let time = field(time, "time")?;
        chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| "the county checkpoint's time is not RFC 3339")?;
        let prev = field(prev, "prev")?;
        let (prev_seq, prev_hex) = if v2 {
            let (prev_seq, hash) = prev
                .split_once(' ')
                .ok_or("the county checkpoint's prev is not `<seq> <hash>`")?;
            let prev_seq = prev_seq
                .parse::<u64>()
                .ok()
                .filter(|prev_seq| seq.is_some_and(|seq| *prev_seq < seq))
                .ok_or("the county checkpoint's prev seq is not a number below its seq")?;
            (Some(prev_seq), hash)
        } else {
            (None, prev)
        };
        let mut prev_hash = [0; 32];
        hex::decode_to_slice(prev_hex, &mut prev_hash)
            .map_err(|_| "the county checkpoint's prev hash is not 64 hex digits")?;
        let mut chains = Vec::with_capacity(middle.len());
        for line in middle {
            let value = field(line, "chain")?;
            let mut parts = value.split(' ');
            let (Some(chain_id), Some(seq), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("a `chain:` line is not `<chain id> <seq> <hash>`".into());
            };
            let seq = seq
                .parse::<u64>()
                .map_err(|_| "a `chain:` line's seq is not a number")?;
            if super::super::chain::parse_hash(hash).is_none() {
                return Err("a `chain:` line's hash is not 64 hex digits".into());
            }
            chains.push(ChainHeadLine {
                chain_id: chain_id.to_owned(),
                seq,
                hash: hash.to_owned(),
            });
        }
        let key = BASE64
            .decode(field(key, "key")?)
            .map_err(|_| "the county checkpoint's key is not base64")?;
        let signature_line = *signature;
        let signature = BASE64
            .decode(field(signature, "signature")?)
            .map_err(|_| "the county checkpoint's signature is not base64")?;
        Ok(CountyCheckpoint {
            seq,
            time: time.to_owned(),
            prev_seq,
            prev: prev_hash,
            chains,
            key,
            signature,
            signed_len: body.len() - signature_line.len(),
        })
    }

    /// Checks the signature over `text` (the text this was parsed from) with
    /// `public_key`, which the text must name.
    pub fn check_signature(&self, text: &str, public_key: &[u8]) -> Result<(), String> {
        if self.key != public_key {
            return Err("the county checkpoint names another key than the log's".into());
        }
        let signed = text
            .as_bytes()
            .get(..self.signed_len)
            .ok_or("the county checkpoint text is not the one parsed")?;
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(signed, &self.signature)
            .map_err(|_| "the county checkpoint's signature is not valid".to_owned())
    }
}

fn field<'a>(line: &'a str, name: &str) -> Result<&'a str, String> {
    line.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(": "))
        .ok_or_else(|| format!("the county checkpoint has no '{name}: ' line where expected"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_county_checkpoint_round_trips_and_its_signature_holds_only_for_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let signer =
            super::super::super::checkpoint::load_or_create_key(&dir.path().join("k"), true)
                .unwrap();
        let chains = vec![
            ChainHeadLine {
                chain_id: "a".repeat(32),
                seq: 3,
                hash: "1".repeat(64),
            },
            ChainHeadLine {
                chain_id: "b".repeat(32),
                seq: 0,
                hash: "0".repeat(64),
            },
        ];
        let time = "2026-01-01T00:00:00.000Z";
        let first = sign(&signer, 1, time, None, &chains);
        let parsed = CountyCheckpoint::parse(&first).unwrap();
        assert_eq!(parsed.chains, chains);
        assert_eq!((parsed.seq, parsed.prev_seq), (Some(1), Some(0)));
        assert_eq!(parsed.prev, [0; 32]);
        parsed.check_signature(&first, signer.public_key()).unwrap();
        let second = sign(&signer, 2, time, Some((1, &first)), &chains[..1]);
        let parsed = CountyCheckpoint::parse(&second).unwrap();
        assert_eq!((parsed.seq, parsed.prev_seq), (Some(2), Some(1)));
        assert_eq!(parsed.prev, text_sha256(&first));
        let forged = second.replace(" 3 ", " 2 ");
        let parsed = CountyCheckpoint::parse(&forged).unwrap();
        assert!(
            parsed
                .check_signature(&forged, signer.public_key())
                .is_err()
        );
    }

    #[test]
    fn a_county_checkpoint_written_before_they_were_numbered_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let signer =
            super::super::super::checkpoint::load_or_create_key(&dir.path().join("k"), true)
                .unwrap();
        let v1 = signer.signed(format!(
            "{COUNTY_HEADER_V1}\ntime: 2026-01-01T00:00:00.000Z\nprev: {}\nchain: {} 3 {}\nkey: {}\n",
            "0".repeat(64),
            "a".repeat(32),
            "1".repeat(64),
            BASE64.encode(signer.public_key())
        ));
        let parsed = CountyCheckpoint::parse(&v1).unwrap();
        assert_eq!((parsed.seq, parsed.prev_seq), (None, None));
        assert_eq!(parsed.chains.len(), 1);
        parsed.check_signature(&v1, signer.public_key()).unwrap();
        for broken in [
            v1.replacen("v1", "v3", 1),
            sign(&signer, 1, "2026-01-01T00:00:00.000Z", None, &[]).replace("seq: 1", "seq: 0"),
        ] {
            assert!(CountyCheckpoint::parse(&broken).is_err(), "{broken}");
        }
    }
}
