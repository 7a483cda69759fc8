//! `gateway audit archive` on PostgreSQL: whole months of the live tables (their
//! partitions, see [`partitions`](super::partitions)) that ended before the cutoff
//! (now − the retention period, the same [`Retention`] rules as the embedded log:
//! three years at least unless `allow_short`) are detached, one transaction per
//! month, oldest first, and kept in the same database as read-only tables:
//! `audit_events_YYYYMM` becomes `audit_archive_YYYYMM` and
//! `audit_linked_subjects_YYYYMM` becomes `audit_archive_linked_YYYYMM`, each with a
//! trigger refusing every change, and the month is recorded in
//! `audit_archived_months`. Nothing is ever dropped here: disposing of an archived
//! month is a decision for people.
//!
//! Per month, under the advisory lock `audit-partitions` and a `SHARE` lock on the
//! month's partition (no event can enter it meanwhile):
//!
//! - **Out of order is refused.** If a later live month holds an event of a chain
//!   with a smaller seq than one of the month's (that chain's writer had a clock that
//!   went back), archiving would split the chain out of order: the run stops with an
//!   error naming the month and the chain, and nothing of that month moves.
//! - **A chain's newest event, and the event its newest checkpoint signs, stay
//!   live**, as in the embedded log: the writer of a chain continues from its head in
//!   the live table (and, taking over a chain, checks the tail after its newest
//!   checkpoint from there), and the county checkpoints name the heads. A month
//!   holding one of them is kept (reported) and the run goes on with the next month;
//!   a later run archives it once its chains moved on.
//!
//! The privacy officer's search reads the live table only (as with SQLite, archived
//! events are out of the officer's daily view). `verify` walks every chain from seq 1
//! over the archived tables and the live one together ([`chain_events_sql`]); an
//! archived month whose table is gone (dropped by people) fails it, naming the month
//! and how many events it held — as a missing segment file fails the embedded log's
//! verify. `verify` takes an `ACCESS SHARE` lock on the live table before its
//! snapshot, so a month is never detached in the middle of a walk (an archive run
//! then tries again, each time waiting at most 300 ms so that writers queued behind
//! it are held up no longer, and gives up after 20 attempts, saying so).

use chrono::{DateTime, TimeDelta, Utc};
use tokio_postgres::error::SqlState;

use super::super::backend::{Archived, ArchivedMonth, ArchivedMonths};
use super::super::retention::Retention;
use super::super::verify::VerifyFailure;
use super::partitions::{self, Month};
use super::writer::EVENT_COLUMNS;
use super::{AuditError, query_failed, unavailable};
use crate::pg::{Pg, describe};

/// How long one attempt at a month's detach waits for the live tables (a running
/// `verify` holds them). Writers queue behind a waiting detach, so an attempt is kept
/// short — a lookup is held up at most this long — and tried again after a pause.
const LOCK_TIMEOUT: &str = "300ms";
/// Attempts at one month before the run gives up, saying so, and the pause between.
const ATTEMPTS: u32 = 20;
const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// What became of one old month.
enum Outcome {
    Archived(ArchivedMonth),
    /// It holds a chain's newest event.
    Kept,
    /// Another run archived it meanwhile.
    Gone,
}

/// Detaches every whole month that ended before `now − retention` (see the module
/// docs); `None` when no month was old enough.
pub(super) async fn archive(
    pg: &Pg,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Option<Archived>, AuditError> {
    retention.check()?;
    crate::pg::migrations::require_current(pg)
        .await
        .map_err(unavailable)?;
    let Some(cutoff) = now.checked_sub_signed(TimeDelta::days(i64::from(retention.keep_days)))
    else {
        return Ok(None);
    };
    let (client, _notifications) = pg.dedicated().await.map_err(unavailable)?;
    let mut months: Vec<Month> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'audit_events'::regclass",
            &[],
        )
        .await
        .map_err(|e| query_failed(&e))?
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            Month::of_suffix(name.strip_prefix("audit_events_")?)
        })
        .collect();
    months.sort_unstable();
    let mut run = ArchivedMonths::default();
    for month in months {
        if month.next().start().is_none_or(|end| end > cutoff) {
            break;
        }
        let mut attempt = 1;
        let outcome = loop {
            match archive_month_once(&client, pg, month).await {
                Err(Busy::Yes(_)) if attempt < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(PAUSE).await;
                }
                Err(Busy::Yes(error) | Busy::No(error)) => break Err(error),
                Ok(outcome) => break Ok(outcome),
            }
        };
        match outcome? {
            Outcome::Archived(archived) => {
                tracing::info!(
                    month = %archived.month,
                    events = archived.events,
                    "archived a month of audit events on PostgreSQL"
                );
                run.months.push(archived);
            }
            Outcome::Kept => run.kept.push(month.label()),
            Outcome::Gone => {}
        }
    }
    if run.months.is_empty() && run.kept.is_empty() {
        return Ok(None);
    }
    Ok(Some(Archived::Months(run)))
}

/// Why one attempt at a month failed: the tables were busy (worth another), or not.
enum Busy {
    Yes(AuditError),
    No(AuditError),
}

/// One attempt at one month, in a transaction of its own.
async fn archive_month_once(
    client: &tokio_postgres::Client,
    pg: &Pg,
    month: Month,
) -> Result<Outcome, Busy> {
    client
        .batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await
        .map_err(|e| Busy::No(query_failed(&e)))?;
    match archive_month(client, pg, month).await {
        Ok(outcome) => client
            .batch_execute("COMMIT")
            .await
            .map(|()| outcome)
            .map_err(|e| busy_or_failed(&e, month)),
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

/// One month, inside the caller's transaction.
async fn archive_month(
    client: &tokio_postgres::Client,
    pg: &Pg,
    month: Month,
) -> Result<Outcome, Busy> {
    let failed = |e: tokio_postgres::Error| busy_or_failed(&e, month);
    partitions::lock(client, pg).await.map_err(failed)?;
    let (events, linked) = (month.events_table(), month.linked_table());
    let attached: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                             WHERE i.inhparent = 'audit_events'::regclass AND c.relname = $1)",
            &[&events],
        )
        .await
        .map_err(failed)?
        .get(0);
    if !attached {
        return Ok(Outcome::Gone);
    }
    let (archive_events, archive_linked) = (
        format!("audit_archive_{}", month.suffix()),
        format!("audit_archive_linked_{}", month.suffix()),
    );
    let taken: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL OR to_regclass($2) IS NOT NULL",
            &[&archive_events, &archive_linked],
        )
        .await
        .map_err(failed)?
        .get(0);
    if taken {
        return Err(Busy::No(AuditError::Backend(format!(
            "the month {} was archived before and holds new events since (a writer's clock \
             went back); it was not archived again: look at its events and at {archive_events}",
            month.label()
        ))));
    }
    client
        .batch_execute(&format!("LOCK TABLE {events} IN SHARE MODE"))
        .await
        .map_err(failed)?;
    let (from, to) = (month.label(), month.next().label());
    let chains = client
        .query(
            &format!(
                "SELECT m.chain_id, m.top, m.n,
                   EXISTS (SELECT 1 FROM audit_events e
                            WHERE e.chain_id = m.chain_id AND e.seq > m.top
                              AND (e.time < $1 COLLATE \"C\" OR e.time >= $2 COLLATE \"C\"))
                   AND coalesce((SELECT max(c.seq) FROM audit_checkpoints c
                                  WHERE c.chain_id = m.chain_id), 0) > m.top,
                   (SELECT min(e.seq) FROM audit_events e
                     WHERE e.chain_id = m.chain_id AND e.time >= $2 COLLATE \"C\")
                 FROM (SELECT chain_id, max(seq) AS top, count(*) AS n FROM {events}
                        GROUP BY chain_id) AS m
                 ORDER BY m.chain_id"
            ),
            &[&from, &to],
        )
        .await
        .map_err(failed)?;
    let mut count = 0u64;
    let mut kept = false;
    for row in &chains {
        let chain_id: String = row.get(0);
        let top: i64 = row.get(1);
        let n: i64 = row.get(2);
        let continues: bool = row.get(3);
        let later_min: Option<i64> = row.get(4);
        if let Some(later) = later_min.filter(|later| *later < top) {
            return Err(Busy::No(AuditError::Backend(format!(
                "the month {from} cannot be archived: chain {chain_id} holds event {top} in it \
                 but event {later} in a later month (its writer's clock went back), so \
                 archiving it would split the chain out of order; nothing of {from} was \
                 archived"
            ))));
        }
        kept |= !continues;
        count += u64::try_from(n).unwrap_or(0);
    }
    if kept {
        return Ok(Outcome::Kept);
    }
    detach(client, "audit_events", &events, &archive_events)
        .await
        .map_err(failed)?;
    let has_linked: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&linked])
        .await
        .map_err(failed)?
        .get(0);
    if has_linked {
        detach(client, "audit_linked_subjects", &linked, &archive_linked)
            .await
            .map_err(failed)?;
    }
    let events_i = i64::try_from(count).unwrap_or(i64::MAX);
    client
        .execute(
            "INSERT INTO audit_archived_months (month, events_table, linked_table, events)
             VALUES ($1, $2, $3, $4)",
            &[&from, &archive_events, &archive_linked, &events_i],
        )
        .await
        .map_err(failed)?;
    Ok(Outcome::Archived(ArchivedMonth {
        month: from,
        events: count,
        table: archive_events,
    }))
}

/// Detaches the partition `table` of `parent`, renames it `archive` and makes it
/// read-only (inside the caller's transaction).
async fn detach(
    client: &tokio_postgres::Client,
    parent: &str,
    table: &str,
    archive: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "ALTER TABLE {parent} DETACH PARTITION {table};
             ALTER TABLE {table} RENAME TO {archive};
             CREATE TRIGGER audit_archive_read_only
                 BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {archive}
                 FOR EACH STATEMENT EXECUTE FUNCTION audit_archive_read_only();"
        ))
        .await
}

/// A failure of a month's transaction; a lock that could not be had in time says so.
fn busy_or_failed(error: &tokio_postgres::Error, month: Month) -> Busy {
    if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        Busy::Yes(AuditError::Unavailable(format!(
            "the month {} was not archived: the audit tables stayed busy (a verify, or \
             another archive run); run it again later",
            month.label()
        )))
    } else {
        Busy::No(query_failed(error))
    }
}

/// For `verify`, first in its transaction (before its snapshot is taken): holds the
/// live table so that no month is detached while the chains are walked.
pub(super) async fn hold_months(tx: &tokio_postgres::Transaction<'_>) -> Result<(), VerifyFailure> {
    tx.batch_execute("LOCK TABLE audit_events IN ACCESS SHARE MODE")
        .await
        .map_err(|e| {
            failure(format!(
                "cannot read the audit log on PostgreSQL: {}",
                describe(&e)
            ))
        })
}

/// The query of one chain's events (`$1`: the chain), in seq order, over the archived
/// months and the live table. An archived month whose table is gone fails, naming
/// it.
pub(super) async fn chain_events_sql(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<String, VerifyFailure> {
    let archived = tx
        .query(
            "SELECT month, events_table, to_regclass(events_table) IS NOT NULL, events
               FROM audit_archived_months ORDER BY month",
            &[],
        )
        .await
        .map_err(|e| {
            failure(format!(
                "cannot read the audit log on PostgreSQL: {}",
                describe(&e)
            ))
        })?;
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_id = $1");
    for row in &archived {
        let month: String = row.get(0);
        let table: String = row.get(1);
        let present: bool = row.get(2);
        let events: i64 = row.get(3);
        let valid = Month::of_suffix(table.strip_prefix("audit_archive_").unwrap_or_default())
            .is_some_and(|m| m.label() == month);
        if !valid {
            return Err(failure(format!(
                "the archived month {month} names a table that is not an archive table"
            )));
        }
        if !present {
            return Err(failure(format!(
                "the archived month {month} is missing: its table {table} is gone, and with \
                 it {events} events of the history"
            )));
        }
        sql.push_str(&format!(
            " UNION ALL SELECT {EVENT_COLUMNS} FROM {table} WHERE chain_id = $1"
        ));
    }
    sql.push_str(" ORDER BY seq");
    Ok(sql)
}

fn failure(problem: String) -> VerifyFailure {
    VerifyFailure { seq: None, problem }
}
