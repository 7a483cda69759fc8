//! Asking for fields (a township lead's request), listing and showing the requests a
//! caller may see, withdrawing one, and the checks every decision starts with.

use super::*;
use crate::action::Action;
use crate::app::App;
use crate::policy::china_today;
use crate::registry::{Change, Revocation};
use connectors::definition::Sharing;
use serde::Deserialize;

/// `POST /v1/access-requests` as a township lead sends it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccessRequestNew)]
pub struct NewRequest {
    #[schema(example = "hukou")]
    pub connector: String,
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Leaf path → `"default"` or a mask.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The township's roles that would use the grant (`clerk`, `grid_worker`,
    /// `township_lead`).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Why the township needs the fields: free text without ID numbers or phone
    /// numbers, at most 2000 characters.
    #[serde(default)]
    pub justification: String,
    /// The last day the grant is wanted for (`YYYY-MM-DD`, a China date).
    #[serde(default)]
    pub valid_until: Option<String>,
}

pub const NEW_REQUEST_SHAPE: &str = "{connector, operations: [...], purposes: [...], fields: {path: mask}, roles?, justification, valid_until?}";

/// What a valid request asks for.
#[derive(Debug)]
pub(crate) struct Asked {
    connector: String,
    department: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    pub(crate) fields: BTreeMap<String, Value>,
    roles: Vec<String>,
    valid_until: Option<NaiveDate>,
}

/// Checks a request against the configuration, reporting every problem.
pub(crate) fn check_request(
    body: &NewRequest,
    config: &ActiveConfig,
    today: NaiveDate,
) -> Result<Asked, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |path: String, message: &str| problems.push((path, message.to_owned()));

    let connector = config.connectors.get(&body.connector);
    if connector.is_none() {
        problem("connector".into(), "is not a configured connector");
    }
    let mut operations: Vec<String> = Vec::new();
    if body.operations.is_empty() {
        problem(
            "operations".into(),
            "list the operations the fields come from",
        );
    }
    for (i, op) in body.operations.iter().enumerate() {
        if let Some(c) = connector
            && !c.operations.contains_key(op)
        {
            problem(
                format!("operations[{i}]"),
                "is not an operation of the connector",
            );
        } else if !operations.contains(op) {
            operations.push(op.clone());
        }
    }
    let mut purposes: Vec<String> = Vec::new();
    if body.purposes.is_empty() {
        problem(
            "purposes".into(),
            "list the purposes (事项) the fields are needed for",
        );
    }
    for (i, p) in body.purposes.iter().enumerate() {
        if config.purposes.get(p).is_none() {
            problem(
                format!("purposes[{i}]"),
                "is not in the purpose catalog (事项目录)",
            );
        } else if !purposes.contains(p) {
            purposes.push(p.clone());
        }
    }

    let mut fields = BTreeMap::new();
    if body.fields.is_empty() {
        problem("fields".into(), "request at least one field");
    }
    for (path, mask_value) in &body.fields {
        let at = field_at(path);
        let mask = match parse_mask(mask_value) {
            Ok(mask) => mask,
            Err(NotAMask) => {
                problem(
                    at,
                    "is not a mask: write \"default\" or a mask as policy files do",
                );
                continue;
            }
        };
        let Some(c) = connector else { continue };
        if operations.is_empty() {
            continue;
        }
        let found = leaves(c, &operations, path);
        if found.iter().all(Option::is_none) {
            problem(at, "is not a field of the connector's operations");
            continue;
        }
        let found: Vec<&LeafField> = found.into_iter().flatten().collect();
        if found.len() != operations.len() {
            problem(at, "is not a field of every operation requested");
            continue;
        }
        if found.iter().any(|l| l.sharing == Sharing::Never) {
            problem(at, "never shared; cannot be requested");
            continue;
        }
        if found.iter().all(|l| l.sharing == Sharing::Open) {
            problem(
                at,
                "is open (无条件共享) and needs no grant; request only conditional fields",
            );
            continue;
        }
        if let Some(m) = &mask
            && found.iter().any(|l| !m.fits(l.pii))
        {
            problem(at, "the mask does not fit the field's kind");
            continue;
        }
        let value = match &mask {
            None => json!("default"),
            Some(m) => serde_json::to_value(m).unwrap_or_else(|_| json!("default")),
        };
        fields.insert(path.clone(), value);
    }

    let roles = body
        .roles
        .clone()
        .unwrap_or_else(|| vec![Role::Clerk.as_str().to_owned()]);
    if roles.is_empty() {
        problem("roles".into(), "name at least one township role");
    }
    let mut wanted: Vec<String> = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        match Role::parse(r) {
            Some(role) if TOWNSHIP_ROLES.contains(&role) => {
                if !wanted.contains(r) {
                    wanted.push(r.clone());
                }
            }
            _ => problem(
                format!("roles[{i}]"),
                "only township roles may be named: clerk, grid_worker, township_lead",
            ),
        }
    }

    match crate::text::free_text(&body.justification, MAX_TEXT, true) {
        Ok(_) => {}
        Err(crate::text::TextError::Empty) => problem(
            "justification".into(),
            "say why the township needs these fields",
        ),
        Err(e) => problem("justification".into(), &e.to_string()),
    }

    let valid_until = match &body.valid_until {
        None => None,
        Some(text) => match parse_date(text) {
            None => {
                problem("valid_until".into(), "is not a date YYYY-MM-DD");
                None
            }
            Some(day) if day < today => {
                problem("valid_until".into(), "is in the past");
                None
            }
            Some(day) => Some(day),
        },
    };

    match connector {
        Some(c) if problems.is_empty() => Ok(Asked {
            connector: c.def.id.clone(),
            department: c.def.department.id.clone(),
            operations,
            purposes,
            fields,
            roles: wanted,
            valid_until,
        }),
        _ => Err(problems),
    }
}

/// Files a township lead's request for their own township (`body` is the request as
/// read, or the problem reading it; either way the attempt is audited).
pub async fn create(
    app: &App,
    who: &Who,
    body: Result<NewRequest, Problem>,
) -> Result<AccessRequest, Problem> {
    let caller = &who.caller;
    let mut act = who.start(app, "access.request");
    let township = match lead_township(
        caller,
        "Only a township lead requests access for their township.",
    ) {
        Ok(township) => township,
        Err(p) => return Err(act.refuse(p).await),
    };
    let body = match body {
        Ok(body) => body,
        Err(p) => return Err(act.refuse(p).await),
    };
    let config = app.config.load_full();
    // Only a connector id the gateway knows is recorded.
    act.event.connector = config
        .connectors
        .get(&body.connector)
        .map(|c| c.def.id.clone());
    let today = china_today();
    let asked = match check_request(&body, &config, today) {
        Ok(asked) => asked,
        Err(problems) => {
            let p = invalid(&problems, "access request");
            return Err(act.refuse(p).await);
        }
    };
    let existing = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let duplicate = existing.iter().find(|r| {
        r.state == RequestState::Pending
            && r.township == township
            && r.connector == asked.connector
            && r.operations == asked.operations
            && r.purposes == asked.purposes
            && r.fields == asked.fields
            && r.roles == asked.roles
            && r.valid_until == asked.valid_until.map(|d| d.to_string())
    });
    if let Some(first) = duplicate {
        let p = Problem::new(
            ProblemKind::DuplicateRequest,
            "The township already has a pending request for exactly this; wait for its decision or withdraw it.",
        )
        .with("duplicate_of", first.id.clone());
        return Err(act.refuse(p).await);
    }
    let id = new_request_id();
    let request = AccessRequest {
        id: id.clone(),
        township,
        requested_by: caller.user.clone(),
        connector: asked.connector,
        department: asked.department,
        operations: asked.operations,
        purposes: asked.purposes,
        fields: asked.fields,
        roles: asked.roles,
        justification: crate::text::normalize(&body.justification),
        valid_until: asked.valid_until.map(|d| d.to_string()),
        created_at: now_rfc3339(),
        deadline: config
            .calendar
            .add_working_days(today, config.access_requests.deadline_working_days)
            .to_string(),
        state: RequestState::Pending,
        decided_at: None,
        decided_by: None,
        decision_note: None,
        grant_id: None,
    };
    act.event.operation = Some(format!(
        "access.request {id} {} ops={} purposes={} fields={} roles={}",
        request.connector,
        request.operations.join(","),
        request.purposes.join(","),
        request.fields.keys().cloned().collect::<Vec<_>>().join(","),
        request.roles.join(","),
    ));
    act.commit(vec![Change::AddRequest(request.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, access_request = %id, connector = %request.connector, "access requested");
    Ok(request)
}

/// The requests a caller may see (oldest first), with the revocation of each revoked
/// grant by grant id, on `today`.
#[derive(Debug, Clone)]
pub struct Visible {
    pub requests: Vec<AccessRequest>,
    pub revoked: BTreeMap<String, Revocation>,
    pub today: NaiveDate,
}

impl Visible {
    /// The revocation of the grant a request became, if it was revoked.
    pub fn revocation(&self, request: &AccessRequest) -> Option<&Revocation> {
        request.grant_id.as_ref().and_then(|g| self.revoked.get(g))
    }
}

/// The revocation of each revoked API grant, by grant id.
async fn revocations(app: &App, request_id: &str) -> Result<BTreeMap<String, Revocation>, Problem> {
    let grants = app
        .live
        .registry()
        .grants()
        .await
        .map_err(|e| registry_unavailable(request_id, &e))?;
    Ok(grants
        .into_iter()
        .filter_map(|g| g.revoked.map(|r| (g.id, r)))
        .collect())
}

/// The requests the caller may see, oldest first: their township's (a township
/// lead), their department's (a department admin), or all (operators, privacy
/// officers).
pub async fn list_requests(app: &App, who: &Who) -> Result<Visible, Problem> {
    if !may_list(&who.caller) {
        return Err(not_listed().for_request(&who.request_id));
    }
    let all = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let requests = all
        .into_iter()
        .filter(|r| request_visible(&who.caller, r))
        .collect();
    let revoked = revocations(app, &who.request_id).await?;
    Ok(Visible {
        requests,
        revoked,
        today: china_today(),
    })
}

/// One request the caller may see, with its grant's revocation if revoked; another
/// township's or department's request is unknown (404), as if it did not exist.
pub async fn show_request(
    app: &App,
    who: &Who,
    id: &str,
) -> Result<(AccessRequest, Option<Revocation>), Problem> {
    let visible = list_requests(app, who).await?;
    match visible.requests.iter().find(|r| r.id == id) {
        Some(r) => Ok((r.clone(), visible.revocation(r).cloned())),
        None => Err(unknown_request().for_request(&who.request_id)),
    }
}

/// The township's lead takes back a request that is still pending. Audited like a
/// decision.
pub async fn withdraw(app: &App, who: &Who, id: &str) -> Result<AccessRequest, Problem> {
    let caller = &who.caller;
    let mut act = who.start(app, &format!("access.withdraw {}", short(id)));
    let township = match lead_township(
        caller,
        "Only the township's lead withdraws its access request.",
    ) {
        Ok(township) => township,
        Err(p) => return Err(act.refuse(p).await),
    };
    let _one_at_a_time = DECISIONS.lock().await;
    let all = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let Some(request) = all
        .into_iter()
        .find(|r| r.id == id && r.township == township)
    else {
        return Err(act.refuse(unknown_request()).await);
    };
    act.event.connector = Some(request.connector.clone());
    if request.state != RequestState::Pending {
        let p = Problem::new(
            ProblemKind::AlreadyDecided,
            "Only a pending request can be withdrawn; this one is already decided.",
        );
        return Err(act.refuse(p).await);
    }
    let withdrawn = AccessRequest {
        state: RequestState::Withdrawn,
        decided_at: Some(now_rfc3339()),
        decided_by: Some(caller.user.clone()),
        ..request
    };
    act.event.operation = Some(format!("access.withdraw {}", withdrawn.id));
    act.commit(vec![Change::DecideRequest(withdrawn.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, access_request = %withdrawn.id, "access request withdrawn");
    Ok(withdrawn)
}

/// The request `id`, checked for the caller's authority to decide it and pending; a
/// refusal is recorded (with `act`'s event) and is the answer. Another department's
/// request is refused (403) once it exists; an unknown one is 404.
pub(super) async fn decidable(
    app: &App,
    who: &Who,
    id: &str,
    act: &mut Action,
) -> Result<AccessRequest, Problem> {
    let caller = &who.caller;
    let all = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let problem = match all.into_iter().find(|r| r.id == id) {
        _ if !caller.has_role(Role::DeptAdmin) => not_decider(),
        None => unknown_request(),
        Some(request) => {
            act.event.connector = Some(request.connector.clone());
            // The connector's current owner decides; the request's department if the
            // connector is gone.
            let department = app
                .config
                .load()
                .connectors
                .get(&request.connector)
                .map_or(request.department.clone(), |c| c.def.department.id.clone());
            match may_decide(caller, &department, &request.requested_by) {
                Err(p) => p,
                Ok(()) if request.state != RequestState::Pending => Problem::new(
                    ProblemKind::AlreadyDecided,
                    "The access request was already decided.",
                )
                .with("state", json!(request.state)),
                Ok(()) => return Ok(request),
            }
        }
    };
    Err(act.refuse_now(problem).await)
}

/// The township a township lead acts for; for anyone else, the refusal (`detail`).
fn lead_township(caller: &Caller, detail: &str) -> Result<String, Problem> {
    match (&caller.township, caller.has_role(Role::TownshipLead)) {
        (Some(t), true) => Ok(t.clone()),
        _ => Err(Problem::new(ProblemKind::Forbidden, detail.to_owned())
            .with("rule", ACCESS_RULE)
            .with("reason", "role")),
    }
}
