//! Moving a county from one machine to many: the embedded log (`DATA_DIR/audit.db`)
//! copied into PostgreSQL as one chain, byte for byte — its chain id, every event's
//! seq, canonical body and hashes, its linked subjects and its signed checkpoints — so
//! that it verifies there from its first event, under the same key. The replicas then
//! write chains of their own beside it; the copied chain is free, so the first replica
//! to start may take it and go on.
//!
//! The log's checkpoint key (`DATA_DIR/audit-signing.key`) is recorded as the key
//! every writer of the database must sign with, as a first writer would record it.
//!
//! Only a whole log is copied: one whose oldest events were archived
//! (`gateway audit archive`) starts past seq 1 and is refused, as is a chain id the
//! database already holds.

use std::path::Path;

use rusqlite::OptionalExtension as _;

use super::super::AuditError;
use super::super::sqlite::{AUDIT_FILE, open_read_only, read_chain_id};
use super::writer::{INSERT_CHECKPOINT_SQL, INSERT_EVENTS_SQL, INSERT_LINKED_SQL, record_key};
use crate::pg::Pg;

/// Events read and written per statement.
const BATCH: i64 = 2_000;

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub chain_id: String,
    pub events: u64,
    pub checkpoints: u64,
}

/// One event row, as both stores keep it.
struct Row {
    seq: i64,
    event_id: String,
    time: String,
    request_id: String,
    user: String,
    township: Option<String>,
    connector: Option<String>,
    purpose: Option<String>,
    subject_pseudonym: Option<String>,
    status: i32,
    body: String,
    prev_hash: String,
    hash: String,
}

fn sqlite_error(e: rusqlite::Error) -> AuditError {
    AuditError::Backend(format!("the SQLite audit log: {e}"))
}

fn pg_error(e: &tokio_postgres::Error) -> AuditError {
    AuditError::Unavailable(crate::pg::describe(e))
}

/// Copies the log in `data_dir` into `pg` (migrated) in one transaction. Blocking
/// SQLite reads run on the blocking pool.
pub async fn copy_sqlite(data_dir: &Path, pg: &Pg) -> Result<Copied, AuditError> {
    let path = data_dir.join(AUDIT_FILE);
    let (chain_id, first, checkpoints) = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_read_only(&path).map_err(sqlite_error)?;
            let chain_id = read_chain_id(&conn)?;
            let first: Option<i64> = conn
                .query_row("SELECT min(seq) FROM events", [], |row| row.get(0))
                .optional()
                .map_err(sqlite_error)?
                .flatten();
            let mut statement = conn
                .prepare("SELECT seq, text FROM checkpoints ORDER BY seq")
                .map_err(sqlite_error)?;
            let checkpoints = statement
                .query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(sqlite_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite_error)?;
            Ok::<_, AuditError>((chain_id, first, checkpoints))
        })
        .await
        .map_err(|e| AuditError::Unavailable(e.to_string()))??
    };
    if first.is_some_and(|seq| seq != 1) {
        return Err(AuditError::Backend(
            "the log's oldest events were archived: only a whole log (from seq 1) is copied"
                .to_owned(),
        ));
    }
    let mut client = pg
        .client()
        .await
        .map_err(|e| AuditError::Unavailable(e.to_string()))?;
    let tx = client.transaction().await.map_err(|e| pg_error(&e))?;
    let inserted = tx
        .execute(
            "INSERT INTO audit_chains (chain_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&chain_id],
        )
        .await
        .map_err(|e| pg_error(&e))?;
    if inserted == 0 {
        return Err(AuditError::Backend(format!(
            "PostgreSQL already holds chain {chain_id}: this log was copied before"
        )));
    }
    let mut after = 0i64;
    let mut events = 0u64;
    loop {
        let rows = read_rows(&path, after).await?;
        let Some(last) = rows.last().map(|row| row.seq) else {
            break;
        };
        let months = super::partitions::months_of(rows.iter().map(|r| r.time.as_str()));
        super::partitions::create_missing(&*tx, pg, &months)
            .await
            .map_err(|e| pg_error(&e))?;
        insert_rows(&tx, &chain_id, &rows).await?;
        let linked = read_linked(&path, after, last).await?;
        if !linked.is_empty() {
            let time_of: std::collections::HashMap<i64, &str> = rows
                .iter()
                .map(|row| (row.seq, row.time.as_str()))
                .collect();
            let mut times = Vec::with_capacity(linked.len());
            for (_, seq) in &linked {
                times.push(*time_of.get(seq).ok_or_else(|| {
                    AuditError::Backend(format!(
                        "the embedded log names a linked subject of event {seq}, which it does \
                         not hold"
                    ))
                })?);
            }
            let (pseudonyms, seqs): (Vec<String>, Vec<i64>) = linked.into_iter().unzip();
            tx.execute(INSERT_LINKED_SQL, &[&chain_id, &pseudonyms, &seqs, &times])
                .await
                .map_err(|e| pg_error(&e))?;
        }
        events += rows.len() as u64;
        after = last;
    }
    if let Ok(key) = super::super::checkpoint::public_key(&data_dir.join(super::super::KEY_FILE)) {
        let key = super::super::checkpoint::encode_public_key(&key);
        let recorded = record_key(&*tx, &key).await.map_err(|e| pg_error(&e))?;
        if recorded != key {
            return Err(AuditError::Key(format!(
                "the log is signed with {key}, but the database's writers sign with {recorded}"
            )));
        }
    }
    for (seq, text) in &checkpoints {
        tx.execute(INSERT_CHECKPOINT_SQL, &[&chain_id, seq, text])
            .await
            .map_err(|e| pg_error(&e))?;
    }
    tx.commit().await.map_err(|e| pg_error(&e))?;
    Ok(Copied {
        chain_id,
        events,
        checkpoints: checkpoints.len() as u64,
    })
}

/// The next [`BATCH`] events after `after`, oldest first.
async fn read_rows(path: &Path, after: i64) -> Result<Vec<Row>, AuditError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = open_read_only(&path).map_err(sqlite_error)?;
        let mut statement = conn
            .prepare(
                "SELECT seq, event_id, time, request_id, user, township, connector, purpose,
                        subject_pseudonym, status, body, prev_hash, hash
                   FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sqlite_error)?;
        statement
            .query_map([after, BATCH], |row| {
                Ok(Row {
                    seq: row.get(0)?,
                    event_id: row.get(1)?,
                    time: row.get(2)?,
                    request_id: row.get(3)?,
                    user: row.get(4)?,
                    township: row.get(5)?,
                    connector: row.get(6)?,
                    purpose: row.get(7)?,
                    subject_pseudonym: row.get(8)?,
                    status: row.get(9)?,
                    body: row.get(10)?,
                    prev_hash: row.get(11)?,
                    hash: row.get(12)?,
                })
            })
            .map_err(sqlite_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite_error)
    })
    .await
    .map_err(|e| AuditError::Unavailable(e.to_string()))?
}

/// The linked subjects of the events `after < seq <= last`.
async fn read_linked(path: &Path, after: i64, last: i64) -> Result<Vec<(String, i64)>, AuditError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = open_read_only(&path).map_err(sqlite_error)?;
        let mut statement = conn
            .prepare("SELECT pseudonym, seq FROM linked_subjects WHERE seq > ?1 AND seq <= ?2")
            .map_err(sqlite_error)?;
        statement
            .query_map([after, last], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sqlite_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite_error)
    })
    .await
    .map_err(|e| AuditError::Unavailable(e.to_string()))?
}

async fn insert_rows(
    tx: &tokio_postgres::Transaction<'_>,
    chain_id: &str,
    rows: &[Row],
) -> Result<(), AuditError> {
    let column = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let optional = |f: fn(&Row) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let statuses: Vec<i32> = rows.iter().map(|r| r.status).collect();
    tx.execute(
        INSERT_EVENTS_SQL,
        &[
            &chain_id,
            &seqs,
            &column(|r| &r.event_id),
            &column(|r| &r.time),
            &column(|r| &r.request_id),
            &column(|r| &r.user),
            &optional(|r| r.township.as_deref()),
            &optional(|r| r.connector.as_deref()),
            &optional(|r| r.purpose.as_deref()),
            &optional(|r| r.subject_pseudonym.as_deref()),
            &statuses,
            &column(|r| &r.body),
            &column(|r| &r.prev_hash),
            &column(|r| &r.hash),
        ],
    )
    .await
    .map_err(|e| pg_error(&e))?;
    Ok(())
}
