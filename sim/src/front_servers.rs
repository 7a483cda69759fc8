//! The civil-affairs front database written into a real server — MariaDB or MySQL
//! (`mysql://…`), or PostgreSQL (`postgres://…`) — for a setup closer to a county's
//! than the demo's SQLite file (`gateway simulate --front-db URL`). The tables and
//! views are [`crate::minzheng`]'s; this module only picks each dialect's column types
//! and writes them, replacing what an earlier run wrote. The values are bound
//! parameters, as anything written to a database should be.
//!
//! The simulator speaks to a server on this machine only, in the clear: it is a test
//! fixture, not a way to load a county's real staging database.

use mysql_async::prelude::Queryable;

use crate::minzheng::{ColumnType, Table, tables, views};
use crate::population::Population;

/// Writes the export into the database at `url`; the number of rows written.
pub async fn write_server(population: &Population, url: &str) -> Result<usize, String> {
    let parsed = url::Url::parse(url).map_err(|_| "--front-db: not a URL".to_owned())?;
    let loopback = parsed
        .host_str()
        .is_some_and(connectors::sql::server::is_loopback);
    if !loopback {
        return Err("--front-db: the simulator writes only to a server on this machine (127.0.0.1 or localhost)".into());
    }
    let tables = tables(population);
    match parsed.scheme() {
        "mysql" => write_mysql(&tables, url).await,
        "postgres" | "postgresql" => write_postgres(&tables, url).await,
        _ => Err("--front-db: give a mysql://, postgres:// or sqlite: address".into()),
    }
}

fn column_type(kind: ColumnType, mysql: bool) -> &'static str {
    match (kind, mysql) {
        (ColumnType::Text, true) => "VARCHAR(100) CHARACTER SET utf8mb4",
        (ColumnType::Text, false) => "TEXT",
        (ColumnType::Date, _) => "DATE",
        (ColumnType::Money, _) => "DECIMAL(10, 2)",
        (ColumnType::Integer, _) => "INTEGER",
    }
}

fn create_table(table: &Table, mysql: bool) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| format!("{name} {}", column_type(*kind, mysql)))
        .collect();
    format!("CREATE TABLE {} ({})", table.name, columns.join(", "))
}

async fn write_mysql(tables: &[Table], url: &str) -> Result<usize, String> {
    let failed = |e: mysql_async::Error| format!("--front-db: MariaDB/MySQL: {e}");
    let mut conn = mysql_async::Conn::from_url(url).await.map_err(failed)?;
    let mut written = 0;
    for (view, _) in views() {
        conn.query_drop(format!("DROP VIEW IF EXISTS {view}"))
            .await
            .map_err(failed)?;
    }
    for table in tables {
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", table.name))
            .await
            .map_err(failed)?;
        conn.query_drop(create_table(table, true))
            .await
            .map_err(failed)?;
        let marks = vec!["?"; table.columns.len()].join(", ");
        let insert = format!("INSERT INTO {} VALUES ({marks})", table.name);
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(failed)?;
        tx.exec_batch(
            insert.as_str(),
            table.rows.iter().map(|row| {
                mysql_async::Params::Positional(row.iter().map(|v| v.clone().into()).collect())
            }),
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        conn.query_drop(format!("CREATE INDEX {0}_sfzh ON {0} (sfzh)", table.name))
            .await
            .map_err(failed)?;
        written += table.rows.len();
    }
    for (_, create) in views() {
        conn.query_drop(create).await.map_err(failed)?;
    }
    let _ = conn.disconnect().await;
    Ok(written)
}

async fn write_postgres(tables: &[Table], url: &str) -> Result<usize, String> {
    let failed = |e: tokio_postgres::Error| format!("--front-db: PostgreSQL: {e}");
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(failed)?;
    let running = tokio::spawn(connection);
    client
        .batch_execute("SET client_min_messages = warning")
        .await
        .map_err(failed)?;
    let tx = client.transaction().await.map_err(failed)?;
    let mut written = 0;
    for (view, _) in views() {
        tx.batch_execute(&format!("DROP VIEW IF EXISTS {view}"))
            .await
            .map_err(failed)?;
    }
    for table in tables {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {0}; {1}",
            table.name,
            create_table(table, false)
        ))
        .await
        .map_err(failed)?;
        // Every value is sent as text and read by the column's own type.
        let marks: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let cast = match kind {
                    ColumnType::Text => "",
                    ColumnType::Date => "::date",
                    ColumnType::Money => "::numeric",
                    ColumnType::Integer => "::integer",
                };
                format!("${}::text{cast}", i + 1)
            })
            .collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {} VALUES ({})",
                table.name,
                marks.join(", ")
            ))
            .await
            .map_err(failed)?;
        for row in &table.rows {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            tx.execute(&insert, &params).await.map_err(failed)?;
        }
        tx.batch_execute(&format!("CREATE INDEX {0}_sfzh ON {0} (sfzh)", table.name))
            .await
            .map_err(failed)?;
        written += table.rows.len();
    }
    for (_, create) in views() {
        tx.batch_execute(&create).await.map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    drop(client);
    let _ = running.await;
    Ok(written)
}
