//! `gateway audit`: verify the tamper-evident log, and print its latest signed
//! checkpoint for a witness to keep.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check the whole hash chain and every signed checkpoint; name the first bad
    /// sequence number if any. Exit 0 intact, 1 broken.
    Verify {
        /// The gateway's data directory (it holds audit.db).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print the latest signed checkpoint.
    Checkpoint {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub(super) fn run_audit(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { data_dir } => match audit::verify(&data_dir) {
            Ok(report) => {
                println!(
                    "audit log intact: {} events, {} checkpoints, last seq {} (hash {})",
                    report.events, report.checkpoints, report.last_seq, report.last_hash
                );
                ExitCode::SUCCESS
            }
            Err(failure) => {
                println!("{failure}");
                ExitCode::FAILURE
            }
        },
        AuditCommand::Checkpoint { data_dir } => match audit::latest_checkpoint(&data_dir) {
            Ok(Some(text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("no checkpoint yet in {}", data_dir.display());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
