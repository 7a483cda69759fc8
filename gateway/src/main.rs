//! The `gateway` binary: parses the command line and hands over to [`gateway::cli`].
//! It also chooses the process's memory allocator (mimalloc).

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main(gateway::cli::Cli::parse())
}
