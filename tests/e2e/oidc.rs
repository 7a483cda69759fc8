//! OpenID Connect sign-in for the console, end to end against a real, independent
//! OpenID provider: the `oidc-provider` package from the npm registry, started with
//! Node.js (`tests/oidc-provider/provider.mjs`, installed by `.ci/run` with
//! `npm ci --prefix tests/oidc-provider`). A browser-like client (cookies on) goes
//! through the provider's login and consent forms; the gateway's `OidcClient`
//! starts and finishes the sign-in and the gateway's `Authenticator` verifies the
//! ID token with keys from the provider's JWKS URL. Without Node.js or the
//! installed package, each test says it skipped and why.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gateway::auth::{AuthConfig, AuthError, Authenticator, Role};
use gateway::oidc::{Callback, ConsoleConfig, OidcClient, OidcConfig, OidcError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::helpers::{TOWNSHIP, TestGateway};

const CLIENT_ID: &str = "county-console";
const CLIENT_SECRET: &str = "a-test-client-secret-of-some-length";
/// The console's callback. Never contacted: the browser stops at the redirect to it.
const REDIRECT_URL: &str = "https://gateway.test/console/oidc/callback";
const AUDIENCE: &str = "county-gateway";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc-provider")
}

/// The provider running as a child process, killed when dropped.
struct Provider {
    issuer: String,
    _child: Child,
    /// What the provider wrote on stderr so far, for failure messages.
    stderr: watch::Sender<String>,
}

/// Starts the provider, or says why this test cannot run here and returns None.
async fn start_provider(test: &str) -> Option<Provider> {
    let node = Command::new("node").arg("--version").output().await;
    if !node.is_ok_and(|out| out.status.success()) {
        testkit::skip(
            test,
            "Node.js (`node`) is not installed, so the OpenID provider cannot run",
            true,
        );
        return None;
    }
    let dir = provider_dir();
    if !dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        testkit::skip(
            test,
            "the OpenID provider's npm packages are not installed: run \
             `npm ci --prefix tests/oidc-provider` (.ci/run does)",
            true,
        );
        return None;
    }
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .args(["--port", "0"])
        .current_dir(&dir)
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env("OIDC_REDIRECT_URI", REDIRECT_URL)
        // The provider stops when its stdin closes, i.e. when this process ends.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stderr = watch::Sender::new(String::new());
    let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = stderr.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = errors.next_line().await {
            sink.send_modify(|all| {
                all.push_str(&line);
                all.push('\n');
            });
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(issuer) = line.strip_prefix("oidc-provider ready at ") {
                return Some(issuer.trim().to_owned());
            }
        }
        None
    })
    .await;
    let Ok(Some(issuer)) = ready else {
        panic!(
            "the OpenID provider did not start (exited: {:?}): {}",
            child.try_wait(),
            *stderr.borrow()
        );
    };
    // Keep reading stdout so the provider never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Ready means listening; poll its discovery document until it answers.
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let client = crate::helpers::client();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for attempt in 0.. {
        tick.tick().await;
        match client.get(&discovery).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if attempt < 500 => {}
            other => panic!("the provider's discovery document: {other:?}"),
        }
    }
    Some(Provider {
        issuer,
        _child: child,
        stderr,
    })
}

/// The gateway's `auth:` section trusting `issuers` (each by its JWKS URL) and the
/// console's `oidc:` section for the first, its client secret in a file in `dir`.
fn configs(issuers: &[&str], dir: &Path) -> (AuthConfig, OidcConfig) {
    let mut yaml = format!("audience: {AUDIENCE}\nissuers:\n");
    for issuer in issuers {
        yaml.push_str(&format!(
            "  - issuer: {issuer}\n    algorithms: [RS256]\n    keys:\n      jwks_url: {{ url: \"{issuer}/jwks\" }}\n"
        ));
    }
    let auth: AuthConfig = serde_yaml_ng::from_str(&yaml).expect("auth yaml");
    std::fs::write(dir.join("oidc-client-secret"), format!("{CLIENT_SECRET}\n"))
        .expect("write the secret");
    let console: ConsoleConfig = serde_yaml_ng::from_str(&format!(
        "oidc:\n  issuer: {}\n  client_id: {CLIENT_ID}\n  client_secret: {{ file: oidc-client-secret }}\n  redirect_url: {REDIRECT_URL}\n",
        issuers[0]
    ))
    .expect("console yaml");
    assert_eq!(auth.validate(), vec![]);
    assert_eq!(console.validate(&auth), vec![]);
    (auth, console.oidc.expect("an oidc section"))
}

/// The console's client for the provider, with a gateway authenticator trusting it.
async fn console_client(provider: &Provider, dir: &Path) -> OidcClient {
    let (auth, oidc) = configs(&[&provider.issuer], dir);
    let authenticator = Authenticator::new(&auth, dir)
        .await
        .expect("the authenticator loads");
    OidcClient::new(&oidc, authenticator, dir)
        .await
        .expect("the provider's discovery document is accepted")
}

/// A browser: keeps cookies, follows redirects, but stops at the console's callback.
fn browser() -> reqwest::Client {
    connectors::install_crypto_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().as_str().starts_with(REDIRECT_URL) {
                attempt.stop()
            } else if attempt.previous().len() > 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .expect("a client")
}

/// Signs `login` in at `url` through the provider's login and consent forms and
/// returns the query string the provider sends the browser back to the console with.
async fn sign_in(provider: &Provider, url: &str, login: &str) -> String {
    let browser = browser();
    let mut response = browser.get(url).send().await.expect("the provider answers");
    for _ in 0..10 {
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("a Location")
                .to_owned();
            let location = reqwest::Url::parse(&location).expect("an absolute Location");
            assert!(location.as_str().starts_with(REDIRECT_URL), "{location}");
            return location.query().unwrap_or_default().to_owned();
        }
        let page_url = response.url().clone();
        let page = response.text().await.expect("a page");
        assert!(
            status.is_success(),
            "the provider answered {status}: {page}\n{}",
            *provider.stderr.borrow()
        );
        let action = between(&page, "action=\"", "\"").expect("a form");
        let action = page_url.join(action).expect("a form URL");
        let form: Vec<(&str, &str)> = if page.contains("name=\"prompt\" value=\"login\"") {
            vec![
                ("prompt", "login"),
                ("login", login),
                ("password", "any password"),
            ]
        } else if page.contains("name=\"prompt\" value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("neither a login nor a consent form: {page}");
        };
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&");
        response = browser
            .post(action)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the provider answers");
    }
    panic!("the sign-in did not come back to the console");
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// `url` with the query parameter `name` set to `value`.
fn with_param(url: &reqwest::Url, name: &str, value: &str) -> String {
    let mut changed = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    changed.query_pairs_mut().clear().extend_pairs(pairs);
    changed.to_string()
}

#[tokio::test]
async fn a_clerk_signs_in_and_becomes_the_same_caller_as_in_api_calls() {
    let Some(provider) = start_provider("oidc::a_clerk_signs_in").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let client = console_client(&provider, dir.path()).await;

    let (url, pending) = client.begin();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert!(
        url.as_str()
            .starts_with(&format!("{}/auth?", provider.issuer))
    );
    assert_eq!(param("response_type"), Some("code"));
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert_eq!(param("state"), Some(pending.state()));
    assert_eq!(param("redirect_uri"), Some(REDIRECT_URL));
    assert!(!url.as_str().contains(CLIENT_SECRET));

    let query = sign_in(&provider, url.as_str(), "clerk-1").await;
    let callback = Callback::from_query(&query).expect("a code and the state");
    assert_eq!(callback.state(), pending.state());
    let caller = client
        .finish(pending.clone(), &callback)
        .await
        .expect("the sign-in succeeds");
    assert_eq!(caller.user, "clerk-1");
    assert_eq!(caller.issuer, provider.issuer);
    assert_eq!(
        caller.roles.iter().copied().collect::<Vec<_>>(),
        [Role::Clerk]
    );
    assert_eq!(caller.township.as_deref(), Some(TOWNSHIP));
    assert_eq!(caller.department, None);

    // A code is good for one sign-in only.
    let again = client.finish(pending, &callback).await.unwrap_err();
    assert_eq!(
        again,
        OidcError::CodeRefused {
            status: 400,
            error: "invalid_grant"
        }
    );
}

#[tokio::test]
async fn a_wrong_state_a_wrong_nonce_or_another_sign_ins_code_is_refused() {
    let Some(provider) = start_provider("oidc::a_wrong_state_or_nonce").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let client = console_client(&provider, dir.path()).await;

    // The provider sends back a state this sign-in did not send.
    let (url, pending) = client.begin();
    let query = sign_in(
        &provider,
        &with_param(&url, "state", "forged-state"),
        "clerk-1",
    )
    .await;
    let callback = Callback::from_query(&query).expect("a callback");
    assert_eq!(
        client.finish(pending.clone(), &callback).await.unwrap_err(),
        OidcError::WrongState
    );
    // The state is checked before the code is spent: the same code, presented with
    // this sign-in's state, still signs in.
    let right = Callback::new(
        code_of(&query),
        pending.state().to_owned(),
        Some(provider.issuer.clone()),
    );
    assert!(client.finish(pending, &right).await.is_ok());

    // The ID token carries a nonce this sign-in did not send.
    let (url, pending) = client.begin();
    let query = sign_in(
        &provider,
        &with_param(&url, "nonce", "forged-nonce"),
        "clerk-1",
    )
    .await;
    let callback = Callback::from_query(&query).expect("a callback");
    assert_eq!(
        client.finish(pending, &callback).await.unwrap_err(),
        OidcError::IdToken(AuthError::WrongNonce)
    );

    // Another sign-in's code, injected with this sign-in's state: PKCE refuses it.
    let (_, victim) = client.begin();
    let (attacker_url, _attacker) = client.begin();
    let attacker_query = sign_in(&provider, attacker_url.as_str(), "clerk-1").await;
    let injected = Callback::new(
        code_of(&attacker_query),
        victim.state().to_owned(),
        Some(provider.issuer.clone()),
    );
    assert_eq!(
        client.finish(victim, &injected).await.unwrap_err(),
        OidcError::CodeRefused {
            status: 400,
            error: "invalid_grant"
        }
    );

    // A callback claiming another issuer (RFC 9207 mix-up).
    let (url, pending) = client.begin();
    let query = sign_in(&provider, url.as_str(), "clerk-1").await;
    let mixed_up = Callback::new(
        code_of(&query),
        pending.state().to_owned(),
        Some("https://another-idp.example".to_owned()),
    );
    assert_eq!(
        client.finish(pending.clone(), &mixed_up).await.unwrap_err(),
        OidcError::IssuerMismatch
    );
    let without_iss = Callback::new(code_of(&query), pending.state().to_owned(), None);
    assert_eq!(
        client.finish(pending, &without_iss).await.unwrap_err(),
        OidcError::IssuerMismatch,
        "the provider promises `iss` in every answer"
    );
}

fn code_of(query: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

#[tokio::test]
async fn someone_without_a_gateway_role_is_refused_like_in_api_calls() {
    let Some(provider) = start_provider("oidc::someone_without_a_gateway_role").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let client = console_client(&provider, dir.path()).await;
    let (url, pending) = client.begin();
    let query = sign_in(&provider, url.as_str(), "resident-1").await;
    let callback = Callback::from_query(&query).expect("a callback");
    assert_eq!(
        client.finish(pending, &callback).await.unwrap_err(),
        OidcError::IdToken(AuthError::MissingClaim("roles"))
    );

    // A department admin gets their department, as in an API token.
    let (url, pending) = client.begin();
    let query = sign_in(&provider, url.as_str(), "dept-admin-1").await;
    let caller = client
        .finish(pending, &Callback::from_query(&query).expect("a callback"))
        .await
        .expect("signed in");
    assert!(caller.has_role(Role::DeptAdmin));
    assert_eq!(caller.department.as_deref(), Some("county-psb"));
    assert_eq!(caller.township, None);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let Some(provider) = start_provider("oidc::a_discovery_document_naming_another_issuer").await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // The same provider under another name: its document says 127.0.0.1.
    let alias = provider.issuer.replace("127.0.0.1", "localhost");
    let (auth, oidc) = configs(&[&alias], dir.path());
    let authenticator = Authenticator::new(&auth, dir.path())
        .await
        .expect("the authenticator loads");
    let refused = OidcClient::new(&oidc, authenticator, dir.path())
        .await
        .unwrap_err();
    assert_eq!(refused, OidcError::IssuerMismatch);

    // And a client secret the provider does not know fails at the token endpoint.
    let (auth, mut oidc) = configs(&[&provider.issuer], dir.path());
    std::fs::write(dir.path().join("wrong-secret"), "not-the-secret").expect("write");
    oidc.client_secret.file = Some("wrong-secret".into());
    let authenticator = Authenticator::new(&auth, dir.path())
        .await
        .expect("the authenticator loads");
    let client = OidcClient::new(&oidc, authenticator, dir.path())
        .await
        .expect("discovery");
    let (url, pending) = client.begin();
    let query = sign_in(&provider, url.as_str(), "clerk-1").await;
    let refused = client
        .finish(pending, &Callback::from_query(&query).expect("a callback"))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        OidcError::CodeRefused {
            status: 401,
            error: "invalid_client"
        }
    );
    assert!(!refused.to_string().contains("not-the-secret"));
}

#[tokio::test]
async fn the_console_signs_a_clerk_in_through_the_provider_and_refuses_a_replayed_callback() {
    let Some(provider) = start_provider("oidc::the_console_signs_a_clerk_in").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = TestGateway::start_with_oidc(console_client(&provider, dir.path()).await).await;
    let gateway_browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let cookie_of = |response: &reqwest::Response, name: &str| -> Option<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| {
                let text = v.to_str().ok()?;
                let pair = text.split(';').next()?;
                let (k, value) = pair.split_once('=')?;
                (k == name && !value.is_empty()).then(|| value.to_owned())
            })
    };

    // The sign-in page offers single sign-on; its button POSTs with the page's token.
    let page = gateway_browser
        .get(gw.url("/console/signin"))
        .send()
        .await
        .expect("the sign-in page");
    let presession = cookie_of(&page, "gw_presession").expect("a pre-session token");
    let html = page.text().await.expect("a page");
    assert!(
        html.contains("id=\"signin-oidc\""),
        "single sign-on is offered"
    );
    let started = gateway_browser
        .post(gw.url("/console/oidc/start"))
        .header("cookie", format!("gw_presession={presession}"))
        .form(&[("csrf", presession.as_str())])
        .send()
        .await
        .expect("the start");
    assert_eq!(started.status(), 303);
    let to_provider = started
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("to the provider")
        .to_owned();
    assert!(to_provider.starts_with(&provider.issuer), "{to_provider}");

    // The provider sends the browser back; its query goes to the console's callback.
    let query = sign_in(&provider, &to_provider, "clerk-1").await;
    let callback = gw.url(&format!("/console/oidc/callback?{query}"));
    let back = gateway_browser
        .get(&callback)
        .header("cookie", format!("gw_presession={presession}"))
        .send()
        .await
        .expect("the callback");
    assert_eq!(back.status(), 303);
    assert_eq!(
        back.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/console/desk")
    );
    let session = cookie_of(&back, "gw_session").expect("a session");
    let desk = gateway_browser
        .get(gw.url("/console/desk"))
        .header("cookie", format!("gw_session={session}"))
        .send()
        .await
        .expect("the desk");
    assert_eq!(desk.status(), 200);
    let desk = desk.text().await.expect("the desk page");
    assert!(
        desk.contains("clerk-1"),
        "signed in as the provider's person"
    );
    assert!(
        desk.contains("生育登记"),
        "with the clerk's grants in township {TOWNSHIP}"
    );

    // The same callback again (a replayed URL) starts nothing.
    let replay = gateway_browser
        .get(&callback)
        .send()
        .await
        .expect("the replay");
    assert_eq!(replay.status(), 401);
    assert!(cookie_of(&replay, "gw_session").is_none());
}
