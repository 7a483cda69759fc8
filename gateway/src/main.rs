//! The `gateway` binary: parses the command line and hands over to [`gateway::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    gateway::cli::main(gateway::cli::Cli::parse())
}
