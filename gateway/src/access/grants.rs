//! Grants in force and past — the county's file grants and those approved requests
//! wrote — as each caller may see them, and taking one back (收回).

use super::decisions::check_reason;
use super::*;
use crate::app::App;
use crate::policy::{Grant, china_today};
use crate::registry::{Change, GrantRecord, Origin, Revocation, Snapshot};
use serde::Deserialize;

/// What a caller narrows the grants to; `None` is any.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Grants to this township (an API grant's township, a file grant's townships).
    pub township: Option<String>,
    /// Grants for this purpose.
    pub purpose: Option<String>,
}

/// A grant as a caller sees it: what it grants, where it stands today, and for an
/// API grant the registry's record of it (who approved it, when, its revocation).
#[derive(Debug, Clone)]
pub struct ListedGrant {
    pub view: GrantView,
    pub state: GrantState,
    pub record: Option<GrantRecord>,
}

impl ListedGrant {
    pub(super) fn of_file(grant: &Grant, today: NaiveDate) -> ListedGrant {
        let view = GrantView::of_grant(grant);
        let state = grant_state(false, view.valid_from, view.valid_until, today);
        ListedGrant {
            view,
            state,
            record: None,
        }
    }

    pub(super) fn of_record(
        record: &GrantRecord,
        today: NaiveDate,
        in_force: Option<&Grant>,
    ) -> ListedGrant {
        let mut view = GrantView::of_record(record);
        view.row = in_force.and_then(enforced);
        let state = grant_state(
            record.revoked.is_some(),
            view.valid_from,
            view.valid_until,
            today,
        );
        ListedGrant {
            view,
            state,
            record: Some(record.clone()),
        }
    }

    /// The grant as the API answers it.
    pub fn to_json(&self) -> Value {
        let mut out = self.view.to_json(self.state);
        match &self.record {
            None => out["origin"] = json!("file"),
            Some(record) => super::views::api_members(&mut out, record),
        }
        out
    }

    /// The townships the grant names: an API grant's one, a file grant's list.
    pub fn townships(&self) -> Vec<String> {
        match &self.record {
            Some(r) => vec![r.township.clone()],
            None => self.view.consumers["townships"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The grants the caller may see (file grants first, then API grants), narrowed by
/// `filter`: a department admin's department's, a township lead's township's, or all
/// (operators, privacy officers).
pub async fn list_grants(
    app: &App,
    who: &Who,
    filter: &GrantFilter,
) -> Result<Vec<ListedGrant>, Problem> {
    let caller = &who.caller;
    if !may_list(caller) {
        return Err(not_listed().for_request(&who.request_id));
    }
    let records = app
        .live
        .registry()
        .grants()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
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
    let mut list: Vec<ListedGrant> = config
        .policies
        .grants()
        .iter()
        .filter(|g| !api_ids.contains(g.id.as_str()))
        .filter(|g| {
            sees_all(caller)
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
        .map(|g| ListedGrant::of_file(g, today))
        .collect();
    list.extend(
        records
            .iter()
            .filter(|r| {
                sees_all(caller)
                    || own_department(Some(&r.department))
                    || township == Some(r.township.as_str())
            })
            .map(|r| {
                let in_force = config.policies.grants().iter().find(|g| g.id == r.id);
                ListedGrant::of_record(r, today, in_force)
            }),
    );
    Ok(list
        .into_iter()
        .filter(|g| {
            filter
                .township
                .as_ref()
                .is_none_or(|t| g.townships().contains(t))
        })
        .filter(|g| {
            filter
                .purpose
                .as_ref()
                .is_none_or(|p| g.view.purposes.contains(p))
        })
        .collect())
}

/// Where a file grant came from, for a `file-managed` answer: the applied policy file
/// that holds it, or the files named in `gateway.yaml`.
fn file_origin(snapshot: &Snapshot, id: &str) -> String {
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

/// A grant taken back (收回): its record as revoked, and the configuration version
/// in force without it.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub grant: GrantRecord,
    pub config_version: String,
}

/// The granting department's admin (or an operator) revokes API grant `id`, saying
/// why; the next lookup no longer sees it. A file grant is changed by editing its
/// file; another department's grant is refused (403).
pub async fn revoke(
    app: &App,
    who: &Who,
    id: &str,
    reason: Result<Reason, Problem>,
) -> Result<Revoked, Problem> {
    let caller = &who.caller;
    let mut act = who.start(app, &format!("grant.revoke {}", short(id)));
    if !administers(caller) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "Only the granting department's admin or an operator revokes a grant.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return Err(act.refuse(p).await);
    }
    let _one_at_a_time = DECISIONS.lock().await;
    let snapshot = app
        .live
        .registry()
        .snapshot()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let records = app
        .live
        .registry()
        .grants()
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let config = app.config.load_full();
    let Some(record) = records.into_iter().find(|r| r.id == id) else {
        let problem = match config.policies.grants().iter().find(|g| g.id == id) {
            Some(g) => {
                act.event.connector = Some(g.connector.clone());
                Problem::new(
                    ProblemKind::FileManaged,
                    "This grant is in the county's policy files; edit the file and apply it.",
                )
                .with("origin", file_origin(&snapshot, id))
            }
            None => unknown_grant(),
        };
        return Err(act.refuse(problem).await);
    };
    act.event.connector = Some(record.connector.clone());
    let department = config
        .connectors
        .get(&record.connector)
        .map_or(record.department.clone(), |c| c.def.department.id.clone());
    if !may_administer(caller, &department) {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "A department revokes only grants of its own connectors.",
        )
        .with("rule", OWNER_RULE)
        .with("reason", "role");
        return Err(act.refuse(p).await);
    }
    if record.revoked.is_some() {
        let p = Problem::new(ProblemKind::AlreadyDecided, "The grant is already revoked.");
        return Err(act.refuse(p).await);
    }
    let reason = match reason.and_then(|r| check_reason(&r)) {
        Ok(reason) => reason,
        Err(p) => return Err(act.refuse(p).await),
    };
    act.event.reason = Some(reason.clone());
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
    let changed = act.commit(vec![change]).await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, grant = %record.id, "grant revoked");
    Ok(Revoked {
        grant: GrantRecord {
            revoked: Some(revocation),
            ..record
        },
        config_version: changed.version,
    })
}
