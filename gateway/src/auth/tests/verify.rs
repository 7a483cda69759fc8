//! Verification: valid tokens of every supported algorithm are mapped to the right
//! caller, and every attack is refused with the right reason.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::support::*;
use crate::auth::{AuthError, Authenticator, MintClaims, Role, SigningKey, mint};

/// One issuer with an ES256, an RS256 and an EdDSA key.
struct Idp {
    es: Pair,
    rs: Pair,
    ed: Pair,
    auth: Authenticator,
    _dir: tempfile::TempDir,
}

async fn idp() -> Idp {
    let dir = tempfile::tempdir().unwrap();
    let (es, rs, ed) = (es256("es-1"), rsa("rs-1"), ed25519("ed-1"));
    write(
        dir.path(),
        &[
            ("es.pub.pem", &es.public_pem),
            ("rs.pub.pem", &rs.public_pem),
            ("ed.pub.pem", &ed.public_pem),
        ],
    );
    let yaml = format!(
        r#"
audience: {AUD}
issuers:
  - issuer: {ISS}
    algorithms: [ES256, RS256, EdDSA]
    keys:
      pem:
        - {{ kid: es-1, path: es.pub.pem }}
        - {{ kid: rs-1, path: rs.pub.pem }}
        - {{ kid: ed-1, path: ed.pub.pem }}
"#
    );
    let auth = build(&yaml, dir.path(), &[]).await.unwrap();
    Idp {
        es,
        rs,
        ed,
        auth,
        _dir: dir,
    }
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

fn uri(s: &str) -> http::Uri {
    s.parse().unwrap()
}

#[tokio::test]
async fn valid_es256_rs256_and_eddsa_tokens_are_mapped_to_callers() {
    let idp = idp().await;

    let token = mint(&idp.es.signer, &clerk()).unwrap();
    let caller = idp
        .auth
        .authenticate(&bearer(&token), &uri("/v1/query"))
        .await
        .unwrap();
    assert_eq!(caller.user, "clerk-001");
    assert_eq!(caller.issuer, ISS);
    assert_eq!(
        caller.roles.iter().copied().collect::<Vec<_>>(),
        [Role::Clerk]
    );
    assert_eq!(caller.township.as_deref(), Some(TOWNSHIP));
    assert_eq!(caller.county.as_deref(), Some("330106"));
    assert_eq!(caller.department, None);
    assert!(caller.expires_at > chrono::Utc::now().timestamp());

    let admin = MintClaims {
        sub: "admin-7".to_owned(),
        roles: vec![Role::DeptAdmin, Role::PrivacyOfficer],
        township: None,
        department: Some("hukou".to_owned()),
        app: Some("console".to_owned()),
        ..clerk()
    };
    let caller = idp
        .auth
        .verify(&mint(&idp.rs.signer, &admin).unwrap())
        .await
        .unwrap();
    assert_eq!(caller.user, "admin-7");
    assert!(caller.has_role(Role::DeptAdmin) && caller.has_role(Role::PrivacyOfficer));
    assert_eq!(caller.department.as_deref(), Some("hukou"));
    assert_eq!(caller.app.as_deref(), Some("console"));
    assert_eq!(
        (caller.township.clone(), caller.county.clone()),
        (None, None)
    );

    let operator = MintClaims {
        sub: "ops".to_owned(),
        roles: vec![Role::Operator],
        township: None,
        ..clerk()
    };
    let caller = idp
        .auth
        .verify(&mint(&idp.ed.signer, &operator).unwrap())
        .await
        .unwrap();
    assert_eq!(
        caller.roles.iter().copied().collect::<Vec<_>>(),
        [Role::Operator]
    );

    // A `county` claim without a township gives the county.
    let lead = idp.es.signer.sign_json(&json!({
        "iss": ISS, "aud": [AUD, "other"], "sub": "u", "roles": ["privacy_officer"],
        "county": "330106", "exp": chrono::Utc::now().timestamp() + 60,
    }));
    let caller = idp.auth.verify(&lead).await.unwrap();
    assert_eq!(caller.county.as_deref(), Some("330106"));
}

#[tokio::test]
async fn alg_none_is_refused_before_anything_else() {
    let idp = idp().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = hand_built(&json!({"alg": alg, "typ": "JWT"}), &clerk_json(), "");
        assert_eq!(
            idp.auth.verify(&token).await,
            Err(AuthError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
    // Even with an unknown issuer, `none` is refused as an algorithm.
    let mut claims = clerk_json();
    claims["iss"] = json!("https://evil.example");
    let token = hand_built(&json!({"alg": "none"}), &claims, "");
    assert_eq!(
        idp.auth.verify(&token).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
    assert_eq!(idp.auth.signature_checks(), 0);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let idp = idp().await;
    for kid in [Some("rs-1"), None] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let key = EncodingKey::from_secret(idp.rs.public_pem.as_bytes());
        let token = jsonwebtoken::encode(&header, &clerk_json(), &key).unwrap();
        // Refused on its header, before any key is touched.
        assert_eq!(
            idp.auth.verify(&token).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
    }
    // The same with the EC public key PEM as the secret.
    let key = EncodingKey::from_secret(idp.es.public_pem.as_bytes());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &clerk_json(), &key).unwrap();
    assert_eq!(
        idp.auth.verify(&token).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
    assert_eq!(idp.auth.signature_checks(), 0);
}

#[tokio::test]
async fn a_kid_of_another_key_family_finds_no_key() {
    let idp = idp().await;
    // Claims alg RS256 but names the EC key's kid: the EC key never verifies RS256.
    let token = hand_built(
        &json!({"alg": "RS256", "kid": "es-1"}),
        &clerk_json(),
        &URL_SAFE_NO_PAD.encode([7u8; 256]),
    );
    // The only RSA key is named rs-1; es-1 is not an RSA key.
    assert_eq!(idp.auth.verify(&token).await, Err(AuthError::UnknownKey));
    let token = hand_built(
        &json!({"alg": "ES256", "kid": "rs-1"}),
        &clerk_json(),
        &URL_SAFE_NO_PAD.encode([7u8; 64]),
    );
    // rs-1 is not an EC key; the only EC key is named es-1.
    assert_eq!(idp.auth.verify(&token).await, Err(AuthError::UnknownKey));
    assert_eq!(idp.auth.signature_checks(), 0);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_with_leeway() {
    let idp = idp().await;
    let expired = mint(
        &idp.es.signer,
        &MintClaims {
            ttl_s: 0,
            ..clerk()
        },
    )
    .unwrap();
    // Within the 30 s leeway: accepted (and not cached: it expires now).
    assert!(idp.auth.verify(&expired).await.is_ok());
    idp.auth.clock().advance(31);
    assert_eq!(idp.auth.verify(&expired).await, Err(AuthError::Expired));

    let idp = self::idp().await;
    let early = mint(
        &idp.es.signer,
        &MintClaims {
            not_before_s: Some(120),
            ..clerk()
        },
    )
    .unwrap();
    let skewed = mint(
        &idp.es.signer,
        &MintClaims {
            not_before_s: Some(10),
            ..clerk()
        },
    )
    .unwrap();
    assert_eq!(idp.auth.verify(&early).await, Err(AuthError::NotYetValid));
    assert!(idp.auth.verify(&skewed).await.is_ok(), "within leeway");

    let now = chrono::Utc::now().timestamp();
    let mut claims = clerk_json();
    claims["iat"] = json!(now + 3600);
    claims["exp"] = json!(now + 7200);
    assert_eq!(
        idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
        Err(AuthError::NotYetValid),
        "iat in the future"
    );

    idp.auth.clock().advance(100);
    assert!(
        idp.auth.verify(&early).await.is_ok(),
        "valid once nbf is reached"
    );
}

#[tokio::test]
async fn wrong_audience_issuer_and_missing_registered_claims_are_refused() {
    let idp = idp().await;
    let wrong_aud = MintClaims {
        aud: "another-gateway".to_owned(),
        ..clerk()
    };
    assert_eq!(
        idp.auth
            .verify(&mint(&idp.es.signer, &wrong_aud).unwrap())
            .await,
        Err(AuthError::WrongAudience)
    );
    let wrong_iss = MintClaims {
        iss: "https://idp.other.example".to_owned(),
        ..clerk()
    };
    assert_eq!(
        idp.auth
            .verify(&mint(&idp.es.signer, &wrong_iss).unwrap())
            .await,
        Err(AuthError::UnknownIssuer)
    );
    for claim in ["iss", "aud", "sub", "exp"] {
        let mut claims = clerk_json();
        claims.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
            Err(AuthError::MissingClaim(claim)),
            "{claim}"
        );
    }
    let mut claims = clerk_json();
    claims["exp"] = json!("tomorrow");
    assert_eq!(
        idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
        Err(AuthError::InvalidClaim)
    );
}

#[tokio::test]
async fn unknown_kid_and_ambiguous_missing_kid_are_refused() {
    let idp = idp().await;
    let stranger = es256("es-2");
    assert_eq!(
        idp.auth
            .verify(&mint(&stranger.signer, &clerk()).unwrap())
            .await,
        Err(AuthError::UnknownKey)
    );

    // Two EC keys: a token without a kid is ambiguous.
    let dir = tempfile::tempdir().unwrap();
    let (a, _a_private, a_public) = SigningKey::generate_es256("a").unwrap();
    let (b, b_private, b_public) = SigningKey::generate_es256("b").unwrap();
    write(dir.path(), &[("a.pem", &a_public), ("b.pem", &b_public)]);
    let yaml = format!(
        "audience: {AUD}\nissuers:\n  - issuer: {ISS}\n    algorithms: [ES256]\n    keys:\n      pem: [{{kid: a, path: a.pem}}, {{kid: b, path: b.pem}}]\n"
    );
    let auth = build(&yaml, dir.path(), &[]).await.unwrap();
    assert!(auth.verify(&mint(&a, &clerk()).unwrap()).await.is_ok());
    assert!(auth.verify(&mint(&b, &clerk()).unwrap()).await.is_ok());
    let b_without_kid = SigningKey::from_pem(b_private.as_bytes(), Algorithm::ES256, None).unwrap();
    assert_eq!(
        auth.verify(&mint(&b_without_kid, &clerk()).unwrap()).await,
        Err(AuthError::UnknownKey)
    );

    // One key: a token without a kid is accepted.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("b.pem", &b_public)]);
    let yaml = format!(
        "audience: {AUD}\nissuers:\n  - issuer: {ISS}\n    algorithms: [ES256]\n    keys:\n      pem: [{{kid: b, path: b.pem}}]\n"
    );
    let auth = build(&yaml, dir.path(), &[]).await.unwrap();
    assert!(
        auth.verify(&mint(&b_without_kid, &clerk()).unwrap())
            .await
            .is_ok()
    );
    // …but a token naming another kid is not.
    let b_as_c =
        SigningKey::from_pem(b_private.as_bytes(), Algorithm::ES256, Some("c".into())).unwrap();
    assert_eq!(
        auth.verify(&mint(&b_as_c, &clerk()).unwrap()).await,
        Err(AuthError::UnknownKey)
    );
}

/// Replaces the payload of a token, keeping its header and signature.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn tampered_payloads_fail_the_signature() {
    let idp = idp().await;
    for signer in [&idp.es.signer, &idp.rs.signer, &idp.ed.signer] {
        let token = mint(signer, &clerk()).unwrap();
        let mut claims = payload(&token);
        claims["roles"] = json!(["clerk", "operator"]);
        assert_eq!(
            idp.auth.verify(&with_payload(&token, &claims)).await,
            Err(AuthError::BadSignature)
        );
        let mut claims = payload(&token);
        claims["township"] = json!("330106002");
        assert_eq!(
            idp.auth.verify(&with_payload(&token, &claims)).await,
            Err(AuthError::BadSignature)
        );
        // A flipped signature bit.
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            idp.auth.verify(&flipped).await,
            Err(AuthError::BadSignature)
        );
    }
    // Garbage and truncated tokens are malformed.
    for garbage in ["", "abc", "a.b", "a.b.c.d", "e30.e30.", "!!.e30.x"] {
        assert_eq!(
            idp.auth.verify(garbage).await,
            Err(AuthError::Malformed),
            "{garbage}"
        );
    }
    let huge = "a".repeat(10_000);
    assert_eq!(idp.auth.verify(&huge).await, Err(AuthError::Malformed));
}

#[tokio::test]
async fn tokens_in_the_query_string_are_refused_even_with_a_header() {
    let idp = idp().await;
    let token = mint(&idp.es.signer, &clerk()).unwrap();
    let headers = bearer(&token);
    for query in [
        format!("/v1/query?access_token={token}"),
        "/v1/query?access_token=".to_owned(),
        "/v1/query?a=1&Token=x".to_owned(),
        "/v1/query?jwt=x".to_owned(),
        "/v1/query?id_token=x".to_owned(),
        "/v1/query?acc%65ss_token=x".to_owned(),
        format!("/v1/query?q={token}"),
        format!("/v1/query?{token}"),
    ] {
        assert_eq!(
            idp.auth.authenticate(&headers, &uri(&query)).await,
            Err(AuthError::TokenInQuery),
            "{query}"
        );
        assert_eq!(
            idp.auth
                .authenticate(&http::HeaderMap::new(), &uri(&query))
                .await,
            Err(AuthError::TokenInQuery),
            "{query} without header"
        );
    }
    // Ordinary query strings are fine.
    assert!(
        idp.auth
            .authenticate(&headers, &uri("/v1/query?page=2&sort=asc"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn missing_and_garbled_authorization_headers_are_refused() {
    let idp = idp().await;
    let token = mint(&idp.es.signer, &clerk()).unwrap();
    let path = uri("/v1/query");
    assert_eq!(
        idp.auth.authenticate(&http::HeaderMap::new(), &path).await,
        Err(AuthError::Missing)
    );
    for value in [
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer{token}"),
        format!("Token {token}"),
        "Bearer not a token".to_owned(),
        "Bearer abc$def.ghi.jkl".to_owned(),
        "Bearer a.b".to_owned(),
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            idp.auth.authenticate(&headers, &path).await,
            Err(AuthError::Malformed),
            "{value}"
        );
    }
    // Two Authorization headers.
    let mut headers = bearer(&token);
    headers.append(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    assert_eq!(
        idp.auth.authenticate(&headers, &path).await,
        Err(AuthError::Malformed)
    );
    // Non-ASCII header bytes.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    assert_eq!(
        idp.auth.authenticate(&headers, &path).await,
        Err(AuthError::Malformed)
    );
    // The scheme is case-insensitive.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("bearer {token}").parse().unwrap(),
    );
    assert!(idp.auth.authenticate(&headers, &path).await.is_ok());
}

#[tokio::test]
async fn role_requirements_and_custom_claims_are_enforced() {
    let idp = idp().await;
    let cases: Vec<(MintClaims, AuthError)> = vec![
        (
            MintClaims {
                township: None,
                ..clerk()
            },
            AuthError::MissingClaim("township"),
        ),
        (
            MintClaims {
                roles: vec![Role::GridWorker],
                township: None,
                ..clerk()
            },
            AuthError::MissingClaim("township"),
        ),
        (
            MintClaims {
                roles: vec![Role::TownshipLead],
                township: None,
                ..clerk()
            },
            AuthError::MissingClaim("township"),
        ),
        (
            MintClaims {
                roles: vec![Role::DeptAdmin],
                township: None,
                ..clerk()
            },
            AuthError::MissingClaim("department"),
        ),
        (
            MintClaims {
                roles: vec![],
                ..clerk()
            },
            AuthError::MissingClaim("roles"),
        ),
        (
            MintClaims {
                township: Some("33010600".to_owned()),
                ..clerk()
            },
            AuthError::InvalidClaim,
        ),
        (
            MintClaims {
                township: Some("33010600x".to_owned()),
                ..clerk()
            },
            AuthError::InvalidClaim,
        ),
        (
            MintClaims {
                roles: vec![Role::DeptAdmin],
                department: Some("hukou bureau; drop".to_owned()),
                ..clerk()
            },
            AuthError::InvalidClaim,
        ),
    ];
    for (claims, expected) in cases {
        let token = mint(&idp.es.signer, &claims).unwrap();
        assert_eq!(idp.auth.verify(&token).await, Err(expected), "{claims:?}");
    }

    let raw_cases: Vec<(Value, AuthError)> = vec![
        (json!(["clerk", "superuser"]), AuthError::InvalidClaim),
        (json!(["Clerk"]), AuthError::InvalidClaim),
        (json!("clerk"), AuthError::InvalidClaim),
        (json!([1]), AuthError::InvalidClaim),
        (Value::Null, AuthError::MissingClaim("roles")),
    ];
    for (roles, expected) in raw_cases {
        let mut claims = clerk_json();
        claims["roles"] = roles.clone();
        assert_eq!(
            idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
            Err(expected),
            "{roles}"
        );
    }
    // A county claim that contradicts the township.
    let mut claims = clerk_json();
    claims["county"] = json!("110101");
    assert_eq!(
        idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
        Err(AuthError::InvalidClaim)
    );
    // A township given as a number.
    let mut claims = clerk_json();
    claims["township"] = json!(330_106_001);
    assert_eq!(
        idp.auth.verify(&idp.es.signer.sign_json(&claims)).await,
        Err(AuthError::InvalidClaim)
    );
}

const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-county";

fn hs256_yaml(env: &str, allow: bool) -> String {
    format!(
        r#"
audience: {AUD}
issuers:
  - issuer: {ISS}
    algorithms: [HS256]
    allow_hs256: {allow}
    keys:
      hs256_secret_env: {env}
"#
    )
}

#[tokio::test]
async fn hs256_is_refused_unless_allowed() {
    // An issuer with public keys never accepts HS256, whatever the secret.
    let idp = idp().await;
    let signer = SigningKey::from_hs256_secret(HS_SECRET, None).unwrap();
    assert_eq!(
        idp.auth.verify(&mint(&signer, &clerk()).unwrap()).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
    // An HS256 secret without allow_hs256 is a configuration error.
    let dir = tempfile::tempdir().unwrap();
    let env = "GW_AUTH_TEST_HS256_NOT_ALLOWED";
    let problems = build(&hs256_yaml(env, false), dir.path(), &[(env, HS_SECRET)])
        .await
        .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|(p, _)| p == "auth.issuers[0].algorithms"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn hs256_is_accepted_when_allowed_with_a_long_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env = "GW_AUTH_TEST_HS256_ALLOWED";
    let auth = build(&hs256_yaml(env, true), dir.path(), &[(env, HS_SECRET)])
        .await
        .unwrap();
    let signer = SigningKey::from_hs256_secret(HS_SECRET, None).unwrap();
    let caller = auth
        .verify(&mint(&signer, &clerk()).unwrap())
        .await
        .unwrap();
    assert_eq!(caller.user, "clerk-001");
    // Another secret: bad signature.
    let other = SigningKey::from_hs256_secret(&[b'x'; 32], None).unwrap();
    assert_eq!(
        auth.verify(&mint(&other, &clerk()).unwrap()).await,
        Err(AuthError::BadSignature)
    );
    // The secret never shows in Debug output.
    let debug = format!("{auth:?} {signer:?}");
    assert!(!debug.contains("0123456789abcdef"), "{debug}");

    // Short and missing secrets are configuration problems that name the variable
    // and never its value.
    let short_env = "GW_AUTH_TEST_HS256_SHORT";
    let problems = build(
        &hs256_yaml(short_env, true),
        dir.path(),
        &[(short_env, b"short-secret-xyz")],
    )
    .await
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].1.contains(short_env) && problems[0].1.contains("at least 32"));
    assert!(!problems[0].1.contains("short-secret-xyz"));
    let missing_env = "GW_AUTH_TEST_HS256_MISSING";
    let problems = build(&hs256_yaml(missing_env, true), dir.path(), &[])
        .await
        .unwrap_err();
    assert!(problems[0].1.contains("not set"), "{problems:?}");
}

#[tokio::test]
async fn a_cached_token_skips_the_signature_but_not_the_expiry() {
    let idp = idp().await;
    let token = mint(&idp.es.signer, &clerk()).unwrap();
    let first = idp.auth.verify(&token).await.unwrap();
    assert_eq!(idp.auth.signature_checks(), 1);
    let second = idp.auth.verify(&token).await.unwrap();
    assert_eq!(
        idp.auth.signature_checks(),
        1,
        "second verification is a hit"
    );
    assert_eq!(first, second);
    assert_eq!(idp.auth.cached_tokens(), 1);

    // Refused tokens are not cached.
    let wrong = mint(
        &idp.es.signer,
        &MintClaims {
            aud: "x".to_owned(),
            ..clerk()
        },
    )
    .unwrap();
    assert!(idp.auth.verify(&wrong).await.is_err());
    assert!(idp.auth.verify(&wrong).await.is_err());
    assert_eq!(idp.auth.signature_checks(), 3);
    assert_eq!(idp.auth.cached_tokens(), 1);

    // Past exp + leeway, the cached entry is refused without a signature check.
    idp.auth.clock().advance(300 + 31);
    assert_eq!(idp.auth.verify(&token).await, Err(AuthError::Expired));
    assert_eq!(idp.auth.signature_checks(), 3);
    assert_eq!(idp.auth.cached_tokens(), 0);
}

#[tokio::test]
async fn errors_and_debug_output_carry_no_secrets() {
    let idp = idp().await;
    let token = mint(&idp.es.signer, &clerk()).unwrap();
    idp.auth.verify(&token).await.unwrap();
    let debug = format!("{:?} {:?}", idp.auth, idp.es.signer);
    assert!(!debug.contains(&token));
    assert!(!debug.contains(token.split('.').nth(2).unwrap()));
    assert!(!debug.contains("PRIVATE"));
    for e in [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::TokenInQuery,
        AuthError::UnknownIssuer,
        AuthError::AlgorithmNotAllowed,
        AuthError::UnknownKey,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongAudience,
        AuthError::MissingClaim("township"),
        AuthError::InvalidClaim,
    ] {
        let reason = e.reason();
        assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert!(!e.to_string().is_empty());
    }
}

#[tokio::test]
async fn crit_headers_are_refused() {
    let idp = idp().await;
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".to_owned()]);
    let key = EncodingKey::from_secret(HS_SECRET);
    let token = jsonwebtoken::encode(&header, &clerk_json(), &key).unwrap();
    assert_eq!(idp.auth.verify(&token).await, Err(AuthError::Malformed));
}

#[tokio::test]
async fn clones_share_the_cache_and_authenticators_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Authenticator>();
    let idp = idp().await;
    let clone = idp.auth.clone();
    let token = mint(&idp.es.signer, &clerk()).unwrap();
    idp.auth.verify(&token).await.unwrap();
    assert_eq!(clone.cached_tokens(), 1);
}

#[tokio::test]
async fn only_the_low_s_form_of_an_ecdsa_signature_is_accepted() {
    let idp = idp().await;
    // Minted tokens are in the low-S form; their high-S twin verifies mathematically
    // but is refused. Many tokens, so both shapes of raw signature are met.
    for _ in 0..32 {
        let token = mint(&idp.es.signer, &clerk()).unwrap();
        assert!(idp.auth.verify(&token).await.is_ok());
        let twin = crate::auth::ecdsa::twin(&token);
        assert_ne!(twin, token);
        assert_eq!(idp.auth.verify(&twin).await, Err(AuthError::BadSignature));
    }
}
