//! Tests of the HTTP kind: calls over (m)TLS to a department, build failures, the
//! caller's deadline, and the request body template.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::HttpConnector;
use super::connector::{BodyTemplate, fill_subject};
use crate::definition::ConnectorDef;
use crate::error::{BuildError, FetchError};
use crate::files::FileRoots;
use crate::{Connector, FetchContext};

mod over_tls {
    use super::*;
    use crate::tls::tests::{Ca, Department, TempDir};
    use std::sync::atomic::Ordering;

    const ANSWER: &str = r#"{"code":0,"data":{"sfzh":"110101199003070012","xm":"张三"}}"#;

    fn connector(port: u16, tls: &str, dir: &TempDir) -> Result<HttpConnector, BuildError> {
        let text = format!(
            r#"
id: psb
title: 公安
department: {{ id: psb, name: 公安局 }}
base_url: https://localhost:{port}
envelope: {{ status: /code, ok: [0], not_found: [404], data: /data }}
operations:
  person_by_id:
    title: 按身份证号查询
    request: {{ path: /person, body: {{ sfzh: "$subject" }} }}
    schema: psb/person.schema.json
    record:
      id_number: {{ from: /sfzh, pii: id_number, sharing: open }}
      name: {{ from: /xm, pii: name, sharing: conditional }}
{tls}
"#
        );
        let def = ConnectorDef::from_yaml(&text).unwrap();
        assert_eq!(def.validate(), vec![]);
        HttpConnector::new(Arc::new(def), &dir.0, &FileRoots::within([&dir.0]))
    }

    struct Setup {
        dir: TempDir,
        department: Department,
    }

    fn setup() -> Setup {
        crate::install_crypto_provider();
        let server_ca = Ca::new("PSB Server CA");
        let client_ca = Ca::new("PSB Client CA");
        let department = Department::start(&server_ca, &client_ca, ANSWER);
        let dir = TempDir::new();
        let (cert, key) = client_ca.leaf(&[], false);
        dir.write("certs/psb-ca.pem", &server_ca.pem);
        dir.write("certs/gateway-psb.pem", &cert);
        dir.write("certs/gateway-psb.key", &key);
        let (rogue_cert, rogue_key) = Ca::new("Rogue CA").leaf(&[], false);
        dir.write("certs/rogue.pem", &rogue_cert);
        dir.write("certs/rogue.key", &rogue_key);
        Setup { dir, department }
    }

    #[tokio::test]
    async fn mtls_with_the_department_ca_fetches_a_record() {
        let Setup { dir, department } = setup();
        let tls = "tls: { ca_bundle: certs/psb-ca.pem, client_cert: certs/gateway-psb.pem, client_key: certs/gateway-psb.key }";
        let connector = connector(department.port, tls, &dir).unwrap();
        let fetched = connector
            .fetch(
                "person_by_id",
                "110101199003070012",
                &FetchContext::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            fetched.record,
            serde_json::json!({"id_number": "110101199003070012", "name": "张三"})
        );
        assert_eq!(department.served.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_a_client_certificate_the_department_refuses() {
        let Setup { dir, department } = setup();
        for tls in [
            "tls: { ca_bundle: certs/psb-ca.pem }",
            "tls: { ca_bundle: certs/psb-ca.pem, client_cert: certs/rogue.pem, client_key: certs/rogue.key }",
        ] {
            let connector = connector(department.port, tls, &dir).unwrap();
            let result = connector
                .fetch(
                    "person_by_id",
                    "110101199003070012",
                    &FetchContext::default(),
                )
                .await;
            assert_eq!(result, Err(FetchError::Unavailable), "{tls}");
        }
        assert_eq!(department.served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_public_web_roots_do_not_trust_a_department_ca() {
        let Setup { dir, department } = setup();
        for tls in [
            "",
            "tls: { client_cert: certs/gateway-psb.pem, client_key: certs/gateway-psb.key }",
        ] {
            let connector = connector(department.port, tls, &dir).unwrap();
            let result = connector
                .fetch(
                    "person_by_id",
                    "110101199003070012",
                    &FetchContext::default(),
                )
                .await;
            assert_eq!(result, Err(FetchError::Unavailable), "{tls:?}");
        }
        assert_eq!(department.served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_missing_file_fails_the_build_naming_it() {
        let Setup { dir, department } = setup();
        let err =
            connector(department.port, "tls: { ca_bundle: certs/nope.pem }", &dir).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("TLS settings: tls.ca_bundle: "), "{text}");
        assert!(text.contains("nope.pem"), "{text}");
    }
}

// The definition's own checks refuse such a definition first; a connector built
// without them still fails at build, naming the operation, not on every call.
#[test]
fn an_operation_that_cannot_be_called_fails_the_build_naming_it() {
    let text = crate::definition::tests::MINIMAL.replace("http://127.0.0.1:1", "http://exa mple");
    let def = ConnectorDef::from_yaml(&text).unwrap();
    let Err(err) = HttpConnector::new(Arc::new(def), Path::new("."), &FileRoots::anywhere()) else {
        panic!("an unparseable URL was accepted");
    };
    let message = err.to_string();
    assert!(
        message.starts_with("operation `person_by_id`: the URL is not valid"),
        "{message}"
    );
}

#[test]
fn the_subject_fills_every_placeholder_and_nothing_else() {
    let body = json!({"sfzh": "$subject", "ywlx": "query", "list": ["$subject", 1]});
    assert_eq!(
        fill_subject(&body, "K"),
        json!({"sfzh": "K", "ywlx": "query", "list": ["K", 1]})
    );
}

// The body written for each call from the template prepared at build is the JSON of
// the template with the subject filled in, whatever the key holds and whatever else
// the template says (a key named like the placeholder, text like the stand-in).
#[test]
fn the_prepared_body_is_the_template_with_the_subject_filled_in() {
    let template = json!({
        "sfzh": "$subject",
        "$subject": "subject",
        "note": "subject_ \"$subject\"",
        "list": ["$subject", 1, {"k": "$subject"}],
    });
    let prepared = BodyTemplate::new(&template).unwrap();
    for key in [
        "110101199003070012",
        "a\"b\\c",
        "subject",
        "subject_",
        "",
        "\u{2028}",
    ] {
        let written: Value = serde_json::from_slice(&prepared.fill(key).unwrap()).unwrap();
        assert_eq!(written, fill_subject(&template, key), "{key:?}");
    }
    let none = BodyTemplate::new(&json!({"ywlx": "query"})).unwrap();
    assert_eq!(none.fill("K").unwrap(), br#"{"ywlx":"query"}"#);
}

mod deadline {
    use super::*;

    fn connector(base_url: &str) -> HttpConnector {
        let text = crate::definition::tests::MINIMAL.replace("http://127.0.0.1:1", base_url)
            + "timeouts: { connect_ms: 1000, total_ms: 600000 }\n";
        let def = ConnectorDef::from_yaml(&text).unwrap();
        HttpConnector::new(Arc::new(def), Path::new("."), &FileRoots::anywhere()).unwrap()
    }

    #[tokio::test]
    async fn a_deadline_already_past_is_a_timeout_without_a_call() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let context = FetchContext {
            deadline: Some(Instant::now()),
            ..FetchContext::default()
        };
        let result = connector(&format!("http://127.0.0.1:{port}"))
            .fetch("person_by_id", "110101199003070012", &context)
            .await;
        assert_eq!(result, Err(FetchError::Timeout));
        assert!(listener.accept().is_err(), "the department was called");
    }

    // The department accepts the connection and never answers; the connector's own
    // limit is ten minutes, so only the caller's deadline ends the call.
    #[tokio::test]
    async fn the_callers_deadline_ends_a_call_the_department_never_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let context = FetchContext {
            deadline: Some(Instant::now() + Duration::from_millis(50)),
            request_id: Some("req-1".to_owned()),
            trace_context: None,
        };
        let connector = connector(&format!("http://127.0.0.1:{port}"));
        let call = connector.fetch("person_by_id", "110101199003070012", &context);
        let result = tokio::time::timeout(Duration::from_secs(60), call).await;
        assert_eq!(result, Ok(Err(FetchError::Timeout)));
    }
}
