//! [`PgAuditReader`]: the privacy officer's search, export, citizen report and
//! anomalies over every chain of the log on PostgreSQL, with the embedded log's
//! [`Filter`] and paging. Events are ordered by their own `time` (as recorded by the
//! replica that wrote them), ties by `pos`, the order of insertion across all
//! chains. The paging cursor (`before`, [`Page::next`]) is the `pos` of the last
//! event of a page: the next page holds the events before it in that order. Each
//! [`StoredEvent`] names its chain ([`Page::chain_id`] is empty); its `seq` is its
//! chain's. The citizen report and the anomaly scan are the embedded log's
//! ([`Report`], [`Scan`]), fed with PostgreSQL's rows; an anomaly's event numbers
//! are per-chain seqs.

use chrono::NaiveDate;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt as _, pin_mut};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::anomalies::{Anomaly, Scan, Thresholds, window};
use super::super::reader::AuditReader;
use super::super::report::{CitizenReport, Report};
use super::super::search::{
    Bound, Filter, OutcomeClass, Page, SearchError, StoredEvent, check_filter, check_limit,
    format_time, parse_time_bound,
};
use crate::pg::{Pg, describe};

/// How many events a streaming read runs ahead of its consumer, and reads at once.
const STREAM_AHEAD: usize = 64;
const STREAM_CHUNK: i64 = 256;

/// Reads the log on PostgreSQL (pooled connections).
#[derive(Debug, Clone)]
pub struct PgAuditReader {
    pg: Pg,
}

impl PgAuditReader {
    pub fn new(pg: Pg) -> PgAuditReader {
        PgAuditReader { pg }
    }
}

fn backend(e: &tokio_postgres::Error) -> SearchError {
    SearchError::Backend(format!("PostgreSQL: {}", describe(e)))
}

/// A `WHERE` clause with its bound values (`$n` placeholders); values are never
/// written into the SQL text.
#[derive(Default)]
struct Clause {
    conditions: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Clause {
    /// The conditions of `filter` (checked as the embedded log checks it).
    fn of(filter: &Filter) -> Result<Clause, SearchError> {
        check_filter(filter)?;
        let mut clause = Clause::default();
        if let Some(v) = &filter.subject_pseudonym {
            let n = clause.bind(v.clone());
            clause.conditions.push(about_subject(n));
        }
        for (column, value) in [
            ("user_name", &filter.user),
            ("township", &filter.township),
            ("connector", &filter.connector),
            ("purpose", &filter.purpose),
        ] {
            if let Some(v) = value {
                let n = clause.bind(v.clone());
                clause.conditions.push(format!("{column} = ${n}"));
            }
        }
        match filter.outcome {
            None => {}
            Some(OutcomeClass::Ok) => clause.conditions.push("status BETWEEN 200 AND 299".into()),
            Some(OutcomeClass::Refused) => clause.conditions.push("status IN (401, 403)".into()),
            Some(OutcomeClass::Failed) => clause
                .conditions
                .push("status BETWEEN 400 AND 599 AND status NOT IN (401, 403)".into()),
        }
        if let Some(status) = filter.status {
            let n = clause.bind(i32::from(status));
            clause.conditions.push(format!("status = ${n}"));
        }
        if let Some(from) = &filter.from {
            let n = clause.bind(format_time(parse_time_bound(Bound::From, from)?));
            clause.conditions.push(format!("time >= ${n}"));
        }
        if let Some(until) = &filter.until {
            let n = clause.bind(format_time(parse_time_bound(Bound::Until, until)?));
            clause.conditions.push(format!("time < ${n}"));
        }
        Ok(clause)
    }

    /// Binds a value; its placeholder's number.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> usize {
        self.values.push(Box::new(value));
        self.values.len()
    }

    fn sql(&self) -> String {
        let mut sql = String::new();
        for (i, condition) in self.conditions.iter().enumerate() {
            sql.push_str(if i == 0 { " WHERE " } else { " AND " });
            sql.push('(');
            sql.push_str(condition);
            sql.push(')');
        }
        sql
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The events about the subject whose pseudonym is bound at `$n`, or disclosing
/// them through another person's record: their positions are collected first (from
/// the subject index and the linked subjects), so that a page or a report reads only
/// those rows instead of scanning the log in `pos` order for them.
fn about_subject(n: usize) -> String {
    format!(
        "pos = ANY (ARRAY(
             SELECT pos FROM audit_events WHERE subject_pseudonym = ${n}
             UNION
             SELECT e.pos FROM audit_linked_subjects l
               JOIN audit_events e
                 ON e.chain_id = l.chain_id AND e.seq = l.seq AND e.time = l.time
              WHERE l.pseudonym = ${n}))"
    )
}

/// A row of `SELECT {COLUMNS}`: its `pos`, and the event.
fn stored_event(row: &Row) -> Result<(i64, StoredEvent), SearchError> {
    let chain_id: String = row.try_get(0).map_err(|e| backend(&e))?;
    let seq: i64 = row.try_get(1).map_err(|e| backend(&e))?;
    let pos: i64 = row.try_get(2).map_err(|e| backend(&e))?;
    let seq = u64::try_from(seq).map_err(|_| SearchError::Corrupt {
        seq: 0,
        reason: "a negative sequence number".into(),
    })?;
    let hash: String = row.try_get(3).map_err(|e| backend(&e))?;
    let body: &str = row.try_get(4).map_err(|e| backend(&e))?;
    let event = serde_json::from_str(body).map_err(|e| SearchError::Corrupt {
        seq,
        reason: format!(
            "the body is not an audit event (line {}, column {}; chain {chain_id})",
            e.line(),
            e.column()
        ),
    })?;
    Ok((
        pos,
        StoredEvent {
            chain_id: Some(chain_id),
            seq,
            hash,
            event,
        },
    ))
}

const COLUMNS: &str = "chain_id, seq, pos, hash, body, time";

impl PgAuditReader {
    async fn page(
        &self,
        filter: Filter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, SearchError> {
        check_limit(limit)?;
        let mut clause = Clause::of(&filter)?;
        if let Some(before) = before {
            let n = clause.bind(i64::try_from(before).unwrap_or(i64::MAX));
            clause.conditions.push(format!(
                "(time, pos) < (SELECT time, pos FROM audit_events WHERE pos = ${n})"
            ));
        }
        let n = clause.bind(i64::try_from(limit).unwrap_or(i64::MAX) + 1);
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events{} ORDER BY time DESC, pos DESC LIMIT ${n}",
            clause.sql()
        );
        let client = self
            .pg
            .client()
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?;
        let rows = client
            .query(&sql, &clause.params())
            .await
            .map_err(|e| backend(&e))?;
        let mut events = Vec::with_capacity(rows.len().min(limit));
        let mut next = None;
        for row in rows.iter().take(limit) {
            let (pos, event) = stored_event(row)?;
            events.push(event);
            next = Some(pos);
        }
        let more = rows.len() > limit;
        Ok(Page {
            chain_id: String::new(),
            events,
            next: if more {
                next.and_then(|pos| u64::try_from(pos).ok())
            } else {
                None
            },
        })
    }

    /// Every event matching `filter`, oldest first, in one snapshot, a chunk at a
    /// time, into `tx` until it is dropped.
    async fn feed(
        pg: Pg,
        filter: Filter,
        tx: &tokio::sync::mpsc::Sender<Result<StoredEvent, SearchError>>,
    ) -> Result<(), SearchError> {
        let mut clause = Clause::of(&filter)?;
        let after = clause.bind(String::new());
        let after_pos = clause.bind(0i64);
        let limit = clause.bind(STREAM_CHUNK);
        clause
            .conditions
            .push(format!("(time, pos) > (${after}, ${after_pos})"));
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events{} ORDER BY time ASC, pos ASC LIMIT ${limit}",
            clause.sql()
        );
        let mut client = pg
            .client()
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?;
        let snapshot = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| backend(&e))?;
        let fed = Self::feed_from(&snapshot, &sql, clause, after, tx).await;
        // Ended here rather than when dropped, so that its locks go at once.
        let _ = snapshot.rollback().await;
        fed
    }

    async fn feed_from(
        snapshot: &tokio_postgres::Transaction<'_>,
        sql: &str,
        mut clause: Clause,
        after: usize,
        tx: &tokio::sync::mpsc::Sender<Result<StoredEvent, SearchError>>,
    ) -> Result<(), SearchError> {
        let statement = snapshot.prepare(sql).await.map_err(|e| backend(&e))?;
        let mut last = (String::new(), 0i64);
        loop {
            clause.values[after - 1] = Box::new(last.0.clone());
            clause.values[after] = Box::new(last.1);
            let rows = snapshot
                .query(&statement, &clause.params())
                .await
                .map_err(|e| backend(&e))?;
            let done = rows.len() < usize::try_from(STREAM_CHUNK).unwrap_or(usize::MAX);
            for row in &rows {
                let (pos, event) = stored_event(row)?;
                last = (row.try_get(5).map_err(|e| backend(&e))?, pos);
                if tx.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    async fn report(
        &self,
        subject_pseudonym: String,
        today: NaiveDate,
    ) -> Result<CitizenReport, SearchError> {
        let client = self
            .pg
            .client()
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM audit_events
                      WHERE status = 200
                        AND {}
                      ORDER BY time, pos",
                    about_subject(1)
                ),
                &[&subject_pseudonym],
            )
            .await
            .map_err(|e| backend(&e))?;
        let mut report = Report::new(&subject_pseudonym, today);
        for row in &rows {
            report.take(stored_event(row)?.1);
        }
        Ok(report.finish())
    }

    async fn scan(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> Result<Vec<Anomaly>, SearchError> {
        let (from, until) = window(&from, &until, &thresholds)?;
        let client = self
            .pg
            .client()
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?;
        let (from, until) = (format_time(from), format_time(until));
        let params: [&(dyn ToSql + Sync); 2] = [&from, &until];
        let rows = client
            .query_raw(
                &format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE time >= $1 AND time < $2
                      ORDER BY time, pos"
                ),
                params,
            )
            .await
            .map_err(|e| backend(&e))?;
        pin_mut!(rows);
        let mut scan = Scan::new(&thresholds);
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| backend(&e))?;
            scan.observe_stored(&stored_event(&row)?.1);
        }
        Ok(scan.finish())
    }
}

impl AuditReader for PgAuditReader {
    fn ready(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            let client = self
                .pg
                .client()
                .await
                .map_err(|e| SearchError::Backend(e.to_string()))?;
            client
                .query_one("SELECT max(pos) FROM audit_events", &[])
                .await
                .map_err(|e| backend(&e))?;
            Ok(())
        })
    }

    fn search(
        &self,
        filter: Filter,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, SearchError>> {
        Box::pin(self.page(filter, before, limit))
    }

    fn events(&self, filter: Filter) -> BoxStream<'static, Result<StoredEvent, SearchError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_AHEAD);
        let pg = self.pg.clone();
        tokio::spawn(async move {
            if let Err(e) = PgAuditReader::feed(pg, filter, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }

    fn citizen_report(
        &self,
        subject_pseudonym: String,
        today: NaiveDate,
    ) -> BoxFuture<'_, Result<CitizenReport, SearchError>> {
        Box::pin(self.report(subject_pseudonym, today))
    }

    fn anomalies(
        &self,
        from: String,
        until: String,
        thresholds: Thresholds,
    ) -> BoxFuture<'_, Result<Vec<Anomaly>, SearchError>> {
        Box::pin(self.scan(from, until, thresholds))
    }
}
