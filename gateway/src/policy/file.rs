//! Policy files (`policies/*.yaml`): grants and deny rules as a department writes them,
//! and their compilation against the connectors and the purpose catalog. Every
//! problem of every rule is reported, with the rule's path in the file.
//!
//! Classification is binding here: a grant of a `never` field does not load, a mask
//! must fit its field's `pii` kind, and a grant of conditional fields must cite its
//! legal basis and name its approver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use connectors::definition::{ConnectorDef, LeafField, Sharing};
use serde::{Deserialize, Serialize};

use super::{Consumers, Deny, Grant, Jurisdiction, Quota, RowCondition, RowRule, Validity};
use crate::mask::Mask;
use crate::purpose::PurposeCatalog;

/// One policy file. Also what an approved access request writes into the registry
/// (a file of one grant), so API grants and file grants have one shape.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denies: Vec<DenyDef>,
}

/// Who a rule applies to. Every selector given must match; within one, any value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumersDef {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::auth::Role>,
    /// 9-digit township codes (GB/T 10114).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub townships: Vec<String>,
    /// 6-digit county codes: every township of the county.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counties: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

/// A field's level in a grant: read under a mask, `default` for the field kind's
/// default mask, or `verify` — confirm a value the caller states (核验), never read it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MaskDef {
    Default(DefaultWord),
    Mask(Mask),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultWord {
    Default,
    /// Verification only: the grant confirms a stated value and never returns one.
    Verify,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowDef {
    /// A top-level field of the record, e.g. `township_code`.
    pub field: String,
    /// `caller_township` (equal to the caller's township code), `caller_county`
    /// (starting with the caller's county code) or `caller_villages` (one of the
    /// caller's village codes: the token's `villages` claim).
    pub equals: RowRule,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
}

/// A grant as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantDef {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub consumers: ConsumersDef,
    pub connector: String,
    pub operations: Vec<String>,
    pub purposes: Vec<String>,
    /// Leaf field path (`name`, `children[].birth_date`) → mask.
    pub fields: BTreeMap<String, MaskDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<RowDef>,
    /// `township`: the grant holds only for subjects who live in the caller's
    /// township, as the county's authority for residence says; `village`: only for
    /// subjects who live in one of the caller's villages (the authority's
    /// `village_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<ValidityDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Keeps accesses out of citizens' access reports for a while (an enforcement
    /// case must not be tipped off): `disclosure: { delay_days: 180 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureDef>,
    #[serde(default)]
    pub legal_basis: String,
    #[serde(default)]
    pub approver: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureDef {
    pub delay_days: u32,
}

/// A deny rule as written. Without `fields`, the whole lookup is refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DenyDef {
    id: String,
    reason: String,
    consumers: ConsumersDef,
    connector: String,
    /// Operations; empty means every operation of the connector.
    #[serde(default)]
    operations: Vec<String>,
    /// Purposes; empty means every purpose.
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

/// What the compiler needs to know about the configured connectors.
pub(crate) struct Catalog<'a> {
    pub(crate) connectors: &'a BTreeMap<String, (Arc<ConnectorDef>, Operations)>,
    /// Connectors whose own files have problems (already reported): rules naming
    /// them are skipped rather than reported again.
    pub(crate) broken: &'a BTreeSet<String>,
    pub(crate) purposes: &'a PurposeCatalog,
    /// Whether the county names an authority for residence (`jurisdiction` in
    /// gateway.yaml), which grants with a jurisdiction need.
    pub(crate) jurisdiction: bool,
}

/// Operation name → its leaf fields.
pub(crate) type Operations = BTreeMap<String, Vec<LeafField>>;

/// Compiles one file's rules, pushing (path, message) for each problem.
pub(crate) fn compile(
    file: PolicyFile,
    catalog: &Catalog<'_>,
    problems: &mut Vec<(String, String)>,
) -> (Vec<Grant>, Vec<Deny>) {
    let mut grants = Vec::new();
    for (i, def) in file.grants.into_iter().enumerate() {
        let at = format!("grants[{i}]");
        let before = problems.len();
        let grant = compile_grant(&at, def, catalog, problems);
        if problems.len() == before {
            grants.extend(grant);
        }
    }
    let mut denies = Vec::new();
    for (i, def) in file.denies.into_iter().enumerate() {
        let at = format!("denies[{i}]");
        let before = problems.len();
        let deny = compile_deny(&at, def, catalog, problems);
        if problems.len() == before {
            denies.extend(deny);
        }
    }
    (grants, denies)
}

fn is_rule_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn compile_consumers(
    at: &str,
    def: ConsumersDef,
    problems: &mut Vec<(String, String)>,
) -> Consumers {
    let mut problem = |path: &str, message: &str| {
        problems.push((format!("{at}.consumers{path}"), message.to_owned()));
    };
    if def.roles.is_empty()
        && def.townships.is_empty()
        && def.counties.is_empty()
        && def.apps.is_empty()
    {
        problem(
            "",
            "name at least one selector: roles, townships, counties or apps",
        );
    }
    for (i, t) in def.townships.iter().enumerate() {
        if t.len() != 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
            problem(
                &format!(".townships[{i}]"),
                "a township code has 9 digits (GB/T 10114)",
            );
        }
    }
    for (i, c) in def.counties.iter().enumerate() {
        if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
            problem(
                &format!(".counties[{i}]"),
                "a county code has 6 digits (GB/T 2260)",
            );
        }
    }
    Consumers {
        roles: def.roles.into_iter().collect(),
        townships: def.townships.into_iter().collect(),
        counties: def.counties.into_iter().collect(),
        apps: def.apps.into_iter().collect(),
    }
}

/// What every rule names: its id, a connector, operations and purposes.
struct Target<'d> {
    id: &'d str,
    connector: &'d str,
    operations: &'d [String],
    purposes: &'d [String],
}

impl Target<'_> {
    /// Reports what does not exist; returns the connector's operations and the
    /// leaves of the operations named (when the connector exists).
    fn check<'c>(
        &self,
        catalog: &'c Catalog<'_>,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<(&'c Operations, Vec<&'c Vec<LeafField>>)> {
        if !is_rule_id(self.id) {
            problem(
                ".id",
                "rule ids use a-z, 0-9, '-' and '_' (1–80 characters)".into(),
            );
        }
        for (i, p) in self.purposes.iter().enumerate() {
            if catalog.purposes.get(p).is_none() {
                problem(
                    &format!(".purposes[{i}]"),
                    format!("`{p}` is not in the purpose catalog"),
                );
            }
        }
        let Some((_, operations)) = catalog.connectors.get(self.connector) else {
            if !catalog.broken.contains(self.connector) {
                problem(
                    ".connector",
                    format!("no connector `{}` is configured", self.connector),
                );
            }
            return None;
        };
        let mut leaves = Vec::new();
        for (i, op) in self.operations.iter().enumerate() {
            match operations.get(op) {
                Some(l) => leaves.push(l),
                None => problem(
                    &format!(".operations[{i}]"),
                    format!("connector `{}` has no operation `{op}`", self.connector),
                ),
            }
        }
        Some((operations, leaves))
    }
}

fn compile_grant(
    at: &str,
    def: GrantDef,
    catalog: &Catalog<'_>,
    problems: &mut Vec<(String, String)>,
) -> Option<Grant> {
    let mut problem = |path: &str, message: String| problems.push((format!("{at}{path}"), message));
    if def.operations.is_empty() {
        problem(".operations", "list the operations the grant covers".into());
    }
    if def.purposes.is_empty() {
        problem(
            ".purposes",
            "list the purposes (事项) the grant is for".into(),
        );
    }
    let target = Target {
        id: &def.id,
        connector: &def.connector,
        operations: &def.operations,
        purposes: &def.purposes,
    };
    let (_, leaves) = target.check(catalog, &mut problem)?;
    if def.fields.is_empty() {
        problem(".fields", "grant at least one field".into());
    }
    let mut fields = BTreeMap::new();
    let mut verify = BTreeSet::new();
    let mut conditional = false;
    for (path, mask_def) in def.fields {
        let here = format!(".fields.{path}");
        // The field must exist, with one classification, in every operation granted.
        let found: Vec<&LeafField> = leaves
            .iter()
            .filter_map(|l| l.iter().find(|f| f.path == path))
            .collect();
        if found.len() != leaves.len() || found.is_empty() {
            problem(
                &here,
                "is not a field of every operation the grant lists".into(),
            );
            continue;
        }
        let leaf = found[0];
        if found.iter().any(|f| f.sharing == Sharing::Never) {
            problem(
                &here,
                "is classified never (不予共享) by its connector and cannot be granted, \
                 not even for verification"
                    .into(),
            );
            continue;
        }
        conditional |= found.iter().any(|f| f.sharing == Sharing::Conditional);
        let mask = match mask_def {
            MaskDef::Default(DefaultWord::Default) => Mask::default_for(leaf.pii),
            MaskDef::Default(DefaultWord::Verify) => {
                if path.contains("[]") {
                    problem(
                        &here,
                        "a field inside a list cannot be verified: verification confirms one \
                         value of the subject's record"
                            .into(),
                    );
                } else if found.iter().any(|f| f.sharing == Sharing::Open) {
                    problem(
                        &here,
                        "is shared without condition (无条件共享): it is read, not granted \
                         for verification"
                            .into(),
                    );
                } else {
                    verify.insert(path);
                }
                continue;
            }
            MaskDef::Mask(m) => m,
        };
        if let Some(f) = found.iter().find(|f| !mask.fits(f.pii)) {
            problem(
                &here,
                format!(
                    "mask `{}` does not fit a field of kind {:?}",
                    mask.operator(),
                    f.pii
                ),
            );
            continue;
        }
        fields.insert(path, mask);
    }
    if conditional && def.legal_basis.trim().is_empty() {
        problem(
            ".legal_basis",
            "a grant of conditional fields (有条件共享) must cite its legal basis".into(),
        );
    }
    if def.approver.trim().is_empty() {
        problem(".approver", "name who approved the grant".into());
    }
    let row = def.row.and_then(|row| {
        let top_level = leaves.iter().all(|l| l.iter().any(|f| f.path == row.field));
        if top_level && !row.field.contains(['.', '[']) {
            Some(RowCondition {
                field: row.field,
                rule: row.equals,
            })
        } else {
            problem(
                ".row.field",
                "must be a top-level field of every operation the grant lists".into(),
            );
            None
        }
    });
    if def.jurisdiction.is_some() && !catalog.jurisdiction {
        problem(
            ".jurisdiction",
            "needs the county's authority for where people live: `jurisdiction` in gateway.yaml"
                .into(),
        );
    }
    let valid = def.valid.map_or(Validity::default(), |v| Validity {
        from: v.from,
        until: v.until,
    });
    if let (Some(from), Some(until)) = (valid.from, valid.until)
        && from > until
    {
        problem(".valid", "`from` is after `until`".into());
    }
    if let Some(q) = &def.quota {
        if [q.per_minute, q.per_day, q.per_user_per_day].contains(&Some(0)) {
            problem(".quota", "a quota must be greater than 0".into());
        }
        if let (Some(share), Some(day)) = (q.per_user_per_day, q.per_day)
            && share > day
        {
            problem(
                ".quota.per_user_per_day",
                "a user's share cannot be more than the whole `per_day`".into(),
            );
        }
    }
    let consumers = compile_consumers(at, def.consumers, problems);
    Some(Grant {
        id: def.id,
        description: def.description,
        consumers,
        connector: def.connector,
        operations: def.operations,
        purposes: def.purposes,
        fields,
        verify,
        row,
        jurisdiction: def.jurisdiction,
        valid,
        quota: def.quota,
        disclosure_delay_days: def.disclosure.map(|d| d.delay_days),
        legal_basis: def.legal_basis,
        approver: def.approver,
    })
}

fn compile_deny(
    at: &str,
    def: DenyDef,
    catalog: &Catalog<'_>,
    problems: &mut Vec<(String, String)>,
) -> Option<Deny> {
    let mut problem = |path: &str, message: String| problems.push((format!("{at}{path}"), message));
    if def.reason.trim().is_empty() {
        problem(".reason", "say why the rule denies".into());
    }
    let target = Target {
        id: &def.id,
        connector: &def.connector,
        operations: &def.operations,
        purposes: &def.purposes,
    };
    let (operations, _) = target.check(catalog, &mut problem)?;
    let fields = def.fields.map(|fields| {
        for (i, f) in fields.iter().enumerate() {
            let known = operations
                .values()
                .any(|leaves| leaves.iter().any(|l| &l.path == f));
            if !known {
                problem(
                    &format!(".fields[{i}]"),
                    format!("`{f}` is not a field of `{}`", def.connector),
                );
            }
        }
        fields.into_iter().collect::<BTreeSet<_>>()
    });
    let consumers = compile_consumers(at, def.consumers, problems);
    Some(Deny {
        id: def.id,
        reason: def.reason,
        consumers,
        connector: def.connector,
        operations: def.operations.into_iter().collect(),
        purposes: def.purposes.into_iter().collect(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{self, ConfigProblem, EmbeddedSource, LoadOptions};
    use crate::county::{COUNTY_CONFIG, COUNTY_FILES};

    /// Loads the demo county with `extra` appended to policies/shebao.yaml.
    fn load_with(extra: &str) -> Result<(), Vec<ConfigProblem>> {
        load_edited(extra, |_, text| text.to_owned())
    }

    /// Loads the demo county with `extra` appended to policies/shebao.yaml and every
    /// file edited by `edit(path, text)`.
    fn load_edited(
        extra: &str,
        edit: impl Fn(&str, &str) -> String,
    ) -> Result<(), Vec<ConfigProblem>> {
        let files = COUNTY_FILES.iter().map(|(path, text)| {
            let text = edit(path, text);
            let text = if *path == "policies/shebao.yaml" {
                format!("{text}{extra}")
            } else {
                text
            };
            (*path, text)
        });
        config::load(
            &EmbeddedSource::new(files),
            Path::new(COUNTY_CONFIG),
            &LoadOptions::default(),
        )
        .map(|_| ())
    }

    const GRANT: &str = r#"
  - id: test-grant
    consumers: { roles: [clerk] }
    connector: shebao
    operations: [insured_by_id]
    purposes: [subsistence_allowance]
    legal_basis: 测试依据
    approver: 测试审批人
"#;

    fn messages(extra: &str) -> Vec<String> {
        load_with(extra)
            .expect_err("the policy must not load")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_demo_county_policies_load() {
        assert_eq!(load_with(""), Ok(()));
    }

    #[test]
    fn a_grant_of_a_never_field_does_not_load() {
        let errors = messages(&format!("{GRANT}    fields: {{ bank_account: keep }}\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("policies/shebao.yaml"), "{errors:?}");
        assert!(
            errors[0].contains("grants[3].fields.bank_account"),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("classified never (不予共享)"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_mask_that_does_not_fit_the_field_kind_does_not_load() {
        let errors = messages(&format!("{GRANT}    fields: {{ name: phone }}\n"));
        assert!(
            errors[0].contains("mask `phone` does not fit"),
            "{errors:?}"
        );
    }

    #[test]
    fn conditional_fields_need_a_legal_basis_and_an_approver() {
        let grant = GRANT
            .replace("    legal_basis: 测试依据\n", "")
            .replace("    approver: 测试审批人\n", "");
        let errors = messages(&format!("{grant}    fields: {{ name: keep }}\n"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("grants[3].legal_basis")));
        assert!(errors.iter().any(|e| e.contains("grants[3].approver")));
    }

    #[test]
    fn a_rule_id_used_twice_is_reported() {
        let twin = GRANT.replace("id: test-grant", "id: shebao-elderly");
        let errors = messages(&format!("{twin}    fields: {{ name: keep }}\n"));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`shebao-elderly` is also used")),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_fields_operations_and_purposes_are_each_reported() {
        let bad = GRANT
            .replace("[insured_by_id]", "[insured_by_id, everything]")
            .replace("[subsistence_allowance]", "[curiosity]");
        let errors = messages(&format!("{bad}    fields: {{ shoe_size: keep }}\n"));
        for expected in [
            "grants[3].operations[1]",
            "grants[3].purposes[0]",
            "grants[3].fields.shoe_size",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:?}"
            );
        }
    }

    #[test]
    fn township_codes_of_consumers_are_checked_at_load() {
        let grant = GRANT.replace(
            "consumers: { roles: [clerk] }",
            r#"consumers: { roles: [clerk], townships: ["13990110", "13990110a"] }"#,
        );
        let errors = messages(&format!("{grant}    fields: {{ name: keep }}\n"));
        for at in ["consumers.townships[0]", "consumers.townships[1]"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(at) && e.contains("9 digits")),
                "{at}: {errors:?}"
            );
        }
    }

    #[test]
    fn grants_held_to_the_callers_villages_load() {
        let grant = GRANT.replace("roles: [clerk]", "roles: [grid_worker]");
        let extra = format!(
            "{grant}    fields: {{ name: keep }}\n    jurisdiction: village\n    row: {{ field: township_code, equals: caller_villages }}\n"
        );
        assert_eq!(load_with(&extra), Ok(()));
    }

    #[test]
    fn a_village_jurisdiction_needs_the_authoritys_village_field() {
        // The demo county's own village grants need it too: each is named.
        let errors: Vec<String> = load_edited("", |path, text| {
            if path == COUNTY_CONFIG {
                text.replace("  village_field: village_code\n", "")
            } else {
                text.to_owned()
            }
        })
        .expect_err("village grants need a village field")
        .iter()
        .map(ToString::to_string)
        .collect();
        for grant in ["hukou-grid-elderly", "shebao-grid-elderly"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("jurisdiction.village_field") && e.contains(grant)),
                "{grant}: {errors:?}"
            );
        }
    }

    #[test]
    fn an_authority_village_field_must_be_a_field_of_its_records() {
        let errors: Vec<String> = load_edited("", |path, text| {
            if path == COUNTY_CONFIG {
                text.replace("village_field: village_code", "village_field: cun")
            } else {
                text.to_owned()
            }
        })
        .expect_err("an unknown village field does not load")
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("jurisdiction.village_field")
                    && e.contains("is not a top-level field")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_row_condition_needs_a_top_level_field_of_the_record() {
        let errors = messages(&format!(
            "{GRANT}    fields: {{ name: keep }}\n    row: {{ field: \"schemes[].status\", equals: caller_township }}\n"
        ));
        assert!(
            errors.iter().any(|e| e.contains("grants[3].row.field")),
            "{errors:?}"
        );
    }
}
