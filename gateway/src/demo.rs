//! The demo county in one process: a synthetic population, the three simulated
//! department systems on loopback ports, and the gateway in front of them with the
//! county's configuration (compiled into the binary from `county/` and `schemas/`, so
//! the demo runs from any directory).

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use connectors::sim::{self, Population, SampleKind, SimServer};
use tokio::net::TcpListener;

use crate::config::{self, ActiveConfig, EmbeddedSource, LoadOptions};
use crate::server::{self, App};
use crate::store::SqliteStore;

/// Seed of the demo's synthetic population.
pub const SEED: u64 = 2026;
/// Least number of residents in the demo county.
pub const RESIDENTS: usize = 12_000;

/// The demo county's configuration files, as they are in the repository.
pub const COUNTY_FILES: &[(&str, &str)] = &[
    (
        "county/gateway.yaml",
        include_str!("../../county/gateway.yaml"),
    ),
    (
        "county/purposes.yaml",
        include_str!("../../county/purposes.yaml"),
    ),
    (
        "county/connectors/hukou.yaml",
        include_str!("../../county/connectors/hukou.yaml"),
    ),
    (
        "county/connectors/shebao.yaml",
        include_str!("../../county/connectors/shebao.yaml"),
    ),
    (
        "county/connectors/jisheng.yaml",
        include_str!("../../county/connectors/jisheng.yaml"),
    ),
    (
        "schemas/hukou/person.schema.json",
        include_str!("../../schemas/hukou/person.schema.json"),
    ),
    (
        "schemas/hukou/household.schema.json",
        include_str!("../../schemas/hukou/household.schema.json"),
    ),
    (
        "schemas/shebao/insured.schema.json",
        include_str!("../../schemas/shebao/insured.schema.json"),
    ),
    (
        "schemas/jisheng/fertility.schema.json",
        include_str!("../../schemas/jisheng/fertility.schema.json"),
    ),
];

/// The demo's main configuration file inside [`COUNTY_FILES`].
pub const COUNTY_CONFIG: &str = "county/gateway.yaml";

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
    pub population: Arc<Population>,
    listener: TcpListener,
    app: App,
}

/// Generates the synthetic population off the async workers.
pub async fn population(seed: u64, residents: usize) -> Population {
    match tokio::task::spawn_blocking(move || Population::generate(seed, residents)).await {
        Ok(p) => p,
        // Generation does not fail; if its task panicked, generate here.
        Err(_) => Population::generate(seed, residents),
    }
}

/// Loads the embedded demo county with its connectors pointed at `departments`.
pub fn county_config(departments: &[SimServer]) -> anyhow::Result<ActiveConfig> {
    let options = LoadOptions {
        base_urls: departments
            .iter()
            .map(|d| (d.department.id().to_owned(), d.base_url()))
            .collect(),
    };
    let source = EmbeddedSource::new(COUNTY_FILES.iter().copied());
    config::load(&source, Path::new(COUNTY_CONFIG), &options).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the embedded demo county is invalid:\n  {}",
            list.join("\n  ")
        )
    })
}

/// Starts the departments, loads the county, opens the store and binds the gateway.
pub async fn start(options: DemoOptions) -> anyhow::Result<Demo> {
    let population = Arc::new(population(options.seed, options.residents).await);
    let departments = sim::spawn_all(population.clone(), [127, 0, 0, 1].into())
        .await
        .context("cannot start the simulated departments")?;
    let mut cfg = county_config(&departments)?;
    let data_dir = std::path::absolute(&options.data_dir).unwrap_or(options.data_dir);
    cfg.data_dir.clone_from(&data_dir);
    let store = SqliteStore::open(&data_dir).context("cannot open the store")?;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    Ok(Demo {
        addr,
        data_dir,
        departments,
        population,
        listener,
        app: App::new(cfg, Arc::new(store)),
    })
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
            "  population   {} synthetic residents (not real people)",
            self.population.len()
        );
        if let Some(person) = self.population.sample(SampleKind::MarriedParent) {
            let body = format!(
                r#"{{"connector":"hukou","operation":"person_by_id","subject":{{"id_number":"{}"}},"purpose":"birth_registration","case_id":"DEMO-0001"}}"#,
                person.id.as_str()
            );
            let _ = writeln!(
                out,
                "\nTry a lookup (the household registration of a synthetic resident):"
            );
            let _ = writeln!(
                out,
                "  curl -s http://{}/v1/query -H 'content-type: application/json' -d '{}'",
                self.addr, body
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
        server::serve(self.listener, self.app, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under county/ and schemas/ is compiled into the demo, so the
    /// demo never runs a county that differs from the repository's.
    #[test]
    fn the_embedded_county_matches_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        for dir in ["county", "schemas"] {
            collect(&root, &root.join(dir), &mut on_disk);
        }
        on_disk.sort();
        let mut embedded: Vec<String> = COUNTY_FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for (path, text) in COUNTY_FILES {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
        }
    }

    fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}
