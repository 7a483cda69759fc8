//! Test support: each test gets a schema of its own on the test server
//! (`GATEWAY_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped when the test ends, so tests run in parallel without seeing each other.
//! Without a server the test says it skipped ([`testkit::skip`]), and fails under
//! `.ci/run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Pg, PgSettings};

/// The test server's address.
pub(crate) fn url() -> String {
    std::env::var("GATEWAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of a test's own, dropped with it.
#[derive(Debug)]
pub(crate) struct TestDb {
    pub pg: Pg,
    pub settings: PgSettings,
}

/// A fresh, empty schema (not migrated), or `None` when there is no server (the test
/// then returns after saying so).
pub(crate) async fn fresh(test: &str) -> Option<TestDb> {
    let mut settings = PgSettings::new(url());
    settings.schema = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
    settings.connect_timeout_ms = 3_000;
    settings.pool_size = 8;
    let pg = Pg::new(&settings, std::path::Path::new(".")).unwrap();
    if let Err(e) = pg.client().await {
        testkit::skip(test, &format!("no PostgreSQL here ({e})"), true);
        return None;
    }
    Some(TestDb { pg, settings })
}

/// A fresh schema, migrated.
pub(crate) async fn migrated(test: &str) -> Option<TestDb> {
    let db = fresh(test).await?;
    super::migrations::migrate(&db.pg).await.unwrap();
    Some(db)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let pg = self.pg.clone();
        // On a thread of its own: the test's runtime may be ending.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, _)) = pg.dedicated().await {
                    // A connection a test left inside a transaction would hold the drop
                    // forever: give up after a while and leave the schema behind.
                    let _ = client
                        .batch_execute(&format!(
                            "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {} CASCADE",
                            pg.schema()
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}
