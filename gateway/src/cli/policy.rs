//! `gateway policy`: explain a decision field by field, and run golden cases.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::report;
use crate::auth::Authenticator;
use crate::config::{self, ActiveConfig, DiskSource, EmbeddedSource, LoadOptions};
use crate::explain::CallerDef;

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Print, field by field, the decision, the mask and the rule.
    Explain(ExplainArgs),
    /// Run golden policy cases (every *.yaml in DIR).
    Test {
        /// The gateway configuration; the embedded demo county if absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(super) struct ExplainArgs {
    /// The gateway configuration; the embedded demo county if absent.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The caller's claims (YAML: sub, roles, township, department, app).
    #[arg(long, conflicts_with = "token", required_unless_present = "token")]
    claims: Option<PathBuf>,
    /// A token, verified with the configuration's issuers.
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    connector: String,
    #[arg(long)]
    operation: String,
    #[arg(long)]
    purpose: String,
    /// The data directory of the gateway: explain with its registry (applied
    /// connectors and policy files, grants from approved access requests) laid over
    /// the files, as `serve` enforces.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The configuration a policy tool works on: the file, or the embedded demo county.
fn policy_config(path: Option<&Path>) -> Result<ActiveConfig, ExitCode> {
    let loaded = match path {
        Some(path) => config::load(&DiskSource, path, &LoadOptions::default()),
        None => config::load(
            &EmbeddedSource::new(crate::county::COUNTY_FILES.iter().copied()),
            Path::new(crate::county::COUNTY_CONFIG),
            &LoadOptions::default(),
        ),
    };
    loaded.map_err(|problems| {
        report(&problems);
        ExitCode::FAILURE
    })
}

/// The configuration `serve` would enforce with the registry in `data_dir`.
async fn served_config(config: Option<&Path>, data_dir: &Path) -> Result<ActiveConfig, ExitCode> {
    if !data_dir.join(crate::registry::REGISTRY_FILE).is_file() {
        eprintln!("error: no registry in {}", data_dir.display());
        return Err(ExitCode::FAILURE);
    }
    let embedded = EmbeddedSource::new(crate::county::COUNTY_FILES.iter().copied());
    let (source, path): (&dyn crate::config::Source, &Path) = match config {
        Some(path) => (&DiskSource, path),
        None => (&embedded, Path::new(crate::county::COUNTY_CONFIG)),
    };
    super::load::with_registry(source, path, Some(data_dir.to_owned()))
        .await
        .map_err(|e| {
            match e {
                super::load::LoadError::Problems(problems) => report(&problems),
                super::load::LoadError::Other(e) => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        })
}

pub(super) async fn run_explain(args: ExplainArgs) -> ExitCode {
    let cfg = match &args.data_dir {
        Some(data_dir) => served_config(args.config.as_deref(), data_dir).await,
        None => policy_config(args.config.as_deref()),
    };
    let cfg = match cfg {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let caller = match (&args.claims, &args.token) {
        (Some(path), _) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|text| {
                    connectors::definition::parse_yaml::<CallerDef>(&text)
                        .map_err(|p| format!("{}: {}: {}", path.display(), p.path, p.message))
                })
                .and_then(|def| def.caller().map_err(|e| format!("{}: {e}", path.display())));
            match parsed {
                Ok(caller) => caller,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, Some(token)) => {
            let verified = match Authenticator::new(&cfg.auth, &cfg.base_dir).await {
                Ok(auth) => auth.verify(token).await.map_err(|e| e.reason().to_owned()),
                Err(problems) => Err(format!("{problems:?}")),
            };
            match verified {
                Ok(caller) => (*caller).clone(),
                Err(e) => {
                    eprintln!("error: the token is not valid: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, None) => {
            eprintln!("error: give --claims FILE or --token TOKEN");
            return ExitCode::from(2);
        }
    };
    match crate::explain::explain(
        &cfg,
        &caller,
        &args.connector,
        &args.operation,
        &args.purpose,
        crate::policy::china_today(),
    ) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn run_policy_test(config: Option<&Path>, dir: &Path) -> ExitCode {
    let cfg = match policy_config(config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let results = match crate::explain::golden::run_dir(&cfg, dir) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        match &r.failure {
            None => println!("ok    {} — {}", r.file.display(), r.name),
            Some(why) => println!(
                "FAIL  {} — {}\n      {}",
                r.file.display(),
                r.name,
                why.replace('\n', "\n      ")
            ),
        }
    }
    println!("{} passed, {} failed", results.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
