//! Minting: generated ES256 keys are standard PEM that other tools read, keys are
//! checked against their algorithm, and nothing secret leaks through `Debug`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::support::*;
use crate::auth::{MintClaims, MintError, SigningKey, mint};

#[test]
fn generated_es256_keys_sign_tokens_that_jsonwebtoken_verifies() {
    let (key, private_pem, public_pem) = SigningKey::generate_es256("demo-1").unwrap();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(key.algorithm(), Algorithm::ES256);
    assert_eq!(key.kid(), Some("demo-1"));

    let token = mint(&key, &clerk()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.header.kid.as_deref(), Some("demo-1"));
    let claims = data.claims;
    assert_eq!(claims["sub"], "clerk-001");
    assert_eq!(claims["roles"], serde_json::json!(["clerk"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert!(claims["jti"].is_string());
    assert!(claims.get("department").is_none());

    // The private PEM loads again and the JWK carries the kid.
    let again = SigningKey::from_pem(private_pem.as_bytes(), Algorithm::ES256, None).unwrap();
    assert!(mint(&again, &clerk()).is_ok());
    let jwk = key.public_jwk().unwrap();
    assert_eq!(jwk.common.key_id.as_deref(), Some("demo-1"));

    // Two generated keys differ.
    let (_, other_private, _) = SigningKey::generate_es256("demo-2").unwrap();
    assert_ne!(private_pem, other_private);
}

#[test]
fn generated_keys_are_readable_by_openssl_when_present() {
    let Ok(out) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        testkit::skip(
            "generated_keys_are_readable_by_openssl_when_present",
            "no openssl command on this machine",
            true,
        );
        return;
    };
    if !out.status.success() {
        testkit::skip(
            "generated_keys_are_readable_by_openssl_when_present",
            "the openssl command does not run",
            true,
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, private_pem, public_pem) = SigningKey::generate_es256("k").unwrap();
    write(dir.path(), &[("k.pem", &private_pem)]);
    let derived = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(dir.path().join("k.pem"))
        .output()
        .unwrap();
    assert!(derived.status.success());
    assert_eq!(String::from_utf8(derived.stdout).unwrap(), public_pem);
}

#[test]
fn keys_must_match_their_algorithm() {
    let (_, ec_private, ec_public) = SigningKey::generate_es256("k").unwrap();
    assert_eq!(
        SigningKey::from_pem(ec_private.as_bytes(), Algorithm::ES384, None).unwrap_err(),
        MintError::InvalidKey
    );
    assert_eq!(
        SigningKey::from_pem(ec_private.as_bytes(), Algorithm::RS256, None).unwrap_err(),
        MintError::InvalidKey
    );
    assert_eq!(
        SigningKey::from_pem(ec_public.as_bytes(), Algorithm::ES256, None).unwrap_err(),
        MintError::InvalidKey
    );
    assert_eq!(
        SigningKey::from_pem(ec_private.as_bytes(), Algorithm::HS256, None).unwrap_err(),
        MintError::UnsupportedAlgorithm
    );
    assert_eq!(
        SigningKey::from_hs256_secret(b"too short", None).unwrap_err(),
        MintError::WeakSecret
    );
    let hs = SigningKey::from_hs256_secret(&[7u8; 32], None).unwrap();
    assert_eq!(
        hs.public_jwk().unwrap_err(),
        MintError::UnsupportedAlgorithm
    );
}

#[test]
fn debug_output_never_shows_key_material() {
    let (key, private_pem, _) = SigningKey::generate_es256("k").unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("redacted"));
    let body_line = private_pem.lines().nth(1).unwrap();
    assert!(!debug.contains(body_line));
    let hs = SigningKey::from_hs256_secret(b"a-very-long-shared-secret-0123456789", None).unwrap();
    assert!(!format!("{hs:?}").contains("a-very-long"));
}

#[test]
fn mint_claims_round_trip_through_json() {
    let claims = MintClaims {
        not_before_s: Some(-5),
        ..clerk()
    };
    let text = serde_json::to_string(&claims).unwrap();
    let back: MintClaims = serde_json::from_str(&text).unwrap();
    assert_eq!(back.not_before_s, Some(-5));
    assert_eq!(back.roles, claims.roles);
}
