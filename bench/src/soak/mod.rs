//! `gateway-bench soak`: a running gateway under a steady mixed load for minutes, its
//! process sampled at a fixed interval, and a verdict on whether it stays flat.
//!
//! The load, each stream paced on its own schedule (open loop, far below saturation):
//! clerks' lookups (`/v1/query`), form fills, the privacy officer's searches and
//! citizen reports, configuration changes through the admin API (a registered
//! connector's new version put in force and rolled back, the record cache purged) and,
//! every minute, a grant approved and revoked with the clerk's lookup after the
//! revocation refused the fields (an intended refusal). Every interval it samples the
//! gateway's RSS, open files, threads and CPU ([`probe`]), the requests of the interval
//! (p50, p99, errors by kind) and `gateway_audit_queue_depth`; at the end it writes a
//! markdown report ([`report`]) and a plot ([`plot`]) and fails when a target is
//! missed (see [`report::verdicts`]). `bench/soak` starts the processes and stops them.

mod plot;
mod probe;
mod report;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::load::{micros, percentile};

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// The gateway's base URL, e.g. `http://127.0.0.1:18080`.
    #[arg(long)]
    url: String,
    /// The gateway's process id, sampled in `/proc`.
    #[arg(long)]
    pid: u32,
    /// Other processes of the run (the simulated departments): their CPU is told apart
    /// from the machine's other work. Repeatable.
    #[arg(long = "side-pid")]
    side_pids: Vec<u32>,
    /// The directory `gateway-bench fixtures` wrote (tokens, `ids.txt`).
    #[arg(long)]
    fixtures: PathBuf,
    /// The simulated 户籍 system's base URL, for the connector the configuration
    /// changes register.
    #[arg(long)]
    hukou_url: String,
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Lookups a second.
    #[arg(long, default_value_t = 40)]
    lookup_rate: u32,
    /// Form fills a second (three departments each).
    #[arg(long, default_value_t = 4)]
    form_rate: u32,
    /// Privacy officer searches and reports a second.
    #[arg(long, default_value_t = 1)]
    search_rate: u32,
    /// Seconds between configuration changes (each applied and reverted).
    #[arg(long, default_value_t = 30)]
    change_every_s: u64,
    /// Seconds between revocations (a grant approved, used, revoked, refused).
    #[arg(long, default_value_t = 60)]
    revoke_every_s: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample_every_s: u64,
    /// Lookups sent before the clock starts, as fast as [`PRELOAD_CONNECTIONS`]
    /// connections take them: the audit index then outgrows its page cache (64 MiB,
    /// ~40,000 events) as a county's gateway in service has, so that the run measures
    /// the steady state and not caches filling from an empty data directory. 0: none.
    #[arg(long, default_value_t = 80_000)]
    preload_events: u64,
    /// Seconds of warm-up, left out of the p99 comparison.
    #[arg(long, default_value_t = 60)]
    warmup_s: u64,
    /// The last seconds of the run over which RSS and open files must stay flat.
    #[arg(long, default_value_t = 300)]
    flat_window_s: u64,
    /// The form the fills use.
    #[arg(long, default_value = "bench-three-departments")]
    form: String,
    /// The markdown report to write.
    #[arg(long)]
    out_md: PathBuf,
    /// The plot to write (PNG).
    #[arg(long)]
    out_png: PathBuf,
    /// The samples as JSON, to keep beside the run's logs.
    #[arg(long)]
    out_json: Option<PathBuf>,
    /// `KEY=VALUE` lines for the report's header (commit, build, a note on the
    /// machine's other work); repeatable.
    #[arg(long = "about", value_name = "KEY=VALUE")]
    about: Vec<String>,
}

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    Lookup,
    Form,
    Privacy,
    Change,
    Revocation,
}

impl Kind {
    pub(super) const ALL: [Kind; 5] = [
        Kind::Lookup,
        Kind::Form,
        Kind::Privacy,
        Kind::Change,
        Kind::Revocation,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Lookup => "lookup",
            Kind::Form => "form fill",
            Kind::Privacy => "privacy search",
            Kind::Change => "config change",
            Kind::Revocation => "revocation",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// Refused as it should be (a 429, the lookup after a revocation).
    Intended(String),
    /// Anything else: the kind, never a body.
    Error(String),
}

#[derive(Debug)]
struct Record {
    kind: Kind,
    latency: Duration,
    outcome: Outcome,
}

/// One sample: the process, and the requests answered since the previous sample.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Sample {
    /// Seconds since the load started.
    pub(super) t_s: f64,
    pub(super) rss_kib: u64,
    /// Open descriptors other than sockets.
    pub(super) fds: u64,
    pub(super) sockets: u64,
    pub(super) threads: u64,
    /// The gateway's CPU in the interval, % of one core.
    pub(super) gateway_cpu: f64,
    /// The machine's CPU used by anything but the gateway, the departments and this
    /// client, % of one core.
    pub(super) other_cpu: f64,
    pub(super) load1: f64,
    pub(super) audit_queue: Option<f64>,
    pub(super) requests: u64,
    pub(super) intended: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) p50_us: u64,
    pub(super) p99_us: u64,
    pub(super) lookup_p99_us: u64,
    /// The slowest configuration change or revocation step of the interval.
    pub(super) admin_max_us: u64,
}

/// Everything the report is made of.
#[derive(Debug, Serialize)]
pub(super) struct Run {
    pub(super) started: String,
    pub(super) duration_s: u64,
    pub(super) warmup_s: u64,
    pub(super) flat_window_s: u64,
    pub(super) load: String,
    pub(super) about: Vec<(String, String)>,
    pub(super) machine: Vec<(String, String)>,
    pub(super) samples: Vec<Sample>,
    /// Requests and outcomes over the whole run, per kind.
    pub(super) totals: BTreeMap<Kind, Totals>,
    /// p50 and p99 of every request answered after warm-up, first half and last half.
    pub(super) halves: [(u64, u64); 2],
}

#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Totals {
    pub(super) requests: u64,
    pub(super) ok: u64,
    pub(super) intended: BTreeMap<String, u64>,
    pub(super) errors: BTreeMap<String, u64>,
}

pub(crate) async fn soak(args: SoakArgs) -> Result<(), String> {
    // The client runs on one thread of its own (as `load` does), so it competes as
    // little as it can with the gateway for the cores.
    let client = std::thread::Builder::new()
        .name("bench-soak".to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the client's runtime: {e}"))?
                .block_on(run(args))
        })
        .map_err(|e| format!("cannot start the client's thread: {e}"))?;
    tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the client's thread panicked".to_owned())?
}

/// The tokens and subjects of the run.
struct Ctx {
    http: reqwest::Client,
    base: String,
    clerk: String,
    lead: String,
    psb_admin: String,
    governance: String,
    privacy: String,
    operator: String,
    ids: Vec<String>,
}

/// An answer: status and JSON body, or how the request failed.
struct Reply {
    latency: Duration,
    status: u16,
    json: Value,
    failed: Option<String>,
}

impl Reply {
    fn outcome(&self) -> Outcome {
        if let Some(kind) = &self.failed {
            return Outcome::Error(kind.clone());
        }
        match self.status {
            200..=299 => Outcome::Ok,
            429 => Outcome::Intended("429 rate-limited".to_owned()),
            status => Outcome::Error(self.problem(status)),
        }
    }

    /// `STATUS problem-type`: the problem's `type` names the kind and carries no data.
    fn problem(&self, status: u16) -> String {
        let kind = self.json["type"]
            .as_str()
            .map(|t| t.trim_start_matches("/problems/").to_owned())
            .unwrap_or_default();
        format!("{status} {kind}").trim_end().to_owned()
    }

    fn ok(&self) -> bool {
        self.failed.is_none() && (200..300).contains(&self.status)
    }
}

impl Ctx {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Reply {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let outcome = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let latency = started.elapsed();
        match outcome {
            Ok((status, bytes)) => Reply {
                latency,
                status,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                failed: None,
            },
            Err(e) => Reply {
                latency,
                status: 0,
                json: Value::Null,
                failed: Some(
                    if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect"
                    } else {
                        "transport"
                    }
                    .to_owned(),
                ),
            },
        }
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    fn id(&self, i: u64) -> &str {
        let n = usize::try_from(i).unwrap_or(0) % self.ids.len();
        &self.ids[n]
    }

    fn lookup_body(&self, i: u64, purpose: &str) -> Value {
        json!({
            "connector": "hukou",
            "operation": "person_by_id",
            "subject": {"id_number": self.id(i)},
            "purpose": purpose,
            "case_id": "SOAK-1",
        })
    }
}

fn read_token(fixtures: &Path, rel: &str) -> Result<String, String> {
    let path = fixtures.join(rel);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The connector the configuration changes edit: the 县公安局's, open fields only,
/// served by the simulated 户籍 system. `total_ms` tells its versions apart.
fn connector(hukou_url: &str, total_ms: u64) -> Value {
    json!({
        "definition": {
            "id": SOAK_CONNECTOR,
            "title": "户籍所在地核验（soak）",
            "department": {"id": "county-psb"},
            "kind": "http",
            "base_url": hukou_url,
            "timeouts": {"connect_ms": 1000, "total_ms": total_ms},
            "envelope": {"status": "/code", "ok": [0], "not_found": [404], "data": "/data"},
            "code_tables": {"status": {"0": "normal", "1": "moved_out", "2": "deceased"}},
            "operations": {
                "residence_by_id": {
                    "title": "按公民身份号码核验户籍所在地",
                    "subject": "id_number",
                    "request": {"method": "POST", "path": "/rkxx/api/v1/person", "body": {"sfzh": "$subject"}},
                    "schema": "soak-residence/residence.schema.json",
                    "record": {
                        "township_code": {"from": "/xzqh", "title": "乡镇（街道）代码", "pii": "none", "sharing": "open"},
                        "village_code": {"from": "/cun", "title": "村（社区）代码", "pii": "none", "sharing": "open"},
                        "status": {"from": "/ryzt", "title": "人员状态", "transform": {"code": "status"}, "pii": "code", "sharing": "open"},
                    },
                },
            },
        },
        "schemas": {
            "soak-residence/residence.schema.json": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "additionalProperties": false,
                "required": ["township_code", "village_code", "status"],
                "properties": {
                    "township_code": {"type": "string", "pattern": "^[0-9]{9}$"},
                    "village_code": {"type": "string", "pattern": "^[0-9]{12}$"},
                    "status": {"enum": ["normal", "moved_out", "deceased"]},
                },
            },
        },
    })
}

const SOAK_CONNECTOR: &str = "soak-residence";
/// The version in force that every change reverts to.
const BASE_TOTAL_MS: u64 = 3000;
/// The purpose the revocation's grant is for (the clerk has no grant of `name` for it).
const GRANT_PURPOSE: &str = "rural_housing";

/// Puts the soak connector in force before the load starts (the governance office
/// approves it: new open fields loosen the classification). Returns its version.
async fn register(ctx: &Ctx, hukou_url: &str) -> Result<u64, String> {
    let path = format!("/v1/admin/connectors/{SOAK_CONNECTOR}");
    let saved = ctx
        .call(
            reqwest::Method::PUT,
            &path,
            &ctx.psb_admin,
            Some(&connector(hukou_url, BASE_TOTAL_MS)),
        )
        .await;
    if !saved.ok() {
        return Err(format!(
            "registering {SOAK_CONNECTOR}: {} {}",
            saved.status, saved.json
        ));
    }
    let version = saved.json["version"]
        .as_u64()
        .ok_or_else(|| format!("registering {SOAK_CONNECTOR}: no version in {}", saved.json))?;
    let step = match saved.json["state"].as_str() {
        Some("awaiting_review") => {
            ctx.post(
                &format!("{path}/versions/{version}/approve"),
                &ctx.governance,
                &json!({"note": "soak: open fields only"}),
            )
            .await
        }
        _ => {
            ctx.call(
                reqwest::Method::POST,
                &format!("{path}/versions/{version}/activate"),
                &ctx.psb_admin,
                None,
            )
            .await
        }
    };
    if !step.ok() {
        return Err(format!(
            "putting {SOAK_CONNECTOR} in force: {} {}",
            step.status, step.json
        ));
    }
    let shown = ctx
        .call(reqwest::Method::GET, &path, &ctx.psb_admin, None)
        .await;
    if shown.json["active"].as_u64() != Some(version) {
        return Err(format!(
            "{SOAK_CONNECTOR} version {version} is not in force: {}",
            shown.json
        ));
    }
    Ok(version)
}

/// One configuration change, applied and reverted: a new version of the soak
/// connector saved and put in force, the base version rolled back to, and the 户籍
/// cache purged.
async fn change(ctx: &Ctx, tx: &mpsc::UnboundedSender<Record>, n: u64, base: u64, hukou_url: &str) {
    let path = format!("/v1/admin/connectors/{SOAK_CONNECTOR}");
    let total_ms = BASE_TOTAL_MS + 500 * (1 + n % 2);
    let saved = ctx
        .call(
            reqwest::Method::PUT,
            &path,
            &ctx.psb_admin,
            Some(&connector(hukou_url, total_ms)),
        )
        .await;
    send(tx, Kind::Change, &saved, None);
    let Some(version) = saved.json["version"].as_u64() else {
        return;
    };
    let activated = ctx
        .call(
            reqwest::Method::POST,
            &format!("{path}/versions/{version}/activate"),
            &ctx.psb_admin,
            None,
        )
        .await;
    send(tx, Kind::Change, &activated, None);
    let rolled_back = ctx
        .post(
            &format!("{path}/rollback"),
            &ctx.psb_admin,
            &json!({"version": base}),
        )
        .await;
    send(tx, Kind::Change, &rolled_back, None);
    let purged = ctx
        .post(
            "/v1/admin/connectors/hukou/cache/purge",
            &ctx.psb_admin,
            &json!({"reason": "soak: cache purge"}),
        )
        .await;
    send(tx, Kind::Change, &purged, None);
}

/// Whether a lookup's answer shows the subject's name.
fn shows_name(reply: &Reply) -> bool {
    reply.ok() && reply.json["data"].get("name").is_some()
}

/// One revocation: the township lead asks for the name for [`GRANT_PURPOSE`], the
/// 县公安局 approves it with a quota, the clerk's lookup shows the name, the grant is
/// revoked, and the clerk's next lookup must withhold it again (an intended refusal).
async fn revocation(ctx: &Ctx, tx: &mpsc::UnboundedSender<Record>, n: u64) {
    let asked = ctx
        .post(
            "/v1/access-requests",
            &ctx.lead,
            &json!({
                "connector": "hukou",
                "operations": ["person_by_id"],
                "purposes": [GRANT_PURPOSE],
                "fields": {"name": "default"},
                "roles": ["clerk"],
                "justification": "农民建房申请需核对申请人姓名（soak）",
            }),
        )
        .await;
    send(tx, Kind::Revocation, &asked, None);
    let Some(id) = asked.json["id"].as_str().map(str::to_owned) else {
        return;
    };
    let approved = ctx
        .post(
            &format!("/v1/access-requests/{id}/approve"),
            &ctx.psb_admin,
            &json!({"fields": {"name": "keep"}, "quota": {"per_day": 200}, "note": "soak"}),
        )
        .await;
    send(tx, Kind::Revocation, &approved, None);
    if !approved.ok() {
        return;
    }
    let body = ctx.lookup_body(n * 7 + 3, GRANT_PURPOSE);
    let granted = ctx.post("/v1/query", &ctx.clerk, &body).await;
    let check = (!shows_name(&granted) && granted.ok())
        .then(|| Outcome::Error("grant not in force".to_owned()));
    send(tx, Kind::Revocation, &granted, check);
    let revoked = ctx
        .post(
            &format!("/v1/grants/{id}/revoke"),
            &ctx.psb_admin,
            &json!({"reason": "soak: 审批已结束"}),
        )
        .await;
    send(tx, Kind::Revocation, &revoked, None);
    if !revoked.ok() {
        return;
    }
    let after = ctx.post("/v1/query", &ctx.clerk, &body).await;
    let check = if after.ok() && !shows_name(&after) {
        Outcome::Intended("name withheld after revocation".to_owned())
    } else if after.ok() {
        Outcome::Error("revocation not in force".to_owned())
    } else {
        after.outcome()
    };
    send(tx, Kind::Revocation, &after, Some(check));
}

fn send(tx: &mpsc::UnboundedSender<Record>, kind: Kind, reply: &Reply, check: Option<Outcome>) {
    // The collector outlives every stream; a send after it stopped has nobody to tell.
    let _ = tx.send(Record {
        kind,
        latency: reply.latency,
        outcome: check.unwrap_or_else(|| reply.outcome()),
    });
}

/// Calls `request(i)` every `period` until `until`, each on its own task (open loop:
/// on schedule whatever the answers do), then waits for the last answers.
async fn paced<F, Fut>(period: Duration, until: tokio::time::Instant, mut request: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let mut ticks = tokio::time::interval(period);
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0;
    loop {
        let at = ticks.tick().await;
        if at >= until {
            break;
        }
        tasks.spawn_local(request(i));
        i += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Connections the preload sends its lookups on, each one after another.
const PRELOAD_CONNECTIONS: usize = 16;

/// `n` lookups before the clock starts (see [`SoakArgs::preload_events`]); any
/// answer but 200 stops the soak.
async fn preload(ctx: &std::rc::Rc<Ctx>, n: u64) -> Result<(), String> {
    let next = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..PRELOAD_CONNECTIONS {
        let (ctx, next) = (ctx.clone(), next.clone());
        workers.spawn_local(async move {
            loop {
                let i = next.get();
                if i >= n {
                    return Ok(());
                }
                next.set(i + 1);
                let reply = ctx
                    .post(
                        "/v1/query",
                        &ctx.clerk,
                        &ctx.lookup_body(i, "birth_registration"),
                    )
                    .await;
                if !reply.ok() {
                    return Err(format!(
                        "preload lookup {i}: {}",
                        reply.problem(reply.status)
                    ));
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn period(per_second: u32) -> Duration {
    Duration::from_secs(1) / per_second.max(1)
}

async fn run(args: SoakArgs) -> Result<(), String> {
    tokio::task::LocalSet::new()
        .run_until(Box::pin(run_local(args)))
        .await
}

async fn run_local(args: SoakArgs) -> Result<(), String> {
    let fixtures = &args.fixtures;
    let ids: Vec<String> = std::fs::read_to_string(fixtures.join("ids.txt"))
        .map_err(|e| format!("{}/ids.txt: {e}", fixtures.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err("no IDs in ids.txt".to_owned());
    }
    let persona = |name: &str| {
        read_token(
            fixtures,
            &format!("{}/{name}.jwt", crate::fixtures::PERSONAS_DIR),
        )
    };
    let ctx = std::rc::Rc::new(Ctx {
        http: reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(256)
            // Connections opened while the machine stalled close once idle, rather
            // than sit in the pool (and in the gateway's descriptors) for 90 s.
            .pool_idle_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        base: args.url.trim_end_matches('/').to_owned(),
        clerk: read_token(fixtures, "token.jwt")?,
        lead: persona("lead-dongling")?,
        psb_admin: persona("admin-psb")?,
        governance: persona("governance")?,
        privacy: persona("privacy-officer")?,
        operator: read_token(fixtures, "operator.jwt")?,
        ids,
    });

    // Before the clock starts: the connector the changes edit, and the fact that the
    // clerk has no name for the grant's purpose until a grant gives it.
    let base = register(&ctx, &args.hukou_url).await?;
    let before = ctx
        .post("/v1/query", &ctx.clerk, &ctx.lookup_body(3, GRANT_PURPOSE))
        .await;
    if !before.ok() || shows_name(&before) {
        return Err(format!(
            "the clerk's {GRANT_PURPOSE} lookup should answer 200 without the name before any grant; got {}",
            before.problem(before.status)
        ));
    }

    preload(&ctx, args.preload_events).await?;

    let duration = Duration::from_secs_f64((args.minutes * 60.0).max(1.0));
    let every = Duration::from_secs(args.sample_every_s.max(1));
    let start = tokio::time::Instant::now();
    let until = start + duration;
    let started = std::time::SystemTime::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();

    let mut streams = tokio::task::JoinSet::new();
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        streams.spawn_local(paced(period(args.lookup_rate), until, move |i| {
            let (ctx, tx) = (ctx.clone(), tx.clone());
            async move {
                let reply = ctx
                    .post(
                        "/v1/query",
                        &ctx.clerk,
                        &ctx.lookup_body(i, "birth_registration"),
                    )
                    .await;
                send(&tx, Kind::Lookup, &reply, None);
            }
        }));
    }
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        let path = format!("/v1/forms/{}/fill", args.form);
        streams.spawn_local(paced(period(args.form_rate), until, move |i| {
            let (ctx, tx, path) = (ctx.clone(), tx.clone(), path.clone());
            async move {
                let body =
                    json!({"subject": {"id_number": ctx.id(i * 13 + 1)}, "case_id": "SOAK-FORM"});
                let reply = ctx.post(&path, &ctx.clerk, &body).await;
                send(&tx, Kind::Form, &reply, None);
            }
        }));
    }
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        streams.spawn_local(paced(period(args.search_rate), until, move |i| {
            let (ctx, tx) = (ctx.clone(), tx.clone());
            async move {
                let id = ctx.id(i * 31 + 2).to_owned();
                let (path, body) = match i % 3 {
                    0 => ("/v1/audit/search", json!({"filter": {"id_number": id}, "limit": 20})),
                    1 => (
                        "/v1/audit/search",
                        json!({"filter": {"connector": "hukou", "purpose": "birth_registration"}, "limit": 50}),
                    ),
                    _ => ("/v1/audit/report", json!({"id_number": id})),
                };
                let reply = ctx.post(path, &ctx.privacy, &body).await;
                send(&tx, Kind::Privacy, &reply, None);
            }
        }));
    }
    {
        // Changes and revocations run one step after another, each on its own
        // schedule, half a period apart from the samples' boundaries.
        let (ctx, tx, url) = (ctx.clone(), tx.clone(), args.hukou_url.clone());
        let period = Duration::from_secs(args.change_every_s.max(1));
        streams.spawn_local(async move {
            tokio::time::sleep(period / 2).await;
            let mut n = 0;
            let mut ticks = tokio::time::interval(period);
            while ticks.tick().await < until {
                change(&ctx, &tx, n, base, &url).await;
                n += 1;
            }
        });
    }
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        let period = Duration::from_secs(args.revoke_every_s.max(1));
        streams.spawn_local(async move {
            tokio::time::sleep(period / 3).await;
            let mut n = 0;
            let mut ticks = tokio::time::interval(period);
            while ticks.tick().await < until {
                revocation(&ctx, &tx, n).await;
                n += 1;
            }
        });
    }
    drop(tx);

    // The sampler: a baseline at 0, then one sample per interval until the end.
    let mut samples = Vec::new();
    let mut totals: BTreeMap<Kind, Totals> = BTreeMap::new();
    let warmup = Duration::from_secs(args.warmup_s);
    let half = warmup + duration.saturating_sub(warmup) / 2;
    let mut halves: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut last = Reading::take(&args, &ctx).await?;
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    samples.push(last.sample(None, 0.0, Window::default()));
    loop {
        let at = ticks.tick().await;
        let mut window = Window::default();
        while let Ok(record) = rx.try_recv() {
            let since = at.saturating_duration_since(start);
            window.add(&record, &mut totals);
            if since > warmup {
                halves[usize::from(since > half)].push(micros(record.latency));
            }
        }
        let reading = Reading::take(&args, &ctx).await?;
        let t = at.saturating_duration_since(start).as_secs_f64();
        samples.push(reading.sample(Some(&last), t, window));
        last = reading;
        if at >= until {
            break;
        }
    }
    // The last answers, after the last sample: their errors count all the same.
    while streams.join_next().await.is_some() {}
    while let Ok(record) = rx.try_recv() {
        Window::default().add(&record, &mut totals);
    }

    let halves = halves.map(|mut h| {
        h.sort_unstable();
        (percentile(&h, 500), percentile(&h, 990))
    });
    let run = Run {
        started: report::utc(started),
        duration_s: duration.as_secs(),
        warmup_s: args.warmup_s,
        flat_window_s: args
            .flat_window_s
            .min(duration.saturating_sub(warmup).as_secs()),
        load: format!(
            "{} lookups first, as fast as {PRELOAD_CONNECTIONS} connections take them (before the clock starts: the audit \
             index outgrows its page cache); then {} lookups/s (`/v1/query`, 户籍), {} form fills/s (`{}`, one lookup in each of three departments), \
             {} privacy officer searches or citizen reports/s, a configuration change every {} s \
             (a new version of a registered connector put in force and rolled back, the 户籍 cache purged: 4 admin requests), \
             a grant approved and revoked every {} s (the clerk's lookup after the revocation must withhold the field: an intended refusal)",
            args.preload_events,
            args.lookup_rate,
            args.form_rate,
            args.form,
            args.search_rate,
            args.change_every_s,
            args.revoke_every_s
        ),
        about: args
            .about
            .iter()
            .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        machine: probe::machine(),
        samples,
        totals,
        halves,
    };
    if let Some(path) = &args.out_json {
        let text = serde_json::to_string_pretty(&run).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let verdicts = report::verdicts(&run);
    std::fs::write(
        &args.out_md,
        report::markdown(&run, &verdicts, &args.out_png),
    )
    .map_err(|e| format!("{}: {e}", args.out_md.display()))?;
    plot::draw(&run, &args.out_png)?;
    let missed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| v.target.as_str())
        .collect();
    if missed.is_empty() {
        println!("soak: every target met; {}", args.out_md.display());
        Ok(())
    } else {
        Err(format!("soak targets missed: {}", missed.join("; ")))
    }
}

/// The requests answered in one interval.
#[derive(Default)]
struct Window {
    all: Vec<u64>,
    lookups: Vec<u64>,
    admin_max_us: u64,
    intended: u64,
    errors: BTreeMap<String, u64>,
}

impl Window {
    fn add(&mut self, record: &Record, totals: &mut BTreeMap<Kind, Totals>) {
        let us = micros(record.latency);
        self.all.push(us);
        match record.kind {
            Kind::Lookup => self.lookups.push(us),
            Kind::Change | Kind::Revocation => self.admin_max_us = self.admin_max_us.max(us),
            Kind::Form | Kind::Privacy => {}
        }
        let total = totals.entry(record.kind).or_default();
        total.requests += 1;
        match &record.outcome {
            Outcome::Ok => total.ok += 1,
            Outcome::Intended(why) => {
                self.intended += 1;
                *total.intended.entry(why.clone()).or_default() += 1;
            }
            Outcome::Error(kind) => {
                *self.errors.entry(kind.clone()).or_default() += 1;
                *total.errors.entry(kind.clone()).or_default() += 1;
            }
        }
    }
}

/// The process and the machine at one moment.
struct Reading {
    at: Instant,
    gateway: probe::ProcessReading,
    /// CPU ticks of the departments and this client.
    ours_ticks: u64,
    machine_busy: u64,
    load1: f64,
    audit_queue: Option<f64>,
}

impl Reading {
    async fn take(args: &SoakArgs, ctx: &Ctx) -> Result<Reading, String> {
        let audit_queue = match tokio::time::timeout(
            Duration::from_secs(2),
            ctx.http
                .get(format!("{}/metrics", ctx.base))
                .bearer_auth(&ctx.operator)
                .send(),
        )
        .await
        {
            Ok(Ok(response)) => response
                .text()
                .await
                .ok()
                .and_then(|text| probe::metric(&text, "gateway_audit_queue_depth")),
            _ => None,
        };
        let gateway = probe::process(args.pid)
            .map_err(|e| format!("the gateway stopped during the soak: {e}"))?;
        let ours_ticks = args
            .side_pids
            .iter()
            .map(|pid| probe::cpu_ticks(&Path::new("/proc").join(pid.to_string()).join("stat")))
            .sum::<u64>()
            + probe::cpu_ticks(Path::new("/proc/self/stat"));
        Ok(Reading {
            at: Instant::now(),
            gateway,
            ours_ticks,
            machine_busy: probe::machine_ticks().0,
            load1: probe::load_average(),
            audit_queue,
        })
    }

    fn sample(&self, previous: Option<&Reading>, t_s: f64, mut window: Window) -> Sample {
        let (gateway_cpu, other_cpu) = previous.map_or((0.0, 0.0), |p| {
            let seconds = self.at.duration_since(p.at).as_secs_f64();
            let gateway = self.gateway.cpu_ticks.saturating_sub(p.gateway.cpu_ticks);
            let ours = self.ours_ticks.saturating_sub(p.ours_ticks);
            let busy = self.machine_busy.saturating_sub(p.machine_busy);
            (
                probe::percent_of_core(gateway, seconds),
                probe::percent_of_core(busy.saturating_sub(gateway + ours), seconds),
            )
        });
        window.all.sort_unstable();
        window.lookups.sort_unstable();
        Sample {
            t_s,
            rss_kib: self.gateway.rss_kib,
            fds: self.gateway.fds,
            sockets: self.gateway.sockets,
            threads: self.gateway.threads,
            gateway_cpu,
            other_cpu,
            load1: self.load1,
            audit_queue: self.audit_queue,
            requests: u64::try_from(window.all.len()).unwrap_or(u64::MAX),
            intended: window.intended,
            errors: window.errors,
            p50_us: percentile(&window.all, 500),
            p99_us: percentile(&window.all, 990),
            lookup_p99_us: percentile(&window.lookups, 990),
            admin_max_us: window.admin_max_us,
        }
    }
}
