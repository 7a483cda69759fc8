//! `gateway migrate`: the store's schema brought up to this binary's version
//! (PostgreSQL; the SQLite files migrate themselves as they open), saying where it
//! stood and where it stands. `gateway migrate-store`: a county's data directory
//! (registry and audit log) copied into PostgreSQL, to move from one machine to many,
//! and the copied log verified there from its first event.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

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

#[derive(Debug, Args)]
pub(super) struct MigrateStoreArgs {
    /// The data directory of the gateway being moved (stop it first).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL address to copy into (`postgres://user@host:port/database`).
    /// An address with a password is better given with `--to-env`.
    #[arg(long, required_unless_present = "to_env", conflicts_with = "to_env")]
    to: Option<String>,
    /// The environment variable holding the PostgreSQL address.
    #[arg(long)]
    to_env: Option<String>,
    /// The schema to copy into (as `store.schema` will name it).
    #[arg(long, default_value = "gateway")]
    schema: String,
}

/// Runs `gateway migrate-store --from DIR --to URL|--to-env VAR [--schema S]`.
pub(super) async fn run_migrate_store(args: MigrateStoreArgs) -> ExitCode {
    match migrate_store(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("nothing of what failed was committed; the data directory is unchanged");
            ExitCode::FAILURE
        }
    }
}

async fn migrate_store(args: &MigrateStoreArgs) -> Result<(), String> {
    // A gateway still serving from the directory would go on writing what is copied.
    let _lock = crate::datadir::DataDirLock::take(&args.from, &super::run::holder())
        .map_err(|e| e.to_string())?;
    let mut settings = match (&args.to, &args.to_env) {
        (Some(url), _) => crate::pg::PgSettings::new(url.clone()),
        (None, Some(var)) => {
            let mut settings = crate::pg::PgSettings::new(String::new());
            settings.url = None;
            settings.url_env = Some(var.clone());
            settings
        }
        (None, None) => return Err("give --to or --to-env".to_owned()),
    };
    settings.schema.clone_from(&args.schema);
    let pg = crate::pg::Pg::new(&settings, Path::new(".")).map_err(|e| e.to_string())?;
    crate::pg::migrations::migrate(&pg)
        .await
        .map_err(|e| e.to_string())?;

    let from = Storage::sqlite(&args.from);
    let registry = from.registry().map_err(|e| e.to_string())?;
    let copy = crate::registry::RegistryCopy::read(&*registry)
        .await
        .map_err(|e| format!("the registry in {}: {e}", args.from.display()))?;
    crate::registry::PgRegistry::new(pg.clone())
        .import(&copy)
        .await
        .map_err(|e| format!("the registry: {e}"))?;
    println!(
        "registry: revision {}, {} connector versions, {} grants, {} access requests copied",
        copy.revision,
        copy.versions.len(),
        copy.grants.len(),
        copy.requests.len()
    );

    let copied = if args.from.join(crate::audit::AUDIT_FILE).is_file() {
        let copied = crate::audit::postgres::copy::copy_sqlite(&args.from, &pg)
            .await
            .map_err(|e| format!("the audit log: {e}"))?;
        println!(
            "audit log: chain {}, {} events, {} checkpoints copied",
            copied.chain_id, copied.events, copied.checkpoints
        );
        Some(copied)
    } else {
        println!("audit log: none in {}", args.from.display());
        None
    };
    let key_file = args.from.join(crate::audit::KEY_FILE);
    let backend = crate::audit::PgAuditBackend::new(pg.clone(), key_file);
    let report = crate::audit::AuditBackend::verify(&backend, Default::default())
        .await
        .map_err(|failure| format!("the copied audit log does not verify: {failure}"))?;
    println!(
        "verified in {}: {} events, {} checkpoints",
        pg.location(),
        report.events,
        report.checkpoints
    );
    if copied.is_some() {
        println!(
            "next: give every replica a copy of {} and the pseudonym key of {} (through `pseudonym_key_env`), then start them with `store: {{ kind: postgres, schema: {} }}`",
            args.from.join(crate::audit::KEY_FILE).display(),
            args.from.join(crate::secrets::PSEUDONYM_KEY_FILE).display(),
            pg.schema()
        );
    }
    Ok(())
}
