//! How requests and grants are answered by the API: the same members for file and
//! API grants.

use super::*;
use crate::config::ActiveConfig as Config;
use crate::policy::Grant;
use crate::registry::{GrantRecord, Revocation};

/// A request as answered. An approved request whose grant was revoked shows
/// `state: revoked` and `revoked: {at, by}`.
pub fn request_view(
    request: &AccessRequest,
    today: NaiveDate,
    revoked: Option<&Revocation>,
) -> Value {
    let mut view = serde_json::to_value(request).unwrap_or_default();
    if let Value::Object(map) = &mut view {
        map.insert("overdue".into(), Value::Bool(is_overdue(request, today)));
        match revoked {
            Some(r) if request.state == RequestState::Approved => {
                map.insert("state".into(), json!("revoked"));
                map.insert("revoked".into(), json!({"at": r.at, "by": r.by}));
            }
            _ => {
                map.insert("revoked".into(), Value::Null);
            }
        }
    }
    view
}

/// The state a request shows (`revoked` for an approved one whose grant was revoked).
pub fn shown_state(
    request: &AccessRequest,
    revoked: &BTreeMap<String, Revocation>,
) -> &'static str {
    let revoked = request
        .grant_id
        .as_ref()
        .is_some_and(|g| revoked.contains_key(g));
    match request.state {
        RequestState::Approved if revoked => "revoked",
        RequestState::Pending => "pending",
        RequestState::Approved => "approved",
        RequestState::Refused => "refused",
        RequestState::Withdrawn => "withdrawn",
    }
}

/// A grant as answered: the same members for file and API grants.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub id: String,
    pub description: String,
    pub consumers: Value,
    pub connector: String,
    pub operations: Vec<String>,
    pub purposes: Vec<String>,
    pub fields: Value,
    pub row: Option<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub quota: Option<Quota>,
    pub legal_basis: String,
    pub approver: String,
}

impl GrantView {
    pub(super) fn of_grant(g: &Grant) -> GrantView {
        let mut consumers = serde_json::Map::new();
        let roles: Vec<&str> = g.consumers.roles.iter().map(|r| r.as_str()).collect();
        for (key, list) in [
            ("roles", json!(roles)),
            ("townships", json!(g.consumers.townships)),
            ("counties", json!(g.consumers.counties)),
            ("apps", json!(g.consumers.apps)),
        ] {
            if list.as_array().is_some_and(|a| !a.is_empty()) {
                consumers.insert(key.to_owned(), list);
            }
        }
        GrantView {
            id: g.id.clone(),
            description: g.description.clone(),
            consumers: Value::Object(consumers),
            connector: g.connector.clone(),
            operations: g.operations.clone(),
            purposes: g.purposes.clone(),
            fields: serde_json::to_value(&g.fields).unwrap_or_default(),
            row: enforced(g),
            valid_from: g.valid.from,
            valid_until: g.valid.until,
            quota: g.quota,
            legal_basis: g.legal_basis.clone(),
            approver: g.approver.clone(),
        }
    }

    /// An API grant, from the policy file the registry holds for it.
    pub(super) fn of_record(record: &GrantRecord) -> GrantView {
        let Some(stored) = stored_grant(&record.policy) else {
            tracing::error!(grant = %record.id, "a stored grant's policy does not parse");
            return GrantView {
                id: record.id.clone(),
                description: String::new(),
                consumers: Value::Null,
                connector: record.connector.clone(),
                operations: Vec::new(),
                purposes: Vec::new(),
                fields: Value::Null,
                row: None,
                valid_from: None,
                valid_until: None,
                quota: None,
                legal_basis: String::new(),
                approver: String::new(),
            };
        };
        let (valid_from, valid_until) = stored
            .valid
            .as_ref()
            .map_or((None, None), |v| (v.from, v.until));
        GrantView {
            id: record.id.clone(),
            description: stored.description,
            consumers: serde_json::to_value(&stored.consumers).unwrap_or_default(),
            connector: record.connector.clone(),
            operations: stored.operations,
            purposes: stored.purposes,
            fields: serde_json::to_value(&stored.fields).unwrap_or_default(),
            row: None,
            valid_from,
            valid_until,
            quota: stored.quota,
            legal_basis: stored.legal_basis,
            approver: stored.approver,
        }
    }

    pub(super) fn to_json(&self, state: GrantState) -> Value {
        json!({
            "id": self.id,
            "state": state.as_str(),
            "description": self.description,
            "consumers": self.consumers,
            "connector": self.connector,
            "operations": self.operations,
            "purposes": self.purposes,
            "fields": self.fields,
            "row": self.row,
            "valid_from": self.valid_from.map(|d| d.to_string()),
            "valid_until": self.valid_until.map(|d| d.to_string()),
            "quota": self.quota,
            "legal_basis": self.legal_basis,
            "approver": self.approver,
        })
    }
}

pub fn file_grant_view(grant: &Grant, today: NaiveDate) -> Value {
    super::grants::ListedGrant::of_file(grant, today).to_json()
}

/// An API grant as answered; `in_force` is the grant as the running policy loaded it
/// (for the row condition it enforces), when it is in force.
pub fn api_grant_view(record: &GrantRecord, today: NaiveDate, in_force: Option<&Grant>) -> Value {
    super::grants::ListedGrant::of_record(record, today, in_force).to_json()
}

/// The members an API grant's answer has beside a file grant's.
pub(super) fn api_members(out: &mut Value, record: &GrantRecord) {
    out["origin"] = json!("api");
    out["department"] = json!(record.department);
    out["township"] = json!(record.township);
    out["request_id"] = json!(record.request_id);
    out["created_at"] = json!(record.created_at);
    out["created_by"] = json!(record.created_by);
    out["revoked"] = serde_json::to_value(&record.revoked).unwrap_or_default();
}

/// Whether an approved request's grant is what was asked: the same fields, each with
/// the mask asked (a `"default"` resolved on the connector's field), the validity
/// asked and no quota. Otherwise the department narrowed it.
pub fn approved_as_asked(request: &AccessRequest, grant: &GrantView, config: &Config) -> bool {
    let granted: BTreeMap<String, Value> =
        serde_json::from_value(grant.fields.clone()).unwrap_or_default();
    let connector = config.connectors.get(&request.connector);
    let same_fields = granted.len() == request.fields.len()
        && request.fields.iter().all(|(path, asked)| {
            let Some(given) = granted.get(path) else {
                return false;
            };
            let asked = parse_mask(asked).ok().flatten().or_else(|| {
                let leaf = leaves(connector?, &request.operations, path)
                    .into_iter()
                    .flatten()
                    .next()?;
                Some(Mask::default_for(leaf.pii))
            });
            asked.is_some() && asked == parse_mask(given).ok().flatten()
        });
    let same_until = request.valid_until.as_deref().and_then(parse_date) == grant.valid_until;
    same_fields && same_until && grant.quota.is_none()
}
