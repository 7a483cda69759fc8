//! Grants in force and past (`GET /v1/grants`) and taking one back (收回,
//! `POST /v1/grants/{id}/revoke`).

use super::*;

// Grants

pub(super) async fn list_grants(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Response {
    if !may_list(&caller) {
        return not_listed().for_request(&request_id).into_response();
    }
    let query = match ListQuery::of(
        raw.as_deref(),
        &["active", "not_yet_valid", "expired", "revoked"],
    ) {
        Ok(query) => query,
        Err(p) => return p.for_request(&request_id).into_response(),
    };
    let records = match app.live.registry().grants().await {
        Ok(records) => records,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let config = app.config.load_full();
    let today = china_today();
    let api_ids: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let department_of = |connector: &str| {
        config
            .connectors
            .get(connector)
            .map(|c| c.def.department.id.clone())
    };
    let own_department = |department: Option<&str>| {
        caller.has_role(Role::DeptAdmin)
            && department.is_some()
            && caller.department.as_deref() == department
    };
    let township = caller
        .township
        .as_deref()
        .filter(|_| caller.has_role(Role::TownshipLead));
    let mut list: Vec<Value> = config
        .policies
        .grants()
        .iter()
        .filter(|g| !api_ids.contains(g.id.as_str()))
        .filter(|g| {
            sees_all(&caller)
                || own_department(department_of(&g.connector).as_deref())
                || township.is_some_and(|t| {
                    reaches_township(
                        &g.consumers.townships,
                        &g.consumers.counties,
                        t,
                        caller.county.as_deref(),
                    )
                })
        })
        .map(|g| file_grant_view(g, today))
        .collect();
    list.extend(
        records
            .iter()
            .filter(|r| {
                sees_all(&caller)
                    || own_department(Some(&r.department))
                    || township == Some(r.township.as_str())
            })
            .map(|r| {
                let in_force = config.policies.grants().iter().find(|g| g.id == r.id);
                api_grant_view(r, today, in_force)
            }),
    );
    let township_of = |grant: &Value| -> Vec<String> {
        match grant["township"].as_str() {
            Some(t) => vec![t.to_owned()],
            None => grant["consumers"]["townships"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let filtered: Vec<Value> = list
        .into_iter()
        .filter(|g| ListQuery::matches(&query.state, g["state"].as_str().unwrap_or("")))
        .filter(|g| ListQuery::matches(&query.connector, g["connector"].as_str().unwrap_or("")))
        .filter(|g| {
            query
                .township
                .as_ref()
                .is_none_or(|t| township_of(g).contains(t))
        })
        .collect();
    let (page, next) = query.page(filtered, |g| g["id"].as_str().unwrap_or("").to_owned());
    axum::Json(json!({ "grants": page, "next_cursor": next })).into_response()
}

/// Where a file grant came from, for a `file-managed` answer: the applied policy file
/// that holds it, or the files named in `gateway.yaml`.
pub(super) fn file_origin(snapshot: &Snapshot, id: &str) -> String {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(default)]
        grants: Vec<Id>,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    snapshot
        .policy_files
        .values()
        .find(|f| {
            serde_yaml_ng::from_str::<Ids>(&f.text)
                .is_ok_and(|ids| ids.grants.iter().any(|g| g.id == id))
        })
        .map_or("gateway.yaml".to_owned(), |f| {
            Origin::File {
                path: f.path.clone(),
            }
            .describe()
        })
}

pub(super) async fn revoke(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut act = Action::start(
        &app,
        &request_id,
        &caller,
        peer,
        &format!("grant.revoke {}", short(&id)),
    );
    if !administers(&caller) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "Only the granting department's admin or an operator revokes a grant.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return act.refuse(p).await.into_response();
    }
    let _one_at_a_time = DECISIONS.lock().await;
    let snapshot = match app.live.registry().snapshot().await {
        Ok(s) => s,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let records = match app.live.registry().grants().await {
        Ok(records) => records,
        Err(e) => return registry_unavailable(&request_id, &e),
    };
    let config = app.config.load_full();
    let Some(record) = records.into_iter().find(|r| r.id == id) else {
        let problem = match config.policies.grants().iter().find(|g| g.id == id) {
            Some(g) => {
                act.event.connector = Some(g.connector.clone());
                Problem::new(
                    ProblemKind::FileManaged,
                    "This grant is in the county's policy files; edit the file and apply it.",
                )
                .with("origin", file_origin(&snapshot, &id))
            }
            None => unknown_grant(),
        };
        return act.refuse(problem).await.into_response();
    };
    act.event.connector = Some(record.connector.clone());
    let department = config
        .connectors
        .get(&record.connector)
        .map_or(record.department.clone(), |c| c.def.department.id.clone());
    if !may_administer(&caller, &department) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "A department revokes only grants of its own connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return act.refuse(p).await.into_response();
    }
    if record.revoked.is_some() {
        let p = Problem::new(ProblemKind::AlreadyDecided, "The grant is already revoked.");
        return act.refuse(p).await.into_response();
    }
    let reason = match body_or_default::<Reason>(&headers, body, REASON_SHAPE)
        .and_then(|r| check_reason(&r))
    {
        Ok(reason) => reason,
        Err(p) => return act.refuse(p).await.into_response(),
    };
    let revocation = Revocation {
        at: now_rfc3339(),
        by: caller.user.clone(),
        reason,
    };
    act.event.operation = Some(format!("grant.revoke {}", record.id));
    let change = Change::RevokeGrant {
        id: record.id.clone(),
        revocation: revocation.clone(),
    };
    match act.commit(vec![change]).await {
        Ok(changed) => {
            tracing::info!(request_id, user = %caller.user, grant = %record.id, "grant revoked");
            let revoked = GrantRecord {
                revoked: Some(revocation),
                ..record
            };
            axum::Json(json!({
                "grant": api_grant_view(&revoked, china_today(), None),
                "config_version": changed.version,
            }))
            .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}
