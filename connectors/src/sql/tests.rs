//! The front-database kind against a real SQLite file: mapping through the shared
//! engine, not found, two rows for one person, lists and their bound, a key carrying
//! SQL, a slow view, a dropped column, and the definition's own checks.

use std::sync::Arc;

use serde_json::json;

use super::sqlite::SqliteFront;
use super::{SqlConnector, SqlSettings};
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

fn front(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("front.db");
    let db = rusqlite::Connection::open(&path).expect("a front database");
    db.execute_batch(&format!(
        "CREATE TABLE dibao (sfzh TEXT, xm TEXT, dbzt TEXT, ye TEXT);
         INSERT INTO dibao VALUES ('{A}', '邓俊浩', '1', '620.5'), ('{TWICE}', '甲', '1', '1'), ('{TWICE}', '乙', '0', '2');
         CREATE VIEW v_dibao AS SELECT sfzh, xm, dbzt, ye FROM dibao;
         CREATE TABLE history (sfzh TEXT, ksrq TEXT, jsrq TEXT);
         INSERT INTO history VALUES ('{A}', '2021-01-01', '2021-12-31'), ('{A}', '2020-01-01', '2020-12-31'),
           ('{B}', '2019-01-01', NULL), ('{B}', '2020-01-01', NULL), ('{B}', '2021-01-01', NULL), ('{B}', '2022-01-01', NULL);
         CREATE VIEW v_history AS SELECT sfzh, ksrq, jsrq FROM history;
         CREATE VIEW v_slow AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000000)
           SELECT '{A}' AS sfzh FROM n WHERE x = 1000000000;"
    ))
    .expect("the export");
    path
}

fn connector(path: &std::path::Path) -> SqlConnector {
    let def = ConnectorDef::from_yaml(DEFINITION).expect("the definition parses");
    assert!(def.validate().is_empty(), "{:?}", def.validate());
    SqlConnector::new(Arc::new(def), Arc::new(SqliteFront::new(path, 2))).expect("builds")
}

#[tokio::test]
async fn a_row_maps_through_the_shared_engine_and_faults_are_named_by_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = front(&dir);
    let c = connector(&path);
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
        Err(FetchError::Malformed)
    );
    // A key carrying SQL is a value like any other: it matches nobody.
    for hostile in [
        "' OR '1'='1",
        "x'; DROP TABLE dibao; --",
        "13990119750327229X' --",
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
        Err(FetchError::Malformed)
    );
    // A slow view is stopped at the connector's time limit.
    assert_eq!(c.fetch("slow", A, &none).await, Err(FetchError::Timeout));
    assert!(
        c.fetch("dibao_by_id", A, &none).await.is_ok(),
        "the pool recovered"
    );
    assert_eq!(
        c.fetch("nope", A, &none).await,
        Err(FetchError::UnknownOperation)
    );

    // The department renames a column under the running gateway: schema drift.
    let db = rusqlite::Connection::open(&path).expect("open");
    db.execute_batch(
        "DROP VIEW v_dibao; CREATE VIEW v_dibao AS SELECT sfzh, xm AS name, dbzt, ye FROM dibao;",
    )
    .expect("renamed");
    assert_eq!(
        c.fetch("dibao_by_id", A, &none).await,
        Err(FetchError::Malformed)
    );
    // And the file goes away: unreachable.
    drop(db);
    let gone = connector(&dir.path().join("missing.db"));
    assert_eq!(
        gone.fetch("dibao_by_id", A, &none).await,
        Err(FetchError::Unavailable)
    );
}

#[test]
fn the_gateways_connections_cannot_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = front(&dir);
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
