//! The canonical (low-S) form of ECDSA signatures in JWS (`r || s`, fixed width).
//! A signature `(r, s)` and its twin `(r, n − s)` both verify, so an ECDSA-signed token
//! has two valid texts; the gateway accepts only the one with `s ≤ n/2` and signs
//! only that form, so one signed token has exactly one text (a cache, a replay check or
//! an audit record keyed on the token cannot be told apart by re-signing).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

/// The order n of the P-256 group, big-endian.
pub(crate) const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The order n of the P-384 group, big-endian.
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

fn order(alg: Algorithm) -> Option<&'static [u8]> {
    match alg {
        Algorithm::ES256 => Some(&P256_ORDER),
        Algorithm::ES384 => Some(&P384_ORDER),
        _ => None,
    }
}

/// `n − x` for big-endian numbers of equal width, `x < n`.
fn sub_from(n: &[u8], x: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let mut d = i16::from(n[i]) - i16::from(x[i]) - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = u8::try_from(d).unwrap_or(0);
    }
    out
}

/// Whether `s > n/2` (equivalently `s > n − s`).
fn is_high(n: &[u8], s: &[u8]) -> bool {
    s > sub_from(n, s).as_slice()
}

/// Whether a JWS signature (base64url) of `alg` is in low-S form. Signatures of other
/// algorithms pass; a signature of the wrong width fails.
pub(crate) fn is_canonical(alg: Algorithm, signature: &str) -> bool {
    let Some(n) = order(alg) else {
        return true;
    };
    let Ok(raw) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    raw.len() == 2 * n.len() && raw[n.len()..] < *n && !is_high(n, &raw[n.len()..])
}

/// The token with its ECDSA signature in low-S form (unchanged when it already is, or
/// for other algorithms).
pub(crate) fn canonicalize(alg: Algorithm, token: String) -> String {
    let Some(n) = order(alg) else {
        return token;
    };
    let Some((input, signature)) = token.rsplit_once('.') else {
        return token;
    };
    let Ok(mut raw) = URL_SAFE_NO_PAD.decode(signature) else {
        return token;
    };
    if raw.len() != 2 * n.len() || !is_high(n, &raw[n.len()..]) {
        return token;
    }
    let low = sub_from(n, &raw[n.len()..]);
    raw[n.len()..].copy_from_slice(&low);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw))
}

/// The token with its ECDSA signature turned into the other (high-S) twin, for tests.
#[cfg(test)]
pub(crate) fn twin(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut raw = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    let n = if raw.len() == 64 {
        &P256_ORDER[..]
    } else {
        &P384_ORDER[..]
    };
    let twin = sub_from(n, &raw[n.len()..]);
    raw[n.len()..].copy_from_slice(&twin);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw))
}
