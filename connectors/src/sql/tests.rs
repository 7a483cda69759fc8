//! The front-database kind against real databases — a SQLite file, MariaDB and
//! PostgreSQL (the servers of `.ci/run`; a plain `cargo test` without them says it
//! skipped) — through one suite: mapping through the shared engine, not found, two
//! rows for one person, lists and their bound, a key carrying SQL, a slow view, a
//! column renamed, retyped or gone; then the faults of reaching a server, read-only
//! sessions, and the definition's own checks.

use std::sync::Arc;

use serde_json::json;

use super::mysql::MysqlFront;
use super::postgres::PostgresFront;
use super::server::ServerSettings;
use super::sqlite::SqliteFront;
use super::{Front, FrontError, SqlConnector, SqlSettings};
use crate::definition::{ConnectorDef, Transport};
use crate::{Connector, FetchContext, FetchError};

const DEFINITION: &str = r#"
id: minzheng
title: 民政前置库
department: { id: county-mca }
kind: sql
database: minzheng_front
timeouts: { connect_ms: 200, total_ms: 200 }
code_tables:
  dibao: { "1": receiving, "0": stopped }
operations:
  dibao_by_id:
    title: 低保状态
    subject: id_number
    select: { from: v_dibao, key: sfzh, columns: [sfzh, xm, dbzt, ye] }
    schema: minzheng/dibao.schema.json
    record:
      id_number: { from: /sfzh, pii: id_number, sharing: open }
      name: { from: /xm, pii: name, sharing: conditional }
      status: { from: /dbzt, transform: { code: dibao }, pii: code, sharing: conditional }
      monthly_yuan: { from: /ye, transform: number, pii: money, sharing: conditional }
  dibao_history:
    title: 低保历史
    subject: id_number
    select: { from: v_history, key: sfzh, columns: [ksrq, jsrq], rows: many, order_by: [ksrq], max_rows: 3 }
    schema: minzheng/history.schema.json
    record:
      periods:
        from: /rows
        items:
          from_date: { from: /ksrq, transform: { date: "%Y-%m-%d" }, pii: date, sharing: conditional }
          to_date: { from: /jsrq, transform: { date: "%Y-%m-%d" }, pii: date, sharing: conditional }
  slow:
    title: 慢视图
    subject: id_number
    select: { from: v_slow, key: sfzh, columns: [sfzh] }
    schema: minzheng/dibao.schema.json
    record:
      id_number: { from: /sfzh, pii: id_number, sharing: open }
"#;

const A: &str = "13990119750327229X";
const B: &str = "139901198001010014";
const TWICE: &str = "139901199002020027";

/// Where the export lives: one of the three kinds of database, with a connection
/// of the department's own (which may write) to set it up and change it.
enum Export {
    Sqlite(tempfile::TempDir),
    Mysql {
        admin: mysql_async::Conn,
        url: String,
        schema: String,
    },
    Postgres {
        admin: tokio_postgres::Client,
        url: String,
        schema: String,
    },
}

impl Export {
    async fn sqlite() -> Export {
        Export::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    async fn mysql(test: &str) -> Option<Export> {
        use mysql_async::prelude::Queryable;
        let url = testkit::services::mariadb(test).await?;
        let mut admin = mysql_async::Conn::from_url(&url).await.expect("MariaDB");
        let schema = testkit::services::schema_name();
        admin
            .query_drop(format!("CREATE DATABASE {schema}"))
            .await
            .expect("a database");
        admin
            .query_drop(format!("USE {schema}"))
            .await
            .expect("use it");
        Some(Export::Mysql { admin, url, schema })
    }

    async fn postgres(test: &str) -> Option<Export> {
        let url = testkit::services::postgres(test).await?;
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL");
        tokio::spawn(connection);
        let schema = testkit::services::schema_name();
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema}"
            ))
            .await
            .expect("a schema");
        Some(Export::Postgres { admin, url, schema })
    }

    /// Runs the department's statements (`;`-separated).
    async fn run(&mut self, sql: &str) {
        match self {
            Export::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("front.db"))
                .and_then(|db| db.execute_batch(sql))
                .expect("the export"),
            Export::Mysql { admin, .. } => {
                use mysql_async::prelude::Queryable;
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    admin.query_drop(statement).await.expect("the export");
                }
            }
            Export::Postgres { admin, .. } => admin.batch_execute(sql).await.expect("the export"),
        }
    }

    fn dialect(&self) -> super::Dialect {
        match self {
            Export::Sqlite(_) => super::Dialect::Sqlite,
            Export::Mysql { .. } => super::Dialect::Mysql,
            Export::Postgres { .. } => super::Dialect::Postgres,
        }
    }

    /// The gateway's read-only front database, with a server time limit of 300 ms.
    fn front(&self) -> Front {
        let settings = ServerSettings {
            pool: 2,
            statement_timeout: std::time::Duration::from_millis(300),
            tls_ca_file: None,
        };
        match self {
            Export::Sqlite(dir) => Front::Sqlite(SqliteFront::new(&dir.path().join("front.db"), 2)),
            Export::Mysql { url, schema, .. } => Front::Mysql(
                MysqlFront::new(&url.replace("/test", &format!("/{schema}")), settings)
                    .expect("a front"),
            ),
            Export::Postgres { url, .. } => {
                Front::Postgres(PostgresFront::new(url, &settings).expect("a front"))
            }
        }
    }

    /// The definition, reading this export's relations.
    fn definition(&self) -> String {
        match self {
            Export::Sqlite(_) => DEFINITION.to_owned(),
            // The server stops the slow view, well before the connector's own limit.
            Export::Mysql { schema, .. } | Export::Postgres { schema, .. } => DEFINITION
                .replace("from: v_", &format!("from: {schema}.v_"))
                .replace("total_ms: 200", "total_ms: 5000"),
        }
    }

    /// `table` as the gateway's connections name it.
    fn qualified(&self, table: &str) -> String {
        match self {
            Export::Sqlite(_) => table.to_owned(),
            Export::Mysql { schema, .. } | Export::Postgres { schema, .. } => {
                format!("{schema}.{table}")
            }
        }
    }

    fn connector(&self, front: Arc<Front>) -> SqlConnector {
        let def = ConnectorDef::from_yaml(&self.definition()).expect("the definition parses");
        assert!(def.validate().is_empty(), "{:?}", def.validate());
        SqlConnector::new(Arc::new(def), front).expect("builds")
    }

    async fn drop_schema(mut self) {
        let statement = match &self {
            Export::Sqlite(_) => return,
            Export::Mysql { schema, .. } => format!("DROP DATABASE {schema}"),
            Export::Postgres { schema, .. } => format!("DROP SCHEMA {schema} CASCADE"),
        };
        self.run(&statement).await;
    }
}

/// The department's export: a table and a view over it for each operation, one
/// person twice (a broken export), a list longer than the connector allows, and a
/// view that takes seconds per row.
fn export_sql(dialect: super::Dialect) -> String {
    let slow = match dialect {
        super::Dialect::Sqlite => {
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000000) SELECT d.sfzh FROM dibao d, n WHERE x = 1000000000"
        }
        super::Dialect::Mysql => "SELECT sfzh FROM dibao WHERE SLEEP(3) = 0",
        super::Dialect::Postgres => "SELECT d.sfzh FROM dibao d, (SELECT pg_sleep(3)) s",
    };
    format!(
        "CREATE TABLE dibao (sfzh VARCHAR(18), xm VARCHAR(40), dbzt VARCHAR(2), ye DECIMAL(10, 2));
         INSERT INTO dibao VALUES ('{A}', '邓俊浩', '1', 620.50), ('{TWICE}', '甲', '1', 1), ('{TWICE}', '乙', '0', 2);
         CREATE VIEW v_dibao AS SELECT sfzh, xm, dbzt, ye FROM dibao;
         CREATE TABLE history (sfzh VARCHAR(18), ksrq DATE, jsrq DATE);
         INSERT INTO history VALUES ('{A}', '2021-01-01', '2021-12-31'), ('{A}', '2020-01-01', '2020-12-31'),
           ('{B}', '2019-01-01', NULL), ('{B}', '2020-01-01', NULL), ('{B}', '2021-01-01', NULL), ('{B}', '2022-01-01', NULL);
         CREATE VIEW v_history AS SELECT sfzh, ksrq, jsrq FROM history;
         CREATE VIEW v_slow AS {slow}"
    )
}

/// After the export changed under it, the connector reads it again: at most one
/// lookup per pooled connection (two) meets the change, then every one succeeds.
async fn reads_again(c: &SqlConnector) {
    let none = FetchContext::default();
    let mut failed = 0;
    while c.fetch("dibao_by_id", A, &none).await.is_err() {
        failed += 1;
        assert!(failed <= 2, "the connector does not read the export again");
    }
    for _ in 0..3 {
        assert!(c.fetch("dibao_by_id", A, &none).await.is_ok());
    }
}

/// The suite every kind of front database passes.
async fn the_connector_suite(mut export: Export) {
    export.run(&export_sql(export.dialect())).await;
    let front = Arc::new(export.front());
    let c = export.connector(front.clone());
    let none = FetchContext::default();
    let found = c.fetch("dibao_by_id", A, &none).await.expect("a record");
    assert_eq!(
        found.record,
        json!({"id_number": A, "name": "邓俊浩", "status": "receiving", "monthly_yuan": 620.5})
    );
    assert_eq!(
        c.fetch("dibao_by_id", B, &none).await,
        Err(FetchError::NotFound)
    );
    // Two rows for one person: the export is broken, and nothing of either is shown.
    assert_eq!(
        c.fetch("dibao_by_id", TWICE, &none).await,
        Err(FetchError::FrontDatabase(FrontError::DuplicateRows))
    );
    // A key carrying SQL is a value like any other: it matches nobody.
    for hostile in [
        "' OR '1'='1",
        "x'; DROP TABLE dibao; --",
        "13990119750327229X' --",
        "\\'; DELETE FROM dibao; --",
    ] {
        assert_eq!(
            c.fetch("dibao_by_id", hostile, &none).await,
            Err(FetchError::NotFound)
        );
    }
    assert!(
        c.fetch("dibao_by_id", A, &none).await.is_ok(),
        "the table is still there"
    );
    // A list, in its declared order; more rows than it may have fail closed.
    let history = c.fetch("dibao_history", A, &none).await.expect("a list");
    assert_eq!(
        history.record["periods"],
        json!([
            {"from_date": "2020-01-01", "to_date": "2020-12-31"},
            {"from_date": "2021-01-01", "to_date": "2021-12-31"}
        ])
    );
    assert_eq!(
        c.fetch("dibao_history", B, &none).await,
        Err(FetchError::FrontDatabase(FrontError::TooManyRows))
    );
    // A slow view is stopped: by the server's statement time limit where there is a
    // server, by the connector's own limit for a file.
    assert_eq!(
        c.fetch("slow", A, &none).await,
        Err(FetchError::FrontDatabase(FrontError::Timeout))
    );
    assert!(
        c.fetch("dibao_by_id", A, &none).await.is_ok(),
        "the pool recovered"
    );
    assert_eq!(
        c.fetch("nope", A, &none).await,
        Err(FetchError::UnknownOperation)
    );

    // The gateway's connections, used many times by now, still cannot write.
    assert_eq!(
        front
            .try_write(&format!("DELETE FROM {}", export.qualified("dibao")))
            .await,
        Err(FrontError::Refused)
    );

    // The department renames a column under the running gateway: schema drift.
    export
        .run("DROP VIEW v_dibao; CREATE VIEW v_dibao AS SELECT sfzh, xm AS name, dbzt, ye FROM dibao")
        .await;
    assert_eq!(
        c.fetch("dibao_by_id", A, &none).await,
        Err(FetchError::FrontDatabase(FrontError::Drift))
    );
    // Or gives a column a type no personal record is exported as (binary).
    let binary = match export.dialect() {
        super::Dialect::Sqlite => "CAST(xm AS BLOB)",
        super::Dialect::Mysql => "CAST(xm AS BINARY)",
        super::Dialect::Postgres => "convert_to(xm, 'UTF8')",
    };
    export
        .run(&format!(
            "DROP VIEW v_dibao; CREATE VIEW v_dibao AS SELECT sfzh, {binary} AS xm, dbzt, ye FROM dibao"
        ))
        .await;
    assert_eq!(
        c.fetch("dibao_by_id", A, &none).await,
        Err(FetchError::FrontDatabase(FrontError::Drift))
    );
    // Or drops the view altogether.
    export.run("DROP VIEW v_dibao").await;
    assert_eq!(
        c.fetch("dibao_by_id", A, &none).await,
        Err(FetchError::FrontDatabase(FrontError::Drift))
    );
    // A column's type changed to one the gateway reads all the same (VARCHAR to
    // TEXT): at most one lookup per pooled connection meets the change, then the
    // connector reads the export again.
    export
        .run("CREATE VIEW v_dibao AS SELECT sfzh, CAST(xm AS CHAR(40)) AS xm, dbzt, ye FROM dibao")
        .await;
    reads_again(&c).await;
    // Once the department puts its export right, the same connector reads it again.
    export
        .run("DROP VIEW v_dibao; CREATE VIEW v_dibao AS SELECT sfzh, xm, dbzt, ye FROM dibao")
        .await;
    reads_again(&c).await;
    export.drop_schema().await;
}

#[tokio::test]
async fn the_suite_on_a_sqlite_file() {
    the_connector_suite(Export::sqlite().await).await;
}

#[tokio::test]
async fn the_suite_on_mariadb() {
    if let Some(export) = Export::mysql("sql::tests::the_suite_on_mariadb").await {
        the_connector_suite(export).await;
    }
}

#[tokio::test]
async fn the_suite_on_postgresql() {
    if let Some(export) = Export::postgres("sql::tests::the_suite_on_postgresql").await {
        the_connector_suite(export).await;
    }
}

#[tokio::test]
async fn faults_of_reaching_a_server_are_named_by_kind() {
    let none = FetchContext::default();
    let port = testkit::services::free_port();
    let settings = ServerSettings {
        pool: 1,
        statement_timeout: std::time::Duration::from_millis(300),
        tls_ca_file: None,
    };
    let def = Arc::new(ConnectorDef::from_yaml(DEFINITION).expect("parses"));
    let fetch = |front: Front| {
        let def = def.clone();
        async move {
            let c = SqlConnector::new(def, Arc::new(front)).expect("builds");
            c.fetch("dibao_by_id", A, &FetchContext::default()).await
        }
    };
    // Nothing listens: unreachable, for either server.
    let nowhere = format!("127.0.0.1:{port}/test");
    assert_eq!(
        fetch(Front::Mysql(
            MysqlFront::new(&format!("mysql://gw@{nowhere}"), settings.clone()).expect("front")
        ))
        .await,
        Err(FetchError::FrontDatabase(FrontError::Unreachable))
    );
    assert_eq!(
        fetch(Front::Postgres(
            PostgresFront::new(&format!("postgres://gw@{nowhere}"), &settings).expect("front")
        ))
        .await,
        Err(FetchError::FrontDatabase(FrontError::Unreachable))
    );
    let _ = none;
    // A user the server does not know: the credentials are refused.
    if let Some(url) = testkit::services::mariadb("sql::tests::faults (MariaDB)").await {
        let wrong = url.replace("root@", "no_such_user:wrong@");
        assert_eq!(
            fetch(Front::Mysql(
                MysqlFront::new(&wrong, settings.clone()).expect("front")
            ))
            .await,
            Err(FetchError::FrontDatabase(FrontError::Credentials))
        );
    }
    if let Some(url) = testkit::services::postgres("sql::tests::faults (PostgreSQL)").await {
        let wrong = url.replace("postgres@", "no_such_user@");
        assert_eq!(
            fetch(Front::Postgres(
                PostgresFront::new(&wrong, &settings).expect("front")
            ))
            .await,
            Err(FetchError::FrontDatabase(FrontError::Credentials))
        );
    }
    // Addresses that carry options, or no database, are refused when configured.
    for url in [
        "mysql://gw@127.0.0.1/test?verify_ca=false",
        "mysql://gw@127.0.0.1",
        "postgres://gw@127.0.0.1/test?sslmode=disable",
        "http://127.0.0.1/test",
    ] {
        let refused = if url.starts_with("mysql") {
            MysqlFront::new(url, settings.clone()).map(|_| ())
        } else {
            PostgresFront::new(url, &settings).map(|_| ())
        };
        assert!(refused.is_err(), "{url}");
    }
}

/// A statement that writes, run on the gateway's own connection, is refused by the
/// server; and `gateway check`'s question — could this user write? — has the right
/// answer for a user who can and one who cannot.
#[tokio::test]
async fn server_sessions_are_read_only_and_write_privileges_are_seen() {
    use mysql_async::prelude::Queryable;
    let wait = std::time::Duration::from_secs(5);
    let settings = ServerSettings {
        pool: 1,
        statement_timeout: std::time::Duration::from_millis(2000),
        tls_ca_file: None,
    };
    if let Some(Export::Mysql {
        mut admin,
        url,
        schema,
    }) = Export::mysql("sql::tests::read_only (MariaDB)").await
    {
        admin
            .query_drop("CREATE TABLE t (a INT)")
            .await
            .expect("a table");
        let url = url.replace("/test", &format!("/{schema}"));
        let front = MysqlFront::new(&url, settings.clone()).expect("front");
        assert_eq!(
            front.try_write("INSERT INTO t VALUES (1)").await,
            Err(FrontError::Refused)
        );
        assert_eq!(
            Front::Mysql(front).could_write(wait).await,
            Ok(true),
            "root may write"
        );
        let user = format!("ro_{schema}");
        for statement in [
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"),
            format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw'"),
            format!("GRANT SELECT ON {schema}.* TO '{user}'@'%'"),
            format!("GRANT SELECT ON {schema}.* TO '{user}'@'localhost'"),
        ] {
            admin.query_drop(statement).await.expect("a reader");
        }
        let reader = url.replace("root@", &format!("{user}:pw@"));
        let front = MysqlFront::new(&reader, settings.clone()).expect("front");
        assert_eq!(Front::Mysql(front).could_write(wait).await, Ok(false));
        for statement in [
            format!("DROP USER '{user}'@'%'"),
            format!("DROP USER '{user}'@'localhost'"),
            format!("DROP DATABASE {schema}"),
        ] {
            admin.query_drop(statement).await.expect("cleaned up");
        }
    }
    if let Some(Export::Postgres { admin, url, schema }) =
        Export::postgres("sql::tests::read_only (PostgreSQL)").await
    {
        admin
            .batch_execute("CREATE TABLE t (a INT)")
            .await
            .expect("a table");
        let front = PostgresFront::new(&url, &settings).expect("front");
        assert_eq!(
            front
                .try_write(&format!("INSERT INTO {schema}.t VALUES (1)"))
                .await,
            Err(FrontError::Refused)
        );
        assert_eq!(
            Front::Postgres(front).could_write(wait).await,
            Ok(true),
            "the superuser may write"
        );
        let user = format!("ro_{schema}");
        admin
            .batch_execute(&format!(
                "CREATE ROLE {user} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {user};
                 GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {user}"
            ))
            .await
            .expect("a reader");
        let reader = url.replace("postgres@", &format!("{user}@"));
        let front = PostgresFront::new(&reader, &settings).expect("front");
        assert_eq!(Front::Postgres(front).could_write(wait).await, Ok(false));
        admin
            .batch_execute(&format!(
                "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {user}; DROP ROLE {user}"
            ))
            .await
            .expect("cleaned up");
    }
}

#[test]
fn the_gateways_connections_cannot_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("front.db");
    rusqlite::Connection::open(&path)
        .and_then(|db| db.execute_batch(&export_sql(super::Dialect::Sqlite)))
        .expect("the export");
    let db = super::sqlite::open(&path).expect("opens");
    assert!(db.execute("DELETE FROM dibao", []).is_err());
    assert!(db.execute_batch("CREATE TABLE x (a)").is_err());
    assert!(
        db.execute_batch("PRAGMA query_only = OFF; DELETE FROM dibao")
            .is_err()
    );
}

#[test]
fn a_definition_of_kind_sql_reads_writes_back_and_refuses_mixed_kinds() {
    let def = ConnectorDef::from_yaml(DEFINITION).expect("parses");
    assert_eq!(
        def.transport,
        Transport::Sql(SqlSettings {
            database: "minzheng_front".into()
        })
    );
    let text = serde_yaml_ng::to_string(&def).expect("writes");
    assert_eq!(ConnectorDef::from_yaml(&text).expect("reads back"), def);
    for (from, to) in [
        ("database: minzheng_front", "base_url: http://127.0.0.1:1"),
        ("kind: sql", "kind: http"),
        ("database: minzheng_front", ""),
        (
            "select: { from: v_slow, key: sfzh, columns: [sfzh] }",
            "request: { method: POST, path: /x, body: {} }",
        ),
    ] {
        let text = DEFINITION.replacen(from, to, 1);
        assert!(ConnectorDef::from_yaml(&text).is_err(), "{from} → {to}");
    }
    let text = DEFINITION.replacen("database: minzheng_front", "database: \"front; x\"", 1);
    let def = ConnectorDef::from_yaml(&text).expect("parses");
    assert!(def.validate().iter().any(|p| p.path == "database"));
}
