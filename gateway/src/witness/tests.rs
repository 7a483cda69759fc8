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
use crate::audit::checkpoint::{
    Checkpoint, Prev, Signer, WitnessedKind, encode_public_key, load_or_create_key,
};
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

    assert_eq!(county.head(WitnessedKind::Chain, &key).await.unwrap(), None);
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
    assert_eq!(
        county.all(WitnessedKind::Chain, &key, 100).await.unwrap(),
        texts
    );
    assert_eq!(
        county
            .head(WitnessedKind::Chain, &key)
            .await
            .unwrap()
            .as_ref(),
        texts.last()
    );

    // Another listed client may read, not write this log.
    let neighbour = setup.witness_client("city", witness.addr, neighbour_tls);
    assert_eq!(
        neighbour
            .all(WitnessedKind::Chain, &key, 100)
            .await
            .unwrap(),
        texts
    );
    assert_eq!(
        neighbour.submit(&texts[3..]).await,
        Err(WitnessError::Status(403))
    );
    // A certificate from the right CA but not on the allow-list: nothing.
    let stranger = setup.witness_client("city", witness.addr, stranger_tls);
    assert_eq!(
        stranger.head(WitnessedKind::Chain, &key).await,
        Err(WitnessError::Status(403))
    );
    assert_eq!(
        stranger.all(WitnessedKind::Chain, &key, 100).await,
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
        anonymous.head(WitnessedKind::Chain, &key).await,
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

/// County checkpoints of `key` over one chain `a…a` at the given seqs, each after the
/// one before (the first after none).
fn county_texts(signer: &Signer, seqs: &[u64]) -> Vec<String> {
    use crate::audit::postgres::county::{ChainHeadLine, sign};
    let mut texts: Vec<String> = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        let heads = [ChainHeadLine {
            chain_id: "a".repeat(32),
            seq: *seq,
            hash: format!("{seq:064x}"),
        }];
        let prev = texts.last().map(|text| (i as u64, text.as_str()));
        let time = format!("2026-03-02T01:00:{:02}.000Z", i);
        texts.push(sign(signer, i as u64 + 1, &time, prev, &heads));
    }
    texts
}

#[tokio::test]
async fn county_checkpoints_are_a_log_of_their_own_kept_by_the_same_rule() {
    let ours: Signer = Signer::new(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap());
    let key = ours.public_key().to_vec();
    let texts = county_texts(&ours, &[3, 5, 9]);
    let setup = Setup::new();
    let (county, county_tls) = setup.client("county");
    let config = setup.configure(&[("county-139901", &county, &[&key])]);
    let witness = Running::start(config, any_port().await).await;
    let client = setup.witness_client("city", witness.addr, county_tls);

    let kept = client.submit(&texts[..2]).await.unwrap();
    assert_eq!((kept.accepted, kept.head.unwrap().seq), (2, 2));
    assert_eq!(
        client
            .head(WitnessedKind::County, &key)
            .await
            .unwrap()
            .as_ref(),
        Some(&texts[1])
    );
    // The chain checkpoints of the same key are another log, which holds nothing.
    assert_eq!(client.head(WitnessedKind::Chain, &key).await.unwrap(), None);

    // Another county checkpoint 3, naming another 2 than the one held: a fork.
    let forked = county_texts(&ours, &[3, 6, 9]);
    let reason = refused(client.submit(&forked[2..]).await);
    assert!(reason.contains("forked"), "{reason}");
    // One submission is one log: a chain checkpoint with county checkpoints is refused.
    let chain = ours.checkpoint(
        2,
        &"1".repeat(64),
        "2026-03-02T01:00:00.000Z",
        &Prev::NONE,
        &options().cadence(),
    );
    assert_eq!(
        client.submit(&[chain, texts[2].clone()]).await,
        Err(WitnessError::Status(400))
    );
    // A county checkpoint written before they were numbered cannot be chained.
    let v1 = texts[2]
        .replacen("county checkpoint v2", "county checkpoint v1", 1)
        .replacen("seq: 3\n", "", 1);
    assert_eq!(client.submit(&[v1]).await, Err(WitnessError::Status(400)));

    let kept = client.submit(&texts[2..]).await.unwrap();
    assert_eq!((kept.accepted, kept.head.unwrap().seq), (1, 3));
    assert_eq!(
        client.all(WitnessedKind::County, &key, 100).await.unwrap(),
        texts
    );
    witness.stop().await;
}

/// A log on PostgreSQL: its county checkpoints reach the witness from every replica,
/// and `verify` holds the log to what the witness keeps, which catches a cut the
/// database alone cannot show.
#[tokio::test]
async fn a_log_on_postgresql_gives_its_witnesses_county_checkpoints_and_is_held_to_them() {
    use crate::audit::AuditBackend as _;
    use crate::audit::postgres::{PgAudit, PgAuditBackend};
    let Some(db) = crate::pg::testing::migrated("witness::county_from_pg").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join(KEY_FILE);
    let pg_options = AuditOptions {
        checkpoint_every_events: 5,
        ..options()
    };
    let a = PgAudit::open(db.pg.clone(), &key_file, pg_options.clone())
        .await
        .unwrap();
    let b = PgAudit::open(db.pg.clone(), &key_file, pg_options.clone())
        .await
        .unwrap();
    let backend = std::sync::Arc::new(PgAuditBackend::new(db.pg.clone(), &key_file));
    let key = backend.public_key(false).await.unwrap();
    assert_eq!(backend.witnessed_kind(), WitnessedKind::County);

    let setup = Setup::new();
    let (county, county_tls) = setup.client("county");
    let config = setup.configure(&[("county-139901", &county, &[&key])]);
    let witness = Running::start(config, any_port().await).await;
    // The senders of replica b, woken by the county checkpoints its writer signs.
    let senders = super::sender::start(
        backend.clone(),
        key.clone(),
        vec![setup.witness_client("city", witness.addr, county_tls.clone())],
        b.county_checkpoints(),
    );
    let status = senders.statuses()[0].clone();
    for i in 1..=5 {
        a.append(event(i)).await.unwrap();
        b.append(event(100 + i)).await.unwrap();
    }
    // Replica a stops: its last county checkpoint names a's 5 and b's 5.
    a.shutdown().await;
    for i in 6..=8 {
        b.append(event(100 + i)).await.unwrap();
    }
    // Replica b stops: county checkpoint 2 names a's 5 and b's 8; b's senders saw it.
    b.shutdown().await;
    assert_eq!(*b.county_checkpoints().borrow(), 2);
    status.until_acknowledged(2).await;
    senders.finish(Duration::from_secs(30)).await;
    assert_eq!((status.pending(), status.acknowledged()), (0, 2));

    // A witness that held nothing of the log gets the newest first (it fixes every
    // one before it), then each one after it.
    let reader = setup.witness_client("city", witness.addr, county_tls);
    let held = reader.all(WitnessedKind::County, &key, 100).await.unwrap();
    let ours = backend.checkpoints_after(1, 100).await.unwrap();
    assert_eq!(
        held,
        ours.into_iter().map(|(_, text)| text).collect::<Vec<_>>()
    );
    witness.stop().await;
    let witnessed = || {
        held.iter()
            .map(|text| crate::audit::Witnessed {
                witness: "witness city".into(),
                text: text.clone(),
            })
            .collect::<Vec<_>>()
    };
    let expect = |witnessed| crate::audit::Expectations {
        cadence: pg_options.cadence(),
        pinned_key: Some(key.clone()),
        witnessed,
    };
    let report = backend.verify(expect(witnessed())).await.unwrap();
    assert_eq!((report.events, report.witnessed), (13, 1));

    // A chain's checkpoint a witness kept before the county moved to PostgreSQL must
    // sign what some chain holds at its seq.
    let client = db.pg.client().await.unwrap();
    let chain_checkpoint: String = client
        .query_one(
            "SELECT text FROM audit_checkpoints WHERE chain_id = $1 AND seq = 5",
            &[&a.chain_id()],
        )
        .await
        .unwrap()
        .get(0);
    let signer = load_or_create_key(&key_file, false).unwrap();
    let forged = signer.checkpoint(
        5,
        &"f".repeat(64),
        "2026-03-02T01:00:00.000Z",
        &Prev::NONE,
        &pg_options.cadence(),
    );
    let with = |text: &String| {
        let mut all = witnessed();
        all.push(crate::audit::Witnessed {
            witness: "an export".into(),
            text: text.clone(),
        });
        all
    };
    let report = backend
        .verify(expect(with(&chain_checkpoint)))
        .await
        .unwrap();
    assert_eq!(report.witnessed, 2);
    let failure = backend.verify(expect(with(&forged))).await.unwrap_err();
    assert!(
        failure
            .problem
            .contains("an export holds a checkpoint at seq 5 whose hash no chain holds"),
        "{failure}"
    );

    // Whoever holds the database cuts b's last three events, the checkpoint over
    // them and the county checkpoint naming them: the database alone still verifies.
    let b_chain = b.chain_id();
    client
        .execute(
            "DELETE FROM audit_events WHERE chain_id = $1 AND seq > 5",
            &[&b_chain],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM audit_checkpoints WHERE chain_id = $1 AND seq > 5",
            &[&b_chain],
        )
        .await
        .unwrap();
    client
        .execute("DELETE FROM audit_county_checkpoints WHERE seq = 2", &[])
        .await
        .unwrap();
    let report = backend.verify(expect(Vec::new())).await.unwrap();
    assert_eq!(report.events, 10);
    let failure = backend.verify(expect(witnessed())).await.unwrap_err();
    assert!(
        failure.problem.contains(
            "witness city holds county checkpoint 2, but the log's county checkpoints end at 1"
        ),
        "{failure}"
    );

    // With the key too, a new county checkpoint 2 over the cut heads: still caught.
    let first: String = client
        .query_one(
            "SELECT text FROM audit_county_checkpoints WHERE seq = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let heads = crate::audit::postgres::county::CountyCheckpoint::parse(&first)
        .unwrap()
        .chains;
    let resigned = crate::audit::postgres::county::sign(
        &signer,
        2,
        "2026-12-31T00:00:00.000Z",
        Some((1, &first)),
        &heads,
    );
    client
        .execute(
            "INSERT INTO audit_county_checkpoints (seq, text) VALUES (2, $1)",
            &[&resigned],
        )
        .await
        .unwrap();
    assert_eq!(backend.verify(expect(Vec::new())).await.unwrap().events, 10);
    let failure = backend.verify(expect(witnessed())).await.unwrap_err();
    assert!(
        failure
            .problem
            .contains("witness city holds another text for it"),
        "{failure}"
    );
    // A second witness given the forgery does not outvote the first.
    let mut two = witnessed();
    two.push(crate::audit::Witnessed {
        witness: "witness two".into(),
        text: resigned.clone(),
    });
    let failure = backend.verify(expect(two)).await.unwrap_err();
    assert!(
        failure
            .problem
            .contains("witness city holds another text for it"),
        "{failure}"
    );
}
