//! Minting tokens, for demos and tests: a [`SigningKey`] (from a PEM private key,
//! an HS256 secret, or a fresh ES256 key pair) and [`mint`], which signs
//! [`MintClaims`] with `iat`, `nbf`, `exp` and a random `jti`.
//!
//! A fresh ES256 key is generated without a key-generation API: 32 random bytes from
//! aws-lc-rs (through rustls) in [1, n) are the private scalar; aws-lc-rs derives
//! the public point when the key is loaded, and both are written out as standard
//! PKCS#8 and SubjectPublicKeyInfo PEM.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::caller::Role;
use super::config::MIN_HS256_SECRET_BYTES;

/// A key that signs tokens. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a key could not be used or a token not minted. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("not a private key usable with this algorithm")]
    InvalidKey,
    #[error("this algorithm is not supported for minting")]
    UnsupportedAlgorithm,
    #[error("an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("no secure random numbers available")]
    Random,
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    #[error("signing failed")]
    Signing,
}

impl SigningKey {
    /// A private key in PEM (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`) for
    /// `alg` (RS*, PS*, ES256/ES384 or EdDSA).
    pub fn from_pem(
        pem: &[u8],
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<SigningKey, MintError> {
        let key = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => return Err(MintError::UnsupportedAlgorithm),
        }
        .map_err(|_| MintError::InvalidKey)?;
        // Loading is lazy in jsonwebtoken: sign once so a wrong key fails here.
        jsonwebtoken::crypto::sign(b"probe", &key, alg).map_err(|_| MintError::InvalidKey)?;
        Ok(SigningKey { alg, kid, key })
    }

    /// An HS256 shared secret (at least 32 bytes).
    pub fn from_hs256_secret(secret: &[u8], kid: Option<String>) -> Result<SigningKey, MintError> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(MintError::WeakSecret);
        }
        Ok(SigningKey {
            alg: Algorithm::HS256,
            kid,
            key: EncodingKey::from_secret(secret),
        })
    }

    /// A fresh ES256 key pair: the signing key, its private key PEM (PKCS#8) and its
    /// public key PEM (SubjectPublicKeyInfo) — for demos, which write both into
    /// their data directory.
    pub fn generate_es256(kid: &str) -> Result<(SigningKey, String, String), MintError> {
        let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
        let mut scalar = [0u8; 32];
        // A uniformly random 256-bit value is ≥ n with probability < 2^-32.
        for _ in 0..16 {
            random.fill(&mut scalar).map_err(|_| MintError::Random)?;
            if scalar.iter().any(|b| *b != 0) && scalar < super::ecdsa::P256_ORDER {
                let result = es256_from_scalar(&scalar, kid);
                scalar.fill(0);
                return result;
            }
        }
        Err(MintError::Random)
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` its tokens carry.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public half as a JWK (with `kid`, `alg` and `use: sig`), to publish in a
    /// JWKS document. Not available for HS256 (a secret has no public half).
    pub fn public_jwk(&self) -> Result<Jwk, MintError> {
        if self.alg.family() == AlgorithmFamily::Hmac {
            return Err(MintError::UnsupportedAlgorithm);
        }
        let mut jwk =
            Jwk::from_encoding_key(&self.key, self.alg).map_err(|_| MintError::InvalidKey)?;
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(MintError::UnsupportedAlgorithm);
        }
        jwk.common.key_id = self.kid.clone();
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }
}

#[cfg(test)]
impl SigningKey {
    /// Signs arbitrary claims (tests build tokens `mint` would never make).
    pub(crate) fn sign_json(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let token = jsonwebtoken::encode(&header, claims, &self.key).unwrap_or_default();
        super::ecdsa::canonicalize(self.alg, token)
    }
}

/// What a minted token says.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MintClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub roles: Vec<Role>,
    pub township: Option<String>,
    /// 12-digit village codes under the township (a grid worker's villages); the
    /// `villages` claim, left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub villages: Vec<String>,
    pub department: Option<String>,
    pub app: Option<String>,
    /// Lifetime: `exp` = now + `ttl_s`.
    pub ttl_s: u64,
    /// `nbf` = now + this offset (tests use it for not-yet-valid tokens); now when
    /// absent.
    pub not_before_s: Option<i64>,
}

/// Signs a token: the claims plus `iat` = now, `nbf`, `exp` = now + ttl and a
/// random `jti`; the header carries the key's `alg` and `kid`.
pub fn mint(key: &SigningKey, claims: &MintClaims) -> Result<String, MintError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(claims.ttl_s).map_err(|_| MintError::InvalidClaims("ttl_s"))?;
    let exp = now
        .checked_add(ttl)
        .ok_or(MintError::InvalidClaims("ttl_s"))?;
    let nbf = now
        .checked_add(claims.not_before_s.unwrap_or(0))
        .ok_or(MintError::InvalidClaims("not_before_s"))?;
    let mut body = Map::new();
    body.insert("iss".into(), json!(claims.iss));
    body.insert("aud".into(), json!(claims.aud));
    body.insert("sub".into(), json!(claims.sub));
    body.insert("roles".into(), json!(claims.roles));
    if !claims.villages.is_empty() {
        body.insert("villages".into(), json!(claims.villages));
    }
    for (name, value) in [
        ("township", &claims.township),
        ("department", &claims.department),
        ("app", &claims.app),
    ] {
        if let Some(value) = value {
            body.insert(name.into(), json!(value));
        }
    }
    body.insert("iat".into(), json!(now));
    body.insert("nbf".into(), json!(nbf));
    body.insert("exp".into(), json!(exp));
    body.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
    let mut header = Header::new(key.alg);
    header.kid = key.kid.clone();
    header.typ = Some("JWT".to_owned());
    let token = jsonwebtoken::encode(&header, &Value::Object(body), &key.key)
        .map_err(|_| MintError::Signing)?;
    // Only the low-S form of an ECDSA signature is accepted (see `ecdsa`).
    Ok(super::ecdsa::canonicalize(key.alg, token))
}

/// DER of AlgorithmIdentifier { id-ecPublicKey, prime256v1 }.
const EC_P256_ALGORITHM_ID: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

fn es256_from_scalar(
    scalar: &[u8; 32],
    kid: &str,
) -> Result<(SigningKey, String, String), MintError> {
    // Without the public key first: aws-lc-rs computes it on load.
    let bare = EncodingKey::from_ec_der(&ec_pkcs8(scalar, None));
    let jwk = Jwk::from_encoding_key(&bare, Algorithm::ES256).map_err(|_| MintError::InvalidKey)?;
    let AlgorithmParameters::EllipticCurve(point) = &jwk.algorithm else {
        return Err(MintError::InvalidKey);
    };
    let mut public = vec![0x04];
    for coordinate in [&point.x, &point.y] {
        let bytes = URL_SAFE_NO_PAD
            .decode(coordinate)
            .map_err(|_| MintError::InvalidKey)?;
        if bytes.len() != 32 {
            return Err(MintError::InvalidKey);
        }
        public.extend_from_slice(&bytes);
    }
    let private_pem = pem("PRIVATE KEY", &ec_pkcs8(scalar, Some(&public)));
    let spki = der(
        0x30,
        &[
            EC_P256_ALGORITHM_ID.as_slice(),
            &der(0x03, &[[0u8].as_slice(), &public].concat()),
        ]
        .concat(),
    );
    let public_pem = pem("PUBLIC KEY", &spki);
    let key = SigningKey::from_pem(
        private_pem.as_bytes(),
        Algorithm::ES256,
        Some(kid.to_owned()),
    )?;
    Ok((key, private_pem, public_pem))
}

/// PKCS#8 PrivateKeyInfo around an RFC 5915 ECPrivateKey on P-256.
fn ec_pkcs8(scalar: &[u8; 32], public: Option<&[u8]>) -> Vec<u8> {
    let mut ec_private_key = vec![0x02, 0x01, 0x01]; // version 1
    ec_private_key.extend(der(0x04, scalar));
    if let Some(public) = public {
        // [1] publicKey BIT STRING (no unused bits)
        ec_private_key.extend(der(0xa1, &der(0x03, &[[0u8].as_slice(), public].concat())));
    }
    let mut info = vec![0x02, 0x01, 0x00]; // version 0
    info.extend_from_slice(&EC_P256_ALGORITHM_ID);
    info.extend(der(0x04, &der(0x30, &ec_private_key)));
    der(0x30, &info)
}

/// One DER TLV (definite length).
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
