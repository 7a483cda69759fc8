//! `gateway audit`: verify the tamper-evident log (in `verify.rs`, with the key to
//! pin), print its latest signed checkpoint for a witness to keep, export matching events as evidence (CSV or JSON
//! Lines), print a citizen's access report ("who looked at my data?") and list the
//! anomalies a privacy officer should look at.
//!
//! Exit codes: 0 done, 1 a failure (no or unreadable log, no pseudonym key, an
//! unwritable output), 2 bad usage (an invalid time, ID number or threshold).
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use connectors::subject::IdNumber;

use crate::audit::{
    self, Anomaly, AuditCaller, AuditEvent, CitizenReport, ExportFormat, Filter, OutcomeClass,
    SearchError, Thresholds,
};
use crate::labels::Lang;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Move events older than the retention period into a read-only archive segment
    /// that still verifies (run it daily, e.g. from a systemd timer). With --config
    /// naming PostgreSQL: whole old months into read-only archive tables.
    Archive {
        #[command(flatten)]
        store: StoreArgs,
        /// Days to keep in the live log; at least 1096 (three years, PIPL art. 56).
        #[arg(long, default_value_t = audit::DEFAULT_KEEP_DAYS)]
        keep_days: u32,
    },
    /// Check the whole hash chain, every signed checkpoint, that checkpoints are where
    /// the cadence puts them, against the pinned key and the witnesses; name the first
    /// bad sequence number if any. Exit 0 intact, 1 broken.
    Verify(super::verify::VerifyArgs),
    /// Rebuild the index of a log kept in segment files (`audit.db`: search,
    /// reports, the witnesses' feed) from the segments alone. The gateway must not
    /// be running on the data directory.
    Reindex {
        /// The gateway's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Move a data directory's SQLite audit log (audit.db and its archive) to segment
    /// files: every event, checkpoint and the chain id kept, verified before and
    /// after; the old audit.db is kept as audit-sqlite.db. The gateway must be
    /// stopped.
    MigrateToSegments {
        /// The gateway's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print the checkpoint key's public half, to pin in gateway.yaml
    /// (audit.checkpoint_public_key) and to list at the witnesses.
    PublicKey(super::verify::PublicKeyArgs),
    /// Print the latest signed checkpoint (on PostgreSQL: the latest county
    /// checkpoint, which signs every chain's head).
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Matching events, newest first, a page at a time, as JSON (`next` is the
    /// `--before` of the next page).
    Search(Box<SearchArgs>),
    /// Export every matching event, oldest first, as CSV (a UTF-8 BOM, a header row
    /// in `--lang`, RFC 4180, formula-like cells prefixed with `'`) or JSON Lines, to
    /// stdout or a new file.
    Export(Box<ExportArgs>),
    /// A citizen's access report: every lookup that released data about one resident,
    /// who made it, when and for what; accesses under delayed disclosure are only
    /// counted.
    Report(ReportArgs),
    /// What a privacy officer should look at: many subjects in an hour, lookups
    /// without a case id, outside the caller's township or office hours, bursts of
    /// refusals.
    Anomalies(AnomaliesArgs),
}

/// Where a command finds the audit log.
#[derive(Debug, Args)]
pub(super) struct StoreArgs {
    /// The gateway's data directory (it holds audit.db and pseudonym.key); with
    /// `--config`, instead of the one the configuration names.
    #[arg(long, required_unless_present = "config")]
    data_dir: Option<PathBuf>,
    /// The gateway configuration: the store it names (the data directory's log, or
    /// every replica's chains on PostgreSQL) and where its pseudonym key comes from.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// What to look for, the same in `export` and `search` (and as in the API).
#[derive(Debug, Args)]
pub(super) struct FilterArgs {
    /// A user id (as the caller's token names it).
    #[arg(long)]
    user: Option<String>,
    /// A township code.
    #[arg(long)]
    township: Option<String>,
    /// A connector id.
    #[arg(long)]
    connector: Option<String>,
    /// A purpose code.
    #[arg(long)]
    purpose: Option<String>,
    /// Only lookups about this resident (ID number, or `-` to read it from stdin);
    /// matched by pseudonym, made with the gateway's pseudonym key.
    #[arg(long)]
    id_number: Option<String>,
    /// The environment variable holding the pseudonym key, when the gateway takes it
    /// from the environment (else the configuration's `pseudonym_key_env`, else
    /// DATA_DIR/pseudonym.key).
    #[arg(long, requires = "id_number")]
    pseudonym_key_env: Option<String>,
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// One HTTP status exactly.
    #[arg(long)]
    status: Option<u16>,
    /// Events at or after this time: RFC 3339, or a date (that day in China, from
    /// 00:00 CST).
    #[arg(long)]
    from: Option<String>,
    /// Events before this time: RFC 3339, or a date (through that day in China).
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    format: FormatArg,
    /// The language of the CSV header row.
    #[arg(long, value_enum, default_value_t = LangArg::ZhCn)]
    lang: LangArg,
    #[command(flatten)]
    filter: FilterArgs,
    /// Write to this new file (mode 0600; an existing file is not overwritten)
    /// instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct SearchArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only events older than this sequence number (the `next` of the previous page).
    #[arg(long)]
    before: Option<u64>,
    /// Events per page: 1 to 1000.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The resident's ID number (公民身份号码), or `-` to read it from stdin (keeps it
    /// out of the shell history and the process list).
    #[arg(long)]
    id_number: String,
    /// The environment variable holding the pseudonym key, when the gateway takes it
    /// from the environment (else the configuration's `pseudonym_key_env`, else
    /// DATA_DIR/pseudonym.key).
    #[arg(long)]
    pseudonym_key_env: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct AnomaliesArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Start of the window (RFC 3339 or a date); default: seven days before `until`.
    #[arg(long)]
    from: Option<String>,
    /// End of the window, exclusive (RFC 3339 or a date); default: now.
    #[arg(long)]
    until: Option<String>,
    /// Flag a user looking up more distinct subjects than this in one hour.
    #[arg(long)]
    subjects_per_hour: Option<usize>,
    /// Flag this many refusals (401/403) by one user within ten minutes.
    #[arg(long)]
    denials_per_10_min: Option<usize>,
    /// Flag this many refusals by a user's own rate limits or quotas (429) in one day.
    #[arg(long)]
    limit_refusals_per_day: Option<usize>,
    /// Flag this many verifications with a mismatch by one user in one day.
    #[arg(long)]
    verify_mismatches_per_day: Option<usize>,
    /// Print the anomalies as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LangArg {
    /// 简体中文.
    #[value(name = "zh-CN")]
    ZhCn,
    /// English.
    En,
}

impl LangArg {
    fn lang(self) -> Lang {
        match self {
            LangArg::ZhCn => Lang::ZhCn,
            LangArg::En => Lang::En,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutcomeArg {
    /// 2xx.
    Ok,
    /// 401 or 403.
    Refused,
    /// Any other 4xx or 5xx.
    Failed,
}

/// The audit log's checks, archive and checkpoints for the stores in `data_dir`.
pub(super) fn log_of(data_dir: &std::path::Path) -> std::sync::Arc<dyn audit::AuditBackend> {
    crate::store::Storage::sqlite(data_dir).audit_backend()
}

async fn run_reindex(data_dir: PathBuf) -> ExitCode {
    if !audit::segments::in_segments(&data_dir) {
        eprintln!(
            "error: {} keeps no audit log in segment files (an audit.db log is its own index)",
            data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    if audit::segments::writer_running(&data_dir) {
        eprintln!("error: a gateway is writing this data directory's audit log; stop it first");
        return ExitCode::FAILURE;
    }
    match tokio::task::spawn_blocking(move || audit::segments::reindex(&data_dir)).await {
        Ok(Ok(done)) => {
            println!(
                "index rebuilt from the segments: events up to seq {}, checkpoints up to seq {}",
                done.events, done.checkpoint
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: the reindex task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_migrate(data_dir: PathBuf) -> ExitCode {
    let moved = tokio::task::spawn_blocking(move || {
        audit::segments::migrate::to_segments(&data_dir, &audit::Expectations::default())
    })
    .await;
    match moved {
        Ok(Ok(done)) => {
            println!(
                "moved to segment files: {} events, {} checkpoints, last seq {} (hash {}); \
                 the old log is kept as {}",
                done.events,
                done.checkpoints,
                done.last_seq,
                done.last_hash,
                audit::segments::migrate::MIGRATED_FILE
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: the migration task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `gateway audit archive` says of its run.
fn archive_outcome(
    outcome: Result<Option<audit::Archived>, audit::AuditError>,
    keep_days: u32,
) -> ExitCode {
    match outcome {
        Ok(Some(archived)) => {
            for line in archived.lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("nothing older than {keep_days} days to archive");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The log a command works on, found from [`StoreArgs`].
struct Opened {
    storage: crate::store::Storage,
    /// The configuration's `pseudonym_key_env`, if any.
    pseudonym_key_env: Option<String>,
}

impl Opened {
    /// The data directory's log, or the store the configuration names (with its data
    /// directory, or `--data-dir` if given).
    fn of(args: StoreArgs) -> Result<Opened, ExitCode> {
        let Some(path) = args.config else {
            return match args.data_dir {
                Some(data_dir) => Ok(Opened {
                    storage: crate::store::Storage::sqlite(data_dir),
                    pseudonym_key_env: None,
                }),
                None => Err(usage("give --data-dir or --config")),
            };
        };
        let options = crate::config::LoadOptions {
            data_dir: args.data_dir,
            ..crate::config::LoadOptions::default()
        };
        let cfg = crate::config::load(&crate::config::DiskSource, &path, &options).map_err(
            |problems| {
                super::report(&problems);
                ExitCode::FAILURE
            },
        )?;
        let storage = crate::store::Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir)
            .map_err(|e| {
            eprintln!("error: the store: {e}");
            ExitCode::FAILURE
        })?;
        Ok(Opened {
            storage,
            pseudonym_key_env: cfg.pseudonym_key_env,
        })
    }

    fn data_dir(&self) -> &Path {
        self.storage.data_dir()
    }

    fn reader(&self) -> std::sync::Arc<dyn audit::AuditReader> {
        self.storage.audit_reader()
    }

    /// The pseudonym key's variable: the command line's, else the configuration's.
    fn key_env<'a>(&'a self, given: Option<&'a str>) -> Option<&'a str> {
        given.or(self.pseudonym_key_env.as_deref())
    }
}

pub(super) async fn run_audit(command: AuditCommand) -> ExitCode {
    match command {
        // Verify talks to witnesses: it is run by the caller, on the runtime.
        AuditCommand::Verify(_) => ExitCode::from(2),
        AuditCommand::PublicKey(args) => super::verify::run_public_key(&args).await,
        AuditCommand::Reindex { data_dir } => run_reindex(data_dir).await,
        AuditCommand::MigrateToSegments { data_dir } => run_migrate(data_dir).await,
        AuditCommand::Archive { store, keep_days } => {
            let opened = match Opened::of(store) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            let retention = audit::Retention {
                keep_days,
                allow_short: false,
            };
            let log = opened.storage.audit_backend();
            archive_outcome(log.archive(retention, chrono::Utc::now()).await, keep_days)
        }
        AuditCommand::Checkpoint { store } => {
            let opened = match Opened::of(store) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            match opened.storage.audit_backend().latest_checkpoint().await {
                Ok(Some(text)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!("no checkpoint yet in {}", opened.storage.location());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCommand::Search(args) => run_search(*args).await,
        AuditCommand::Export(args) => run_export(*args).await,
        AuditCommand::Report(args) => run_report(args).await,
        AuditCommand::Anomalies(args) => run_anomalies(args).await,
    }
}

/// Exit code 2, after saying why.
fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// The exit code for a reader's error: 2 for a bad question, 1 otherwise.
fn failed(error: &SearchError) -> ExitCode {
    eprintln!("error: {error}");
    match error {
        SearchError::InvalidFilter(..) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// Records this use of the audit log in the log itself, as the API does, with the
/// operating-system user as the user — before anything is read out. A data
/// directory without a log is a failure, and none is created.
async fn record_use(
    opened: &Opened,
    operation: &str,
    subject: Option<&(String, String)>,
) -> Result<(), ExitCode> {
    if matches!(
        opened.storage.backend(),
        crate::store::Backend::Sqlite { .. }
    ) {
        let path = opened.data_dir().join(audit::AUDIT_FILE);
        if !path.is_file() {
            return Err(failed(&SearchError::NoLog(path)));
        }
    }
    let mut caller = AuditCaller::gateway();
    caller.user = super::os_user();
    caller.app = Some(super::CLI_APP.to_owned());
    let mut event = AuditEvent::admin(&uuid::Uuid::now_v7().to_string(), caller, operation);
    event.subject_pseudonym = subject.map(|(pseudonym, _)| pseudonym.clone());
    event.subject_masked = subject.map(|(_, masked)| masked.clone());
    // On PostgreSQL this takes a chain, as a replica does (a free one if there is).
    let writer = opened
        .storage
        .open_audit(Default::default())
        .await
        .map_err(|e| {
            eprintln!("error: the audit log: {e}");
            ExitCode::FAILURE
        })?;
    let appended = writer.log().append(event).await;
    writer.shutdown().await;
    appended.map(|_| ()).map_err(|e| {
        eprintln!("error: the audit log could not record this use, so nothing was read: {e}");
        ExitCode::FAILURE
    })
}

/// The filter of the command line, the resident (pseudonym, masked ID) if one was
/// named, checked as the reader checks it.
fn filter_of(
    opened: &Opened,
    args: FilterArgs,
) -> Result<(Filter, Option<(String, String)>), ExitCode> {
    let resident = match &args.id_number {
        None => None,
        Some(id) => Some(resident(
            opened.data_dir(),
            id,
            opened.key_env(args.pseudonym_key_env.as_deref()),
        )?),
    };
    let filter = Filter {
        subject_pseudonym: resident.as_ref().map(|(pseudonym, _)| pseudonym.clone()),
        user: args.user,
        township: args.township,
        connector: args.connector,
        purpose: args.purpose,
        outcome: args.outcome.map(|o| match o {
            OutcomeArg::Ok => OutcomeClass::Ok,
            OutcomeArg::Refused => OutcomeClass::Refused,
            OutcomeArg::Failed => OutcomeClass::Failed,
        }),
        status: args.status,
        from: args.from,
        until: args.until,
    };
    audit::check_filter(&filter).map_err(|e| failed(&e))?;
    Ok((filter, resident))
}

async fn run_search(args: SearchArgs) -> ExitCode {
    if let Err(e) = audit::check_limit(args.limit) {
        return failed(&e);
    }
    let opened = match Opened::of(args.store) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (filter, resident) = match filter_of(&opened, args.filter) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(code) = record_use(&opened, "audit.search", resident.as_ref()).await {
        return code;
    }
    match opened
        .reader()
        .search(filter, args.before, args.limit)
        .await
    {
        Ok(page) => print_json(&page),
        Err(e) => failed(&e),
    }
}

async fn run_export(args: ExportArgs) -> ExitCode {
    let opened = match Opened::of(args.store) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (filter, resident) = match filter_of(&opened, args.filter) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(code) = record_use(&opened, "audit.export", resident.as_ref()).await {
        return code;
    }
    let format = match args.format {
        FormatArg::Csv => ExportFormat::Csv(args.lang.lang()),
        FormatArg::Jsonl => ExportFormat::JsonLines,
    };
    let reader = opened.reader();
    match &args.out {
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            match export(&*reader, filter, format, &mut out).await {
                Ok(count) => {
                    eprintln!("{count} events exported");
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e),
            }
        }
        Some(path) => export_to_file(&*reader, filter, format, path).await,
    }
}

/// Writes every event matching `filter` to `out`, oldest first, as the reader
/// streams them (never all in memory); returns how many.
async fn export(
    reader: &dyn audit::AuditReader,
    filter: Filter,
    format: ExportFormat,
    out: &mut dyn std::io::Write,
) -> Result<u64, SearchError> {
    use futures::StreamExt as _;
    let mut events = reader.events(filter);
    out.write_all(&format.header())?;
    let mut count = 0u64;
    while let Some(event) = events.next().await {
        out.write_all(&format.encode(&event?)?)?;
        count += 1;
    }
    out.flush()?;
    Ok(count)
}

/// Exports into a new file readable by its owner only; a failed export leaves no file.
async fn export_to_file(
    reader: &dyn audit::AuditReader,
    filter: Filter,
    format: ExportFormat,
    path: &Path,
) -> ExitCode {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut out = BufWriter::new(file);
    let exported = match export(reader, filter, format, &mut out).await {
        Ok(count) => out
            .into_inner()
            .map_err(|e| SearchError::from(e.into_error()))
            .and_then(|file| Ok(file.sync_all().map(|()| count)?)),
        Err(e) => Err(e),
    };
    match exported {
        Ok(count) => {
            eprintln!("{count} events exported to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            failed(&e)
        }
    }
}

/// The resident's pseudonym, made exactly as the gateway makes it, and masked ID.
/// The ID number is never printed; a bad one exits 2 naming the check that failed.
fn resident(
    data_dir: &Path,
    subject: &str,
    key_env: Option<&str>,
) -> Result<(String, String), ExitCode> {
    let given = if subject == "-" {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("error: cannot read the ID number from stdin: {e}");
            return Err(ExitCode::FAILURE);
        }
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        subject.to_owned()
    };
    let id = IdNumber::parse(&given).map_err(|e| {
        usage(&format!(
            "--id-number is not a valid ID number ({}): {e}",
            e.code()
        ))
    })?;
    // Making a fresh key here would give pseudonyms that match nothing.
    let key_file = data_dir.join(crate::secrets::PSEUDONYM_KEY_FILE);
    if key_env.is_none() && !key_file.is_file() {
        eprintln!(
            "error: no pseudonym key at {}; if the gateway takes it from the environment, \
             name the variable with --pseudonym-key-env",
            key_file.display()
        );
        return Err(ExitCode::FAILURE);
    }
    let key = crate::secrets::pseudonym_key(key_env, data_dir).map_err(|e| {
        eprintln!("error: the pseudonym key: {e}");
        ExitCode::FAILURE
    })?;
    Ok((key.pseudonym(id.as_str()), id.masked()))
}

async fn run_report(args: ReportArgs) -> ExitCode {
    let opened = match Opened::of(args.store) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let found = match resident(
        opened.data_dir(),
        &args.id_number,
        opened.key_env(args.pseudonym_key_env.as_deref()),
    ) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(code) = record_use(&opened, "audit.report", Some(&found)).await {
        return code;
    }
    let (pseudonym, masked) = found;
    let today = crate::policy::china_today();
    let mut report = match opened.reader().citizen_report(pseudonym, today).await {
        Ok(report) => report,
        Err(e) => return failed(&e),
    };
    if args.json {
        report.subject_masked = Some(masked);
        return print_json(&report);
    }
    print!("{}", report_text(&report, &masked, today));
    ExitCode::SUCCESS
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot encode the answer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A recorded time on a Chinese clock (`2026-03-02 10:00:00 CST`), or as recorded.
fn china_time(recorded: &str) -> String {
    let cst = FixedOffset::east_opt(8 * 3600);
    match (DateTime::parse_from_rfc3339(recorded), cst) {
        (Ok(time), Some(cst)) => time
            .with_timezone(&cst)
            .format("%Y-%m-%d %H:%M:%S CST")
            .to_string(),
        _ => recorded.to_owned(),
    }
}

/// The readable citizen report.
fn report_text(report: &CitizenReport, masked: &str, today: NaiveDate) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut text = String::new();
    let _ = writeln!(text, "公民数据访问报告 Citizen access report");
    let _ = writeln!(text, "对象 subject: {masked}");
    let _ = writeln!(text, "截至 as of: {today} (China Standard Time)");
    let _ = writeln!(text);
    if report.accesses.is_empty() {
        let _ = writeln!(
            text,
            "没有查询记录 No lookup released data about this resident."
        );
    } else {
        let _ = writeln!(
            text,
            "共 {n} 次查询 {n} lookup(s) released data about this resident:",
            n = report.accesses.len()
        );
    }
    for (i, access) in report.accesses.iter().enumerate() {
        let source = match (&access.connector, &access.operation) {
            (Some(c), Some(o)) => format!("{c} ({o})"),
            (c, _) => or_dash(c),
        };
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "{:>3}. 时间 time: {}",
            i + 1,
            china_time(&access.time)
        );
        let _ = writeln!(text, "     查询人 user: {}", access.user);
        let _ = writeln!(
            text,
            "     乡镇/部门 township/department: {} / {}",
            or_dash(&access.township),
            or_dash(&access.department)
        );
        let _ = writeln!(text, "     数据来源 source: {source}");
        let _ = writeln!(text, "     事项 purpose: {}", or_dash(&access.purpose));
        let _ = writeln!(text, "     办件 case: {}", or_dash(&access.case_id));
        let fields = if access.fields.is_empty() {
            "-".to_owned()
        } else {
            access.fields.join(", ")
        };
        let _ = writeln!(text, "     字段 fields: {fields}");
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "暂缓告知 withheld for later disclosure: {}",
        report.withheld_until_later
    );
    text
}

async fn run_anomalies(args: AnomaliesArgs) -> ExitCode {
    let opened = match Opened::of(args.store) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let now = Utc::now();
    let until = args
        .until
        .clone()
        .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Millis, true));
    let from = match args.from.clone() {
        Some(from) => from,
        None => match audit::parse_time_bound(audit::Bound::Until, &until) {
            Ok(until) => {
                (until - chrono::Duration::days(7)).to_rfc3339_opts(SecondsFormat::Millis, true)
            }
            Err(e) => return failed(&e),
        },
    };
    let defaults = Thresholds::default();
    let thresholds = Thresholds {
        subjects_per_hour: args.subjects_per_hour.unwrap_or(defaults.subjects_per_hour),
        denials_per_10_min: args
            .denials_per_10_min
            .unwrap_or(defaults.denials_per_10_min),
        office_hours: defaults.office_hours,
        limit_refusals_per_day: args
            .limit_refusals_per_day
            .unwrap_or(defaults.limit_refusals_per_day),
        verify_mismatches_per_day: args
            .verify_mismatches_per_day
            .unwrap_or(defaults.verify_mismatches_per_day),
    };
    let found = match opened
        .reader()
        .anomalies(from.clone(), until.clone(), thresholds)
        .await
    {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    if let Err(code) = record_use(&opened, "audit.anomalies", None).await {
        return code;
    }
    if args.json {
        return print_json(&found);
    }
    print!("{}", anomalies_text(&found, &from, &until));
    ExitCode::SUCCESS
}

/// The most event numbers printed per anomaly (the JSON has them all).
const PRINTED_EVENTS: usize = 20;

fn anomalies_text(found: &[Anomaly], from: &str, until: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} anomal{} from {from} until {until}",
        found.len(),
        if found.len() == 1 { "y" } else { "ies" }
    );
    for anomaly in found {
        let kind = serde_json::to_value(anomaly.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(text, "[{kind}] {}: {}", anomaly.user, anomaly.detail);
        let shown: Vec<String> = anomaly
            .events
            .iter()
            .take(PRINTED_EVENTS)
            .map(u64::to_string)
            .collect();
        let more = anomaly.events.len().saturating_sub(PRINTED_EVENTS);
        let _ = write!(text, "    events (seq): {}", shown.join(", "));
        if more > 0 {
            let _ = write!(text, ", … ({more} more)");
        }
        let _ = writeln!(text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    impl StoreArgs {
        pub(crate) fn data_dir(data_dir: &Path) -> StoreArgs {
            StoreArgs {
                data_dir: Some(data_dir.to_owned()),
                config: None,
            }
        }
    }
    use crate::audit::search::testing::{cst, lookup, write_log};

    fn resident_id() -> IdNumber {
        IdNumber::build("139901", NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(), 123).unwrap()
    }

    #[tokio::test]
    async fn the_report_finds_the_resident_by_the_gateways_pseudonym() {
        let id = resident_id();
        let scratch = tempfile::tempdir().unwrap();
        // The gateway's key: the file the gateway made in its data directory.
        let key = crate::secrets::pseudonym_key(None, scratch.path()).unwrap();
        let mut mine = lookup(1, &cst(2026, 3, 2, 10, 0, 0), "li.clerk");
        mine.subject_pseudonym = Some(key.pseudonym(id.as_str()));
        let other = lookup(2, &cst(2026, 3, 2, 10, 0, 5), "wang.clerk");
        let dir = write_log(vec![mine, other]).await;
        std::fs::copy(
            scratch.path().join(crate::secrets::PSEUDONYM_KEY_FILE),
            dir.path().join(crate::secrets::PSEUDONYM_KEY_FILE),
        )
        .unwrap();

        let (pseudonym, masked) = resident(dir.path(), id.as_str(), None).unwrap();
        assert_eq!(masked, id.masked());
        let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        let report = audit::citizen_report(dir.path(), &pseudonym, today).unwrap();
        assert_eq!(report.accesses.len(), 1);
        let text = report_text(&report, &masked, today);
        let _ = &pseudonym;
        assert!(text.contains("li.clerk") && !text.contains("wang.clerk"));
        assert!(text.contains("时间 time: 2026-03-02 10:00:00 CST"));
        assert!(text.contains("办件 case: CASE-0001"));
        assert!(text.contains("字段 fields: name, birth_date"));
        assert!(text.contains("withheld for later disclosure: 0"));
        assert!(text.contains(&id.masked()) && !text.contains(id.as_str()));

        for json in [false, true] {
            let args = ReportArgs {
                store: StoreArgs::data_dir(dir.path()),
                id_number: id.as_str().to_owned(),
                pseudonym_key_env: None,
                json,
            };
            assert_eq!(run_report(args).await, ExitCode::SUCCESS);
        }
    }

    #[tokio::test]
    async fn bad_usage_exits_2_and_failures_exit_1() {
        let dir = write_log(vec![lookup(1, &cst(2026, 3, 2, 10, 0, 0), "li.clerk")]).await;
        let report = |subject: &str| ReportArgs {
            store: StoreArgs::data_dir(dir.path()),
            id_number: subject.to_owned(),
            pseudonym_key_env: None,
            json: false,
        };
        let mut bad_check = resident_id().as_str().to_owned();
        let last = if bad_check.ends_with('0') { "1" } else { "0" };
        bad_check.replace_range(17.., last);
        assert_eq!(run_report(report(&bad_check)).await, ExitCode::from(2));
        assert_eq!(run_report(report("12345")).await, ExitCode::from(2));
        // A valid ID but no key: a failure, and no key is made.
        assert_eq!(
            run_report(report(resident_id().as_str())).await,
            ExitCode::FAILURE
        );
        assert!(!dir.path().join(crate::secrets::PSEUDONYM_KEY_FILE).exists());

        let anomalies = |from: Option<&str>, data_dir: &Path| AnomaliesArgs {
            store: StoreArgs::data_dir(data_dir),
            from: from.map(str::to_owned),
            until: Some("2026-03-09".into()),
            subjects_per_hour: None,
            denials_per_10_min: None,
            limit_refusals_per_day: None,
            verify_mismatches_per_day: None,
            json: false,
        };
        assert_eq!(
            run_anomalies(anomalies(Some("2026-03-02"), dir.path())).await,
            ExitCode::SUCCESS
        );
        assert_eq!(
            run_anomalies(anomalies(Some("last monday"), dir.path())).await,
            ExitCode::from(2)
        );
        assert_eq!(
            run_anomalies(anomalies(Some("2026-01-01"), dir.path())).await,
            ExitCode::from(2),
            "a window over 31 days"
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            run_anomalies(anomalies(None, empty.path())).await,
            ExitCode::FAILURE
        );
    }

    #[tokio::test]
    async fn export_to_a_file_writes_a_new_private_file() {
        // Five seconds apart, on either side of midnight in China.
        let dir = write_log(vec![
            lookup(1, &cst(2026, 3, 2, 23, 59, 58), "li.clerk"),
            lookup(2, &cst(2026, 3, 3, 0, 0, 3), "wang.clerk"),
        ])
        .await;
        let out = dir.path().join("evidence.jsonl");
        let args = |from: &str| ExportArgs {
            store: StoreArgs::data_dir(dir.path()),
            format: FormatArg::Jsonl,
            lang: LangArg::ZhCn,
            filter: FilterArgs {
                user: None,
                township: None,
                connector: None,
                purpose: None,
                id_number: None,
                pseudonym_key_env: None,
                outcome: None,
                status: None,
                from: Some(from.to_owned()),
                until: Some("2026-03-03".to_owned()),
            },
            out: Some(out.clone()),
        };
        assert_eq!(run_export(args("2026-03-03")).await, ExitCode::SUCCESS);
        let written = std::fs::read_to_string(&out).unwrap();
        // The whole China day of 3 March, and nothing else (this export is in the log
        // now too, after it).
        assert_eq!(written.lines().count(), 1);
        assert!(written.contains("wang.clerk"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // An existing file is not overwritten.
        assert_eq!(run_export(args("2026-03-01")).await, ExitCode::FAILURE);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), written);
        // A bad time is bad usage, and leaves no file behind.
        std::fs::remove_file(&out).unwrap();
        assert_eq!(run_export(args("March")).await, ExitCode::from(2));
        assert!(!out.exists());
    }

    #[test]
    fn anomalies_print_a_few_event_numbers_each() {
        let found = vec![Anomaly {
            kind: audit::AnomalyKind::ManySubjects,
            user: "hoarder".into(),
            detail: "31 distinct subjects".into(),
            events: (1..=31).collect(),
        }];
        let text = anomalies_text(&found, "A", "B");
        assert!(text.starts_with(
            "1 anomaly from A until B\n[many_subjects] hoarder: 31 distinct subjects\n"
        ));
        assert!(text.contains("19, 20, … (11 more)\n"));
    }
}

#[cfg(test)]
mod recorded {
    use super::*;
    use crate::audit::search::testing::{cst, lookup, write_log};

    /// Every admin event in the log: (user, app, operation, subject pseudonym).
    fn admin_events(dir: &Path) -> Vec<(String, Option<String>, String, Option<String>)> {
        let page = audit::search(dir, &Filter::default(), None, audit::MAX_PAGE).unwrap();
        page.events
            .into_iter()
            .filter(|e| e.event.kind == audit::EventKind::Admin)
            .map(|e| {
                (
                    e.event.caller.user,
                    e.event.caller.app,
                    e.event.operation.unwrap_or_default(),
                    e.event.subject_pseudonym,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn every_read_of_the_log_from_the_command_line_is_in_the_log() {
        let scratch = tempfile::tempdir().unwrap();
        let key = crate::secrets::pseudonym_key(None, scratch.path()).unwrap();
        let id =
            IdNumber::build("139901", NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(), 123).unwrap();
        let dir = write_log(vec![lookup(1, &cst(2026, 3, 2, 10, 0, 0), "li.clerk")]).await;
        std::fs::copy(
            scratch.path().join(crate::secrets::PSEUDONYM_KEY_FILE),
            dir.path().join(crate::secrets::PSEUDONYM_KEY_FILE),
        )
        .unwrap();
        let filter = |id_number: Option<&str>| FilterArgs {
            user: None,
            township: None,
            connector: None,
            purpose: None,
            id_number: id_number.map(str::to_owned),
            pseudonym_key_env: None,
            outcome: None,
            status: None,
            from: Some("2026-03-02".into()),
            until: Some("2026-03-02".into()),
        };
        let search = SearchArgs {
            store: StoreArgs::data_dir(dir.path()),
            filter: filter(Some(id.as_str())),
            before: None,
            limit: 10,
        };
        assert_eq!(run_search(search).await, ExitCode::SUCCESS);
        let export = ExportArgs {
            store: StoreArgs::data_dir(dir.path()),
            format: FormatArg::Csv,
            lang: LangArg::En,
            filter: filter(None),
            out: Some(dir.path().join("out.csv")),
        };
        assert_eq!(run_export(export).await, ExitCode::SUCCESS);
        let report = ReportArgs {
            store: StoreArgs::data_dir(dir.path()),
            id_number: id.as_str().to_owned(),
            pseudonym_key_env: None,
            json: true,
        };
        assert_eq!(run_report(report).await, ExitCode::SUCCESS);

        let user = crate::cli::os_user();
        let pseudonym = Some(key.pseudonym(id.as_str()));
        let app = Some(crate::cli::CLI_APP.to_owned());
        assert_eq!(
            admin_events(dir.path()),
            vec![
                (
                    user.clone(),
                    app.clone(),
                    "audit.report".into(),
                    pseudonym.clone()
                ),
                (user.clone(), app.clone(), "audit.export".into(), None),
                (user, app, "audit.search".into(), pseudonym),
            ]
        );
        // A bad limit or time is refused before anything is recorded.
        let bad = SearchArgs {
            store: StoreArgs::data_dir(dir.path()),
            filter: filter(None),
            before: None,
            limit: 5000,
        };
        assert_eq!(run_search(bad).await, ExitCode::from(2));
        assert_eq!(admin_events(dir.path()).len(), 3);
        assert!(audit::verify(dir.path()).is_ok());
    }
}
