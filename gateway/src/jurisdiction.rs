//! Jurisdiction: where a person lives, as the county's authority for residence says.
//!
//! The county names one connector — its household register (户籍) — as that
//! authority (`jurisdiction:` in gateway.yaml): the operation that finds a person by
//! ID number (and, optionally, a household by its number) and the record's field that
//! holds the township code. A grant with `jurisdiction: township` then holds only for
//! subjects who live in the caller's township, whatever the department's own record
//! carries: the gateway asks the authority (through its cache), before the department
//! is asked, and shows the caller nothing of the answer beyond allowed or refused. A
//! person the authority does not know is outside every township, so an outsider gets
//! the same answer whether or not the person exists.
//!
//! This module owns the configuration of the authority and reading a township from
//! its record; the check itself runs in the lookup pipeline (`lookup`).

use connectors::definition::SubjectKey;
use serde::Deserialize;
use serde_json::Value;

/// `jurisdiction:` as written in gateway.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JurisdictionConfig {
    /// The connector of the county's household register.
    pub connector: String,
    /// Its operation that finds a person by ID number.
    pub by_id_number: String,
    /// Its operation that finds a household by household number, for grants on
    /// operations keyed by household number.
    #[serde(default)]
    pub by_household_number: Option<String>,
    /// The top-level field of those records that holds the 9-digit township code.
    pub township_field: String,
}

/// The authority, checked against the loaded connectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub connector: String,
    pub by_id_number: String,
    pub by_household_number: Option<String>,
    pub township_field: String,
}

/// What the loaded configuration offers for checking an authority.
pub(crate) trait Operations {
    /// The subject key and top-level leaf names of `connector`'s `operation`, if it
    /// is loaded.
    fn operation(&self, connector: &str, operation: &str) -> Option<(SubjectKey, Vec<String>)>;
}

impl JurisdictionConfig {
    /// Checks the authority against the loaded connectors; each problem is a path
    /// under `jurisdiction` and a message.
    pub(crate) fn check(
        &self,
        loaded: &dyn Operations,
    ) -> Result<Authority, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut check = |at: &str, operation: &str, key: SubjectKey| match loaded
            .operation(&self.connector, operation)
        {
            None => problems.push((
                at.to_owned(),
                format!(
                    "is not an operation of connector `{}` (or that connector is not configured)",
                    self.connector
                ),
            )),
            Some((subject, fields)) => {
                if subject != key {
                    problems.push((
                        at.to_owned(),
                        format!("must look its subject up by {}", key.as_str()),
                    ));
                }
                if !fields.contains(&self.township_field) {
                    problems.push((
                        "township_field".to_owned(),
                        format!("is not a top-level field of operation `{operation}`"),
                    ));
                }
            }
        };
        check("by_id_number", &self.by_id_number, SubjectKey::IdNumber);
        if let Some(op) = &self.by_household_number {
            check("by_household_number", op, SubjectKey::HouseholdNumber);
        }
        if problems.is_empty() {
            Ok(Authority {
                connector: self.connector.clone(),
                by_id_number: self.by_id_number.clone(),
                by_household_number: self.by_household_number.clone(),
                township_field: self.township_field.clone(),
            })
        } else {
            Err(problems)
        }
    }
}

impl Authority {
    /// The operation that says where a subject with this kind of key lives.
    pub fn operation_for(&self, key: SubjectKey) -> Option<&str> {
        match key {
            SubjectKey::IdNumber => Some(&self.by_id_number),
            SubjectKey::HouseholdNumber => self.by_household_number.as_deref(),
        }
    }

    /// Whether `operation` of `connector` is one of the authority's own.
    pub fn is_authority(&self, connector: &str, operation: &str) -> bool {
        connector == self.connector
            && (operation == self.by_id_number
                || self.by_household_number.as_deref() == Some(operation))
    }

    /// The township a record of the authority places its subject in.
    pub fn township_of(&self, record: &Value) -> Option<String> {
        record
            .get(&self.township_field)
            .and_then(Value::as_str)
            .filter(|t| t.len() == 9 && t.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    struct Loaded(BTreeMap<(&'static str, &'static str), (SubjectKey, Vec<String>)>);

    impl Operations for Loaded {
        fn operation(&self, connector: &str, operation: &str) -> Option<(SubjectKey, Vec<String>)> {
            self.0
                .iter()
                .find(|((c, o), _)| *c == connector && *o == operation)
                .map(|(_, v)| v.clone())
        }
    }

    fn loaded() -> Loaded {
        let fields = vec!["id_number".to_owned(), "township_code".to_owned()];
        Loaded(BTreeMap::from([
            (
                ("hukou", "person_by_id"),
                (SubjectKey::IdNumber, fields.clone()),
            ),
            (
                ("hukou", "household"),
                (SubjectKey::HouseholdNumber, fields),
            ),
        ]))
    }

    fn config() -> JurisdictionConfig {
        JurisdictionConfig {
            connector: "hukou".into(),
            by_id_number: "person_by_id".into(),
            by_household_number: Some("household".into()),
            township_field: "township_code".into(),
        }
    }

    #[test]
    fn the_demo_authority_checks_and_reads_a_township() {
        let authority = config().check(&loaded()).unwrap();
        assert_eq!(
            authority.township_of(&json!({"township_code": "139901101"})),
            Some("139901101".to_owned())
        );
        // Anything but a 9-digit code places the person nowhere.
        assert_eq!(
            authority.township_of(&json!({"township_code": "1399"})),
            None
        );
        assert_eq!(authority.township_of(&json!({})), None);
        assert!(authority.is_authority("hukou", "household"));
        assert!(!authority.is_authority("shebao", "person_by_id"));
    }

    #[test]
    fn a_wrong_operation_key_or_field_is_named() {
        let mut c = config();
        c.by_id_number = "household".into();
        c.township_field = "xzqh".into();
        let problems = c.check(&loaded()).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"by_id_number"), "{problems:?}");
        assert!(paths.contains(&"township_field"), "{problems:?}");
        let mut c = config();
        c.connector = "nonesuch".into();
        assert!(c.check(&loaded()).is_err());
    }
}
