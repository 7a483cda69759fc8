//! Who may lower a field's classification (invariant 10): the county's data-governance
//! office (大数据局) owns the county's classification, so a connector version made
//! through the API that *loosens* it waits for that office's review, whose approval
//! puts it in force; one that keeps or tightens it is a draft its department activates
//! itself ([`crate::drafts`]). Files the operator applies (`gateway apply`,
//! `gateway.yaml`) are reviewed as files and are not held. [`diff`] says what changed
//! between two versions.
//!
//! A field's classification is its sharing type (`never` 不予共享 → `conditional`
//! 有条件共享 → `open` 无条件共享, in decreasing protection) and its personal-data
//! kind (`pii`, which picks the default mask). Compared field by field (operation and
//! dotted path) with the version in force, a version **loosens** the classification
//! where a field:
//!
//! - gets a lower sharing type;
//! - keeps a shared type but changes its personal-data kind (its default mask), or
//!   the department field it reads (`from`, `transform`): new data under an old label;
//! - is new and not `never` (a new connector has no classification yet, so every
//!   field it shares is new).
//!
//! Removing a field or raising its sharing type never waits.

use std::collections::BTreeMap;

use connectors::ConnectorDef;
use connectors::definition::{FieldDef, PiiKind, Sharing};
use serde::{Deserialize, Serialize};

/// One field whose classification a version loosens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Loosening {
    pub operation: String,
    /// Dotted path, e.g. `children[].name`.
    pub field: String,
    /// The classification in force; `None` for a new field.
    pub from: Option<FieldClass>,
    pub to: FieldClass,
    /// Why it counts: `lowered`, `new`, `pii_changed` or `source_changed`.
    pub reason: LooseningReason,
}

/// A field's sharing type and personal-data kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldClass {
    #[schema(value_type = connectors::definition::Sharing)]
    pub sharing: Sharing,
    #[schema(value_type = connectors::definition::PiiKind)]
    pub pii: PiiKind,
}

/// Why a field change needs review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LooseningReason {
    /// A lower sharing type.
    Lowered,
    /// A field that was not there, shared.
    New,
    /// Another personal-data kind (another default mask).
    PiiChanged,
    /// Reads another department field, or transforms it differently.
    SourceChanged,
}

/// How protected a sharing type is: higher is more protected.
fn protection(sharing: Sharing) -> u8 {
    match sharing {
        Sharing::Open => 0,
        Sharing::Conditional => 1,
        Sharing::Never => 2,
    }
}

/// A leaf's classification and where it reads from.
struct Leaf<'a> {
    class: FieldClass,
    def: &'a FieldDef,
}

/// Every leaf of an operation's record, by dotted path.
fn leaves(record: &BTreeMap<String, FieldDef>) -> BTreeMap<String, Leaf<'_>> {
    fn walk<'a>(
        prefix: &str,
        record: &'a BTreeMap<String, FieldDef>,
        out: &mut BTreeMap<String, Leaf<'a>>,
    ) {
        for (name, def) in record {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(fields) = &def.fields {
                walk(&path, fields, out);
            } else if let Some(items) = &def.items {
                walk(&format!("{path}[]"), items, out);
            } else if let (Some(pii), Some(sharing)) = (def.pii, def.sharing) {
                out.insert(
                    path,
                    Leaf {
                        class: FieldClass { sharing, pii },
                        def,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", record, &mut out);
    out
}

/// Every field whose classification `new` loosens compared with `current` (the
/// version in force; `None` for a new connector), in operation and field order.
pub fn loosenings(current: Option<&ConnectorDef>, new: &ConnectorDef) -> Vec<Loosening> {
    let mut found = Vec::new();
    for (name, op) in &new.operations {
        let before = current
            .and_then(|c| c.operations.get(name))
            .map(|op| leaves(&op.record))
            .unwrap_or_default();
        for (path, leaf) in leaves(&op.record) {
            if leaf.class.sharing == Sharing::Never {
                continue;
            }
            let reason = match before.get(&path) {
                None => Some(LooseningReason::New),
                Some(old) if protection(leaf.class.sharing) < protection(old.class.sharing) => {
                    Some(LooseningReason::Lowered)
                }
                Some(old) if leaf.class.pii != old.class.pii => Some(LooseningReason::PiiChanged),
                Some(old)
                    if leaf.def.from != old.def.from || leaf.def.transform != old.def.transform =>
                {
                    Some(LooseningReason::SourceChanged)
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                let from = before.get(&path).map(|old| old.class);
                found.push(Loosening {
                    operation: name.clone(),
                    field: path,
                    from,
                    to: leaf.class,
                    reason,
                });
            }
        }
    }
    found
}

/// What changed between two versions of a connector: top-level settings, operations,
/// and every classified field (added, removed, reclassified, read from elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionDiff {
    /// Top-level members of the definition that differ (e.g. `base_url`, `timeouts`).
    pub connector: Vec<String>,
    pub operations_added: Vec<String>,
    pub operations_removed: Vec<String>,
    /// Operations in both whose request, subject, schema or title differ.
    pub operations_changed: Vec<OperationChange>,
    pub fields_added: Vec<FieldChange>,
    pub fields_removed: Vec<FieldChange>,
    /// Fields in both whose sharing type or personal-data kind differ.
    pub fields_reclassified: Vec<FieldChange>,
    /// Fields in both that read another department field or transform it otherwise.
    pub fields_remapped: Vec<FieldChange>,
}

/// An operation present in both versions, and which of its members differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OperationChange {
    pub operation: String,
    pub changed: Vec<String>,
}

/// One field in a diff, with its classification before and after (where it has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub operation: String,
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<FieldClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<FieldClass>,
}

/// The members of two JSON objects that differ, leaving out `skip`.
fn changed_members(old: &serde_json::Value, new: &serde_json::Value, skip: &str) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| k.as_str() != skip && old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// What changed from `old` to `new`.
pub fn diff(old: &ConnectorDef, new: &ConnectorDef) -> VersionDiff {
    let mut out = VersionDiff {
        connector: changed_members(&as_json(old), &as_json(new), "operations"),
        ..VersionDiff::default()
    };
    for name in old.operations.keys() {
        if !new.operations.contains_key(name) {
            out.operations_removed.push(name.clone());
        }
    }
    for (name, op) in &new.operations {
        let Some(before) = old.operations.get(name) else {
            out.operations_added.push(name.clone());
            continue;
        };
        let changed = changed_members(&as_json(before), &as_json(op), "record");
        if !changed.is_empty() {
            out.operations_changed.push(OperationChange {
                operation: name.clone(),
                changed,
            });
        }
        let (was, now) = (leaves(&before.record), leaves(&op.record));
        let change = |field: &str, from: Option<FieldClass>, to: Option<FieldClass>| FieldChange {
            operation: name.clone(),
            field: field.to_owned(),
            from,
            to,
        };
        for (path, leaf) in &was {
            if !now.contains_key(path) {
                out.fields_removed
                    .push(change(path, Some(leaf.class), None));
            }
        }
        for (path, leaf) in &now {
            match was.get(path) {
                None => out.fields_added.push(change(path, None, Some(leaf.class))),
                Some(old) if old.class != leaf.class => {
                    out.fields_reclassified
                        .push(change(path, Some(old.class), Some(leaf.class)))
                }
                Some(old)
                    if old.def.from != leaf.def.from || old.def.transform != leaf.def.transform =>
                {
                    out.fields_remapped
                        .push(change(path, Some(old.class), Some(leaf.class)))
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// A definition (or a part of one) as JSON, for [`diff`]'s member comparison.
fn as_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn def(fields: &str) -> ConnectorDef {
        ConnectorDef::from_yaml(&format!(
            r#"
id: psb
title: 公安
department: {{ id: county-psb }}
base_url: http://127.0.0.1:1
envelope: {{ status: /code, ok: [0], data: /data }}
operations:
  person_by_id:
    title: 按身份证号查询
    request: {{ path: /person, body: {{ sfzh: "$subject" }} }}
    schema: psb/person.schema.json
    record:
{fields}
"#
        ))
        .unwrap()
    }

    const BASE: &str = "      id_number: { from: /sfzh, pii: id_number, sharing: open }
      name: { from: /xm, pii: name, sharing: conditional }
      bank_account: { from: /yhzh, pii: account, sharing: never }";

    fn reasons(
        current: Option<&ConnectorDef>,
        new: &ConnectorDef,
    ) -> Vec<(String, LooseningReason)> {
        loosenings(current, new)
            .into_iter()
            .map(|l| (l.field, l.reason))
            .collect()
    }

    #[test]
    fn the_same_classification_or_a_tighter_one_needs_no_review() {
        let base = def(BASE);
        assert_eq!(reasons(Some(&base), &base), vec![]);
        let tighter = def(&BASE
            .replace(
                "pii: id_number, sharing: open",
                "pii: id_number, sharing: conditional",
            )
            .replace(
                "      name: { from: /xm, pii: name, sharing: conditional }\n",
                "",
            ));
        assert_eq!(reasons(Some(&base), &tighter), vec![]);
    }

    #[test]
    fn never_shared_made_open_is_lowered() {
        let base = def(BASE);
        let lowered = def(&BASE.replace(
            "pii: account, sharing: never",
            "pii: account, sharing: open",
        ));
        let found = loosenings(Some(&base), &lowered);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, "bank_account");
        assert_eq!(found[0].reason, LooseningReason::Lowered);
        assert_eq!(found[0].from.unwrap().sharing, Sharing::Never);
        assert_eq!(found[0].to.sharing, Sharing::Open);
    }

    #[test]
    fn a_new_connector_shares_only_new_fields() {
        let new = def(BASE);
        assert_eq!(
            reasons(None, &new),
            vec![
                ("id_number".to_owned(), LooseningReason::New),
                ("name".to_owned(), LooseningReason::New),
            ]
        );
    }

    #[test]
    fn another_personal_data_kind_or_source_under_the_same_label_needs_review() {
        let base = def(BASE);
        let relabelled = def(&BASE.replace("pii: name, sharing", "pii: none, sharing"));
        assert_eq!(
            reasons(Some(&base), &relabelled),
            vec![("name".to_owned(), LooseningReason::PiiChanged)]
        );
        let resourced = def(&BASE.replace("from: /xm", "from: /yhzh"));
        assert_eq!(
            reasons(Some(&base), &resourced),
            vec![("name".to_owned(), LooseningReason::SourceChanged)]
        );
    }

    #[test]
    fn a_diff_names_fields_added_removed_reclassified_and_remapped() {
        let old = def(
            "      name: { from: /xm, pii: name, sharing: conditional }\n      gender: { from: /xb, pii: code, sharing: open }\n      phone: { from: /dh, pii: phone, sharing: conditional }",
        );
        let new = def(
            "      name: { from: /xm, pii: name, sharing: open }\n      gender: { from: /xbdm, pii: code, sharing: open }\n      address: { from: /dz, pii: address, sharing: conditional }",
        );
        let d = diff(&old, &new);
        let names = |list: &[FieldChange]| list.iter().map(|f| f.field.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.fields_added), ["address"]);
        assert_eq!(names(&d.fields_removed), ["phone"]);
        assert_eq!(names(&d.fields_reclassified), ["name"]);
        assert_eq!(names(&d.fields_remapped), ["gender"]);
        assert!(d.operations_changed.is_empty());
        assert!(d.connector.is_empty());
        assert_eq!(diff(&old, &old), VersionDiff::default());
    }
}
