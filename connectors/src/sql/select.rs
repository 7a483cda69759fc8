//! One operation of a front-database connector: a `SELECT` over one declared table or
//! view, with the subject's key as the only, bound, parameter. The definition never
//! holds SQL text: it names the relation, the key column, the columns to read, how
//! many rows an answer has and their order, and the statement is written here from
//! those names alone — each checked against an allowlist of plain identifiers, then
//! quoted for the database's dialect. Nothing a caller sends is ever spliced in.

use serde::{Deserialize, Serialize};

use crate::definition::DefinitionProblem;

/// The most rows a list operation may declare (`max_rows`).
pub const MAX_ROWS_LIMIT: u32 = 1_000;
/// The most columns one operation may read.
const MAX_COLUMNS: usize = 128;

/// `select:` of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectDef {
    /// The table or view the department exports, `name` or `schema.name`.
    pub from: String,
    /// The column the subject's key is compared with (equality, bound parameter).
    pub key: String,
    /// The columns read, by name; the record's `from:` pointers name them (`/xm`).
    pub columns: Vec<String>,
    /// `one` (the default): a single record — no row is `not_found`, two or more are
    /// a broken export; `many`: a list, answered as `{"rows": [...]}`.
    #[serde(default)]
    pub rows: Rows,
    /// The order of a list's rows (columns, ascending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// The most rows a list may have (default 100); more fail closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u32>,
}

/// How many rows an operation's answer has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    #[default]
    One,
    Many,
}

/// The SQL dialect a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mysql,
    Postgres,
}

impl SelectDef {
    /// The most rows a list may have.
    pub fn row_limit(&self) -> u32 {
        match self.rows {
            Rows::One => 1,
            Rows::Many => self.max_rows.unwrap_or(100),
        }
    }

    /// Problems of this `select:` on its own, at `at` (e.g. `operations.x.select`).
    pub fn problems(&self, at: &str) -> Vec<DefinitionProblem> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: &str| {
            problems.push(DefinitionProblem {
                path,
                message: message.to_owned(),
            })
        };
        if !is_relation(&self.from) {
            problem(format!("{at}.from"), RELATION_RULE);
        }
        if !is_identifier(&self.key) {
            problem(format!("{at}.key"), IDENTIFIER_RULE);
        }
        if self.columns.is_empty() || self.columns.len() > MAX_COLUMNS {
            problem(format!("{at}.columns"), "must name 1–128 columns");
        }
        for (i, column) in self.columns.iter().enumerate() {
            if !is_identifier(column) {
                problem(format!("{at}.columns[{i}]"), IDENTIFIER_RULE);
            } else if self.columns[..i].contains(column) {
                problem(format!("{at}.columns[{i}]"), "is named twice");
            }
        }
        for (i, column) in self.order_by.iter().enumerate() {
            if !is_identifier(column) {
                problem(format!("{at}.order_by[{i}]"), IDENTIFIER_RULE);
            }
        }
        match self.rows {
            Rows::One => {
                if !self.order_by.is_empty() {
                    problem(
                        format!("{at}.order_by"),
                        "orders a list: only with `rows: many`",
                    );
                }
                if self.max_rows.is_some() {
                    problem(
                        format!("{at}.max_rows"),
                        "bounds a list: only with `rows: many`",
                    );
                }
            }
            Rows::Many => {
                if self.max_rows.is_some_and(|n| n == 0 || n > MAX_ROWS_LIMIT) {
                    problem(format!("{at}.max_rows"), "must be 1–1000");
                }
                if self.order_by.is_empty() {
                    problem(
                        format!("{at}.order_by"),
                        "a list needs an order (a column or more), so that its rows come back the same each time",
                    );
                }
            }
        }
        problems
    }

    /// The statement, in `dialect`, with one parameter: the subject's key. It asks
    /// for one row more than an answer may have, so that too many can be told.
    /// Only for a definition without [`problems`](Self::problems).
    pub fn statement(&self, dialect: Dialect) -> String {
        let quote = |name: &str| -> String {
            name.split('.')
                .map(|part| match dialect {
                    // SQLite reads a double-quoted name that matches no column as a
                    // string: a dropped column would come back as its own name.
                    // Backquotes are always a name there.
                    Dialect::Mysql | Dialect::Sqlite => format!("`{part}`"),
                    Dialect::Postgres => format!("\"{part}\""),
                })
                .collect::<Vec<_>>()
                .join(".")
        };
        let columns: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let parameter = match dialect {
            Dialect::Postgres => "$1",
            Dialect::Sqlite | Dialect::Mysql => "?",
        };
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {} = {parameter}",
            columns.join(", "),
            quote(&self.from),
            quote(&self.key)
        );
        if !self.order_by.is_empty() {
            let order: Vec<String> = self.order_by.iter().map(|c| quote(c)).collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&order.join(", "));
        }
        sql.push_str(&format!(" LIMIT {}", self.row_limit() + 1));
        sql
    }
}

const IDENTIFIER_RULE: &str =
    "must be a plain identifier: 1–64 ASCII letters, digits or '_', not starting with a digit";
const RELATION_RULE: &str = "must be a table or view: `name` or `schema.name`, each a plain identifier (ASCII letters, digits, '_')";

/// A plain SQL identifier: `[A-Za-z_][A-Za-z0-9_]{0,63}`. Nothing that needs quoting
/// to be read, so quoting it cannot change what it names.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_relation(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    (1..=2).contains(&parts.len()) && parts.iter().all(|p| is_identifier(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(yaml: &str) -> SelectDef {
        serde_yaml_ng::from_str(yaml).expect("a select")
    }

    #[test]
    fn the_statement_is_written_from_checked_names_with_one_bound_parameter() {
        let one = select("{from: mz.v_dibao, key: sfzh, columns: [sfzh, xm, dbzt]}");
        assert!(one.problems("s").is_empty());
        assert_eq!(
            one.statement(Dialect::Sqlite),
            "SELECT `sfzh`, `xm`, `dbzt` FROM `mz`.`v_dibao` WHERE `sfzh` = ? LIMIT 2"
        );
        assert_eq!(
            one.statement(Dialect::Mysql),
            "SELECT `sfzh`, `xm`, `dbzt` FROM `mz`.`v_dibao` WHERE `sfzh` = ? LIMIT 2"
        );
        let many = select(
            "{from: v_history, key: sfzh, columns: [ksrq, jsrq], rows: many, order_by: [ksrq], max_rows: 20}",
        );
        assert!(many.problems("s").is_empty());
        assert_eq!(
            many.statement(Dialect::Postgres),
            r#"SELECT "ksrq", "jsrq" FROM "v_history" WHERE "sfzh" = $1 ORDER BY "ksrq" LIMIT 21"#
        );
    }

    #[test]
    fn names_that_could_carry_sql_are_refused_and_never_echoed() {
        for (yaml, path) in [
            (
                r#"{from: "t; DROP TABLE x", key: k, columns: [a]}"#,
                "s.from",
            ),
            (r#"{from: "a.b.c", key: k, columns: [a]}"#, "s.from"),
            (r#"{from: t, key: "k OR 1=1", columns: [a]}"#, "s.key"),
            (
                r#"{from: t, key: k, columns: ["a\" FROM y --"]}"#,
                "s.columns[0]",
            ),
            (r#"{from: t, key: k, columns: ["`a`"]}"#, "s.columns[0]"),
            (r#"{from: t, key: k, columns: ["1a"]}"#, "s.columns[0]"),
            (r#"{from: t, key: k, columns: ["姓名"]}"#, "s.columns[0]"),
            (r#"{from: t, key: k, columns: []}"#, "s.columns"),
            (r#"{from: t, key: k, columns: [a, a]}"#, "s.columns[1]"),
            (
                r#"{from: t, key: k, columns: [a], order_by: [a]}"#,
                "s.order_by",
            ),
            (
                r#"{from: t, key: k, columns: [a], rows: many}"#,
                "s.order_by",
            ),
            (
                r#"{from: t, key: k, columns: [a], rows: many, order_by: ["a desc"]}"#,
                "s.order_by[0]",
            ),
            (
                r#"{from: t, key: k, columns: [a], rows: many, order_by: [a], max_rows: 5000}"#,
                "s.max_rows",
            ),
        ] {
            let problems = select(yaml).problems("s");
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert_eq!(problems[0].path, path, "{yaml}");
            for word in ["DROP", "OR 1", "FROM y", "desc"] {
                assert!(!problems[0].message.contains(word), "{problems:?}");
            }
        }
        assert!(
            serde_yaml_ng::from_str::<SelectDef>("{from: t, key: k, columns: [a], sql: 'x'}")
                .is_err(),
            "no SQL text is taken"
        );
    }
}
