//! Configuration: defaults, and every problem reported at once with its path.

use super::support::*;
use crate::auth::{AuthConfig, KeySource};

fn paths(problems: &[(String, String)]) -> Vec<&str> {
    problems.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn defaults_are_filled_in() {
    let c = config(
        r#"
audience: county-gateway
issuers:
  - issuer: https://idp
    algorithms: [ES256]
    keys:
      jwks_url: { url: "https://idp/.well-known/jwks.json" }
"#,
    );
    assert_eq!(c.leeway_s, 30);
    assert_eq!(c.cache.max_entries, 100_000);
    let [KeySource::JwksUrl(url)] = c.issuers[0].keys.as_slice() else {
        panic!("{:?}", c.issuers[0].keys);
    };
    assert_eq!((url.refresh_s, url.min_refetch_s), (300, 30));
    assert!(!c.issuers[0].allow_hs256);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
}

#[test]
fn every_problem_is_reported() {
    let c = config(
        r#"
leeway_s: 120
cache: { max_entries: 0 }
issuers:
  - issuer: https://idp.a
    algorithms: [ES256, HS256]
    keys:
      pem: [{ kid: k1, path: a.pem }]
      jwks_file: a.jwks.json
  - issuer: https://idp.a
    algorithms: []
    keys: {}
  - issuer: ""
    algorithms: [RS256, HS512]
    keys:
      pem: [{ kid: k1, path: a.pem }, { path: b.pem }, { kid: k1, path: c.pem }]
  - issuer: https://idp.d
    algorithms: [ES256]
    keys:
      jwks_url: { url: "http://idp.d/jwks.json", refresh_s: 0, min_refetch_s: 0 }
  - issuer: https://idp.e
    algorithms: [ES256]
    allow_hs256: false
    keys:
      hs256_secret_env: "NOT-A-NAME"
"#,
    );
    let problems = c.validate();
    let p = paths(&problems);
    for expected in [
        "auth.audience",
        "auth.leeway_s",
        "auth.cache.max_entries",
        "auth.issuers[0].algorithms",
        "auth.issuers[0].keys",
        "auth.issuers[1].issuer",
        "auth.issuers[1].algorithms",
        "auth.issuers[1].keys",
        "auth.issuers[2].issuer",
        "auth.issuers[2].algorithms",
        "auth.issuers[2].keys.pem[1].kid",
        "auth.issuers[2].keys.pem[2].kid",
        "auth.issuers[3].keys.jwks_url.url",
        "auth.issuers[3].keys.jwks_url.refresh_s",
        "auth.issuers[3].keys.jwks_url.min_refetch_s",
        "auth.issuers[4].keys.hs256_secret_env",
        "auth.issuers[4].algorithms",
    ] {
        assert!(
            p.contains(&expected),
            "{expected} missing from {problems:#?}"
        );
    }
    let message = |path: &str| {
        problems
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(message("auth.leeway_s").contains("at most 60"));
    assert!(message("auth.issuers[0].algorithms").contains("allow_hs256"));
    assert!(message("auth.issuers[0].keys").contains("pem, jwks_file"));
    assert!(message("auth.issuers[1].issuer").contains("twice"));
    assert!(message("auth.issuers[2].algorithms").contains("HS512"));
    assert!(message("auth.issuers[3].keys.jwks_url.url").contains("https"));

    let empty = config("audience: x\n");
    assert_eq!(paths(&empty.validate()), ["auth.issuers"]);
}

#[test]
fn hs256_rules() {
    let ok = config(
        r#"
audience: a
issuers:
  - issuer: i
    algorithms: [HS256]
    allow_hs256: true
    keys: { hs256_secret_env: IDP_SECRET }
"#,
    );
    assert!(ok.validate().is_empty(), "{:?}", ok.validate());
    // HS256 with public keys, and a secret next to asymmetric algorithms.
    let bad = config(
        r#"
audience: a
issuers:
  - issuer: i
    algorithms: [RS256, HS256]
    allow_hs256: true
    keys: { pem: [{ path: k.pem }] }
  - issuer: j
    algorithms: [HS256, ES256]
    allow_hs256: true
    keys: { hs256_secret_env: IDP_SECRET }
"#,
    );
    let problems = bad.validate();
    assert!(
        problems
            .iter()
            .any(|(p, m)| p == "auth.issuers[0].algorithms" && m.contains("hs256_secret_env")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|(p, m)| p == "auth.issuers[1].algorithms" && m.contains("ES256")),
        "{problems:?}"
    );
}

#[test]
fn unknown_fields_and_algorithms_fail_to_parse() {
    for yaml in [
        "audience: a\nleeway: 5\n",
        "audience: a\nissuers: [{issuer: i, algorithms: [ES256], keys: {pem: [], jwks: x}}]\n",
        "audience: a\nissuers: [{issuer: i, algorithms: [none], keys: {jwks_file: x}}]\n",
        "audience: a\ncache: {max: 3}\n",
    ] {
        assert!(
            serde_yaml_ng::from_str::<AuthConfig>(yaml).is_err(),
            "{yaml}"
        );
    }
}

#[test]
fn jwks_urls_must_be_https_except_on_loopback() {
    for (url, ok) in [
        ("https://idp.example/jwks.json", true),
        ("http://127.0.0.1:8080/jwks.json", true),
        ("http://localhost/jwks.json", true),
        ("http://[::1]:9/jwks.json", true),
        ("http://idp.example/jwks.json", false),
        ("ftp://idp.example/jwks.json", false),
        ("https://user:pw@idp.example/jwks.json", false),
        ("not a url", false),
    ] {
        let c = config(&jwks_url_yaml(url, 300, 30));
        assert_eq!(c.validate().is_empty(), ok, "{url}: {:?}", c.validate());
    }
}

#[tokio::test]
async fn the_authenticator_reports_config_and_key_problems_together() {
    let dir = tempfile::tempdir().unwrap();
    let (_, private_pem, _) = crate::auth::SigningKey::generate_es256("k").unwrap();
    let rsa_key = rsa("r");
    write(
        dir.path(),
        &[
            ("private.pem", &private_pem),
            (
                "garbage.pem",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            ("rsa.pem", &rsa_key.public_pem),
            (
                "bad.jwks.json",
                "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
            ),
        ],
    );
    let yaml = format!(
        r#"
audience: {AUD}
leeway_s: 120
issuers:
  - issuer: a
    algorithms: [ES256]
    keys:
      pem:
        - {{ kid: k1, path: missing.pem }}
        - {{ kid: k2, path: private.pem }}
        - {{ kid: k3, path: garbage.pem }}
        - {{ kid: k4, path: rsa.pem }}
  - issuer: b
    algorithms: [ES256]
    keys:
      jwks_file: bad.jwks.json
"#
    );
    let problems = build(&yaml, dir.path(), &[]).await.unwrap_err();
    let p = paths(&problems);
    assert!(p.contains(&"auth.leeway_s"), "{problems:#?}");
    for (path, needle) in [
        ("auth.issuers[0].keys.pem[0].path", "cannot be read"),
        ("auth.issuers[0].keys.pem[1].path", "private key"),
        ("auth.issuers[0].keys.pem[2].path", "not an RSA, EC"),
        (
            "auth.issuers[0].keys.pem[3].path",
            "none of the issuer's algorithms",
        ),
        ("auth.issuers[1].keys.jwks_file", "no usable keys"),
    ] {
        assert!(
            problems
                .iter()
                .any(|(p, m)| p == path && m.contains(needle)),
            "{path} / {needle} missing from {problems:#?}"
        );
    }
    // Key material never appears in problems.
    let all = format!("{problems:?}");
    assert!(!all.contains(private_pem.lines().nth(1).unwrap()));
}
