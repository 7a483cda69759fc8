//! `gateway policy test DIR`: table-driven golden cases for the policies, like
//! `opa test`. Each case names a caller, a connector operation, a purpose and a
//! canonical input record, and the expected outcome: the returned data and the
//! withheld fields, or a refusal with its rule. The demo county's cases live in
//! `policies/tests/`, and CI runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use super::CallerDef;
use crate::config::ActiveConfig;
use crate::jurisdiction::Residence;
use crate::mask::{MaskContext, PseudonymKey};
use crate::policy::Outside;

/// The pseudonym key golden cases run with, so expected pseudonyms are stable.
pub const GOLDEN_PSEUDONYM_KEY: &[u8; 32] = b"golden-cases-pseudonym-key-00001";

/// A file of cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub caller: CallerDef,
    pub connector: String,
    pub operation: String,
    pub purpose: String,
    /// The day the decision is made (grants' validity, age bands); default 2026-11-01.
    #[serde(default)]
    pub today: Option<NaiveDate>,
    /// The canonical record the department would return.
    #[serde(default)]
    pub record: Value,
    /// Where the subject lives, as the county's authority for residence would say
    /// (grants with `jurisdiction: township` or `village`): a 9-digit township code, or
    /// a 12-digit village code (in the township of its first nine digits); by default
    /// the record's own township and village fields when the lookup is the
    /// authority's, else unknown (outside).
    #[serde(default)]
    pub lives_in: Option<String>,
    pub expect: Expect,
}

/// What the case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A refusal: the deciding rule.
    #[serde(default)]
    pub refused_by: Option<String>,
    /// The returned data, exactly.
    #[serde(default)]
    pub data: Option<Value>,
    /// Withheld field → reason (`not_granted`, `never_shared`, `denied_by_rule`,
    /// `row_condition`), exactly.
    #[serde(default)]
    pub withheld: Option<BTreeMap<String, String>>,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// `None` if it passed; else what differed.
    pub failure: Option<String>,
}

/// Runs every `*.yaml` case file in `dir` (sorted), returning each case's result, or
/// an error naming a file that cannot be read or parsed.
pub fn run_dir(config: &ActiveConfig, dir: &Path) -> Result<Vec<CaseResult>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no case files (*.yaml)", dir.display()));
    }
    let mut results = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let cases: CaseFile = connectors::definition::parse_yaml(&text)
            .map_err(|p| format!("{}: {}: {}", file.display(), p.path, p.message))?;
        for case in cases.cases {
            let failure = run_case(config, &case).err();
            results.push(CaseResult {
                file: file.clone(),
                name: case.name,
                failure,
            });
        }
    }
    Ok(results)
}

/// Runs one case.
pub fn run_case(config: &ActiveConfig, case: &Case) -> Result<(), String> {
    let key = PseudonymKey::new(GOLDEN_PSEUDONYM_KEY).map_err(|e| e.to_string())?;
    let today = case
        .today
        .or_else(|| NaiveDate::from_ymd_opt(2026, 11, 1))
        .ok_or("no date")?;
    let connector = config
        .connectors
        .get(&case.connector)
        .ok_or_else(|| format!("no connector `{}`", case.connector))?;
    let op = connector
        .operations
        .get(&case.operation)
        .ok_or_else(|| format!("no operation `{}`", case.operation))?;
    if config.purposes.get(&case.purpose).is_none() {
        return Err(format!("`{}` is not in the purpose catalog", case.purpose));
    }
    if let Err(v) = op.schema.check(&case.record) {
        return Err(format!(
            "the case's record violates the schema at {} ({})",
            v.instance_path, v.schema_path
        ));
    }
    let caller = case.caller.caller()?;
    let ctx = MaskContext { key: &key, today };
    let outcome = config
        .policies
        .decide(
            &caller,
            &case.connector,
            &case.operation,
            &op.leaves,
            &case.purpose,
            today,
        )
        .and_then(|plan| {
            let lives = match &case.lives_in {
                Some(code) => Residence::from_code(code),
                None => config
                    .jurisdiction
                    .as_ref()
                    .filter(|a| a.is_authority(&case.connector, &case.operation))
                    .map(|a| a.residence_of(&case.record))
                    .unwrap_or_default(),
            };
            let outside = Outside::of(&caller, &lives);
            plan.apply(&case.record, &caller, &op.fields, &ctx, outside)
        });
    match (&case.expect.refused_by, outcome) {
        (Some(rule), Err(refusal)) if *rule == refusal.rule => Ok(()),
        (Some(rule), Err(refusal)) => Err(format!(
            "expected a refusal by `{rule}`, got one by `{}`",
            refusal.rule
        )),
        (Some(rule), Ok(_)) => Err(format!("expected a refusal by `{rule}`, got data")),
        (None, Err(refusal)) => Err(format!(
            "expected data, got a refusal by `{}`: {}",
            refusal.rule, refusal.detail
        )),
        (None, Ok(outcome)) => {
            if let Some(data) = &case.expect.data
                && *data != outcome.data
            {
                return Err(format!(
                    "data differs\n  expected: {data}\n  actual:   {}",
                    outcome.data
                ));
            }
            if let Some(withheld) = &case.expect.withheld {
                let actual: BTreeMap<String, String> = outcome
                    .withheld
                    .iter()
                    .map(|w| (w.field.clone(), w.reason.as_str().to_owned()))
                    .collect();
                if *withheld != actual {
                    return Err(format!(
                        "withheld differs\n  expected: {withheld:?}\n  actual:   {actual:?}"
                    ));
                }
            }
            Ok(())
        }
    }
}
