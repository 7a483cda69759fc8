//! The command line: `demo`, `serve`, `check`, `simulate`, `token` (keygen, mint) and
//! `policy` (explain, test). Each command parses its arguments, calls into the
//! library and turns the outcome into an exit code: 0 success, 1 a problem the user
//! can fix (config, address in use, a failing policy case), 2 bad usage.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use connectors::sim::{self, Department, Faults};

use crate::auth::{Authenticator, MintClaims, Role, SigningKey};
use crate::config::{self, ActiveConfig, ConfigProblem, DiskSource, EmbeddedSource, LoadOptions};
use crate::demo::{self, DemoOptions};
use crate::policy::explain::CallerDef;
use crate::server::{self, App};
use crate::store::SqliteStore;

/// 县乡数据共享网关 — a policy-enforcing gateway between county departments and townships.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo county: three simulated department systems and the gateway in front.
    Demo(DemoArgs),
    /// Serve the gateway with a configuration file.
    Serve(ServeArgs),
    /// Check a configuration and report every problem, without serving.
    Check {
        /// The gateway configuration file (e.g. county/gateway.yaml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run only the simulated department systems (to `serve` against, or to benchmark).
    Simulate(SimulateArgs),
    /// Token issuing for demos and tests: make a key pair, sign a token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Policy tools: explain a decision, run golden cases.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an ES256 key pair: DIR/KID.pem (private, mode 0600) and DIR/KID.pub.pem.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = demo::ISSUER)]
        kid: String,
    },
    /// Sign a token with a private key (PEM).
    Mint(MintArgs),
}

#[derive(Debug, Args)]
struct MintArgs {
    /// The private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Its algorithm.
    #[arg(long, default_value = "ES256", value_parser = parse_alg)]
    alg: jsonwebtoken::Algorithm,
    #[arg(long, default_value = demo::ISSUER)]
    kid: String,
    #[arg(long, default_value = demo::ISSUER)]
    iss: String,
    #[arg(long, default_value = demo::AUDIENCE)]
    aud: String,
    /// The user id.
    #[arg(long)]
    sub: String,
    /// A role (repeatable): clerk, grid_worker, township_lead, dept_admin, privacy_officer, operator.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    #[arg(long)]
    township: Option<String>,
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    app: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
}

fn parse_alg(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    s.parse()
        .map_err(|_| format!("unknown algorithm `{s}`; use ES256, RS256 or EdDSA"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("unknown role `{s}`; use clerk, grid_worker, township_lead, dept_admin, privacy_officer or operator")
    })
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
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
struct ExplainArgs {
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
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data directory; by default `demo-data` under the working directory.
    #[arg(long, default_value = "demo-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
}

#[derive(Debug, Args)]
struct PopulationArgs {
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = demo::SEED)]
    seed: u64,
    /// Least number of synthetic residents.
    #[arg(long, default_value_t = demo::RESIDENTS)]
    residents: usize,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The gateway configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Overrides the configuration's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Overrides the configuration's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Address of the household registration system (户籍).
    #[arg(long, default_value = "127.0.0.1:18101")]
    hukou: SocketAddr,
    /// Address of the social insurance system (社保).
    #[arg(long, default_value = "127.0.0.1:18102")]
    shebao: SocketAddr,
    /// Address of the family planning / births system (计生).
    #[arg(long, default_value = "127.0.0.1:18103")]
    jisheng: SocketAddr,
    /// Faults a department starts with, e.g. `hukou={"latency_ms":20}`; repeatable.
    /// Fields: latency_ms, error_rate, malformed_json, schema_violation, extra_fields,
    /// oversized_bytes, hang. At run time: PUT /__sim/faults on the department.
    #[arg(long = "faults", value_name = "DEPT=JSON", value_parser = parse_faults)]
    faults: Vec<(Department, Faults)>,
    #[command(flatten)]
    population: PopulationArgs,
}

fn parse_faults(arg: &str) -> Result<(Department, Faults), String> {
    let (id, json) = arg
        .split_once('=')
        .ok_or("expected DEPT=JSON, e.g. hukou={\"latency_ms\":20}")?;
    let department = Department::from_id(id)
        .ok_or_else(|| format!("unknown department `{id}`; use hukou, shebao or jisheng"))?;
    let faults: Faults = serde_json::from_str(json).map_err(|e| format!("faults JSON: {e}"))?;
    faults.validate().map_err(|e| e.to_string())?;
    Ok((department, faults))
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing();
    connectors::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => run_demo(args).await,
            Command::Serve(args) => run_serve(args).await,
            Command::Check { config } => run_check(&config),
            Command::Simulate(args) => run_simulate(args).await,
            Command::Token(TokenCommand::Keygen { out, kid }) => run_keygen(&out, &kid),
            Command::Token(TokenCommand::Mint(args)) => run_mint(args),
            Command::Policy(PolicyCommand::Explain(args)) => run_explain(args).await,
            Command::Policy(PolicyCommand::Test { config, dir }) => {
                run_policy_test(config.as_deref(), &dir)
            }
        }
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn report(problems: &[ConfigProblem]) {
    eprintln!(
        "{} problem{} in the configuration:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {p}");
    }
}

fn run_check(path: &Path) -> ExitCode {
    match config::load(&DiskSource, path, &LoadOptions::default()) {
        Ok(cfg) => {
            let operations: usize = cfg.connectors.values().map(|c| c.operations.len()).sum();
            println!(
                "{}: ok — county {} {}, {} connectors, {} operations, {} purposes, version {}",
                path.display(),
                cfg.county.code,
                cfg.county.name,
                cfg.connectors.len(),
                operations,
                cfg.purposes.len(),
                cfg.version
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report(&problems);
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    let mut cfg = match config::load(&DiskSource, &args.config, &LoadOptions::default()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = args.data_dir {
        cfg.data_dir = dir;
    }
    let listen = args.listen.unwrap_or(cfg.listen);
    let store = match SqliteStore::open(&cfg.data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let auth = match Authenticator::new(&cfg.auth, &cfg.base_dir).await {
        Ok(auth) => auth,
        Err(problems) => {
            let problems: Vec<ConfigProblem> = problems
                .into_iter()
                .map(|(path, message)| ConfigProblem {
                    file: args.config.clone(),
                    path: format!("auth.{path}"),
                    message,
                })
                .collect();
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    let pseudonym =
        match crate::secrets::pseudonym_key(cfg.pseudonym_key_env.as_deref(), &cfg.data_dir) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("error: the pseudonym key: {e}");
                return ExitCode::FAILURE;
            }
        };
    let tls = match &cfg.tls {
        Some(tls) => match tls.load(&cfg.base_dir) {
            Ok(tls) => Some(tls),
            Err(problems) => {
                let problems: Vec<ConfigProblem> = problems
                    .into_iter()
                    .map(|(path, message)| ConfigProblem {
                        file: args.config.clone(),
                        path: format!("tls.{path}"),
                        message,
                    })
                    .collect();
                report(&problems);
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let addr = listener.local_addr().unwrap_or(listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "gateway listening on {scheme}://{addr} (config version {}, store {})",
        cfg.version,
        store.path().display()
    );
    let app = App::new(cfg, Arc::new(store), Arc::new(auth), Arc::new(pseudonym));
    let served = match tls {
        Some(tls) => {
            crate::tls::serve_tls(listener, server::router(app), tls, shutdown_signal()).await
        }
        None => server::serve(listener, app, shutdown_signal()).await,
    };
    finish(served)
}

async fn run_demo(args: DemoArgs) -> ExitCode {
    let options = DemoOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        seed: args.population.seed,
        residents: args.population.residents,
    };
    let demo = match demo::start(options).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", demo.banner());
    finish(demo.serve(shutdown_signal()).await)
}

async fn run_simulate(args: SimulateArgs) -> ExitCode {
    let population =
        Arc::new(demo::population(args.population.seed, args.population.residents).await);
    let mut servers = Vec::new();
    for (department, addr) in [
        (Department::Hukou, args.hukou),
        (Department::Shebao, args.shebao),
        (Department::Jisheng, args.jisheng),
    ] {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "error: cannot listen on {addr} for {}: {e}",
                    department.id()
                );
                return ExitCode::FAILURE;
            }
        };
        let faults = args
            .faults
            .iter()
            .rev()
            .find(|(d, _)| *d == department)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        match sim::spawn(department, population.clone(), listener, faults).await {
            Ok(server) => {
                println!(
                    "{} ({}) on {}",
                    department.id(),
                    department.name_zh(),
                    server.base_url()
                );
                servers.push(server);
            }
            Err(e) => {
                eprintln!("error: cannot start {}: {e}", department.id());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{} synthetic residents; Ctrl-C stops.", population.len());
    shutdown_signal().await;
    ExitCode::SUCCESS
}

fn run_keygen(out: &Path, kid: &str) -> ExitCode {
    let private = out.join(format!("{kid}.pem"));
    let public = out.join(format!("{kid}.pub.pem"));
    let made = SigningKey::generate_es256(kid)
        .map_err(|e| e.to_string())
        .and_then(|(_, private_pem, public_pem)| {
            crate::secrets::write_private(&private, private_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            std::fs::write(&public, public_pem).map_err(|e| format!("{}: {e}", public.display()))
        });
    match made {
        Ok(()) => {
            println!(
                "private key {}\npublic key  {}",
                private.display(),
                public.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_mint(args: MintArgs) -> ExitCode {
    let minted = std::fs::read(&args.key)
        .map_err(|e| format!("{}: {e}", args.key.display()))
        .and_then(|pem| {
            SigningKey::from_pem(&pem, args.alg, Some(args.kid.clone())).map_err(|e| e.to_string())
        })
        .and_then(|key| {
            let claims = MintClaims {
                iss: args.iss,
                aud: args.aud,
                sub: args.sub,
                roles: args.roles,
                township: args.township,
                department: args.department,
                app: args.app,
                ttl_s: args.ttl_s,
                not_before_s: None,
            };
            crate::auth::mint(&key, &claims).map_err(|e| e.to_string())
        });
    match minted {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration a policy tool works on: the file, or the embedded demo county.
fn policy_config(path: Option<&Path>) -> Result<ActiveConfig, ExitCode> {
    let loaded = match path {
        Some(path) => config::load(&DiskSource, path, &LoadOptions::default()),
        None => config::load(
            &EmbeddedSource::new(demo::COUNTY_FILES.iter().copied()),
            Path::new(demo::COUNTY_CONFIG),
            &LoadOptions::default(),
        ),
    };
    loaded.map_err(|problems| {
        report(&problems);
        ExitCode::FAILURE
    })
}

async fn run_explain(args: ExplainArgs) -> ExitCode {
    let cfg = match policy_config(args.config.as_deref()) {
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
                });
            match parsed {
                Ok(def) => def.caller(),
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
    match crate::policy::explain::explain(
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

fn run_policy_test(config: Option<&Path>, dir: &Path) -> ExitCode {
    let cfg = match policy_config(config) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let results = match crate::policy::golden::run_dir(&cfg, dir) {
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

fn finish(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
