//! `gateway serve` over TLS with client certificates required (mTLS for township
//! apps), through the real binary: a township app with a certificate from the
//! townships' CA gets its lookup answered; a client without one never reaches HTTP.

use crate::helpers::Edit as _;
use std::path::Path;

use testkit::pki::{Ca, Leaf, Usage, rustls_client_config};

use crate::binary::{Running, url_in, write_county};
use crate::helpers::{TOWNSHIP, lookup, sample};

/// A client trusting `ca`, presenting `identity` if given.
fn client(ca: &Ca, identity: Option<&Leaf>) -> reqwest::Client {
    let config = rustls_client_config(ca, identity, &[]);
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    // Private, as the data directory must be.
    gateway::datadir::create_dir(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn serve_requires_township_client_certificates_over_tls() {
    connectors::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("County Server CA");
    let townships_ca = Ca::new("Townships CA");
    let server = server_ca.leaf(
        &["127.0.0.1", "localhost"],
        "gateway.county.test",
        Usage::Server,
    );
    write(&dir.path().join("data/tls/server.pem"), &server.cert_pem);
    write(&dir.path().join("data/tls/server.key"), &server.key_pem);
    write(
        &dir.path().join("data/tls/townships-ca.pem"),
        townships_ca.pem(),
    );
    write_county(dir.path(), |path, text| {
        if path == "county/gateway.yaml" {
            format!(
                "{text}tls:\n  cert: ../data/tls/server.pem\n  key: ../data/tls/server.key\n  client_ca: ../data/tls/townships-ca.pem\n  require_client_cert: true\n"
            )
        } else {
            text.to_owned()
        }
    });
    let keys = dir.path().join("data/keys");
    let (signing, _, public_pem) =
        gateway::auth::SigningKey::generate_es256(gateway::demo::ISSUER).unwrap();
    write(&keys.join("county-demo-idp.pub.pem"), &public_pem);

    let config = dir.path().join("county/gateway.yaml");
    let mut serve = Running::spawn(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let base = url_in(&serve.line(|l| l.contains("listening on")).await);
    assert!(base.starts_with("https://"), "{base}");

    // A township app with a certificate from the townships' CA.
    let app = townships_ca.leaf(&[], "dongling-app", Usage::Client);
    let with_cert = client(&server_ca, Some(&app));
    let ready = with_cert
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let token = gateway::auth::mint(
        &signing,
        &gateway::auth::MintClaims {
            iss: gateway::demo::ISSUER.into(),
            aud: gateway::demo::AUDIENCE.into(),
            sub: "dongling-app".into(),
            roles: vec![gateway::auth::Role::Clerk],
            township: Some(TOWNSHIP.into()),
            villages: Vec::new(),
            department: None,
            app: Some("dongling-app".into()),
            ttl_s: 600,
            not_before_s: None,
        },
    )
    .unwrap();
    // No department runs here: the lookup passes TLS, authentication and policy and
    // then fails at the (absent) department, which proves the whole front half.
    let person = sample(sim::SampleKind::MarriedParent);
    let reply = with_cert
        .post(format!("{base}/v1/query"))
        .bearer_auth(&token)
        .json(&lookup("hukou", "person_by_id", person.id.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 502);

    // Without a client certificate, or with one from another CA: no HTTP at all.
    let without = client(&server_ca, None);
    assert!(without.get(format!("{base}/healthz")).send().await.is_err());
    let stranger = Ca::new("Somebody Else").leaf(&[], "stranger", Usage::Client);
    let wrong = client(&server_ca, Some(&stranger));
    assert!(wrong.get(format!("{base}/healthz")).send().await.is_err());
    // Plain HTTP on the TLS port gets no answer either.
    let plain = base.edit("https://", "http://");
    let answered = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(!answered.is_ok_and(|r| r.status().is_success()));
    serve.stop().await;
}
