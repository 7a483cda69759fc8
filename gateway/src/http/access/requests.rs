//! Asking for fields (`POST /v1/access-requests`), listing and showing requests,
//! withdrawing one, and the checks every decision starts with.

use super::*;

// Requests

/// `POST /v1/access-requests` as a township lead sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRequest {
    connector: String,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    purposes: Vec<String>,
    /// Leaf path → `"default"` or a mask.
    #[serde(default)]
    fields: BTreeMap<String, Value>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    valid_until: Option<String>,
}

pub(super) const NEW_REQUEST_SHAPE: &str = "{connector, operations: [...], purposes: [...], fields: {path: mask}, roles?, justification, valid_until?}";

/// What a valid request asks for.
#[derive(Debug)]
pub(super) struct Asked {
    connector: String,
    department: String,
    operations: Vec<String>,
    purposes: Vec<String>,
    fields: BTreeMap<String, Value>,
    roles: Vec<String>,
    valid_until: Option<NaiveDate>,
}

/// Checks a request against the configuration, reporting every problem.
pub(super) fn check_request(
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
            Err(()) => {
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

pub(super) async fn create_request(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut act = Action::start(&app, &request_id, &caller, peer, "access.request");
    let township = match (&caller.township, caller.has_role(Role::TownshipLead)) {
        (Some(t), true) => t.clone(),
        _ => {
            let p = Problem::new(
                ProblemKind::Forbidden,
                "Only a township lead requests access for their township.",
            )
            .with("rule", ACCESS_RULE)
            .with("reason", "role");
            return act.refuse(p).await.into_response();
        }
    };
    let body: NewRequest = match crate::http::body::json(&headers, body, NEW_REQUEST_SHAPE) {
        Ok(body) => body,
        Err(p) => return act.refuse(p).await.into_response(),
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
            return act.refuse(p).await.into_response();
        }
    };
    let existing = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
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
        return act.refuse(p).await.into_response();
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
        deadline: add_working_days(today, config.access_requests.deadline_working_days).to_string(),
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
    match act.commit(vec![Change::AddRequest(request.clone())]).await {
        Ok(_) => {
            tracing::info!(request_id, user = %caller.user, access_request = %id, connector = %request.connector, "access requested");
            (
                StatusCode::CREATED,
                axum::Json(request_view(&request, today, None)),
            )
                .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// The requests the caller may see, oldest first.
pub(super) async fn visible_requests(
    app: &App,
    request_id: &str,
    caller: &Caller,
) -> Result<Vec<AccessRequest>, Response> {
    if !may_list(caller) {
        return Err(not_listed().for_request(request_id).into_response());
    }
    let all = app
        .live
        .registry()
        .access_requests()
        .await
        .map_err(|e| registry_unavailable(request_id, &e))?;
    Ok(all
        .into_iter()
        .filter(|r| request_visible(caller, r))
        .collect())
}

pub(super) async fn list_requests(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match ListQuery::of(
        raw.as_deref(),
        &["pending", "approved", "refused", "withdrawn", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    list_of(&app, &request_id, &caller, &query, false).await
}

pub(super) async fn list_overdue(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
) -> Response {
    list_of(&app, &request_id, &caller, &ListQuery::all(), true).await
}

/// The visible requests that pass `query`'s filters, oldest first, one page.
pub(super) async fn list_of(
    app: &App,
    request_id: &str,
    caller: &Caller,
    query: &ListQuery,
    only_overdue: bool,
) -> Response {
    let list = match visible_requests(app, request_id, caller).await {
        Ok(list) => list,
        Err(response) => return response,
    };
    let revoked = match revocations(app, request_id).await {
        Ok(revoked) => revoked,
        Err(response) => return response,
    };
    axum::Json(request_page(
        &list,
        china_today(),
        only_overdue,
        query,
        &revoked,
    ))
    .into_response()
}

/// One page of `requests` (oldest first) that pass `query` (and are overdue on
/// `today`, with `only_overdue`), with the cursor of the next page.
pub(super) fn request_page(
    requests: &[AccessRequest],
    today: NaiveDate,
    only_overdue: bool,
    query: &ListQuery,
    revoked: &BTreeMap<String, Revocation>,
) -> Value {
    let filtered: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| !only_overdue || is_overdue(r, today))
        .filter(|r| ListQuery::matches(&query.state, shown_state(r, revoked)))
        .filter(|r| ListQuery::matches(&query.township, &r.township))
        .filter(|r| ListQuery::matches(&query.connector, &r.connector))
        .collect();
    let (page, next) = query.page(filtered, |r| r.id.clone());
    let views: Vec<Value> = page
        .into_iter()
        .map(|r| {
            let revocation = r.grant_id.as_ref().and_then(|g| revoked.get(g));
            request_view(r, today, revocation)
        })
        .collect();
    json!({ "requests": views, "next_cursor": next })
}

pub(super) async fn show_request(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let list = match visible_requests(&app, &request_id, &caller).await {
        Ok(list) => list,
        Err(response) => return response,
    };
    let revoked = match revocations(&app, &request_id).await {
        Ok(revoked) => revoked,
        Err(response) => return response,
    };
    match list.iter().find(|r| r.id == id) {
        Some(r) => {
            let revocation = r.grant_id.as_ref().and_then(|g| revoked.get(g));
            axum::Json(request_view(r, china_today(), revocation)).into_response()
        }
        None => unknown_request().for_request(&request_id).into_response(),
    }
}

/// `POST /v1/access-requests/{id}/withdraw`: the township's lead takes back a request
/// that is still pending. Audited like a decision.
pub(super) async fn withdraw(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("access.withdraw {}", short(&id)),
    );
    let township = match (&caller.township, caller.has_role(Role::TownshipLead)) {
        (Some(t), true) => t.clone(),
        _ => {
            let p = Problem::new(
                ProblemKind::Forbidden,
                "Only the township's lead withdraws its access request.",
            )
            .with("rule", ACCESS_RULE)
            .with("reason", "role");
            return act.refuse(p).await.into_response();
        }
    };
    let _one_at_a_time = DECISIONS.lock().await;
    let all = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let Some(request) = all
        .into_iter()
        .find(|r| r.id == id && r.township == township)
    else {
        return act.refuse(unknown_request()).await.into_response();
    };
    act.event.connector = Some(request.connector.clone());
    if request.state != RequestState::Pending {
        let p = Problem::new(
            ProblemKind::AlreadyDecided,
            "Only a pending request can be withdrawn; this one is already decided.",
        );
        return act.refuse(p).await.into_response();
    }
    let withdrawn = AccessRequest {
        state: RequestState::Withdrawn,
        decided_at: Some(now_rfc3339()),
        decided_by: Some(caller.user.clone()),
        ..request
    };
    act.event.operation = Some(format!("access.withdraw {}", withdrawn.id));
    match act
        .commit(vec![Change::DecideRequest(withdrawn.clone())])
        .await
    {
        Ok(_) => {
            tracing::info!(request_id, user = %caller.user, access_request = %withdrawn.id, "access request withdrawn");
            axum::Json(request_view(&withdrawn, china_today(), None)).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// The request `id`, checked for the caller's authority to decide it and pending; a
/// refusal is recorded (with `event`) and is the answer.
pub(super) async fn decidable(
    app: &App,
    request_id: &str,
    caller: &Caller,
    id: &str,
    act: &mut Action,
) -> Result<AccessRequest, Response> {
    let all = match app.live.registry().access_requests().await {
        Ok(all) => all,
        Err(e) => return Err(registry_unavailable(request_id, &e)),
    };
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
    Err(act.refuse_now(problem).await.into_response())
}
