//! Files a configuration names are input too (issue 8, finding 2): a connector whose
//! TLS settings name `/dev/zero`, a FIFO or a file elsewhere on the machine is refused
//! at once — by `gateway check` and by registration through the API — without reading
//! forever, hanging, or saying whether such a path exists.

use crate::helpers::Edit as _;
use std::path::Path;

use gateway::auth::Role;
use serde_json::{Value, json};

use crate::binary::{check, write_county};
use crate::helpers::{Reply, TestGateway, client, county_file};

/// The 户籍 connector's file with a `tls` section naming `ca_bundle` and an https
/// base URL (listed for its department in `gateway.yaml` by the caller).
fn with_bundle(text: &str, base_url: &str, bundle: &str) -> String {
    text.edit(
        "base_url: http://127.0.0.1:18101",
        &format!("base_url: {base_url}\ntls: {{ ca_bundle: \"{bundle}\" }}"),
    )
}

#[tokio::test]
async fn check_refuses_a_device_a_fifo_and_a_file_outside_the_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("county/certs/psb-ca.pem");
    let cases = [
        ("/dev/zero", "not allowed"),
        ("/etc/passwd", "not allowed"),
        ("../../outside.pem", "not allowed"),
        ("../certs/psb-ca.pem", "is not a regular file"),
    ];
    std::fs::write(dir.path().join("outside.pem"), "x").expect("write");
    for (bundle, expected) in cases {
        write_county(dir.path(), |path, text| match path {
            "county/connectors/hukou.yaml" => {
                with_bundle(text, "https://psb.county.example:8443", bundle)
            }
            "county/gateway.yaml" => text.edit(
                "upstreams: [http://127.0.0.1:18101]",
                "upstreams: [http://127.0.0.1:18101, https://psb.county.example:8443]",
            ),
            _ => text.to_owned(),
        });
        if !fifo.exists() {
            std::fs::create_dir_all(fifo.parent().expect("parent")).expect("mkdir");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo runs");
            assert!(made.success());
        }
        let config = dir.path().join("county/gateway.yaml");
        let (code, _stdout, stderr) = check(&config).await;
        assert_eq!(code, 1, "{bundle}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("tls.ca_bundle"))
            .unwrap_or_else(|| panic!("{bundle}: the bundle is named: {stderr}"));
        assert!(line.contains(expected), "{bundle}: {line}");
        if expected == "not allowed" {
            // Whether the path exists is not told, nor is the path repeated.
            assert!(!line.contains(bundle.trim_start_matches("../")), "{line}");
        }
    }
}

#[tokio::test]
async fn registration_with_hostile_tls_files_is_refused_and_names_no_path() {
    let gw = TestGateway::start_with(|path, text| {
        if path == "county/gateway.yaml" {
            text.edit(
                "upstreams: [http://127.0.0.1:18101]",
                "upstreams: [http://127.0.0.1:18101, https://psb.county.example:8443]",
            )
        } else {
            text.to_owned()
        }
    })
    .await;
    let police = gw.token(Role::DeptAdmin, None);
    let schemas = json!({
        "hukou/person.schema.json":
            serde_json::from_str::<Value>(county_file("schemas/hukou/person.schema.json")).expect("json"),
        "hukou/household.schema.json":
            serde_json::from_str::<Value>(county_file("schemas/hukou/household.schema.json")).expect("json"),
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("fifo.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let fifo = fifo.display().to_string();
    for bundle in [
        "/dev/zero",
        "/proc/self/environ",
        fifo.as_str(),
        "/no/such/file.pem",
    ] {
        let definition = with_bundle(
            &county_file("county/connectors/hukou.yaml").edit("id: hukou\n", "id: hukou2\n"),
            "https://psb.county.example:8443",
            bundle,
        );
        let body = json!({"definition": definition, "schemas": schemas});
        let reply = Reply::read(
            client()
                .put(gw.url("/v1/admin/connectors/hukou2"))
                .bearer_auth(&police)
                .json(&body)
                .send()
                .await
                .expect("an answer"),
        )
        .await;
        reply.assert_problem(422, "invalid-config");
        assert!(
            reply.text.contains("tls.ca_bundle: not allowed"),
            "{bundle}: {}",
            reply.text
        );
        assert!(!reply.text.contains(bundle), "{bundle}: {}", reply.text);
    }
    // The gateway still answers.
    let health = gw.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert!(Path::new(&fifo).exists());
}
