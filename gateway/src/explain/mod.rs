//! `gateway policy explain`: the decision for one caller, connector, operation and
//! purpose, field by field — returned or withheld, the mask, and the rule — without
//! calling any department; and golden test cases of policies ([`golden`]). Works on
//! a loaded configuration, so it sits above `config` and `policy`.

pub mod golden;

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::config::ActiveConfig;
use crate::policy::{FieldPlan, RefusalReason};

/// A caller as written in a claims file or a golden case (what a token would carry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerDef {
    pub sub: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub township: Option<String>,
    /// 12-digit village codes under `township` (a grid worker's villages).
    #[serde(default)]
    pub villages: Vec<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
}

impl CallerDef {
    /// The caller, held to the token's rules for division codes: a 9-digit township,
    /// villages of 12 digits under it.
    pub fn caller(&self) -> Result<Caller, String> {
        if let Some(t) = &self.township
            && (t.len() != 9 || !t.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("caller.township: a township code has 9 digits (GB/T 10114)".to_owned());
        }
        let villages = crate::auth::check_villages(self.township.as_deref(), &self.villages)
            .map_err(|problem| format!("caller.villages: {problem}"))?;
        Ok(Caller {
            user: self.sub.clone(),
            issuer: "policy-files".to_owned(),
            roles: self.roles.iter().copied().collect(),
            county: self
                .township
                .as_ref()
                .and_then(|t| t.get(..6))
                .map(str::to_owned),
            township: self.township.clone(),
            villages,
            department: self.department.clone(),
            app: self.app.clone(),
            expires_at: i64::MAX,
        })
    }
}

/// The explanation as text, or why there is none (unknown connector, …).
pub fn explain(
    config: &ActiveConfig,
    caller: &Caller,
    connector: &str,
    operation: &str,
    purpose: &str,
    today: NaiveDate,
) -> Result<String, String> {
    let active = config
        .connectors
        .get(connector)
        .ok_or_else(|| format!("no connector `{connector}`"))?;
    let op = active
        .operations
        .get(operation)
        .ok_or_else(|| format!("connector `{connector}` has no operation `{operation}`"))?;
    let purpose = config
        .purposes
        .get(purpose)
        .ok_or_else(|| format!("`{purpose}` is not in the purpose catalog"))?;
    let mut out = String::new();
    let roles: Vec<&str> = caller.roles.iter().map(|r| r.as_str()).collect();
    let _ = writeln!(
        out,
        "{connector}.{operation} for {} ({}) — caller {} [{}] township {} — policy {} on {today}",
        purpose.code,
        purpose.name,
        caller.user,
        roles.join(", "),
        caller.township.as_deref().unwrap_or("-"),
        config.policies.version,
    );
    let plan = match config.policies.decide(
        caller,
        connector,
        operation,
        &op.leaves,
        &purpose.code,
        today,
    ) {
        Ok(plan) => plan,
        Err(refusal) => {
            let kind = match refusal.reason {
                RefusalReason::Role => "role",
                RefusalReason::DeniedByRule => "deny rule",
                RefusalReason::RowCondition => "row condition",
                RefusalReason::Jurisdiction => "jurisdiction",
            };
            let _ = writeln!(
                out,
                "REFUSED (403) by {kind} `{}`: {}",
                refusal.rule, refusal.detail
            );
            return Ok(out);
        }
    };
    let width = op
        .leaves
        .iter()
        .map(|l| l.path.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:<11}  {:<9}  {:<10}  rule",
        "field", "sharing", "decision", "mask"
    );
    for (leaf, field) in &plan.fields {
        let (decision, mask, rule) = match field {
            FieldPlan::Open => ("returned", "keep".to_owned(), "open".to_owned()),
            FieldPlan::Withheld(reason, rule) => (
                "withheld",
                "-".to_owned(),
                format!(
                    "{}{}",
                    reason.as_str(),
                    rule.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            ),
            FieldPlan::Granted(granting) => {
                let Some((grant, mask)) = granting.first() else {
                    continue;
                };
                let mut condition = grant
                    .row
                    .as_ref()
                    .map(|r| format!(" {}", r.describe()))
                    .unwrap_or_default();
                if let Some(j) = grant.jurisdiction {
                    condition.push_str(&format!(" only {}", j.describe()));
                }
                (
                    "returned",
                    mask.operator().to_owned(),
                    format!("{}{condition}", grant.id),
                )
            }
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<11}  {:<9}  {:<10}  {rule}",
            leaf.path,
            leaf.sharing.as_str(),
            decision,
            mask
        );
    }
    Ok(out)
}
