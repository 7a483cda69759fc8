//! The audit log against someone with write access to the data directory, replayed
//! on the real binary: `gateway serve` in front of the simulated departments, its
//! checkpoints sent to a real `gateway witness serve` over mTLS, then the data
//! directory attacked as the attacker did — checkpoints stripped and the chain
//! recomputed over an edited event, the tail cut, the whole log rewritten and
//! re-signed with the key in the data directory, the key replaced — and each attack
//! is named by `gateway audit verify` (the last ones with the witness, or the pinned
//! key), and `serve` refuses to start on it. A witness that is down never fails a
//! lookup, and gets what it missed when it is back.

use crate::helpers::Edit as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use gateway::audit::checkpoint::Checkpoint;
use rusqlite::{Connection, OpenFlags};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use sim::{SampleKind, SimServer};
use testkit::pki::{Ca, Leaf, Usage};
use tokio::process::Command;

use crate::binary::{Running, url_in, write_county};
use crate::chain_files::{ChainFiles, Rec};
use crate::helpers::{TOWNSHIP, lookup, population, post_json, sample};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

/// A command's exit code, stdout and stderr. A command that should exit on its own
/// but goes on serving fails the test after a minute.
async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(BINARY).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("the command ends within a minute")
    .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// A county on disk: its configuration, data directory and certificates, the
/// simulated departments it calls, and a witness's files.
struct County {
    dir: tempfile::TempDir,
    departments: Vec<SimServer>,
    gateway_cert: Leaf,
    token: String,
}

impl County {
    async fn new() -> County {
        let departments = sim::spawn_all(population().clone(), [127, 0, 0, 1].into())
            .await
            .expect("departments start");
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("mkdir");
        let witness_ca = Ca::new("City Data Bureau CA");
        let counties_ca = Ca::new("Counties CA");
        let witness = witness_ca.leaf(&["localhost", "127.0.0.1"], "witness.test", Usage::Server);
        let gateway_cert = counties_ca.leaf(&[], "county-139901", Usage::Client);
        for (name, contents) in [
            ("witness-ca.pem", witness_ca.pem()),
            ("counties-ca.pem", counties_ca.pem()),
            ("witness.pem", witness.cert_pem.as_str()),
            ("witness.key", witness.key_pem.as_str()),
            ("gateway.pem", gateway_cert.cert_pem.as_str()),
            ("gateway.key", gateway_cert.key_pem.as_str()),
        ] {
            std::fs::write(certs.join(name), contents).expect("write");
        }
        let keys = dir.path().join("data/keys");
        let (code, _, stderr) = run(&["token", "keygen", "--out", text(&keys)]).await;
        assert_eq!(code, 0, "{stderr}");
        // The civil-affairs department's front database, which `check` reads.
        crate::binary::write_front_database(dir.path()).await;
        let pem = std::fs::read(keys.join("county-demo-idp.pem")).expect("the issuer key");
        let issuer = gateway::auth::SigningKey::from_pem(
            &pem,
            jsonwebtoken::Algorithm::ES256,
            Some(gateway::demo::ISSUER.to_owned()),
        )
        .expect("the key loads");
        let clerk = gateway::demo::Persona {
            name: "clerk-dongling",
            about: "a clerk",
            role: gateway::auth::Role::Clerk,
            township: Some(TOWNSHIP),
            villages: &[],
            department: None,
        };
        let token = gateway::demo::persona_token(&issuer, &clerk).expect("a token");
        County {
            dir,
            departments,
            gateway_cert,
            token,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("county/gateway.yaml")
    }

    /// Writes the county's files, calling the simulated departments, with `audit`
    /// (YAML lines of an `audit:` section) added to gateway.yaml.
    fn configure(&self, audit: &str) {
        self.configure_with(audit, "");
    }

    /// As [`County::configure`], with `more` (top-level YAML) after the audit section.
    fn configure_with(&self, audit: &str, more: &str) {
        let urls: Vec<(String, String)> = self
            .departments
            .iter()
            .map(|d| {
                let port = match d.department.id() {
                    "hukou" => "18101",
                    "shebao" => "18102",
                    _ => "18103",
                };
                (format!("http://127.0.0.1:{port}"), d.base_url())
            })
            .collect();
        write_county(self.dir.path(), |path, text| {
            let mut text = text.to_owned();
            for (from, to) in &urls {
                text = text.replace(from, to);
            }
            if path == "county/gateway.yaml" {
                // The scraper's own listener, without a token.
                text.push_str("\nmetrics_listen: 127.0.0.1:0\n");
                text.push_str("\naudit:\n");
                text.push_str(audit);
                text.push_str(more);
            }
            text
        });
    }

    /// The checkpoint key to pin, made before the gateway's first start.
    async fn pin(&self) -> String {
        let (code, stdout, stderr) = run(&[
            "audit",
            "public-key",
            "--data-dir",
            text(&self.data()),
            "--create",
        ])
        .await;
        assert_eq!(code, 0, "{stderr}");
        stdout.trim().to_owned()
    }

    /// The witness's configuration, allowing this county's certificate for `key`.
    fn configure_witness(&self, key: &str) -> PathBuf {
        let der = CertificateDer::from_pem_slice(self.gateway_cert.cert_pem.as_bytes())
            .expect("the certificate");
        let fingerprint = hex::encode(Sha256::digest(der.as_ref()));
        let dir = self.dir.path().join("witness");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("witness.yaml");
        std::fs::write(
            &path,
            format!(
                "data_dir: data\n\
                 tls: {{ cert: ../certs/witness.pem, key: ../certs/witness.key, \
                 client_ca: ../certs/counties-ca.pem, require_client_cert: true }}\n\
                 clients:\n  - name: county-139901\n    certificate_sha256: \"{fingerprint}\"\n    \
                 checkpoint_keys: [\"{key}\"]\n"
            ),
        )
        .expect("write");
        path
    }

    /// `gateway witness serve` on `listen`; its URL.
    async fn start_witness(&self, listen: &str) -> (Running, String) {
        let config = self.dir.path().join("witness/witness.yaml");
        let mut witness = Running::spawn(&[
            "witness",
            "serve",
            "--config",
            text(&config),
            "--listen",
            listen,
        ]);
        let url = url_in(&witness.line(|l| l.contains("witness listening on")).await);
        (witness, url)
    }

    /// An `audit:` section: a checkpoint every 2 events, the pinned key, the witness.
    fn witnessed_audit(pin: &str, witness_url: &str) -> String {
        format!(
            "  checkpoint_every_events: 2\n  checkpoint_every_s: 60\n  \
             checkpoint_public_key: \"{pin}\"\n  witnesses:\n    - name: city\n      \
             url: {witness_url}\n      tls: {{ ca_bundle: ../certs/witness-ca.pem, \
             client_cert: ../certs/gateway.pem, client_key: ../certs/gateway.key }}\n"
        )
    }

    async fn serve(&self) -> (Running, String) {
        let mut serve = Running::spawn(&[
            "serve",
            "--config",
            text(&self.config()),
            "--listen",
            "127.0.0.1:0",
        ]);
        let url = url_in(&serve.line(|l| l.contains("listening on")).await);
        (serve, url)
    }

    /// `serve` as it exits on its own: code and stderr.
    async fn serve_refused(&self) -> (i32, String) {
        let (code, _, stderr) = run(&[
            "serve",
            "--config",
            text(&self.config()),
            "--listen",
            "127.0.0.1:0",
        ])
        .await;
        (code, stderr)
    }

    /// `n` lookups of a resident of the clerk's township, each answered 200.
    async fn lookups(&self, gateway: &str, n: usize) {
        let person = sample(SampleKind::MarriedParent);
        for _ in 0..n {
            let reply = post_json(
                &format!("{gateway}/v1/query"),
                &self.token,
                &lookup("hukou", "person_by_id", person.id.as_str()),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
    }

    async fn verify(&self, extra: &[&str]) -> (i32, String) {
        let config = self.config();
        let mut args = vec!["audit", "verify", "--config", text(&config)];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&args).await;
        (code, format!("{stdout}{stderr}"))
    }

    fn chain(&self) -> ChainFiles {
        ChainFiles::read(&self.data())
    }

    /// The seq of the newest checkpoint in the gateway's log.
    fn newest_checkpoint(&self) -> u64 {
        let text = gateway::audit::latest_checkpoint(&self.data())
            .expect("the log reads")
            .expect("a checkpoint");
        Checkpoint::parse(&text).expect("a checkpoint").seq
    }

    /// The seqs the witness holds (none while its store does not exist).
    fn witnessed(&self) -> Vec<u64> {
        let path = self.dir.path().join("witness/data/witness.db");
        let Ok(db) = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return Vec::new();
        };
        let Ok(mut stmt) = db.prepare("SELECT seq FROM checkpoints ORDER BY seq") else {
            return Vec::new();
        };
        stmt.query_map([], |row| row.get::<_, i64>(0))
            .expect("rows")
            .map(|seq| seq.expect("a seq") as u64)
            .collect()
    }

    /// Waits (polling the witness's store, at most `within`) until it holds `seq` or
    /// a later checkpoint.
    async fn until_witnessed(&self, seq: u64, within: Duration) {
        let wait = async {
            while self.witnessed().last().is_none_or(|held| *held < seq) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("the witness holds seq {seq}: {:?}", self.witnessed()));
    }
}

#[tokio::test]
async fn a_stripped_log_recomputed_over_an_edit_fails_verify_and_serve_refuses_it() {
    let county = County::new().await;
    county.configure("  checkpoint_every_events: 5\n");
    let (serve, gateway) = county.serve().await;
    county.lookups(&gateway, 12).await;
    serve.terminate().await;
    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 13 events"), "{out}");

    // Every checkpoint deleted, a lookup's case id changed, the chain recomputed.
    let mut chain = county.chain();
    chain
        .records
        .retain(|r| !matches!(r, Rec::Checkpoint { .. }));
    let edited = chain.first_lookup() + 3;
    chain.edit_and_rechain(edited);
    chain.write();

    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("audit log broken at seq 5: no checkpoint at seq 5"),
        "{out}"
    );
    let (code, stderr) = county.serve_refused().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("broken at seq 5"), "{stderr}");
    assert!(stderr.contains("will not sign over"), "{stderr}");
    assert_eq!(
        county.chain().checkpoint_seqs(),
        Vec::<u64>::new(),
        "nothing was signed over the forgery"
    );
}

/// A county whose gateway sends its checkpoints to a running witness, after `n`
/// lookups and a clean stop; the witness holds the log's newest checkpoint.
async fn witnessed_county(n: usize) -> (County, Running) {
    let county = County::new().await;
    let pin = county.pin().await;
    county.configure_witness(&pin);
    let (witness, witness_url) = county.start_witness("127.0.0.1:0").await;
    county.configure(&County::witnessed_audit(&pin, &witness_url));
    let (serve, gateway) = county.serve().await;
    county.lookups(&gateway, n).await;
    serve.terminate().await;
    county
        .until_witnessed(county.newest_checkpoint(), Duration::from_secs(30))
        .await;
    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(pinned)"), "{out}");
    assert!(out.contains("witness city:"), "{out}");
    (county, witness)
}

#[tokio::test]
async fn a_cut_tail_is_caught_with_the_witness() {
    let (county, witness) = witnessed_county(6).await;
    let mut chain = county.chain();
    let checkpoints = chain.checkpoint_seqs();
    // Cut back to a checkpoint three before the newest: the log alone looks whole.
    let keep = checkpoints[checkpoints.len() - 4];
    chain.cut_after(keep);
    chain.write();
    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 0, "without the witness the cut is not seen: {out}");

    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("broken at seq {}", keep + 1)) && out.contains("cut off"),
        "{out}"
    );
    // The same from what the witness's operator exports.
    witness.terminate().await;
    let exported = county.dir.path().join("witnessed.txt");
    let (code, stdout, stderr) = run(&[
        "witness",
        "export",
        "--data-dir",
        text(&county.dir.path().join("witness/data")),
        "--log-key",
        &county.pin().await,
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&exported, stdout).expect("write");
    let (code, out) = county.verify(&["--witness", text(&exported)]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cut off"), "{out}");
}

#[tokio::test]
async fn a_rewrite_re_signed_with_the_data_dirs_key_is_caught_with_the_witness() {
    let (county, witness) = witnessed_county(4).await;
    let mut chain = county.chain();
    let edited = chain.first_lookup() + 1;
    chain.edit_and_rechain(edited);
    let key = std::fs::read(county.data().join("audit-signing.key")).expect("the key");
    chain.resign(&key);
    chain.write();
    // Consistent on its own, signed by the pinned key itself.
    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("witness city holds a checkpoint at seq")
            && out.contains("whose hash is not the log's"),
        "{out}"
    );
    witness.terminate().await;

    // Without the key, the attacker makes a new one and re-signs: the pin catches it,
    // and the gateway does not start on that data directory.
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("a key");
    let key_file = county.data().join("audit-signing.key");
    std::fs::remove_file(&key_file).expect("remove the key");
    std::fs::write(&key_file, document.as_ref()).expect("replace the key");
    let mut chain = county.chain();
    chain.resign(document.as_ref());
    chain.write();
    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("another key"), "{out}");
    let (code, stderr) = county.serve_refused().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not the pinned key"), "{stderr}");
}

#[tokio::test]
async fn lookups_go_on_while_the_witness_is_down_and_it_gets_the_backlog_when_back() {
    let county = County::new().await;
    let pin = county.pin().await;
    county.configure_witness(&pin);
    let (witness, witness_url) = county.start_witness("127.0.0.1:0").await;
    let listen = witness_url.trim_start_matches("https://").to_owned();
    county.configure(&County::witnessed_audit(&pin, &witness_url));
    let (mut serve, gateway) = county.serve().await;
    let metrics_url = url_in(&serve.line(|l| l.contains("metrics listening on")).await);
    county.lookups(&gateway, 2).await;
    // The configuration load and two lookups: a checkpoint at 2, sent at once.
    county.until_witnessed(2, Duration::from_secs(30)).await;
    witness.terminate().await;

    // The witness is down: every lookup is still answered, none waits for it.
    county.lookups(&gateway, 6).await;
    let newest = county.newest_checkpoint();
    assert!(newest >= 8, "checkpoints go on: {newest}");
    let held = *county
        .witnessed()
        .last()
        .expect("the witness held something");
    assert!(held < newest);
    let metrics = crate::helpers::client()
        .get(&metrics_url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("gateway_witness_pending_checkpoints{witness=\"city\"}"),
        "{metrics}"
    );

    // Back on the same address, it gets every checkpoint it missed, in order.
    let (witness, _) = county.start_witness(&listen).await;
    county
        .until_witnessed(newest, Duration::from_secs(120))
        .await;
    serve.terminate().await;
    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 0, "{out}");
    witness.terminate().await;
    let local = county.chain().checkpoint_seqs();
    let witnessed = county.witnessed();
    let first = witnessed[0];
    assert_eq!(
        witnessed,
        local
            .into_iter()
            .filter(|seq| *seq >= first)
            .collect::<Vec<_>>(),
        "the witness holds every checkpoint from its first on, the last one included"
    );
}

#[tokio::test]
async fn check_warns_until_the_key_is_pinned_and_names_witness_problems() {
    let county = County::new().await;
    let check = || async {
        let (code, stdout, stderr) = run(&["check", "--config", text(&county.config())]).await;
        (code, format!("{stdout}{stderr}"))
    };
    county.configure("  checkpoint_every_events: 500\n");
    let (code, out) = check().await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: audit.checkpoint_public_key is not set"),
        "{out}"
    );

    let pin = county.pin().await;
    county.configure(&County::witnessed_audit(&pin, "https://127.0.0.1:9"));
    let (code, out) = check().await;
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("warning: audit.checkpoint_public_key"),
        "{out}"
    );

    // A witness reached without TLS, one whose CA file is missing, a bad pin.
    let broken = County::witnessed_audit("AAAA", "http://127.0.0.1:9")
        .edit("../certs/witness-ca.pem", "../certs/missing.pem");
    county.configure(&broken);
    let (code, out) = check().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit.checkpoint_public_key"), "{out}");
    assert!(out.contains("audit.witnesses[0].url"), "{out}");
    let fixed_url = broken.edit("http://127.0.0.1:9", "https://127.0.0.1:9");
    county.configure(&fixed_url.edit("AAAA", &pin));
    let (code, out) = check().await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("audit.witnesses[0]") && out.contains("ca_bundle"),
        "{out}"
    );
}

/// A county on PostgreSQL: its replica sends the log's county checkpoints (each signs
/// every chain's head) to the witness, and a chain's tail cut in the database —
/// with the checkpoints over it and the county checkpoint naming it, which the
/// database alone cannot show — is caught with the witness, online and from the
/// witness operator's export.
#[tokio::test]
async fn on_postgres_the_county_checkpoints_go_to_the_witness_and_a_cut_is_caught_with_it() {
    let Some(postgres_url) = testkit::services::postgres("witness_on_postgres").await else {
        return;
    };
    let schema = testkit::services::schema_name();
    let county = County::new().await;
    let pin = county.pin().await;
    county.configure_witness(&pin);
    let (witness, witness_url) = county.start_witness("127.0.0.1:0").await;
    county.configure_with(
        &County::witnessed_audit(&pin, &witness_url),
        &format!("store:\n  kind: postgres\n  url: {postgres_url}\n  schema: {schema}\n"),
    );
    let (serve, gateway) = county.serve().await;
    county.lookups(&gateway, 4).await;
    serve.terminate().await;

    let (sql, connection) = tokio_postgres::connect(
        &format!(
            "{} options=-csearch_path={schema}",
            crate::cluster::libpq_form(&postgres_url)
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("the test connects to PostgreSQL");
    tokio::spawn(connection);
    let newest: i64 = sql
        .query_one("SELECT max(seq) FROM audit_county_checkpoints", &[])
        .await
        .expect("county checkpoints read")
        .get(0);
    assert!(newest >= 1, "the stop signs a county checkpoint");
    county
        .until_witnessed(newest as u64, Duration::from_secs(30))
        .await;
    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in 1 chains"), "{out}");
    assert!(out.contains("witness city: "), "{out}");

    // Cut the chain back to its first checkpoint, with every county checkpoint.
    let first: i64 = sql
        .query_one("SELECT min(seq) FROM audit_checkpoints", &[])
        .await
        .expect("checkpoints read")
        .get(0);
    sql.batch_execute(&format!(
        "DELETE FROM audit_events WHERE seq > {first};
         DELETE FROM audit_linked_subjects WHERE seq > {first};
         DELETE FROM audit_checkpoints WHERE seq > {first};
         DELETE FROM audit_county_checkpoints;"
    ))
    .await
    .expect("the cut");
    let (code, out) = county.verify(&[]).await;
    assert_eq!(code, 0, "without the witness the cut is not seen: {out}");
    let (code, out) = county.verify(&["--witness", "city"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "witness city holds county checkpoint {newest}, but the log's county checkpoints end at 0"
        )),
        "{out}"
    );

    // The same from what the witness's operator exports of the county checkpoints.
    witness.terminate().await;
    let (code, stdout, stderr) = run(&[
        "witness",
        "export",
        "--data-dir",
        text(&county.dir.path().join("witness/data")),
        "--log-key",
        &pin,
        "--county",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("county-gateway audit county checkpoint v2\n"),
        "{stdout}"
    );
    let exported = county.dir.path().join("witnessed.txt");
    std::fs::write(&exported, stdout).expect("write");
    let (code, out) = county.verify(&["--witness", text(&exported)]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("end at 0"), "{out}");
}
