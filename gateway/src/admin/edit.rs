//! The common changes to a connector without writing its definition by hand: title,
//! base URL, timeouts, capacity, cache lifetimes and a field's sharing type. They are
//! applied to the newest definition (the one in force, else the newest draft), which
//! is written out again and saved exactly as an uploaded one ([`super::versions::save`]:
//! the same check, a new draft, a review when it loosens the classification).

use std::collections::BTreeMap;

use connectors::definition::{CapacityDef, FieldDef, Sharing, Transport};

use super::versions::{Saved, save};
use super::{Ownership, readable, unknown_connector};
use crate::action::Who;
use crate::app::App;
use crate::problem::{Problem, ProblemKind};

/// The changes a person asks for; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommonChanges {
    pub title: Option<String>,
    pub base_url: Option<String>,
    pub connect_ms: Option<u64>,
    pub total_ms: Option<u64>,
    /// `Some(None)`: no capacity limit.
    pub capacity: Option<Option<CapacityDef>>,
    pub cache_ttl_s: Option<u64>,
    pub not_found_ttl_s: Option<u64>,
    /// Sharing types by operation and field path (`members[].name`).
    pub sharing: BTreeMap<(String, String), Sharing>,
}

/// The field at `path` (`a.b`, `list[].c`) of a record.
fn field_mut<'a>(
    record: &'a mut BTreeMap<String, FieldDef>,
    path: &str,
) -> Option<&'a mut FieldDef> {
    let mut fields = record;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        let field = fields.get_mut(name)?;
        if segments.peek().is_none() {
            return (!items).then_some(field);
        }
        fields = if items {
            field.items.as_mut()?
        } else {
            field.fields.as_mut()?
        };
    }
    None
}

/// `def` with `changes` applied; the places that do not exist are the problems.
pub fn apply(
    mut def: connectors::ConnectorDef,
    changes: &CommonChanges,
) -> Result<connectors::ConnectorDef, Vec<String>> {
    let mut missing = Vec::new();
    if let Some(title) = &changes.title {
        def.title.clone_from(title);
    }
    if let Some(url) = &changes.base_url {
        match &mut def.transport {
            Transport::Http(settings) => settings.base_url.clone_from(url),
            // A front database's connection is the operator's, not the connector's.
            Transport::Sql(_) => missing.push("base_url".to_owned()),
        }
    }
    if let Some(ms) = changes.connect_ms {
        def.timeouts.connect_ms = ms;
    }
    if let Some(ms) = changes.total_ms {
        def.timeouts.total_ms = ms;
    }
    if let Some(capacity) = &changes.capacity {
        def.capacity.clone_from(capacity);
    }
    if let Some(ttl) = changes.cache_ttl_s {
        def.cache.ttl_s = ttl;
    }
    if let Some(ttl) = changes.not_found_ttl_s {
        def.cache.not_found_ttl_s = ttl;
    }
    for ((operation, path), sharing) in &changes.sharing {
        let field = def
            .operations
            .get_mut(operation)
            .and_then(|op| field_mut(&mut op.record, path));
        match field {
            Some(field) => field.sharing = Some(*sharing),
            None => missing.push(format!("operations.{operation}.record.{path}")),
        }
    }
    if missing.is_empty() {
        Ok(def)
    } else {
        Err(missing)
    }
}

/// What the edit form starts from.
#[derive(Debug, Clone)]
pub struct Base {
    /// The version in force, else the newest draft (a main-file connector's own).
    pub def: connectors::ConnectorDef,
    /// The schemas that version names, kept as they are.
    pub schemas: BTreeMap<String, String>,
    /// Whether the connector is changed in the county's files instead.
    pub file_managed: bool,
}

/// The definition the edit form starts from, and the schemas it keeps.
pub async fn base(app: &App, who: &Who, id: &str) -> Result<Base, Problem> {
    let (owned, versions) = readable(app, &who.caller, id).await?;
    let file_managed = owned.file_managed();
    let version = match &owned {
        Ownership::Registered(c) => Some(c.current.clone()),
        Ownership::Drafts(_) => versions.last().cloned(),
        Ownership::MainFile { .. } | Ownership::Unknown => None,
    };
    if let Some(version) = version {
        let def = connectors::ConnectorDef::from_yaml(&version.definition)
            .map_err(|_| Problem::new(ProblemKind::Internal, "A stored version cannot be read."))?;
        return Ok(Base {
            def,
            schemas: version.schemas,
            file_managed,
        });
    }
    // A connector of the main file's: edited in its file, but its form may be read.
    let config = app.config.load_full();
    let connector = config.connectors.get(id).ok_or_else(unknown_connector)?;
    Ok(Base {
        def: (*connector.def).clone(),
        schemas: BTreeMap::new(),
        file_managed,
    })
}

/// Applies `changes` to connector `id` and saves the result as a new draft version;
/// `None` when the changes change nothing (nothing is saved then).
pub async fn edit(
    app: &App,
    who: &Who,
    id: &str,
    changes: &CommonChanges,
) -> Result<Option<Saved>, Problem> {
    let Base {
        def: base_def,
        schemas,
        ..
    } = base(app, who, id).await?;
    let def = apply(base_def.clone(), changes).map_err(|missing| {
        Problem::new(
            ProblemKind::InvalidRequest,
            "The change names fields the connector does not have.",
        )
        .with(
            "problems",
            missing
                .into_iter()
                .map(|path| serde_json::json!({"path": path, "message": "no such field"}))
                .collect::<Vec<_>>(),
        )
    })?;
    if def == base_def {
        return Ok(None);
    }
    let text = serde_yaml_ng::to_string(&def).map_err(|_| {
        Problem::new(
            ProblemKind::Internal,
            "The changed definition could not be written.",
        )
    })?;
    save(app, who, Some(id), text, schemas).await.map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    const HUKOU: &str = include_str!("../../../county/connectors/hukou.yaml");

    #[test]
    fn the_common_changes_make_the_definition_a_person_would_have_written() {
        let def = connectors::ConnectorDef::from_yaml(HUKOU).unwrap();
        let mut changes = CommonChanges {
            title: Some("户籍人口信息（新）".into()),
            base_url: Some("http://127.0.0.1:18111".into()),
            total_ms: Some(5000),
            capacity: Some(None),
            cache_ttl_s: Some(30),
            ..CommonChanges::default()
        };
        changes
            .sharing
            .insert(("person_by_id".into(), "ethnicity".into()), Sharing::Never);
        changes.sharing.insert(
            ("household".into(), "members[].name".into()),
            Sharing::Never,
        );
        let changed = apply(def.clone(), &changes).unwrap();
        let text = serde_yaml_ng::to_string(&changed).unwrap();
        let again = connectors::ConnectorDef::from_yaml(&text).unwrap();
        assert_eq!(again, changed, "written out and read back the same");
        assert_eq!(again.title, "户籍人口信息（新）");
        assert_eq!(again.timeouts.total_ms, 5000);
        assert_eq!(again.timeouts.connect_ms, def.timeouts.connect_ms);
        assert_eq!(again.capacity, None);
        assert_eq!(again.cache.ttl_s, 30);
        let Transport::Http(settings) = &again.transport else {
            panic!("an HTTP connector");
        };
        assert_eq!(settings.base_url, "http://127.0.0.1:18111");
        let op = &again.operations["person_by_id"];
        assert_eq!(op.record["ethnicity"].sharing, Some(Sharing::Never));
        let members = again.operations["household"].record["members"]
            .items
            .as_ref()
            .unwrap();
        assert_eq!(members["name"].sharing, Some(Sharing::Never));
        assert_eq!(
            op.record["name"].sharing, def.operations["person_by_id"].record["name"].sharing,
            "the rest is unchanged"
        );
        let mut wrong = CommonChanges::default();
        wrong
            .sharing
            .insert(("person_by_id".into(), "nickname".into()), Sharing::Open);
        assert_eq!(
            apply(def, &wrong).unwrap_err(),
            vec!["operations.person_by_id.record.nickname".to_owned()]
        );
    }
}
