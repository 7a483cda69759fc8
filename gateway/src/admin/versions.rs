//! Versions of a connector: saving a new one as a draft ([`save`]: checked exactly as
//! `gateway check` checks files, serving nothing until it is put in force) and
//! putting one in force ([`put_in_force`]: activate a draft, or roll back to one that
//! served before).
//!
//! A draft that loosens the county's classification is not put in force by its
//! department: the data-governance office's approval ([`crate::review`]) does, and
//! until then activation is refused (`awaiting-review`). Putting in force any version
//! that would loosen the classification in force needs that approval too.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    Ownership, administers, closed, may_administer, not_admin, not_owner, ownership,
    registry_unavailable, short, state, unknown_version,
};
use crate::action::{Action, Who};
use crate::app::App;
use crate::classification::Loosening;
use crate::problem::{Problem, ProblemKind};
use crate::registry::{Change, ConnectorVersion, ReviewState};

/// What saving a connector did.
#[derive(Debug, Clone)]
pub struct Saved {
    pub connector: String,
    /// The version saved, or the existing one with the same content.
    pub version: Option<u32>,
    /// `draft`, `awaiting_review`, or the existing version's state when unchanged.
    pub state: &'static str,
    /// The version in force.
    pub active: Option<u32>,
    /// The same content as an existing version: nothing new was saved.
    pub unchanged: bool,
    /// The content's digest.
    pub content: String,
    /// How the version loosens the classification in force (then it waits for the
    /// data-governance office).
    pub loosenings: Vec<Loosening>,
}

/// Where a definition that does not parse went wrong, said without quoting it: the
/// parser's own message can quote what was sent, and a key the sender wrote can be
/// anything (an ID number), so only the leading path of names a definition could
/// declare (a letter, then letters, digits, `_` or `-`) and list positions is kept.
pub fn unparsed(problem: &connectors::definition::DefinitionProblem) -> serde_json::Value {
    let mut path = Vec::new();
    for segment in problem.path.split('.').filter(|s| !s.is_empty()) {
        let name = segment.split('[').next().unwrap_or_default();
        let positions = &segment[name.len()..];
        let declarable = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let indexed = positions
            .chars()
            .all(|c| c.is_ascii_digit() || c == '[' || c == ']');
        if !declarable || !indexed {
            break;
        }
        path.push(segment);
    }
    json!({
        "path": path.join("."),
        "message": "is not well-formed YAML, or does not have the fields and types a connector definition takes",
    })
}

/// Saves connector `id` (its definition's YAML text and the schemas its operations
/// name, by path) as a new draft version: nothing changes in force. `id` is the
/// connector the person means to change (`None`: whichever the definition names,
/// for a new one). The same content as the version in force, or as the last draft,
/// makes no new version. Every problem the check finds is in the refusal
/// (`invalid-config`, with `problems`), and nothing is saved then.
pub async fn save(
    app: &App,
    who: &Who,
    id: Option<&str>,
    definition: String,
    schemas: BTreeMap<String, String>,
) -> Result<Saved, Problem> {
    // Its state (the audit event, the configuration checked) is large: on the heap.
    Box::pin(save_inner(app, who, id, definition, schemas)).await
}

async fn save_inner(
    app: &App,
    who: &Who,
    id: Option<&str>,
    definition: String,
    schemas: BTreeMap<String, String>,
) -> Result<Saved, Problem> {
    let mut act = who.start(
        app,
        &format!("connector.put {}", id.map_or_else(|| "?".to_owned(), short)),
    );
    let caller = &who.caller;
    if !administers(caller) {
        return Err(act.refuse(not_admin()).await);
    }
    let invalid = |detail: &str| Problem::new(ProblemKind::InvalidRequest, detail.to_owned());
    let def = match connectors::ConnectorDef::from_yaml(&definition) {
        Ok(def) => def,
        Err(p) => {
            let problem =
                invalid("The definition does not parse.").with("problems", vec![unparsed(&p)]);
            return Err(act.refuse(problem).await);
        }
    };
    if id.is_some_and(|id| def.id != id) {
        let p = invalid("The definition's id differs from the connector's.");
        return Err(act.refuse(p).await);
    }
    let id = def.id.clone();
    act.event.connector = Some(short(&id)).filter(|s| s != "?");
    let department = def.department.id.clone();
    let owned = ownership(app, &id)
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let problem = match &owned {
        Ownership::Unknown if !may_administer(caller, &department) => Some(not_owner()),
        Ownership::Unknown => None,
        known => known.refuse_change(caller),
    };
    if let Some(problem) = problem {
        return Err(act.refuse(problem).await);
    }
    let version = ConnectorVersion {
        id: id.clone(),
        version: 1,
        department,
        definition,
        schemas,
        origin: crate::registry::Origin::Api,
        created_at: app.clock.now_rfc3339(),
        created_by: caller.user.clone(),
        review: None,
        activated_at: None,
    };
    save_draft(app, who, owned, version, &def, act).await
}

/// Keeps a new version as a draft; one that loosens the county's classification
/// waits for the data-governance office as well.
async fn save_draft(
    app: &App,
    who: &Who,
    owned: Ownership,
    mut version: ConnectorVersion,
    def: &connectors::ConnectorDef,
    mut act: Action,
) -> Result<Saved, Problem> {
    let id = version.id.clone();
    let content = version.content_digest();
    let (current, last) = match &owned {
        Ownership::Registered(c) => {
            let versions = app
                .live
                .registry()
                .connector_versions(&id)
                .await
                .map_err(|e| registry_unavailable(&who.request_id, &e))?;
            (Some(c.current.clone()), versions.into_iter().last())
        }
        Ownership::Drafts(v) => (None, Some((**v).clone())),
        _ => (None, None),
    };
    let current_number = current.as_ref().map(|c| c.version);
    let same = [current.as_ref(), last.as_ref()]
        .into_iter()
        .flatten()
        .find(|v| v.same_content(&version) && !closed(v))
        .cloned();
    if let Some(same) = same {
        act.event.operation = Some(format!(
            "connector.put {id} content={content} unchanged=v{}",
            same.version
        ));
        act.commit(Vec::new()).await?;
        return Ok(Saved {
            connector: id,
            version: Some(same.version),
            state: state(&same, current_number),
            active: current_number,
            unchanged: true,
            content,
            loosenings: Vec::new(),
        });
    }
    let in_force = current
        .as_ref()
        .and_then(|c| connectors::ConnectorDef::from_yaml(&c.definition).ok());
    let loosenings = crate::classification::loosenings(in_force.as_ref(), def);
    if !loosenings.is_empty() {
        version.review = Some(crate::registry::Review {
            state: ReviewState::Pending,
            base_version: current_number,
            loosenings: loosenings.clone(),
            decided_at: None,
            decided_by: None,
            note: None,
        });
        act.event.operation = Some(format!(
            "connector.propose {id} content={content} loosens={}",
            loosenings.len()
        ));
    } else {
        act.event.operation = Some(format!("connector.draft {id} content={content}"));
    }
    act.commit(vec![Change::SaveDraft(version)]).await?;
    let saved = match app.live.registry().connector_versions(&id).await {
        Ok(list) => list.last().map(|v| v.version),
        Err(_) => None,
    };
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, connector = %id, review = !loosenings.is_empty(), "connector draft saved");
    Ok(Saved {
        connector: id,
        version: saved,
        state: if loosenings.is_empty() {
            "draft"
        } else {
            "awaiting_review"
        },
        active: current_number,
        unchanged: false,
        content,
        loosenings,
    })
}

/// What putting a version in force did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub connector: String,
    pub version: u32,
    /// The version in force before.
    pub previous: Option<u32>,
    /// It was in force (and enabled) already.
    pub unchanged: bool,
    /// The configuration's new version (none when unchanged).
    pub config_version: Option<String>,
}

/// Puts version `number` of connector `id` in force: `rollback` only to a version
/// that served before. `number` is `None` when the person's text was not a version
/// number.
pub async fn put_in_force(
    app: &App,
    who: &Who,
    id: &str,
    number: Option<u32>,
    rollback: bool,
) -> Result<InForce, Problem> {
    let operation = if rollback {
        format!("connector.rollback {}", short(id))
    } else {
        format!(
            "connector.activate {} v{}",
            short(id),
            number.map_or_else(|| "?".to_owned(), |n| n.to_string())
        )
    };
    let mut act = who.start(app, &operation);
    let caller = &who.caller;
    if !administers(caller) {
        return Err(act.refuse(not_admin()).await);
    }
    let owned = ownership(app, id)
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    if !matches!(owned, Ownership::Unknown) {
        act.event.connector = Some(id.to_owned());
    }
    if let Some(problem) = owned.refuse_change(caller) {
        return Err(act.refuse(problem).await);
    }
    let versions = app
        .live
        .registry()
        .connector_versions(id)
        .await
        .map_err(|e| registry_unavailable(&who.request_id, &e))?;
    let Some(target) = number.and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return Err(act.refuse(unknown_version()).await);
    };
    let (current, enabled) = match &owned {
        Ownership::Registered(c) => (Some(c.current.clone()), c.enabled),
        _ => (None, false),
    };
    let current_number = current.as_ref().map(|c| c.version);
    let action = if rollback { "rollback" } else { "activate" };
    act.event.operation = Some(format!(
        "connector.{action} {id} v{} from={} content={}",
        target.version,
        current_number.map_or_else(|| "none".to_owned(), |n| format!("v{n}")),
        target.content_digest()
    ));
    if current_number == Some(target.version) && enabled {
        act.commit(Vec::new()).await?;
        return Ok(InForce {
            connector: id.to_owned(),
            version: target.version,
            previous: current_number,
            unchanged: true,
            config_version: None,
        });
    }
    if let Some(problem) = not_activatable(&target, current.as_ref(), rollback) {
        return Err(act.refuse(problem).await);
    }
    let target = ConnectorVersion {
        activated_at: Some(app.clock.now_rfc3339()),
        ..target
    };
    let number = target.version;
    let changed = act.commit(vec![Change::ActivateVersion(target)]).await?;
    tracing::info!(request_id = %who.request_id, user = %caller.user, connector = %id, version = number, "connector version put in force ({action})");
    Ok(InForce {
        connector: id.to_owned(),
        version: number,
        previous: current_number,
        unchanged: false,
        config_version: Some(changed.version),
    })
}

/// Why `target` may not be put in force over `current`, if it may not.
fn not_activatable(
    target: &ConnectorVersion,
    current: Option<&ConnectorVersion>,
    rollback: bool,
) -> Option<Problem> {
    let review = target.review.as_ref().map(|r| r.state);
    if review == Some(ReviewState::Pending) {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "This version loosens the county's classification; the data-governance office's approval puts it in force.",
            )
            .with("version", target.version),
        );
    }
    if matches!(review, Some(ReviewState::Refused | ReviewState::Superseded)) {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "This version's classification review was refused or superseded; it cannot be put in force. Save it again to have it reviewed.",
            )
            .with("version", target.version),
        );
    }
    if rollback && target.activated_at.is_none() {
        return Some(
            Problem::new(
                ProblemKind::InvalidRequest,
                "A rollback goes back to a version that served before; this one never did. Activate it instead.",
            )
            .with("at", "version"),
        );
    }
    if review == Some(ReviewState::Approved) {
        return None;
    }
    let in_force = current.and_then(|c| connectors::ConnectorDef::from_yaml(&c.definition).ok());
    let target_def = connectors::ConnectorDef::from_yaml(&target.definition).ok()?;
    let loosenings = crate::classification::loosenings(in_force.as_ref(), &target_def);
    if current.is_some() && !loosenings.is_empty() {
        return Some(
            Problem::new(
                ProblemKind::AwaitingReview,
                "Putting this version in force would loosen the classification in force; save it again as a new version for the data-governance office's review.",
            )
            .with("version", target.version)
            .with("loosenings", serde_json::to_value(&loosenings).unwrap_or_default()),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_shaped_path_segments_reach_the_audit_log() {
        assert_eq!(short("jisheng2"), "jisheng2");
        assert_eq!(
            short("ar-0193a2b4c5d67e8f9a0b1c2d3e4f5a6b"),
            "ar-0193a2b4c5d67e8f9a0b1c2d3e4f5a6b"
        );
        // An ID number pasted into a URL is not recorded.
        assert_eq!(short("13990119750327229X"), "?");
        assert_eq!(short("139901197503272291"), "?");
        assert_eq!(short("Hukou"), "?");
        assert_eq!(short(&"a".repeat(81)), "?");
    }

    #[test]
    fn a_definition_that_does_not_parse_is_not_quoted_back() {
        let id = "13990119750327229X";
        for text in [
            format!("id: hukou\ntimeout_ms: \"{id}\"\n"),
            format!("id: hukou\noperations:\n  \"{id}\": [1\n"),
            format!("id: hukou\n{id}: 1\n"),
        ] {
            let problem = connectors::ConnectorDef::from_yaml(&text)
                .expect_err("the definition does not parse");
            let shown = unparsed(&problem).to_string();
            assert!(!shown.contains(id), "{shown}");
            assert!(!shown.contains("29X"), "{shown}");
        }
    }
}
