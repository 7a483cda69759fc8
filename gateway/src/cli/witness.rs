//! `gateway witness`: `serve` keeps other gateways' audit checkpoints (HTTPS, client
//! certificates required, see [`crate::witness`]); `export` prints what it holds of
//! one log, for `gateway audit verify --witness FILE`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::shutdown_signal;
use crate::audit::checkpoint::{WitnessedKind, parse_public_key};
use crate::witness::config::WitnessConfig;
use crate::witness::entry::Entry;
use crate::witness::store::WitnessStore;

#[derive(Debug, Subcommand)]
pub(super) enum WitnessCommand {
    /// Serve the witness with its configuration file (witness.yaml).
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Overrides the configuration's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Print every checkpoint the witness holds of one log, oldest first.
    Export {
        /// The witness's data directory (it holds witness.db).
        #[arg(long)]
        data_dir: PathBuf,
        /// The log's checkpoint key (base64, as `gateway audit public-key` prints it).
        #[arg(long)]
        log_key: String,
        /// The log's county checkpoints (a gateway on PostgreSQL sends those)
        /// instead of its chain's checkpoints.
        #[arg(long)]
        county: bool,
    },
}

pub(super) async fn run(command: WitnessCommand) -> ExitCode {
    match command {
        WitnessCommand::Serve { config, listen } => serve(config, listen).await,
        WitnessCommand::Export {
            data_dir,
            log_key,
            county,
        } => {
            let kind = if county {
                WitnessedKind::County
            } else {
                WitnessedKind::Chain
            };
            export(data_dir, &log_key, kind)
        }
    }
}

async fn serve(path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    let config = match WitnessConfig::load(&path) {
        Ok(config) => config,
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let listen = listen.unwrap_or(config.listen);
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(listen);
    let stop = shutdown_signal();
    println!(
        "witness listening on https://{addr} ({} clients allowed, store {})",
        config.clients.len(),
        config.data_dir.display()
    );
    match crate::witness::serve(config, listener, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            ExitCode::FAILURE
        }
    }
}

fn export(data_dir: PathBuf, log_key: &str, kind: WitnessedKind) -> ExitCode {
    let key = match parse_public_key(log_key) {
        Ok(key) => key,
        Err(problem) => {
            eprintln!("error: the log key {problem}");
            return ExitCode::from(2);
        }
    };
    if !data_dir.join(crate::witness::store::WITNESS_FILE).is_file() {
        eprintln!("error: no witness store in {}", data_dir.display());
        return ExitCode::FAILURE;
    }
    let store = match WitnessStore::open(&data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut after = 0;
    loop {
        let page = match store.after(kind, &key, after, crate::witness::server::PAGE) {
            Ok(page) => page,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(last) = page.last() else { break };
        match Entry::parse(last) {
            Ok(entry) => after = entry.seq,
            Err(_) => {
                eprintln!("error: the witness store holds an unreadable checkpoint");
                return ExitCode::FAILURE;
            }
        }
        print!("{}", page.concat());
    }
    ExitCode::SUCCESS
}
