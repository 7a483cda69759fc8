//! Jurisdiction: where a person lives, as the county's authority for residence says.
//!
//! The county names one connector — its household register (户籍) — as that
//! authority (`jurisdiction:` in gateway.yaml): the operation that finds a person by
//! ID number (and, optionally, a household by its number) and the record's field that
//! holds the township code, and optionally the field that holds the 12-digit village
//! code (`village_field`). A grant with `jurisdiction: township` then holds only for
//! subjects who live in the caller's township, and one with `jurisdiction: village`
//! only for subjects who live in one of the caller's villages (the token's `villages`
//! claim: a grid worker's), whatever the department's own record carries: the gateway
//! asks the authority (through its cache), before the department is asked, and shows
//! the caller nothing of the answer beyond allowed or refused. A person the authority
//! does not know is outside every township and village, so an outsider gets the same
//! answer whether or not the person exists.
//!
//! This module owns the configuration of the authority and reading a [`Residence`]
//! from its record; the check itself runs in the lookup pipeline (`lookup`), with the
//! policy's [`crate::policy::Outside`].

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
    /// The top-level field of those records that holds the 12-digit village code, for
    /// grants with `jurisdiction: village`.
    #[serde(default)]
    pub village_field: Option<String>,
}

/// The authority, checked against the loaded connectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub connector: String,
    pub by_id_number: String,
    pub by_household_number: Option<String>,
    pub township_field: String,
    pub village_field: Option<String>,
}

/// Where the authority places a subject. Both parts are `None` for a person it does
/// not know; the village is `None` too when the authority names no village field, or
/// its record holds no 12-digit code under the township.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Residence {
    pub township: Option<String>,
    pub village: Option<String>,
}

impl Residence {
    /// Where a division code places someone: a 12-digit village code (the township is
    /// its first nine digits) or a 9-digit township code; anything else, nowhere.
    pub fn from_code(code: &str) -> Residence {
        if is_digits(code, 12) {
            Residence {
                township: Some(code[..9].to_owned()),
                village: Some(code.to_owned()),
            }
        } else if is_digits(code, 9) {
            Residence {
                township: Some(code.to_owned()),
                village: None,
            }
        } else {
            Residence::default()
        }
    }
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
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
                if let Some(village) = &self.village_field
                    && !fields.contains(village)
                {
                    problems.push((
                        "village_field".to_owned(),
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
                village_field: self.village_field.clone(),
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
            .filter(|t| is_digits(t, 9))
            .map(str::to_owned)
    }

    /// Where a record of the authority places its subject: the township, and the
    /// village when the authority names a village field and the record's code there
    /// is 12 digits under that township (anything else places them in no village).
    pub fn residence_of(&self, record: &Value) -> Residence {
        let township = self.township_of(record);
        let village = self
            .village_field
            .as_ref()
            .and_then(|field| record.get(field))
            .and_then(Value::as_str)
            .filter(|v| is_digits(v, 12))
            .filter(|v| township.as_deref().is_some_and(|t| v.starts_with(t)))
            .map(str::to_owned);
        Residence { township, village }
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
        let fields = vec![
            "id_number".to_owned(),
            "township_code".to_owned(),
            "village_code".to_owned(),
        ];
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
            village_field: Some("village_code".into()),
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
    fn a_village_is_read_only_under_the_records_township() {
        let authority = config().check(&loaded()).unwrap();
        let at = |township: &str, village: &str| {
            authority.residence_of(&json!({"township_code": township, "village_code": village}))
        };
        assert_eq!(
            at("139901101", "139901101201"),
            Residence {
                township: Some("139901101".into()),
                village: Some("139901101201".into()),
            }
        );
        // A village code of another township, or not 12 digits, places the person in
        // their township but in no village.
        for village in ["139901201201", "13990110120", "13990110120x"] {
            assert_eq!(at("139901101", village).village, None, "{village}");
            assert_eq!(
                at("139901101", village).township.as_deref(),
                Some("139901101")
            );
        }
        // Without a village field, nobody is placed in a village.
        let mut c = config();
        c.village_field = None;
        let authority = c.check(&loaded()).unwrap();
        assert_eq!(
            authority
                .residence_of(
                    &json!({"township_code": "139901101", "village_code": "139901101201"})
                )
                .village,
            None
        );
        assert_eq!(
            Residence::from_code("139901101202"),
            Residence {
                township: Some("139901101".into()),
                village: Some("139901101202".into()),
            }
        );
        assert_eq!(Residence::from_code("139901101").village, None);
        assert_eq!(Residence::from_code("1399011012"), Residence::default());
    }

    #[test]
    fn a_wrong_operation_key_or_field_is_named() {
        let mut c = config();
        c.by_id_number = "household".into();
        c.township_field = "xzqh".into();
        c.village_field = Some("cun".into());
        let problems = c.check(&loaded()).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"by_id_number"), "{problems:?}");
        assert!(paths.contains(&"township_field"), "{problems:?}");
        assert!(paths.contains(&"village_field"), "{problems:?}");
        let mut c = config();
        c.connector = "nonesuch".into();
        assert!(c.check(&loaded()).is_err());
    }
}
