//! `gateway serve` over TLS with client certificates required (mTLS for township
//! apps), through the real binary: a township app with a certificate from the
//! townships' CA gets its lookup answered; a client without one never reaches HTTP.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::binary::{Running, url_in, write_county};
use crate::helpers::{TOWNSHIP, lookup, sample};

/// A CA that signs leaf certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// (certificate PEM, key PEM) for these names.
    fn leaf(&self, names: &[&str], cn: &str) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A client trusting `ca`, presenting `identity` if given.
fn client(ca: &Ca, identity: Option<&(String, String)>) -> reqwest::Client {
    connectors::install_crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn serve_requires_township_client_certificates_over_tls() {
    connectors::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("County Server CA");
    let townships_ca = Ca::new("Townships CA");
    let (cert, key) = server_ca.leaf(&["127.0.0.1", "localhost"], "gateway.county.test");
    write(&dir.path().join("data/tls/server.pem"), &cert);
    write(&dir.path().join("data/tls/server.key"), &key);
    write(
        &dir.path().join("data/tls/townships-ca.pem"),
        &townships_ca.pem,
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
    let app = townships_ca.leaf(&[], "dongling-app");
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
            department: None,
            app: Some("dongling-app".into()),
            ttl_s: 600,
            not_before_s: None,
        },
    )
    .unwrap();
    // No department runs here: the lookup passes TLS, authentication and policy and
    // then fails at the (absent) department, which proves the whole front half.
    let person = sample(connectors::sim::SampleKind::MarriedParent);
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
    let stranger = Ca::new("Somebody Else").leaf(&[], "stranger");
    let wrong = client(&server_ca, Some(&stranger));
    assert!(wrong.get(format!("{base}/healthz")).send().await.is_err());
    // Plain HTTP on the TLS port gets no answer either.
    let plain = base.replace("https://", "http://");
    let answered = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(!answered.is_ok_and(|r| r.status().is_success()));
    serve.stop().await;
}
