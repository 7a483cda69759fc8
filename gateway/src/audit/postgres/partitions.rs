//! The monthly partitions of the audit tables on PostgreSQL (`pg/migrations/
//! 0004_audit_partitions.sql`): what a month is called ([`Month`]: `audit_events_YYYYMM`
//! and `audit_linked_subjects_YYYYMM`, holding the times from `YYYY-MM` up to the next
//! month), and creating the months that are missing ([`ensure`]), which the writer
//! does ahead when it takes a chain (this month and the next) and on demand when a
//! batch holds an event of a month without a partition.
//!
//! A partition is created as a table of its own, then attached (`ATTACH PARTITION`
//! takes only a `SHARE UPDATE EXCLUSIVE` lock on the parent, so writers and readers —
//! a long `verify` included — go on meanwhile), in one transaction under the advisory
//! lock `audit-partitions`, which archive runs take too.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use tokio_postgres::{Client, GenericClient};

use crate::pg::Pg;

/// The advisory lock (a name for [`Pg::lock_key`]) under which partitions are
/// created and detached.
pub(super) const LOCK: &str = "audit-partitions";

/// A calendar month (UTC), as the partitions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Month {
    pub(super) year: i32,
    pub(super) month: u32,
}

impl Month {
    /// The month an event's time (RFC 3339, `YYYY-MM-…`) falls in.
    pub(super) fn of_time(time: &str) -> Option<Month> {
        let year = time.get(0..4)?;
        let month = time.get(5..7)?;
        if time.as_bytes().get(4) != Some(&b'-')
            || !year
                .bytes()
                .chain(month.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Month::new(year.parse().ok()?, month.parse().ok()?)
    }

    /// The month of `at`.
    pub(super) fn of(at: DateTime<Utc>) -> Month {
        Month {
            year: at.year(),
            month: at.month(),
        }
    }

    /// From a partition's suffix `YYYYMM`.
    pub(super) fn of_suffix(suffix: &str) -> Option<Month> {
        if suffix.len() != 6 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Month::new(
            suffix.get(0..4)?.parse().ok()?,
            suffix.get(4..6)?.parse().ok()?,
        )
    }

    fn new(year: i32, month: u32) -> Option<Month> {
        ((1000..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    /// The month after this one.
    pub(super) fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first instant (UTC).
    pub(super) fn start(self) -> Option<DateTime<Utc>> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|at| at.and_utc())
    }

    /// `YYYY-MM`: the partition's lower bound, and how operators see it.
    pub(super) fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// `YYYYMM`, the tables' suffix.
    pub(super) fn suffix(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }

    /// The live partition of the events.
    pub(super) fn events_table(self) -> String {
        format!("audit_events_{}", self.suffix())
    }

    /// The live partition of the linked subjects.
    pub(super) fn linked_table(self) -> String {
        format!("audit_linked_subjects_{}", self.suffix())
    }
}

/// This month and the next, by the clock the events are stamped with.
pub(super) fn ahead(now: DateTime<Utc>) -> Vec<Month> {
    let this = Month::of(now);
    vec![this, this.next()]
}

/// The months the times fall in (times that are not RFC 3339 are left out: the
/// table refuses them anyway).
pub(super) fn months_of<'a>(times: impl IntoIterator<Item = &'a str>) -> Vec<Month> {
    let months: BTreeSet<Month> = times.into_iter().filter_map(Month::of_time).collect();
    months.into_iter().collect()
}

/// Creates the partitions of `months` that do not exist yet, in one transaction of
/// its own; returns how many months were created.
pub(super) async fn ensure(
    client: &Client,
    pg: &Pg,
    months: &[Month],
) -> Result<usize, tokio_postgres::Error> {
    let mut missing = Vec::new();
    for month in months {
        if !exists(client, &month.events_table()).await?
            || !exists(client, &month.linked_table()).await?
        {
            missing.push(*month);
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    client
        .batch_execute("BEGIN; SET LOCAL lock_timeout = '5s'")
        .await?;
    let created = async {
        let created = create_missing(client, pg, &missing).await?;
        client.batch_execute("COMMIT").await?;
        Ok(created)
    }
    .await;
    if created.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    created
}

/// Creates the partitions of `months` that do not exist yet, inside the caller's
/// transaction, under [`LOCK`] (held until it ends); returns how many months were
/// created.
pub(super) async fn create_missing<C: GenericClient + Sync>(
    client: &C,
    pg: &Pg,
    months: &[Month],
) -> Result<usize, tokio_postgres::Error> {
    lock(client, pg).await?;
    let mut created = 0;
    for month in months {
        let (from, to) = (month.label(), month.next().label());
        let mut made = false;
        for (parent, table) in [
            ("audit_events", month.events_table()),
            ("audit_linked_subjects", month.linked_table()),
        ] {
            // Checked under the lock: another writer may have made it.
            if exists(client, &table).await? {
                continue;
            }
            client
                .batch_execute(&format!(
                    "CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                     ALTER TABLE {parent} ATTACH PARTITION {table}
                         FOR VALUES FROM ('{from}') TO ('{to}')"
                ))
                .await?;
            made = true;
        }
        created += usize::from(made);
    }
    Ok(created)
}

/// Takes [`LOCK`] and then the parents' `SHARE UPDATE EXCLUSIVE` lock (what
/// `ATTACH PARTITION` takes; writers and readers go on). The table lock also makes
/// the session see the tables another session created or renamed while this one
/// waited: an advisory lock alone does not refresh the catalog caches that
/// `to_regclass` reads.
pub(super) async fn lock<C: GenericClient + Sync>(
    client: &C,
    pg: &Pg,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&pg.lock_key(LOCK)])
        .await?;
    client
        .batch_execute(
            "LOCK TABLE audit_events, audit_linked_subjects IN SHARE UPDATE EXCLUSIVE MODE",
        )
        .await
}

/// Whether a table of that name exists in the schema.
async fn exists<C: GenericClient + Sync>(
    client: &C,
    table: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_read_from_event_times_and_named_as_the_partitions() {
        let month = Month::of_time("2026-12-06T04:25:42.123Z");
        assert_eq!(
            month,
            Some(Month {
                year: 2026,
                month: 12
            })
        );
        let month = month.unwrap_or(Month {
            year: 1970,
            month: 1,
        });
        assert_eq!(month.label(), "2026-12");
        assert_eq!(month.next().label(), "2027-01");
        assert_eq!(month.events_table(), "audit_events_202612");
        assert_eq!(Month::of_suffix("202612"), Some(month));
        assert_eq!(Month::of_time("20x6-12-06"), None);
        assert_eq!(Month::of_time("2026-13-06"), None);
        assert_eq!(Month::of_suffix("2026-1"), None);
        assert_eq!(
            months_of([
                "2026-03-01T00:00:00.000Z",
                "2026-01-31T23:59:59.999Z",
                "2026-03-09"
            ]),
            vec![
                Month {
                    year: 2026,
                    month: 1
                },
                Month {
                    year: 2026,
                    month: 3
                }
            ]
        );
    }
}
