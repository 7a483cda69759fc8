//! Front databases (前置库) as `gateway check` sees them: every operation of every
//! `kind: sql` connector runs its statement once, with a key that matches nobody, so
//! that a table renamed or a column gone shows before a clerk meets it; and a SQLite
//! file the gateway could write to is a warning (it is opened read-only all the same).
//! What the database said is never shown, only the kind of fault.

use connectors::definition::Transport;
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
    for department in cfg.departments.iter() {
        for (name, front) in &department.front_databases {
            let Some(path) = &front.path else { continue };
            let path = cfg.base_dir.join(path);
            // Opening for writing changes nothing; it only asks whether we could.
            if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
                report.warnings.push(format!(
                    "departments `{}` front database `{name}`: the gateway could write to this file; give it read access only",
                    department.id
                ));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{county_with_front_database, load_files};

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
                text.replace(
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
            assert_eq!(report.warnings.len(), 1, "{report:?}");
            assert!(!report.warnings[0].contains(&db.display().to_string()));
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
                .all(|e| e.contains("not in the form its connector declares")
                    && !e.contains("v_insured")),
            "{report:?}"
        );
    }
}
