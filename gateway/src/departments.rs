//! The county's departments as the operator configures them in `gateway.yaml`: each
//! department's id, its display name, and the upstreams — the base URLs of its own
//! systems — that its connectors may call (invariant 10, "departments own their
//! upstreams").
//!
//! ```yaml
//! departments:
//!   - id: county-psb
//!     name: 县公安局
//!     upstreams:
//!       - https://10.1.2.3:8443/rkxx   # scheme, host, port and path prefix
//! ```
//!
//! A connector names its department by id; the name users see comes from here, never
//! from the connector definition. Every URL a connector would call — each operation's
//! base URL plus path, resolved as the HTTP client resolves it — must lie under one of
//! its department's upstreams: same scheme, same host (an IP literal does not stand in
//! for a listed name, nor the other way round), same port, and a path under the
//! upstream's path prefix (on a segment boundary). Anything else is refused at `gateway
//! check`, `gateway apply` and registration through the API alike, whatever the
//! connector's field labels say. URLs with credentials in them are refused too.
//!
//! A department whose systems have no API shares through a front database (前置库)
//! instead: the operator declares it, by a name its `kind: sql` connectors use, and
//! where it is —
//!
//! ```yaml
//!     front_databases:
//!       minzheng_front: { driver: sqlite, path: front/minzheng.db, pool: 4 }
//!       # or a server: MySQL/MariaDB (`mysql`) or PostgreSQL (`postgres`)
//!       renshe_front:
//!         driver: mysql
//!         url_env: RENSHE_FRONT_URL        # mysql://gw_reader:…@10.1.2.9:3306/front
//!         tls_ca_file: certs/renshe-ca.pem # TLS is required off the loopback interface
//!         statement_timeout_ms: 3000
//! ```
//!
//! so that a connector's author never says where a database is, and no connector
//! reads another department's database (or the gateway's own). A server's address
//! may carry a password only from the environment (`url_env`) or a file of its own
//! (`url_file`), never written in `gateway.yaml`.
//!
//! This module owns the configuration and the check; the config loader applies it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One department as `gateway.yaml` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentConfig {
    /// Stable id, as connectors and department admins' tokens name it.
    pub id: String,
    /// The name users see, e.g. 县公安局.
    pub name: String,
    /// Base URLs of the department's own systems: its connectors call nothing else.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// The department's front databases, by the name its `kind: sql` connectors use.
    #[serde(default)]
    pub front_databases: BTreeMap<String, FrontDatabaseConfig>,
}

/// Where one front database is and how it is reached.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontDatabaseConfig {
    pub driver: FrontDriver,
    /// `sqlite`: the file, relative to `gateway.yaml`.
    #[serde(default)]
    pub path: Option<std::path::PathBuf>,
    /// `mysql`, `postgres`: the server's address, written here (without a password).
    #[serde(default)]
    pub url: Option<String>,
    /// … or read from this environment variable at start.
    #[serde(default)]
    pub url_env: Option<String>,
    /// … or from this file (one line), relative to `gateway.yaml`.
    #[serde(default)]
    pub url_file: Option<std::path::PathBuf>,
    /// `mysql`, `postgres`: the CA bundle (PEM) the server's certificate must chain to.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// `mysql`, `postgres`: the server stops a statement running longer (100 ms –
    /// 10 min, default 5 s).
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
    /// Connections kept at most (1–64, default 4).
    #[serde(default)]
    pub pool: Option<usize>,
}

impl std::fmt::Debug for FrontDatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDatabaseConfig")
            .field("driver", &self.driver)
            .field("path", &self.path)
            .field("url", &self.server().map(|s| s.describe()))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("pool", &self.pool)
            .finish()
    }
}

/// The database a front database is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontDriver {
    /// A SQLite file (the demo's; a county's smallest setup).
    Sqlite,
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

impl FrontDatabaseConfig {
    /// The connections kept at most.
    pub fn pool(&self) -> usize {
        self.pool.unwrap_or(4)
    }

    /// The server's statement time limit.
    pub fn statement_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.statement_timeout_ms.unwrap_or(5_000))
    }

    /// Where a server's address comes from (`None` for a file).
    pub fn server(&self) -> Option<crate::secrets::ServerUrl> {
        (self.driver != FrontDriver::Sqlite).then(|| crate::secrets::ServerUrl {
            url: self.url.clone(),
            url_env: self.url_env.clone(),
            url_file: self.url_file.clone(),
        })
    }

    fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        let server_settings = self.url.is_some()
            || self.url_env.is_some()
            || self.url_file.is_some()
            || self.tls_ca_file.is_some()
            || self.statement_timeout_ms.is_some();
        match (self.driver, self.server()) {
            (FrontDriver::Sqlite, _) => {
                if self.path.is_none() {
                    problems.push(("path", "a SQLite front database needs `path`"));
                }
                if server_settings {
                    problems.push((
                        "driver",
                        "a SQLite file has a `path`, not a server's `url`, TLS or statement time limit",
                    ));
                }
            }
            (_, Some(server)) => {
                if self.path.is_some() {
                    problems.push((
                        "path",
                        "a server's front database has a `url`, not a `path`",
                    ));
                }
                if let Some(problem) = server.problem() {
                    problems.push(("url", problem));
                }
                let written_password = self
                    .url
                    .as_deref()
                    .is_some_and(|url| url::Url::parse(url).is_ok_and(|u| u.password().is_some()));
                if written_password {
                    problems.push((
                        "url",
                        "must not carry a password in gateway.yaml: give the address through `url_env` or `url_file`",
                    ));
                }
                if self
                    .statement_timeout_ms
                    .is_some_and(|ms| !(100..=600_000).contains(&ms))
                {
                    problems.push(("statement_timeout_ms", "must be 100 to 600000 ms"));
                }
            }
            (_, None) => {}
        }
        if self.pool.is_some_and(|n| n == 0 || n > 64) {
            problems.push(("pool", "must be 1 to 64 connections"));
        }
        problems
    }
}

/// One allowed upstream: scheme, host, port and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: String,
    host: String,
    port: u16,
    /// Without a trailing `/`; empty for the whole host.
    path: String,
}

impl Upstream {
    /// The host and port its connections go to.
    pub fn address(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Reads an upstream from its URL; the problem says what is wrong with it.
    pub fn parse(text: &str) -> Result<Upstream, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or a fragment".to_owned());
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err("must name a host".to_owned());
        };
        Ok(Upstream {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port,
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// Whether `url` lies under this upstream.
    pub fn covers(&self, url: &reqwest::Url) -> bool {
        let path = url.path();
        let under = path == self.path
            || (path.starts_with(&self.path) && path[self.path.len()..].starts_with('/'));
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
            && url.username().is_empty()
            && url.password().is_none()
            && under
    }
}

/// One department, ready to check against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub upstreams: Vec<Upstream>,
    pub front_databases: BTreeMap<String, FrontDatabaseConfig>,
}

/// Every configured department, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Departments {
    by_id: BTreeMap<String, Department>,
}

/// Why a connector may not call a URL. Never carries the URL itself: it is a
/// department admin's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamRefusal {
    #[error("department `{0}` is not one of the county's departments (gateway.yaml `departments`)")]
    UnknownDepartment(String),
    #[error(
        "is not an upstream of department `{0}`: its connectors call only the URLs gateway.yaml lists for it (`departments[].upstreams`)"
    )]
    NotListed(String),
}

impl Departments {
    /// Builds the departments from `gateway.yaml`, collecting every problem as
    /// (path, message).
    pub fn build(list: &[DepartmentConfig]) -> (Departments, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let mut by_id = BTreeMap::new();
        for (i, dept) in list.iter().enumerate() {
            let at = |rest: &str| format!("departments[{i}].{rest}");
            if !connectors::definition::is_identifier(&dept.id) {
                problems.push((
                    at("id"),
                    "must be 1–64 characters of a-z, 0-9, `_` or `-`, starting with a letter"
                        .to_owned(),
                ));
            }
            if dept.name.trim().is_empty() || dept.name.chars().count() > 100 {
                problems.push((at("name"), "must be 1 to 100 characters".to_owned()));
            }
            let mut upstreams = Vec::new();
            for (j, text) in dept.upstreams.iter().enumerate() {
                match Upstream::parse(text) {
                    Ok(upstream) => upstreams.push(upstream),
                    Err(message) => problems.push((at(&format!("upstreams[{j}]")), message)),
                }
            }
            for (name, front) in &dept.front_databases {
                if !connectors::sql::select::is_identifier(name) {
                    problems.push((
                        at("front_databases"),
                        "names a front database with something other than a plain identifier"
                            .to_owned(),
                    ));
                }
                for (key, message) in front.problems() {
                    problems.push((at(&format!("front_databases.{name}.{key}")), message.into()));
                }
            }
            let department = Department {
                id: dept.id.clone(),
                name: dept.name.clone(),
                upstreams,
                front_databases: dept.front_databases.clone(),
            };
            if by_id.insert(dept.id.clone(), department).is_some() {
                problems.push((at("id"), format!("a second department `{}`", dept.id)));
            }
        }
        (Departments { by_id }, problems)
    }

    pub fn get(&self, id: &str) -> Option<&Department> {
        self.by_id.get(id)
    }

    /// Puts department `id`'s SQLite front database `name` at `path` (the demo's, in
    /// its data directory); a name it does not declare is left alone.
    pub fn place_front_database(&mut self, id: &str, name: &str, path: &std::path::Path) {
        if let Some(front) = self
            .by_id
            .get_mut(id)
            .and_then(|d| d.front_databases.get_mut(name))
        {
            front.path = Some(path.to_owned());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Department> {
        self.by_id.values()
    }

    /// Adds an upstream the operator's own tooling set (the demo's simulated systems,
    /// which listen where the operating system puts them).
    pub fn allow(&mut self, department: &str, upstream: Upstream) {
        if let Some(dept) = self.by_id.get_mut(department)
            && !dept.upstreams.contains(&upstream)
        {
            dept.upstreams.push(upstream);
        }
    }

    /// Whether a connector of `department` may call `url`.
    pub fn check(&self, department: &str, url: &reqwest::Url) -> Result<(), UpstreamRefusal> {
        let dept = self
            .by_id
            .get(department)
            .ok_or_else(|| UpstreamRefusal::UnknownDepartment(department.to_owned()))?;
        if dept.upstreams.iter().any(|u| u.covers(url)) {
            Ok(())
        } else {
            Err(UpstreamRefusal::NotListed(department.to_owned()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn county() -> Departments {
        let (departments, problems) = Departments::build(&[
            DepartmentConfig {
                id: "county-psb".into(),
                name: "县公安局".into(),
                upstreams: vec!["https://psb.county.example:8443/rkxx/".into()],
                front_databases: BTreeMap::new(),
            },
            DepartmentConfig {
                id: "county-hrss".into(),
                name: "县人力资源和社会保障局".into(),
                upstreams: vec!["http://10.1.2.3:18102".into()],
                front_databases: BTreeMap::new(),
            },
        ]);
        assert_eq!(problems, vec![]);
        departments
    }

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).unwrap()
    }

    #[test]
    fn a_department_reaches_its_own_upstreams() {
        let d = county();
        assert_eq!(
            d.check(
                "county-psb",
                &url("https://psb.county.example:8443/rkxx/api/v1/person")
            ),
            Ok(())
        );
        assert_eq!(
            d.check("county-psb", &url("https://PSB.county.example:8443/rkxx")),
            Ok(())
        );
        assert_eq!(
            d.check("county-hrss", &url("http://10.1.2.3:18102/si/q")),
            Ok(())
        );
    }

    #[test]
    fn another_departments_upstream_and_every_variant_is_refused() {
        let d = county();
        let refused = |dept: &str, u: &str| d.check(dept, &url(u)).is_err();
        // The attack: 公安局's connector at 人社局's system.
        assert!(refused("county-psb", "http://10.1.2.3:18102/si/q"));
        // Same host, other path (also through `..` and its encoded form).
        assert!(refused(
            "county-psb",
            "https://psb.county.example:8443/other"
        ));
        assert!(refused(
            "county-psb",
            "https://psb.county.example:8443/rkxxevil/x"
        ));
        assert!(refused(
            "county-psb",
            "https://psb.county.example:8443/rkxx/../admin"
        ));
        assert!(refused(
            "county-psb",
            "https://psb.county.example:8443/rkxx/%2e%2e/admin"
        ));
        // Other port, other scheme, credentials.
        assert!(refused(
            "county-psb",
            "https://psb.county.example:9443/rkxx/x"
        ));
        assert!(refused(
            "county-psb",
            "http://psb.county.example:8443/rkxx/x"
        ));
        assert!(refused(
            "county-psb",
            "https://u:p@psb.county.example:8443/rkxx/x"
        ));
        // An IP literal for the listed name, loopback, link-local and metadata.
        assert!(refused("county-psb", "https://10.9.9.9:8443/rkxx/x"));
        assert!(refused("county-psb", "https://127.0.0.1:8443/rkxx/x"));
        assert!(refused(
            "county-psb",
            "http://169.254.169.254/latest/meta-data"
        ));
        // A department that is not configured.
        assert_eq!(
            d.check("county-xx", &url("http://10.1.2.3:18102/")),
            Err(UpstreamRefusal::UnknownDepartment("county-xx".into()))
        );
    }

    #[test]
    fn front_databases_are_checked_by_name_driver_path_and_pool() {
        let yaml = "
id: county-mca
name: 县民政局
front_databases:
  good: { driver: sqlite, path: front/mz.db }
  no_path: { driver: sqlite }
  big: { driver: sqlite, path: x.db, pool: 500 }
  \"bad name\": { driver: sqlite, path: x.db }
  file_with_url: { driver: sqlite, path: x.db, url: \"mysql://gw@h/db\" }
  server: { driver: mysql, url_env: MCA_FRONT_URL, statement_timeout_ms: 2000 }
  no_url: { driver: postgres }
  two_urls: { driver: postgres, url: \"postgres://gw@h/db\", url_env: X }
  password: { driver: mysql, url: \"mysql://gw:s3cret@h/db\" }
  server_path: { driver: mysql, url: \"mysql://gw@h/db\", path: x.db }
  slow: { driver: postgres, url: \"postgres://gw@h/db\", statement_timeout_ms: 5 }
";
        let dept: DepartmentConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let (departments, problems) = Departments::build(&[dept]);
        let at: Vec<&str> = problems.iter().map(|(at, _)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                "departments[0].front_databases",
                "departments[0].front_databases.big.pool",
                "departments[0].front_databases.file_with_url.driver",
                "departments[0].front_databases.no_path.path",
                "departments[0].front_databases.no_url.url",
                "departments[0].front_databases.password.url",
                "departments[0].front_databases.server_path.path",
                "departments[0].front_databases.slow.statement_timeout_ms",
                "departments[0].front_databases.two_urls.url",
            ]
        );
        for (_, message) in &problems {
            assert!(
                !message.contains("bad name") && !message.contains("s3cret"),
                "{message}"
            );
        }
        let mca = departments.get("county-mca").unwrap();
        assert_eq!(mca.front_databases["good"].pool(), 4);
        let server = &mca.front_databases["server"];
        assert_eq!(server.statement_timeout().as_millis(), 2000);
        // Its Debug shows where the address comes from, never a password.
        assert!(!format!("{:?}", mca.front_databases["password"]).contains("s3cret"));
        // Only the drivers the gateway reads, and nothing unknown.
        for bad in [
            "id: x\nname: x\nfront_databases: { a: { driver: oracle, path: x } }",
            "id: x\nname: x\nfront_databases: { a: { driver: sqlite, path: x, sql: y } }",
        ] {
            assert!(
                serde_yaml_ng::from_str::<DepartmentConfig>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_entries_are_problems_with_their_paths() {
        let (_, problems) = Departments::build(&[DepartmentConfig {
            id: "Bad Id".into(),
            name: " ".into(),
            upstreams: vec!["ftp://x".into(), "http://a:b@x".into(), "nope".into()],
            front_databases: BTreeMap::new(),
        }]);
        let at: Vec<&str> = problems.iter().map(|(at, _)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                "departments[0].id",
                "departments[0].name",
                "departments[0].upstreams[0]",
                "departments[0].upstreams[1]",
                "departments[0].upstreams[2]",
            ]
        );
    }
}
