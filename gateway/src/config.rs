//! The gateway's configuration: the main file (`gateway.yaml`), the connector
//! definitions, record schemas and the purpose catalog it points to, loaded into one
//! [`ActiveConfig`] that requests read through an atomic pointer.
//!
//! Loading collects *every* problem of every file — with the file and the path inside
//! it — instead of stopping at the first, so `gateway check` can report them all.
//! Files are read through [`Source`], so the demo can load its embedded county and
//! tests can substitute their own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use connectors::ConnectorDef as Def;
use connectors::definition::{ConnectorDef, OperationCall, SubjectKey, Transport};
use connectors::files::{FileRoots, MAX_FILE_BYTES};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::active::FieldNode;
pub use crate::active::{ActiveConnector, ActiveOperation};
use crate::audit::settings::AuditSettings;
use crate::auth::AuthConfig;
use crate::cache::RecordCache;
use crate::calendar::Calendar;
use crate::departments::{DepartmentConfig, Departments, Upstream};
use crate::forms::FormSet;
use crate::jurisdiction::{Authority, JurisdictionConfig};
use crate::limits::RateLimitsConfig;
use crate::oidc::ConsoleConfig;
use crate::policy::PolicySet;
use crate::policy::file::{Catalog, Operations, PolicyFile};
use crate::purpose::{PurposeCatalog, PurposeFile};
use crate::registry::Snapshot;
use crate::schema::{RecordSchema, undeclared_fields};
use crate::store::StoreSettings;
use crate::tls::ServerTlsConfig;

/// The main configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub county: County,
    /// Where `serve` listens unless `--listen` says otherwise.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A second listener serving only `/metrics`, without a token, for the
    /// operator's scraper (keep it on a loopback or private address). Without it,
    /// `/metrics` answers operators only.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The data directory (store), relative to this file unless absolute.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the registry and the audit log live: the embedded SQLite files in
    /// `data_dir` (the default), or PostgreSQL for many replicas ([`crate::store`]).
    #[serde(default)]
    pub store: StoreSettings,
    /// Connector definition files, relative to this file.
    pub connectors: Vec<PathBuf>,
    /// Directory of record schemas, relative to this file.
    pub schemas_dir: PathBuf,
    /// The purpose catalog file, relative to this file.
    pub purposes: PathBuf,
    /// Policy files (grants and deny rules), relative to this file.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// Who may call: token issuers, their keys and the gateway's audience.
    pub auth: AuthConfig,
    /// Serve HTTPS (and optionally require client certificates); plain HTTP if absent.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Environment variable holding the pseudonym key (≥ 32 bytes; the same on every
    /// replica). Without it, a key is created in the data directory on first start.
    #[serde(default)]
    pub pseudonym_key_env: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// The callers' own rate limits (per user, per township).
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// Form templates, relative to this file.
    #[serde(default)]
    pub forms: Vec<PathBuf>,
    /// The working-day calendar file (public holidays and 调休 make-up working days),
    /// relative to this file ([`crate::calendar`]). Without it, deadlines in working
    /// days count Monday to Friday.
    #[serde(default)]
    pub calendar: Option<PathBuf>,
    /// How townships' access requests are handled.
    #[serde(default)]
    pub access_requests: AccessRequestSettings,
    /// How townships' corrections of departments' values are handled.
    #[serde(default)]
    pub corrections: CorrectionSettings,
    /// The county's departments: their names and the upstreams their connectors may
    /// call ([`crate::departments`]).
    #[serde(default)]
    pub departments: Vec<DepartmentConfig>,
    /// A folder, besides this file's own, that connectors' TLS files may be read from
    /// (relative to this file). Connector definitions name no file outside these two.
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
    /// The audit log's checkpoints: cadence, pinned key, witnesses.
    #[serde(default)]
    pub audit: AuditSettings,
    /// The county's authority for where people live ([`crate::jurisdiction`]), which
    /// grants with `jurisdiction: township` are checked against.
    #[serde(default)]
    pub jurisdiction: Option<JurisdictionConfig>,
    /// The web console: its sign-in ([`crate::oidc`]) and other settings.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Where traces go ([`crate::telemetry`]); none are sent without it or the
    /// standard `OTEL_EXPORTER_OTLP_*` variables. Read at start-up only.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetrySettings,
}

/// How townships' access requests are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessRequestSettings {
    /// Working days (of the configured [`Calendar`]) a department has to answer a
    /// request before it is listed as overdue.
    pub deadline_working_days: u32,
}

impl Default for AccessRequestSettings {
    fn default() -> Self {
        AccessRequestSettings {
            deadline_working_days: 10,
        }
    }
}

/// How townships' corrections of departments' values (数据纠错) are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrectionSettings {
    /// Working days a department has to answer a correction before it is overdue.
    pub deadline_working_days: u32,
    /// Days after its answer that what the citizen stated (value, note) is kept
    /// before it is erased.
    pub retention_days: u32,
}

impl Default for CorrectionSettings {
    fn default() -> Self {
        CorrectionSettings {
            deadline_working_days: 5,
            retention_days: 30,
        }
    }
}

/// The county this gateway serves (GB/T 2260 code).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct County {
    pub code: String,
    pub name: String,
}

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 64 * 1024,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// Path inside the file, e.g. `operations.person_by_id.record.name.sharing`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.path,
                self.message
            )
        }
    }
}

/// Where configuration files are read from.
pub trait Source: Send + Sync {
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Files on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskSource;

impl Source for DiskSource {
    /// Regular files only, at most [`MAX_FILE_BYTES`] (a FIFO or a device named in a
    /// configuration cannot hang or exhaust the loader).
    fn read(&self, path: &Path) -> std::io::Result<String> {
        FileRoots::anywhere()
            .read_to_string(path, MAX_FILE_BYTES)
            .map_err(std::io::Error::other)
    }
}

/// Files held in memory (the demo's county is compiled into the binary), by
/// normalised relative path.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedSource {
    files: BTreeMap<PathBuf, String>,
}

impl EmbeddedSource {
    pub fn new<P: AsRef<Path>, T: Into<String>>(
        files: impl IntoIterator<Item = (P, T)>,
    ) -> EmbeddedSource {
        EmbeddedSource {
            files: files
                .into_iter()
                .map(|(p, text)| (normalize(p.as_ref()), text.into()))
                .collect(),
        }
    }
}

impl Source for EmbeddedSource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// Resolves `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Adjustments applied while loading (the demo points connectors at its simulators
/// and trusts the token issuer it created), and the registry's objects loaded beside
/// the files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// connector id → base URL replacing the file's.
    pub base_urls: BTreeMap<String, String>,
    /// (department id, front database name) → the SQLite file replacing the one the
    /// file declares (the demo writes its front database into its data directory).
    pub front_paths: BTreeMap<(String, String), PathBuf>,
    /// Replaces the file's `auth` section.
    pub auth: Option<AuthConfig>,
    /// Replaces the file's `data_dir` (`serve --data-dir`, the demo, tests).
    pub data_dir: Option<PathBuf>,
    /// Connectors, purpose files, policy files and grants from the registry, loaded
    /// after the files'.
    pub registry: Snapshot,
}

/// Where registry objects appear to live while loading, so problems name them like
/// files: `/@registry/connectors/ID.yaml`, `/@registry/schemas/ID/…`,
/// `/@registry/purposes/PATH`, `/@registry/policies/PATH`, `/@registry/grants/ID.yaml`.
pub const REGISTRY_ROOT: &str = "/@registry";

/// The files of the main configuration, with the registry's objects under
/// [`REGISTRY_ROOT`].
struct WithRegistry<'a> {
    files: &'a dyn Source,
    registry: &'a Snapshot,
}

impl WithRegistry<'_> {
    fn registry_text(&self, rest: &Path) -> Option<String> {
        let mut parts = rest.iter().map(|p| p.to_string_lossy());
        let kind = parts.next()?;
        let rest: PathBuf = parts.map(|p| p.into_owned()).collect();
        let text = |s: &str| Some(s.to_owned());
        match kind.as_ref() {
            "connectors" => {
                let id = rest.to_str()?.strip_suffix(".yaml")?;
                text(&self.registry.connectors.get(id)?.current.definition)
            }
            "schemas" => {
                let mut parts = rest.iter();
                let id = parts.next()?.to_str()?;
                let schema: PathBuf = parts.collect();
                let schemas = &self.registry.connectors.get(id)?.current.schemas;
                text(schemas.get(schema.to_str()?)?)
            }
            "purposes" => text(&self.registry.purpose_files.get(rest.to_str()?)?.text),
            "policies" => text(&self.registry.policy_files.get(rest.to_str()?)?.text),
            "grants" => {
                let id = rest.to_str()?.strip_suffix(".yaml")?;
                text(&self.registry.grants.get(id)?.policy)
            }
            _ => None,
        }
    }
}

impl Source for WithRegistry<'_> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        match path.strip_prefix(REGISTRY_ROOT) {
            Ok(rest) => self
                .registry_text(rest)
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)),
            Err(_) => self.files.read(path),
        }
    }
}

/// The whole configuration a request is served with. Swapped as a unit.
#[derive(Debug)]
pub struct ActiveConfig {
    pub county: County,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub store: StoreSettings,
    pub limits: Limits,
    pub connectors: BTreeMap<String, ActiveConnector>,
    /// Registered connectors that are disabled (not served), with their department's id.
    pub disabled: BTreeMap<String, String>,
    pub purposes: PurposeCatalog,
    pub rate_limits: RateLimitsConfig,
    pub access_requests: AccessRequestSettings,
    pub corrections: CorrectionSettings,
    /// The working-day calendar every deadline in working days counts in (Monday to
    /// Friday when `gateway.yaml` names none): `config.calendar.add_working_days(today, n)`.
    pub calendar: Calendar,
    pub forms: FormSet,
    pub policies: PolicySet,
    /// The county's departments, with the upstreams their connectors may call.
    pub departments: Departments,
    /// The front databases the connectors read, by (department, name).
    pub fronts: BTreeMap<(String, String), Arc<connectors::sql::Front>>,
    pub auth: AuthConfig,
    pub tls: Option<ServerTlsConfig>,
    pub pseudonym_key_env: Option<String>,
    /// The audit log's checkpoints: cadence, pinned key, witnesses.
    pub audit: AuditSettings,
    /// The county's authority for where people live, if it names one.
    pub jurisdiction: Option<Authority>,
    /// The web console's settings (its OpenID Connect sign-in, …).
    pub console: ConsoleConfig,
    /// The directory of the main file; relative paths in it resolve against it.
    pub base_dir: PathBuf,
    /// A digest of every file loaded, so two replicas can tell they run the same config.
    pub version: String,
    /// The files loaded, relative to the main file's directory where they are under
    /// it (for the operator's status page).
    pub files: Vec<String>,
    /// The registry revision this configuration was built from.
    pub registry_revision: u64,
    /// When this configuration was built (RFC 3339, UTC).
    pub loaded_at: String,
}

impl crate::jurisdiction::Operations for BTreeMap<String, ActiveConnector> {
    fn operation(&self, connector: &str, operation: &str) -> Option<(SubjectKey, Vec<String>)> {
        let op = self.get(connector)?.operations.get(operation)?;
        Some((op.subject, op.fields.keys().cloned().collect()))
    }
}

/// Loads and checks the configuration rooted at `path`.
pub fn load(
    source: &dyn Source,
    path: &Path,
    options: &LoadOptions,
) -> Result<ActiveConfig, Vec<ConfigProblem>> {
    let source = WithRegistry {
        files: source,
        registry: &options.registry,
    };
    let mut loader = Loader {
        source: &source,
        problems: Vec::new(),
        digest: Sha256::new(),
        schemas: BTreeMap::new(),
        broken: BTreeSet::new(),
        base_dir: path.parent().unwrap_or(Path::new("")).to_owned(),
        departments: Departments::default(),
        certs_dir: None,
        files: Vec::new(),
        fronts: BTreeMap::new(),
    };
    let Some(main) = loader.parse_yaml::<GatewayFile>(path) else {
        return Err(loader.problems);
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let (mut departments, problems) = Departments::build(&main.departments);
    for (at, message) in problems {
        loader.problem(path, &at, &message);
    }
    for ((department, name), file) in &options.front_paths {
        departments.place_front_database(department, name, file);
    }
    loader.departments = departments;
    loader.certs_dir = main.certs_dir.as_ref().map(|dir| base.join(dir));
    if main.county.code.len() != 6 || !main.county.code.bytes().all(|b| b.is_ascii_digit()) {
        loader.problem(
            path,
            "county.code",
            "must be a 6-digit GB/T 2260 county code",
        );
    }
    if !(1..=60).contains(&main.access_requests.deadline_working_days) {
        loader.problem(
            path,
            "access_requests.deadline_working_days",
            "must be between 1 and 60 working days",
        );
    }
    if !(1..=60).contains(&main.corrections.deadline_working_days) {
        loader.problem(
            path,
            "corrections.deadline_working_days",
            "must be between 1 and 60 working days",
        );
    }
    if !(1..=3650).contains(&main.corrections.retention_days) {
        loader.problem(
            path,
            "corrections.retention_days",
            "must be between 1 and 3650 days",
        );
    }
    let calendar = match &main.calendar {
        Some(file) => loader.calendar(&base.join(file)),
        None => Calendar::default(),
    };
    if let StoreSettings::Postgres(pg) = &main.store {
        for (at, message) in pg.problems() {
            loader.problem(path, &format!("store.{at}"), &message);
        }
    }
    if main.limits.max_request_bytes < 1024 {
        loader.problem(path, "limits.max_request_bytes", "must be at least 1024");
    }
    if main.connectors.is_empty() {
        loader.problem(path, "connectors", "list at least one connector file");
    }
    if main.departments.is_empty() {
        loader.problem(
            path,
            "departments",
            "list the county's departments, each with the upstreams its connectors may call",
        );
    }
    let auth = options.auth.clone().unwrap_or_else(|| main.auth.clone());
    for (at, message) in auth.validate() {
        loader.problem(path, &format!("auth.{at}"), &message);
    }
    for (at, message) in main.console.validate(&auth) {
        loader.problem(path, &at, &message);
    }
    for (at, message) in main.rate_limits.validate() {
        loader.problem(path, &format!("rate_limits.{at}"), &message);
    }
    for (at, message) in main.audit.validate() {
        loader.problem(path, &format!("audit.{at}"), &message);
    }

    let root = Path::new(REGISTRY_ROOT);
    // The main purpose file, then the registry's: before connectors and policies,
    // which name purposes. A code may be defined once across all of them.
    let mut purposes = PurposeCatalog::default();
    let mut defined_in: BTreeMap<String, PathBuf> = BTreeMap::new();
    let registry_purposes = options
        .registry
        .purpose_files
        .keys()
        .map(|p| root.join("purposes").join(p));
    for purposes_path in std::iter::once(base.join(&main.purposes)).chain(registry_purposes) {
        let Some(file) = loader.parse_yaml::<PurposeFile>(&purposes_path) else {
            continue;
        };
        let codes: Vec<String> = file.purposes.iter().map(|p| p.code.clone()).collect();
        let (catalog, problems) = PurposeCatalog::build(file);
        for (at, message) in problems {
            loader.problem(&purposes_path, &at, &message);
        }
        let added: Vec<String> = catalog.iter().map(|p| p.code.clone()).collect();
        let duplicates = purposes.merge(catalog);
        // In the file's order.
        let mut at: Vec<(usize, &String)> = duplicates
            .iter()
            .map(|code| (codes.iter().position(|c| c == code).unwrap_or(0), code))
            .collect();
        at.sort();
        for (i, code) in at {
            let earlier = defined_in
                .get(code)
                .map(|file| file.display().to_string())
                .unwrap_or_default();
            loader.problem(
                &purposes_path,
                &format!("purposes[{i}].code"),
                &format!("purpose `{code}` is already defined in {earlier}"),
            );
        }
        for code in added.into_iter().filter(|c| !duplicates.contains(c)) {
            defined_in.insert(code, purposes_path.clone());
        }
    }

    let schemas_dir = base.join(&main.schemas_dir);
    // The files' connectors, then the registry's enabled ones (each with its own
    // schemas); a disabled connector is skipped, and so are the rules naming it.
    let registered = options.registry.connectors.iter().filter_map(|(id, c)| {
        if c.enabled {
            let file = root.join("connectors").join(format!("{id}.yaml"));
            Some((file, root.join("schemas").join(id)))
        } else {
            None
        }
    });
    let listed = main
        .connectors
        .iter()
        .map(|file| (base.join(file), schemas_dir.clone()));
    let mut connectors = BTreeMap::new();
    for (file, schemas_dir) in listed.chain(registered) {
        let Some((def, valid)) = loader.connector(&file, options) else {
            continue;
        };
        if connectors.contains_key(&def.id) || loader.broken.contains(&def.id) {
            loader.problem(
                &file,
                "id",
                &format!("a second connector with id `{}`", def.id),
            );
            continue;
        }
        let id = def.id.clone();
        match loader.activate(&file, def, valid, &schemas_dir) {
            Some(active) => {
                connectors.insert(id, active);
            }
            None => {
                loader.broken.insert(id);
            }
        }
    }
    for (id, c) in &options.registry.connectors {
        if !c.enabled && !connectors.contains_key(id) {
            loader.broken.insert(id.clone());
        }
    }

    let policy_files: Vec<PathBuf> = main
        .policies
        .iter()
        .map(|file| base.join(file))
        .chain(
            options
                .registry
                .policy_files
                .keys()
                .map(|p| root.join("policies").join(p)),
        )
        .chain(
            options
                .registry
                .grants
                .keys()
                .map(|id| root.join("grants").join(format!("{id}.yaml"))),
        )
        .collect();
    let jurisdiction = main.jurisdiction.as_ref().and_then(|j| {
        // A connector that did not load was reported where it is defined.
        if loader.broken.contains(&j.connector) {
            return None;
        }
        match j.check(&connectors) {
            Ok(authority) => Some(authority),
            Err(problems) => {
                for (at, message) in problems {
                    loader.problem(path, &format!("jurisdiction.{at}"), &message);
                }
                None
            }
        }
    });
    let policies = loader.policies(
        &policy_files,
        &connectors,
        &purposes,
        main.jurisdiction.is_some(),
    );
    if let Some(authority) = &jurisdiction {
        // A grant holding in the caller's jurisdiction on an operation keyed by
        // household number needs the authority's household operation.
        for grant in policies
            .grants()
            .iter()
            .filter(|g| g.jurisdiction.is_some())
        {
            // A grant held to the caller's villages needs the authority to say which
            // village each person lives in.
            if grant.jurisdiction == Some(crate::policy::Jurisdiction::Village)
                && authority.village_field.is_none()
            {
                loader.problem(
                    path,
                    "jurisdiction.village_field",
                    &format!(
                        "grant `{}` holds only for residents of the caller's villages: name \
                         the authority's field that holds the 12-digit village code",
                        grant.id
                    ),
                );
            }
            let Some(connector) = connectors.get(&grant.connector) else {
                continue;
            };
            for op in &grant.operations {
                let key = connector.operations.get(op).map(|o| o.subject);
                if let Some(key) = key
                    && authority.operation_for(key).is_none()
                {
                    loader.problem(
                        path,
                        "jurisdiction.by_household_number",
                        &format!(
                            "grant `{}` holds in the caller's jurisdiction on `{}.{op}`, \
                             looked up by household number: name the household operation",
                            grant.id, grant.connector
                        ),
                    );
                }
            }
        }
    }
    for message in main.telemetry.problems() {
        loader.problem(path, "telemetry", &message);
    }
    let forms = loader.forms(base, &main.forms, &connectors, &purposes);
    for form in forms.iter() {
        for (at, message) in main.rate_limits.too_small_for(form.max_lookups) {
            loader.problem(path, &at, &format!("form `{}`: {message}", form.id));
        }
    }

    if !loader.problems.is_empty() {
        return Err(loader.problems);
    }
    let version = short_hex(loader.digest.finalize().as_slice());
    Ok(ActiveConfig {
        county: main.county,
        listen: main.listen,
        metrics_listen: main.metrics_listen,
        data_dir: options
            .data_dir
            .clone()
            .unwrap_or_else(|| base.join(main.data_dir)),
        store: main.store,
        limits: main.limits,
        connectors,
        disabled: options
            .registry
            .connectors
            .iter()
            .filter(|(_, c)| !c.enabled)
            .map(|(id, c)| (id.clone(), c.current.department.clone()))
            .collect(),
        purposes,
        policies,
        rate_limits: main.rate_limits,
        access_requests: main.access_requests,
        corrections: main.corrections,
        calendar,
        forms,
        departments: loader.departments,
        fronts: loader.fronts,
        auth,
        tls: main.tls,
        pseudonym_key_env: main.pseudonym_key_env,
        audit: main.audit,
        jurisdiction,
        console: main.console,
        base_dir: base.to_owned(),
        version,
        files: loader.files,
        registry_revision: options.registry.revision,
        loaded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// The connections to one declared front database (none is opened yet). A server's
/// address is read from where the configuration says; problems never quote it.
fn front_database(
    config: &crate::departments::FrontDatabaseConfig,
    base_dir: &Path,
) -> Result<connectors::sql::Front, String> {
    use crate::departments::FrontDriver;
    use connectors::sql::Front;
    use connectors::sql::server::ServerSettings;
    let Some(server) = config.server() else {
        let path = base_dir.join(config.path.as_deref().unwrap_or(Path::new("")));
        return Ok(Front::Sqlite(connectors::sql::sqlite::SqliteFront::new(
            &path,
            config.pool(),
        )));
    };
    let url = server
        .relative_to(base_dir)
        .resolve()
        .map_err(|e| e.to_string())?;
    let settings = ServerSettings {
        pool: config.pool(),
        statement_timeout: config.statement_timeout(),
        tls_ca_file: config.tls_ca_file.as_ref().map(|file| base_dir.join(file)),
    };
    match config.driver {
        FrontDriver::Mysql => {
            connectors::sql::mysql::MysqlFront::new(&url, settings).map(Front::Mysql)
        }
        FrontDriver::Postgres => {
            connectors::sql::postgres::PostgresFront::new(&url, &settings).map(Front::Postgres)
        }
        FrontDriver::Sqlite => Err("a SQLite front database has no server".to_owned()),
    }
}

/// Records in the audit log that this configuration was put in force, with its
/// config and policy versions, so every later decision can be traced to it.
pub async fn record_loaded(
    audit: &dyn crate::audit::AuditLog,
    config: &ActiveConfig,
) -> Result<(), crate::audit::AuditError> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let mut event = crate::audit::AuditEvent::admin(
        &request_id,
        crate::audit::AuditCaller::gateway(),
        &format!("config.load {}", config.version),
    );
    event.policy_version = Some(config.policies.version.clone());
    audit.append(event).await.map(|_| ())
}

/// The first 8 bytes of a digest as hex: enough to tell versions apart.
fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A compiled schema and its JSON, or `None` when it failed (already reported).
type SchemaEntry = Option<(Arc<RecordSchema>, Arc<serde_json::Value>)>;

struct Loader<'a> {
    source: &'a dyn Source,
    problems: Vec<ConfigProblem>,
    digest: Sha256,
    schemas: BTreeMap<PathBuf, SchemaEntry>,
    /// Ids of connectors whose files have problems, or that are disabled.
    broken: BTreeSet<String>,
    /// The main file's directory.
    base_dir: PathBuf,
    /// The departments; the demo's simulated upstreams are added while loading.
    departments: Departments,
    /// `certs_dir`, resolved against the main file's directory.
    certs_dir: Option<PathBuf>,
    /// The files read, as the status page shows them.
    files: Vec<String>,
    /// Front databases opened so far, by (department, name).
    fronts: BTreeMap<(String, String), Arc<connectors::sql::Front>>,
}

impl Loader<'_> {
    fn problem(&mut self, file: &Path, path: &str, message: &str) {
        self.problems.push(ConfigProblem {
            file: file.to_owned(),
            path: path.to_owned(),
            message: message.to_owned(),
        });
    }

    fn read(&mut self, file: &Path) -> Option<String> {
        match self.source.read(file) {
            Ok(text) => {
                self.digest.update(file.to_string_lossy().as_bytes());
                self.digest.update([0]);
                self.digest.update(text.as_bytes());
                let shown = file.strip_prefix(&self.base_dir).unwrap_or(file);
                self.files.push(shown.to_string_lossy().into_owned());
                Some(text)
            }
            Err(e) => {
                self.problem(file, "", &format!("cannot be read: {e}"));
                None
            }
        }
    }

    fn parse_yaml<T: serde::de::DeserializeOwned>(&mut self, file: &Path) -> Option<T> {
        let text = self.read(file)?;
        match connectors::definition::parse_yaml(&text) {
            Ok(value) => Some(value),
            Err(p) => {
                self.problem(file, &p.path, &p.message);
                None
            }
        }
    }

    /// Reads the working-day calendar and reports its problems (Monday to Friday when
    /// it has any: the load fails then anyway).
    fn calendar(&mut self, file: &Path) -> Calendar {
        let Some(text) = self.read(file) else {
            return Calendar::default();
        };
        Calendar::from_yaml(&text).unwrap_or_else(|problems| {
            for (at, message) in problems {
                self.problem(file, &at, &message);
            }
            Calendar::default()
        })
    }

    /// Parses a connector definition and reports its own problems. Returns the
    /// definition if it parsed, and whether it is valid.
    fn connector(&mut self, file: &Path, options: &LoadOptions) -> Option<(Def, bool)> {
        let text = self.read(file)?;
        let mut def = match Def::from_yaml(&text) {
            Ok(def) => def,
            Err(p) => {
                self.problem(file, &p.path, &p.message);
                return None;
            }
        };
        if let Some(url) = options.base_urls.get(&def.id) {
            if let Transport::Http(http) = &mut def.transport {
                http.base_url.clone_from(url);
            }
            // The operator's own tooling set this URL: it is the department's upstream.
            if let Ok(upstream) = Upstream::parse(url) {
                self.departments.allow(&def.department.id, upstream);
            }
        }
        let problems = def.validate();
        let mut valid = problems.is_empty();
        for p in problems {
            self.problem(file, &p.path, &p.message);
        }
        match self.departments.get(&def.department.id) {
            Some(dept) if def.department.name.is_empty() || def.department.name == dept.name => {
                def.department.name.clone_from(&dept.name);
            }
            Some(dept) => {
                let message = format!(
                    "differs from the name the county gives department `{}` ({}); the name comes from gateway.yaml, so leave it out",
                    dept.id, dept.name
                );
                self.problem(file, "department.name", &message);
                valid = false;
            }
            None => {
                let message = format!(
                    "department `{}` is not one of the county's departments (gateway.yaml `departments`)",
                    def.department.id
                );
                self.problem(file, "department.id", &message);
                valid = false;
            }
        }
        Some((def, valid))
    }

    /// Loads every policy file against the loaded connectors and purposes. Rule ids
    /// are unique across files.
    fn policies(
        &mut self,
        files: &[PathBuf],
        connectors: &BTreeMap<String, ActiveConnector>,
        purposes: &PurposeCatalog,
        jurisdiction: bool,
    ) -> PolicySet {
        let known: BTreeMap<String, (Arc<ConnectorDef>, Operations)> = connectors
            .iter()
            .map(|(id, c)| {
                let ops = c
                    .operations
                    .iter()
                    .map(|(name, op)| (name.clone(), op.leaves.clone()))
                    .collect();
                (id.clone(), (c.def.clone(), ops))
            })
            .collect();
        let broken = self.broken.clone();
        let catalog = Catalog {
            connectors: &known,
            broken: &broken,
            purposes,
            jurisdiction,
        };
        let mut digest = Sha256::new();
        let mut grants = Vec::new();
        let mut denies = Vec::new();
        let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            let Some(text) = self.read(file) else {
                continue;
            };
            let file = file.clone();
            digest.update(text.as_bytes());
            let parsed: PolicyFile = match connectors::definition::parse_yaml(&text) {
                Ok(p) => p,
                Err(p) => {
                    self.problem(&file, &p.path, &p.message);
                    continue;
                }
            };
            let mut problems = Vec::new();
            let (g, d) = crate::policy::file::compile(parsed, &catalog, &mut problems);
            for (at, message) in problems {
                self.problem(&file, &at, &message);
            }
            let rule_ids = g
                .iter()
                .map(|g| g.id.clone())
                .chain(d.iter().map(|d| d.id.clone()));
            for id in rule_ids {
                if let Some(first) = ids.insert(id.clone(), file.clone()) {
                    self.problem(
                        &file,
                        "",
                        &format!("rule id `{id}` is also used in {}", first.display()),
                    );
                }
            }
            grants.extend(g);
            denies.extend(d);
        }
        PolicySet::new(grants, denies, short_hex(digest.finalize().as_slice()))
    }

    /// Loads every form template against the loaded connectors and purposes. Form ids
    /// are unique.
    fn forms(
        &mut self,
        base: &Path,
        files: &[PathBuf],
        connectors: &BTreeMap<String, ActiveConnector>,
        purposes: &PurposeCatalog,
    ) -> FormSet {
        let mut forms = FormSet::default();
        for file in files {
            let file = base.join(file);
            let Some(parsed) = self.parse_yaml::<crate::forms::FormFile>(&file) else {
                continue;
            };
            let mut problems = Vec::new();
            let broken = self.broken.clone();
            let form = crate::forms::compile(parsed, connectors, &broken, purposes, &mut problems);
            for (at, message) in problems {
                self.problem(&file, &at, &message);
            }
            if let Some(form) = form {
                let id = form.id.clone();
                if !forms.insert(form) {
                    self.problem(&file, "id", &format!("a second form with id `{id}`"));
                }
            }
        }
        forms
    }

    /// A front-database connector on the database its department declared (checked
    /// before: [`Loader::upstreams_allowed`]). Connectors reading the same database
    /// share its connections.
    fn front_connector(
        &mut self,
        def: &Arc<Def>,
        database: &str,
    ) -> Result<Arc<dyn connectors::Connector>, connectors::BuildError> {
        let key = (def.department.id.clone(), database.to_owned());
        let front = match self.fronts.get(&key) {
            Some(front) => front.clone(),
            None => {
                let config = self
                    .departments
                    .get(&def.department.id)
                    .and_then(|d| d.front_databases.get(database))
                    .ok_or_else(|| connectors::BuildError::Client {
                        kind: "SQL",
                        problem: "its front database is not declared".into(),
                    })?;
                let front =
                    Arc::new(front_database(config, &self.base_dir).map_err(|problem| {
                        connectors::BuildError::Client {
                            kind: "SQL",
                            problem: format!("front database `{database}`: {problem}"),
                        }
                    })?);
                self.fronts.insert(key, front.clone());
                front
            }
        };
        Ok(Arc::new(connectors::sql::SqlConnector::new(
            def.clone(),
            front,
        )?))
    }

    /// Whether every URL the connector would call is one of its department's
    /// upstreams; reports each one that is not (without repeating the URL).
    fn upstreams_allowed(&mut self, file: &Path, def: &Def) -> bool {
        let department = &def.department.id;
        if self.departments.get(department).is_none() {
            return false; // Already reported with the department.
        }
        let http = match &def.transport {
            Transport::Http(http) => http,
            Transport::Sql(sql) => {
                // Only a front database the operator declared for this department.
                let declared = self
                    .departments
                    .get(department)
                    .is_some_and(|d| d.front_databases.contains_key(&sql.database));
                if !declared {
                    self.problem(
                        file,
                        "database",
                        &format!(
                            "is not a front database of department `{department}` \
                             (gateway.yaml `departments[].front_databases`)"
                        ),
                    );
                }
                return declared;
            }
        };
        // A base URL that is not http(s) is already reported by the definition's checks.
        let Ok(base) = reqwest::Url::parse(&http.base_url) else {
            return false;
        };
        if !matches!(base.scheme(), "http" | "https") {
            return false;
        }
        if let Err(refusal) = self.departments.check(department, &base) {
            self.problem(file, "base_url", &refusal.to_string());
            return false;
        }
        let mut allowed = true;
        for (name, op) in &def.operations {
            let OperationCall::Http(request) = &op.call else {
                continue; // Mixed kinds are refused when the file is read.
            };
            let Ok(url) = connectors::http::endpoint_url(&http.base_url, &request.path) else {
                continue; // The build reports a URL that does not parse.
            };
            if let Err(refusal) = self.departments.check(department, &url) {
                let at = format!("operations.{name}.request.path");
                self.problem(file, &at, &format!("leads to a URL that {refusal}"));
                allowed = false;
            }
        }
        allowed
    }

    /// Reads and compiles a schema once, however many operations use it.
    fn schema(&mut self, file: &Path) -> SchemaEntry {
        if let Some(cached) = self.schemas.get(file) {
            return cached.clone();
        }
        let compiled = self.compile_schema(file);
        self.schemas.insert(file.to_owned(), compiled.clone());
        compiled
    }

    fn compile_schema(&mut self, file: &Path) -> SchemaEntry {
        let text = self.read(file)?;
        let json: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                self.problem(file, "", &format!("is not valid JSON: {e}"));
                return None;
            }
        };
        match RecordSchema::compile(&json) {
            Ok(schema) => Some((Arc::new(schema), Arc::new(json))),
            Err(e) => {
                self.problem(file, "", &e);
                None
            }
        }
    }

    /// Checks a definition against its schemas and, if everything is in order,
    /// builds the connector.
    fn activate(
        &mut self,
        file: &Path,
        def: Def,
        valid: bool,
        schemas_dir: &Path,
    ) -> Option<ActiveConnector> {
        let conditional = def.operations.values().any(|op| {
            Def::leaf_fields(op)
                .iter()
                .any(|leaf| leaf.sharing == connectors::definition::Sharing::Conditional)
        });
        let mut valid = valid;
        match &def.sharing_terms {
            None if conditional => {
                self.problem(
                    file,
                    "sharing_terms",
                    "conditional fields are shared only on stated terms: give sharing_terms.legal_basis (and method)",
                );
                valid = false;
            }
            Some(terms) if terms.legal_basis.trim().is_empty() => {
                self.problem(file, "sharing_terms.legal_basis", "must not be empty");
                valid = false;
            }
            _ => {}
        }
        let mut operations = BTreeMap::new();
        let mut digest = Sha256::new();
        digest.update(serde_json::to_vec(&def).unwrap_or_default());
        for (name, op) in &def.operations {
            let schema_file = schemas_dir.join(&op.schema);
            let Some((schema, schema_json)) = self.schema(&schema_file) else {
                continue;
            };
            digest.update(schema_json.to_string().as_bytes());
            let mut complete = true;
            for (field, message) in undeclared_fields(&schema_json, &op.record) {
                self.problem(
                    file,
                    &format!("operations.{name}.record.{field}"),
                    &format!("{message} ({})", schema_file.display()),
                );
                complete = false;
            }
            if !complete {
                continue;
            }
            operations.insert(
                name.clone(),
                ActiveOperation {
                    subject: op.subject,
                    schema,
                    fields: FieldNode::tree(&op.record),
                    leaves: Def::leaf_fields(op),
                },
            );
        }
        if !self.upstreams_allowed(file, &def) {
            valid = false;
        }
        if !valid || operations.len() != def.operations.len() {
            return None;
        }
        let def = Arc::new(def);
        // A registry connector's relative paths (TLS files) resolve against the main
        // file's directory, like a listed file's against its own; either reads TLS
        // files only from the main file's folder, `certs_dir` and (for a file the
        // operator listed) the connector file's own folder.
        let mut allowed = vec![self.base_dir.clone()];
        allowed.extend(self.certs_dir.clone());
        let dir = if file.starts_with(REGISTRY_ROOT) {
            self.base_dir.clone()
        } else {
            let dir = file.parent().unwrap_or(Path::new(".")).to_owned();
            allowed.push(dir.clone());
            dir
        };
        let built = match &def.transport {
            Transport::Sql(sql) => self.front_connector(&def, &sql.database),
            Transport::Http(_) => connectors::build(def.clone(), &dir, &FileRoots::within(allowed)),
        };
        match built {
            Ok(connector) => Some(ActiveConnector {
                cache: RecordCache::new(&def.cache).map(Arc::new),
                digest: short_hex(digest.finalize().as_slice()),
                def,
                connector,
                operations,
            }),
            Err(e) => {
                self.problem(file, "", &format!("connector cannot be built: {e}"));
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_parent_segments() {
        assert_eq!(
            normalize(Path::new("county/../schemas/./a.json")),
            PathBuf::from("schemas/a.json")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }

    #[test]
    fn an_unreadable_main_file_is_one_problem() {
        let err = load(
            &EmbeddedSource::default(),
            Path::new("missing.yaml"),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].file, PathBuf::from("missing.yaml"));
    }

    fn purpose_file(path: &str, codes: &[&str]) -> (String, crate::registry::PolicyFileRecord) {
        let mut text = "purposes:\n".to_owned();
        for code in codes {
            text.push_str(&format!(
                "  - code: {code}\n    name: 测试\n    name_en: Test\n    legal_basis: 测试条例\n"
            ));
        }
        (
            path.to_owned(),
            crate::registry::PolicyFileRecord {
                path: path.to_owned(),
                text,
            },
        )
    }

    fn load_county(purpose_files: &[(&str, &[&str])]) -> Result<ActiveConfig, Vec<ConfigProblem>> {
        let options = LoadOptions {
            registry: Snapshot {
                purpose_files: purpose_files
                    .iter()
                    .map(|(path, codes)| purpose_file(path, codes))
                    .collect(),
                ..Snapshot::default()
            },
            ..LoadOptions::default()
        };
        load(
            &EmbeddedSource::new(crate::county::COUNTY_FILES.iter().copied()),
            Path::new(crate::county::COUNTY_CONFIG),
            &options,
        )
    }

    /// The county with `shebao` turned into a front-database connector on
    /// `shebao_front`, and `gateway.yaml` edited by `main`.
    pub(crate) fn county_with_front_database(
        main: impl Fn(&str) -> String,
    ) -> Vec<(&'static str, String)> {
        crate::county::COUNTY_FILES
            .iter()
            .map(|(path, text)| {
                if *path == crate::county::COUNTY_CONFIG {
                    return (*path, main(text));
                }
                if *path != "county/connectors/shebao.yaml" {
                    return (*path, (*text).to_owned());
                }
                let text = text
                    .lines()
                    .filter(|l| {
                        !["base_url:", "max_response_bytes:", "envelope:"]
                            .iter()
                            .any(|k| l.starts_with(k))
                    })
                    .map(|l| match l {
                        "kind: http" => "kind: sql\ndatabase: shebao_front".to_owned(),
                        l if l.trim_start().starts_with("request:") => {
                            "    select: { from: v_insured, key: aac002, columns: [aac002] }"
                                .to_owned()
                        }
                        l => l.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                (*path, text)
            })
            .collect()
    }

    pub(crate) fn load_files(
        files: Vec<(&'static str, String)>,
    ) -> Result<ActiveConfig, Vec<ConfigProblem>> {
        load(
            &EmbeddedSource::new(files),
            Path::new(crate::county::COUNTY_CONFIG),
            &LoadOptions::default(),
        )
    }

    #[test]
    fn a_front_database_connector_reads_only_a_database_its_department_declared() {
        // Not declared for its department: one problem, at `database`.
        let problems = load_files(county_with_front_database(str::to_owned)).unwrap_err();
        let refused: Vec<_> = problems
            .iter()
            .filter(|p| p.file.ends_with("shebao.yaml"))
            .collect();
        assert_eq!(refused.len(), 1, "{problems:?}");
        assert_eq!(refused[0].path, "database");
        assert!(refused[0].message.contains("county-hrss"), "{refused:?}");
        // Declared by another department: the same.
        let elsewhere = county_with_front_database(|text| {
            text.replace(
                "    upstreams: [http://127.0.0.1:18101]",
                "    upstreams: [http://127.0.0.1:18101]\n    front_databases: { shebao_front: { driver: sqlite, path: x.db } }",
            )
        });
        let problems = load_files(elsewhere).unwrap_err();
        assert!(
            problems.iter().any(|p| p.path == "database"),
            "{problems:?}"
        );

        // Declared: the connector reads the file, read-only.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("front.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (aac002 TEXT); CREATE VIEW v_insured AS SELECT aac002 FROM t;",
            )
            .unwrap();
        let declared = county_with_front_database(|text| {
            text.replace(
                "    upstreams: [http://127.0.0.1:18102]",
                &format!(
                    "    upstreams: [http://127.0.0.1:18102]\n    front_databases: {{ shebao_front: {{ driver: sqlite, path: {}, pool: 2 }} }}",
                    db.display()
                ),
            )
        });
        let cfg = load_files(declared).expect("the county loads");
        let shebao = cfg.connectors.get("shebao").expect("shebao");
        assert_eq!(shebao.def.transport.kind(), "sql");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let fetched = runtime.block_on(shebao.connector.fetch(
            "insured_by_id",
            "13990119750327229X",
            &connectors::FetchContext::default(),
        ));
        assert_eq!(fetched, Err(connectors::FetchError::NotFound));
    }

    /// The county's files with `gateway.yaml` and the calendar edited.
    fn county_edited(
        main: impl Fn(&str) -> String,
        calendar: impl Fn(&str) -> String,
    ) -> Vec<(&'static str, String)> {
        crate::county::COUNTY_FILES
            .iter()
            .map(|(path, text)| match *path {
                crate::county::COUNTY_CONFIG => (*path, main(text)),
                "county/calendar.yaml" => (*path, calendar(text)),
                _ => (*path, (*text).to_owned()),
            })
            .collect()
    }

    #[test]
    fn deadlines_count_in_the_calendar_gateway_yaml_names() {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cfg = load_files(county_edited(str::to_owned, str::to_owned)).unwrap();
        // 国庆 2026 is off and Saturday 10-10 is worked.
        assert_eq!(
            cfg.calendar.add_working_days(day("2026-09-28"), 10),
            day("2026-10-16")
        );
        assert!(
            cfg.files.iter().any(|f| f == "calendar.yaml"),
            "{:?}",
            cfg.files
        );
        // Without the key: Monday to Friday.
        let plain = load_files(county_edited(
            |text| text.replace("calendar: calendar.yaml\n", ""),
            str::to_owned,
        ))
        .unwrap();
        assert!(plain.calendar.is_empty());
        assert_eq!(
            plain.calendar.add_working_days(day("2026-09-28"), 10),
            day("2026-10-12")
        );
        // The calendar's problems are named with its file and path, like any file's.
        let problems = load_files(county_edited(str::to_owned, |text| {
            text.replace("date: 2026-10-10", "date: 2026-10-01")
        }))
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].starts_with("county/calendar.yaml: years.2026.make_up_days[5].date: "),
            "{text:?}"
        );
        // A calendar that is missing is a problem, not Monday to Friday.
        let missing = load_files(county_edited(
            |text| text.replace("calendar: calendar.yaml", "calendar: nowhere.yaml"),
            str::to_owned,
        ))
        .unwrap_err();
        assert!(
            missing[0]
                .to_string()
                .starts_with("county/nowhere.yaml: cannot be read"),
            "{missing:?}"
        );
    }

    #[test]
    fn registry_purpose_files_join_the_catalog() {
        let cfg = load_county(&[("a.yaml", &["test_a"]), ("b.yaml", &["test_b"])]).unwrap();
        assert!(cfg.purposes.get("test_a").is_some());
        assert!(cfg.purposes.get("test_b").is_some());
        assert!(cfg.purposes.get("birth_registration").is_some());
    }

    #[test]
    fn a_purpose_code_defined_twice_is_a_problem_of_the_later_file() {
        let problems = load_county(&[
            ("a.yaml", &["test_a"]),
            ("b.yaml", &["test_a", "birth_registration"]),
        ])
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "/@registry/purposes/b.yaml: purposes[0].code: purpose `test_a` is already \
                 defined in /@registry/purposes/a.yaml",
                "/@registry/purposes/b.yaml: purposes[1].code: purpose `birth_registration` \
                 is already defined in county/purposes.yaml",
            ]
        );
    }
}
