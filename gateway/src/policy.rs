//! Policy decisions: which fields of a record a caller gets, and which are withheld
//! and why. Default deny — a field leaves only when a decision allows it, and a field
//! the connector does not declare is never in the tree, so it can never be allowed.
//!
//! Until grants exist, the only decision is [`Decision::open_only`]: fields classified
//! `open` (无条件共享) are returned; `conditional` fields are withheld as not granted and
//! `never` fields as never shared.

use std::collections::BTreeMap;

use connectors::definition::{FieldDef, Sharing};
use serde::Serialize;
use serde_json::{Map, Value};

/// The shape of an operation's record, from its connector definition.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldNode {
    Leaf(Sharing),
    Object(BTreeMap<String, FieldNode>),
    List(BTreeMap<String, FieldNode>),
}

impl FieldNode {
    pub fn tree(fields: &BTreeMap<String, FieldDef>) -> BTreeMap<String, FieldNode> {
        fields
            .iter()
            .map(|(name, f)| {
                let node = if let Some(children) = &f.fields {
                    FieldNode::Object(FieldNode::tree(children))
                } else if let Some(children) = &f.items {
                    FieldNode::List(FieldNode::tree(children))
                } else {
                    FieldNode::Leaf(f.sharing.unwrap_or(Sharing::Never))
                };
                (name.clone(), node)
            })
            .collect()
    }
}

/// Why a field was not returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WithheldReason {
    /// Conditional field and no grant covers it.
    NotGranted,
    /// Classified `never` (不予共享).
    NeverShared,
}

/// A field that was withheld, with its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withheld {
    pub field: String,
    pub sharing: &'static str,
    pub reason: WithheldReason,
}

/// The outcome for one (caller, connector, operation, purpose).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    allowed: BTreeMap<String, Allowed>,
    pub withheld: Vec<Withheld>,
    /// How the decision was made, for the response and (later) the audit record.
    pub mode: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
enum Allowed {
    Leaf,
    Object(BTreeMap<String, Allowed>),
    List(BTreeMap<String, Allowed>),
}

impl Decision {
    /// Open fields only: the decision for any authenticated caller with a known purpose.
    pub fn open_only(tree: &BTreeMap<String, FieldNode>) -> Decision {
        let mut withheld = Vec::new();
        let allowed = open_fields("", tree, &mut withheld);
        Decision {
            allowed,
            withheld,
            mode: "open_only",
        }
    }

    /// Keeps only the allowed fields of a canonical record.
    pub fn apply(&self, record: &Value) -> Value {
        minimize(&self.allowed, record)
    }
}

fn open_fields(
    prefix: &str,
    tree: &BTreeMap<String, FieldNode>,
    withheld: &mut Vec<Withheld>,
) -> BTreeMap<String, Allowed> {
    let mut out = BTreeMap::new();
    for (name, node) in tree {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let allowed = match node {
            FieldNode::Leaf(Sharing::Open) => Some(Allowed::Leaf),
            FieldNode::Leaf(sharing) => {
                withheld.push(Withheld {
                    field: path,
                    sharing: sharing.as_str(),
                    reason: if *sharing == Sharing::Never {
                        WithheldReason::NeverShared
                    } else {
                        WithheldReason::NotGranted
                    },
                });
                None
            }
            FieldNode::Object(children) => {
                let inner = open_fields(&path, children, withheld);
                (!inner.is_empty()).then_some(Allowed::Object(inner))
            }
            FieldNode::List(children) => {
                let inner = open_fields(&format!("{path}[]"), children, withheld);
                (!inner.is_empty()).then_some(Allowed::List(inner))
            }
        };
        if let Some(allowed) = allowed {
            out.insert(name.clone(), allowed);
        }
    }
    out
}

fn minimize(allowed: &BTreeMap<String, Allowed>, record: &Value) -> Value {
    let Value::Object(fields) = record else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (name, rule) in allowed {
        let Some(value) = fields.get(name) else {
            continue;
        };
        let kept = match (rule, value) {
            (Allowed::Leaf, v) if !v.is_object() && !v.is_array() => v.clone(),
            (Allowed::Object(inner), v @ Value::Object(_)) => minimize(inner, v),
            (Allowed::List(inner), Value::Array(items)) => {
                Value::Array(items.iter().map(|item| minimize(inner, item)).collect())
            }
            // A null container stays null; any other shape mismatch is dropped.
            (Allowed::Object(_) | Allowed::List(_), Value::Null) => Value::Null,
            _ => continue,
        };
        out.insert(name.clone(), kept);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> BTreeMap<String, FieldNode> {
        let fields: BTreeMap<String, FieldDef> = serde_yaml_ng::from_str(
            r#"
id_number: { from: /a, pii: id_number, sharing: open }
name: { from: /b, pii: name, sharing: conditional }
bank_account: { from: /c, pii: account, sharing: never }
spouse: { from: /d, fields: { name: { from: /x, pii: name, sharing: conditional } } }
children:
  from: /e
  items:
    birth_date: { from: /x, pii: date, sharing: open }
    name: { from: /y, pii: name, sharing: conditional }
"#,
        )
        .unwrap();
        FieldNode::tree(&fields)
    }

    #[test]
    fn open_only_keeps_open_fields_and_lists_the_rest() {
        let decision = Decision::open_only(&tree());
        let record = json!({
            "id_number": "X", "name": "N", "bank_account": "B",
            "spouse": {"name": "S"},
            "children": [{"birth_date": "2016-01-01", "name": "C"}],
            "smuggled": "never declared"
        });
        assert_eq!(
            decision.apply(&record),
            json!({"id_number": "X", "children": [{"birth_date": "2016-01-01"}]})
        );
        let withheld: Vec<_> = decision
            .withheld
            .iter()
            .map(|w| (w.field.as_str(), w.reason))
            .collect();
        assert_eq!(
            withheld,
            [
                ("bank_account", WithheldReason::NeverShared),
                ("children[].name", WithheldReason::NotGranted),
                ("name", WithheldReason::NotGranted),
                ("spouse.name", WithheldReason::NotGranted),
            ]
        );
    }

    #[test]
    fn a_leaf_never_lets_a_nested_value_through() {
        let decision = Decision::open_only(&tree());
        let out = decision.apply(&json!({"id_number": {"hidden": "value"}}));
        assert_eq!(out, json!({}));
    }
}
