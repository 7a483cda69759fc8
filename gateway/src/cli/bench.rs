//! `gateway bench` (hidden): the helpers `bench/run` drives.
//!
//! - `fixtures` writes a bench county derived from the repository's own files at run
//!   time (limits and quotas off, department capacity off, one config without and one
//!   with the record cache, the bench forms), an issuer key pair, a clerk token and the
//!   IDs of residents the clerk may look up;
//! - `load` is a fixed-rate, open-loop HTTP client (Debian has no `wrk2`): it sends
//!   requests on a schedule whatever the answers do and prints latency percentiles as
//!   JSON;
//! - `fsync` measures how long making a small write durable takes where the audit log
//!   lives: every audited request waits for at least one such sync;
//! - `report` turns the JSON results of a run into the markdown tables of
//!   `bench/results.md`, with the targets of DESIGN.md §8 marked pass or fail.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use sim::ResidentStatus;

use crate::auth::{MintClaims, Role, SigningKey};
use crate::config::{self, DiskSource, LoadOptions};
use crate::demo;

#[derive(Debug, Subcommand)]
pub(super) enum BenchCommand {
    /// Write the bench county, issuer key, clerk token and subject IDs into a directory.
    Fixtures(FixturesArgs),
    /// Send requests at a fixed rate (open loop) and print latency percentiles as JSON.
    Load(LoadArgs),
    /// Print the markdown tables of a run's results directory.
    Report(ReportArgs),
    /// Measure fsync latency in a directory (the floor of a durable audit's latency).
    Fsync(FsyncArgs),
}

pub(super) async fn run(command: BenchCommand) -> ExitCode {
    let outcome = match command {
        BenchCommand::Fixtures(args) => fixtures(args).await,
        BenchCommand::Load(args) => load(args).await,
        BenchCommand::Report(args) => report(&args),
        BenchCommand::Fsync(args) => fsync(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------
// fixtures

#[derive(Debug, Args)]
pub(super) struct FixturesArgs {
    /// The directory to write (created; must be empty if it exists).
    #[arg(long)]
    out: PathBuf,
    /// The repository the county is derived from.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The clerk's township; the IDs are of residents registered there.
    #[arg(long, default_value = "139901101")]
    township: String,
    /// Most subject IDs written to ids.txt.
    #[arg(long, default_value_t = 4000)]
    count: usize,
    /// A connector's department system, e.g. `hukou=http://127.0.0.1:28101`; repeatable.
    #[arg(long = "base-url", value_name = "CONNECTOR=URL", value_parser = parse_pair)]
    base_urls: Vec<(String, String)>,
    /// Record cache lifetime in the cached config, in seconds.
    #[arg(long, default_value_t = 3600)]
    cache_ttl_s: u64,
    /// Lifetime of the clerk's token, in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    ttl_s: u64,
    /// Seed of the synthetic population (as `gateway simulate --seed`).
    #[arg(long, default_value_t = demo::SEED)]
    seed: u64,
    /// Least number of residents (as `gateway simulate --residents`).
    #[arg(long, default_value_t = demo::RESIDENTS)]
    residents: usize,
}

fn parse_pair(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected CONNECTOR=URL, got `{arg}`"))
}

/// The bench form files, relative to the repository.
const BENCH_FORMS_DIR: &str = "bench/forms";
/// The repository's gateway configuration the bench county is derived from.
const COUNTY_CONFIG: &str = "county/gateway.yaml";
/// The two configurations written, and whether each caches records.
const VARIANTS: [(&str, bool); 2] = [("nocache", false), ("cache", true)];

async fn fixtures(args: FixturesArgs) -> Result<(), String> {
    if args
        .out
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(format!("{} exists and is not empty", args.out.display()));
    }
    let repo_config = args.repo.join(COUNTY_CONFIG);
    let repo_county = parent(&repo_config);
    let out_county = args.out.join(parent(Path::new(COUNTY_CONFIG)));
    let main = read_yaml(&repo_config)?;
    let main = as_map(&main, &repo_config)?;
    let base_urls: BTreeMap<String, String> = args.base_urls.iter().cloned().collect();

    // Files the main config points to, copied to the same place relative to it.
    let copy = |key: &str, adjust: fn(&mut Value)| -> Result<(), String> {
        for rel in paths_of(main, key) {
            let from = repo_county.join(&rel);
            let to = inside(&out_county, &rel, &args.out)?;
            let mut value = read_yaml(&from)?;
            adjust(&mut value);
            write_yaml(&to, &value, &from)?;
        }
        Ok(())
    };
    copy("purposes", |_| {})?;
    copy("policies", remove_quotas)?;
    copy("forms", |_| {})?;
    for rel in paths_of(main, "schemas_dir") {
        let from = repo_county.join(&rel);
        copy_dir(&from, &inside(&out_county, &rel, &args.out)?)?;
    }

    // The bench forms, beside the county's.
    let bench_forms = bench_forms(&args.repo)?;
    let forms_rel = paths_of(main, "forms")
        .first()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("forms"));
    let mut bench_form_paths = Vec::new();
    for from in &bench_forms {
        let name = from.file_name().unwrap_or_default();
        let rel = forms_rel.join(name);
        let to = inside(&out_county, &rel, &args.out)?;
        if to.exists() {
            return Err(format!(
                "{}: a county form has the same file name",
                from.display()
            ));
        }
        write_yaml(&to, &read_yaml(from)?, from)?;
        bench_form_paths.push(rel);
    }

    // The issuer: the first one with PEM keys, its first kid.
    let auth = main
        .get("auth")
        .and_then(Value::as_mapping)
        .ok_or("the county config has no auth section")?;
    let audience = auth
        .get("audience")
        .and_then(Value::as_str)
        .unwrap_or(demo::AUDIENCE)
        .to_owned();
    let (issuer, kid) = first_pem_issuer(auth).ok_or("no issuer with a pem key in auth")?;
    let keys_dir = args.out.join("keys");
    let (_, private_pem, public_pem) =
        SigningKey::generate_es256(&kid).map_err(|e| e.to_string())?;
    let private = keys_dir.join(format!("{kid}.pem"));
    let public = keys_dir.join(format!("{kid}.pub.pem"));
    crate::secrets::write_private(&private, private_pem.as_bytes()).map_err(|e| e.to_string())?;
    write(&public, public_pem.as_bytes())?;
    let key = SigningKey::from_pem(
        private_pem.as_bytes(),
        jsonwebtoken::Algorithm::ES256,
        Some(kid.clone()),
    )
    .map_err(|e| e.to_string())?;
    let token = crate::auth::mint(
        &key,
        &MintClaims {
            iss: issuer.clone(),
            aud: audience.clone(),
            sub: "bench-clerk".to_owned(),
            roles: vec![Role::Clerk],
            township: Some(args.township.clone()),
            department: None,
            app: None,
            ttl_s: args.ttl_s,
            not_before_s: None,
        },
    )
    .map_err(|e| e.to_string())?;
    write(&args.out.join("token.jwt"), token.as_bytes())?;

    // Connectors and main config, once per variant.
    let public_rel = relative_to(&out_county, &public);
    for (variant, cached) in VARIANTS {
        let mut connector_paths = Vec::new();
        for rel in paths_of(main, "connectors") {
            let from = repo_county.join(&rel);
            let name = rel.file_name().unwrap_or_default();
            let new_rel = PathBuf::from(format!("connectors-{variant}")).join(name);
            let mut value = read_yaml(&from)?;
            adjust_connector(&mut value, cached, args.cache_ttl_s, &base_urls);
            write_yaml(&out_county.join(&new_rel), &value, &from)?;
            connector_paths.push(new_rel);
        }
        let mut cfg = main.clone();
        allow_upstreams(&mut cfg, &repo_county, main, &base_urls)?;
        set(&mut cfg, "connectors", paths_value(&connector_paths));
        set(&mut cfg, "data_dir", Value::from("data"));
        let mut limits = Mapping::new();
        limits.insert("per_user".into(), "off".into());
        limits.insert("per_township".into(), "off".into());
        set(&mut cfg, "rate_limits", Value::Mapping(limits));
        let mut forms = paths_of(main, "forms");
        forms.extend(bench_form_paths.iter().cloned());
        set(&mut cfg, "forms", paths_value(&forms));
        set(
            &mut cfg,
            "auth",
            auth_section(auth, &audience, &issuer, &kid, &public_rel),
        );
        let path = out_county.join(format!("gateway-{variant}.yaml"));
        write_yaml(&path, &Value::Mapping(cfg), &repo_config)?;
        if let Err(problems) = config::load(&DiskSource, &path, &LoadOptions::default()) {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(format!(
                "the bench config does not load:\n  {}",
                list.join("\n  ")
            ));
        }
    }

    // Residents the clerk may look up: alive and registered in the township.
    let population = demo::population(args.seed, args.residents).await;
    let ids: Vec<&str> = population
        .residents()
        .filter(|p| p.status == ResidentStatus::Normal)
        .filter(|p| {
            population
                .household(&p.household)
                .is_some_and(|h| h.township == args.township)
        })
        .map(|p| p.id.as_str())
        .take(args.count)
        .collect();
    if ids.is_empty() {
        return Err(format!("no resident is registered in {}", args.township));
    }
    let mut text = ids.join("\n");
    text.push('\n');
    write(&args.out.join("ids.txt"), text.as_bytes())?;
    println!(
        "bench county in {}: gateway-nocache.yaml, gateway-cache.yaml, {} bench form(s), token.jwt, {} ids",
        out_county.display(),
        bench_forms.len(),
        ids.len()
    );
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn as_map<'a>(value: &'a Value, path: &Path) -> Result<&'a Mapping, String> {
    value
        .as_mapping()
        .ok_or_else(|| format!("{}: not a mapping", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_yaml(path: &Path, value: &Value, from: &Path) -> Result<(), String> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = format!(
        "# Written by `gateway bench fixtures` from {}, adjusted for benchmarking.\n",
        from.display()
    );
    write(path, format!("{header}{text}").as_bytes())
}

/// The path or paths a key of the main config holds.
fn paths_of(main: &Mapping, key: &str) -> Vec<PathBuf> {
    match main.get(key) {
        Some(Value::String(s)) => vec![PathBuf::from(s)],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn paths_value(paths: &[PathBuf]) -> Value {
    Value::Sequence(
        paths
            .iter()
            .map(|p| Value::from(p.to_string_lossy().into_owned()))
            .collect(),
    )
}

fn set(map: &mut Mapping, key: &str, value: Value) {
    map.insert(Value::from(key), value);
}

/// `base.join(rel)`, refused if it would leave `root`.
fn inside(base: &Path, rel: &Path, root: &Path) -> Result<PathBuf, String> {
    let mut out = base.to_path_buf();
    for part in rel.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if out == root || !out.pop() {
                    return Err(format!(
                        "{}: points outside the county's tree",
                        rel.display()
                    ));
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: an absolute path", rel.display()));
            }
        }
    }
    if out.starts_with(root) {
        Ok(out)
    } else {
        Err(format!(
            "{}: points outside the county's tree",
            rel.display()
        ))
    }
}

/// `path` relative to `dir`, both under one root (`../keys/x.pem` from `county/`).
fn relative_to(dir: &Path, path: &Path) -> PathBuf {
    let dir: Vec<_> = dir.components().collect();
    let target: Vec<_> = path.components().collect();
    let common = dir.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..dir.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn bench_forms(repo: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = repo.join(BENCH_FORMS_DIR);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut forms: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    forms.sort();
    Ok(forms)
}

/// Grants without `quota` (the bench sends thousands of lookups a second).
fn remove_quotas(policy: &mut Value) {
    if let Some(grants) = policy.get_mut("grants").and_then(Value::as_sequence_mut) {
        for grant in grants.iter_mut().filter_map(Value::as_mapping_mut) {
            grant.remove("quota");
        }
    }
}

/// No department capacity limit; the record cache on or off; the bench's department
/// addresses.
/// Lists each simulated system's URL among its department's upstreams, so the bench
/// connectors (pointed there) are the department's own.
fn allow_upstreams(
    cfg: &mut Mapping,
    repo_county: &Path,
    main: &Mapping,
    base_urls: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut department_of = BTreeMap::new();
    for rel in paths_of(main, "connectors") {
        let from = repo_county.join(&rel);
        let value = read_yaml(&from)?;
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let department = value
            .get("department")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(id), Some(department)) = (id, department) {
            department_of.insert(id, department);
        }
    }
    let Some(Value::Sequence(departments)) = cfg.get_mut("departments") else {
        return Err("the county config lists no departments".to_owned());
    };
    for (connector, url) in base_urls {
        let Some(department) = department_of.get(connector) else {
            continue;
        };
        for entry in departments.iter_mut() {
            if entry.get("id").and_then(Value::as_str) != Some(department.as_str()) {
                continue;
            }
            if let Some(Value::Sequence(upstreams)) = entry.get_mut("upstreams") {
                upstreams.push(Value::from(url.as_str()));
            } else if let Value::Mapping(map) = entry {
                map.insert(
                    "upstreams".into(),
                    Value::Sequence(vec![Value::from(url.as_str())]),
                );
            }
        }
    }
    Ok(())
}

fn adjust_connector(
    connector: &mut Value,
    cached: bool,
    ttl_s: u64,
    base_urls: &BTreeMap<String, String>,
) {
    let Some(map) = connector.as_mapping_mut() else {
        return;
    };
    map.remove("capacity");
    let max_mib = map
        .get("cache")
        .and_then(|c| c.get("max_mib"))
        .cloned()
        .unwrap_or(Value::from(64));
    if cached {
        let mut cache = Mapping::new();
        cache.insert("ttl_s".into(), ttl_s.into());
        cache.insert("not_found_ttl_s".into(), ttl_s.into());
        cache.insert("max_mib".into(), max_mib);
        set(map, "cache", Value::Mapping(cache));
    } else {
        map.remove("cache");
    }
    let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(url) = id.and_then(|id| base_urls.get(&id)) {
        set(map, "base_url", Value::from(url.as_str()));
    }
}

fn first_pem_issuer(auth: &Mapping) -> Option<(String, String)> {
    auth.get("issuers")?.as_sequence()?.iter().find_map(|i| {
        let issuer = i.get("issuer")?.as_str()?.to_owned();
        let pem = i.get("keys")?.get("pem")?.as_sequence()?.first()?;
        let kid = pem.get("kid").and_then(Value::as_str).unwrap_or(&issuer);
        Some((issuer.clone(), kid.to_owned()))
    })
}

/// The county's auth section trusting only the bench issuer's key.
fn auth_section(auth: &Mapping, audience: &str, issuer: &str, kid: &str, public: &Path) -> Value {
    let mut out = auth.clone();
    let mut key = Mapping::new();
    key.insert("kid".into(), kid.into());
    key.insert("path".into(), public.to_string_lossy().into_owned().into());
    let mut keys = Mapping::new();
    keys.insert("pem".into(), Value::Sequence(vec![Value::Mapping(key)]));
    let mut one = Mapping::new();
    one.insert("issuer".into(), issuer.into());
    one.insert(
        "algorithms".into(),
        Value::Sequence(vec![Value::from("ES256")]),
    );
    one.insert("keys".into(), Value::Mapping(keys));
    set(&mut out, "audience", Value::from(audience));
    set(
        &mut out,
        "issuers",
        Value::Sequence(vec![Value::Mapping(one)]),
    );
    Value::Mapping(out)
}

// ---------------------------------------------------------------------------------
// load

#[derive(Debug, Args)]
pub(super) struct LoadArgs {
    /// Where to POST.
    #[arg(long)]
    url: String,
    /// Requests per second, sent on schedule whatever the answers do.
    #[arg(long)]
    rate: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds at the same rate before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// The request body; `@ID@` is replaced by the next ID of `--ids`.
    #[arg(long)]
    body: String,
    /// A file of subject IDs, one a line, used in turn.
    #[arg(long)]
    ids: PathBuf,
    /// A request header `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A request header whose value is read from a file, `Name: PREFIX@FILE`
    /// (e.g. `authorization: Bearer @token.jwt`); repeatable.
    #[arg(long = "header-file", value_name = "NAME: PREFIX@FILE")]
    header_files: Vec<String>,
    /// A request taking longer than this counts as an error.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// A label carried into the JSON.
    #[arg(long, default_value = "")]
    label: String,
}

/// What `bench load` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LoadResult {
    label: String,
    url: String,
    rate: u32,
    duration_s: u64,
    /// Requests sent in the measured window.
    sent: u64,
    /// Answered 2xx.
    ok: u64,
    /// Answered otherwise, failed or timed out.
    errors: u64,
    /// The first error seen, if any.
    first_error: Option<String>,
    /// Percentiles of the 2xx answers' latency, send to last body byte, µs.
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    /// How late requests left against their schedule (the client keeping up), µs.
    lag_p99_us: u64,
}

struct Sample {
    index: u64,
    latency: Duration,
    lag: Duration,
    error: Option<String>,
}

/// Runs the client on a single-threaded runtime of its own: one client thread competes
/// less with the servers for the machine's cores, which keeps its own scheduling noise
/// out of the latencies it measures.
async fn load(args: LoadArgs) -> Result<(), String> {
    let client = std::thread::Builder::new()
        .name("bench-load".to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the client's runtime: {e}"))?
                .block_on(load_on_this_thread(args))
        })
        .map_err(|e| format!("cannot start the client's thread: {e}"))?;
    tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the client's thread panicked".to_owned())?
}

async fn load_on_this_thread(args: LoadArgs) -> Result<(), String> {
    if args.rate == 0 {
        return Err("--rate must be at least 1".to_owned());
    }
    let ids: Vec<String> = std::fs::read_to_string(&args.ids)
        .map_err(|e| format!("{}: {e}", args.ids.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(format!("{}: no IDs", args.ids.display()));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    for line in &args.headers {
        let (name, value) = header(line)?;
        headers.insert(name, value);
    }
    for line in &args.header_files {
        let (name, spec) = line
            .split_once(':')
            .ok_or_else(|| format!("header `{line}`: expected `Name: PREFIX@FILE`"))?;
        let (prefix, file) = spec
            .trim_start()
            .rsplit_once('@')
            .ok_or_else(|| format!("header `{line}`: expected `Name: PREFIX@FILE`"))?;
        let value = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let (name, value) = header(&format!("{name}: {prefix}{}", value.trim()))?;
        headers.insert(name, value);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .http1_only()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| e.to_string())?;
    let url = Arc::new(args.url.clone());
    let period = Duration::from_secs(1) / args.rate;
    let warmup = args.warmup_s * u64::from(args.rate);
    let total = warmup + args.duration_s * u64::from(args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let offset = period.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
        let at = start + offset;
        tokio::time::sleep_until(at).await;
        let index = usize::try_from(i).unwrap_or(0) % ids.len();
        let body = args.body.replace("@ID@", &ids[index]);
        let client = client.clone();
        let url = url.clone();
        let at = at.into_std();
        tasks.spawn(async move {
            let sent = Instant::now();
            let lag = sent.saturating_duration_since(at);
            let outcome = async {
                let response = client
                    .post(url.as_str())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&bytes);
                    Err(format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ))
                }
            }
            .await;
            Sample {
                index: i,
                latency: sent.elapsed(),
                lag,
                error: outcome.err(),
            }
        });
    }
    let mut latencies = Vec::new();
    let mut lags = Vec::new();
    let mut result = LoadResult {
        label: args.label.clone(),
        url: args.url.clone(),
        rate: args.rate,
        duration_s: args.duration_s,
        ..LoadResult::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let sample = joined.map_err(|e| e.to_string())?;
        if sample.index < warmup {
            continue;
        }
        result.sent += 1;
        lags.push(micros(sample.lag));
        match sample.error {
            None => {
                result.ok += 1;
                latencies.push(micros(sample.latency));
            }
            Some(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    latencies.sort_unstable();
    lags.sort_unstable();
    result.p50_us = percentile(&latencies, 500);
    result.p90_us = percentile(&latencies, 900);
    result.p99_us = percentile(&latencies, 990);
    result.p999_us = percentile(&latencies, 999);
    result.max_us = latencies.last().copied().unwrap_or(0);
    result.lag_p99_us = percentile(&lags, 990);
    let json = serde_json::to_string(&result).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn header(
    line: &str,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header `{line}`: expected `Name: value`"))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("header `{name}`: {e}"))?;
    let value = reqwest::header::HeaderValue::from_str(value.trim())
        .map_err(|e| format!("header `{name}`: {e}"))?;
    Ok((name, value))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted values, `per_mille` of 1000 (`999` for p999);
/// 0 when there are none.
fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------
// fsync

#[derive(Debug, Args)]
pub(super) struct FsyncArgs {
    /// A directory on the file system to measure (a scratch file is made and removed).
    #[arg(long)]
    dir: PathBuf,
    /// Syncs measured.
    #[arg(long, default_value_t = 500)]
    count: usize,
}

/// What `bench fsync` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FsyncResult {
    count: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Overwrites 4 KiB blocks of a preallocated file in turn, each followed by fsync — as
/// SQLite's WAL with `synchronous=FULL` does on every commit.
async fn fsync(args: FsyncArgs) -> Result<(), String> {
    let path = args
        .dir
        .join(format!(".bench-fsync-{}", std::process::id()));
    let measured = tokio::task::spawn_blocking(move || {
        let outcome = measure_fsync(&path, args.count);
        let _ = std::fs::remove_file(&path);
        outcome
    })
    .await
    .map_err(|e| e.to_string())??;
    let json = serde_json::to_string(&measured).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn measure_fsync(path: &Path, count: usize) -> Result<FsyncResult, String> {
    use std::io::{Seek, SeekFrom, Write};
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 256;
    let error = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::create(path).map_err(error)?;
    let block = [0x5a_u8; BLOCK];
    for _ in 0..BLOCKS {
        file.write_all(&block).map_err(error)?;
    }
    file.sync_all().map_err(error)?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let offset = u64::try_from((i % BLOCKS) * BLOCK).unwrap_or(0);
        file.seek(SeekFrom::Start(offset)).map_err(error)?;
        file.write_all(&block).map_err(error)?;
        let started = Instant::now();
        file.sync_all().map_err(error)?;
        samples.push(micros(started.elapsed()));
    }
    samples.sort_unstable();
    Ok(FsyncResult {
        count,
        p50_us: percentile(&samples, 500),
        p99_us: percentile(&samples, 990),
        max_us: samples.last().copied().unwrap_or(0),
    })
}

// ---------------------------------------------------------------------------------
// report

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// The run's results directory (`wrk-*.json` and `load-*.json`).
    #[arg(long)]
    dir: PathBuf,
    /// The latency injected into each department for the form scenario, ms.
    #[arg(long, default_value_t = 20)]
    injected_ms: u64,
}

/// What the wrk script's `done()` prints.
#[derive(Debug, Clone, Deserialize)]
struct WrkResult {
    requests: u64,
    duration_us: u64,
    /// Connect, read, write and timeout errors, and non-2xx/3xx answers.
    errors: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

impl WrkResult {
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts are far below 2^52"
    )]
    fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

/// CPU time the process under test used during a wrk run (`cpu-*.json`).
#[derive(Debug, Clone, Deserialize)]
struct CpuResult {
    cpu_ticks: u64,
    ticks_per_s: u64,
}

/// The throughput scenarios: file stem, name, what is measured.
const THROUGHPUT: [(&str, &str, &str); 4] = [
    (
        "direct",
        "1. department directly",
        "hukou `person` API, native request",
    ),
    (
        "nginx",
        "2. nginx plain reverse proxy",
        "keep-alive upstream, same request",
    ),
    (
        "gateway",
        "3. gateway, full pipeline",
        "`/v1/query`, cache off, audit durable",
    ),
    (
        "gateway-cache",
        "4. gateway, cache hits",
        "`/v1/query`, every record cached",
    ),
];

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    // wrk prints its own lines too; the result is the last JSON line.
    text.lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
}

fn ms(us: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "microseconds of a request")]
    let ms = us as f64 / 1000.0;
    format!("{ms:.2} ms")
}

fn signed_ms(us: i128) -> String {
    #[expect(clippy::cast_precision_loss, reason = "microseconds of a request")]
    let ms = us as f64 / 1000.0;
    format!("{ms:+.2} ms")
}

fn verdict(pass: bool) -> &'static str {
    if pass { "**pass**" } else { "**FAIL**" }
}

fn report(args: &ReportArgs) -> Result<(), String> {
    let mut out = String::new();
    let wrk: BTreeMap<&str, WrkResult> = THROUGHPUT
        .iter()
        .filter_map(|(stem, _, _)| {
            read_json(&args.dir.join(format!("wrk-{stem}.json"))).map(|r| (*stem, r))
        })
        .collect();
    let nginx_rps = wrk.get("nginx").map(WrkResult::rps);
    let _ = writeln!(
        out,
        "### Throughput (wrk, closed loop, same settings for every target)\n"
    );
    let _ = writeln!(
        out,
        "| scenario | what | requests/s | p50 | p99 | p99.9 | errors | CPU/request | × nginx |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (stem, name, what) in THROUGHPUT {
        match wrk.get(stem) {
            Some(r) => {
                let ratio = nginx_rps
                    .filter(|n| *n > 0.0)
                    .map_or("–".to_owned(), |n| format!("{:.2}×", r.rps() / n));
                let cpu = read_json::<CpuResult>(&args.dir.join(format!("cpu-{stem}.json")))
                    .filter(|c| c.ticks_per_s > 0 && r.requests > 0)
                    .map_or("–".to_owned(), |c| {
                        let us = c.cpu_ticks * 1_000_000 / c.ticks_per_s / r.requests;
                        format!("{us} µs")
                    });
                let _ = writeln!(
                    out,
                    "| {name} | {what} | {:.0} | {} | {} | {} | {} | {cpu} | {ratio} |",
                    r.rps(),
                    ms(r.p50_us),
                    ms(r.p99_us),
                    ms(r.p999_us),
                    r.errors
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | {what} | not run | | | | | | |");
            }
        }
    }

    let _ = writeln!(
        out,
        "\nCPU/request: CPU time of the process under test over the run ÷ requests — the \
         department in 1, nginx's workers in 2, the gateway in 3 and 4 (without the \
         department it calls)."
    );

    let lat = |stem: &str| read_json::<LoadResult>(&args.dir.join(format!("load-{stem}.json")));
    let direct = lat("direct");
    let nginx = lat("nginx");
    let gateway = lat("gateway");
    let form = lat("form");
    let slow: Vec<LoadResult> = ["hukou", "shebao", "jisheng"]
        .iter()
        .filter_map(|d| lat(&format!("slow-{d}")))
        .collect();
    let _ = writeln!(
        out,
        "\n### Latency at a fixed rate below saturation (open loop)\n"
    );
    let _ = writeln!(
        out,
        "| measured | rate | p50 | p90 | p99 | p99.9 | errors | client lag p99 |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut rows: Vec<(String, &LoadResult)> = Vec::new();
    for (name, r) in [
        ("1. department directly", &direct),
        ("2. nginx plain reverse proxy", &nginx),
        ("3. gateway, full pipeline", &gateway),
    ] {
        if let Some(r) = r {
            rows.push((name.to_owned(), r));
        }
    }
    for r in &slow {
        rows.push((
            format!(
                "{} directly, {} ms injected",
                r.label.trim_start_matches("slow-"),
                args.injected_ms
            ),
            r,
        ));
    }
    if let Some(r) = &form {
        rows.push(("5. form over three departments".to_owned(), r));
    }
    for (name, r) in &rows {
        let _ = writeln!(
            out,
            "| {name} | {}/s | {} | {} | {} | {} | {} | {} |",
            r.rate,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.p999_us),
            r.errors,
            ms(r.lag_p99_us)
        );
    }

    let _ = writeln!(out, "\n### Targets (DESIGN.md §8)\n");
    let _ = writeln!(out, "| target | measured | result |");
    let _ = writeln!(out, "| --- | --- | --- |");
    let errors = |r: &LoadResult| -> String {
        if r.errors > 0 {
            format!(
                "; {} errors, first: {}",
                r.errors,
                r.first_error.as_deref().unwrap_or("")
            )
        } else {
            String::new()
        }
    };
    match (wrk.get("gateway"), nginx_rps) {
        (Some(g), Some(n)) if n > 0.0 => {
            let ratio = g.rps() / n;
            let clean = g.errors == 0 && wrk.get("nginx").is_some_and(|r| r.errors == 0);
            let _ = writeln!(
                out,
                "| full pipeline throughput ≥ 1.0× nginx plain proxy | {:.0}/s vs {n:.0}/s = {ratio:.2}×{} | {} |",
                g.rps(),
                if clean { "" } else { " (with errors)" },
                verdict(ratio >= 1.0 && clean)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| full pipeline throughput ≥ 1.0× nginx plain proxy | not measured | – |"
            );
        }
    }
    match (&gateway, &direct) {
        (Some(g), Some(d)) => {
            let p50 = i128::from(g.p50_us) - i128::from(d.p50_us);
            let p99 = i128::from(g.p99_us) - i128::from(d.p99_us);
            let nginx_added = nginx.as_ref().map_or(String::new(), |n| {
                format!(
                    " (nginx adds {} at p99)",
                    signed_ms(i128::from(n.p99_us) - i128::from(d.p99_us))
                )
            });
            let _ = writeln!(
                out,
                "| added p99 < 1 ms below saturation ({}/s) | gateway − direct: p50 {}, p99 {}{nginx_added}{} | {} |",
                g.rate,
                signed_ms(p50),
                signed_ms(p99),
                errors(g),
                verdict(p99 < 1000 && g.errors == 0)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| added p99 < 1 ms below saturation | not measured | – |"
            );
        }
    }
    match &form {
        Some(f) => {
            let nominal = i128::from(args.injected_ms) * 1000;
            let slowest = slow.iter().max_by_key(|r| r.p99_us);
            let slowest_p50 = slow.iter().map(|r| r.p50_us).max();
            let measured = match (slowest, slowest_p50) {
                (Some(s), Some(p50)) => format!(
                    "; − slowest department measured directly ({}): p50 {}, p99 {}",
                    s.label.trim_start_matches("slow-"),
                    signed_ms(i128::from(f.p50_us) - i128::from(p50)),
                    signed_ms(i128::from(f.p99_us) - i128::from(s.p99_us))
                ),
                _ => String::new(),
            };
            let baseline = slowest.map_or(nominal, |s| i128::from(s.p99_us));
            let p99 = i128::from(f.p99_us) - baseline;
            let _ = writeln!(
                out,
                "| form ≤ slowest department + 1 ms ({}/s, {} ms each) | form − {} ms: p50 {}, p99 {}{measured}{} | {} |",
                f.rate,
                args.injected_ms,
                args.injected_ms,
                signed_ms(i128::from(f.p50_us) - nominal),
                signed_ms(i128::from(f.p99_us) - nominal),
                errors(f),
                verdict(p99 <= 1000 && f.errors == 0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| form ≤ slowest department + 1 ms | not measured | – |"
            );
        }
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 500), 500);
        assert_eq!(percentile(&values, 990), 990);
        assert_eq!(percentile(&values, 999), 999);
        assert_eq!(percentile(&values, 1000), 1000);
        assert_eq!(percentile(&[], 990), 0);
        assert_eq!(percentile(&[7], 500), 7);
    }

    #[test]
    fn paths_stay_inside_the_tree() {
        let root = Path::new("/out");
        let county = Path::new("/out/county");
        assert_eq!(
            inside(county, Path::new("../policies/a.yaml"), root).ok(),
            Some(PathBuf::from("/out/policies/a.yaml"))
        );
        assert!(inside(county, Path::new("../../etc/x"), root).is_err());
        assert!(inside(county, Path::new("/etc/x"), root).is_err());
        assert_eq!(
            relative_to(county, Path::new("/out/keys/k.pub.pem")),
            PathBuf::from("../keys/k.pub.pem")
        );
    }
}
