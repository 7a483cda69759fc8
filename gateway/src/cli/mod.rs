//! The command line: `demo`, `serve`, `check`, `simulate`, `token` (keygen, mint),
//! `policy` (explain, test), `audit` (verify, checkpoint, public-key, …), `witness`
//! (serve, export), and `apply` / `export` (the registry's file-managed objects from
//! and to a directory). Each command parses its
//! arguments, calls into the library and turns the outcome into an exit code: 0
//! success, 1 a problem the user can fix (config, address in use, a failing policy
//! case, an invalid apply), 2 bad usage.
//!
//! `run` holds the long-running commands (demo, serve, simulate), `token` the
//! token tools, `policy` the policy tools and `registry` apply and export; this file
//! parses and dispatches.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigProblem, DiskSource};

mod audit;
mod load;
mod policy;
mod registry;
mod run;
mod store;
mod token;
mod verify;
mod witness;

use audit::{AuditCommand, run_audit};
use policy::{PolicyCommand, run_explain, run_policy_test};
use registry::{ApplyArgs, ExportArgs, run_apply, run_export};
use run::{DemoArgs, ServeArgs, SimulateArgs, run_demo, run_serve, run_simulate};
use token::{TokenCommand, run_keygen, run_mint};

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
    /// Check a configuration and report every problem, without serving: everything
    /// `serve` loads (the registry in the data directory, issuer keys, TLS files,
    /// witnesses), short of opening ports.
    Check {
        /// The gateway configuration file (e.g. county/gateway.yaml).
        #[arg(long, short)]
        config: PathBuf,
        /// The data directory `serve` would use (default: the file's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run only the simulated department systems (to `serve` against, or to benchmark).
    Simulate(SimulateArgs),
    /// Token issuing for demos and tests: make a key pair, sign a token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Policy tools: explain a decision, run golden cases.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log: verify, checkpoint, public-key, export, a citizen's report,
    /// anomalies.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The witness role: keep other gateways' audit checkpoints, append-only.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Make the registry's file-managed connectors and policy files exactly those of a
    /// directory (connectors/, schemas/, policies/), checked before they are committed.
    Apply(ApplyArgs),
    /// Write the registry's connectors, schemas, policy files and API grants to a
    /// directory that `apply` takes.
    Export(ExportArgs),
    /// Bring the store's schema (PostgreSQL) up to this gateway's version, one
    /// process at a time; replicas with `migrate: manual` wait for this.
    Migrate {
        /// The gateway configuration file naming the store.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Copy a county's data directory (registry and audit log) into PostgreSQL, to
    /// move from one machine to many; the copied log is verified from its first event.
    MigrateStore(store::MigrateStoreArgs),
}

pub fn main(cli: Cli) -> ExitCode {
    connectors::install_crypto_provider();
    let traces = match init_tracing(cli.telemetry().as_ref()) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = run(cli);
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

impl Cli {
    /// The trace settings of a command that serves requests (`serve`: its
    /// configuration file's, read before anything else so that the whole run is
    /// traced — the command reads the file again, in full and checked; `demo`: the
    /// environment's); `None` for the others, which make no traces.
    fn telemetry(&self) -> Option<crate::telemetry::TelemetrySettings> {
        match &self.command {
            Command::Serve(args) => Some(load::telemetry(args.config())),
            Command::Demo(_) => Some(crate::telemetry::TelemetrySettings::default()),
            _ => None,
        }
    }
}

fn run(cli: Cli) -> ExitCode {
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
            Command::Check { config, data_dir } => run_check(&config, data_dir).await,
            Command::Simulate(args) => run_simulate(args).await,
            Command::Token(TokenCommand::Keygen { out, kid }) => run_keygen(&out, &kid),
            Command::Token(TokenCommand::Mint(args)) => run_mint(*args),
            Command::Policy(PolicyCommand::Explain(args)) => run_explain(args).await,
            Command::Audit(AuditCommand::Verify(args)) => verify::run_verify(args).await,
            Command::Audit(command) => run_audit(command).await,
            Command::Witness(command) => witness::run(command).await,
            Command::Apply(args) => run_apply(args).await,
            Command::Export(args) => run_export(args).await,
            Command::Migrate { config } => store::run_migrate(&config).await,
            Command::MigrateStore(args) => store::run_migrate_store(args).await,
            Command::Policy(PolicyCommand::Test { config, dir }) => {
                run_policy_test(config.as_deref(), &dir)
            }
        }
    })
}

/// The `app` of the audit events the command line records.
const CLI_APP: &str = "gateway-cli";

/// The operating-system user running the command (`USER`, else `LOGNAME`, else
/// `USERNAME`), as the audit log's user for what the command line does.
fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown-os-user".to_owned())
}

/// The log on stderr (events only, as `GATEWAY_LOG` filters them) and, when
/// configured, the export of spans ([`crate::telemetry`]), flushed by the handle
/// returned.
fn init_tracing(
    telemetry: Option<&crate::telemetry::TelemetrySettings>,
) -> Result<Option<crate::telemetry::Tracing>, String> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let filter = EnvFilter::try_from_env("GATEWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter.and(filter_fn(|meta| meta.is_event())));
    let exporting = match telemetry {
        Some(settings) => crate::telemetry::layer(settings)?,
        None => None,
    };
    let (spans, traces) = exporting.unzip();
    let _ = tracing_subscriber::registry()
        .with(spans)
        .with(log)
        .try_init();
    Ok(traces)
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

async fn run_check(path: &Path, data_dir: Option<PathBuf>) -> ExitCode {
    let cfg = match load::with_registry(&DiskSource, path, data_dir).await {
        Ok(cfg) => cfg,
        Err(load::LoadError::Problems(problems)) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
        Err(load::LoadError::Other(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(problems) = load::files(&cfg, path).await {
        report(&problems);
        return ExitCode::FAILURE;
    }
    run::warn_unpinned(&cfg.audit);
    run::warn_unbounded(&cfg);
    for warning in cfg.calendar.check_warnings(crate::policy::china_today()) {
        eprintln!("warning: {warning}");
    }
    // The shared servers answer as `serve` needs them.
    if let crate::store::StoreSettings::Postgres(settings) = &cfg.store {
        let status = match crate::pg::Pg::new(settings, &cfg.base_dir) {
            Ok(pg) => crate::pg::migrations::status(&pg)
                .await
                .map(|status| (pg.location(), status)),
            Err(e) => Err(e),
        };
        match status {
            Ok((at, status)) => println!(
                "store: PostgreSQL {at}, schema version {} of {}",
                status.found, status.known
            ),
            Err(e) => {
                eprintln!("error: store: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(redis) = cfg.rate_limits.redis() {
        match crate::limits::redis::check(redis, &cfg.base_dir).await {
            Ok(found) => println!("rate limits: {found}"),
            Err(e) => {
                eprintln!("error: rate_limits.redis: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Front databases answer the connectors' statements.
    let front = crate::front::check(&cfg).await;
    for warning in &front.warnings {
        eprintln!("warning: {warning}");
    }
    if !front.errors.is_empty() {
        for error in &front.errors {
            eprintln!("error: {error}");
        }
        return ExitCode::FAILURE;
    }
    if front.checked > 0 {
        println!("front databases: {} statements run", front.checked);
    }
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

fn finish(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a command calls it before it says it is
/// ready, so that a signal sent as soon as it has said so stops it gracefully.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = received(terminate) => {},
            () = received(interrupt) => {},
        }
    }
}
