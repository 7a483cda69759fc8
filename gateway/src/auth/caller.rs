//! Who is calling: the [`Caller`] built from a verified token's claims, its
//! [`Role`]s, and the claim rules — registered claims (`sub`, `aud`, `exp`, `nbf`,
//! `iat`) and the gateway's own (`roles`, `township`, `county`, `department`, `app`),
//! including what each role requires.
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
    }

    Ok(Caller {
        user,
        issuer: issuer.to_owned(),
        roles,
        township,
        county,
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
