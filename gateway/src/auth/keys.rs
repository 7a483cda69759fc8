//! Verification keys: loading them from PEM files, JWKS documents and an HS256
//! secret, the immutable [`KeySet`] an issuer holds, and key selection by `alg`
//! family and `kid`.
//!
//! A key is only ever used for the algorithms of its own family (an RSA public key
//! is never an HMAC secret), and an EC key only for the curve it is on.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Smallest accepted RSA modulus, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Most keys taken from one JWKS document.
const MAX_JWKS_KEYS: usize = 100;

/// One verification key.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) family: AlgorithmFamily,
    /// The one algorithm this key verifies, when it is fixed (EC curve, JWK `alg`).
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
    /// SHA-256 over the key material, to notice keys that disappear.
    fingerprint: [u8; 32],
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    fn new(
        kid: Option<String>,
        alg: Option<Algorithm>,
        key: DecodingKey,
    ) -> Result<VerifyKey, String> {
        let family = key.family();
        if let Some(alg) = alg
            && alg.family() != family
        {
            return Err(format!("a {family:?} key cannot verify {alg:?}"));
        }
        let mut hash = Sha256::new();
        hash.update(format!("{family:?}").as_bytes());
        match key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => hash.update(bytes),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                hash.update(n);
                hash.update([0]);
                hash.update(e);
            }
        }
        Ok(VerifyKey {
            kid,
            family,
            alg,
            key,
            fingerprint: hash.finalize().into(),
        })
    }

    fn verifies(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// The keys of one issuer at one moment; replaced whole, never edited.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerifyKey>) -> KeySet {
        KeySet {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token with this `alg` and `kid`. A token's `kid` must name a
    /// key of the right family, except that a key configured without a kid, alone
    /// in its family, is used whatever the token's kid. A token without a kid is
    /// accepted only when the family has exactly one key.
    pub(crate) fn select(&self, alg: Algorithm, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        let mut candidates = self.keys.iter().filter(|k| k.verifies(alg));
        if let Some(kid) = kid
            && let Some(found) = candidates.clone().find(|k| k.kid.as_deref() == Some(kid))
        {
            return Some(Arc::clone(found));
        }
        let only = candidates.next()?;
        if candidates.next().is_some() {
            return None;
        }
        match kid {
            None => Some(Arc::clone(only)),
            Some(_) if only.kid.is_none() => Some(Arc::clone(only)),
            Some(_) => None,
        }
    }

    /// Whether some key of `self` is missing from `newer`.
    pub(crate) fn loses_keys_in(&self, newer: &KeySet) -> bool {
        self.keys.iter().any(|old| {
            !newer
                .keys
                .iter()
                .any(|new| new.fingerprint == old.fingerprint && new.kid == old.kid)
        })
    }

    /// The key ids, for diagnostics.
    #[cfg(test)]
    pub(crate) fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
}

/// Loads one public key PEM: RSA (≥ 2048 bits), EC P-256/P-384 or Ed25519.
pub(crate) fn key_from_pem(pem: &[u8], kid: Option<String>) -> Result<VerifyKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    let label = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| "not a PEM file".to_owned())?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        l if l.contains("PRIVATE") => {
            return Err(
                "this is a private key; configure the issuer's public key instead".to_owned(),
            );
        }
        other => return Err(format!("expected a PUBLIC KEY, found {other}")),
    }
    if label == "PUBLIC KEY" {
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let alg = ec_alg_by_point_len(key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0))?;
            return VerifyKey::new(kid, Some(alg), key);
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
                return Err("unsupported EdDSA key (only Ed25519)".to_owned());
            }
            return VerifyKey::new(kid, Some(Algorithm::EdDSA), key);
        }
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .map_err(|_| "not an RSA, EC (P-256/P-384) or Ed25519 public key".to_owned())?;
    check_rsa_size(&key)?;
    VerifyKey::new(kid, None, key)
}

fn ec_alg_by_point_len(len: usize) -> Result<Algorithm, String> {
    match len {
        65 => Ok(Algorithm::ES256),
        97 => Ok(Algorithm::ES384),
        _ => Err("unsupported EC curve (P-256 and P-384 only)".to_owned()),
    }
}

fn check_rsa_size(key: &DecodingKey) -> Result<(), String> {
    let jwk = Jwk::from_decoding_key(key, None).map_err(|_| "not a valid RSA public key")?;
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Err("not a valid RSA public key".to_owned());
    };
    let n = URL_SAFE_NO_PAD
        .decode(&rsa.n)
        .map_err(|_| "not a valid RSA public key")?;
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_RSA_MODULUS_BYTES {
        return Err(format!(
            "RSA key of {} bits is too short; at least 2048",
            significant * 8
        ));
    }
    Ok(())
}

/// The HS256 key of an issuer that shares a secret with the gateway.
pub(crate) fn hs256_key(secret: &[u8]) -> Result<VerifyKey, String> {
    VerifyKey::new(
        None,
        Some(Algorithm::HS256),
        DecodingKey::from_secret(secret),
    )
}

/// The usable keys of a JWKS document, and how many were skipped (wrong use,
/// symmetric, unsupported, outside the issuer's algorithms). A document that is not
/// a JWKS at all is an error.
pub(crate) fn keys_from_jwks(doc: &[u8], allowed: &[Algorithm]) -> Result<(KeySet, usize), String> {
    let doc: Value = serde_json::from_slice(doc).map_err(|_| "not JSON".to_owned())?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err("not a JWKS document (no `keys` array)".to_owned());
    };
    let mut keys = Vec::new();
    let mut skipped = 0;
    for entry in entries {
        if keys.len() >= MAX_JWKS_KEYS {
            skipped += 1;
            continue;
        }
        match key_from_jwk(entry, allowed) {
            Some(key) => keys.push(key),
            None => skipped += 1,
        }
    }
    Ok((KeySet::new(keys), skipped))
}

fn key_from_jwk(entry: &Value, allowed: &[Algorithm]) -> Option<VerifyKey> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let stated = match jwk.common.key_algorithm {
        Some(ka) => Some(Algorithm::try_from(ka).ok()?),
        None => None,
    };
    let (key, alg) = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            let alg = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            };
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?;
            if ec_alg_by_point_len(key.try_get_as_bytes().ok()?.len()).ok()? != alg {
                return None;
            }
            (key, Some(alg))
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return None;
            }
            let key = DecodingKey::from_ed_components(&okp.x).ok()?;
            if key.try_get_as_bytes().ok()?.len() != 32 {
                return None;
            }
            (key, Some(Algorithm::EdDSA))
        }
        AlgorithmParameters::RSA(rsa) => {
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?;
            check_rsa_size(&key).ok()?;
            (key, None)
        }
        // Symmetric keys are never taken from a JWKS document.
        AlgorithmParameters::OctetKey(_) => return None,
        _ => return None,
    };
    let alg = match (alg, stated) {
        (Some(a), Some(s)) if a != s => return None,
        (a, s) => a.or(s),
    };
    let family = key.family();
    let usable = allowed
        .iter()
        .any(|a| a.family() == family && alg.is_none_or(|k| k == *a));
    if !usable {
        return None;
    }
    VerifyKey::new(jwk.common.key_id.clone(), alg, key).ok()
}
