//! Policy decisions: which fields of a record a caller gets, in what form, and why
//! the others are withheld. Default deny.
//!
//! A decision has two phases. [`PolicySet::decide`] runs before the department is
//! called, from the caller, connector, operation and purpose alone: it may refuse the
//! lookup (a role that may not look records up, a deny rule without fields) and it
//! plans every field — `open` fields are kept, `never` fields withheld, conditional
//! fields kept only under a matching grant, denied fields withheld. [`Plan::apply`]
//! runs on the fetched record: grants with a row condition (the subject's township
//! must be the caller's, or their village one of the caller's) are checked, the narrowest refusals win, and the record is
//! minimized and masked. Every field names the rule that allowed, masked or withheld
//! it, and the decision carries the policy version.
//!
//! Candidate grants are found through an index by connector × operation × purpose and
//! then township or county, so the cost of a decision does not grow with the number
//! of grants. Policy files and their compilation are in [`file`]; the explanation the
//! CLI prints and golden test cases are in [`crate::explain`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use connectors::definition::{LeafField, Sharing};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::active::FieldNode;
use crate::auth::{Caller, Role};
use crate::jurisdiction::Residence;
use crate::mask::{Mask, MaskContext};

pub mod file;

/// Who a rule applies to: every selector given must match; within one, any value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers {
    pub roles: BTreeSet<Role>,
    pub townships: BTreeSet<String>,
    pub counties: BTreeSet<String>,
    pub apps: BTreeSet<String>,
}

impl Consumers {
    pub fn matches(&self, caller: &Caller) -> bool {
        let within = |set: &BTreeSet<String>, value: &Option<String>| {
            set.is_empty() || value.as_ref().is_some_and(|v| set.contains(v))
        };
        (self.roles.is_empty() || caller.roles.iter().any(|r| self.roles.contains(r)))
            && within(&self.townships, &caller.township)
            && within(&self.counties, &caller.county)
            && within(&self.apps, &caller.app)
    }
}

/// What a row condition compares the subject's field with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowRule {
    /// The field equals the caller's township code.
    CallerTownship,
    /// The field (a township code) lies in the caller's county.
    CallerCounty,
    /// The field (a village code) is one of the caller's villages (the token's
    /// `villages` claim); never holds for a caller without villages.
    CallerVillages,
}

/// A condition on the fetched record a grant holds under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCondition {
    pub field: String,
    pub rule: RowRule,
}

impl RowCondition {
    pub fn holds(&self, record: &Value, caller: &Caller) -> bool {
        let Some(value) = record.get(&self.field).and_then(Value::as_str) else {
            return false;
        };
        match self.rule {
            RowRule::CallerTownship => caller.township.as_deref() == Some(value),
            RowRule::CallerCounty => caller
                .county
                .as_deref()
                .is_some_and(|c| value.starts_with(c)),
            RowRule::CallerVillages => caller.villages.contains(value),
        }
    }

    pub fn describe(&self) -> String {
        match self.rule {
            RowRule::CallerTownship => {
                format!("if the subject's {} is the caller's township", self.field)
            }
            RowRule::CallerCounty => {
                format!("if the subject's {} is in the caller's county", self.field)
            }
            RowRule::CallerVillages => {
                format!(
                    "if the subject's {} is one of the caller's villages",
                    self.field
                )
            }
        }
    }
}

/// Where the subject must live for a grant to hold, as the county's authority for
/// residence says ([`crate::jurisdiction`]): a first-class check, asked of the
/// authority by the gateway, not a comparison with a field of the department's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jurisdiction {
    /// The subject lives in the caller's township.
    Township,
    /// The subject lives in one of the caller's villages (the token's `villages`
    /// claim), as the authority's `village_field` says; never holds for a caller
    /// without villages.
    Village,
}

impl Jurisdiction {
    pub fn describe(self) -> &'static str {
        match self {
            Jurisdiction::Township => "to residents of the caller's township",
            Jurisdiction::Village => "to residents of the caller's villages",
        }
    }

    /// Whether a subject living at `residence` is in the caller's jurisdiction.
    pub fn holds(self, caller: &Caller, residence: &Residence) -> bool {
        let township = residence.township.is_some() && residence.township == caller.township;
        match self {
            Jurisdiction::Township => township,
            Jurisdiction::Village => {
                township
                    && residence
                        .village
                        .as_ref()
                        .is_some_and(|v| caller.villages.contains(v))
            }
        }
    }
}

/// Which of the caller's jurisdictions the subject lives outside of, as the
/// jurisdiction check found; grants held to one of those do not hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outside {
    pub township: bool,
    pub villages: bool,
}

impl Outside {
    /// Not checked, or inside: no grant fails for its jurisdiction.
    pub const NOWHERE: Outside = Outside {
        township: false,
        villages: false,
    };
    /// A person the authority does not know: outside every jurisdiction.
    pub const EVERYWHERE: Outside = Outside {
        township: true,
        villages: true,
    };

    /// Where a subject living at `residence` stands to `caller`'s jurisdictions.
    pub fn of(caller: &Caller, residence: &Residence) -> Outside {
        Outside {
            township: !Jurisdiction::Township.holds(caller, residence),
            villages: !Jurisdiction::Village.holds(caller, residence),
        }
    }

    /// Whether a grant held to `jurisdiction` fails for this subject.
    pub fn excludes(self, jurisdiction: Jurisdiction) -> bool {
        match jurisdiction {
            Jurisdiction::Township => self.township,
            Jurisdiction::Village => self.villages,
        }
    }
}

/// When a grant is in force (dates inclusive, China Standard Time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl Validity {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from.is_none_or(|f| f <= day) && self.until.is_none_or(|u| day <= u)
    }
}

/// A grant's quota; enforced by the rate limiter (`limits`), recorded here.
///
/// `per_minute` and `per_day` count the lookups of each township using the grant (of
/// each user, for a caller without a township); `per_day` is a calendar day of China
/// Standard Time. `per_user_per_day` is each user's share of the day: by default a
/// fraction of `per_day` (`rate_limits.grant_user_share_percent`), so that one user
/// cannot use up the township's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default)]
    pub per_minute: Option<u32>,
    #[serde(default)]
    pub per_day: Option<u32>,
    #[serde(default)]
    pub per_user_per_day: Option<u32>,
}

/// A compiled grant: who × connector × operations × purposes → fields and masks.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: String,
    pub description: String,
    pub consumers: Consumers,
    pub connector: String,
    pub operations: Vec<String>,
    pub purposes: Vec<String>,
    pub fields: BTreeMap<String, Mask>,
    /// Fields granted for verification only (`verify`): a stated value is confirmed
    /// or not, the value itself never leaves. Every field of `fields` may be verified
    /// too (reading implies verifying).
    pub verify: BTreeSet<String>,
    pub row: Option<RowCondition>,
    /// Holds only for subjects who live in the caller's jurisdiction.
    pub jurisdiction: Option<Jurisdiction>,
    pub valid: Validity,
    pub quota: Option<Quota>,
    /// Accesses under this grant stay out of citizens' access reports this many days.
    pub disclosure_delay_days: Option<u32>,
    pub legal_basis: String,
    pub approver: String,
}

/// A compiled deny rule. It overrides every grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub id: String,
    pub reason: String,
    pub consumers: Consumers,
    pub connector: String,
    /// Empty: every operation.
    pub operations: BTreeSet<String>,
    /// Empty: every purpose.
    pub purposes: BTreeSet<String>,
    /// `None`: the whole lookup is refused.
    pub fields: Option<BTreeSet<String>>,
}

impl Deny {
    fn applies(&self, caller: &Caller, operation: &str, purpose: &str) -> bool {
        (self.operations.is_empty() || self.operations.contains(operation))
            && (self.purposes.is_empty() || self.purposes.contains(purpose))
            && self.consumers.matches(caller)
    }
}

/// Today in China Standard Time (UTC+8), the calendar grants and masks go by.
pub fn china_today() -> NaiveDate {
    crate::clock::china_date(chrono::Utc::now())
}

/// What a decision is for: reading fields, or confirming values the caller states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Level {
    /// A lookup: fields leave the gateway under their masks.
    #[default]
    Read,
    /// A verification (核验): fields read or verify granted are compared inside the
    /// gateway, unmasked, and only match or mismatch leaves.
    Verify,
}

/// Roles that may look records up.
pub const LOOKUP_ROLES: [Role; 3] = [Role::Clerk, Role::GridWorker, Role::TownshipLead];

/// The rule id named when a caller's role may not look records up.
pub const ROLE_RULE: &str = "lookup-roles";

/// Why a lookup is refused as a whole (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub reason: RefusalReason,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    Role,
    DeniedByRule,
    RowCondition,
    /// The subject does not live in the caller's jurisdiction — or is not known to
    /// the authority: the two get the same answer.
    Jurisdiction,
}

impl RefusalReason {
    /// The name in answers and audit records (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Role => "role",
            RefusalReason::DeniedByRule => "denied_by_rule",
            RefusalReason::RowCondition => "row_condition",
            RefusalReason::Jurisdiction => "jurisdiction",
        }
    }
}

/// Why a field was not returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithheldReason {
    /// Conditional field and no grant covers it.
    NotGranted,
    /// Classified `never` (不予共享).
    NeverShared,
    /// A deny rule names it.
    DeniedByRule,
    /// Granted only under a row condition the subject does not meet.
    RowCondition,
    /// Granted only for subjects in the caller's jurisdiction, and this one is not.
    Jurisdiction,
    /// Granted for verification only (核验): a stated value can be confirmed through
    /// `POST /v1/verify`, the value is not read.
    VerifyOnly,
}

impl WithheldReason {
    /// The name in answers and audit records (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            WithheldReason::NotGranted => "not_granted",
            WithheldReason::NeverShared => "never_shared",
            WithheldReason::DeniedByRule => "denied_by_rule",
            WithheldReason::RowCondition => "row_condition",
            WithheldReason::Jurisdiction => "jurisdiction",
            WithheldReason::VerifyOnly => "verify_only",
        }
    }
}

/// A withheld field, with its dotted path and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Withheld {
    #[schema(example = "ethnicity")]
    pub field: String,
    /// The field's sharing type: `open`, `conditional` or `never`.
    #[schema(example = "conditional")]
    pub sharing: &'static str,
    pub reason: WithheldReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A returned field: the mask applied and the rule that allowed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Returned {
    /// The mask applied (`keep`: the value as the department holds it).
    #[schema(example = "keep")]
    pub mask: &'static str,
    /// The grant that released it (`open` for a field shared without condition).
    #[schema(example = "hukou-birth-registration")]
    pub rule: String,
}

/// The plan for one field, before the record is seen.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldPlan<'a> {
    /// Open field: kept, under no grant.
    Open,
    /// Conditional field granted by these grants (each with its mask).
    Granted(Vec<(&'a Grant, &'a Mask)>),
    Withheld(WithheldReason, Option<String>),
}

/// The first phase of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub fields: Vec<(LeafField, FieldPlan<'a>)>,
    /// Grants that matched the caller, connector, operation, purpose and date.
    pub grants: Vec<&'a Grant>,
    pub policy_version: &'a str,
}

/// The outcome of a lookup: the minimized, masked record and its account.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub data: Value,
    pub fields: BTreeMap<String, Returned>,
    pub withheld: Vec<Withheld>,
    /// Every rule that allowed, masked or withheld a field.
    pub rules: BTreeSet<String>,
    /// The latest day a releasing grant's delayed disclosure reaches, if any.
    pub disclose_after: Option<NaiveDate>,
}

type Bucket = (
    HashMap<String, Vec<usize>>,
    HashMap<String, Vec<usize>>,
    Vec<usize>,
);

/// All grants and deny rules, indexed.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub version: String,
    grants: Vec<Grant>,
    denies: Vec<Deny>,
    /// connector → operation → purpose → (by township, by county, everywhere).
    index: HashMap<String, HashMap<String, HashMap<String, Bucket>>>,
}

impl PolicySet {
    pub fn new(grants: Vec<Grant>, denies: Vec<Deny>, version: String) -> PolicySet {
        let mut index: HashMap<String, HashMap<String, HashMap<String, Bucket>>> = HashMap::new();
        for (i, g) in grants.iter().enumerate() {
            for op in &g.operations {
                for purpose in &g.purposes {
                    let bucket = index
                        .entry(g.connector.clone())
                        .or_default()
                        .entry(op.clone())
                        .or_default()
                        .entry(purpose.clone())
                        .or_default();
                    if !g.consumers.townships.is_empty() {
                        for t in &g.consumers.townships {
                            bucket.0.entry(t.clone()).or_default().push(i);
                        }
                    } else if !g.consumers.counties.is_empty() {
                        for c in &g.consumers.counties {
                            bucket.1.entry(c.clone()).or_default().push(i);
                        }
                    } else {
                        bucket.2.push(i);
                    }
                }
            }
        }
        PolicySet {
            version,
            grants,
            denies,
            index,
        }
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    pub fn denies(&self) -> &[Deny] {
        &self.denies
    }

    /// The first phase of a lookup: refuse it, or plan every field.
    pub fn decide<'a>(
        &'a self,
        caller: &Caller,
        connector: &str,
        operation: &str,
        leaves: &[LeafField],
        purpose: &str,
        today: NaiveDate,
    ) -> Result<Plan<'a>, Refusal> {
        self.decide_for(
            Level::Read,
            caller,
            connector,
            operation,
            leaves,
            purpose,
            today,
        )
    }

    /// The first phase at `level`: for [`Level::Verify`], a field is planned kept
    /// (unmasked, for comparison inside the gateway) under every grant that reads or
    /// verifies it; for [`Level::Read`], a field granted only for verification is
    /// withheld as [`WithheldReason::VerifyOnly`].
    #[allow(clippy::too_many_arguments)]
    pub fn decide_for<'a>(
        &'a self,
        level: Level,
        caller: &Caller,
        connector: &str,
        operation: &str,
        leaves: &[LeafField],
        purpose: &str,
        today: NaiveDate,
    ) -> Result<Plan<'a>, Refusal> {
        if !LOOKUP_ROLES.iter().any(|r| caller.roles.contains(r)) {
            return Err(Refusal {
                rule: ROLE_RULE.to_owned(),
                reason: RefusalReason::Role,
                detail: "Only clerks, grid workers and township leads look records up.".to_owned(),
            });
        }
        let mut denied: BTreeMap<&str, &str> = BTreeMap::new();
        for deny in self.denies.iter().filter(|d| d.connector == connector) {
            if !deny.applies(caller, operation, purpose) {
                continue;
            }
            match &deny.fields {
                None => {
                    return Err(Refusal {
                        rule: deny.id.clone(),
                        reason: RefusalReason::DeniedByRule,
                        detail: deny.reason.clone(),
                    });
                }
                Some(fields) => {
                    for f in fields {
                        denied.entry(f.as_str()).or_insert(deny.id.as_str());
                    }
                }
            }
        }
        let grants = self.candidates(caller, connector, operation, purpose, today);
        let fields = leaves
            .iter()
            .map(|leaf| {
                let plan = if let Some(rule) = denied.get(leaf.path.as_str()) {
                    FieldPlan::Withheld(WithheldReason::DeniedByRule, Some((*rule).to_owned()))
                } else {
                    match leaf.sharing {
                        Sharing::Never => FieldPlan::Withheld(WithheldReason::NeverShared, None),
                        Sharing::Open => FieldPlan::Open,
                        Sharing::Conditional => {
                            let granting: Vec<(&Grant, &Mask)> = match level {
                                Level::Read => grants
                                    .iter()
                                    .filter_map(|g| g.fields.get(&leaf.path).map(|m| (*g, m)))
                                    .collect(),
                                Level::Verify => grants
                                    .iter()
                                    .filter(|g| {
                                        g.fields.contains_key(&leaf.path)
                                            || g.verify.contains(&leaf.path)
                                    })
                                    .map(|g| (*g, &KEEP))
                                    .collect(),
                            };
                            let verifying =
                                || grants.iter().find(|g| g.verify.contains(&leaf.path));
                            if !granting.is_empty() {
                                FieldPlan::Granted(granting)
                            } else if let Some(g) = verifying() {
                                FieldPlan::Withheld(WithheldReason::VerifyOnly, Some(g.id.clone()))
                            } else {
                                FieldPlan::Withheld(WithheldReason::NotGranted, None)
                            }
                        }
                    }
                };
                (leaf.clone(), plan)
            })
            .collect();
        Ok(Plan {
            fields,
            grants,
            policy_version: &self.version,
        })
    }

    fn candidates<'a>(
        &'a self,
        caller: &Caller,
        connector: &str,
        operation: &str,
        purpose: &str,
        today: NaiveDate,
    ) -> Vec<&'a Grant> {
        let Some(bucket) = self
            .index
            .get(connector)
            .and_then(|ops| ops.get(operation))
            .and_then(|purposes| purposes.get(purpose))
        else {
            return Vec::new();
        };
        let by_township = caller.township.as_ref().and_then(|t| bucket.0.get(t));
        let by_county = caller.county.as_ref().and_then(|c| bucket.1.get(c));
        let mut ids: Vec<usize> = by_township
            .into_iter()
            .chain(by_county)
            .flatten()
            .chain(&bucket.2)
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|i| &self.grants[i])
            .filter(|g| g.valid.contains(today) && g.consumers.matches(caller))
            .collect()
    }
}

/// The value as the department holds it: the mask of open fields, and of every field
/// a verification compares.
static KEEP: Mask = Mask::Keep;

/// How revealing a mask is, for choosing among grants: lower reveals more.
fn openness(mask: &Mask) -> u8 {
    match mask {
        Mask::Keep => 0,
        Mask::Redact => 2,
        _ => 1,
    }
}

impl Plan<'_> {
    /// Whether a grant of the plan holds only in the caller's jurisdiction: then the
    /// gateway must know where the subject lives before the department is asked.
    pub fn needs_jurisdiction(&self) -> bool {
        self.grants.iter().any(|g| g.jurisdiction.is_some())
    }

    /// Whether a grant of the plan fails for a subject `outside` some of the caller's
    /// jurisdictions (what the audit event calls `outside`).
    pub fn is_outside(&self, outside: Outside) -> bool {
        self.grants
            .iter()
            .any(|g| g.jurisdiction.is_some_and(|j| outside.excludes(j)))
    }

    /// The refusal for a subject `outside` the caller's jurisdiction (or unknown to
    /// the authority: [`Outside::EVERYWHERE`]), when every grant of the plan needs a
    /// jurisdiction the subject is outside of: given before the department is asked,
    /// so that it is the same whether or not the person exists. `None` when a grant
    /// may still release something.
    pub fn refuse_outside(&self, outside: Outside) -> Option<Refusal> {
        let first = self.grants.first()?;
        if !self
            .grants
            .iter()
            .all(|g| g.jurisdiction.is_some_and(|j| outside.excludes(j)))
        {
            return None;
        }
        let scope = first
            .jurisdiction
            .map(Jurisdiction::describe)
            .unwrap_or_default();
        Some(Refusal {
            rule: first.id.clone(),
            reason: RefusalReason::Jurisdiction,
            detail: format!(
                "Grant `{}` applies only {scope}; this person is not registered there.",
                first.id
            ),
        })
    }

    /// The second phase: check row conditions on the record, then minimize and mask.
    /// `outside`: the caller's jurisdictions the subject is not in, so grants that need
    /// one of them do not hold.
    pub fn apply(
        &self,
        record: &Value,
        caller: &Caller,
        tree: &BTreeMap<String, FieldNode>,
        ctx: &MaskContext<'_>,
        outside: Outside,
    ) -> Result<Outcome, Refusal> {
        if let Some(refusal) = self.refuse_outside(outside) {
            return Err(refusal);
        }
        // Each grant that does not hold for this subject, and why.
        let failing: BTreeMap<&str, WithheldReason> = self
            .grants
            .iter()
            .filter_map(|g| {
                if g.jurisdiction.is_some_and(|j| outside.excludes(j)) {
                    Some((g.id.as_str(), WithheldReason::Jurisdiction))
                } else if g.row.as_ref().is_some_and(|r| !r.holds(record, caller)) {
                    Some((g.id.as_str(), WithheldReason::RowCondition))
                } else {
                    None
                }
            })
            .collect();
        if !self.grants.is_empty() && failing.len() == self.grants.len() {
            let grant = self.grants[0];
            let condition = grant
                .row
                .as_ref()
                .map(RowCondition::describe)
                .unwrap_or_default();
            return Err(Refusal {
                rule: grant.id.clone(),
                reason: RefusalReason::RowCondition,
                detail: format!("Grant `{}` applies only {condition}.", grant.id),
            });
        }
        let mut masks: HashMap<&str, &Mask> = HashMap::new();
        let mut fields = BTreeMap::new();
        let mut withheld = Vec::new();
        let mut rules = BTreeSet::new();
        for (leaf, plan) in &self.fields {
            let mut withhold = |reason, rule: Option<String>| {
                if let Some(r) = &rule {
                    rules.insert(r.clone());
                }
                withheld.push(Withheld {
                    field: leaf.path.clone(),
                    sharing: leaf.sharing.as_str(),
                    reason,
                    rule,
                });
            };
            match plan {
                FieldPlan::Open => {
                    masks.insert(&leaf.path, &KEEP);
                    fields.insert(
                        leaf.path.clone(),
                        Returned {
                            mask: KEEP.operator(),
                            rule: "open".to_owned(),
                        },
                    );
                }
                FieldPlan::Withheld(reason, rule) => withhold(*reason, rule.clone()),
                FieldPlan::Granted(granting) => {
                    let best = granting
                        .iter()
                        .filter(|(g, _)| !failing.contains_key(g.id.as_str()))
                        .min_by(|(ga, ma), (gb, mb)| {
                            openness(ma).cmp(&openness(mb)).then(ga.id.cmp(&gb.id))
                        });
                    match best {
                        Some((grant, mask)) => {
                            masks.insert(&leaf.path, mask);
                            rules.insert(grant.id.clone());
                            fields.insert(
                                leaf.path.clone(),
                                Returned {
                                    mask: mask.operator(),
                                    rule: grant.id.clone(),
                                },
                            );
                        }
                        None => {
                            let first = granting.first().map(|(g, _)| g.id.as_str());
                            let reason = first
                                .and_then(|id| failing.get(id).copied())
                                .unwrap_or(WithheldReason::RowCondition);
                            withhold(reason, first.map(str::to_owned))
                        }
                    }
                }
            }
        }
        let data = project(tree, "", record, &masks, ctx);
        let disclose_after = self
            .grants
            .iter()
            .filter(|g| fields.values().any(|f| f.rule == g.id))
            .filter_map(|g| g.disclosure_delay_days)
            .max()
            .map(|days| ctx.today + chrono::Duration::days(i64::from(days)));
        Ok(Outcome {
            data,
            fields,
            withheld,
            rules,
            disclose_after,
        })
    }
}

/// Keeps only fields with a mask, masked; follows the connector's field tree, so a
/// value the tree does not declare is never copied.
fn project(
    tree: &BTreeMap<String, FieldNode>,
    prefix: &str,
    value: &Value,
    masks: &HashMap<&str, &Mask>,
    ctx: &MaskContext<'_>,
) -> Value {
    let Value::Object(fields) = value else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (name, node) in tree {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let child = fields.get(name).unwrap_or(&Value::Null);
        match node {
            FieldNode::Leaf(_) => {
                if let Some(mask) = masks.get(path.as_str()) {
                    out.insert(name.clone(), mask.apply(child, ctx));
                }
            }
            FieldNode::Object(children) => {
                let inner = format!("{path}.");
                if masks.keys().any(|k| k.starts_with(&inner)) {
                    let v = match child {
                        Value::Object(_) => project(children, &path, child, masks, ctx),
                        _ => Value::Null,
                    };
                    out.insert(name.clone(), v);
                }
            }
            FieldNode::List(children) => {
                let item_path = format!("{path}[]");
                let inner = format!("{item_path}.");
                if masks.keys().any(|k| k.starts_with(&inner)) {
                    let items = match child {
                        Value::Array(items) => items
                            .iter()
                            .map(|item| project(children, &item_path, item, masks, ctx))
                            .collect(),
                        _ => Vec::new(),
                    };
                    out.insert(name.clone(), Value::Array(items));
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
