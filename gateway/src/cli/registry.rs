//! `gateway apply` and `gateway export`: the registry's file-managed objects kept in
//! step with a directory, and the whole registry written out as such a directory.
//!
//! This file owns the apply directory's layout — `connectors/*.yaml`, `schemas/**`
//! (the schemas the connectors name, relative to `schemas/`), `purposes.yaml` (more
//! purposes for the catalog) and `policies/*.yaml` —
//! reading it into the registry objects it stands for ([`read_apply_dir`]), the plan
//! that makes the registry's file-managed objects exactly those, with the diff it
//! prints ([`plan`]), and writing every registered object back out in that layout
//! ([`export_files`]).
//!
//! `apply` checks the configuration the plan would make exactly as `gateway check`
//! and the running gateway do (the files of `gateway.yaml` plus the registry), records
//! the apply in the audit log and commits it against the revision it was checked on;
//! a running gateway picks the new revision up by itself (see [`crate::live`]).
//! Objects made through the admin API are left alone, and a file cannot take over a
//! connector the API owns.
//!
//! `export` writes connectors (file-managed and API-made alike) with their schemas,
//! the applied purpose and policy files, and the API's grants merged into one policy file, so
//! that applying the export to a fresh data directory reproduces the registry.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use connectors::files::{FileRoots, MAX_FILE_BYTES};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use connectors::ConnectorDef;
use similar::{ChangeTag, TextDiff};

use super::report;
use crate::audit::{AuditCaller, AuditEvent};
use crate::config::{self, ConfigProblem, DiskSource, LoadOptions, REGISTRY_ROOT};
use crate::registry::{Change, ConnectorVersion, Origin, PolicyFileRecord, Registry, Snapshot};

/// Who made the versions and the audit event of an apply.
const APPLIER: &str = "gateway apply";

/// The apply directory's purpose file, and its path in the registry.
const PURPOSES_FILE: &str = "purposes.yaml";

/// Where `export` puts the grants made through the API.
const API_GRANTS_FILE: &str = "policies/api-grants.yaml";

/// The most lines of text diff printed for one file.
const MAX_DIFF_LINES: usize = 40;

/// Indent of the text diff lines under an object's line.
const DIFF_INDENT: &str = "    ";

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    /// The gateway configuration file (e.g. county/gateway.yaml).
    #[arg(long, short)]
    config: PathBuf,
    /// The data directory holding the registry; by default the configuration's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The directory to apply: connectors/*.yaml, schemas/**, purposes.yaml,
    /// policies/*.yaml.
    #[arg(long = "from", short = 'f', value_name = "APPLYDIR")]
    from: PathBuf,
    /// Print the changes and check them; commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who is applying, as the audit log records it; by default the
    /// operating-system user.
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// The gateway configuration file (e.g. county/gateway.yaml).
    #[arg(long, short)]
    config: PathBuf,
    /// The data directory holding the registry; by default the configuration's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write into OUTDIR even if it is not empty (files of the same name are replaced).
    #[arg(long)]
    force: bool,
    /// Where to write connectors/, schemas/, purposes.yaml and policies/.
    #[arg(value_name = "OUTDIR")]
    out: PathBuf,
}

/// The file-managed objects an apply directory stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Desired {
    /// By connector id; version 0 (the registry numbers versions).
    pub(super) connectors: BTreeMap<String, ConnectorVersion>,
    /// By path (`purposes.yaml`).
    pub(super) purpose_files: BTreeMap<String, PolicyFileRecord>,
    /// By path (`policies/x.yaml`).
    pub(super) policy_files: BTreeMap<String, PolicyFileRecord>,
}

/// The changes that make the registry's file-managed objects exactly the desired
/// ones, and what to print about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) changes: Vec<Change>,
    /// One line per object (`+`, `~`, `-` or `=`), each changed one followed by an
    /// indented diff of its text.
    pub(super) lines: Vec<String>,
    pub(super) added: usize,
    pub(super) changed: usize,
    pub(super) removed: usize,
}

impl Plan {
    pub(super) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub(super) fn summary(&self) -> String {
        format!(
            "{} to add, {} to change, {} to remove",
            self.added, self.changed, self.removed
        )
    }
}

/// Whether `path` is a non-empty relative path that stays inside its directory.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn problem(file: &Path, path: &str, message: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_owned(),
        path: path.to_owned(),
        message,
    }
}

/// The `*.yaml` files directly in `dir`, by name, sorted; none if `dir` is missing.
fn yaml_files(dir: &Path, problems: &mut Vec<ConfigProblem>) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            problems.push(problem(dir, "", format!("cannot be listed: {e}")));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(problem(dir, "", format!("cannot be listed: {e}")));
                continue;
            }
        };
        let Ok(name) = entry.file_name().into_string() else {
            problems.push(problem(
                &entry.path(),
                "",
                "the file name is not UTF-8".to_owned(),
            ));
            continue;
        };
        if name.ends_with(".yaml") && !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    names
}

/// Reads an apply directory into the objects it stands for, or every problem found
/// in it (files that cannot be read, connectors that do not parse, missing schemas).
/// `now` is the RFC 3339 time the versions are stamped with.
pub(super) fn read_apply_dir(dir: &Path, now: &str) -> Result<Desired, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems.push(problem(dir, "", "is not a directory".to_owned()));
        return Err(problems);
    }
    let mut desired = Desired::default();
    // Regular files inside the applied directory only, each bounded.
    let files = FileRoots::within([dir]);
    let read = |file: &Path| files.read_to_string(file, MAX_FILE_BYTES);
    let connectors_dir = dir.join("connectors");
    for name in yaml_files(&connectors_dir, &mut problems) {
        let file = connectors_dir.join(&name);
        let text = match read(&file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(problem(&file, "", e.to_string()));
                continue;
            }
        };
        let def = match ConnectorDef::from_yaml(&text) {
            Ok(def) => def,
            Err(p) => {
                problems.push(problem(&file, &p.path, p.message));
                continue;
            }
        };
        if let Some(other) = desired.connectors.get(&def.id) {
            problems.push(problem(
                &file,
                "id",
                format!(
                    "a second connector with id `{}` (also in {})",
                    def.id,
                    other.origin.describe()
                ),
            ));
            continue;
        }
        let mut schemas = BTreeMap::new();
        for (operation, op) in &def.operations {
            if schemas.contains_key(&op.schema) {
                continue;
            }
            let at = format!("operations.{operation}.schema");
            if !safe_relative(&op.schema) {
                problems.push(problem(
                    &file,
                    &at,
                    format!(
                        "`{}` must be a relative path inside schemas/, without `..`",
                        op.schema
                    ),
                ));
                continue;
            }
            let schema_file = dir.join("schemas").join(&op.schema);
            match read(&schema_file) {
                Ok(schema) => {
                    schemas.insert(op.schema.clone(), schema);
                }
                Err(e) => problems.push(problem(
                    &file,
                    &at,
                    format!("names the schema {}, which {e}", schema_file.display()),
                )),
            }
        }
        desired.connectors.insert(
            def.id.clone(),
            ConnectorVersion {
                id: def.id.clone(),
                version: 0,
                department: def.department.id.clone(),
                definition: text,
                schemas,
                origin: Origin::File {
                    path: format!("connectors/{name}"),
                },
                created_at: now.to_owned(),
                created_by: APPLIER.to_owned(),
                review: None,
                activated_at: None,
            },
        );
    }
    let purposes_file = dir.join(PURPOSES_FILE);
    if purposes_file.exists() {
        match read(&purposes_file) {
            Ok(text) => {
                let path = PURPOSES_FILE.to_owned();
                desired
                    .purpose_files
                    .insert(path.clone(), PolicyFileRecord { path, text });
            }
            Err(e) => problems.push(problem(&purposes_file, "", e.to_string())),
        }
    }
    let policies_dir = dir.join("policies");
    for name in yaml_files(&policies_dir, &mut problems) {
        let file = policies_dir.join(&name);
        match read(&file) {
            Ok(text) => {
                let path = format!("policies/{name}");
                desired
                    .policy_files
                    .insert(path.clone(), PolicyFileRecord { path, text });
            }
            Err(e) => problems.push(problem(&file, "", e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(desired)
    } else {
        Err(problems)
    }
}

/// A short line diff of two texts: hunk headers, a line of context, `-` and `+`
/// lines, each indented under the object's line; at most [`MAX_DIFF_LINES`].
fn text_diff(old: &str, new: &str) -> Vec<String> {
    let diff = TextDiff::from_lines(old, new);
    let mut unified = diff.unified_diff();
    unified.context_radius(1);
    let mut lines = Vec::new();
    for hunk in unified.iter_hunks() {
        lines.push(format!("{DIFF_INDENT}{}", hunk.header()));
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            let text = change.value().trim_end_matches(['\n', '\r']);
            lines.push(format!("{DIFF_INDENT}{sign}{text}"));
        }
    }
    if lines.len() > MAX_DIFF_LINES {
        let more = lines.len() - MAX_DIFF_LINES;
        lines.truncate(MAX_DIFF_LINES);
        lines.push(format!("{DIFF_INDENT}… {more} more lines"));
    }
    lines
}

/// The diff of a connector's definition and schemas.
fn connector_diff(old: &ConnectorVersion, new: &ConnectorVersion) -> Vec<String> {
    let mut lines = Vec::new();
    if old.definition != new.definition {
        lines.extend(text_diff(&old.definition, &new.definition));
    }
    let names: std::collections::BTreeSet<&String> =
        old.schemas.keys().chain(new.schemas.keys()).collect();
    for name in names {
        match (old.schemas.get(name), new.schemas.get(name)) {
            (Some(before), Some(after)) if before != after => {
                lines.push(format!("{DIFF_INDENT}schema {name} (changed)"));
                lines.extend(text_diff(before, after));
            }
            (None, Some(_)) => lines.push(format!("{DIFF_INDENT}schema {name} (added)")),
            (Some(_), None) => {
                lines.push(format!("{DIFF_INDENT}schema {name} (no longer named)"));
            }
            _ => {}
        }
    }
    lines
}

/// The changes that make the registry's file-managed connectors, purpose files and
/// policy files
/// exactly `desired`, with one printed line per object. API-made connectors are left
/// alone; a desired connector with the id of one is refused (the error lists every
/// such connector). `previous` holds, by id, the highest version the registry ever
/// stored of a connector, so a connector registered again gets the number the
/// registry will give it.
pub(super) fn plan(
    snapshot: &Snapshot,
    desired: &Desired,
    previous: &BTreeMap<String, u32>,
) -> Result<Plan, Vec<String>> {
    let refused: Vec<String> = desired
        .connectors
        .iter()
        .filter_map(|(id, version)| {
            let registered = snapshot.connectors.get(id)?;
            (!registered.current.origin.is_file()).then(|| {
                format!(
                    "{}: connector `{id}` was made through the API, which owns it; a file \
                     cannot replace it (give the file's connector another id, or leave it out)",
                    version.origin.describe()
                )
            })
        })
        .collect();
    if !refused.is_empty() {
        return Err(refused);
    }

    let mut plan = Plan::default();
    let mut ids: Vec<&String> = desired.connectors.keys().collect();
    ids.extend(
        snapshot
            .connectors
            .iter()
            .filter(|(id, c)| c.current.origin.is_file() && !desired.connectors.contains_key(*id))
            .map(|(id, _)| id),
    );
    ids.sort();
    for id in ids {
        let wanted = desired.connectors.get(id);
        let registered = snapshot.connectors.get(id);
        let last = previous.get(id).copied().unwrap_or(0);
        match (registered, wanted) {
            (None, Some(new)) => {
                plan.lines
                    .push(format!("+ connector {id} (v{})", last.saturating_add(1)));
                plan.changes.push(Change::PutConnector(new.clone()));
                plan.added += 1;
            }
            (Some(c), Some(new)) if c.current.same_content(new) => {
                let state = if c.enabled { "" } else { ", disabled" };
                plan.lines.push(format!(
                    "= connector {id} v{} (unchanged{state})",
                    c.current.version
                ));
            }
            (Some(c), Some(new)) => {
                let from = c.current.version;
                let to = last.max(from).saturating_add(1);
                let enabling = if c.enabled { "" } else { " (enabled again)" };
                plan.lines
                    .push(format!("~ connector {id} v{from} → v{to}{enabling}"));
                plan.lines.extend(connector_diff(&c.current, new));
                plan.changes.push(Change::PutConnector(new.clone()));
                plan.changed += 1;
            }
            (Some(c), None) => {
                plan.lines
                    .push(format!("- connector {id} (v{})", c.current.version));
                plan.changes
                    .push(Change::RemoveConnector { id: id.clone() });
                plan.removed += 1;
            }
            (None, None) => {}
        }
    }

    plan_files(
        &mut plan,
        FileKind::Purposes,
        &snapshot.purpose_files,
        &desired.purpose_files,
    );
    plan_files(
        &mut plan,
        FileKind::Policy,
        &snapshot.policy_files,
        &desired.policy_files,
    );
    Ok(plan)
}

/// The kinds of whole files an apply keeps in step.
#[derive(Debug, Clone, Copy)]
enum FileKind {
    Purposes,
    Policy,
}

impl FileKind {
    /// The word on the plan's lines.
    fn word(self) -> &'static str {
        match self {
            FileKind::Purposes => "purposes",
            FileKind::Policy => "policy",
        }
    }

    fn put(self, file: PolicyFileRecord) -> Change {
        match self {
            FileKind::Purposes => Change::PutPurposeFile(file),
            FileKind::Policy => Change::PutPolicyFile(file),
        }
    }

    fn remove(self, path: String) -> Change {
        match self {
            FileKind::Purposes => Change::RemovePurposeFile { path },
            FileKind::Policy => Change::RemovePolicyFile { path },
        }
    }
}

/// Plans the files of one kind: the registry's become exactly the desired ones.
fn plan_files(
    plan: &mut Plan,
    kind: FileKind,
    registered: &BTreeMap<String, PolicyFileRecord>,
    desired: &BTreeMap<String, PolicyFileRecord>,
) {
    let word = kind.word();
    let mut paths: Vec<&String> = desired.keys().chain(registered.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        match (registered.get(path), desired.get(path)) {
            (None, Some(new)) => {
                plan.lines.push(format!("+ {word} {path}"));
                plan.changes.push(kind.put(new.clone()));
                plan.added += 1;
            }
            (Some(old), Some(new)) if old.text == new.text => {
                plan.lines.push(format!("= {word} {path} (unchanged)"));
            }
            (Some(old), Some(new)) => {
                plan.lines.push(format!("~ {word} {path}"));
                plan.lines.extend(text_diff(&old.text, &new.text));
                plan.changes.push(kind.put(new.clone()));
                plan.changed += 1;
            }
            (Some(_), None) => {
                plan.lines.push(format!("- {word} {path}"));
                plan.changes.push(kind.remove(path.clone()));
                plan.removed += 1;
            }
            (None, None) => {}
        }
    }
}

/// Names a problem of a registry object the apply brings by the applied file it came
/// from (`APPLYDIR/policies/x.yaml`, `APPLYDIR/purposes.yaml`) rather than by its
/// place in the registry.
fn locate(mut problem: ConfigProblem, dir: &Path, desired: &Desired) -> ConfigProblem {
    let Ok(rest) = problem.file.strip_prefix(REGISTRY_ROOT) else {
        return problem;
    };
    let mut parts = rest.iter();
    let kind = parts.next().and_then(|k| k.to_str());
    let rest: PathBuf = parts.collect();
    let found = match kind {
        Some("connectors") => rest
            .to_str()
            .and_then(|name| name.strip_suffix(".yaml"))
            .and_then(|id| desired.connectors.get(id))
            .and_then(|c| match &c.origin {
                Origin::File { path } => Some(dir.join(path)),
                Origin::Api => None,
            }),
        Some("schemas") => {
            let mut parts = rest.iter();
            let id = parts.next().and_then(|id| id.to_str());
            let schema: PathBuf = parts.collect();
            id.filter(|id| desired.connectors.contains_key(*id))
                .map(|_| dir.join("schemas").join(schema))
        }
        Some("purposes") => rest
            .to_str()
            .filter(|path| desired.purpose_files.contains_key(*path))
            .map(|path| dir.join(path)),
        Some("policies") => rest
            .to_str()
            .filter(|path| desired.policy_files.contains_key(*path))
            .map(|path| dir.join(path)),
        _ => None,
    };
    if let Some(file) = found {
        problem.file = file;
    }
    problem
}

/// The stores the configuration names, with `--data-dir` if given, schema made
/// current.
async fn storage_of(
    config: &Path,
    data_dir: Option<PathBuf>,
) -> Result<crate::store::Storage, ExitCode> {
    let options = LoadOptions {
        data_dir,
        ..LoadOptions::default()
    };
    let cfg = config::load(&DiskSource, config, &options).map_err(|problems| {
        report(&problems);
        ExitCode::FAILURE
    })?;
    let storage = crate::store::Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir)
        .map_err(|e| {
            eprintln!("error: the store: {e}");
            ExitCode::FAILURE
        })?;
    storage.prepare().await.map_err(|e| {
        eprintln!("error: the store: {e}");
        ExitCode::FAILURE
    })?;
    Ok(storage)
}

/// The registry of the stores, and a snapshot of it.
async fn open_registry(
    storage: &crate::store::Storage,
) -> Result<(std::sync::Arc<dyn Registry>, Snapshot), ExitCode> {
    let registry = storage.registry().map_err(|e| {
        eprintln!("error: the registry: {e}");
        ExitCode::FAILURE
    })?;
    let snapshot = registry.snapshot().await.map_err(|e| {
        eprintln!("error: the registry: {e}");
        ExitCode::FAILURE
    })?;
    Ok((registry, snapshot))
}

/// Records the apply in the stores' audit log as an admin event.
async fn record_apply(
    storage: &crate::store::Storage,
    plan: &Plan,
    revision: u64,
    by: &str,
) -> Result<(), String> {
    let audit = storage
        .open_audit(Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut caller = AuditCaller::gateway();
    caller.user = by.to_owned();
    caller.app = Some(APPLIER.to_owned());
    let request_id = uuid::Uuid::now_v7().to_string();
    let operation = format!(
        "registry.apply +{} ~{} -{} rev={revision}",
        plan.added, plan.changed, plan.removed
    );
    let appended = audit
        .log()
        .append(AuditEvent::admin(&request_id, caller, &operation))
        .await;
    audit.shutdown().await;
    appended.map(|_| ()).map_err(|e| e.to_string())
}

pub(super) async fn run_apply(args: ApplyArgs) -> ExitCode {
    let storage = match storage_of(&args.config, args.data_dir).await {
        Ok(storage) => storage,
        Err(code) => return code,
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let desired = match read_apply_dir(&args.from, &now) {
        Ok(desired) => desired,
        Err(problems) => {
            report(&problems);
            println!("nothing committed");
            return ExitCode::FAILURE;
        }
    };
    let (registry, snapshot) = match open_registry(&storage).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let mut previous = BTreeMap::new();
    // Connectors the API holds only drafts of (none in force yet) are the API's too.
    let mut drafted = Vec::new();
    for id in desired.connectors.keys() {
        match registry.connector_versions(id).await {
            Ok(versions) => {
                if let Some(last) = versions.iter().map(|v| v.version).max() {
                    previous.insert(id.clone(), last);
                }
                if !snapshot.connectors.contains_key(id)
                    && versions.last().is_some_and(|v| !v.origin.is_file())
                {
                    drafted.push(format!(
                        "connector `{id}` has drafts made through the API, which owns it; a file \
                         cannot replace it (give the file's connector another id, or leave it out)"
                    ));
                }
            }
            Err(e) => {
                eprintln!("error: the registry: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !drafted.is_empty() {
        for why in drafted {
            eprintln!("error: {why}");
        }
        println!("nothing committed");
        return ExitCode::FAILURE;
    }
    let plan = match plan(&snapshot, &desired, &previous) {
        Ok(plan) => plan,
        Err(refused) => {
            for why in refused {
                eprintln!("error: {why}");
            }
            println!("nothing committed");
            return ExitCode::FAILURE;
        }
    };
    for line in &plan.lines {
        println!("{line}");
    }
    if plan.is_empty() {
        println!("no changes (registry revision {})", snapshot.revision);
    } else {
        println!("{}", plan.summary());
    }

    // The configuration the apply would make, checked as the gateway will load it.
    let candidate = match snapshot.with(&plan.changes) {
        Ok(candidate) => candidate,
        Err(e) => {
            eprintln!("error: the registry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        registry: candidate,
        data_dir: Some(storage.data_dir().to_owned()),
        ..LoadOptions::default()
    };
    match config::load(&DiskSource, &args.config, &options) {
        Ok(cfg) => println!(
            "valid: configuration version {}, {} connectors",
            cfg.version,
            cfg.connectors.len()
        ),
        Err(problems) => {
            let problems: Vec<ConfigProblem> = problems
                .into_iter()
                .map(|p| locate(p, &args.from, &desired))
                .collect();
            report(&problems);
            println!("invalid: nothing committed");
            return ExitCode::FAILURE;
        }
    }
    if plan.is_empty() {
        return ExitCode::SUCCESS;
    }
    if args.dry_run {
        println!("dry run: nothing committed");
        return ExitCode::SUCCESS;
    }

    let revision = snapshot.revision.saturating_add(1);
    let by = args.by.clone().unwrap_or_else(super::os_user);
    if let Err(e) = record_apply(&storage, &plan, revision, &by).await {
        eprintln!("error: the audit log cannot record the apply, so nothing was committed: {e}");
        return ExitCode::FAILURE;
    }
    match registry.commit(snapshot.revision, plan.changes).await {
        Ok(revision) => {
            println!("applied: registry revision {revision}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: nothing was committed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One file `export` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExportFile {
    /// Relative to the output directory, e.g. `connectors/hukou.yaml`.
    pub(super) path: String,
    pub(super) text: String,
    /// What it is, for the printed list.
    pub(super) about: String,
}

/// Adds a file to the export; the same path twice must have the same text (connectors
/// may share a schema).
fn put_file(
    files: &mut BTreeMap<String, ExportFile>,
    problems: &mut Vec<String>,
    file: ExportFile,
) {
    if !safe_relative(&file.path) {
        problems.push(format!(
            "{}: not a relative path inside the output directory ({})",
            file.path, file.about
        ));
        return;
    }
    match files.get(&file.path) {
        Some(existing) if existing.text == file.text => {}
        Some(existing) => problems.push(format!(
            "{}: {} and {} need different texts at the same path",
            file.path, existing.about, file.about
        )),
        None => {
            files.insert(file.path.clone(), file);
        }
    }
}

/// The API's grants as one policy file: every grant's `grants` (and `denies`) list,
/// merged, under a comment naming where each came from.
fn api_grants_file(snapshot: &Snapshot) -> Result<String, Vec<String>> {
    use serde_yaml_ng::{Mapping, Value};
    let mut problems = Vec::new();
    let mut merged: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut header = format!(
        "# Grants made through the admin API (approved access requests), written by\n\
         # `gateway export` from registry revision {}. Applied to a registry, they are\n\
         # file-managed like any policy file.\n",
        snapshot.revision
    );
    for grant in snapshot.grants.values() {
        let request = grant
            .request_id
            .as_deref()
            .map(|r| format!(", request {r}"))
            .unwrap_or_default();
        header.push_str(&format!(
            "#   {}: {} → township {} on {}{request}, by {} at {}\n",
            grant.id,
            grant.department,
            grant.township,
            grant.connector,
            grant.created_by,
            grant.created_at
        ));
        let policy: Value = match serde_yaml_ng::from_str(&grant.policy) {
            Ok(policy) => policy,
            Err(e) => {
                problems.push(format!(
                    "grant {}: its policy does not parse: {e}",
                    grant.id
                ));
                continue;
            }
        };
        for key in ["grants", "denies"] {
            match policy.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Sequence(rules)) => {
                    merged.entry(key).or_default().extend(rules.iter().cloned());
                }
                Some(_) => problems.push(format!(
                    "grant {}: its policy's `{key}` is not a list",
                    grant.id
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut document = Mapping::new();
    for key in ["grants", "denies"] {
        if let Some(rules) = merged.remove(key) {
            document.insert(Value::from(key), Value::Sequence(rules));
        }
    }
    match serde_yaml_ng::to_string(&document) {
        Ok(body) => Ok(format!("{header}{body}")),
        Err(e) => Err(vec![format!("the API's grants cannot be written: {e}")]),
    }
}

/// Every file `export` writes for `snapshot`, by path: each connector's current
/// definition at `connectors/ID.yaml` and its schemas under `schemas/`, the applied
/// purpose and policy files at their paths, and the API's grants at [`API_GRANTS_FILE`].
pub(super) fn export_files(snapshot: &Snapshot) -> Result<Vec<ExportFile>, Vec<String>> {
    let mut files = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, connector) in &snapshot.connectors {
        let current = &connector.current;
        let mut about = format!(
            "connector {id} v{}, from {}",
            current.version,
            current.origin.describe()
        );
        if !connector.enabled {
            about.push_str(", disabled in the registry");
        }
        if id.contains(['/', '\\']) {
            problems.push(format!("connector `{id}`: the id is not a file name"));
            continue;
        }
        put_file(
            &mut files,
            &mut problems,
            ExportFile {
                path: format!("connectors/{id}.yaml"),
                text: current.definition.clone(),
                about,
            },
        );
        for (schema, text) in &current.schemas {
            put_file(
                &mut files,
                &mut problems,
                ExportFile {
                    path: format!("schemas/{schema}"),
                    text: text.clone(),
                    about: format!("schema of {id}"),
                },
            );
        }
    }
    for (path, file) in &snapshot.purpose_files {
        put_file(
            &mut files,
            &mut problems,
            ExportFile {
                path: path.clone(),
                text: file.text.clone(),
                about: "purpose file".to_owned(),
            },
        );
    }
    for (path, file) in &snapshot.policy_files {
        put_file(
            &mut files,
            &mut problems,
            ExportFile {
                path: path.clone(),
                text: file.text.clone(),
                about: "policy file".to_owned(),
            },
        );
    }
    if !snapshot.grants.is_empty() {
        match api_grants_file(snapshot) {
            Ok(text) => put_file(
                &mut files,
                &mut problems,
                ExportFile {
                    path: API_GRANTS_FILE.to_owned(),
                    text,
                    about: format!("{} grants made through the API", snapshot.grants.len()),
                },
            ),
            Err(more) => problems.extend(more),
        }
    }
    if problems.is_empty() {
        Ok(files.into_values().collect())
    } else {
        Err(problems)
    }
}

pub(super) async fn run_export(args: ExportArgs) -> ExitCode {
    let storage = match storage_of(&args.config, args.data_dir).await {
        Ok(storage) => storage,
        Err(code) => return code,
    };
    let (_, snapshot) = match open_registry(&storage).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let files = match export_files(&snapshot) {
        Ok(files) => files,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            eprintln!("nothing written");
            return ExitCode::FAILURE;
        }
    };
    match std::fs::read_dir(&args.out) {
        Ok(mut entries) => {
            if entries.next().is_some() && !args.force {
                eprintln!(
                    "error: {} is not empty; give --force to write into it anyway",
                    args.out.display()
                );
                return ExitCode::FAILURE;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            eprintln!("error: {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    for file in &files {
        let target = args.out.join(&file.path);
        let written = match target.parent() {
            Some(parent) => std::fs::create_dir_all(parent),
            None => Ok(()),
        }
        .and_then(|()| std::fs::write(&target, &file.text));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", target.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {} ({})", file.path, file.about);
    }
    let disabled: Vec<&str> = snapshot
        .connectors
        .iter()
        .filter(|(_, c)| !c.enabled)
        .map(|(id, _)| id.as_str())
        .collect();
    if !disabled.is_empty() {
        println!(
            "disabled in the registry (applying the export elsewhere enables them): {}",
            disabled.join(", ")
        );
    }
    if files.is_empty() {
        println!(
            "nothing registered (registry revision {})",
            snapshot.revision
        );
    } else {
        println!(
            "exported registry revision {} to {}: {} connectors, {} purpose files, {} policy \
             files, {} API grants",
            snapshot.revision,
            args.out.display(),
            snapshot.connectors.len(),
            snapshot.purpose_files.len(),
            snapshot.policy_files.len(),
            snapshot.grants.len()
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{GrantRecord, RegisteredConnector};

    const SCHEMA: &str = "test/thing.schema.json";

    fn version(id: &str, definition: &str, origin: Origin) -> ConnectorVersion {
        ConnectorVersion {
            id: id.to_owned(),
            version: 0,
            department: "county-hc".to_owned(),
            definition: definition.to_owned(),
            schemas: BTreeMap::from([(
                SCHEMA.to_owned(),
                "{\n  \"type\": \"object\"\n}\n".to_owned(),
            )]),
            origin,
            created_at: "2026-03-01T08:00:00Z".to_owned(),
            created_by: APPLIER.to_owned(),
            review: None,
            activated_at: None,
        }
    }

    fn file(id: &str) -> Origin {
        Origin::File {
            path: format!("connectors/{id}.yaml"),
        }
    }

    fn registered(
        mut v: ConnectorVersion,
        at: u32,
        enabled: bool,
    ) -> (String, RegisteredConnector) {
        v.version = at;
        (
            v.id.clone(),
            RegisteredConnector {
                current: v,
                enabled,
            },
        )
    }

    fn policy(path: &str, text: &str) -> (String, PolicyFileRecord) {
        (
            path.to_owned(),
            PolicyFileRecord {
                path: path.to_owned(),
                text: text.to_owned(),
            },
        )
    }

    fn desired(connectors: &[ConnectorVersion], policies: &[(&str, &str)]) -> Desired {
        Desired {
            connectors: connectors
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect(),
            policy_files: policies.iter().map(|(p, t)| policy(p, t)).collect(),
            ..Desired::default()
        }
    }

    const DEF_A: &str = "id: a\ntitle: first\nkind: http\n";
    const DEF_A2: &str = "id: a\ntitle: second\nkind: http\n";

    #[test]
    fn an_empty_registry_gets_everything_added() {
        let want = desired(
            &[version("a", DEF_A, file("a"))],
            &[("policies/a.yaml", "grants: []\n")],
        );
        let plan = plan(&Snapshot::default(), &want, &BTreeMap::new()).unwrap();
        assert_eq!(
            plan.lines,
            ["+ connector a (v1)", "+ policy policies/a.yaml"]
        );
        assert_eq!(plan.summary(), "2 to add, 0 to change, 0 to remove");
        assert_eq!(
            plan.changes,
            [
                Change::PutConnector(version("a", DEF_A, file("a"))),
                Change::PutPolicyFile(policy("policies/a.yaml", "grants: []\n").1),
            ]
        );
        // The snapshot it makes holds exactly what was desired.
        let next = Snapshot::default().with(&plan.changes).unwrap();
        assert_eq!(next.connectors["a"].current.version, 1);
        assert_eq!(next.policy_files.len(), 1);
        let again = plan_of(&next, &want);
        assert!(again.is_empty(), "{again:?}");
    }

    fn plan_of(snapshot: &Snapshot, want: &Desired) -> Plan {
        plan(snapshot, want, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn the_same_objects_make_no_changes() {
        let snapshot = Snapshot {
            revision: 3,
            connectors: BTreeMap::from([registered(version("a", DEF_A, file("a")), 2, true)]),
            policy_files: BTreeMap::from([policy("policies/a.yaml", "grants: []\n")]),
            ..Snapshot::default()
        };
        // Another apply's time and user do not make a new version.
        let mut same = version("a", DEF_A, file("a"));
        same.created_at = "2027-01-01T00:00:00Z".to_owned();
        let plan = plan_of(
            &snapshot,
            &desired(&[same], &[("policies/a.yaml", "grants: []\n")]),
        );
        assert!(plan.is_empty());
        assert_eq!(
            plan.lines,
            [
                "= connector a v2 (unchanged)",
                "= policy policies/a.yaml (unchanged)"
            ]
        );
        assert_eq!(plan.summary(), "0 to add, 0 to change, 0 to remove");
    }

    #[test]
    fn an_unchanged_disabled_connector_stays_disabled() {
        let snapshot = Snapshot {
            connectors: BTreeMap::from([registered(version("a", DEF_A, file("a")), 1, false)]),
            ..Snapshot::default()
        };
        let plan = plan_of(&snapshot, &desired(&[version("a", DEF_A, file("a"))], &[]));
        assert!(plan.changes.is_empty());
        assert_eq!(plan.lines, ["= connector a v1 (unchanged, disabled)"]);
    }

    #[test]
    fn a_changed_connector_gets_the_next_version_and_a_diff() {
        let snapshot = Snapshot {
            connectors: BTreeMap::from([registered(version("a", DEF_A, file("a")), 3, true)]),
            ..Snapshot::default()
        };
        let mut new = version("a", DEF_A2, file("a"));
        new.schemas
            .insert("test/extra.schema.json".to_owned(), "{}".to_owned());
        let plan = plan_of(&snapshot, &desired(std::slice::from_ref(&new), &[]));
        assert_eq!(plan.lines[0], "~ connector a v3 → v4");
        assert!(
            plan.lines.contains(&"    -title: first".to_owned()),
            "{:#?}",
            plan.lines
        );
        assert!(
            plan.lines.contains(&"    +title: second".to_owned()),
            "{:#?}",
            plan.lines
        );
        assert!(
            plan.lines
                .contains(&"    schema test/extra.schema.json (added)".to_owned()),
            "{:#?}",
            plan.lines
        );
        assert_eq!(plan.changes, [Change::PutConnector(new)]);
        assert_eq!(plan.summary(), "0 to add, 1 to change, 0 to remove");
    }

    #[test]
    fn a_changed_schema_alone_is_a_change() {
        let snapshot = Snapshot {
            connectors: BTreeMap::from([registered(version("a", DEF_A, file("a")), 1, false)]),
            ..Snapshot::default()
        };
        let mut new = version("a", DEF_A, file("a"));
        new.schemas.insert(
            SCHEMA.to_owned(),
            "{\n  \"type\": \"array\"\n}\n".to_owned(),
        );
        let plan = plan_of(&snapshot, &desired(&[new], &[]));
        assert_eq!(plan.lines[0], "~ connector a v1 → v2 (enabled again)");
        assert_eq!(plan.lines[1], format!("    schema {SCHEMA} (changed)"));
        assert!(
            plan.lines
                .contains(&"    -  \"type\": \"object\"".to_owned())
        );
        assert!(
            plan.lines
                .contains(&"    +  \"type\": \"array\"".to_owned())
        );
        assert_eq!(plan.changed, 1);
    }

    #[test]
    fn file_objects_no_longer_in_the_directory_are_removed_and_api_ones_kept() {
        let snapshot = Snapshot {
            connectors: BTreeMap::from([
                registered(version("gone", DEF_A, file("gone")), 2, true),
                registered(version("api", DEF_A, Origin::Api), 5, true),
            ]),
            policy_files: BTreeMap::from([policy("policies/old.yaml", "grants: []\n")]),
            ..Snapshot::default()
        };
        let plan = plan_of(&snapshot, &Desired::default());
        assert_eq!(
            plan.lines,
            ["- connector gone (v2)", "- policy policies/old.yaml"]
        );
        assert_eq!(
            plan.changes,
            [
                Change::RemoveConnector { id: "gone".into() },
                Change::RemovePolicyFile {
                    path: "policies/old.yaml".into()
                },
            ]
        );
        assert_eq!(plan.summary(), "0 to add, 0 to change, 2 to remove");
        let next = snapshot.with(&plan.changes).unwrap();
        assert_eq!(next.connectors.keys().collect::<Vec<_>>(), ["api"]);
    }

    #[test]
    fn a_file_cannot_take_over_an_api_connector() {
        let snapshot = Snapshot {
            connectors: BTreeMap::from([registered(version("a", DEF_A, Origin::Api), 1, true)]),
            ..Snapshot::default()
        };
        let refused = plan(
            &snapshot,
            &desired(&[version("a", DEF_A2, file("a"))], &[]),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("file connectors/a.yaml: connector `a`"),
            "{refused:?}"
        );
        assert!(refused[0].contains("the API"), "{refused:?}");
    }

    #[test]
    fn a_connector_registered_again_continues_its_numbering() {
        let want = desired(&[version("a", DEF_A, file("a"))], &[]);
        let plan = plan(
            &Snapshot::default(),
            &want,
            &BTreeMap::from([("a".to_owned(), 3)]),
        )
        .unwrap();
        assert_eq!(plan.lines, ["+ connector a (v4)"]);
    }

    #[test]
    fn a_changed_policy_file_shows_its_lines() {
        let snapshot = Snapshot {
            policy_files: BTreeMap::from([policy(
                "policies/p.yaml",
                "grants:\n  - id: x\n    connector: a\n",
            )]),
            ..Snapshot::default()
        };
        let plan = plan_of(
            &snapshot,
            &desired(
                &[],
                &[("policies/p.yaml", "grants:\n  - id: x\n    connector: b\n")],
            ),
        );
        assert_eq!(
            plan.lines,
            [
                "~ policy policies/p.yaml",
                "    @@ -2,2 +2,2 @@",
                "       - id: x",
                "    -    connector: a",
                "    +    connector: b",
            ]
        );
        assert_eq!(plan.summary(), "0 to add, 1 to change, 0 to remove");
    }

    #[test]
    fn long_diffs_are_cut() {
        let old: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let lines = text_diff(&old, "");
        assert_eq!(lines.len(), MAX_DIFF_LINES + 1);
        assert!(lines[MAX_DIFF_LINES].contains("more lines"));
    }

    const PURPOSES: &str = "purposes:\n  - code: a\n";

    #[test]
    fn purpose_files_are_added_changed_kept_and_removed_like_policy_files() {
        let mut want = desired(&[], &[]);
        want.purpose_files = BTreeMap::from([policy(PURPOSES_FILE, PURPOSES)]);
        let added = plan_of(&Snapshot::default(), &want);
        assert_eq!(added.lines, ["+ purposes purposes.yaml"]);
        assert_eq!(
            added.changes,
            [Change::PutPurposeFile(policy(PURPOSES_FILE, PURPOSES).1)]
        );
        let next = Snapshot::default().with(&added.changes).unwrap();
        assert_eq!(next.purpose_files, want.purpose_files);
        let same = plan_of(&next, &want);
        assert!(same.is_empty());
        assert_eq!(same.lines, ["= purposes purposes.yaml (unchanged)"]);

        let mut changed = want.clone();
        changed.purpose_files = BTreeMap::from([policy(PURPOSES_FILE, "purposes:\n  - code: b\n")]);
        let plan = plan_of(&next, &changed);
        assert_eq!(plan.lines[0], "~ purposes purposes.yaml");
        assert!(
            plan.lines.iter().any(|l| l.contains("+  - code: b")),
            "{plan:#?}"
        );
        assert_eq!(plan.summary(), "0 to add, 1 to change, 0 to remove");

        let removed = plan_of(&next, &desired(&[], &[]));
        assert_eq!(removed.lines, ["- purposes purposes.yaml"]);
        assert_eq!(
            removed.changes,
            [Change::RemovePurposeFile {
                path: PURPOSES_FILE.into()
            }]
        );
    }

    #[test]
    fn problems_name_the_applied_files() {
        let dir = Path::new("/apply");
        let want = desired(
            &[version(
                "a",
                DEF_A,
                Origin::File {
                    path: "connectors/file-a.yaml".into(),
                },
            )],
            &[("policies/p.yaml", "")],
        );
        let mut want = want;
        want.purpose_files = BTreeMap::from([policy(PURPOSES_FILE, PURPOSES)]);
        let at = |file: &str| locate(problem(Path::new(file), "x", "bad".into()), dir, &want).file;
        assert_eq!(
            at("/@registry/connectors/a.yaml"),
            dir.join("connectors/file-a.yaml")
        );
        assert_eq!(
            at(&format!("/@registry/schemas/a/{SCHEMA}")),
            dir.join("schemas").join(SCHEMA)
        );
        assert_eq!(
            at("/@registry/policies/policies/p.yaml"),
            dir.join("policies/p.yaml")
        );
        assert_eq!(
            at("/@registry/purposes/purposes.yaml"),
            dir.join("purposes.yaml")
        );
        // Objects the apply does not bring, and the files of gateway.yaml, stay as named.
        assert_eq!(
            at("/@registry/connectors/api.yaml"),
            Path::new("/@registry/connectors/api.yaml")
        );
        assert_eq!(
            at("/county/gateway.yaml"),
            Path::new("/county/gateway.yaml")
        );
    }

    #[test]
    fn safe_paths() {
        assert!(safe_relative("hukou/person.schema.json"));
        assert!(!safe_relative("../secret"));
        assert!(!safe_relative("/etc/passwd"));
        assert!(!safe_relative("a/../../b"));
        assert!(!safe_relative(""));
    }

    fn write(dir: &Path, path: &str, text: &str) {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, text).unwrap();
    }

    const JISHENG: &str = include_str!("../../../county/connectors/jisheng.yaml");
    const FERTILITY: &str = include_str!("../../../schemas/jisheng/fertility.schema.json");

    #[test]
    fn an_apply_dir_is_read_into_registry_objects() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "connectors/jisheng.yaml", JISHENG);
        write(dir.path(), "connectors/notes.txt", "not a connector");
        write(
            dir.path(),
            "schemas/jisheng/fertility.schema.json",
            FERTILITY,
        );
        write(dir.path(), "policies/p.yaml", "grants: []\n");
        write(dir.path(), "purposes.yaml", PURPOSES);
        let desired = read_apply_dir(dir.path(), "2026-03-01T08:00:00Z").unwrap();
        let jisheng = &desired.connectors["jisheng"];
        assert_eq!(jisheng.definition, JISHENG);
        assert_eq!(jisheng.department, "county-hc");
        assert_eq!(jisheng.version, 0);
        assert_eq!(
            jisheng.origin,
            Origin::File {
                path: "connectors/jisheng.yaml".into()
            }
        );
        assert_eq!(jisheng.created_by, "gateway apply");
        assert_eq!(
            jisheng.schemas,
            BTreeMap::from([(
                "jisheng/fertility.schema.json".to_owned(),
                FERTILITY.to_owned()
            )])
        );
        assert_eq!(desired.policy_files["policies/p.yaml"].text, "grants: []\n");
        assert_eq!(desired.purpose_files[PURPOSES_FILE].text, PURPOSES);

        // No subdirectories at all: nothing desired.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            read_apply_dir(empty.path(), "t").unwrap(),
            Desired::default()
        );
    }

    #[test]
    fn an_apply_dir_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "connectors/jisheng.yaml", JISHENG);
        write(dir.path(), "connectors/broken.yaml", "id: [");
        write(dir.path(), "connectors/twice.yaml", JISHENG);
        let problems = read_apply_dir(dir.path(), "t").unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{text:#?}");
        assert!(
            problems[0].file.ends_with("connectors/broken.yaml"),
            "{text:#?}"
        );
        assert!(
            problems[1].file.ends_with("connectors/jisheng.yaml"),
            "{text:#?}"
        );
        assert_eq!(problems[1].path, "operations.fertility_by_id.schema");
        assert!(
            problems[1].message.contains("fertility.schema.json"),
            "{text:#?}"
        );
        assert!(
            problems[2].file.ends_with("connectors/twice.yaml"),
            "{text:#?}"
        );
        assert!(
            problems[2].message.contains("second connector"),
            "{text:#?}"
        );
    }

    fn grant(id: &str, rule: &str) -> (String, GrantRecord) {
        (
            id.to_owned(),
            GrantRecord {
                id: id.to_owned(),
                department: "county-hc".to_owned(),
                connector: "a".to_owned(),
                township: "139901101".to_owned(),
                policy: format!("grants:\n  - id: {rule}\n    connector: a\n"),
                request_id: Some(format!("rq-{id}")),
                created_at: "2026-03-02T08:00:00Z".to_owned(),
                created_by: "lead".to_owned(),
                revoked: None,
            },
        )
    }

    #[test]
    fn export_writes_connectors_schemas_purposes_policies_and_merged_grants() {
        let snapshot = Snapshot {
            revision: 7,
            connectors: BTreeMap::from([
                registered(version("a", DEF_A, file("a")), 2, true),
                registered(version("b", "id: b\n", Origin::Api), 1, false),
            ]),
            purpose_files: BTreeMap::from([policy(PURPOSES_FILE, PURPOSES)]),
            policy_files: BTreeMap::from([policy("policies/p.yaml", "grants: []\n")]),
            grants: BTreeMap::from([grant("ar-1", "rule-1"), grant("ar-2", "rule-2")]),
        };
        let files = export_files(&snapshot).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "connectors/a.yaml",
                "connectors/b.yaml",
                "policies/api-grants.yaml",
                "policies/p.yaml",
                "purposes.yaml",
                "schemas/test/thing.schema.json",
            ]
        );
        assert_eq!(files[4].text, PURPOSES);
        assert_eq!(files[0].text, DEF_A);
        assert!(files[1].about.contains("disabled"), "{}", files[1].about);
        let grants = &files[2].text;
        assert!(grants.contains("rq-ar-1"), "{grants}");
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(grants).unwrap();
        let ids: Vec<&str> = parsed["grants"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["rule-1", "rule-2"]);
    }

    #[test]
    fn export_refuses_two_texts_at_one_path() {
        let mut b = version("b", "id: b\n", Origin::Api);
        b.schemas.insert(SCHEMA.to_owned(), "{}".to_owned());
        let snapshot = Snapshot {
            connectors: BTreeMap::from([
                registered(version("a", DEF_A, file("a")), 1, true),
                registered(b, 1, true),
            ]),
            policy_files: BTreeMap::from([policy(API_GRANTS_FILE, "grants: []\n")]),
            grants: BTreeMap::from([grant("ar-1", "rule-1")]),
            ..Snapshot::default()
        };
        let problems = export_files(&snapshot).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with(&format!("schemas/{SCHEMA}")),
            "{problems:#?}"
        );
        assert!(problems[1].starts_with(API_GRANTS_FILE), "{problems:#?}");
    }

    #[test]
    fn an_empty_registry_exports_nothing() {
        assert!(export_files(&Snapshot::default()).unwrap().is_empty());
    }
}
