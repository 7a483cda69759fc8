//! Many replicas: three real `gateway serve` processes on one PostgreSQL schema and
//! one Redis, in front of the simulated departments (a `simulate` process), with
//! nothing but the test's own round-robin in front of them. PostgreSQL is reached
//! through a forwarder the test can cut ([`Cuttable`]), and Redis is a server of the
//! test's own that it can stop, so that neither outage disturbs other tests.
//!
//! What a county moving to many machines relies on: limits exact across replicas, a
//! revocation in force everywhere, nothing acknowledged lost when a replica is
//! killed, every chain verifying, no data without audit when PostgreSQL is gone, and
//! service coming back by itself.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::services::{Cuttable, RedisServer};
use tokio::process::Command;

use crate::binary::{Running, url_in, write_county};
use crate::helpers::{Edit as _, Reply, TOWNSHIP, lookup, post_json, sample};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");
/// The pseudonym key every replica shares (limit keys are derived from it).
const PSEUDONYM_KEY: &str = "cluster-test-pseudonym-key-0123456789abcdef";
const REPLICAS: usize = 3;

/// How a test's cluster is configured.
struct Options {
    /// The per-user limit, per day (burst the same): a day, so that the bucket does
    /// not refill while a test runs, however slow the machine.
    per_user: usize,
}

/// Three replicas and what they stand on.
struct Cluster {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    _sim: Running,
    replicas: Vec<Option<Running>>,
    urls: Vec<String>,
    redis: RedisServer,
    postgres: Cuttable,
    postgres_url: String,
    schema: String,
    next: std::sync::atomic::AtomicUsize,
}

impl Cluster {
    /// Starts the departments, writes the county for PostgreSQL and Redis, and starts
    /// three replicas; `None` when PostgreSQL or Redis is not here (said by skip).
    async fn start(test: &str, options: Options) -> Option<Cluster> {
        let postgres_url = testkit::services::postgres(test).await?;
        let redis = RedisServer::start(test).await?;
        let target = postgres_url
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("host:port in the test server's address")
            .to_owned();
        let postgres = Cuttable::start(&target).await;
        let schema = testkit::services::schema_name();
        let through_forwarder = postgres_url.replace(&target, &postgres.addr().to_string());

        let (sim, departments) = crate::binary::simulate(&[]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_owned();
        let store = format!(
            "store:\n  kind: postgres\n  url: {through_forwarder}\n  schema: {schema}\n  connect_timeout_ms: 2000\n"
        );
        let limits = format!(
            "rate_limits:\n  backend: redis\n  redis:\n    url: {}\n    key_prefix: {schema}\n    fallback: local\n    replicas: {REPLICAS}\n  per_user: {{ per_day: {n}, burst: {n} }}\n",
            redis.url(),
            n = options.per_user,
        );
        write_county(&root, |path, text| {
            let mut text = crate::binary::at_departments(path, text, &departments);
            if path == "county/gateway.yaml" {
                text = text
                    .edit(
                        "data_dir: ../data\n",
                        &format!("data_dir: ../data\n{store}"),
                    )
                    .edit(
                        "rate_limits:\n  per_user: { per_minute: 120, burst: 30 }\n",
                        &limits,
                    );
                text.push_str("pseudonym_key_env: GATEWAY_CLUSTER_PSEUDONYM_KEY\n");
            }
            // The 低保 form looks up at most 5 members (1 + 5 × 2 lookups), so that a
            // fill fits the smallest per-user burst these tests set (12).
            if path == "forms/subsistence-allowance.yaml" {
                text = text.edit(
                    "lookup_each: true\n",
                    "lookup_each: true\n    max_rows: 5\n",
                );
            }
            text
        });
        let config = root.join("county/gateway.yaml");
        run_ok(&["token", "keygen", "--out", path(&root.join("data/keys"))]).await;
        // Every replica signs its chain's checkpoints with the county's one key.
        let first = root.join("r1");
        run_ok(&[
            "audit",
            "public-key",
            "--create",
            "--data-dir",
            path(&first),
        ])
        .await;
        for n in 2..=REPLICAS {
            let data_dir = root.join(format!("r{n}"));
            std::fs::create_dir_all(&data_dir).expect("data dir");
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                .expect("a private data dir");
            std::fs::copy(
                first.join("audit-signing.key"),
                data_dir.join("audit-signing.key"),
            )
            .expect("the key copied");
        }
        let mut cluster = Cluster {
            _dir: dir,
            dir: root,
            config,
            _sim: sim,
            replicas: (0..REPLICAS).map(|_| None).collect(),
            urls: vec![String::new(); REPLICAS],
            redis,
            postgres,
            postgres_url,
            schema,
            next: std::sync::atomic::AtomicUsize::new(0),
        };
        for n in 0..REPLICAS {
            cluster.start_replica(n).await;
        }
        Some(cluster)
    }

    /// Starts replica `n` (0-based) on its own data directory and waits until it
    /// listens.
    async fn start_replica(&mut self, n: usize) {
        let data_dir = self.dir.join(format!("r{}", n + 1));
        let mut replica = Running::spawn_with_env(
            &[
                "serve",
                "--config",
                path(&self.config),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                path(&data_dir),
            ],
            &[("GATEWAY_CLUSTER_PSEUDONYM_KEY", PSEUDONYM_KEY)],
        );
        self.urls[n] = url_in(&replica.line(|l| l.contains("listening on")).await);
        self.replicas[n] = Some(replica);
    }

    /// Kills replica `n` at once (SIGKILL): no flush, no goodbye.
    async fn kill(&mut self, n: usize) {
        if let Some(replica) = self.replicas[n].take() {
            replica.stop().await;
        }
    }

    fn url(&self, n: usize, path: &str) -> String {
        format!("{}{path}", self.urls[n])
    }

    /// A token for `sub` with `role` (and a township or department), signed by the
    /// county's demo issuer.
    async fn token(&self, sub: &str, role: &str, scope: &[&str]) -> String {
        let key = self.dir.join("data/keys/county-demo-idp.pem");
        let mut args = vec![
            "token",
            "mint",
            "--key",
            path(&key),
            "--sub",
            sub,
            "--role",
            role,
        ];
        args.extend_from_slice(scope);
        let out = Command::new(BINARY)
            .args(&args)
            .output()
            .await
            .expect("mint runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    async fn clerk(&self) -> String {
        self.token("clerk-1", "clerk", &["--township", TOWNSHIP])
            .await
    }

    /// A lookup of a resident on replica `n`.
    async fn lookup_on(&self, n: usize, token: &str) -> Reply {
        let person = sample(sim::SampleKind::Pensioner);
        let body = lookup("hukou", "person_by_id", person.id.as_str());
        post_json(&self.url(n, "/v1/query"), token, &body).await
    }

    /// `n` lookups as `token`, round-robin over the replicas that are up; their
    /// statuses.
    async fn lookups_round_robin(&self, token: &str, n: usize) -> Vec<u16> {
        let mut statuses = Vec::with_capacity(n);
        for _ in 0..n {
            let replica = self.round_robin();
            statuses.push(self.lookup_on(replica, token).await.status);
        }
        statuses
    }

    /// The next replica in turn that is up.
    fn round_robin(&self) -> usize {
        loop {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % REPLICAS;
            if self.replicas[n].is_some() {
                return n;
            }
        }
    }

    /// `gateway ARGS --config … --data-dir r1` as the operator runs it beside the
    /// replicas (the county's key and pseudonym key at hand): success, stdout, stderr.
    async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BINARY)
            .args(args)
            .args(["--config", path(&self.config)])
            .args(["--data-dir", path(&self.dir.join("r1"))])
            .env("GATEWAY_CLUSTER_PSEUDONYM_KEY", PSEUDONYM_KEY)
            .output()
            .await
            .expect("the command runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `gateway audit verify --config` as the operator runs it: every chain.
    async fn verify(&self) -> (bool, String) {
        let out = Command::new(BINARY)
            .args(["audit", "verify", "--config", path(&self.config)])
            .args(["--data-dir", path(&self.dir.join("r1"))])
            .output()
            .await
            .expect("verify runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A client of the test's schema, straight to the server (not through the
    /// forwarder), to look at or tamper with what the replicas wrote.
    async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "{} options=-csearch_path={}",
                libpq_form(&self.postgres_url),
                self.schema
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("the test connects to PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

/// How many audit chains the replicas have made.
async fn chains(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one("SELECT count(*) FROM audit_chains", &[])
        .await
        .expect("chains read")
        .get(0)
}

/// `postgres://user@host:port/db` as libpq's `key=value` form, so that options can be
/// added.
pub(crate) fn libpq_form(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a URL");
    format!(
        "host={} port={} user={} dbname={}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432),
        parsed.username(),
        parsed.path().trim_start_matches('/')
    )
}

#[expect(clippy::print_stderr, reason = "a measured figure on the test output")]
fn say(text: &str) {
    eprintln!("{text}");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn run_ok(args: &[&str]) {
    let out = Command::new(BINARY)
        .args(args)
        .output()
        .await
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "gateway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` until it holds (every 50 ms, for at most `limit`), failing with
/// `what` if it never does. The limit only guards against a hang.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let polled = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(limit, polled)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"));
}

#[tokio::test]
async fn a_per_user_limit_is_exact_across_replicas_and_survives_a_redis_outage() {
    let Some(mut cluster) = Cluster::start(
        "cluster::a_per_user_limit_is_exact_across_replicas_and_survives_a_redis_outage",
        Options { per_user: LIMIT },
    )
    .await
    else {
        return;
    };
    let clerk = cluster.clerk().await;
    // Twice the limit, round-robin over the three: exactly the limit is let through.
    let statuses = cluster.lookups_round_robin(&clerk, 2 * LIMIT).await;
    assert_eq!(count(&statuses, 200), LIMIT, "{statuses:?}");
    assert_eq!(count(&statuses, 429), LIMIT, "{statuses:?}");

    // Redis goes away: each replica enforces its share of the limit alone (12 ÷ 3).
    cluster.redis.stop();
    let other = cluster
        .token("clerk-2", "clerk", &["--township", TOWNSHIP])
        .await;
    let during = cluster.lookups_round_robin(&other, 2 * LIMIT).await;
    assert_eq!(count(&during, 200), SHARE * REPLICAS, "{during:?}");
    assert_eq!(
        count(&during, 429),
        2 * LIMIT - SHARE * REPLICAS,
        "{during:?}"
    );

    // Redis is back (empty). A replica uses it again once one user gets more than
    // its local share there — probed with users of their own.
    cluster.redis.restart().await;
    for n in 0..REPLICAS {
        let mut probes = 0;
        eventually(
            "the replica uses Redis again",
            Duration::from_secs(60),
            || {
                probes += 1;
                let sub = format!("probe-{n}-{probes}");
                let cluster = &cluster;
                async move {
                    let probe = cluster
                        .token(&sub, "clerk", &["--township", TOWNSHIP])
                        .await;
                    for _ in 0..=SHARE {
                        if cluster.lookup_on(n, &probe).await.status != 200 {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
    }
    // … and the limit is exact across the three again.
    let third = cluster
        .token("clerk-3", "clerk", &["--township", TOWNSHIP])
        .await;
    let after = cluster.lookups_round_robin(&third, 2 * LIMIT).await;
    assert_eq!(count(&after, 200), LIMIT, "{after:?}");
}

/// The per-user limit of the limits test, and each replica's share of it.
const LIMIT: usize = 12;
const SHARE: usize = LIMIT / REPLICAS;

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_in_force_on_the_others() {
    let Some(cluster) = Cluster::start(
        "cluster::a_revocation_on_one_replica_is_in_force_on_the_others",
        Options { per_user: 1000 },
    )
    .await
    else {
        return;
    };
    let lead = cluster
        .token("lead-1", "township_lead", &["--township", TOWNSHIP])
        .await;
    let admin = cluster
        .token("psb-admin", "dept_admin", &["--department", "county-psb"])
        .await;
    let clerk = cluster.clerk().await;
    // A township asks on replica 1, the department approves on replica 2.
    let asked = post_json(
        &cluster.url(0, "/v1/access-requests"),
        &lead,
        &json!({
            "connector": "hukou",
            "operations": ["person_by_id"],
            "purposes": ["elderly_allowance"],
            "fields": { "name": "default", "birth_date": "default" },
            "justification": "窗口办理高龄津贴时需核对申请人年龄（仅限本乡镇）。",
        }),
    )
    .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let id = asked.json["id"].as_str().expect("an id").to_owned();
    let approved = post_json(
        &cluster.url(1, &format!("/v1/access-requests/{id}/approve")),
        &admin,
        &json!({ "quota": { "per_day": 100 } }),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);

    let elderly = |n: usize| {
        let clerk = clerk.clone();
        let url = cluster.url(n, "/v1/query");
        async move {
            let person = sample(sim::SampleKind::Pensioner);
            let mut body = lookup("hukou", "person_by_id", person.id.as_str());
            body["purpose"] = json!("elderly_allowance");
            post_json(&url, &clerk, &body).await
        }
    };
    let granted =
        |reply: &Reply| reply.status == 200 && reply.json["data"]["birth_date"] != Value::Null;
    // Every replica serves the grant once it knows it.
    for n in 0..REPLICAS {
        eventually("the grant is in force", Duration::from_secs(30), || async {
            granted(&elderly(n).await)
        })
        .await;
    }
    // A department's cache purge on replica 1 empties replica 2's copy too.
    let person = sample(sim::SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let replica_2 = cluster.url(1, "/v1/query");
    let on_2 = || post_json(&replica_2, &clerk, &body);
    on_2().await;
    assert_eq!(on_2().await.json["cache_hit"], true);
    let purged = post_json(
        &cluster.url(0, "/v1/admin/connectors/hukou/cache/purge"),
        &admin,
        &json!({}),
    )
    .await;
    assert_eq!(purged.status, 200, "{}", purged.text);
    eventually(
        "replica 2 asks the department again",
        Duration::from_secs(30),
        || async { on_2().await.json["cache_hit"] == false },
    )
    .await;

    // 收回 on replica 1: replicas 2 and 3 withhold the fields as soon as they hear.
    let revoked = post_json(
        &cluster.url(0, &format!("/v1/grants/{id}/revoke")),
        &admin,
        &json!({ "reason": "高龄津贴核对已改由民政系统完成。" }),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let revoked_at = std::time::Instant::now();
    for n in 1..REPLICAS {
        eventually(
            "the revocation is in force",
            Duration::from_secs(30),
            || async {
                let reply = elderly(n).await;
                reply.status == 200 && reply.json["data"]["birth_date"] == Value::Null
            },
        )
        .await;
    }
    // A figure for the record, not an assertion: how long the other replicas took to
    // put the revocation in force (the design's target is under a second).
    say(&format!(
        "revocation in force on the other replicas after {} ms",
        revoked_at.elapsed().as_millis()
    ));
}

#[tokio::test]
async fn a_killed_replica_loses_nothing_acknowledged_and_postgres_outages_release_no_data() {
    let Some(mut cluster) = Cluster::start(
        "cluster::a_killed_replica_loses_nothing_acknowledged_and_postgres_outages_release_no_data",
        Options { per_user: 100_000 },
    )
    .await
    else {
        return;
    };
    let clerk = cluster.clerk().await;
    // Steady load over the three from three clients at once; replica 2 is killed
    // (SIGKILL) in the middle of it, with requests in flight.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let victim = cluster.replicas[1]
        .as_ref()
        .and_then(Running::pid)
        .expect("a pid");
    let load = |client: usize| {
        let (cluster, clerk, answered) = (&cluster, &clerk, &answered);
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..30 {
                let n = (client + i) % REPLICAS;
                let person = sample(sim::SampleKind::Pensioner);
                let body = lookup("hukou", "person_by_id", person.id.as_str());
                let sent = crate::helpers::client()
                    .post(cluster.url(n, "/v1/query"))
                    .bearer_auth(clerk)
                    .json(&body)
                    .send()
                    .await;
                // A request to the killed replica fails; nothing was acknowledged.
                let Ok(response) = sent else { continue };
                let reply = Reply::read(response).await;
                if reply.status == 200 {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    acknowledged.push(reply.json["request_id"].as_str().expect("id").to_owned());
                }
            }
            acknowledged
        }
    };
    let kill = async {
        eventually("load is under way", Duration::from_secs(60), || async {
            answered.load(std::sync::atomic::Ordering::SeqCst) >= 20
        })
        .await;
        let killed = Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(killed.success());
    };
    let (loads, ()) = tokio::join!(futures::future::join_all((0..3).map(load)), kill);
    let mut acknowledged: Vec<String> = loads.into_iter().flatten().collect();
    assert!(acknowledged.len() >= 40, "{}", acknowledged.len());
    cluster.kill(1).await;
    // The killed replica comes back and continues a chain: no new one is made.
    let sql = cluster.sql().await;
    let before = chains(&sql).await;
    cluster.start_replica(1).await;
    let reply = cluster.lookup_on(1, &clerk).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    acknowledged.push(reply.json["request_id"].as_str().expect("id").to_owned());
    assert_eq!(
        chains(&sql).await,
        before,
        "the restarted replica took a chain back"
    );

    // Every answered lookup has its event.
    let found: i64 = sql
        .query_one(
            "SELECT count(DISTINCT request_id) FROM audit_events WHERE request_id = ANY($1)",
            &[&acknowledged],
        )
        .await
        .expect("the events are read")
        .get(0);
    assert_eq!(found as usize, acknowledged.len());
    let (intact, text) = cluster.verify().await;
    assert!(intact, "{text}");
    assert!(text.contains(&format!("in {before} chains")), "{text}");

    // The privacy officer on any replica reads every replica's events, newest first,
    // page by page.
    let officer = cluster.token("officer-1", "privacy_officer", &[]).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut before: Option<Value> = None;
    let mut times = Vec::new();
    loop {
        let mut filter = json!({"limit": 25, "filter": {"user": "clerk-1"}});
        if let Some(cursor) = &before {
            filter["before"] = cursor.clone();
        }
        let page = post_json(&cluster.url(2, "/v1/audit/search"), &officer, &filter).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for event in page.json["events"].as_array().expect("events") {
            seen.insert(event["request_id"].as_str().expect("id").to_owned());
            times.push(event["time"].as_str().expect("time").to_owned());
        }
        match &page.json["next"] {
            Value::Null => break,
            next => before = Some(next.clone()),
        }
    }
    for id in &acknowledged {
        assert!(seen.contains(id), "{id} is found by the search");
    }
    let out_of_order: Vec<_> = times.windows(2).filter(|w| w[0] < w[1]).collect();
    assert!(out_of_order.is_empty(), "newest first: {out_of_order:?}");

    // The same from the command line, on every chain: the export, a page of the
    // search, the citizen's report (by the county's pseudonym key) and the newest
    // county checkpoint; each use recorded like the API's.
    let (ok, out, err) = cluster
        .cli(&["audit", "export", "--format", "jsonl", "--user", "clerk-1"])
        .await;
    assert!(ok, "{err}");
    let exported: std::collections::BTreeSet<String> = out
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            event["request_id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(
        exported, seen,
        "the export holds what the API's search found"
    );
    let (ok, out, err) = cluster
        .cli(&["audit", "search", "--user", "clerk-1", "--limit", "5"])
        .await;
    assert!(ok, "{err}");
    let page: Value = serde_json::from_str(&out).expect("a JSON page");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(5), "{out}");
    let resident = sample(sim::SampleKind::Pensioner);
    let (ok, out, err) = cluster
        .cli(&[
            "audit",
            "report",
            "--id-number",
            resident.id.as_str(),
            "--json",
        ])
        .await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("a JSON report");
    let accesses = report["accesses"].as_array().map_or(0, Vec::len);
    assert!(accesses >= acknowledged.len(), "{accesses}: {out}");
    assert!(
        !out.contains(resident.id.as_str()),
        "the report masks the ID"
    );
    let (ok, out, err) = cluster.cli(&["audit", "checkpoint"]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("county-gateway audit county checkpoint v2\n"),
        "{out}"
    );
    let recorded: i64 = sql
        .query_one(
            "SELECT count(*) FROM audit_events WHERE body LIKE '%\"gateway-cli\"%'",
            &[],
        )
        .await
        .expect("the events are read")
        .get(0);
    assert_eq!(
        recorded, 3,
        "export, search and report from the command line are in the log"
    );

    // PostgreSQL out of reach: no lookup releases data.
    cluster.postgres.cut();
    for n in 0..REPLICAS {
        let reply = cluster.lookup_on(n, &clerk).await;
        reply.assert_problem(503, "audit-unavailable");
        assert!(reply.json.get("data").is_none(), "{}", reply.text);
    }
    // … and service returns by itself when it is back.
    cluster.postgres.restore();
    for n in 0..REPLICAS {
        eventually("service returns", Duration::from_secs(60), || async {
            cluster.lookup_on(n, &clerk).await.status == 200
        })
        .await;
    }

    // Tampering is caught: a row's body, a chain's tail, a whole chain.
    let (intact, text) = cluster.verify().await;
    assert!(intact, "{text}");
    sql.execute(
        "UPDATE audit_events SET body = replace(body, 'clerk-1', 'clerk-9')
          WHERE (chain_id, seq) = (SELECT chain_id, seq FROM audit_events ORDER BY pos LIMIT 1 OFFSET 3)",
        &[],
    )
    .await
    .expect("tampered");
    let (intact, text) = cluster.verify().await;
    assert!(!intact, "{text}");
}

/// `gateway check` and `gateway migrate` against PostgreSQL as an operator meets them:
/// what is wrong said plainly, never the password.
#[tokio::test]
async fn check_and_migrate_say_what_is_wrong_with_postgres_without_the_password() {
    let test = "cluster::check_and_migrate_say_what_is_wrong_with_postgres_without_the_password";
    let Some(url) = testkit::services::postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let schema = testkit::services::schema_name();
    let parsed = url::Url::parse(&url).expect("a URL");
    let host = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432)
    );
    let database = parsed.path().trim_start_matches('/').to_owned();
    let closed = testkit::services::free_port();
    let cases = [
        // Nothing listens there.
        (
            format!("postgres://gw:s3cret-pw@127.0.0.1:{closed}/{database}"),
            "cannot be reached",
        ),
        // A role the server does not know.
        (
            format!("postgres://nosuchrole:s3cret-pw@{host}/{database}"),
            "refused the credentials",
        ),
    ];
    run_ok(&["token", "keygen", "--out", path(&root.join("data/keys"))]).await;
    crate::binary::write_front_database(root).await;
    for (address, said) in cases {
        write_store(root, &format!("url: {address}"), &schema);
        for command in ["check", "migrate"] {
            let out = Command::new(BINARY)
                .args([command, "--config", path(&root.join("county/gateway.yaml"))])
                .output()
                .await
                .expect("runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{command}: {text}");
            assert!(text.contains(said), "{command}: {text}");
            assert!(!text.contains("s3cret-pw"), "{command}: {text}");
        }
    }
    // The address from the environment: migrate brings the schema up, check says so.
    write_store(root, "url_env: GATEWAY_TEST_STORE_URL", &schema);
    let config = root.join("county/gateway.yaml");
    let run = |command: &'static str| {
        let config = config.clone();
        let url = url.clone();
        async move {
            let out = Command::new(BINARY)
                .args([command, "--config", path(&config)])
                .env("GATEWAY_TEST_STORE_URL", &url)
                .output()
                .await
                .expect("runs");
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
    };
    let (ok, text) = run("migrate").await;
    assert!(ok, "{text}");
    assert!(text.contains("went from version 0"), "{text}");
    let (ok, text) = run("migrate").await;
    assert!(ok && text.contains("nothing to do"), "{text}");
    let (ok, text) = run("check").await;
    assert!(ok, "{text}");
    assert!(text.contains(&format!("schema {schema}")), "{text}");
    let known = gateway::pg::migrations::known();
    assert!(
        text.contains(&format!("schema version {known} of {known}")),
        "{text}"
    );
    // `gateway audit archive` on the log in PostgreSQL: nothing three years old yet.
    let out = Command::new(BINARY)
        .args(["audit", "archive", "--config", path(&config)])
        .env("GATEWAY_TEST_STORE_URL", &url)
        .output()
        .await
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("nothing older than 1096 days"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the county with `store: postgres` given by `address_line` (`url: …` or
/// `url_env: …`) and `schema`.
fn write_store(root: &Path, address_line: &str, schema: &str) {
    write_county(root, |path, text| {
        if path == "county/gateway.yaml" {
            text.edit(
                "data_dir: ../data\n",
                &format!(
                    "data_dir: ../data\nstore:\n  kind: postgres\n  {address_line}\n  schema: {schema}\n  connect_timeout_ms: 2000\n"
                ),
            )
        } else {
            text.to_owned()
        }
    });
}

/// The deploy files an operator starts from: `deploy/gateway.yaml` loads as `serve`
/// loads it, on PostgreSQL and Redis with its secrets from the environment, and
/// `deploy/compose/compose.yaml` runs three replicas of it behind the balancer.
#[test]
fn the_deploy_files_describe_three_replicas_on_postgres_and_redis() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let cfg = gateway::config::load(
        &gateway::config::DiskSource,
        &deploy.join("gateway.yaml"),
        &gateway::config::LoadOptions::default(),
    )
    .unwrap_or_else(|problems| panic!("deploy/gateway.yaml: {problems:?}"));
    let gateway::store::StoreSettings::Postgres(store) = &cfg.store else {
        panic!("deploy/gateway.yaml keeps its stores in PostgreSQL");
    };
    assert_eq!(store.url_env.as_deref(), Some("GATEWAY_POSTGRES_URL"));
    assert!(
        store.url.is_none(),
        "no address (and no password) in the file"
    );
    let redis = cfg.rate_limits.redis().expect("limits on Redis");
    assert_eq!(redis.server.url_env.as_deref(), Some("GATEWAY_REDIS_URL"));
    assert_eq!(
        cfg.pseudonym_key_env.as_deref(),
        Some("GATEWAY_PSEUDONYM_KEY")
    );

    let compose: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy.join("compose/compose.yaml")).expect("compose.yaml"),
    )
    .expect("compose.yaml is YAML");
    let services = compose["services"].as_object().expect("services");
    for service in ["postgres", "redis", "balancer", "departments", "keys"] {
        assert!(services.contains_key(service), "{service}");
    }
    let replicas: Vec<&String> = services
        .keys()
        .filter(|name| name.starts_with("gateway-"))
        .collect();
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let balancer =
        std::fs::read_to_string(deploy.join("compose/balancer.conf")).expect("balancer.conf");
    for port in ["8081", "8082", "8083"] {
        assert!(balancer.contains(&format!("127.0.0.1:{port}")), "{port}");
    }
}

/// Moving a county from one machine to many: the demo's data directory copied into
/// PostgreSQL, verified there from its first event with every event and checkpoint,
/// and a second copy into the same schema refused.
#[tokio::test]
async fn the_demos_data_dir_moves_to_postgres_and_verifies_there() {
    let test = "cluster::the_demos_data_dir_moves_to_postgres_and_verifies_there";
    let Some(url) = testkit::services::postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("county-data");
    let mut demo = Running::demo(&data_dir);
    let gateway = url_in(&demo.line(|l| l.trim_start().starts_with("gateway")).await);
    let allowed = demo.line(|l| l.trim_start().starts_with("curl")).await;
    demo.line(|l| l.contains("Ctrl-C stops")).await;
    let (token, body) = crate::binary::curl_parts(&allowed);
    let request: Value = serde_json::from_str(&body).expect("JSON");
    for _ in 0..3 {
        let reply = post_json(&format!("{gateway}/v1/query"), &token, &request).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    demo.terminate().await;
    let on_file = Command::new(BINARY)
        .args(["audit", "verify", "--data-dir", path(&data_dir)])
        .output()
        .await
        .expect("verify runs");
    let on_file = String::from_utf8_lossy(&on_file.stdout).into_owned();
    let events = on_file
        .split("audit log intact: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the event count")
        .to_owned();

    let schema = testkit::services::schema_name();
    let moved = |expect_ok: bool| {
        let (url, schema, data_dir) = (url.clone(), schema.clone(), data_dir.clone());
        async move {
            let out = Command::new(BINARY)
                .args(["migrate-store", "--from", path(&data_dir)])
                .args(["--to-env", "GATEWAY_TEST_MOVE_TO", "--schema", &schema])
                .env("GATEWAY_TEST_MOVE_TO", &url)
                .output()
                .await
                .expect("migrate-store runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.success(), expect_ok, "{text}");
            text
        }
    };
    let text = moved(true).await;
    assert!(text.contains("registry: revision"), "{text}");
    assert!(
        text.contains("verified in ") && text.contains(&format!(": {events} events")),
        "{events} events on file: {text}"
    );
    // The same log again: refused, nothing doubled.
    let again = moved(false).await;
    assert!(again.contains("was copied before"), "{again}");
}
