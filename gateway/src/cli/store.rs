//! `gateway migrate`: the store's schema brought up to this binary's version
//! (PostgreSQL; the SQLite files migrate themselves as they open), saying where it
//! stood and where it stands.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, DiskSource, LoadOptions};
use crate::store::{Backend, Storage};

use super::report;

/// Runs `gateway migrate --config FILE`.
pub(super) async fn run_migrate(config_file: &Path) -> ExitCode {
    let cfg = match config::load(&DiskSource, config_file, &LoadOptions::default()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    let storage = match Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir) {
        Ok(storage) => storage,
        Err(e) => {
            eprintln!("error: the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Backend::Postgres { pg, .. } = storage.backend() else {
        println!(
            "the store is SQLite in {}: its files are migrated when the gateway opens them; nothing to do",
            storage.location()
        );
        return ExitCode::SUCCESS;
    };
    let before = match crate::pg::migrations::status(pg).await {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::pg::migrations::migrate(pg).await {
        Ok(applied) if applied.is_empty() => {
            println!(
                "{}: the schema is at version {}, this gateway's; nothing to do",
                pg.location(),
                before.found
            );
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            println!(
                "{}: the schema went from version {} to {} (applied {})",
                pg.location(),
                before.found,
                before.known,
                applied
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
