//! JWKS URLs against a real HTTP server: key rotation through the rate-limited
//! refetch, the last good keys surviving an issuer outage, the refetch rate limit,
//! a start with the issuer down, and the background refresh.

use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::auth::{AuthError, SigningKey, mint};

fn key(kid: &str) -> SigningKey {
    SigningKey::generate_es256(kid).unwrap().0
}

#[tokio::test]
async fn rotation_is_picked_up_by_the_refetch_on_an_unknown_kid() {
    let k1 = key("k1");
    let k2 = key("k2");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = build(&jwks_url_yaml(&server.url(), 3600, 3600), dir.path(), &[])
        .await
        .unwrap();
    assert_eq!(server.hits(), 1, "fetched at start");
    let old_token = mint(&k1, &clerk()).unwrap();
    assert!(auth.verify(&old_token).await.is_ok());
    assert_eq!(auth.cached_tokens(), 1);

    // The issuer rotates to k2 only.
    server.publish(jwks(&[&k2]));
    let caller = auth.verify(&mint(&k2, &clerk()).unwrap()).await.unwrap();
    assert_eq!(caller.user, "clerk-001");
    assert_eq!(server.hits(), 2, "one refetch for the new kid");
    assert_eq!(auth.issuer_kids(ISS), ["k2"]);

    // k1 was withdrawn: its cached token was dropped (only the k2 token is cached)
    // and is checked again, and the refetch for it is rate-limited (no request).
    assert_eq!(auth.cached_tokens(), 1);
    assert_eq!(auth.verify(&old_token).await, Err(AuthError::UnknownKey));
    assert_eq!(
        auth.verify(&mint(&k1, &clerk()).unwrap()).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_last_good_keys_keep_working_while_the_issuer_is_down() {
    let k1 = key("k1");
    let mut server = JwksServer::start(jwks(&[&k1])).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = build(&jwks_url_yaml(&server.url(), 3600, 1), dir.path(), &[])
        .await
        .unwrap();
    assert!(auth.verify(&mint(&k1, &clerk()).unwrap()).await.is_ok());

    // 500s.
    server.set_status(500);
    let failures = auth.refresh_jwks().await.unwrap_err();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].1.contains("500"), "{failures:?}");
    let checks = auth.signature_checks();
    let fresh = mint(
        &k1,
        &crate::auth::MintClaims {
            sub: "clerk-002".to_owned(),
            ..clerk()
        },
    )
    .unwrap();
    assert_eq!(auth.verify(&fresh).await.unwrap().user, "clerk-002");
    assert_eq!(auth.signature_checks(), checks + 1, "verified, not cached");

    // Garbage and oversized answers are failures too.
    server.set_status(200);
    server.publish(json!({"not": "a jwks"}));
    assert!(auth.refresh_jwks().await.is_err());
    server.publish(json!({"keys": [], "padding": "x".repeat(1_100_000)}));
    let failures = auth.refresh_jwks().await.unwrap_err();
    assert!(failures[0].1.contains("larger"), "{failures:?}");
    server.publish(json!({"keys": []}));
    assert!(auth.refresh_jwks().await.is_err(), "no usable keys");
    assert_eq!(auth.issuer_kids(ISS), ["k1"]);

    // The server is gone altogether.
    server.stop().await;
    assert!(auth.refresh_jwks().await.is_err());
    let fresh = mint(
        &k1,
        &crate::auth::MintClaims {
            sub: "clerk-003".to_owned(),
            ..clerk()
        },
    )
    .unwrap();
    assert_eq!(auth.verify(&fresh).await.unwrap().user, "clerk-003");
    // An unknown kid while the issuer is down is just unknown.
    assert_eq!(
        auth.verify(&mint(&key("k9"), &clerk()).unwrap()).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn unknown_kids_trigger_at_most_one_refetch_per_window() {
    let k1 = key("k1");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = build(&jwks_url_yaml(&server.url(), 3600, 3600), dir.path(), &[])
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    let tokens: Vec<String> = (0..25)
        .map(|i| mint(&key(&format!("ghost-{i}")), &clerk()).unwrap())
        .collect();
    let verdicts = futures::future::join_all(tokens.iter().map(|t| auth.verify(t))).await;
    assert!(verdicts.iter().all(|v| *v == Err(AuthError::UnknownKey)));
    assert_eq!(server.hits(), 2, "25 unknown kids, one refetch");

    // Later ones in the same window cause none.
    for t in &tokens[..5] {
        assert_eq!(auth.verify(t).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(server.hits(), 2);
    // Known keys still work, of course.
    assert!(auth.verify(&mint(&k1, &clerk()).unwrap()).await.is_ok());
}

#[tokio::test]
async fn an_issuer_down_at_start_is_not_fatal() {
    let k1 = key("k1");
    let server = JwksServer::start(jwks(&[&k1])).await;
    server.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    let auth = build(&jwks_url_yaml(&server.url(), 3600, 3600), dir.path(), &[])
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    assert!(auth.issuer_kids(ISS).is_empty());

    // Back up: the first token triggers the refetch and is accepted.
    server.set_status(200);
    assert!(auth.verify(&mint(&k1, &clerk()).unwrap()).await.is_ok());
    assert_eq!(server.hits(), 2);

    // A URL nobody listens on.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}/jwks.json");
    let auth = build(&jwks_url_yaml(&url, 3600, 3600), dir.path(), &[])
        .await
        .unwrap();
    assert_eq!(
        auth.verify(&mint(&k1, &clerk()).unwrap()).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn the_background_refresh_picks_up_new_keys() {
    let k1 = key("k1");
    let k2 = key("k2");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = build(&jwks_url_yaml(&server.url(), 1, 3600), dir.path(), &[])
        .await
        .unwrap();
    let mut hits = server.watch_hits();
    server.publish(jwks(&[&k1, &k2]));
    // Wait for refreshes (no token asks for k2, so no refetch is triggered) until
    // one has stored k2.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !auth.issuer_kids(ISS).contains(&"k2".to_owned()) {
            hits.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(server.hits() >= 2);
    assert!(auth.verify(&mint(&k2, &clerk()).unwrap()).await.is_ok());
}

#[test]
fn jwks_documents_yield_only_usable_signature_keys() {
    use jsonwebtoken::Algorithm;

    use crate::auth::keys::keys_from_jwks;

    let ec = key("ec").public_jwk().unwrap();
    let ec = serde_json::to_value(&ec).unwrap();
    let mut enc = ec.clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut mislabelled = ec.clone();
    mislabelled["alg"] = json!("RS256");
    mislabelled["kid"] = json!("mislabelled");
    let mut hs = ec.clone();
    hs["alg"] = json!("HS256");
    hs["kid"] = json!("hs");
    let doc = json!({ "keys": [
        ec,
        enc,
        mislabelled,
        hs,
        { "kty": "oct", "kid": "secret", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA" },
        { "kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA" },
        { "kty": "weird", "kid": "weird" },
        "not an object",
    ]});
    let (set, skipped) = keys_from_jwks(doc.to_string().as_bytes(), &[Algorithm::ES256]).unwrap();
    assert_eq!(set.kids(), ["ec"]);
    assert_eq!(skipped, 7);
    // The same key is unusable for an issuer that only allows RS256.
    let (set, _) = keys_from_jwks(doc.to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
    assert!(set.is_empty());
    assert!(keys_from_jwks(b"[]", &[Algorithm::ES256]).is_err());
    assert!(keys_from_jwks(b"{\"keys\": 1}", &[Algorithm::ES256]).is_err());
}
