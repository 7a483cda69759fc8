//! Shared test helpers: a population, the departments and a gateway on port 0.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use gateway::audit::AuditLog;
use gateway::auth::{Authenticator, Role, SigningKey};
use gateway::clock::ManualClock;
use gateway::config::{EmbeddedSource, LoadOptions};
use gateway::county::{COUNTY_CONFIG, COUNTY_FILES};
use gateway::demo;
use gateway::live::Live;
use gateway::mask::PseudonymKey;
use gateway::startup::{Application, Settings};
use gateway::store::Storage;
use serde_json::{Value, json};
use sim::{Department, Faults, Population, SimServer};
use tokio::sync::oneshot;

/// A population shared by every test of this binary (read-only, so no test depends
/// on another). Smaller than the demo's to keep debug builds quick.
pub(crate) fn population() -> &'static Arc<Population> {
    connectors::install_crypto_provider();
    static POPULATION: OnceLock<Arc<Population>> = OnceLock::new();
    POPULATION.get_or_init(|| Arc::new(Population::generate(2026, 2_000)))
}

/// The township of the default caller, a clerk of 东岭镇.
pub(crate) const TOWNSHIP: &str = "139901101";

/// A sample resident registered in [`TOWNSHIP`], so row conditions hold for the
/// default caller.
pub(crate) fn sample(kind: sim::SampleKind) -> &'static sim::Person {
    population()
        .sample_in(kind, TOWNSHIP)
        .expect("the township has every sample kind")
}

/// POSTs JSON with a bearer token to a URL and reads the answer.
pub(crate) async fn post_json(url: &str, token: &str, body: &Value) -> Reply {
    let request = client().post(url).bearer_auth(token).json(body);
    Reply::read(request.send().await.expect("an answer")).await
}

/// A plain HTTP client for talking to the gateway. (Not shared between tests: each
/// test has its own runtime, and pooled connections must not outlive theirs.)
pub(crate) fn client() -> reqwest::Client {
    connectors::install_crypto_provider();
    reqwest::Client::new()
}

/// The departments and a gateway in front of them.
pub(crate) struct TestGateway {
    pub(crate) addr: SocketAddr,
    /// Signs tokens the gateway trusts.
    pub(crate) issuer: SigningKey,
    pub(crate) departments: Vec<SimServer>,
    pub(crate) client: reqwest::Client,
    pub(crate) data_dir: tempfile::TempDir,
    /// The gateway's clock: tests move it forward instead of waiting.
    pub(crate) clock: Arc<ManualClock>,
    /// The gateway's shared state, for tests that run a background task's pass by hand.
    pub(crate) app: gateway::app::App,
    _stop: oneshot::Sender<()>,
}

impl TestGateway {
    /// The demo county as it is in the repository.
    pub(crate) async fn start() -> TestGateway {
        TestGateway::start_with(|_, text| text.to_owned()).await
    }

    /// The demo county with its files edited by `edit(path, text)`.
    pub(crate) async fn start_with(edit: impl Fn(&str, &str) -> String) -> TestGateway {
        TestGateway::start_full(edit, None).await
    }

    /// The demo county with its files edited, recording into `audit` (the default:
    /// a real SQLite audit log in the test's data dir).
    pub(crate) async fn start_full(
        edit: impl Fn(&str, &str) -> String,
        audit: Option<Arc<dyn AuditLog>>,
    ) -> TestGateway {
        TestGateway::start_inner(edit, audit, None).await
    }

    /// The demo county with the console's sign-in through `oidc` as well.
    pub(crate) async fn start_with_oidc(oidc: gateway::oidc::OidcClient) -> TestGateway {
        TestGateway::start_inner(|_, text| text.to_owned(), None, Some(oidc)).await
    }

    async fn start_inner(
        edit: impl Fn(&str, &str) -> String,
        audit: Option<Arc<dyn AuditLog>>,
        oidc: Option<gateway::oidc::OidcClient>,
    ) -> TestGateway {
        connectors::install_crypto_provider();
        let departments = sim::spawn_all(population().clone(), [127, 0, 0, 1].into())
            .await
            .expect("departments start");
        let files = COUNTY_FILES
            .iter()
            .map(|(path, text)| (*path, edit(path, text)));
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (issuer, _, public_pem) = SigningKey::generate_es256(demo::ISSUER).expect("key");
        let public = data_dir.path().join("issuer.pub.pem");
        std::fs::write(&public, public_pem).expect("write the public key");
        let auth = demo::auth_config(&public).expect("auth section");
        // The civil-affairs department's front database, as the demo writes it.
        let front = demo::write_front_database(population().clone(), &data_dir.path().join("data"))
            .await
            .expect("the front database is written");
        let options = LoadOptions {
            base_urls: departments
                .iter()
                .map(|d| (d.department.id().to_owned(), d.base_url()))
                .collect(),
            front_paths: [(
                (
                    demo::FRONT_DEPARTMENT.to_owned(),
                    demo::FRONT_DATABASE.to_owned(),
                ),
                front,
            )]
            .into(),
            auth: Some(auth),
            data_dir: Some(data_dir.path().join("data")),
            ..LoadOptions::default()
        };
        let files: Vec<(&str, String)> = files.collect();
        let storage = Storage::sqlite(data_dir.path().join("data"));
        let registry = storage.registry().expect("registry opens");
        let live = Arc::new(Live::new(
            Arc::new(EmbeddedSource::new(files)),
            COUNTY_CONFIG,
            options,
            registry,
        ));
        let cfg = live.load().await.expect("the county config loads");
        let authenticator = Authenticator::new(&cfg.auth, data_dir.path())
            .await
            .expect("the issuer loads");
        let pseudonym = PseudonymKey::new(&[42u8; 32]).expect("key");
        let clock = Arc::new(ManualClock::default());
        let gateway = Application::build(Settings {
            live,
            config: cfg,
            auth: authenticator,
            pseudonym,
            listen: ([127, 0, 0, 1], 0).into(),
            metrics_listen: None,
            tls: None,
            witness_clients: Vec::new(),
            audit,
            clock: Some(clock.clone()),
            storage,
            console: gateway::console::Options {
                demo: Some(demo::console_sign_in(issuer.clone())),
                oidc,
                ..gateway::console::Options::default()
            },
        })
        .await
        .expect("the gateway starts");
        let addr = gateway.addr();
        let app = gateway.app().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway.run_until(async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            issuer,
            departments,
            client: client(),
            data_dir,
            clock,
            app,
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

    /// A token for a caller with this role in this township; a grid worker serves
    /// every village of the township (see [`TestGateway::token_in_villages`]).
    pub(crate) fn token(&self, role: Role, township: Option<&'static str>) -> String {
        let villages: Vec<String> = match township {
            Some(t) if role.needs_villages() => population()
                .townships
                .iter()
                .filter(|place| place.code == t)
                .flat_map(|place| place.villages.iter().map(|v| v.code.clone()))
                .collect(),
            _ => Vec::new(),
        };
        self.token_in_villages(role, township, &villages)
    }

    /// A token for a caller with this role in this township, serving these villages.
    pub(crate) fn token_in_villages(
        &self,
        role: Role,
        township: Option<&str>,
        villages: &[String],
    ) -> String {
        let claims = gateway::auth::MintClaims {
            iss: demo::ISSUER.to_owned(),
            aud: demo::AUDIENCE.to_owned(),
            sub: role.as_str().to_owned(),
            roles: vec![role],
            township: township.map(str::to_owned),
            villages: villages.to_vec(),
            department: (role == Role::DeptAdmin).then(|| "county-psb".to_owned()),
            app: None,
            ttl_s: demo::TOKEN_TTL_S,
            not_before_s: None,
        };
        gateway::auth::mint(&self.issuer, &claims).expect("a token")
    }

    /// POSTs a lookup as a clerk of [`TOWNSHIP`].
    pub(crate) async fn query(&self, body: &Value) -> Reply {
        self.query_as(&self.token(Role::Clerk, Some(TOWNSHIP)), body)
            .await
    }

    /// POSTs a lookup with this bearer token.
    pub(crate) async fn query_as(&self, token: &str, body: &Value) -> Reply {
        post_json(&self.url("/v1/query"), token, body).await
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
            .bearer_auth(self.token(Role::Clerk, Some(TOWNSHIP)))
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
    /// The `Audit-Event` header: the audit events the answer is bound to.
    pub(crate) audit_event: Option<String>,
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
        let audit_event = response
            .headers()
            .get("audit-event")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
            audit_event,
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

/// Edits a configuration text for a test, and fails the test when the text to
/// replace is not there (a test whose edit silently did nothing would test the
/// unedited county).
pub(crate) trait Edit {
    fn edit(&self, from: &str, to: &str) -> String;
}

impl Edit for str {
    #[track_caller]
    fn edit(&self, from: &str, to: &str) -> String {
        assert!(
            self.contains(from),
            "the test edits text that is not there: {from:?}"
        );
        self.replace(from, to)
    }
}

/// The text of one of the county's files as the demo embeds it
/// (`county/connectors/hukou.yaml`, `schemas/hukou/person.schema.json`, …).
pub(crate) fn county_file(path: &str) -> &'static str {
    gateway::county::COUNTY_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
        .expect("the county has the file")
}
