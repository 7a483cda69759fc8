//! The other persons a released view discloses: a record's nested person (a spouse),
//! its lists of persons (children, household members) and a top-level ID number that
//! is not the subject's (a household's head). Each is named in the audit event by the
//! pseudonym of their ID number — read from the canonical record, even where the view
//! masks or withholds it — with the released fields about them, so that their own
//! access report finds the lookup.

use std::collections::BTreeMap;

use connectors::definition::{LeafField, PiiKind};
use connectors::subject::IdNumber;
use serde_json::Value;

use crate::audit::LinkedPerson;
use crate::mask::PseudonymKey;
use crate::policy::Outcome;

/// The persons other than the subject (`subject_pseudonym`) whose data `outcome`
/// released, from the canonical `record` of an operation with `leaves`.
pub(crate) fn people(
    leaves: &[LeafField],
    record: &Value,
    outcome: &Outcome,
    subject_pseudonym: &str,
    key: &PseudonymKey,
) -> Vec<LinkedPerson> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id_leaf in leaves.iter().filter(|l| l.pii == PiiKind::IdNumber) {
        let (prefix, name) = match id_leaf.path.rsplit_once('.') {
            Some((prefix, name)) => (prefix, name),
            None => ("", id_leaf.path.as_str()),
        };
        // The released fields about the person this ID number belongs to: the
        // fields beside it in its object or list item, or (at the top level, where
        // the record's other fields are about its subject or household) all of the
        // top-level fields.
        let released: Vec<String> = outcome
            .fields
            .keys()
            .filter(|path| match path.rsplit_once('.') {
                Some((p, _)) => p == prefix,
                None => prefix.is_empty(),
            })
            .cloned()
            .collect();
        if released.is_empty() {
            continue;
        }
        for id in ids_at(record, prefix, name) {
            let normalized = IdNumber::parse(&id).map_or(id, |n| n.as_str().to_owned());
            let pseudonym = key.pseudonym(&normalized);
            if pseudonym == subject_pseudonym {
                continue;
            }
            let fields = found.entry(pseudonym).or_default();
            for f in &released {
                if !fields.contains(f) {
                    fields.push(f.clone());
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(pseudonym, fields)| LinkedPerson { fields, pseudonym })
        .collect()
}

/// The non-empty string values of field `name` in every object `prefix` reaches
/// (`spouse`, `children[]`, `a[].b[]`; empty: the record itself).
fn ids_at(record: &Value, prefix: &str, name: &str) -> Vec<String> {
    let mut objects = vec![record];
    if !prefix.is_empty() {
        for step in prefix.split('.') {
            let (field, list) = match step.strip_suffix("[]") {
                Some(field) => (field, true),
                None => (step, false),
            };
            objects = objects
                .into_iter()
                .filter_map(|o| o.get(field))
                .flat_map(|v| match (list, v) {
                    (true, Value::Array(items)) => items.iter().collect::<Vec<_>>(),
                    (false, Value::Object(_)) => vec![v],
                    _ => Vec::new(),
                })
                .collect();
        }
    }
    objects
        .into_iter()
        .filter_map(|o| o.get(name).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use connectors::definition::Sharing;
    use serde_json::json;

    use super::*;
    use crate::policy::Returned;

    fn leaf(path: &str, pii: PiiKind) -> LeafField {
        LeafField {
            path: path.into(),
            pii,
            sharing: Sharing::Conditional,
        }
    }

    fn outcome(released: &[&str]) -> Outcome {
        Outcome {
            data: Value::Null,
            fields: released
                .iter()
                .map(|f| {
                    (
                        (*f).to_owned(),
                        Returned {
                            mask: "keep",
                            rule: "g".into(),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            withheld: Vec::new(),
            rules: BTreeSet::new(),
            disclose_after: None,
        }
    }

    #[test]
    fn a_spouse_and_children_are_named_with_the_fields_released_about_them() {
        let key = PseudonymKey::new(&[7u8; 32]).unwrap();
        let leaves = vec![
            leaf("id_number", PiiKind::IdNumber),
            leaf("name", PiiKind::Name),
            leaf("spouse.id_number", PiiKind::IdNumber),
            leaf("spouse.name", PiiKind::Name),
            leaf("children[].id_number", PiiKind::IdNumber),
            leaf("children[].birth_date", PiiKind::Date),
        ];
        let record = json!({
            "id_number": "11010519491231002X",
            "name": "甲",
            "spouse": {"id_number": "110105194912310037", "name": "乙"},
            "children": [
                {"id_number": "110105201001010011", "birth_date": "2010-01-01"},
                {"id_number": "110105201201010013", "birth_date": "2012-01-01"},
            ],
        });
        let me = key.pseudonym("11010519491231002X");
        // The spouse's name and the children's birth dates were released, no ID
        // number among them: each person is still named.
        let view = outcome(&["name", "spouse.name", "children[].birth_date"]);
        let people = people(&leaves, &record, &view, &me, &key);
        assert_eq!(people.len(), 3, "{people:?}");
        let spouse = key.pseudonym("110105194912310037");
        let of = |p: &str| {
            people
                .iter()
                .find(|l| l.pseudonym == p)
                .map(|l| l.fields.clone())
        };
        assert_eq!(of(&spouse), Some(vec!["spouse.name".to_owned()]));
        assert_eq!(
            of(&key.pseudonym("110105201201010013")),
            Some(vec!["children[].birth_date".to_owned()])
        );
        // Nothing about the spouse released: the spouse is not named.
        let view = outcome(&["name", "children[].birth_date"]);
        let people = super::people(&leaves, &record, &view, &me, &key);
        assert!(people.iter().all(|l| l.pseudonym != spouse));
        assert_eq!(people.len(), 2);
    }
}
