//! A department's decision on a request: approve (possibly narrower, masked more,
//! shorter, with a quota) — which writes the grant — or refuse with a reason.

use super::requests::decidable;
use super::*;
use crate::action::Action;
use crate::app::App;
use crate::policy::china_today;
use crate::registry::{Change, GrantRecord};
use serde::Deserialize;

/// `POST /v1/access-requests/{id}/approve`; every member optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccessApproval)]
pub struct Approval {
    /// A subset of the requested fields, each with its mask (`"default"` or a mask).
    #[serde(default)]
    pub fields: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub quota: Option<Quota>,
    #[serde(default)]
    pub legal_basis: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

pub const APPROVAL_SHAPE: &str = "{fields?: {path: mask}, valid_until?, quota?: {per_minute?, per_day?, per_user_per_day?}, legal_basis?, note?}";

/// What an approval grants.
#[derive(Debug)]
struct Granted {
    /// Path → the mask as a policy file takes it.
    fields: BTreeMap<String, Value>,
    /// Path → mask operator, for the audit record.
    operators: BTreeMap<String, String>,
    valid_until: Option<NaiveDate>,
    legal_basis: String,
    note: Option<String>,
}

/// Checks an approval against its request: the fields may only narrow (fewer fields,
/// never unmasked when the township named a mask; a `"default"` in the request
/// leaves the mask to the department), the validity only shorten.
fn check_approval(
    request: &AccessRequest,
    approval: &Approval,
    config: &ActiveConfig,
    today: NaiveDate,
) -> Result<Granted, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |path: String, message: &str| problems.push((path, message.to_owned()));
    let connector = config.connectors.get(&request.connector);
    // The mask a field's value gives, "default" resolved on the connector's field.
    let resolve = |path: &str, mask: Option<Mask>| -> Option<Mask> {
        mask.or_else(|| {
            let c = connector?;
            let leaf = leaves(c, &request.operations, path)
                .into_iter()
                .flatten()
                .next()?;
            Some(Mask::default_for(leaf.pii))
        })
    };
    let chosen = approval.fields.as_ref().unwrap_or(&request.fields);
    if chosen.is_empty() {
        problem(
            "fields".into(),
            "approve at least one field, or refuse the request",
        );
    }
    let mut fields = BTreeMap::new();
    let mut operators = BTreeMap::new();
    for (path, value) in chosen {
        let at = field_at(path);
        let Some(asked) = request.fields.get(path) else {
            problem(
                at,
                "was not requested; an approval can only narrow the request",
            );
            continue;
        };
        let Ok(mask) = parse_mask(value) else {
            problem(
                at,
                "is not a mask: write \"default\" or a mask as policy files do",
            );
            continue;
        };
        // A request's "default" leaves the mask to the department; a mask the
        // township named is the most it asked to see.
        let requested = parse_mask(asked).ok().flatten();
        let approved = resolve(path, mask.clone());
        if approved == Some(Mask::Keep) && requested.as_ref().is_some_and(|m| *m != Mask::Keep) {
            problem(
                at,
                "was requested masked; an approval may not show it unmasked",
            );
            continue;
        }
        let written = match &approved {
            Some(m) => serde_json::to_value(m).unwrap_or_else(|_| json!("default")),
            None => json!("default"),
        };
        operators.insert(
            path.clone(),
            approved
                .as_ref()
                .map_or("default".to_owned(), |m| m.operator().to_owned()),
        );
        fields.insert(path.clone(), written);
    }

    let requested_until = request.valid_until.as_deref().and_then(parse_date);
    let valid_until = match &approval.valid_until {
        None => requested_until,
        Some(text) => match parse_date(text) {
            None => {
                problem("valid_until".into(), "is not a date YYYY-MM-DD");
                None
            }
            Some(day) if day < today => {
                problem(
                    "valid_until".into(),
                    "is in the past; a grant is valid from today",
                );
                None
            }
            Some(day) if requested_until.is_some_and(|r| day > r) => {
                problem(
                    "valid_until".into(),
                    "is later than the request asked for; an approval can only shorten it",
                );
                None
            }
            Some(day) => Some(day),
        },
    };
    let legal_basis = match &approval.legal_basis {
        Some(text) if text.trim().is_empty() => {
            problem(
                "legal_basis".into(),
                "must not be empty (leave it out for the purposes' own)",
            );
            String::new()
        }
        Some(text) => match crate::text::free_text(text, MAX_TEXT, true) {
            Ok(text) => text,
            Err(e) => {
                problem("legal_basis".into(), &e.to_string());
                String::new()
            }
        },
        None => {
            let mut bases: Vec<&str> = Vec::new();
            for p in &request.purposes {
                if let Some(purpose) = config.purposes.get(p)
                    && !bases.contains(&purpose.legal_basis.as_str())
                {
                    bases.push(&purpose.legal_basis);
                }
            }
            bases.join("；")
        }
    };
    let note = match approval
        .note
        .as_deref()
        .map(|n| crate::text::free_text(n, MAX_TEXT, false))
    {
        Some(Ok(note)) if !note.is_empty() => Some(note),
        Some(Err(e)) => {
            problem("note".into(), &e.to_string());
            None
        }
        _ => None,
    };
    if problems.is_empty() {
        Ok(Granted {
            fields,
            operators,
            valid_until,
            legal_basis,
            note,
        })
    } else {
        Err(problems)
    }
}

/// A decision made: the request as decided, the grant an approval wrote, and the
/// configuration version in force after it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub request: AccessRequest,
    pub grant: Option<GrantRecord>,
    pub config_version: String,
}

/// A decision starting: its admin action (`operation` and the request's id), the
/// request it decides — pending, and the caller's to decide — and the lock that keeps
/// decisions one at a time. A refusal is recorded and is the answer.
async fn deciding(
    app: &App,
    who: &Who,
    id: &str,
    operation: &str,
) -> Result<(Action, AccessRequest, tokio::sync::MutexGuard<'static, ()>), Problem> {
    let mut act = who.start(app, &format!("{operation} {}", short(id)));
    let one_at_a_time = DECISIONS.lock().await;
    let request = decidable(app, who, id, &mut act).await?;
    Ok((act, request, one_at_a_time))
}

/// The owning department's admin approves request `id` as asked (an empty
/// [`Approval`]) or narrowed; the grant is in force when this returns.
pub async fn approve(
    app: &App,
    who: &Who,
    id: &str,
    approval: Result<Approval, Problem>,
) -> Result<Decision, Problem> {
    let caller = &who.caller;
    let (mut act, request, _one_at_a_time) = deciding(app, who, id, "access.approve").await?;
    let approval = match approval {
        Ok(a) => a,
        Err(p) => return Err(act.refuse(p).await),
    };
    let config = app.config.load_full();
    let today = china_today();
    let granted = match check_approval(&request, &approval, &config, today) {
        Ok(g) => g,
        Err(problems) => {
            let p = invalid(&problems, "approval");
            return Err(act.refuse(p).await);
        }
    };
    let own_residents = own_residents_only(&request, &config);
    let fields: Result<BTreeMap<String, MaskDef>, _> = granted
        .fields
        .iter()
        .map(|(path, mask)| serde_json::from_value(mask.clone()).map(|m| (path.clone(), m)))
        .collect();
    let written = fields.map_err(|e| e.to_string()).and_then(|fields| {
        let approved = Approved {
            fields,
            valid_until: granted.valid_until,
            quota: approval.quota,
            legal_basis: &granted.legal_basis,
            approver: &caller.user,
        };
        let file = grant_file(&request, approved, today, own_residents);
        serde_yaml_ng::to_string(&file).map_err(|e| e.to_string())
    });
    let policy = match written {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(request_id = %who.request_id, error = %e, "a grant could not be written as YAML");
            let p = Problem::new(ProblemKind::Internal, "The grant could not be written.");
            return Err(act.refuse(p).await);
        }
    };
    let now = now_rfc3339();
    let record = GrantRecord {
        id: request.id.clone(),
        department: request.department.clone(),
        connector: request.connector.clone(),
        township: request.township.clone(),
        policy,
        request_id: Some(request.id.clone()),
        created_at: now.clone(),
        created_by: caller.user.clone(),
        revoked: None,
    };
    let decided = AccessRequest {
        state: RequestState::Approved,
        decided_at: Some(now),
        decided_by: Some(caller.user.clone()),
        decision_note: granted.note.clone(),
        grant_id: Some(record.id.clone()),
        ..request
    };
    let fields: Vec<String> = granted
        .operators
        .iter()
        .map(|(path, op)| format!("{path}:{op}"))
        .collect();
    act.event.operation = Some(format!(
        "access.approve {} grant={} fields={} valid_until={}{}",
        decided.id,
        record.id,
        fields.join(","),
        granted
            .valid_until
            .map_or("none".to_owned(), |d| d.to_string()),
        approval.quota.map_or(String::new(), |q| format!(
            " quota={}/min,{}/day{}",
            q.per_minute.map_or("-".to_owned(), |n| n.to_string()),
            q.per_day.map_or("-".to_owned(), |n| n.to_string()),
            q.per_user_per_day
                .map_or(String::new(), |n| format!(",{n}/user/day"))
        )),
    ));
    let changes = vec![
        Change::AddGrant(record.clone()),
        Change::DecideRequest(decided.clone()),
    ];
    let changed = act.commit(changes).await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, access_request = %decided.id, connector = %decided.connector, "access request approved");
    Ok(Decision {
        request: decided,
        grant: Some(record),
        config_version: changed.version,
    })
}

/// `POST /v1/access-requests/{id}/refuse` and `POST /v1/grants/{id}/revoke`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DecisionReason)]
pub struct Reason {
    #[serde(default)]
    pub reason: String,
}

pub const REASON_SHAPE: &str = "{reason}";

pub(super) fn check_reason(reason: &Reason) -> Result<String, Problem> {
    let problem = match crate::text::free_text(&reason.reason, MAX_TEXT, true) {
        Ok(text) => return Ok(text),
        Err(crate::text::TextError::Empty) => "say why".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(invalid(&[("reason".to_owned(), problem)], "request"))
}

/// The owning department's admin refuses request `id`, saying why (the reason is kept
/// with the request and in the audit event: why a township was refused is part of
/// the record).
pub async fn refuse(
    app: &App,
    who: &Who,
    id: &str,
    reason: Result<Reason, Problem>,
) -> Result<Decision, Problem> {
    let caller = &who.caller;
    let (mut act, request, _one_at_a_time) = deciding(app, who, id, "access.refuse").await?;
    let reason = match reason.and_then(|r| check_reason(&r)) {
        Ok(reason) => reason,
        Err(p) => return Err(act.refuse(p).await),
    };
    act.event.reason = Some(reason.clone());
    let decided = AccessRequest {
        state: RequestState::Refused,
        decided_at: Some(now_rfc3339()),
        decided_by: Some(caller.user.clone()),
        decision_note: Some(reason),
        ..request
    };
    act.event.operation = Some(format!("access.refuse {}", decided.id));
    let changed = act
        .commit(vec![Change::DecideRequest(decided.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, access_request = %decided.id, "access request refused");
    Ok(Decision {
        request: decided,
        grant: None,
        config_version: changed.version,
    })
}
