//! Front databases (前置库) as `gateway check` sees them: every operation of every
//! `kind: sql` connector runs its statement once, with a key that matches nobody, so
//! that a table renamed or a column gone shows before a clerk meets it; and a front
//! database the gateway could write to — a SQLite file it may open for writing, a
//! database user with a write privilege — is a warning (sessions are read-only all
//! the same).
//! What the database said is never shown, only the kind of fault.

use connectors::definition::Transport;
use connectors::sql::Front;
use connectors::{FetchContext, FetchError};

use crate::config::ActiveConfig;

/// What the check found: errors (a statement that does not run) and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FrontReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Statements that ran.
    pub checked: usize,
}

/// Runs every front-database statement of `cfg` once and looks at its files.
pub async fn check(cfg: &ActiveConfig) -> FrontReport {
    let mut report = FrontReport::default();
    for (id, active) in &cfg.connectors {
        if !matches!(active.def.transport, Transport::Sql(_)) {
            continue;
        }
        for operation in active.def.operations.keys() {
            match active
                .connector
                .fetch(operation, "", &FetchContext::default())
                .await
            {
                Ok(_) | Err(FetchError::NotFound) => report.checked += 1,
                Err(e) => report
                    .errors
                    .push(format!("connector `{id}`, operation `{operation}`: {e}")),
            }
        }
    }
    for ((department, name), front) in &cfg.fronts {
        let writable = front.could_write(std::time::Duration::from_secs(5)).await;
        match (writable, front.as_ref()) {
            (Ok(false), _) => {}
            (Ok(true), Front::Sqlite(_)) => report.warnings.push(format!(
                "department `{department}` front database `{name}`: the gateway could write to this file; give it read access only"
            )),
            (Ok(true), _) => report.warnings.push(format!(
                "department `{department}` front database `{name}`: the gateway's database user may change the database (a write privilege, or a superuser); give it SELECT on the exported tables and views only"
            )),
            // The statements above already said why it could not be reached.
            (Err(fault), _) => report.warnings.push(format!(
                "department `{department}` front database `{name}`: cannot tell whether the gateway could write to it ({fault})"
            )),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{county_with_front_database, load_files};

    /// `gateway.yaml` with the civil-affairs front database written into `dir`, so
    /// that only the test's own front database can fail.
    fn with_minzheng(text: &str, dir: &std::path::Path) -> String {
        let path = dir.join("minzheng.db");
        if !path.exists() {
            let population = sim::Population::generate(sim::population::DEMO_SEED, 500);
            sim::minzheng::write_sqlite(&population, &path).expect("the civil-affairs export");
        }
        text.replace(
            "path: ../data/front/minzheng.db",
            &format!("path: {}", path.display()),
        )
    }

    #[tokio::test]
    async fn a_front_database_is_checked_statement_by_statement_and_for_write_access() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("front.db");
        let sql = rusqlite::Connection::open(&db).expect("open");
        sql.execute_batch(
            "CREATE TABLE t (aac002 TEXT); CREATE VIEW v_insured AS SELECT aac002 FROM t;",
        )
        .expect("export");
        let county = || {
            county_with_front_database(|text| {
                with_minzheng(text, dir.path()).replace(
                    "    upstreams: [http://127.0.0.1:18102]",
                    &format!(
                        "    upstreams: [http://127.0.0.1:18102]\n    front_databases: {{ shebao_front: {{ driver: sqlite, path: {} }} }}",
                        db.display()
                    ),
                )
            })
        };
        let cfg = load_files(county()).expect("loads");
        let report = check(&cfg).await;
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(report.checked > 0);
        // The test runs as a user who may write the file: said once, by name only.
        if std::fs::OpenOptions::new().write(true).open(&db).is_ok() {
            let shebao: Vec<_> = report
                .warnings
                .iter()
                .filter(|w| w.contains("shebao_front"))
                .collect();
            assert_eq!(shebao.len(), 1, "{report:?}");
            assert!(!shebao[0].contains(&db.display().to_string()));
        }
        // The department renames the view: every statement on it is an error.
        sql.execute_batch("DROP VIEW v_insured; CREATE VIEW v_insured2 AS SELECT aac002 FROM t;")
            .expect("renamed");
        let report = check(&cfg).await;
        assert!(!report.errors.is_empty(), "{report:?}");
        assert!(
            report
                .errors
                .iter()
                .all(|e| e.contains("not what the connector declares") && !e.contains("v_insured")),
            "{report:?}"
        );
    }

    /// The county with 人社's connector on a server's front database, its export in
    /// `schema`.
    fn county_on_server(
        driver: &str,
        url: &str,
        schema: &str,
        dir: &std::path::Path,
    ) -> Vec<(&'static str, String)> {
        county_with_front_database(|text| {
            with_minzheng(text, dir).replace(
                "    upstreams: [http://127.0.0.1:18102]",
                &format!(
                    "    upstreams: [http://127.0.0.1:18102]\n    front_databases: {{ shebao_front: {{ driver: {driver}, url: \"{url}\", statement_timeout_ms: 2000 }} }}"
                ),
            )
        })
        .into_iter()
        .map(|(path, text)| (path, text.replace("from: v_insured", &format!("from: {schema}.v_insured"))))
        .collect()
    }

    #[tokio::test]
    async fn a_server_front_database_is_checked_and_a_user_who_may_write_is_a_warning() {
        use mysql_async::prelude::Queryable;
        let dir = tempfile::tempdir().expect("temp dir");
        let on_server = |report: &FrontReport| -> Vec<String> {
            report
                .warnings
                .iter()
                .filter(|w| w.contains("shebao_front"))
                .cloned()
                .collect()
        };
        if let Some(url) = testkit::services::mariadb("front::tests (MariaDB)").await {
            let schema = testkit::services::schema_name();
            let mut admin = mysql_async::Conn::from_url(&url).await.expect("MariaDB");
            admin
                .query_drop(format!(
                    "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (aac002 VARCHAR(18));
                     CREATE VIEW {schema}.v_insured AS SELECT aac002 FROM {schema}.t"
                ))
                .await
                .expect("export");
            let cfg =
                load_files(county_on_server("mysql", &url, &schema, dir.path())).expect("loads");
            let report = check(&cfg).await;
            assert!(report.errors.is_empty(), "{report:?}");
            assert!(report.checked > 0);
            let warnings = on_server(&report);
            assert_eq!(warnings.len(), 1, "root may write: {report:?}");
            assert!(warnings[0].contains("database user may change"));
            assert!(!warnings[0].contains("127.0.0.1"), "{report:?}");
            admin
                .query_drop(format!("DROP DATABASE {schema}"))
                .await
                .expect("dropped");
        }
        if let Some(url) = testkit::services::postgres("front::tests (PostgreSQL)").await {
            let schema = testkit::services::schema_name();
            let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL");
            tokio::spawn(connection);
            admin
                .batch_execute(&format!(
                    "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (aac002 TEXT);
                     CREATE VIEW {schema}.v_insured AS SELECT aac002 FROM {schema}.t"
                ))
                .await
                .expect("export");
            let cfg =
                load_files(county_on_server("postgres", &url, &schema, dir.path())).expect("loads");
            let report = check(&cfg).await;
            assert!(report.errors.is_empty(), "{report:?}");
            assert!(report.checked > 0);
            assert_eq!(
                on_server(&report).len(),
                1,
                "the superuser may write: {report:?}"
            );
            // The department drops its view: the statement is an error, by kind.
            admin
                .batch_execute(&format!("DROP VIEW {schema}.v_insured"))
                .await
                .expect("dropped");
            let report = check(&cfg).await;
            assert!(
                report
                    .errors
                    .iter()
                    .any(|e| e.contains("not what the connector declares")),
                "{report:?}"
            );
            admin
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("dropped");
        }
    }
}
