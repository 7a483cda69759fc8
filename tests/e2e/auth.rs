//! Authentication at the HTTP boundary: every way a request can fail to prove who
//! it is ends in 401 problem+json with a reason and a Bearer challenge, before any
//! department is called, and never echoes the token.

use gateway::auth::{MintClaims, Role, SigningKey, mint};
use gateway::demo;
use sim::{Department, SampleKind};

use crate::helpers::{Reply, TOWNSHIP, TestGateway, lookup, sample};

fn claims(ttl_s: u64) -> MintClaims {
    MintClaims {
        iss: demo::ISSUER.into(),
        aud: demo::AUDIENCE.into(),
        sub: "clerk-1".into(),
        roles: vec![Role::Clerk],
        township: Some(TOWNSHIP.into()),
        villages: Vec::new(),
        department: None,
        app: None,
        ttl_s,
        not_before_s: None,
    }
}

async fn post(gw: &TestGateway, url: &str, authorization: Option<&str>) -> (Reply, Option<String>) {
    let person = sample(SampleKind::MarriedParent);
    let mut request =
        gw.client
            .post(url)
            .json(&lookup("hukou", "person_by_id", person.id.as_str()));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("an answer");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (Reply::read(response).await, challenge)
}

#[tokio::test]
async fn bad_credentials_are_401_with_a_reason_and_no_department_is_called() {
    let gw = TestGateway::start().await;
    let calls = gw.department(Department::Hukou).requests();
    let url = gw.url("/v1/query");
    let good = gw.token(Role::Clerk, Some(TOWNSHIP));

    // A key the gateway does not trust, claiming the trusted issuer.
    let (forger, _, _) = SigningKey::generate_es256(demo::ISSUER).expect("key");
    let forged = mint(&forger, &claims(600)).expect("token");
    // A tampered payload: the signature no longer matches.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = parts.join(".");
    // The right key but the wrong audience.
    let mut wrong_aud = claims(600);
    wrong_aud.aud = "another-gateway".into();
    let wrong_aud = mint(&gw.issuer, &wrong_aud).expect("token");
    // A clerk without a township.
    let mut no_township = claims(600);
    no_township.township = None;
    let no_township = mint(&gw.issuer, &no_township).expect("token");

    let cases = [
        (None, "missing"),
        (Some("Basic dXNlcjpwYXNz".to_owned()), "malformed"),
        (Some("Bearer not-a-jwt".to_owned()), "malformed"),
        (Some(format!("Bearer {forged}")), "bad_signature"),
        (Some(format!("Bearer {tampered}")), "malformed"),
        (Some(format!("Bearer {wrong_aud}")), "wrong_audience"),
        (
            Some(format!("Bearer {no_township}")),
            "missing_claim: township",
        ),
    ];
    for (authorization, reason) in cases {
        let (reply, challenge) = post(&gw, &url, authorization.as_deref()).await;
        reply.assert_problem(401, "unauthenticated");
        if reason == "malformed" {
            assert!(
                matches!(
                    reply.json["reason"].as_str(),
                    Some("malformed" | "bad_signature")
                ),
                "{}",
                reply.text
            );
        } else {
            assert_eq!(reply.json["reason"], reason, "{}", reply.text);
        }
        let challenge = challenge.expect("a WWW-Authenticate challenge");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        if reason == "missing_claim: township" {
            assert_eq!(reply.json["claim"], "township", "{}", reply.text);
            assert!(challenge.contains("missing_claim: township"), "{challenge}");
        }
        if let Some(auth) = &authorization {
            let token = auth
                .trim_start_matches("Bearer ")
                .trim_start_matches("Basic ");
            assert!(!reply.text.contains(token), "the token is echoed");
        }
    }
    assert_eq!(gw.department(Department::Hukou).requests(), calls);

    let (reply, _) = post(&gw, &url, Some(&format!("Bearer {good}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused_even_with_a_good_header() {
    let gw = TestGateway::start().await;
    let good = gw.token(Role::Clerk, Some(TOWNSHIP));
    for query in [format!("access_token={good}"), format!("x={good}")] {
        let url = format!("{}?{query}", gw.url("/v1/query"));
        let (reply, _) = post(&gw, &url, Some(&format!("Bearer {good}"))).await;
        reply.assert_problem(401, "unauthenticated");
        assert_eq!(reply.json["reason"], "token_in_query");
        assert!(!reply.text.contains(&good));
    }
}

/// (Expired tokens are covered by the auth module's tests, which move its clock.)
#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let gw = TestGateway::start().await;
    let mut future = claims(600);
    future.not_before_s = Some(3600);
    let future = mint(&gw.issuer, &future).expect("token");
    let (reply, _) = post(&gw, &gw.url("/v1/query"), Some(&format!("Bearer {future}"))).await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(reply.json["reason"], "not_yet_valid");
}
