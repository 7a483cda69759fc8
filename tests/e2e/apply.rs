//! `gateway apply` and `gateway export` as the real binary: a dry run commits nothing,
//! an apply commits and is recorded in the audit log, applying again changes nothing,
//! edits make new versions and removals remove, an invalid directory is refused with
//! its problems named by file, purposes come from an applied `purposes.yaml` (a code
//! the county already defines is refused), an export applied to a fresh data
//! directory reproduces the registry, and a running gateway picks an apply up without
//! a restart.

use crate::helpers::Edit as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway::registry::{
    Change, ConnectorVersion, GrantRecord, Origin, Registry, Snapshot, SqliteRegistry,
};
use serde_json::Value;
use tokio::process::Command;

use crate::binary::{Running, url_in, write_county};
use crate::helpers::client;

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

const JISHENG: &str = include_str!("../../county/connectors/jisheng.yaml");
const FERTILITY: &str = include_str!("../../schemas/jisheng/fertility.schema.json");
const TITLE: &str = "title: 婚育与生育登记信息";

/// A grant on the applied connector.
const POLICY: &str = r#"grants:
  - id: jisheng2-birth-registration
    description: 生育登记核对婚姻状况。
    consumers: { roles: [clerk, township_lead], counties: ["139901"] }
    connector: jisheng2
    operations: [fertility_by_id]
    purposes: [birth_registration]
    fields:
      name: keep
      marriage_date: keep
    legal_basis: 《中华人民共和国人口与计划生育法》
    approver: 县卫健委人口家庭科 (county-hc)
"#;

/// The demo county in a temporary directory, with its data directory beside it.
struct County {
    dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

impl County {
    fn new() -> County {
        let dir = tempfile::tempdir().expect("temp dir");
        write_county(dir.path(), |_, text| text.to_owned());
        let config = dir.path().join("county/gateway.yaml");
        let data = dir.path().join("data");
        County { dir, config, data }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `gateway COMMAND --config … --data-dir DATA ARGS…`.
    async fn run(&self, command: &str, data: &Path, args: &[&Path]) -> Out {
        let out = Command::new(BINARY)
            .arg(command)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env("GATEWAY_LOG", "warn")
            .output()
            .await
            .expect("the binary runs");
        Out {
            code: out.status.code().expect("an exit code"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn apply(&self, dir: &Path, dry_run: bool) -> Out {
        let mut args = vec![Path::new("-f"), dir];
        if dry_run {
            args.push(Path::new("--dry-run"));
        }
        self.run("apply", &self.data, &args).await
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn has_line(&self, line: &str) -> bool {
        self.stdout.lines().any(|l| l == line)
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let target = dir.join(path);
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::write(target, text).expect("write");
}

/// An apply directory with `jisheng2` (the births connector under another id), its
/// schema, and a policy file granting on it.
fn apply_dir(dir: &Path) {
    write(
        dir,
        "connectors/jisheng2.yaml",
        &JISHENG.replacen("id: jisheng\n", "id: jisheng2\n", 1),
    );
    write(dir, "schemas/jisheng/fertility.schema.json", FERTILITY);
    write(dir, "policies/jisheng2.yaml", POLICY);
}

async fn snapshot(data: &Path) -> Snapshot {
    let registry = SqliteRegistry::open(data).expect("the registry opens");
    registry.snapshot().await.expect("a snapshot")
}

/// The operations of the admin events in the data directory's audit log.
async fn admin_operations(data: &Path) -> Vec<String> {
    gateway::audit::segments::wait_indexed(data, Duration::from_secs(30))
        .await
        .expect("the index holds every recorded event");
    let db = rusqlite::Connection::open(data.join("audit.db")).expect("the audit db");
    let mut statement = db
        .prepare("SELECT body FROM events ORDER BY seq")
        .expect("query");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .map(|body| serde_json::from_str::<Value>(&body.expect("row")).expect("JSON"))
        .filter(|event| event["kind"] == "admin")
        .filter_map(|event| event["operation"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn apply_previews_checks_commits_and_keeps_the_registry_in_step() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);

    // A dry run shows what would be added, checks it, and commits nothing — twice.
    let dry = county.apply(&dir, true).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.has_line("+ connector jisheng2 (v1)"), "{dry:?}");
    assert!(dry.has_line("+ policy policies/jisheng2.yaml"), "{dry:?}");
    assert!(
        dry.has_line("2 to add, 0 to change, 0 to remove"),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("valid: "), "{dry:?}");
    assert!(dry.has_line("dry run: nothing committed"), "{dry:?}");
    let again = county.apply(&dir, true).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout, dry.stdout);
    let export = county
        .run("export", &county.data, &[&county.path("export-empty")])
        .await;
    assert_eq!(export.code, 0, "{export:?}");
    assert!(
        export.has_line("nothing registered (registry revision 0)"),
        "{export:?}"
    );
    assert_eq!(snapshot(&county.data).await, Snapshot::default());

    // The apply commits, and the audit log records it first.
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(applied.has_line("+ connector jisheng2 (v1)"), "{applied:?}");
    assert!(
        applied.has_line("applied: registry revision 1"),
        "{applied:?}"
    );
    let registry = snapshot(&county.data).await;
    assert_eq!(registry.revision, 1);
    let jisheng2 = &registry.connectors["jisheng2"];
    assert!(jisheng2.enabled);
    assert_eq!(jisheng2.current.version, 1);
    assert_eq!(jisheng2.current.department, "county-hc");
    assert_eq!(jisheng2.current.created_by, "gateway apply");
    assert_eq!(
        jisheng2.current.origin,
        Origin::File {
            path: "connectors/jisheng2.yaml".into()
        }
    );
    assert_eq!(
        jisheng2.current.schemas["jisheng/fertility.schema.json"],
        FERTILITY
    );
    assert_eq!(registry.policy_files["policies/jisheng2.yaml"].text, POLICY);
    assert_eq!(
        admin_operations(&county.data).await,
        ["registry.apply +2 ~0 -0 rev=1"]
    );

    // Applying the same directory again changes nothing.
    let same = county.apply(&dir, false).await;
    assert_eq!(same.code, 0, "{same:?}");
    assert!(
        same.has_line("= connector jisheng2 v1 (unchanged)"),
        "{same:?}"
    );
    assert!(
        same.has_line("no changes (registry revision 1)"),
        "{same:?}"
    );
    assert_eq!(snapshot(&county.data).await.revision, 1);

    // A new title is a new version, shown with its lines.
    let connector = dir.join("connectors/jisheng2.yaml");
    let text = std::fs::read_to_string(&connector).expect("read");
    std::fs::write(&connector, text.edit(TITLE, "title: 婚育信息（第二版）")).expect("write");
    let changed = county.apply(&dir, false).await;
    assert_eq!(changed.code, 0, "{changed:?}");
    assert!(
        changed.has_line("~ connector jisheng2 v1 → v2"),
        "{changed:?}"
    );
    assert!(changed.has_line(&format!("    -{TITLE}")), "{changed:?}");
    assert!(
        changed.has_line("    +title: 婚育信息（第二版）"),
        "{changed:?}"
    );
    assert!(
        changed.has_line("= policy policies/jisheng2.yaml (unchanged)"),
        "{changed:?}"
    );
    assert!(
        changed.has_line("0 to add, 1 to change, 0 to remove"),
        "{changed:?}"
    );
    let registry = snapshot(&county.data).await;
    assert_eq!(registry.revision, 2);
    assert_eq!(registry.connectors["jisheng2"].current.version, 2);

    // A policy file taken out of the directory is taken out of the registry.
    std::fs::remove_file(dir.join("policies/jisheng2.yaml")).expect("rm");
    let removed = county.apply(&dir, false).await;
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(
        removed.has_line("- policy policies/jisheng2.yaml"),
        "{removed:?}"
    );
    let registry = snapshot(&county.data).await;
    assert_eq!(registry.revision, 3);
    assert!(registry.policy_files.is_empty());

    // A grant of a field classified never: refused, the problem named by its file,
    // nothing committed and nothing recorded.
    write(
        &dir,
        "policies/bad.yaml",
        &POLICY
            .edit("jisheng2-birth-registration", "bad-grant")
            .edit("marriage_date: keep", "hereditary_disease: keep"),
    );
    let invalid = county.apply(&dir, false).await;
    assert_eq!(invalid.code, 1, "{invalid:?}");
    assert!(
        invalid.has_line("+ policy policies/bad.yaml"),
        "{invalid:?}"
    );
    let bad = dir.join("policies/bad.yaml");
    assert!(
        invalid.stderr.lines().any(|l| l.contains(&format!(
            "{}: grants[0].fields.hereditary_disease",
            bad.display()
        ))),
        "{invalid:?}"
    );
    assert!(invalid.stdout.contains("nothing committed"), "{invalid:?}");
    let dry = county.apply(&dir, true).await;
    assert_eq!(dry.code, 1, "{dry:?}");
    assert_eq!(snapshot(&county.data).await.revision, 3);
    assert_eq!(
        admin_operations(&county.data).await,
        [
            "registry.apply +2 ~0 -0 rev=1",
            "registry.apply +0 ~1 -0 rev=2",
            "registry.apply +0 ~0 -1 rev=3",
        ]
    );

    // A connector that does not parse stops the apply before anything else.
    write(&dir, "connectors/broken.yaml", "id: [");
    let broken = county.apply(&dir, false).await;
    assert_eq!(broken.code, 1, "{broken:?}");
    let broken_file = dir.join("connectors/broken.yaml");
    assert!(
        broken.stderr.contains(&broken_file.display().to_string()),
        "{broken:?}"
    );
    assert!(!broken.stdout.contains("+ policy"), "{broken:?}");
    assert_eq!(snapshot(&county.data).await.revision, 3);

    // Removing the connector file removes the connector.
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let emptied = county.apply(&dir, false).await;
    assert_eq!(emptied.code, 0, "{emptied:?}");
    assert!(emptied.has_line("- connector jisheng2 (v2)"), "{emptied:?}");
    assert!(snapshot(&county.data).await.connectors.is_empty());

    let verify = Command::new(BINARY)
        .args(["audit", "verify", "--data-dir"])
        .arg(&county.data)
        .output()
        .await
        .expect("verify runs");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A connector made through the API: `jisheng3`, disabled.
/// A purpose the county's catalog does not define.
const PURPOSES: &str = "purposes:
  - code: test_purpose
    name: 测试事项
    name_en: Test purpose
    legal_basis: 《测试条例》
";

#[tokio::test]
async fn applied_purposes_extend_the_catalog_and_a_duplicate_code_is_refused() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);
    write(&dir, "purposes.yaml", PURPOSES);
    write(
        &dir,
        "policies/jisheng2.yaml",
        &POLICY.edit("purposes: [birth_registration]", "purposes: [test_purpose]"),
    );
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(applied.has_line("+ purposes purposes.yaml"), "{applied:?}");
    assert!(
        applied.has_line("3 to add, 0 to change, 0 to remove"),
        "{applied:?}"
    );
    assert!(
        applied.has_line("applied: registry revision 1"),
        "{applied:?}"
    );
    assert_eq!(
        snapshot(&county.data).await.purpose_files["purposes.yaml"].text,
        PURPOSES
    );

    let again = county.apply(&dir, false).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.has_line("= purposes purposes.yaml (unchanged)"),
        "{again:?}"
    );
    assert!(
        again.has_line("no changes (registry revision 1)"),
        "{again:?}"
    );

    let out = county.path("export");
    let export = county.run("export", &county.data, &[&out]).await;
    assert_eq!(export.code, 0, "{export:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("purposes.yaml")).expect("exported"),
        PURPOSES
    );

    // A code the county's catalog defines is refused, named in the applied file.
    let duplicate = county.path("duplicate");
    write(
        &duplicate,
        "purposes.yaml",
        &format!(
            "{PURPOSES}  - code: birth_registration\n    name: 生育登记\n    \
                  name_en: Birth registration\n    legal_basis: 《人口与计划生育法》\n"
        ),
    );
    let refused = county.apply(&duplicate, false).await;
    assert_ne!(refused.code, 0, "{refused:?}");
    let expected = format!(
        "{}: purposes[1].code: purpose `birth_registration` is already defined in",
        duplicate.join("purposes.yaml").display()
    );
    assert!(refused.stderr.contains(&expected), "{refused:?}");
    assert!(
        refused.stderr.contains("county/purposes.yaml"),
        "{refused:?}"
    );
    assert!(
        refused.has_line("invalid: nothing committed"),
        "{refused:?}"
    );
    assert_eq!(snapshot(&county.data).await.revision, 1);
}

fn api_connector() -> ConnectorVersion {
    ConnectorVersion {
        id: "jisheng3".to_owned(),
        version: 0,
        department: "county-hc".to_owned(),
        definition: JISHENG.replacen("id: jisheng\n", "id: jisheng3\n", 1),
        schemas: BTreeMap::from([(
            "jisheng/fertility.schema.json".to_owned(),
            FERTILITY.to_owned(),
        )]),
        origin: Origin::Api,
        created_at: "2026-03-01T08:00:00Z".to_owned(),
        created_by: "hc-admin".to_owned(),
        review: None,
        activated_at: None,
    }
}

/// A grant made through the API, on the repository's household connector.
fn api_grant() -> GrantRecord {
    GrantRecord {
        id: "ar-0001".to_owned(),
        department: "county-psb".to_owned(),
        connector: "hukou".to_owned(),
        township: "139901101".to_owned(),
        policy: r#"grants:
  - id: ar-0001
    description: 东岭镇核对高龄老人。
    consumers: { roles: [clerk], townships: ["139901101"] }
    connector: hukou
    operations: [person_by_id]
    purposes: [elderly_allowance]
    fields:
      name: name
    legal_basis: 《中华人民共和国老年人权益保障法》
    approver: 县公安局户政大队 (county-psb)
"#
        .to_owned(),
        request_id: Some("rq-0001".to_owned()),
        created_at: "2026-03-02T08:00:00Z".to_owned(),
        created_by: "psb-admin".to_owned(),
        revoked: None,
    }
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                files.insert(
                    relative.to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).expect("read"),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

#[tokio::test]
async fn an_export_applied_to_a_fresh_data_dir_reproduces_the_registry() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    // What the admin API would add: a connector (then disabled) and a grant.
    let registry = SqliteRegistry::open(&county.data).expect("open");
    let revision = registry.revision().await.expect("revision");
    registry
        .commit(
            revision,
            vec![
                Change::PutConnector(api_connector()),
                Change::SetConnectorEnabled {
                    id: "jisheng3".into(),
                    enabled: false,
                },
                Change::AddGrant(api_grant()),
            ],
        )
        .await
        .expect("commit");

    // Applying a file connector with the API connector's id is refused.
    let takeover = county.path("takeover");
    write(
        &takeover,
        "connectors/jisheng3.yaml",
        &api_connector().definition,
    );
    write(
        &takeover,
        "schemas/jisheng/fertility.schema.json",
        FERTILITY,
    );
    let refused = county.apply(&takeover, false).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("connector `jisheng3` was made through the API"),
        "{refused:?}"
    );
    assert_eq!(
        registry.revision().await.expect("revision"),
        revision + 1,
        "nothing committed"
    );

    let out = county.path("export");
    let exported = county.run("export", &county.data, &[&out]).await;
    assert_eq!(exported.code, 0, "{exported:?}");
    for line in [
        "wrote connectors/jisheng2.yaml",
        "wrote connectors/jisheng3.yaml",
        "wrote schemas/jisheng/fertility.schema.json",
        "wrote policies/jisheng2.yaml",
        "wrote policies/api-grants.yaml",
    ] {
        assert!(
            exported.stdout.lines().any(|l| l.starts_with(line)),
            "{line} in {exported:?}"
        );
    }
    assert!(
        exported
            .stdout
            .lines()
            .any(|l| l.starts_with("disabled in the registry") && l.ends_with("jisheng3")),
        "{exported:?}"
    );
    // Not into a directory that holds something, unless forced.
    let again = county.run("export", &county.data, &[&out]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");
    let forced = county
        .run("export", &county.data, &[&out, Path::new("--force")])
        .await;
    assert_eq!(forced.code, 0, "{forced:?}");

    // Applied to a fresh data directory, the export makes the same connectors and
    // policies (the API's grants as a policy file), and exports back the same files.
    let fresh = county.path("fresh-data");
    let reapplied = county.run("apply", &fresh, &[Path::new("-f"), &out]).await;
    assert_eq!(reapplied.code, 0, "{reapplied:?}");
    assert!(
        reapplied.has_line("4 to add, 0 to change, 0 to remove"),
        "{reapplied:?}"
    );
    let before = snapshot(&county.data).await;
    let after = snapshot(&fresh).await;
    assert_eq!(
        after.connectors.keys().collect::<Vec<_>>(),
        before.connectors.keys().collect::<Vec<_>>()
    );
    for (id, connector) in &before.connectors {
        assert!(
            after.connectors[id]
                .current
                .same_content(&connector.current),
            "{id}"
        );
    }
    assert_eq!(
        after.policy_files.keys().collect::<Vec<_>>(),
        ["policies/api-grants.yaml", "policies/jisheng2.yaml"]
    );
    assert_eq!(
        after.policy_files["policies/jisheng2.yaml"],
        before.policy_files["policies/jisheng2.yaml"]
    );
    let out2 = county.path("export2");
    let exported2 = county.run("export", &fresh, &[&out2]).await;
    assert_eq!(exported2.code, 0, "{exported2:?}");
    assert_eq!(tree(&out2), tree(&out));
    // …and applying it once more to the fresh directory changes nothing.
    let same = county.run("apply", &fresh, &[Path::new("-f"), &out2]).await;
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains("no changes"), "{same:?}");
}

#[tokio::test]
async fn a_running_gateway_picks_up_an_apply_without_a_restart() {
    let county = County::new();
    let keygen = Command::new(BINARY)
        .args(["token", "keygen", "--out"])
        .arg(county.data.join("keys"))
        .output()
        .await
        .expect("keygen runs");
    assert!(keygen.status.success(), "{keygen:?}");
    let mut serve = Running::spawn(&[
        "serve",
        "--config",
        county.config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        county.data.to_str().expect("utf-8"),
    ]);
    let gateway = url_in(&serve.line(|l| l.contains("listening on")).await);
    let http = client();
    // Polls /readyz until `done` holds for its answer (at most 30 s).
    let ready_until = |done: fn(&Value) -> bool| {
        let http = http.clone();
        let url = format!("{gateway}/readyz");
        async move {
            let wait = async {
                loop {
                    if let Ok(reply) = http.get(&url).send().await
                        && reply.status() == 200
                        && let Ok(body) = reply.json::<Value>().await
                        && done(&body)
                    {
                        return body;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), wait)
                .await
                .expect("readyz within 30 s")
        }
    };
    let before = ready_until(|body| body["connectors"] == 4).await;

    let dir = county.path("apply");
    apply_dir(&dir);
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    let after = ready_until(|body| body["connectors"] == 5).await;
    assert_ne!(after["config_version"], before["config_version"]);

    // The reload is recorded in the audit log after the apply that caused it.
    let version = after["config_version"].as_str().expect("a version");
    let reload = format!("config.load {version}");
    let recorded = async {
        loop {
            let operations = admin_operations(&county.data).await;
            if let Some(apply_at) = operations
                .iter()
                .position(|op| op == "registry.apply +2 ~0 -0 rev=1")
                && operations[apply_at..].contains(&reload)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), recorded)
        .await
        .expect("the apply and the reload in the audit log within 30 s");
    serve.terminate().await;
}

#[tokio::test]
async fn policy_explain_with_the_data_dir_explains_what_serve_enforces() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let claims = county.path("clerk.yaml");
    std::fs::write(
        &claims,
        "sub: li.clerk\nroles: [clerk]\ntownship: \"139901101\"\n",
    )
    .expect("write the claims");
    let explain = |data_dir: Option<&Path>| {
        let mut command = Command::new(BINARY);
        command
            .args(["policy", "explain", "--config"])
            .arg(&county.config)
            .arg("--claims")
            .arg(&claims)
            .args(["--connector", "jisheng2", "--operation", "fertility_by_id"])
            .args(["--purpose", "birth_registration"]);
        if let Some(data_dir) = data_dir {
            command.arg("--data-dir").arg(data_dir);
        }
        command.output()
    };
    // The files alone know nothing of the applied connector and its grant.
    let files_only = explain(None).await.expect("explain runs");
    assert!(!files_only.status.success());
    // With the data directory: the applied grant releases the marriage date.
    let served = explain(Some(&county.data)).await.expect("explain runs");
    let text = String::from_utf8_lossy(&served.stdout);
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(text.contains("jisheng2-birth-registration"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("marriage_date") && l.contains("jisheng2-birth-registration")),
        "{text}"
    );
    // A directory without a registry is named, not created.
    let empty = county.path("nothing-here");
    let missing = explain(Some(&empty)).await.expect("explain runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no registry"));
    assert!(!empty.exists());
}

#[tokio::test]
async fn a_connector_with_only_api_drafts_is_not_taken_over_by_a_file() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);
    let applied = county.apply(&dir, false).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    // A department saved a draft of a new connector; none of it is in force yet.
    let registry = SqliteRegistry::open(&county.data).expect("open");
    let revision = registry.revision().await.expect("revision");
    registry
        .commit(revision, vec![Change::SaveDraft(api_connector())])
        .await
        .expect("commit");
    let takeover = county.path("takeover");
    write(
        &takeover,
        "connectors/jisheng3.yaml",
        &api_connector().definition,
    );
    write(
        &takeover,
        "schemas/jisheng/fertility.schema.json",
        FERTILITY,
    );
    let refused = county.apply(&takeover, false).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("connector `jisheng3` has drafts made through the API"),
        "{refused:?}"
    );
    assert_eq!(
        registry.revision().await.expect("revision"),
        revision + 1,
        "nothing committed"
    );
}

#[tokio::test]
async fn an_apply_records_who_ran_it() {
    let county = County::new();
    let dir = county.path("apply");
    apply_dir(&dir);
    let by = county
        .run(
            "apply",
            &county.data,
            &[
                Path::new("-f"),
                &dir,
                Path::new("--by"),
                Path::new("wang.ops"),
            ],
        )
        .await;
    assert_eq!(by.code, 0, "{}", by.stderr);
    gateway::audit::segments::wait_indexed(&county.data, Duration::from_secs(30))
        .await
        .expect("the index holds every recorded event");
    let db = rusqlite::Connection::open(county.data.join("audit.db")).expect("the audit db");
    let users: Vec<(String, Option<String>)> = db
        .prepare("SELECT body FROM events ORDER BY seq")
        .expect("query")
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .map(|body| serde_json::from_str::<Value>(&body.expect("row")).expect("JSON"))
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("registry.apply"))
        })
        .map(|e| {
            (
                e["caller"]["user"].as_str().unwrap_or_default().to_owned(),
                e["caller"]["app"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        users,
        vec![("wang.ops".to_owned(), Some("gateway apply".to_owned()))]
    );
}
