//! Shared test helpers: a population, the departments and a gateway on port 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use connectors::sim::{self, Department, Faults, Population, SimServer};
use gateway::config::{self, EmbeddedSource, LoadOptions};
use gateway::demo::{COUNTY_CONFIG, COUNTY_FILES};
use gateway::server::{self, App};
use gateway::store::SqliteStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A population shared by every test of this binary (read-only, so no test depends
/// on another). Smaller than the demo's to keep debug builds quick.
pub(crate) fn population() -> &'static Arc<Population> {
    connectors::install_crypto_provider();
    static POPULATION: OnceLock<Arc<Population>> = OnceLock::new();
    POPULATION.get_or_init(|| Arc::new(Population::generate(2026, 2_000)))
}

/// A sample resident of the shared population.
pub(crate) fn sample(kind: connectors::sim::SampleKind) -> &'static connectors::sim::Person {
    population()
        .sample(kind)
        .expect("the population has every sample kind")
}

/// POSTs JSON to a URL and reads the answer.
pub(crate) async fn post_json(url: &str, body: &Value) -> Reply {
    Reply::read(
        client()
            .post(url)
            .json(body)
            .send()
            .await
            .expect("an answer"),
    )
    .await
}

/// A plain HTTP client for talking to the gateway.
pub(crate) fn client() -> reqwest::Client {
    connectors::install_crypto_provider();
    reqwest::Client::new()
}

/// The departments and a gateway in front of them.
pub(crate) struct TestGateway {
    pub(crate) addr: SocketAddr,
    pub(crate) departments: Vec<SimServer>,
    pub(crate) client: reqwest::Client,
    pub(crate) data_dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestGateway {
    /// The demo county as it is in the repository.
    pub(crate) async fn start() -> TestGateway {
        TestGateway::start_with(|_, text| text.to_owned()).await
    }

    /// The demo county with its files edited by `edit(path, text)`.
    pub(crate) async fn start_with(edit: impl Fn(&str, &str) -> String) -> TestGateway {
        connectors::install_crypto_provider();
        let departments = sim::spawn_all(population().clone(), [127, 0, 0, 1].into())
            .await
            .expect("departments start");
        let files = COUNTY_FILES
            .iter()
            .map(|(path, text)| (*path, edit(path, text)));
        let options = LoadOptions {
            base_urls: departments
                .iter()
                .map(|d| (d.department.id().to_owned(), d.base_url()))
                .collect(),
        };
        let cfg = config::load(
            &EmbeddedSource::new(files),
            Path::new(COUNTY_CONFIG),
            &options,
        )
        .expect("the county config loads");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&data_dir.path().join("data")).expect("store opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let app = App::new(cfg, Arc::new(store));
        tokio::spawn(server::serve(listener, app, async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            departments,
            client: client(),
            data_dir,
            _stop: stop,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn department(&self, department: Department) -> &SimServer {
        self.departments
            .iter()
            .find(|d| d.department == department)
            .expect("every department runs")
    }

    pub(crate) fn set_faults(&self, department: Department, faults: Faults) {
        self.department(department).faults.set(faults);
    }

    /// POSTs a lookup and returns status, content type and body.
    pub(crate) async fn query(&self, body: &Value) -> Reply {
        post_json(&self.url("/v1/query"), body).await
    }

    /// GETs a path of the gateway.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        let response = self.client.get(self.url(path)).send().await;
        Reply::read(response.expect("an answer")).await
    }

    /// POSTs a raw body with a content type to a path of the gateway.
    pub(crate) async fn post_raw(&self, path: &str, content_type: &str, body: String) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", content_type);
        Reply::read(request.body(body).send().await.expect("an answer")).await
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) text: String,
    pub(crate) json: Value,
}

impl Reply {
    pub(crate) async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
        }
    }

    /// Asserts a problem+json answer of the given kind and status.
    pub(crate) fn assert_problem(&self, status: u16, kind: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(
            self.json["type"],
            format!("/problems/{kind}"),
            "body: {}",
            self.text
        );
        assert_eq!(self.json["status"], status);
    }
}

/// A lookup body.
pub(crate) fn lookup(connector: &str, operation: &str, id_number: &str) -> Value {
    json!({
        "connector": connector,
        "operation": operation,
        "subject": {"id_number": id_number},
        "purpose": "birth_registration",
        "case_id": "TEST-0001",
    })
}
