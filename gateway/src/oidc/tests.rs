//! Tests of the parts of the sign-in that need no provider: PKCE, the random
//! values, the callback, the discovery checks, the configuration, and the ID-token
//! rules of [`Authenticator::verify_id_token`] with tokens signed here. The whole
//! flow against a real provider is `tests/e2e/oidc.rs`.

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::config::check_redirect_url;
use super::discovery::{ClientAuth, check_for_test};
use super::login::{pkce_challenge, random_token};
use super::*;
use crate::auth::{AuthConfig, AuthError, Authenticator, Role};

const ISS: &str = "https://idp.county.example";
const AUD: &str = "county-gateway";
const CLIENT: &str = "county-console";

#[test]
fn the_client_can_be_shared_by_handlers() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<OidcClient>();
    shared::<PendingLogin>();
    shared::<Callback>();
    shared::<OidcError>();
}

/// A handler's future must be `Send` (axum spawns it): so must `new` and `finish`.
#[allow(dead_code, reason = "only compiled, never run")]
fn the_clients_futures_are_send(client: &OidcClient, config: &OidcConfig, auth: Authenticator) {
    fn send<T: Send>(_: T) {}
    let (_, pending) = client.begin();
    let callback = Callback::new("code", "state", None);
    send(client.finish(pending, &callback));
    send(OidcClient::new(config, auth, std::path::Path::new(".")));
}

#[test]
fn the_pkce_challenge_is_rfc_7636_appendix_b() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn state_nonce_and_verifier_are_fresh_256_bit_values() {
    let mut seen = BTreeSet::new();
    for _ in 0..64 {
        let pending = PendingLogin::new(0);
        for value in [&pending.state, &pending.nonce, &pending.code_verifier] {
            // 32 bytes base64url: 43 characters, a valid RFC 7636 verifier.
            assert_eq!(value.len(), 43, "{value}");
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(seen.insert(value.clone()), "a value came twice");
        }
    }
    assert_eq!(random_token().len(), 43);
}

#[test]
fn a_pending_login_prints_none_of_its_secrets_and_expires() {
    let pending = PendingLogin::new(1_000);
    let shown = format!("{pending:?}");
    for secret in [&pending.state, &pending.nonce, &pending.code_verifier] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    assert!(!pending.is_expired(1_000 + PENDING_LOGIN_TTL_S));
    assert!(pending.is_expired(1_001 + PENDING_LOGIN_TTL_S));
    assert!(pending.is_expired(999), "from the future");
}

#[test]
fn the_callback_is_read_from_its_query_and_keeps_its_code_to_itself() {
    let callback = Callback::from_query("code=abc.123&state=xyz&iss=https%3A%2F%2Fidp").unwrap();
    assert_eq!(callback.state(), "xyz");
    assert_eq!(callback.code, "abc.123");
    assert_eq!(callback.iss.as_deref(), Some("https://idp"));
    assert!(!format!("{callback:?}").contains("abc.123"));

    for bad in [
        "state=xyz",
        "code=abc",
        "code=&state=x",
        "code=a&code=b&state=x",
        "code=a%0a&state=x",
    ] {
        assert_eq!(
            Callback::from_query(bad),
            Err(OidcError::BadCallback),
            "{bad}"
        );
    }
    assert_eq!(
        Callback::from_query("error=access_denied&error_description=no&state=x"),
        Err(OidcError::Provider("access_denied"))
    );
    assert_eq!(
        Callback::from_query("error=%3Cscript%3E&state=x"),
        Err(OidcError::Provider("other")),
        "a provider's own words are not repeated"
    );
}

fn discovery_doc() -> Value {
    json!({
        "issuer": ISS,
        "authorization_endpoint": format!("{ISS}/auth"),
        "token_endpoint": format!("{ISS}/token"),
        "jwks_uri": format!("{ISS}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
    })
}

#[test]
fn a_discovery_document_must_be_the_issuers_own_and_fit_for_the_code_flow() {
    let good = check_for_test(discovery_doc(), ISS).unwrap();
    assert_eq!(good.client_auth, ClientAuth::Basic);
    assert!(good.iss_in_response);
    assert_eq!(good.token_endpoint.as_str(), format!("{ISS}/token"));

    let with = |key: &str, value: Value| {
        let mut doc = discovery_doc();
        doc[key] = value;
        check_for_test(doc, ISS)
    };
    assert_eq!(
        with("issuer", json!("https://evil.example")).unwrap_err(),
        OidcError::IssuerMismatch
    );
    assert_eq!(
        check_for_test(discovery_doc(), &format!("{ISS}/")).unwrap_err(),
        OidcError::IssuerMismatch,
        "exactly the configured issuer"
    );
    assert_eq!(
        with("code_challenge_methods_supported", json!(["plain"])).unwrap_err(),
        OidcError::NoPkce
    );
    assert_eq!(
        with(
            "token_endpoint_auth_methods_supported",
            json!(["private_key_jwt"])
        )
        .unwrap_err(),
        OidcError::NoClientAuth
    );
    assert_eq!(
        with(
            "token_endpoint_auth_methods_supported",
            json!(["client_secret_post"])
        )
        .unwrap()
        .client_auth,
        ClientAuth::Post
    );
    let absent = {
        let mut doc = discovery_doc();
        doc.as_object_mut()
            .unwrap()
            .remove("token_endpoint_auth_methods_supported");
        check_for_test(doc, ISS).unwrap()
    };
    assert_eq!(absent.client_auth, ClientAuth::Basic, "the default");
    assert!(matches!(
        with("token_endpoint", json!("http://idp.county.example/token")),
        Err(OidcError::Discovery(m)) if m.starts_with("token_endpoint")
    ));
    assert!(matches!(
        with("response_types_supported", json!(["id_token"])),
        Err(OidcError::Discovery(_))
    ));
}

fn auth_config(issuer_keys: &str) -> AuthConfig {
    serde_yaml_ng::from_str(&format!(
        "audience: {AUD}\nissuers:\n  - issuer: {ISS}\n    algorithms: [EdDSA]\n    keys: {issuer_keys}\n"
    ))
    .unwrap()
}

fn console(yaml: &str) -> Result<ConsoleConfig, String> {
    serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
}

fn problems(yaml: &str) -> Vec<(String, String)> {
    console(yaml)
        .unwrap()
        .validate(&auth_config("{ pem: [{ path: k.pem }] }"))
}

#[test]
fn a_good_console_section_has_no_problems_and_defaults_to_the_openid_scope() {
    let yaml = format!(
        "oidc:\n  issuer: {ISS}\n  client_id: {CLIENT}\n  client_secret: {{ env: CONSOLE_OIDC_SECRET }}\n  redirect_url: https://gw.example/console/oidc/callback\n"
    );
    assert_eq!(problems(&yaml), vec![]);
    let config = console(&yaml).unwrap();
    assert_eq!(config.oidc.unwrap().scopes, vec!["openid".to_owned()]);
    assert_eq!(problems(""), vec![], "no console section, no problem");
    assert_eq!(problems("oidc: null"), vec![]);
}

#[test]
fn every_problem_of_the_oidc_section_is_reported_at_its_path() {
    let yaml = format!(
        "oidc:\n  issuer: https://other.example\n  client_id: {AUD}\n  client_secret: {{ env: A, file: b }}\n  redirect_url: http://gw.example/cb\n  scopes: [profile, 'a b', profile]\n"
    );
    let found: Vec<String> = problems(&yaml).into_iter().map(|(path, _)| path).collect();
    assert_eq!(
        found,
        [
            "console.oidc.issuer",
            "console.oidc.client_id",
            "console.oidc.client_secret",
            "console.oidc.redirect_url",
            "console.oidc.scopes",
            "console.oidc.scopes[1]",
            "console.oidc.scopes[2]",
        ]
    );
    let found = problems(&format!(
        "oidc:\n  issuer: {ISS}\n  client_id: c\n  client_secret: {{ env: 9X }}\n  redirect_url: https://gw.example/cb#x\n"
    ));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "console.oidc.client_secret.env",
            "console.oidc.redirect_url"
        ]
    );
    let missing = problems("oidc: {}");
    let paths: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "console.oidc.issuer",
            "console.oidc.client_id",
            "console.oidc.client_secret",
            "console.oidc.redirect_url"
        ]
    );
    assert!(check_redirect_url("http://127.0.0.1:8080/console/oidc/callback").is_ok());
}

#[test]
fn an_inline_secret_or_an_unknown_key_is_refused_and_the_secret_not_repeated() {
    let inline = console(&format!(
        "oidc:\n  issuer: {ISS}\n  client_id: c\n  client_secret: hunter2-very-secret\n  redirect_url: https://gw.example/cb\n"
    ))
    .unwrap_err();
    assert!(!inline.contains("hunter2"), "{inline}");
    assert!(inline.contains("never written in this file"), "{inline}");
    let inline = console("oidc:\n  client_secret: { value: hunter2 }\n").unwrap_err();
    assert!(!inline.contains("hunter2"), "{inline}");
    assert!(console("sessions: 3\n").is_err());
    assert!(console("oidc: { issuer: x, colour: blue }\n").is_err());
}

/// An issuer with an Ed25519 key (EdDSA signatures are deterministic) and its
/// authenticator.
struct Idp {
    key: EncodingKey,
    auth: Authenticator,
    _dir: tempfile::TempDir,
}

async fn idp() -> Idp {
    connectors::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(dir.path().join("idp.pub.pem"), pair.public_key_pem()).unwrap();
    let key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    let config = auth_config("{ pem: [{ kid: ed-1, path: idp.pub.pem }] }");
    let auth = Authenticator::new(&config, dir.path()).await.unwrap();
    Idp {
        key,
        auth,
        _dir: dir,
    }
}

impl Idp {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed-1".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn id_token_claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": ISS, "aud": CLIENT, "sub": "clerk-001", "nonce": "n-0S6_WzA2Mj",
        "roles": ["clerk"], "township": "139901101", "iat": now, "exp": now + 300,
    })
}

#[tokio::test]
async fn an_id_token_becomes_the_same_caller_as_an_api_token() {
    let idp = idp().await;
    let token = idp.sign(&id_token_claims());
    let caller = idp
        .auth
        .verify_id_token(&token, CLIENT, "n-0S6_WzA2Mj")
        .await
        .unwrap();
    assert_eq!(caller.user, "clerk-001");
    assert_eq!(caller.issuer, ISS);
    assert!(caller.has_role(Role::Clerk));
    assert_eq!(caller.township.as_deref(), Some("139901101"));
    assert_eq!(caller.county.as_deref(), Some("139901"));
    // The same claims rules: a clerk without a township is refused here too.
    let mut claims = id_token_claims();
    claims.as_object_mut().unwrap().remove("township");
    assert_eq!(
        idp.auth
            .verify_id_token(&idp.sign(&claims), CLIENT, "n-0S6_WzA2Mj")
            .await,
        Err(AuthError::MissingClaim("township"))
    );
}

#[tokio::test]
async fn a_grid_workers_id_token_carries_their_villages_by_the_same_rules() {
    let idp = idp().await;
    let sign_in = |villages: Value| {
        let mut claims = id_token_claims();
        claims["roles"] = json!(["grid_worker"]);
        claims["villages"] = villages;
        let token = idp.sign(&claims);
        let auth = idp.auth.clone();
        async move { auth.verify_id_token(&token, CLIENT, "n-0S6_WzA2Mj").await }
    };
    let caller = sign_in(json!(["139901101201", "139901101202"]))
        .await
        .unwrap();
    assert!(caller.has_role(Role::GridWorker));
    assert_eq!(
        caller.villages.iter().collect::<Vec<_>>(),
        ["139901101201", "139901101202"]
    );
    assert_eq!(
        sign_in(json!(["139901201201"])).await,
        Err(AuthError::InvalidVillages(
            crate::auth::VillagesProblem::OutsideTownship
        ))
    );
    assert_eq!(
        sign_in(Value::Null).await,
        Err(AuthError::MissingClaim("villages"))
    );
}

#[tokio::test]
async fn an_id_token_with_another_nonce_audience_or_azp_is_refused() {
    let idp = idp().await;
    let nonce = "n-0S6_WzA2Mj";
    let verify = |claims: Value| {
        let token = idp.sign(&claims);
        let auth = idp.auth.clone();
        async move { auth.verify_id_token(&token, CLIENT, nonce).await }
    };
    let mut claims = id_token_claims();
    claims["nonce"] = json!("another-nonce");
    assert_eq!(verify(claims).await, Err(AuthError::WrongNonce));
    let mut claims = id_token_claims();
    claims.as_object_mut().unwrap().remove("nonce");
    assert_eq!(verify(claims).await, Err(AuthError::MissingClaim("nonce")));
    let mut claims = id_token_claims();
    claims["aud"] = json!("another-client");
    assert_eq!(verify(claims).await, Err(AuthError::WrongAudience));
    // An API token (audience: the gateway) is not an ID token for the console.
    let mut claims = id_token_claims();
    claims["aud"] = json!(AUD);
    assert_eq!(verify(claims).await, Err(AuthError::WrongAudience));
    let mut claims = id_token_claims();
    claims["aud"] = json!([CLIENT, "another-client"]);
    assert_eq!(verify(claims).await, Err(AuthError::MissingClaim("azp")));
    let mut claims = id_token_claims();
    claims["aud"] = json!([CLIENT, "another-client"]);
    claims["azp"] = json!("another-client");
    assert_eq!(verify(claims).await, Err(AuthError::WrongAudience));
    let mut claims = id_token_claims();
    claims["aud"] = json!([CLIENT, "another-client"]);
    claims["azp"] = json!(CLIENT);
    assert!(verify(claims).await.is_ok());
    // An empty expected nonce never matches, not even an empty claim.
    let mut claims = id_token_claims();
    claims["nonce"] = json!("");
    let token = idp.sign(&claims);
    assert_eq!(
        idp.auth.verify_id_token(&token, CLIENT, "").await,
        Err(AuthError::WrongNonce)
    );
    // And the ID token is no bearer token for the API.
    let token = idp.sign(&id_token_claims());
    assert_eq!(idp.auth.verify(&token).await, Err(AuthError::WrongAudience));
}

#[test]
fn errors_have_stable_reasons_and_carry_no_secrets() {
    let all = [
        OidcError::Config("x".into()),
        OidcError::ClientSecret("environment variable X is not set".into()),
        OidcError::UntrustedIssuer,
        OidcError::Discovery("HTTP status 404".into()),
        OidcError::IssuerMismatch,
        OidcError::NoPkce,
        OidcError::NoClientAuth,
        OidcError::BadCallback,
        OidcError::Provider("access_denied"),
        OidcError::WrongState,
        OidcError::Expired,
        OidcError::Unreachable("timed out".into()),
        OidcError::CodeRefused {
            status: 400,
            error: "invalid_grant",
        },
        OidcError::BadTokenResponse(TokenError::NoIdToken),
        OidcError::IdToken(AuthError::WrongNonce),
    ];
    let reasons: BTreeSet<&str> = all.iter().map(OidcError::reason).collect();
    assert_eq!(reasons.len(), all.len(), "one reason per kind");
    for reason in reasons {
        assert!(
            reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
    }
    assert_eq!(
        OidcError::IdToken(AuthError::WrongNonce).auth_error(),
        Some(AuthError::WrongNonce)
    );
}

/// The county's files with a `console:` section added to its main file, checked
/// against the `auth:` section in force.
fn load_county_with(console: &str, auth: Option<AuthConfig>) -> Vec<(String, String)> {
    let files = crate::county::COUNTY_FILES.iter().map(|(path, text)| {
        let text = if *path == crate::county::COUNTY_CONFIG {
            format!("{text}\nconsole:\n{console}")
        } else {
            (*text).to_owned()
        };
        (*path, text)
    });
    let options = crate::config::LoadOptions {
        auth,
        ..crate::config::LoadOptions::default()
    };
    match crate::config::load(
        &crate::config::EmbeddedSource::new(files.collect::<Vec<_>>()),
        std::path::Path::new(crate::county::COUNTY_CONFIG),
        &options,
    ) {
        Ok(config) => {
            assert!(config.console.oidc.is_some());
            vec![]
        }
        Err(problems) => problems.into_iter().map(|p| (p.path, p.message)).collect(),
    }
}

#[test]
fn the_gateway_file_takes_a_console_section_checked_against_the_auth_in_force() {
    let section = format!(
        "  oidc:\n    issuer: {ISS}\n    client_id: {CLIENT}\n    client_secret: {{ file: console.secret }}\n    redirect_url: https://gw.example/console/oidc/callback\n"
    );
    // The county's own issuer is not this one…
    let problems = load_county_with(&section, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "console.oidc.issuer");
    // …but the auth section in force (here replaced, as the demo does) is what counts.
    let mut auth: AuthConfig = serde_yaml_ng::from_str(&format!(
        "audience: {AUD}\nissuers:\n  - issuer: {ISS}\n    algorithms: [ES256]\n    keys:\n      jwks_url: {{ url: \"{ISS}/jwks\" }}\n"
    ))
    .unwrap();
    assert_eq!(load_county_with(&section, Some(auth.clone())), vec![]);
    auth.issuers[0].issuer = "https://another.example".to_owned();
    assert_eq!(
        load_county_with(&section, Some(auth))[0].0,
        "console.oidc.issuer"
    );
}
