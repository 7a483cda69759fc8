//! `gateway-bench`: the helpers `bench/run` drives, apart from the product binary.
//!
//! - `fixtures` ([`fixtures`]) writes a bench county derived from the repository, a
//!   clerk token and the IDs of residents to look up;
//! - `load` ([`load`]) is a fixed-rate, open-loop HTTP client that prints latency
//!   percentiles as JSON;
//! - `fsync` ([`fsync`]) measures how long making a small write durable takes;
//! - `proxy` ([`proxy`]) is a bare reverse proxy (axum with reqwest or hyper's client
//!   behind it), the transport alone, measured beside nginx;
//! - `report` ([`report`]) turns a run's JSON results into the markdown tables of
//!   `bench/results.md`;
//! - `soak` ([`soak`]) holds a running gateway under a steady mixed load for minutes,
//!   samples its process and writes `bench/soak.md` and `bench/soak.png` (`bench/soak`).
//!
//! This file parses the command line and dispatches; exit code 0 on success, 1 on a
//! failure (printed on stderr), 2 on bad usage.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the bench helpers talk to bench/run on stdout and stderr"
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod fixtures;
mod fsync;
mod load;
mod proxy;
mod report;
mod soak;

/// Benchmark helpers for `bench/run`.
#[derive(Debug, Parser)]
#[command(name = "gateway-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the bench county, issuer key, clerk token and subject IDs into a directory.
    Fixtures(fixtures::FixturesArgs),
    /// Send requests at a fixed rate (open loop) and print latency percentiles as JSON.
    Load(load::LoadArgs),
    /// Print the markdown tables of a run's results directory.
    Report(report::ReportArgs),
    /// Measure fsync latency in a directory (the floor of a durable audit's latency).
    Fsync(fsync::FsyncArgs),
    /// Forward every request to a department and return its answer, nothing else (axum
    /// with reqwest or hyper's client): the transport's own ceiling.
    Proxy(proxy::ProxyArgs),
    /// Hold a running gateway under a steady mixed load, sample its process, write the
    /// soak report and plot; fails when memory, open files or p99 grow, or on errors.
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Fixtures(args) => fixtures::fixtures(args).await,
            Command::Load(args) => load::load(args).await,
            Command::Report(args) => report::report(&args),
            Command::Fsync(args) => fsync::fsync(args).await,
            Command::Proxy(args) => proxy::proxy(args).await,
            Command::Soak(args) => soak::soak(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
