//! The `gateway` binary: parses the command line and hands over to [`gateway::cli`].
//!
//! It allocates with mimalloc: a lookup makes many small short-lived allocations
//! (JSON values, strings), and glibc's malloc was the largest single cost in the
//! full-pipeline profile (see bench/README.md).

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main(gateway::cli::Cli::parse())
}
