//! `gateway audit verify` (the whole history against the cadence, the pinned key and
//! the witnesses) and `gateway audit public-key` (the key to pin).
//!
//! Exit codes: 0 intact, 1 broken or not checkable (no log, a witness that cannot be
//! read or holds nothing of this log, an invalid configuration), 2 bad usage.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::audit::Witnessed;
use crate::audit::checkpoint::{WitnessedKind, encode_public_key, split_texts};
use crate::audit::settings::AuditSettings;
use crate::config::{self, DiskSource, LoadOptions};
use crate::witness::client::WitnessClient;

/// The most checkpoints read from one witness.
const MAX_WITNESSED: usize = 10_000_000;
/// The largest file of witnessed checkpoints read.
const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// The gateway's data directory (it holds audit.db); by default the one the
    /// configuration names.
    #[arg(long, required_unless_present = "config")]
    data_dir: Option<PathBuf>,
    /// The gateway configuration: its `audit:` section gives the cadence the log is
    /// held to, the pinned checkpoint key and the witnesses. Without it: the default
    /// cadence and the key found in the data directory.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// A witness whose checkpoints the log must be consistent with: the name or URL of
    /// a witness configured in `audit.witnesses`, or a file of checkpoints as a
    /// witness serves them (`gateway witness export`). Repeatable.
    #[arg(long, value_name = "NAME|URL|FILE")]
    witness: Vec<String>,
    /// Also check that the index (`audit.db` beside segment files) says what the
    /// segments say, event by event; rebuild it with `gateway audit reindex`.
    #[arg(long)]
    index: bool,
}

#[derive(Debug, Args)]
pub(super) struct PublicKeyArgs {
    /// The gateway's data directory (it holds audit-signing.key).
    #[arg(long)]
    data_dir: PathBuf,
    /// Make the key first if the data directory has none yet (as the gateway's
    /// first start would), so that it can be pinned before the gateway starts.
    #[arg(long)]
    create: bool,
}

pub(super) async fn run_public_key(args: &PublicKeyArgs) -> ExitCode {
    match super::audit::log_of(&args.data_dir)
        .public_key(args.create)
        .await
    {
        Ok(key) => {
            println!("{}", encode_public_key(&key));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if !args.create {
                eprintln!("(with --create, a key is made when the data directory has none)");
            }
            ExitCode::FAILURE
        }
    }
}

pub(super) async fn run_verify(args: VerifyArgs) -> ExitCode {
    let (storage, settings, base_dir) = match &args.config {
        None => match &args.data_dir {
            Some(data_dir) => (
                crate::store::Storage::sqlite(data_dir),
                AuditSettings::default(),
                PathBuf::new(),
            ),
            None => {
                eprintln!("error: give --data-dir or --config");
                return ExitCode::from(2);
            }
        },
        Some(path) => {
            let options = LoadOptions {
                data_dir: args.data_dir.clone(),
                ..LoadOptions::default()
            };
            let cfg = match config::load(&DiskSource, path, &options) {
                Ok(cfg) => cfg,
                Err(problems) => {
                    super::report(&problems);
                    return ExitCode::FAILURE;
                }
            };
            // The store the configuration names: the data directory's files, or
            // every replica's chain in PostgreSQL.
            match crate::store::Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir) {
                Ok(storage) => (storage, cfg.audit, cfg.base_dir),
                Err(e) => {
                    eprintln!("error: the store: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let log = storage.audit_backend();
    let mut expect = settings.expectations();
    let mut sources = Vec::new();
    if !args.witness.is_empty() {
        let key = match &expect.pinned_key {
            Some(key) => key.clone(),
            None => match log.public_key(false).await {
                Ok(key) => key,
                Err(e) => {
                    eprintln!("error: which log to ask the witnesses for: {e}");
                    return ExitCode::FAILURE;
                }
            },
        };
        for witness in &args.witness {
            match witnessed(witness, &settings, &base_dir, log.witnessed_kind(), &key).await {
                Ok(held) if held.is_empty() => {
                    println!(
                        "witness {witness} holds no checkpoint of this log (key {}): nothing \
                         is proven by it",
                        encode_public_key(&key)
                    );
                    return ExitCode::FAILURE;
                }
                Ok(held) => {
                    sources.push((witness.clone(), held.len()));
                    expect.witnessed.extend(held);
                }
                Err(code) => return code,
            }
        }
    }
    let report = match log.verify(expect).await {
        Ok(report) => report,
        Err(failure) => {
            println!("{failure}");
            return ExitCode::FAILURE;
        }
    };
    if report.chains.is_empty() {
        println!(
            "audit log intact: {} events, {} checkpoints, last seq {} (hash {})",
            report.events, report.checkpoints, report.last_seq, report.last_hash
        );
    } else {
        // Many chains (PostgreSQL, one per replica), held together by county
        // checkpoints over every chain's head.
        println!(
            "audit log intact: {} events, {} checkpoints, in {} chains; {} county checkpoints",
            report.events,
            report.checkpoints,
            report.chains.len(),
            report.county_checkpoints
        );
        for chain in &report.chains {
            println!(
                "  chain {}: last seq {} (hash {}), {} checkpoints, {} unsigned",
                chain.chain_id,
                chain.last_seq,
                chain.last_hash,
                chain.checkpoints,
                chain.unsigned_tail
            );
        }
    }
    match (&report.key, report.key_pinned) {
        (Some(key), true) => println!("checkpoint key: {key} (pinned)"),
        (Some(key), false) => println!(
            "checkpoint key: {key} — NOT PINNED: checked against the key found in the data \
             directory, which proves nothing to whoever can replace that directory; pin it \
             in gateway.yaml (audit.checkpoint_public_key) and verify with --config"
        ),
        (None, _) => println!("checkpoint key: none checked (no checkpoint yet)"),
    }
    if report.unsigned_tail > 0 {
        println!(
            "unsigned tail: {} events after the newest checkpoint (within the cadence)",
            report.unsigned_tail
        );
    }
    if report.unacknowledged_bytes > 0 {
        println!(
            "torn end: {} bytes after the last whole record, a write a crash cut short (never \
             acknowledged); the gateway cuts them off when it starts",
            report.unacknowledged_bytes
        );
    }
    for (witness, held) in sources {
        println!("witness {witness}: {held} checkpoints, all consistent with the log");
    }
    if args.index {
        match log.check_index().await {
            Ok(Some(events)) => {
                println!("index: {events} live events, each as the segments say");
            }
            Ok(None) => println!("index: the log is its own index"),
            Err(failure) => {
                println!("{failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// The checkpoints a witness holds of the log of `kind` and `key`: fetched from a
/// configured witness (by name or URL), or read from a file.
async fn witnessed(
    witness: &str,
    settings: &AuditSettings,
    base_dir: &Path,
    kind: WitnessedKind,
    key: &[u8],
) -> Result<Vec<Witnessed>, ExitCode> {
    let configured = settings
        .witnesses
        .iter()
        .find(|target| target.name == witness || target.url == witness);
    let texts = match configured {
        Some(target) => {
            let client = WitnessClient::new(target, base_dir).map_err(|problem| {
                eprintln!("error: witness {}: {problem}", target.name);
                ExitCode::FAILURE
            })?;
            client.all(kind, key, MAX_WITNESSED).await.map_err(|e| {
                eprintln!("error: witness {}: {e}", target.name);
                ExitCode::FAILURE
            })?
        }
        None if witness.starts_with("https://") || witness.starts_with("http://") => {
            eprintln!(
                "error: the witness {witness} is not in the configuration's audit.witnesses \
                 (give --config, with its TLS settings there)"
            );
            return Err(ExitCode::from(2));
        }
        None => read_file(Path::new(witness)).map_err(|e| {
            eprintln!("error: cannot read {witness}: {e}");
            ExitCode::FAILURE
        })?,
    };
    Ok(texts
        .into_iter()
        .map(|text| Witnessed {
            witness: format!("witness {witness}"),
            text,
        })
        .collect())
}

fn read_file(path: &Path) -> std::io::Result<Vec<String>> {
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("larger than 1 GiB"));
    }
    Ok(split_texts(&text).into_iter().map(str::to_owned).collect())
}
