//! The witness on real sockets with real certificates (`testkit::pki`), fed by a real
//! audit log: what it keeps and what it refuses (smaller seq, another key, a previous
//! checkpoint that is not its head, an earlier time, a fork, a client not on its
//! allow-list or without a certificate), and the sender delivering the backlog to a
//! witness that was down, while the log goes on appending.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connectors::definition::ClientTlsDef;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use testkit::pki::{Ca, Leaf, Usage};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::client::{WitnessClient, WitnessError};
use super::config::WitnessConfig;
use crate::audit::cadence::Cadence;
use crate::audit::checkpoint::{Checkpoint, Prev, Signer, encode_public_key, load_or_create_key};
use crate::audit::settings::WitnessTarget;
use crate::audit::{AuditCaller, AuditEvent, AuditLog as _, AuditOptions, KEY_FILE, SqliteAudit};

/// Certificates and the witness's files in one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    clients_ca: Ca,
}

impl Setup {
    fn new() -> Setup {
        connectors::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("City Data Bureau CA");
        let clients_ca = Ca::new("Counties CA");
        let server = server_ca.leaf(&["localhost", "127.0.0.1"], "witness.test", Usage::Server);
        let setup = Setup { dir, clients_ca };
        setup.write("witness.pem", &server.cert_pem);
        setup.write("witness.key", &server.key_pem);
        setup.write("witness-ca.pem", server_ca.pem());
        setup.write("counties-ca.pem", setup.clients_ca.pem());
        setup
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    /// A client certificate from the counties' CA, and the TLS settings presenting it.
    fn client(&self, name: &str) -> (Leaf, ClientTlsDef) {
        let leaf = self.clients_ca.leaf(&[], name, Usage::Client);
        self.write(&format!("{name}.pem"), &leaf.cert_pem);
        self.write(&format!("{name}.key"), &leaf.key_pem);
        let tls = ClientTlsDef {
            ca_bundle: Some("witness-ca.pem".into()),
            client_cert: Some(format!("{name}.pem").into()),
            client_key: Some(format!("{name}.key").into()),
        };
        (leaf, tls)
    }

    /// `witness.yaml` allowing each (name, certificate, keys).
    fn configure(&self, clients: &[(&str, &Leaf, &[&[u8]])]) -> WitnessConfig {
        let mut yaml = String::from(
            "data_dir: witness-data\ntls: { cert: witness.pem, key: witness.key, \
             client_ca: counties-ca.pem, require_client_cert: true }\nclients:\n",
        );
        for (name, leaf, keys) in clients {
            let keys: Vec<String> = keys
                .iter()
                .map(|key| format!("\"{}\"", encode_public_key(key)))
                .collect();
            yaml.push_str(&format!(
                "  - name: {name}\n    certificate_sha256: \"{}\"\n    checkpoint_keys: [{}]\n",
                fingerprint(leaf),
                keys.join(", ")
            ));
        }
        self.write("witness.yaml", &yaml);
        WitnessConfig::load(&self.dir.path().join("witness.yaml")).unwrap()
    }

    fn witness_client(&self, name: &str, addr: SocketAddr, tls: ClientTlsDef) -> WitnessClient {
        let target = WitnessTarget {
            name: name.into(),
            url: format!("https://127.0.0.1:{}", addr.port()),
            tls,
        };
        WitnessClient::new(&target, self.dir.path()).unwrap()
    }
}

/// The SHA-256 fingerprint of a certificate, as `openssl` prints it.
fn fingerprint(leaf: &Leaf) -> String {
    let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A running witness.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), Vec<String>>>,
}

impl Running {
    async fn start(config: WitnessConfig, listener: TcpListener) -> Running {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(super::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Running { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn any_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::admin(&format!("req-{i}"), AuditCaller::gateway(), "test")
}

/// A real log checkpointing every 2 events.
fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every_events: 2,
        checkpoint_every: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

/// The log's checkpoints, oldest first.
fn checkpoints(dir: &Path) -> Vec<String> {
    crate::audit::checkpoints_after(dir, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

fn refused(result: Result<super::client::Submitted, WitnessError>) -> String {
    match result {
        Err(WitnessError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_witness_keeps_only_what_extends_its_head_and_only_from_allowed_clients() {
    let log = tempfile::tempdir().unwrap();
    let audit = SqliteAudit::open(log.path(), options()).unwrap();
    for i in 1..=8 {
        audit.append(event(i)).await.unwrap();
    }
    audit.shutdown().await;
    let texts = checkpoints(log.path());
    assert_eq!(texts.len(), 4, "at 2, 4, 6 and 8");
    let ours: Signer = load_or_create_key(&log.path().join(KEY_FILE), false).unwrap();
    let key = ours.public_key().to_vec();
    let other: Signer = Signer::new(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap());

    let setup = Setup::new();
    let (county, county_tls) = setup.client("county");
    let (neighbour, neighbour_tls) = setup.client("neighbour");
    let (_, stranger_tls) = setup.client("stranger");
    let config = setup.configure(&[
        ("county-139901", &county, &[&key]),
        ("county-139902", &neighbour, &[other.public_key()]),
    ]);
    let witness = Running::start(config, any_port().await).await;
    let county = setup.witness_client("city", witness.addr, county_tls);

    assert_eq!(county.head(&key).await.unwrap(), None);
    let kept = county.submit(&texts[..2]).await.unwrap();
    assert_eq!((kept.accepted, kept.head.unwrap().seq), (2, 4));
    // The same again (a sender retrying): held, not refused.
    let again = county.submit(&texts[1..2]).await.unwrap();
    assert_eq!((again.accepted, again.already_held), (0, 1));

    let head4 = Prev::of(4, &texts[1]);
    let hash = |seq: usize| Checkpoint::parse(&texts[seq / 2 - 1]).unwrap().hash;
    let later = "2099-01-01T00:00:00.000Z";
    let cadence = options().cadence();
    // A smaller seq than the head.
    let smaller = ours.checkpoint(3, &hash(4), later, &Prev::of(2, &texts[0]), &cadence);
    let reason = refused(county.submit(&[smaller]).await);
    assert!(reason.contains("not after the head"), "{reason}");
    // Naming another previous checkpoint than the head: a fork, or a gap.
    let forked = ours.checkpoint(
        6,
        &hash(6),
        later,
        &Prev {
            seq: 4,
            text_sha256: [9; 32],
        },
        &cadence,
    );
    let reason = refused(county.submit(&[forked]).await);
    assert!(reason.contains("forked"), "{reason}");
    let gap = ours.checkpoint(8, &hash(8), later, &Prev::of(6, &texts[2]), &cadence);
    let reason = refused(county.submit(&[gap]).await);
    assert!(reason.contains("follows seq 6"), "{reason}");
    // Earlier than the head.
    let early = ours.checkpoint(6, &hash(6), "2000-01-01T00:00:00.000Z", &head4, &cadence);
    let reason = refused(county.submit(&[early]).await);
    assert!(reason.contains("time"), "{reason}");
    // Another text for a seq it holds.
    let rewritten = ours.checkpoint(4, &hash(6), later, &Prev::of(2, &texts[0]), &cadence);
    let reason = refused(county.submit(&[rewritten]).await);
    assert!(reason.contains("already held"), "{reason}");
    // Another key: another log, which this client may not write.
    let foreign = other.checkpoint(6, &hash(6), later, &head4, &cadence);
    assert_eq!(
        county.submit(&[foreign]).await,
        Err(WitnessError::Status(403))
    );
    // A v1 checkpoint names no previous one.
    let v1 = ours.checkpoint_v1(6, &hash(6), later);
    assert_eq!(county.submit(&[v1]).await, Err(WitnessError::Status(400)));

    // The real continuation is kept, and served back.
    let kept = county.submit(&texts[2..]).await.unwrap();
    assert_eq!((kept.accepted, kept.head.unwrap().seq), (2, 8));
    assert_eq!(county.all(&key, 100).await.unwrap(), texts);
    assert_eq!(county.head(&key).await.unwrap().as_ref(), texts.last());

    // Another listed client may read, not write this log.
    let neighbour = setup.witness_client("city", witness.addr, neighbour_tls);
    assert_eq!(neighbour.all(&key, 100).await.unwrap(), texts);
    assert_eq!(
        neighbour.submit(&texts[3..]).await,
        Err(WitnessError::Status(403))
    );
    // A certificate from the right CA but not on the allow-list: nothing.
    let stranger = setup.witness_client("city", witness.addr, stranger_tls);
    assert_eq!(stranger.head(&key).await, Err(WitnessError::Status(403)));
    assert_eq!(
        stranger.all(&key, 100).await,
        Err(WitnessError::Status(403))
    );
    assert_eq!(
        stranger.submit(&texts[3..]).await,
        Err(WitnessError::Status(403))
    );
    // No certificate at all: no TLS session.
    let anonymous = setup.witness_client(
        "city",
        witness.addr,
        ClientTlsDef {
            ca_bundle: Some("witness-ca.pem".into()),
            client_cert: None,
            client_key: None,
        },
    );
    assert!(matches!(
        anonymous.head(&key).await,
        Err(WitnessError::Unreachable(_))
    ));
    witness.stop().await;

    // What it keeps cannot be changed or removed through SQLite either.
    let db = rusqlite::Connection::open(setup.dir.path().join("witness-data/witness.db")).unwrap();
    assert!(db.execute("UPDATE checkpoints SET hash = 'x'", []).is_err());
    assert!(db.execute("DELETE FROM checkpoints", []).is_err());
    let held: i64 = db
        .query_row("SELECT count(*) FROM checkpoints", [], |row| row.get(0))
        .unwrap();
    assert_eq!(held, 4);
}

#[tokio::test]
async fn a_witness_that_is_down_holds_nothing_up_and_gets_the_backlog_when_back() {
    let log = tempfile::tempdir().unwrap();
    let audit = SqliteAudit::open(log.path(), options()).unwrap();
    let key = crate::audit::checkpoint_public_key(log.path(), false).unwrap();
    let setup = Setup::new();
    let (county, county_tls) = setup.client("county");
    let config = setup.configure(&[("county-139901", &county, &[&key])]);
    let listener = any_port().await;
    let addr = listener.local_addr().unwrap();
    let witness = Running::start(config.clone(), listener).await;
    let senders = super::sender::start(
        std::sync::Arc::new(crate::audit::SqliteAuditBackend::new(log.path())),
        key.clone(),
        vec![setup.witness_client("city", addr, county_tls)],
        audit.checkpoints(),
    );
    let status = senders.statuses()[0].clone();
    audit.append(event(1)).await.unwrap();
    audit.append(event(2)).await.unwrap();
    status.until_acknowledged(2).await;
    witness.stop().await;

    // Down: the port answers TCP and closes at once. Appends go on regardless.
    let down = TcpListener::bind(addr).await.unwrap();
    for i in 3..=8 {
        audit.append(event(i)).await.unwrap();
    }
    // The sender tried while the witness was down…
    let (tried, _) = down.accept().await.unwrap();
    drop(tried);
    drop(down);
    assert_eq!(status.acknowledged(), 2);
    // … and once it is back, it gets 4, 6 and 8, in order, each extending the last.
    let witness = Running::start(config, TcpListener::bind(addr).await.unwrap()).await;
    tokio::time::timeout(Duration::from_secs(120), status.until_acknowledged(8))
        .await
        .expect("the backlog within two minutes");
    assert!(status.failures() >= 1);
    assert_eq!((status.pending(), status.lag_events()), (0, 0));
    audit.shutdown().await;
    senders.finish(Duration::from_secs(30)).await;
    witness.stop().await;

    let db = rusqlite::Connection::open(setup.dir.path().join("witness-data/witness.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT seq, text FROM checkpoints ORDER BY seq")
        .unwrap();
    let held: Vec<(i64, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let seqs: Vec<i64> = held.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [2, 4, 6, 8]);
    let texts: Vec<String> = held.into_iter().map(|(_, text)| text).collect();
    assert_eq!(texts, checkpoints(log.path()));
    let witnessed: Vec<crate::audit::Witnessed> = texts
        .into_iter()
        .map(|text| crate::audit::Witnessed {
            witness: "the city bureau".into(),
            text,
        })
        .collect();
    let report = crate::audit::verify_with(
        log.path(),
        &crate::audit::Expectations {
            cadence: Cadence {
                every_events: 2,
                every: Duration::from_secs(3600),
            },
            pinned_key: Some(key),
            witnessed,
        },
    )
    .unwrap();
    assert_eq!((report.events, report.witnessed), (8, 4));
}
