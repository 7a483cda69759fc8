//! The command line: `demo`, `serve`, `check` and `simulate`. Each command parses its
//! arguments, calls into the library and turns the outcome into an exit code:
//! 0 success, 1 a problem the user can fix (config, address in use), 2 bad usage.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use connectors::sim::{self, Department, Faults};

use crate::config::{self, ConfigProblem, DiskSource, LoadOptions};
use crate::demo::{self, DemoOptions};
use crate::server::{self, App};
use crate::store::SqliteStore;

/// 县乡数据共享网关 — a policy-enforcing gateway between county departments and townships.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo county: three simulated department systems and the gateway in front.
    Demo(DemoArgs),
    /// Serve the gateway with a configuration file.
    Serve(ServeArgs),
    /// Check a configuration and report every problem, without serving.
    Check {
        /// The gateway configuration file (e.g. county/gateway.yaml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run only the simulated department systems (to `serve` against, or to benchmark).
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
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
struct ServeArgs {
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

#[derive(Debug, Args)]
struct SimulateArgs {
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

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing();
    connectors::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => run_demo(args).await,
            Command::Serve(args) => run_serve(args).await,
            Command::Check { config } => run_check(&config),
            Command::Simulate(args) => run_simulate(args).await,
        }
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn report(problems: &[ConfigProblem]) {
    eprintln!(
        "{} problem{} in the configuration:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {p}");
    }
}

fn run_check(path: &Path) -> ExitCode {
    match config::load(&DiskSource, path, &LoadOptions::default()) {
        Ok(cfg) => {
            let operations: usize = cfg.connectors.values().map(|c| c.operations.len()).sum();
            println!(
                "{}: ok — county {} {}, {} connectors, {} operations, {} purposes, version {}",
                path.display(),
                cfg.county.code,
                cfg.county.name,
                cfg.connectors.len(),
                operations,
                cfg.purposes.len(),
                cfg.version
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report(&problems);
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    let mut cfg = match config::load(&DiskSource, &args.config, &LoadOptions::default()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = args.data_dir {
        cfg.data_dir = dir;
    }
    let listen = args.listen.unwrap_or(cfg.listen);
    let store = match SqliteStore::open(&cfg.data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(listen);
    println!(
        "gateway listening on http://{addr} (config version {}, store {})",
        cfg.version,
        store.path().display()
    );
    let app = App::new(cfg, Arc::new(store));
    finish(server::serve(listener, app, shutdown_signal()).await)
}

async fn run_demo(args: DemoArgs) -> ExitCode {
    let options = DemoOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        seed: args.population.seed,
        residents: args.population.residents,
    };
    let demo = match demo::start(options).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", demo.banner());
    finish(demo.serve(shutdown_signal()).await)
}

async fn run_simulate(args: SimulateArgs) -> ExitCode {
    let population =
        Arc::new(demo::population(args.population.seed, args.population.residents).await);
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
    shutdown_signal().await;
    ExitCode::SUCCESS
}

fn finish(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
