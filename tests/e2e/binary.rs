//! The real `gateway` binary: `check` exit codes and its all-problems report, the demo
//! from a fresh data directory following its own printed hint, and `serve` against
//! `simulate` as two processes.

use crate::helpers::Edit as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gateway::county::COUNTY_FILES;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::helpers::{TOWNSHIP, client, lookup, post_json, sample};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

/// A running `gateway` process whose stdout is read line by line.
pub(crate) struct Running {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: JoinHandle<String>,
}

impl Running {
    pub(crate) fn spawn(args: &[&str]) -> Running {
        Running::spawn_with_env(args, &[])
    }

    /// Like [`Running::spawn`], with `env` set in the process's environment.
    pub(crate) fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BINARY)
            .args(args)
            .envs(env.iter().copied())
            .env("GATEWAY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Running {
            child,
            stdout: rx,
            stderr,
        }
    }

    /// `gateway demo` on a free port with `data_dir` and the tests' population size.
    pub(crate) fn demo(data_dir: &Path) -> Running {
        let data_dir = data_dir.to_str().expect("utf-8");
        let args = ["demo", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        Running::spawn(&[&args[..], &["--residents", "2000"]].concat())
    }

    /// Reads stdout until a line satisfies `pred`; fails if the process ends first or
    /// a minute passes (a debug build generating a population takes a few seconds).
    pub(crate) async fn line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let wait = async {
            while let Some(line) = self.stdout.recv().await {
                if pred(&line) {
                    return line;
                }
            }
            let stderr = (&mut self.stderr).await.unwrap_or_default();
            panic!("the process ended before printing the expected line; its stderr:\n{stderr}");
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the expected line within a minute")
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM) and waits for it; returns its stderr.
    pub(crate) async fn terminate(mut self) -> String {
        let pid = self.child.id().expect("still running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("it stops within 30 s")
            .expect("wait");
        assert!(status.success(), "a clean exit: {status}");
        self.stderr.await.expect("stderr collected")
    }

    pub(crate) async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        self.stderr.await.expect("stderr collected")
    }
}

pub(crate) fn url_in(line: &str) -> String {
    let start = line
        .find("https://")
        .or_else(|| line.find("http://"))
        .expect("a URL in the line");
    line[start..]
        .split_whitespace()
        .next()
        .expect("url")
        .to_owned()
}

/// `gateway simulate` on free ports with the tests' population (and `extra`
/// arguments), and each department's address by its id.
pub(crate) async fn simulate(
    extra: &[&str],
) -> (Running, std::collections::BTreeMap<String, String>) {
    let ports = [
        "simulate",
        "--hukou",
        "127.0.0.1:0",
        "--shebao",
        "127.0.0.1:0",
        "--jisheng",
        "127.0.0.1:0",
        "--residents",
        "2000",
    ];
    let mut sim = Running::spawn(&[&ports[..], extra].concat());
    let mut urls = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let line = sim.line(|l| l.contains("http://")).await;
        let id = line
            .split_whitespace()
            .next()
            .expect("department id")
            .to_owned();
        urls.insert(id, url_in(&line));
    }
    (sim, urls)
}

/// A county file pointed at the simulated departments at `urls` (by id): a
/// connector's base URL, and its department's upstream in `gateway.yaml`.
pub(crate) fn at_departments(
    path: &str,
    text: &str,
    urls: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut text = text.to_owned();
    for (id, url) in urls {
        if path == format!("county/connectors/{id}.yaml") || path == "county/gateway.yaml" {
            let port = match id.as_str() {
                "hukou" => "18101",
                "shebao" => "18102",
                _ => "18103",
            };
            text = text.replace(&format!("http://127.0.0.1:{port}"), url);
        }
    }
    text
}

/// Writes the repository's county files under `dir`, edited by `edit`.
pub(crate) fn write_county(dir: &Path, edit: impl Fn(&str, &str) -> String) {
    for (path, text) in COUNTY_FILES {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(target, edit(path, text)).expect("write");
    }
}

/// The civil-affairs department's front database where the county's gateway.yaml
/// declares it (`data/front/minzheng.db` beside `county/` in `dir`), as the demo
/// writes it: `gateway check` runs every front-database statement once.
pub(crate) async fn write_front_database(dir: &Path) {
    gateway::demo::write_front_database(crate::helpers::population().clone(), &dir.join("data"))
        .await
        .expect("the front database is written");
}

pub(crate) async fn check(config: &Path) -> (i32, String, String) {
    let out = Command::new(BINARY)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .await
        .expect("check runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gateway token mint` with the demo issuer's key in `keys`: a token of a clerk of
/// [`TOWNSHIP`] (`clerk-1`).
pub(crate) async fn mint_clerk(keys: &Path) -> String {
    let minted = Command::new(BINARY)
        .args(["token", "mint", "--key"])
        .arg(keys.join("county-demo-idp.pem"))
        .args([
            "--sub",
            "clerk-1",
            "--role",
            "clerk",
            "--township",
            TOWNSHIP,
        ])
        .output()
        .await
        .expect("mint runs");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    String::from_utf8_lossy(&minted.stdout).trim().to_owned()
}

/// `gateway token keygen --out DIR`: the demo issuer's key pair in DIR.
pub(crate) async fn keygen(dir: &Path) {
    let out = Command::new(BINARY)
        .args(["token", "keygen", "--out"])
        .arg(dir)
        .output()
        .await
        .expect("keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn check_accepts_the_repository_county_once_its_issuer_key_and_front_database_exist() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |_, text| text.to_owned());
    let config = dir.path().join("county/gateway.yaml");
    keygen(&dir.path().join("data/keys")).await;
    // Without the civil-affairs front database, its connector's statements cannot run.
    let (code, _, stderr) = check(&config).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("connector `minzheng`, operation `dibao_by_id`"),
        "{stderr}"
    );
    write_front_database(dir.path()).await;
    let (code, stdout, stderr) = check(&config).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("4 connectors"), "{stdout}");
    assert!(
        stdout.contains("front databases: 4 statements run"),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_warns_about_a_grant_that_shows_every_township_everyone() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The births grant without its jurisdiction: a clerk would see every family.
    write_county(dir.path(), |path, text| match path {
        "policies/jisheng.yaml" => text.replacen("    jurisdiction: township\n", "", 1),
        _ => text.to_owned(),
    });
    let config = dir.path().join("county/gateway.yaml");
    keygen(&dir.path().join("data/keys")).await;
    write_front_database(dir.path()).await;
    let (code, stdout, stderr) = check(&config).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("neither `jurisdiction: township` nor a row condition"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains("jisheng-birth-registration"), "{stderr}");
    // The repository's own county has none.
    let clean = tempfile::tempdir().expect("temp dir");
    write_county(clean.path(), |_, text| text.to_owned());
    keygen(&clean.path().join("data/keys")).await;
    write_front_database(clean.path()).await;
    let (_, _, stderr) = check(&clean.path().join("county/gateway.yaml")).await;
    assert!(!stderr.contains("nor a row condition"), "{stderr}");
}

#[tokio::test]
async fn check_warns_when_gateway_yaml_names_no_working_day_calendar() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |path, text| match path {
        "county/gateway.yaml" => text.replacen("calendar: calendar.yaml\n", "", 1),
        _ => text.to_owned(),
    });
    let config = dir.path().join("county/gateway.yaml");
    keygen(&dir.path().join("data/keys")).await;
    write_front_database(dir.path()).await;
    let (code, _, stderr) = check(&config).await;
    assert_eq!(code, 0, "a warning, not a failure: {stderr}");
    assert!(
        stderr.contains("warning: no `calendar` in gateway.yaml: deadlines in working days count Monday to Friday"),
        "{stderr}"
    );
    // With the county's calendar, that warning is gone (whether the next 90 days are
    // covered depends on today: unit-tested with a set day).
    write_county(dir.path(), |_, text| text.to_owned());
    let (code, _, stderr) = check(&config).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("no `calendar`"), "{stderr}");
}

#[tokio::test]
async fn check_refuses_what_serve_refuses_and_names_paths_as_the_file_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |path, text| match path {
        "county/gateway.yaml" => {
            format!("{text}\ntls:\n  cert: ../certs/gateway.pem\n  key: ../certs/gateway.key\n")
        }
        _ => text.to_owned(),
    });
    let config = dir.path().join("county/gateway.yaml");
    // No issuer key at ../data/keys, no TLS files: `serve` would refuse to start.
    let (code, stdout, stderr) = check(&config).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert!(
        stderr.lines().any(|l| l.contains("county/gateway.yaml")
            && l.contains(" auth.issuers[0].keys")
            && l.contains("county-demo-idp.pub.pem")),
        "{stderr}"
    );
    assert!(stderr.contains(" tls.cert"), "{stderr}");
    assert!(!stderr.contains("auth.auth."), "{stderr}");
    assert!(!stderr.contains("tls.tls."), "{stderr}");

    // `serve` refuses it with the same problems.
    let serve = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("serve runs");
    assert_eq!(serve.status.code(), Some(1));
    let refused = String::from_utf8_lossy(&serve.stderr);
    assert!(refused.contains(" auth.issuers[0].keys"), "{refused}");
    assert!(!refused.contains("auth.auth."), "{refused}");
}

#[tokio::test]
async fn check_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |path, text| match path {
        "county/gateway.yaml" => text.edit("code: \"139901\"", "code: \"13990\""),
        "county/purposes.yaml" => text.edit("code: rural_housing", "code: birth_registration"),
        "county/connectors/hukou.yaml" => {
            text.edit("ethnicity: { from: /mz", "ethnicity: { from: mz")
        }
        "county/connectors/shebao.yaml" => text
            .edit(
                "base_url: http://127.0.0.1:18102",
                "base_url: ftp://127.0.0.1",
            )
            .edit(
                "transform: { code: scheme }",
                "transform: { code: schemes }",
            ),
        "county/connectors/jisheng.yaml" => text.edit(
            "hereditary_disease: { from: /ycbs",
            "genetic_notes: { from: /ycbs",
        ),
        "schemas/hukou/household.schema.json" => text.replacen('{', "{ broken", 1),
        _ => text.to_owned(),
    });
    let (code, _, stderr) = check(&dir.path().join("county/gateway.yaml")).await;
    assert_eq!(code, 1, "{stderr}");
    let expected = [
        ("county/gateway.yaml", "county.code"),
        ("county/purposes.yaml", "purposes[2].code"),
        (
            "county/connectors/hukou.yaml",
            "operations.person_by_id.record.ethnicity.from",
        ),
        ("county/connectors/shebao.yaml", "base_url"),
        (
            "county/connectors/shebao.yaml",
            "operations.insured_by_id.record.schemes.items.scheme.transform.code",
        ),
        (
            "county/connectors/jisheng.yaml",
            "operations.fertility_by_id.record.genetic_notes",
        ),
        ("schemas/hukou/household.schema.json", "is not valid JSON"),
        // The purpose lost to the duplicate is still named by a grant.
        ("policies/hukou.yaml", "grants[2].purposes[1]"),
        // …and by a form.
        ("forms/rural-housing.yaml", "purpose"),
    ];
    for (file, path) in expected {
        assert!(
            stderr.lines().any(|l| l.contains(file) && l.contains(path)),
            "missing {file}: {path} in:\n{stderr}"
        );
    }
    assert!(stderr.starts_with("9 problems"), "{stderr}");
}

#[tokio::test]
async fn check_exit_codes() {
    let (code, _, stderr) = check(Path::new("/nonexistent/gateway.yaml")).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot be read"), "{stderr}");
    let usage = Command::new(BINARY)
        .arg("check")
        .output()
        .await
        .expect("runs");
    assert_eq!(usage.status.code(), Some(2));
}

/// The token file and body of a `curl` hint line.
pub(crate) fn curl_parts(line: &str) -> (String, String) {
    let token_path = line
        .split("$(cat ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("a $(cat TOKEN) in the hint");
    let token = std::fs::read_to_string(token_path).expect("the token file");
    let body = line
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("a -d '…' body");
    (token.trim().to_owned(), body.to_owned())
}

#[tokio::test]
async fn the_demo_starts_from_a_fresh_data_dir_and_its_hints_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("fresh");
    let mut demo = Running::demo(&data_dir);
    let gateway = url_in(&demo.line(|l| l.trim_start().starts_with("gateway")).await);
    let allowed = demo.line(|l| l.trim_start().starts_with("curl")).await;
    let refused = demo.line(|l| l.trim_start().starts_with("curl")).await;
    let forms_list = demo.line(|l| l.contains("/v1/forms ")).await;
    let form_fill = demo.line(|l| l.contains("/v1/forms/")).await;
    let explain = demo.line(|l| l.contains("policy explain")).await;
    let officer_search = demo.line(|l| l.contains("/v1/audit/search")).await;
    let officer_report = demo.line(|l| l.contains("/v1/audit/report")).await;
    let officer_export = demo.line(|l| l.contains("/v1/audit/export")).await;
    demo.line(|l| l.contains("Ctrl-C stops")).await;
    assert!(
        data_dir.join("quota.db").exists(),
        "the stores are in the data dir"
    );
    assert!(data_dir.join("keys/county-demo-idp.pem").exists());

    // Follow the first hint: a 东岭镇 clerk gets the record, masked by policy.
    assert!(
        allowed.contains(&format!("{gateway}/v1/query")),
        "{allowed}"
    );
    let (token, body) = curl_parts(&allowed);
    let request: Value = serde_json::from_str(&body).expect("the printed body is JSON");
    let id = request["subject"]["id_number"]
        .as_str()
        .expect("an ID")
        .to_owned();
    let reply = post_json(&format!("{gateway}/v1/query"), &token, &request).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["data"]["id_number"], id);
    assert!(
        reply.json["data"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(
        reply.json["fields"]["name"]["rule"],
        "hukou-birth-registration"
    );
    assert_eq!(reply.json["fields"]["address"]["mask"], "address_to");

    // The second: a 西河乡 clerk is refused, and told by which rule.
    let (token, body) = curl_parts(&refused);
    let request: Value = serde_json::from_str(&body).expect("JSON");
    let reply = post_json(&format!("{gateway}/v1/query"), &token, &request).await;
    reply.assert_problem(403, "forbidden");
    assert_eq!(reply.json["rule"], "hukou-birth-registration");
    assert_eq!(reply.json["reason"], "jurisdiction");
    assert!(!reply.text.contains(&id));

    // The forms hints: the clerk's forms, and a birth registration filled from all
    // three departments, every field with its source or the reason it is missing.
    let token_of = |line: &str| {
        let path = line
            .split("$(cat ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("a $(cat TOKEN) in the hint");
        std::fs::read_to_string(path).expect("the token file")
    };
    let listed = client()
        .get(format!("{gateway}/v1/forms"))
        .bearer_auth(token_of(&forms_list).trim())
        .send()
        .await
        .expect("an answer");
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.expect("JSON");
    let ids: Vec<&str> = listed["forms"]
        .as_array()
        .expect("forms")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(ids.contains(&"birth-registration"), "{listed}");
    let (token, body) = curl_parts(&form_fill);
    let request: Value = serde_json::from_str(&body).expect("JSON");
    let fill_url = form_fill
        .split_whitespace()
        .find(|w| w.contains("/fill"))
        .expect("the fill URL");
    let filled = post_json(fill_url, &token, &request).await;
    assert_eq!(filled.status, 200, "{}", filled.text);
    assert_eq!(filled.json["complete"], true, "{}", filled.text);
    let applicant = &filled.json["sections"][0]["fields"];
    let name = applicant
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == "name"))
        .expect("the applicant's name");
    assert_eq!(name["source"]["department"]["name"], "县公安局");
    assert_eq!(name["verified"], true);
    let fill_lookups = filled.json["lookups"].as_array().map_or(0, Vec::len);
    assert!(fill_lookups >= 3, "{}", filled.text);

    // The third: explain, field by field.
    let words: Vec<&str> = explain.split_whitespace().collect();
    let out = Command::new(words[0])
        .args(&words[1..])
        .output()
        .await
        .expect("explain runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("hukou-birth-registration"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("address") && l.contains("address_to")),
        "{text}"
    );

    // The privacy officer's hints: both lookups listed, the resident's report names
    // the 东岭镇 clerk's access, the CSV has a header and the lookups.
    let (officer, body) = curl_parts(&officer_search);
    let mut search: Value = serde_json::from_str(&body).expect("JSON");
    search["limit"] = Value::from(50);
    let listed = post_json(&format!("{gateway}/v1/audit/search"), &officer, &search).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let lookups = listed.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "lookup")
        .count();
    // The two lookups, the fill's, and the fill's check of where the person lives.
    assert_eq!(lookups, 2 + fill_lookups + 1, "{}", listed.text);
    let (_, body) = curl_parts(&officer_report);
    let ask: Value = serde_json::from_str(&body).expect("JSON");
    let report = post_json(&format!("{gateway}/v1/audit/report"), &officer, &ask).await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.json["accesses"][0]["user"], "clerk-dongling");
    // The lookup, the form's check of where the resident lives and its three
    // lookups of the resident (the spouse's is the spouse's); the refused lookup
    // released nothing.
    let accesses = report.json["accesses"].as_array().expect("accesses");
    assert_eq!(accesses.len(), 5, "{}", report.text);
    assert_eq!(
        accesses
            .iter()
            .filter(|a| a["shown_as"] == "residence_check")
            .count(),
        1,
        "{}",
        report.text
    );
    let (_, body) = curl_parts(&officer_export);
    let csv_ask: Value = serde_json::from_str(&body).expect("JSON");
    let csv = post_json(&format!("{gateway}/v1/audit/export"), &officer, &csv_ask).await;
    assert!(csv.text.starts_with("\u{feff}序号,"), "{}", csv.text);
    assert!(!csv.text.contains(&id), "the bare ID in the export");

    let stderr = demo.terminate().await;
    assert!(stderr.contains("lookup"), "the lookup is logged: {stderr}");
    assert!(!stderr.contains(&id), "the log carries the full ID number");
    assert!(
        !stderr.contains(&id[6..14]),
        "the log carries the birth date digits"
    );
    assert!(!stderr.contains(&token), "the log carries a token");

    // The configuration load and both lookups are in the audit log, which verifies
    // and was signed at shutdown.
    let audit = |args: &[&str]| {
        let mut command = Command::new(BINARY);
        command
            .args(["audit"])
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir);
        command.output()
    };
    let out = audit(&["verify"]).await.expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // config load, two lookups, the form's check and lookups, three reads by the
    // privacy officer
    let events = 7 + fill_lookups;
    assert!(text.contains(&format!("intact: {events} events")), "{text}");
    let out = audit(&["checkpoint"]).await.expect("checkpoint runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "county-gateway audit checkpoint v2\nseq: {events}\n"
        )),
        "{text}"
    );

    // The index says what the segments say; dropped, it is rebuilt from them alone
    // and answers as before.
    let search = |args: &'static [&'static str]| {
        let mut command = Command::new(BINARY);
        command.args(args).arg("--data-dir").arg(&data_dir);
        command.output()
    };
    let out = audit(&["verify", "--index"]).await.expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("index: {events} live events")),
        "{text}"
    );
    let before = search(&["audit", "search", "--limit", "100"])
        .await
        .expect("search");
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    for file in ["audit.db", "audit.db-wal", "audit.db-shm"] {
        let _ = std::fs::remove_file(data_dir.join(file));
    }
    let out = audit(&["reindex"]).await.expect("reindex runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = audit(&["verify", "--index"]).await.expect("verify runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = search(&["audit", "search", "--limit", "100"])
        .await
        .expect("search");
    let page = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).expect("a page")
    };
    // The second search sees the first one's use of the log, and nothing else new.
    let (before, after) = (page(&before), page(&after));
    let (before, after) = (
        before["events"].as_array().expect("events"),
        after["events"].as_array().expect("events"),
    );
    assert_eq!(after[1..], before[..]);

    // One byte of the first lookup's event changed (its frame's checksum made
    // good again): verify names it.
    let mut chain = crate::chain_files::ChainFiles::read(&data_dir);
    chain.edit(2, |event| event["outcome"]["status"] = 201.into());
    chain.write();
    let out = audit(&["verify"]).await.expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("broken at seq 2"), "{text}");
}

#[tokio::test]
async fn serve_runs_against_simulated_departments_in_another_process() {
    let (sim, urls) = simulate(&["--faults", r#"jisheng={"error_rate":1.0}"#]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_county(dir.path(), |path, text| at_departments(path, text, &urls));
    let data_dir = dir.path().join("data");
    let config = dir.path().join("county/gateway.yaml");
    // The issuer's key pair where county/gateway.yaml expects it, and a clerk's token.
    let keys = data_dir.join("keys");
    keygen(&keys).await;
    let token = mint_clerk(&keys).await;
    // `policy explain` verifies the token against the same config and explains.
    let explained = Command::new(BINARY)
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args([
            "--token",
            &token,
            "--connector",
            "hukou",
            "--operation",
            "person_by_id",
        ])
        .args(["--purpose", "birth_registration"])
        .output()
        .await
        .expect("explain runs");
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        explained.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    assert!(text.contains("caller clerk-1 [clerk]"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("name ") && l.contains("hukou-birth-registration")),
        "{text}"
    );
    assert!(!text.contains(&token));
    let mut serve = Running::spawn(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
    ]);
    let gateway = url_in(&serve.line(|l| l.contains("listening on")).await);
    let person = sample(sim::SampleKind::Pensioner);
    let body = lookup("shebao", "insured_by_id", person.id.as_str());
    let reply = post_json(&format!("{gateway}/v1/query"), &token, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["data"]["id_number"], person.id.as_str());

    // The births system was started failing, as `--faults` asked.
    let body = lookup("jisheng", "fertility_by_id", person.id.as_str());
    let reply = post_json(&format!("{gateway}/v1/query"), &token, &body).await;
    reply.assert_problem(502, "upstream-error");
    serve.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn simulate_refuses_bad_faults() {
    for bad in [
        r#"police={"hang":true}"#,
        r#"hukou={"error_rate":2}"#,
        "hukou",
    ] {
        let out = Command::new(BINARY)
            .args(["simulate", "--faults", bad])
            .output()
            .await
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}

#[tokio::test]
async fn the_demo_countys_golden_policy_cases_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tests");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../county/gateway.yaml");
    let out = Command::new(BINARY)
        .args(["policy", "test", "--config"])
        .arg(&config)
        .arg(&dir)
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[tokio::test]
async fn a_failing_golden_case_fails_the_run_and_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let case = r#"
cases:
  - name: expects a grant that does not exist
    caller: { sub: x, roles: [clerk], township: "139901101" }
    connector: shebao
    operation: insured_by_id
    purpose: birth_registration
    record: { id_number: "13990119500101123X", name: 测试, gender: male, birth_date: "1950-01-01", schemes: [] }
    expect: { data: { name: 测试 } }
"#;
    std::fs::write(dir.path().join("case.yaml"), case).expect("write");
    let out = Command::new(BINARY)
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("data differs"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
}
