//! The demo county in one process: a synthetic population, the three simulated
//! department systems on loopback ports, the fourth department's front database
//! (前置库, civil affairs 民政) written from the same population into the data
//! directory, and the gateway in front of them with the county's configuration
//! (compiled into the binary from `county/`, `schemas/` and `policies/`, so the demo
//! runs from any directory). The demo is its own token
//! issuer: it keeps an ES256 key pair in its data directory and mints one token per
//! persona (a clerk in each of two townships, a grid worker of two villages, a
//! township lead, a department admin, a privacy officer).

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use sim::{Person, Population, SampleKind, SimServer};

use crate::auth::{AuthConfig, Authenticator, MintClaims, Role, SigningKey, mint};
use crate::config::{ActiveConfig, EmbeddedSource, LoadOptions};
use crate::county::{COUNTY_CONFIG, COUNTY_FILES};
use crate::live::{ChangeError, Live};
use crate::secrets;
use crate::startup::{Application, Settings};
use crate::store::Storage;

/// Seed of the demo's synthetic population.
pub const SEED: u64 = 2026;
/// Least number of residents in the demo county.
pub const RESIDENTS: usize = 12_000;

/// The department sharing through a front database, and that database's name (as in
/// `county/gateway.yaml`).
pub const FRONT_DEPARTMENT: &str = "county-mca";
pub const FRONT_DATABASE: &str = "minzheng_front";

/// Where the demo keeps the civil-affairs front database: `DATA_DIR/front/minzheng.db`.
pub fn front_database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("front").join("minzheng.db")
}

/// Writes the civil-affairs front database for `population` into `data_dir` (replacing
/// an older one whole; mode 0400), off the async workers; returns where it is.
pub async fn write_front_database(
    population: Arc<Population>,
    data_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let path = front_database_path(data_dir);
    let target = path.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = target.parent() {
            crate::datadir::create_dir(dir).with_context(|| format!("{}", dir.display()))?;
        }
        sim::minzheng::write_sqlite(&population, &target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        // Personal data, which the gateway only reads: the owner may read it, no one
        // may write it (the department writes a new file and renames it over this one).
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400))
            .with_context(|| format!("{}", target.display()))
    })
    .await
    .context("the front database writer stopped")??;
    Ok(path)
}

/// The demo's token issuer, audience and key id (as in `county/gateway.yaml`).
pub const ISSUER: &str = "county-demo-idp";
pub const AUDIENCE: &str = "county-gateway";

/// A demo user and what their token says.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    pub name: &'static str,
    pub about: &'static str,
    pub role: Role,
    pub township: Option<&'static str>,
    /// 12-digit village codes under the township (a grid worker's villages).
    pub villages: &'static [&'static str],
    pub department: Option<&'static str>,
}

impl Persona {
    /// The persona's claims in the form `gateway policy explain --claims` reads.
    pub fn claims_yaml(&self) -> String {
        let mut out = format!("sub: {}\nroles: [{}]\n", self.name, self.role.as_str());
        if let Some(t) = self.township {
            out.push_str(&format!("township: \"{t}\"\n"));
        }
        if !self.villages.is_empty() {
            let quoted: Vec<String> = self.villages.iter().map(|v| format!("\"{v}\"")).collect();
            out.push_str(&format!("villages: [{}]\n", quoted.join(", ")));
        }
        if let Some(d) = self.department {
            out.push_str(&format!("department: {d}\n"));
        }
        out
    }
}

/// The two villages of 东岭镇 the demo's grid worker (`grid-dongling`) serves: the
/// first two village committees (2xx) of the township, which every generated county
/// has (a town has at least three villages besides its communities).
pub const GRID_VILLAGES: &[&str] = &["139901101201", "139901101202"];

/// The demo's personas.
pub const PERSONAS: &[Persona] = &[
    Persona {
        name: "clerk-dongling",
        about: "东岭镇便民服务中心窗口人员 (clerk, 139901101)",
        role: Role::Clerk,
        township: Some("139901101"),
        villages: &[],
        department: None,
    },
    Persona {
        name: "clerk-xihe",
        about: "西河乡便民服务中心窗口人员 (clerk, 139901201)",
        role: Role::Clerk,
        township: Some("139901201"),
        villages: &[],
        department: None,
    },
    Persona {
        name: "grid-dongling",
        about: "东岭镇网格员，负责两个村 (grid worker, 139901101; villages 139901101201, 139901101202)",
        role: Role::GridWorker,
        township: Some("139901101"),
        villages: GRID_VILLAGES,
        department: None,
    },
    Persona {
        name: "lead-dongling",
        about: "东岭镇分管领导 (township lead, 139901101)",
        role: Role::TownshipLead,
        township: Some("139901101"),
        villages: &[],
        department: None,
    },
    Persona {
        name: "admin-psb",
        about: "县公安局数据管理员 (department admin)",
        role: Role::DeptAdmin,
        township: None,
        villages: &[],
        department: Some("county-psb"),
    },
    Persona {
        name: "admin-hrss",
        about: "县人社局数据管理员 (department admin)",
        role: Role::DeptAdmin,
        township: None,
        villages: &[],
        department: Some("county-hrss"),
    },
    Persona {
        name: "operator",
        about: "县大数据局运维人员 (operator)",
        role: Role::Operator,
        township: None,
        villages: &[],
        department: None,
    },
    Persona {
        name: "privacy-officer",
        about: "县数据安全官 (privacy officer)",
        role: Role::PrivacyOfficer,
        township: None,
        villages: &[],
        department: None,
    },
    Persona {
        name: "governance",
        about: "县大数据局数据治理科 (data governance: reviews classification changes)",
        role: Role::Governance,
        township: None,
        villages: &[],
        department: None,
    },
];

/// How long demo tokens live.
pub const TOKEN_TTL_S: u64 = 12 * 3600;

/// The demo issuer's key pair in the data directory, created on first start.
pub fn issuer_key(data_dir: &Path) -> anyhow::Result<(SigningKey, PathBuf)> {
    let dir = data_dir.join("keys");
    let private = dir.join(format!("{ISSUER}.pem"));
    let public = dir.join(format!("{ISSUER}.pub.pem"));
    if !private.exists() {
        // The public half first, durably: once the private key is there, so is it
        // (a machine that fails between the two makes a new pair at the next start).
        let (_, private_pem, public_pem) = SigningKey::generate_es256(ISSUER)?;
        crate::datadir::create_dir(&dir).with_context(|| format!("{}", dir.display()))?;
        crate::datadir::write_private_durably(&public, public_pem.as_bytes())
            .with_context(|| format!("{}", public.display()))?;
        secrets::write_private(&private, private_pem.as_bytes())?;
    }
    let pem = std::fs::read(&private).with_context(|| format!("{}", private.display()))?;
    let key = SigningKey::from_pem(
        &pem,
        jsonwebtoken::Algorithm::ES256,
        Some(ISSUER.to_owned()),
    )?;
    Ok((key, public))
}

/// The `auth` section trusting the demo issuer's public key at `public`.
pub fn auth_config(public: &Path) -> anyhow::Result<AuthConfig> {
    let value = serde_json::json!({
        "audience": AUDIENCE,
        "issuers": [{
            "issuer": ISSUER,
            "algorithms": ["ES256"],
            "keys": {"pem": [{"kid": ISSUER, "path": public}]},
        }],
    });
    serde_json::from_value(value).context("the demo auth section")
}

/// A token for a persona.
pub fn persona_token(key: &SigningKey, persona: &Persona) -> anyhow::Result<String> {
    let claims = MintClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: persona.name.to_owned(),
        roles: vec![persona.role],
        township: persona.township.map(str::to_owned),
        villages: persona.villages.iter().map(|v| (*v).to_owned()).collect(),
        department: persona.department.map(str::to_owned),
        app: None,
        ttl_s: TOKEN_TTL_S,
        not_before_s: None,
    };
    Ok(mint(key, &claims)?)
}

/// The console's one-click sign-in for the demo's personas, signing with `key`.
pub fn console_sign_in(key: SigningKey) -> crate::console::DemoSignIn {
    crate::console::DemoSignIn {
        key,
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        personas: PERSONAS
            .iter()
            .map(|p| crate::console::DemoPersona {
                name: p.name.to_owned(),
                about: p.about.to_owned(),
                role: p.role,
                township: p.township.map(str::to_owned),
                villages: p.villages.iter().map(|v| (*v).to_owned()).collect(),
                department: p.department.map(str::to_owned),
            })
            .collect(),
    }
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub seed: u64,
    pub residents: usize,
}

/// A started demo: departments running, gateway bound but not yet serving.
#[derive(Debug)]
pub struct Demo {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub departments: Vec<SimServer>,
    /// The civil-affairs department's front database (a SQLite file in the data dir).
    pub front_database: PathBuf,
    pub population: Arc<Population>,
    /// Persona name → the file holding its token.
    pub tokens: Vec<(Persona, PathBuf)>,
    /// Held while the demo runs: one gateway per data directory.
    _lock: crate::datadir::DataDirLock,
    gateway: Application,
}

/// Generates the synthetic population off the async workers.
pub async fn population(seed: u64, residents: usize) -> Population {
    match tokio::task::spawn_blocking(move || Population::generate(seed, residents)).await {
        Ok(p) => p,
        // Generation does not fail; if its task panicked, generate here.
        Err(_) => Population::generate(seed, residents),
    }
}

/// The embedded demo county with its connectors pointed at `departments` and the
/// civil-affairs front database at `front_database`, trusting `auth`, with its
/// registry in `data_dir`; and the configuration it loads to.
pub async fn county_config(
    departments: &[SimServer],
    front_database: &Path,
    auth: AuthConfig,
    data_dir: &Path,
    storage: &Storage,
) -> anyhow::Result<(Arc<Live>, ActiveConfig)> {
    let options = LoadOptions {
        base_urls: departments
            .iter()
            .map(|d| (d.department.id().to_owned(), d.base_url()))
            .collect(),
        front_paths: [(
            (FRONT_DEPARTMENT.to_owned(), FRONT_DATABASE.to_owned()),
            front_database.to_owned(),
        )]
        .into(),
        auth: Some(auth),
        data_dir: Some(data_dir.to_owned()),
        ..LoadOptions::default()
    };
    let registry = storage.registry().context("cannot open the registry")?;
    let live = Arc::new(Live::new(
        Arc::new(EmbeddedSource::new(COUNTY_FILES.iter().copied())),
        COUNTY_CONFIG,
        options,
        registry,
    ));
    match live.load().await {
        Ok(config) => Ok((live, config)),
        Err(ChangeError::Invalid(problems)) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(anyhow::anyhow!(
                "the demo county is invalid:\n  {}",
                list.join("\n  ")
            ))
        }
        Err(e) => Err(anyhow::anyhow!("the demo county cannot load: {e}")),
    }
}

/// Starts the departments, loads the county, opens the store and binds the gateway.
pub async fn start(options: DemoOptions) -> anyhow::Result<Demo> {
    let population = Arc::new(population(options.seed, options.residents).await);
    let departments = sim::spawn_all(population.clone(), [127, 0, 0, 1].into())
        .await
        .context("cannot start the simulated departments")?;
    let data_dir = std::path::absolute(&options.data_dir).unwrap_or(options.data_dir);
    let lock = crate::datadir::DataDirLock::take(
        &data_dir,
        &format!("gateway demo pid {}", std::process::id()),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(refusal) = crate::datadir::refusal(&data_dir) {
        anyhow::bail!(refusal);
    }
    let (key, public) = issuer_key(&data_dir)?;
    // The fourth department has no system to start: it shares through a front
    // database, written afresh from the same population.
    let front_database = write_front_database(population.clone(), &data_dir).await?;
    let storage = Storage::sqlite(&data_dir);
    let (live, cfg) = county_config(
        &departments,
        &front_database,
        auth_config(&public)?,
        &data_dir,
        &storage,
    )
    .await?;
    let auth = Authenticator::new(&cfg.auth, &data_dir)
        .await
        .map_err(|problems| anyhow::anyhow!("the demo issuer: {problems:?}"))?;
    let pseudonym = secrets::pseudonym_key(None, &data_dir)?;
    let mut tokens = Vec::new();
    for persona in PERSONAS {
        let path = data_dir
            .join("tokens")
            .join(format!("{}.jwt", persona.name));
        let token = persona_token(&key, persona)?;
        if let Some(dir) = path.parent() {
            crate::datadir::create_dir(dir).with_context(|| format!("{}", dir.display()))?;
        }
        // A token is a credential: readable by the owner only.
        crate::datadir::write_private_durably(&path, token.as_bytes())
            .with_context(|| format!("{}", path.display()))?;
        let claims = path.with_extension("claims.yaml");
        crate::datadir::write_private_durably(&claims, persona.claims_yaml().as_bytes())
            .with_context(|| format!("{}", claims.display()))?;
        tokens.push((*persona, path));
    }
    // The demo trusts the key in its own data directory (nothing to pin: it makes
    // that key itself); a log that fails the start-up check is still refused.
    let gateway = Application::build(Settings {
        live,
        config: cfg,
        auth,
        pseudonym,
        listen: options.listen,
        metrics_listen: None,
        tls: None,
        witness_clients: Vec::new(),
        audit: None,
        clock: None,
        storage,
        console: crate::console::Options {
            demo: Some(console_sign_in(key)),
            ..crate::console::Options::default()
        },
    })
    .await?;
    Ok(Demo {
        _lock: lock,
        addr: gateway.addr(),
        data_dir,
        departments,
        front_database,
        population,
        tokens,
        gateway,
    })
}

/// The township of the demo's hint: 东岭镇.
pub const HINT_TOWNSHIP: &str = "139901101";

/// The resident the demo's hint looks up: a married parent registered in 东岭镇.
pub fn demo_subject(population: &Population) -> Option<&Person> {
    population.sample_in(SampleKind::MarriedParent, HINT_TOWNSHIP)
}

/// The residents of the demo's grid-worker hint: one registered in the grid worker's
/// first village, one in a village of the same township the grid worker does not serve.
pub fn grid_subjects(population: &Population) -> Option<(&Person, &Person)> {
    let resident_of = |in_village: &dyn Fn(&str) -> bool| {
        population
            .households
            .iter()
            .filter(|h| h.township == HINT_TOWNSHIP && in_village(&h.village))
            .flat_map(|h| population.members(h))
            .find(|p| p.status == sim::ResidentStatus::Normal)
    };
    let own = resident_of(&|v| GRID_VILLAGES.first() == Some(&v))?;
    let other = resident_of(&|v| !GRID_VILLAGES.contains(&v))?;
    Some((own, other))
}

/// The applicant of the demo's 低保 hint: the head of a 东岭镇 household that already
/// receives it (see [`sim::minzheng::dibao_household`]).
pub fn dibao_subject(population: &Population) -> Option<&Person> {
    sim::minzheng::dibao_household(population)
        .and_then(|h| h.members.first())
        .and_then(|id| population.person(id.as_str()))
}

impl Demo {
    /// What the demo prints when it is ready: where things are and a command to try.
    pub fn banner(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "县乡数据共享网关 demo — the demo county 示范县 (139901) is running."
        );
        let _ = writeln!(out, "  gateway      http://{}", self.addr);
        let _ = writeln!(
            out,
            "  console      http://{}/console/  (open it in a browser; sign in as a demo persona)",
            self.addr
        );
        let _ = writeln!(
            out,
            "  data dir     {} (choose with --data-dir)",
            self.data_dir.display()
        );
        for d in &self.departments {
            let _ = writeln!(
                out,
                "  department   {:<8} {} {}",
                d.department.id(),
                d.base_url(),
                d.department.name_zh()
            );
        }
        let _ = writeln!(
            out,
            "  department   {:<8} {} 县民政局 民政 (front database 前置库, no API)",
            "minzheng",
            self.front_database.display()
        );
        let _ = writeln!(
            out,
            "  population   {} synthetic residents (not real people)",
            self.population.len()
        );
        let _ = writeln!(
            out,
            "\nPersonas — a token each, valid 12 h (also in {}):",
            self.data_dir.join("tokens").display()
        );
        for (persona, path) in &self.tokens {
            let token = std::fs::read_to_string(path).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<16} {}\n    {}",
                persona.name,
                persona.about,
                token.trim()
            );
        }
        if let Some(person) = demo_subject(&self.population) {
            let token = |name: &str| {
                self.tokens
                    .iter()
                    .find(|(p, _)| p.name == name)
                    .map(|(_, path)| path.display().to_string())
                    .unwrap_or_default()
            };
            let body = format!(
                r#"{{"connector":"hukou","operation":"person_by_id","subject":{{"id_number":"{}"}},"purpose":"birth_registration","case_id":"DEMO-0001"}}"#,
                person.id.as_str()
            );
            let curl = |who: &str| {
                format!(
                    "  curl -s http://{}/v1/query -H 'content-type: application/json' -H \"authorization: Bearer $(cat {})\" -d '{}'",
                    self.addr,
                    token(who),
                    body
                )
            };
            let _ = writeln!(
                out,
                "\nTry a lookup: a 东岭镇 clerk registering a birth sees the resident's household registration, masked by policy:"
            );
            let _ = writeln!(out, "{}", curl("clerk-dongling"));
            let _ = writeln!(
                out,
                "\nThe same lookup by a 西河乡 clerk is refused (403): the grant holds only for the clerk's own township:"
            );
            let _ = writeln!(out, "{}", curl("clerk-xihe"));
            let _ = writeln!(
                out,
                "\nFill a form from every department at once (自助填表): the forms a clerk may fill, then a birth registration with each field's source and age:"
            );
            let _ = writeln!(
                out,
                "  curl -s http://{}/v1/forms -H \"authorization: Bearer $(cat {})\"",
                self.addr,
                token("clerk-dongling")
            );
            let _ = writeln!(
                out,
                "  curl -s http://{}/v1/forms/birth-registration/fill -H 'content-type: application/json' -H \"authorization: Bearer $(cat {})\" -d '{{\"subject\":{{\"id_number\":\"{}\"}},\"case_id\":\"DEMO-0002\"}}'",
                self.addr,
                token("clerk-dongling"),
                person.id.as_str()
            );
            if let Some(applicant) = dibao_subject(&self.population) {
                let _ = writeln!(
                    out,
                    "\nA 低保 application for a household that already receives it: each member's status and monthly allowance come from the civil-affairs front database:"
                );
                let _ = writeln!(
                    out,
                    "  curl -s http://{}/v1/forms/subsistence-allowance/fill -H 'content-type: application/json' -H \"authorization: Bearer $(cat {})\" -d '{{\"subject\":{{\"id_number\":\"{}\"}},\"case_id\":\"DEMO-0003\"}}'",
                    self.addr,
                    token("clerk-dongling"),
                    applicant.id.as_str()
                );
            }
            if let Some((own, other)) = grid_subjects(&self.population) {
                let _ = writeln!(
                    out,
                    "\nA grid worker of two 东岭镇 villages sees an elderly resident of their own village (masked), and is refused (403) a resident of another village of the same township — the same answer as for a person nobody knows:"
                );
                for person in [own, other] {
                    let _ = writeln!(
                        out,
                        "  curl -s http://{}/v1/query -H 'content-type: application/json' -H \"authorization: Bearer $(cat {})\" -d '{{\"connector\":\"shebao\",\"operation\":\"insured_by_id\",\"subject\":{{\"id_number\":\"{}\"}},\"purpose\":\"elderly_allowance\",\"case_id\":\"DEMO-0004\"}}'",
                        self.addr,
                        token("grid-dongling"),
                        person.id.as_str()
                    );
                }
            }
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "gateway".to_owned());
            let claims = token("clerk-dongling").replace(".jwt", ".claims.yaml");
            let _ = writeln!(out, "\nWhy, field by field:");
            let _ = writeln!(
                out,
                "  {exe} policy explain --claims {claims} --connector hukou --operation person_by_id --purpose birth_registration"
            );
            let officer = |path: &str, body: &str| {
                format!(
                    "  curl -s http://{}{path} -H 'content-type: application/json' -H \"authorization: Bearer $(cat {})\" -d '{body}'",
                    self.addr,
                    token("privacy-officer")
                )
            };
            let _ = writeln!(
                out,
                "\nA privacy officer sees who looked at whose data, and why — the log, the resident's access report, a CSV export:"
            );
            let _ = writeln!(out, "{}", officer("/v1/audit/search", r#"{"limit":10}"#));
            let report = format!(r#"{{"id_number":"{}"}}"#, person.id.as_str());
            let _ = writeln!(out, "{}", officer("/v1/audit/report", &report));
            let _ = writeln!(
                out,
                "{}",
                officer("/v1/audit/export", r#"{"format":"csv"}"#)
            );
            let _ = writeln!(
                out,
                "  {exe} audit verify --data-dir {}",
                self.data_dir.display()
            );
        }
        let _ = write!(out, "\nCtrl-C stops the demo.");
        out
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.gateway.run_until(shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_worker_serves_two_villages_of_the_demo_township_with_residents() {
        let population = Population::generate(SEED, RESIDENTS);
        let dongling = population
            .townships
            .iter()
            .find(|t| t.code == HINT_TOWNSHIP)
            .expect("东岭镇");
        for village in GRID_VILLAGES {
            assert!(
                dongling.villages.iter().any(|v| v.code == *village),
                "{village} is a village of 东岭镇"
            );
        }
        let (own, other) = grid_subjects(&population).expect("a resident on each side");
        let village = |p: &Person| population.household_of(p.id.as_str()).map(|h| &h.village);
        assert_eq!(
            village(own).map(String::as_str),
            GRID_VILLAGES.first().copied()
        );
        let other = village(other).expect("a household");
        assert!(other.starts_with(HINT_TOWNSHIP) && !GRID_VILLAGES.contains(&other.as_str()));
    }

    #[test]
    fn every_persona_passes_the_claim_rules_for_division_codes() {
        for persona in PERSONAS {
            let villages = crate::auth::check_villages(persona.township, persona.villages)
                .unwrap_or_else(|p| panic!("{}: {p}", persona.name));
            let needs = persona.role.needs_villages();
            assert_eq!(!villages.is_empty(), needs, "{}", persona.name);
            assert!(
                persona.claims_yaml().contains("villages:") == needs,
                "{}",
                persona.name
            );
        }
    }
}
