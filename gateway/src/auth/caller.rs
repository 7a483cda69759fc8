//! Who is calling: the [`Caller`] built from a verified token's claims, its
//! [`Role`]s, and the claim rules — registered claims (`sub`, `aud`, `exp`, `nbf`,
//! `iat`) and the gateway's own (`roles`, `township`, `county`, `villages`,
//! `department`, `app`), including what each role requires.
//!
//! Only [`check_claims`] turns claims into a caller, and only after the signature
//! was verified.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::AuthError;

/// A role a token grants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Township service-centre clerk (窗口人员).
    Clerk,
    /// Grid worker (网格员).
    GridWorker,
    /// Township lead: requests access for the township.
    TownshipLead,
    /// Department data admin: registers connectors, approves access.
    DeptAdmin,
    /// Privacy officer: searches and verifies the audit log.
    PrivacyOfficer,
    /// Operator: runs the gateway.
    Operator,
    /// The county's data-governance office (大数据局): owns the county's classification
    /// and reviews every change that loosens it.
    Governance,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::Clerk,
        Role::GridWorker,
        Role::TownshipLead,
        Role::DeptAdmin,
        Role::PrivacyOfficer,
        Role::Operator,
        Role::Governance,
    ];

    /// The name used in tokens and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::GridWorker => "grid_worker",
            Role::TownshipLead => "township_lead",
            Role::DeptAdmin => "dept_admin",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Operator => "operator",
            Role::Governance => "governance",
        }
    }

    /// Parses a role name as written in tokens.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Township roles act for one township and need the `township` claim.
    pub fn needs_township(self) -> bool {
        matches!(self, Role::Clerk | Role::GridWorker | Role::TownshipLead)
    }

    /// Department roles act for one department and need the `department` claim.
    pub fn needs_department(self) -> bool {
        matches!(self, Role::DeptAdmin)
    }

    /// Grid workers act for the villages of their grids and need the `villages` claim:
    /// without it a grid worker would not be confined to anything narrower than the
    /// township, so the token is refused rather than read as "the whole township".
    pub fn needs_villages(self) -> bool {
        matches!(self, Role::GridWorker)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    /// The token's `sub`.
    pub user: String,
    /// The token's `iss` (one of the configured issuers).
    pub issuer: String,
    /// At least one role.
    pub roles: BTreeSet<Role>,
    /// Nine-digit township code (GB/T 10114).
    pub township: Option<String>,
    /// Six-digit county code (GB/T 2260): the township's first six digits, or the
    /// `county` claim.
    pub county: Option<String>,
    /// Twelve-digit village (村/社区) codes the caller serves, each under `township`:
    /// the `villages` claim (a grid worker's villages). Empty when the token names none.
    pub villages: BTreeSet<String>,
    /// Department id.
    pub department: Option<String>,
    /// The calling application, when the token names one.
    pub app: Option<String>,
    /// The token's `exp` (Unix seconds).
    pub expires_at: i64,
}

impl Caller {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// What claims are checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRules<'a> {
    pub(crate) audience: &'a str,
    pub(crate) leeway_s: i64,
    pub(crate) now: i64,
}

/// Longest accepted `sub`, `department` and `app`.
const MAX_ID_LEN: usize = 256;

/// The most villages one token may name.
pub const MAX_VILLAGES: usize = 64;

/// Why a `villages` claim (or a configured list of a caller's villages) is refused.
/// Names the rule broken, never the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VillagesProblem {
    /// Not a list of strings.
    NotAList,
    /// A code is not 12 digits.
    NotAVillageCode,
    /// A code does not start with the caller's 9-digit township code.
    OutsideTownship,
    /// Villages without a `township` claim.
    NoTownship,
    /// More than [`MAX_VILLAGES`] codes.
    TooMany,
}

impl VillagesProblem {
    /// A stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            VillagesProblem::NotAList => "not_a_list",
            VillagesProblem::NotAVillageCode => "not_a_village_code",
            VillagesProblem::OutsideTownship => "outside_township",
            VillagesProblem::NoTownship => "no_township",
            VillagesProblem::TooMany => "too_many",
        }
    }

    /// The rule broken, in words.
    pub fn describe(self) -> &'static str {
        match self {
            VillagesProblem::NotAList => "`villages` is a list of village codes",
            VillagesProblem::NotAVillageCode => "a village code has 12 digits",
            VillagesProblem::OutsideTownship => {
                "each village must lie in the township (its code starts with the township's 9 digits)"
            }
            VillagesProblem::NoTownship => "villages need a township",
            VillagesProblem::TooMany => "at most 64 villages",
        }
    }
}

impl std::fmt::Display for VillagesProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Checks a caller's village codes against their township: at most [`MAX_VILLAGES`],
/// each 12 digits starting with the township's code; duplicates are merged. The one
/// rule for tokens, minted tokens and configured callers.
pub fn check_villages<S: AsRef<str>>(
    township: Option<&str>,
    villages: &[S],
) -> Result<BTreeSet<String>, VillagesProblem> {
    if villages.is_empty() {
        return Ok(BTreeSet::new());
    }
    if villages.len() > MAX_VILLAGES {
        return Err(VillagesProblem::TooMany);
    }
    let mut set = BTreeSet::new();
    for village in villages {
        let village = village.as_ref();
        if !is_digits(village, 12) {
            return Err(VillagesProblem::NotAVillageCode);
        }
        set.insert(village.to_owned());
    }
    let Some(township) = township else {
        return Err(VillagesProblem::NoTownship);
    };
    if set.iter().any(|v| !v.starts_with(township)) {
        return Err(VillagesProblem::OutsideTownship);
    }
    Ok(set)
}

/// Checks a verified token's claims and builds the caller. `issuer` is the matched
/// issuer (its `iss` was compared exactly before the signature was checked).
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    rules: ClaimRules<'_>,
) -> Result<Caller, AuthError> {
    // Time first: an expired token is reported as expired whatever else it says.
    let exp = numeric_date(claims.get("exp"))?.ok_or(AuthError::MissingClaim("exp"))?;
    if rules.now > exp.saturating_add(rules.leeway_s) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(claims.get("nbf"))?
        && nbf > rules.now.saturating_add(rules.leeway_s)
    {
        return Err(AuthError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims.get("iat"))?
        && iat > rules.now.saturating_add(rules.leeway_s)
    {
        return Err(AuthError::NotYetValid);
    }

    match claims.get("aud") {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud")),
        Some(Value::String(aud)) if aud == rules.audience => {}
        Some(Value::Array(auds)) if auds.iter().any(|a| a.as_str() == Some(rules.audience)) => {}
        Some(Value::String(_) | Value::Array(_)) => return Err(AuthError::WrongAudience),
        Some(_) => return Err(AuthError::InvalidClaim),
    }

    let user = required_id(claims.get("sub"), "sub")?;

    let roles = match claims.get("roles") {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim("roles")),
        Some(Value::Array(items)) => {
            let mut roles = BTreeSet::new();
            for item in items {
                let role = item
                    .as_str()
                    .and_then(Role::parse)
                    .ok_or(AuthError::InvalidClaim)?;
                roles.insert(role);
            }
            roles
        }
        Some(_) => return Err(AuthError::InvalidClaim),
    };
    if roles.is_empty() {
        return Err(AuthError::MissingClaim("roles"));
    }

    let township = optional_str(claims.get("township"))?;
    if let Some(t) = &township
        && !is_digits(t, 9)
    {
        return Err(AuthError::InvalidClaim);
    }
    let county_claim = optional_str(claims.get("county"))?;
    if let Some(c) = &county_claim
        && !is_digits(c, 6)
    {
        return Err(AuthError::InvalidClaim);
    }
    let county = match (&township, county_claim) {
        (Some(t), Some(c)) if !t.starts_with(c.as_str()) => return Err(AuthError::InvalidClaim),
        (Some(t), _) => Some(t[..6].to_owned()),
        (None, c) => c,
    };
    let villages = match claims.get("villages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str())
            .collect::<Option<Vec<&str>>>()
            .ok_or(AuthError::InvalidVillages(VillagesProblem::NotAList))?,
        Some(_) => return Err(AuthError::InvalidVillages(VillagesProblem::NotAList)),
    };
    let villages =
        check_villages(township.as_deref(), &villages).map_err(AuthError::InvalidVillages)?;
    let department = optional_str(claims.get("department"))?;
    if let Some(d) = &department
        && !is_id(d)
    {
        return Err(AuthError::InvalidClaim);
    }
    let app = optional_str(claims.get("app"))?;
    if let Some(a) = &app
        && (a.is_empty() || a.len() > MAX_ID_LEN || a.chars().any(char::is_control))
    {
        return Err(AuthError::InvalidClaim);
    }

    for role in &roles {
        if role.needs_township() && township.is_none() {
            return Err(AuthError::MissingClaim("township"));
        }
        if role.needs_department() && department.is_none() {
            return Err(AuthError::MissingClaim("department"));
        }
        if role.needs_villages() && villages.is_empty() {
            return Err(AuthError::MissingClaim("villages"));
        }
    }

    Ok(Caller {
        user,
        issuer: issuer.to_owned(),
        roles,
        township,
        county,
        villages,
        department,
        app,
        expires_at: exp,
    })
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, fractions allowed.
fn numeric_date(value: Option<&Value>) -> Result<Option<i64>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64()
                && f.is_finite()
                && f.abs() < 1e15
            {
                // In range: the cast cannot saturate.
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(f.floor() as i64))
            } else {
                Err(AuthError::InvalidClaim)
            }
        }
        Some(_) => Err(AuthError::InvalidClaim),
    }
}

fn required_id(value: Option<&Value>, name: &'static str) -> Result<String, AuthError> {
    match optional_str(value)? {
        None => Err(AuthError::MissingClaim(name)),
        Some(s) if s.trim().is_empty() => Err(AuthError::MissingClaim(name)),
        Some(s) if s.len() > MAX_ID_LEN || s.chars().any(char::is_control) => {
            Err(AuthError::InvalidClaim)
        }
        Some(s) => Ok(s),
    }
}

fn optional_str(value: Option<&Value>) -> Result<Option<String>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim),
    }
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A department id: 1–64 of `A-Z a-z 0-9 _ - .`.
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> ClaimRules<'static> {
        ClaimRules {
            audience: "county-gateway",
            leeway_s: 0,
            now: NOW,
        }
    }

    /// A grid worker of 东岭镇 with these villages.
    fn grid_worker(villages: Value) -> Map<String, Value> {
        let claims = json!({
            "sub": "grid-1",
            "aud": "county-gateway",
            "exp": NOW + 60,
            "roles": ["grid_worker"],
            "township": "139901101",
            "villages": villages,
        });
        match claims {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    fn check(villages: Value) -> Result<Caller, AuthError> {
        check_claims(&grid_worker(villages), "idp", rules())
    }

    #[test]
    fn a_grid_workers_villages_become_the_callers() {
        let caller = check(json!(["139901101202", "139901101201", "139901101202"])).unwrap();
        // Duplicates merge; the set is ordered.
        assert_eq!(
            caller.villages.iter().collect::<Vec<_>>(),
            ["139901101201", "139901101202"]
        );
        assert_eq!(caller.township.as_deref(), Some("139901101"));
        let most: Vec<String> = (0..MAX_VILLAGES)
            .map(|n| format!("139901101{n:03}"))
            .collect();
        assert_eq!(check(json!(most)).unwrap().villages.len(), MAX_VILLAGES);
    }

    #[test]
    fn bad_villages_are_refused_with_the_rule_and_never_the_value() {
        let too_many: Vec<String> = (0..=MAX_VILLAGES)
            .map(|n| format!("139901101{n:03}"))
            .collect();
        let cases = [
            (json!(["13990110120"]), VillagesProblem::NotAVillageCode),
            (json!(["1399011012011"]), VillagesProblem::NotAVillageCode),
            (json!(["13990110120x"]), VillagesProblem::NotAVillageCode),
            (json!([" 139901101201"]), VillagesProblem::NotAVillageCode),
            (json!(["139901201201"]), VillagesProblem::OutsideTownship),
            (
                json!(["139901101201", "139901202203"]),
                VillagesProblem::OutsideTownship,
            ),
            (json!(too_many), VillagesProblem::TooMany),
            (json!("139901101201"), VillagesProblem::NotAList),
            (json!([139_901_101_201_u64]), VillagesProblem::NotAList),
            (json!({"v": "139901101201"}), VillagesProblem::NotAList),
        ];
        for (villages, problem) in cases {
            let error = check(villages.clone()).unwrap_err();
            assert_eq!(error, AuthError::InvalidVillages(problem), "{villages}");
            assert_eq!(error.claim(), Some("villages"));
            // What a caller or a log gets to read names the rule, not the codes.
            for said in [error.to_string(), error.described(), format!("{error:?}")] {
                assert!(!said.contains("13990"), "{said}");
            }
            assert!(error.to_string().contains(problem.describe()), "{error}");
            assert_eq!(
                error.described(),
                format!("invalid_villages: {}", problem.as_str())
            );
        }
    }

    #[test]
    fn a_grid_worker_needs_villages_and_villages_need_a_township() {
        for none in [json!([]), Value::Null] {
            assert_eq!(check(none), Err(AuthError::MissingClaim("villages")));
        }
        // Other township roles may carry villages, or not.
        let mut clerk = grid_worker(json!(["139901101201"]));
        clerk.insert("roles".into(), json!(["clerk"]));
        let caller = check_claims(&clerk, "idp", rules()).unwrap();
        assert_eq!(caller.villages.len(), 1);
        clerk.remove("villages");
        assert!(
            check_claims(&clerk, "idp", rules())
                .unwrap()
                .villages
                .is_empty()
        );
        // Villages of no township.
        let mut officer = grid_worker(json!(["139901101201"]));
        officer.insert("roles".into(), json!(["privacy_officer"]));
        officer.remove("township");
        assert_eq!(
            check_claims(&officer, "idp", rules()),
            Err(AuthError::InvalidVillages(VillagesProblem::NoTownship))
        );
    }
}
