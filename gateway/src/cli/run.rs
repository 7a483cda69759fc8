//! The long-running commands: `demo`, `serve` (HTTP or HTTPS) and `simulate`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sim::{Department, Faults};

use super::{finish, report, shutdown_signal};
use crate::config::{self, DiskSource, LoadOptions};
use crate::demo::{self, DemoOptions};
use crate::live::{ChangeError, Live};
use crate::startup::{Application, Settings};
use crate::store::Storage;

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data directory; by default `demo-data` under the working directory.
    #[arg(long, default_value = "demo-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
}

#[derive(Debug, Args)]
struct PopulationArgs {
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = demo::SEED)]
    seed: u64,
    /// Least number of synthetic residents.
    #[arg(long, default_value_t = demo::RESIDENTS)]
    residents: usize,
}

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The gateway configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Overrides the configuration's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Overrides the configuration's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ServeArgs {
    /// The configuration file it serves.
    pub(super) fn config(&self) -> &std::path::Path {
        &self.config
    }
}

#[derive(Debug, Args)]
pub(super) struct SimulateArgs {
    /// Address of the household registration system (户籍).
    #[arg(long, default_value = "127.0.0.1:18101")]
    hukou: SocketAddr,
    /// Address of the social insurance system (社保).
    #[arg(long, default_value = "127.0.0.1:18102")]
    shebao: SocketAddr,
    /// Address of the family planning / births system (计生).
    #[arg(long, default_value = "127.0.0.1:18103")]
    jisheng: SocketAddr,
    /// Faults a department starts with, e.g. `hukou={"latency_ms":20}`; repeatable.
    /// Fields: latency_ms, error_rate, malformed_json, schema_violation, extra_fields,
    /// oversized_bytes, hang. At run time: PUT /__sim/faults on the department.
    #[arg(long = "faults", value_name = "DEPT=JSON", value_parser = parse_faults)]
    faults: Vec<(Department, Faults)>,
    /// Where the civil-affairs department (民政) exports its records, written afresh
    /// at start: `sqlite:PATH` (the file county/gateway.yaml reads), or a server on
    /// this machine, `mysql://root@127.0.0.1:3306/test` or
    /// `postgres://postgres@127.0.0.1:5432/test`.
    #[arg(
        long = "front-db",
        value_name = "URL",
        default_value = "sqlite:data/front/minzheng.db"
    )]
    front_db: String,
    /// Only write the front database, then exit (start no department system).
    #[arg(long)]
    front_db_only: bool,
    #[command(flatten)]
    population: PopulationArgs,
}

fn parse_faults(arg: &str) -> Result<(Department, Faults), String> {
    let (id, json) = arg
        .split_once('=')
        .ok_or("expected DEPT=JSON, e.g. hukou={\"latency_ms\":20}")?;
    let department = Department::from_id(id)
        .ok_or_else(|| format!("unknown department `{id}`; use hukou, shebao or jisheng"))?;
    let faults: Faults = serde_json::from_str(json).map_err(|e| format!("faults JSON: {e}"))?;
    faults.validate().map_err(|e| e.to_string())?;
    Ok((department, faults))
}

/// How a process names itself in the data directory's lock file.
pub(super) fn holder() -> String {
    format!(
        "gateway pid {}, started {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Runs a parsed command line.
pub(super) async fn run_serve(args: ServeArgs) -> ExitCode {
    // The store holds the registry, so find it (and the data directory) before
    // loading the rest.
    let plain = LoadOptions {
        data_dir: args.data_dir.clone(),
        ..LoadOptions::default()
    };
    let (data_dir, storage) = match config::load(&DiskSource, &args.config, &plain) {
        Ok(cfg) => match Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir) {
            Ok(storage) => (cfg.data_dir, storage),
            Err(e) => {
                eprintln!("error: the store: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    // One gateway per data directory, and nobody else may read it.
    let _lock = match crate::datadir::DataDirLock::take(&data_dir, &holder()) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(refusal) = crate::datadir::refusal(&data_dir) {
        eprintln!("error: {refusal}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = storage.prepare().await {
        eprintln!("error: the store: {e}");
        return ExitCode::FAILURE;
    }
    let registry = match storage.registry() {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("error: the registry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        data_dir: Some(data_dir),
        ..LoadOptions::default()
    };
    let live = Arc::new(Live::new(
        Arc::new(DiskSource),
        args.config.clone(),
        options,
        registry,
    ));
    let cfg = match live.load().await {
        Ok(cfg) => cfg,
        Err(ChangeError::Invalid(problems)) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = args.listen.unwrap_or(cfg.listen);
    let super::load::Loaded {
        auth,
        tls,
        witness_clients,
    } = match super::load::files(&cfg, &args.config).await {
        Ok(loaded) => loaded,
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    let pseudonym =
        match crate::secrets::pseudonym_key(cfg.pseudonym_key_env.as_deref(), &cfg.data_dir) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("error: the pseudonym key: {e}");
                return ExitCode::FAILURE;
            }
        };
    warn_unpinned(&cfg.audit);
    // The console's single sign-on: without its provider the gateway still serves
    // the API (and says so); the console then offers no sign-in.
    let oidc = match &cfg.console.oidc {
        None => None,
        Some(settings) => {
            match crate::oidc::OidcClient::new(settings, auth.clone(), &cfg.base_dir).await {
                Ok(client) => Some(client),
                Err(e) => {
                    eprintln!("warning: the console's OpenID Connect sign-in is off: {e}");
                    None
                }
            }
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let version = cfg.version.clone();
    let settings = Settings {
        live,
        metrics_listen: cfg.metrics_listen,
        config: cfg,
        auth,
        pseudonym,
        listen,
        tls,
        witness_clients,
        audit: None,
        clock: None,
        storage,
        console: crate::console::Options {
            oidc,
            ..crate::console::Options::default()
        },
    };
    let stop = shutdown_signal();
    let gateway = match Application::build(settings).await {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "gateway listening on {scheme}://{} (config version {version}, store {})",
        gateway.addr(),
        gateway.app().storage.location()
    );
    println!("console at {scheme}://{}/console/", gateway.addr());
    if let Some(metrics) = gateway.metrics_addr() {
        println!("metrics listening on http://{metrics}/metrics");
    }
    finish(gateway.run_until(stop).await)
}

/// Warns about each grant that gives township callers conditional fields (有条件共享)
/// of any person in the county: no jurisdiction and no row condition (`check`).
pub(super) fn warn_unbounded(cfg: &crate::config::ActiveConfig) {
    for grant in cfg.policies.grants() {
        if grant.jurisdiction.is_some() || grant.row.is_some() {
            continue;
        }
        let conditional = cfg.connectors.get(&grant.connector).is_some_and(|c| {
            grant.operations.iter().any(|op| {
                c.operations.get(op).is_some_and(|op| {
                    op.leaves.iter().any(|l| {
                        l.sharing == connectors::definition::Sharing::Conditional
                            && grant.fields.contains_key(&l.path)
                    })
                })
            })
        });
        if conditional {
            eprintln!(
                "warning: grant `{}` gives township callers conditional fields of {} for every \
                 person in the county: it has neither `jurisdiction: township` nor a row \
                 condition",
                grant.id, grant.connector
            );
        }
    }
}

/// Says loudly that the checkpoint key is not pinned (`serve`, `check`).
pub(super) fn warn_unpinned(settings: &crate::audit::settings::AuditSettings) {
    if settings.checkpoint_public_key.is_none() {
        eprintln!(
            "warning: audit.checkpoint_public_key is not set: the audit log's checkpoints are \
             checked against whatever key is in the data directory, so whoever can replace \
             that directory can rewrite the log unseen. Pin the key: put what `gateway audit \
             public-key --data-dir DATA_DIR` prints in gateway.yaml."
        );
        tracing::warn!("the audit checkpoint key is not pinned (audit.checkpoint_public_key)");
    }
}

pub(super) async fn run_demo(args: DemoArgs) -> ExitCode {
    let options = DemoOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        seed: args.population.seed,
        residents: args.population.residents,
    };
    let stop = shutdown_signal();
    let demo = match demo::start(options).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", demo.banner());
    finish(demo.serve(stop).await)
}

pub(super) async fn run_simulate(args: SimulateArgs) -> ExitCode {
    let stop = shutdown_signal();
    let population =
        Arc::new(demo::population(args.population.seed, args.population.residents).await);
    let written = match args.front_db.strip_prefix("sqlite:") {
        Some(path) => {
            let (population, path) = (population.clone(), std::path::PathBuf::from(path));
            let shown = path.display().to_string();
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    crate::datadir::create_dir(dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                sim::minzheng::write_sqlite(&population, &path).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err("the writer stopped".to_owned()))
            .map(|()| shown)
        }
        None => sim::front_servers::write_server(&population, &args.front_db)
            .await
            .map(|rows| {
                format!(
                    "{} ({rows} rows)",
                    crate::secrets::redact_url(&args.front_db)
                )
            }),
    };
    match written {
        Ok(at) => println!("county-mca (县民政局) front database in {at}"),
        Err(e) => {
            eprintln!("error: cannot write the civil-affairs front database: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.front_db_only {
        return ExitCode::SUCCESS;
    }
    let mut servers = Vec::new();
    for (department, addr) in [
        (Department::Hukou, args.hukou),
        (Department::Shebao, args.shebao),
        (Department::Jisheng, args.jisheng),
    ] {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "error: cannot listen on {addr} for {}: {e}",
                    department.id()
                );
                return ExitCode::FAILURE;
            }
        };
        let faults = args
            .faults
            .iter()
            .rev()
            .find(|(d, _)| *d == department)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        match sim::spawn(department, population.clone(), listener, faults).await {
            Ok(server) => {
                println!(
                    "{} ({}) on {}",
                    department.id(),
                    department.name_zh(),
                    server.base_url()
                );
                servers.push(server);
            }
            Err(e) => {
                eprintln!("error: cannot start {}: {e}", department.id());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{} synthetic residents; Ctrl-C stops.", population.len());
    stop.await;
    ExitCode::SUCCESS
}
