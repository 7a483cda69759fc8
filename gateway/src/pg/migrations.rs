//! The PostgreSQL schema's versioned migrations: what each version adds, applying the
//! missing ones one replica at a time (under an advisory lock, so replicas starting
//! together cannot race), refusing a schema newer than this binary knows, and
//! reporting where a schema stands for `gateway check`.
//!
//! Each migration runs in its own transaction together with the row that records it
//! in `schema_migrations`, so a failed one leaves the schema at the version before.

use super::{Pg, PgError};

/// The migrations, in order: (version, name, SQL). Versions are 1, 2, 3, … without
/// gaps; a released migration is never edited, only followed by another.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "registry", include_str!("migrations/0001_registry.sql")),
    (2, "audit", include_str!("migrations/0002_audit.sql")),
    (
        3,
        "county_seq",
        include_str!("migrations/0003_county_seq.sql"),
    ),
    (
        4,
        "audit_partitions",
        include_str!("migrations/0004_audit_partitions.sql"),
    ),
    (
        5,
        "corrections",
        include_str!("migrations/0005_corrections.sql"),
    ),
];

/// The schema version this binary writes.
pub fn known() -> u32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Where a schema stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The version the database holds (0: nothing yet).
    pub found: u32,
    /// The version this binary writes.
    pub known: u32,
}

impl Status {
    pub fn is_current(&self) -> bool {
        self.found == self.known
    }
}

/// Applies every missing migration (creating the schema if needed), one process at a
/// time; returns the versions applied. Refuses a schema newer than this binary.
pub async fn migrate(pg: &Pg) -> Result<Vec<u32>, PgError> {
    let (client, _notifications) = pg.dedicated().await?;
    let lock = pg.lock_key("migrations");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await
        .map_err(|e| PgError::query(&e))?;
    let applied = apply_missing(pg, &client).await;
    // The lock also goes with the connection, when `client` is dropped.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await;
    applied
}

async fn apply_missing(pg: &Pg, client: &tokio_postgres::Client) -> Result<Vec<u32>, PgError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
            schema = pg.schema()
        ))
        .await
        .map_err(|e| PgError::query(&e))?;
    let found = found_version(client).await?;
    let known = known();
    if found > known {
        return Err(PgError::TooNew {
            schema: pg.schema().to_owned(),
            found,
            known,
        });
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        let version_i = i32::try_from(*version)
            .map_err(|_| PgError::Settings("a migration's version is too large".to_owned()))?;
        let run = async {
            client.batch_execute("BEGIN").await?;
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&version_i, name],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = run.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(PgError::Query(format!(
                "migration {version} ({name}) failed: {}",
                super::describe(&e)
            )));
        }
        tracing::info!(
            version,
            name,
            schema = pg.schema(),
            "PostgreSQL migration applied"
        );
        applied.push(*version);
    }
    Ok(applied)
}

/// Where the schema stands, without changing anything.
pub async fn status(pg: &Pg) -> Result<Status, PgError> {
    let client = pg.client().await?;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                             WHERE table_schema = $1 AND table_name = 'schema_migrations')",
            &[&pg.schema()],
        )
        .await
        .map_err(|e| PgError::query(&e))?
        .get(0);
    let found = if exists {
        found_version(&client).await?
    } else {
        0
    };
    Ok(Status {
        found,
        known: known(),
    })
}

/// Refuses to serve on a schema that is not this binary's: too new (a newer gateway
/// migrated it) or too old (`gateway migrate` has not run and this replica was told
/// not to migrate).
pub async fn require_current(pg: &Pg) -> Result<(), PgError> {
    let status = status(pg).await?;
    if status.found > status.known {
        return Err(PgError::TooNew {
            schema: pg.schema().to_owned(),
            found: status.found,
            known: status.known,
        });
    }
    if status.found < status.known {
        return Err(PgError::Settings(format!(
            "the schema `{}` is at version {}, older than this gateway's {}; run `gateway migrate`",
            pg.schema(),
            status.found,
            status.known
        )));
    }
    Ok(())
}

async fn found_version(client: &tokio_postgres::Client) -> Result<u32, PgError> {
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(|e| PgError::query(&e))?
        .get(0);
    Ok(version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_even_when_replicas_start_together_and_a_newer_schema_is_refused()
    {
        let Some(db) = super::super::testing::fresh("pg::migrations").await else {
            return;
        };
        let pg = db.pg.clone();
        let (a, b) = tokio::join!(migrate(&pg), migrate(&pg));
        let (a, b) = (a.unwrap(), b.unwrap());
        let all: Vec<u32> = (1..=known()).collect();
        // One of the two applied everything; the other found nothing left to do.
        assert!(
            (a == all && b.is_empty()) || (b == all && a.is_empty()),
            "{a:?} {b:?}"
        );
        assert!(status(&pg).await.unwrap().is_current());
        require_current(&pg).await.unwrap();

        let client = pg.client().await.unwrap();
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
                &[&(i32::try_from(known()).unwrap() + 1)],
            )
            .await
            .unwrap();
        let refused = migrate(&pg).await.unwrap_err();
        assert!(matches!(refused, PgError::TooNew { .. }), "{refused}");
        assert!(refused.to_string().contains("newer than this gateway"));
        assert!(require_current(&pg).await.is_err());
    }
}
