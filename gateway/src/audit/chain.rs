//! The hash chain: how `hash(seq)` is computed from the sequence number, the previous
//! hash and the canonical body (format in the [module docs of `audit`](super)).

use sha2::{Digest, Sha256};

/// The domain-separation prefix of every chain hash.
pub const DOMAIN: &[u8] = b"county-gateway/audit/v1\0";

/// The previous hash of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// `hash(seq)` over the previous hash and the canonical body.
pub fn link_hash(seq: u64, prev_hash: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(seq.to_be_bytes());
    hasher.update(prev_hash);
    hasher.update(body);
    hasher.finalize().into()
}

/// Reads a stored hash (64 hex digits).
pub fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let mut hash = [0; 32];
    hex::decode_to_slice(hex_text, &mut hash).ok()?;
    Some(hash)
}
