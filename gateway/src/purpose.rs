//! The purpose catalog (事项目录): the service items a lookup may be made for, each
//! with its legal basis. A request names a purpose by code; an unknown code is refused
//! before anything else happens.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One service item, e.g. 生育登记.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Stable code used in requests, grants and audit records, e.g. `birth_registration`.
    pub code: String,
    /// Chinese name, e.g. 生育登记.
    pub name: String,
    /// English name, e.g. Birth registration.
    pub name_en: String,
    /// The law or regulation the service item rests on.
    pub legal_basis: String,
}

/// The file format: `purposes: [ … ]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurposeFile {
    pub(crate) purposes: Vec<Purpose>,
}

/// All purposes, by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurposeCatalog {
    by_code: BTreeMap<String, Purpose>,
}

impl PurposeCatalog {
    /// Builds the catalog, returning each problem with its path in the file.
    pub(crate) fn build(file: PurposeFile) -> (PurposeCatalog, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let mut by_code = BTreeMap::new();
        for (i, p) in file.purposes.into_iter().enumerate() {
            let at = format!("purposes[{i}]");
            if !is_code(&p.code) {
                problems.push((
                    format!("{at}.code"),
                    "purpose codes use a-z, 0-9 and '_' (1–64 characters)".to_owned(),
                ));
            }
            for (field, value) in [
                ("name", &p.name),
                ("name_en", &p.name_en),
                ("legal_basis", &p.legal_basis),
            ] {
                if value.trim().is_empty() {
                    problems.push((format!("{at}.{field}"), "must not be empty".to_owned()));
                }
            }
            if by_code.contains_key(&p.code) {
                problems.push((
                    format!("{at}.code"),
                    format!("duplicate purpose code `{}`", p.code),
                ));
            } else {
                by_code.insert(p.code.clone(), p);
            }
        }
        if by_code.is_empty() && problems.is_empty() {
            problems.push((
                "purposes".to_owned(),
                "define at least one purpose".to_owned(),
            ));
        }
        (PurposeCatalog { by_code }, problems)
    }

    /// Adds `other`'s purposes whose codes this catalog does not define yet, and
    /// returns the codes it already defined (those purposes are left out).
    pub(crate) fn merge(&mut self, other: PurposeCatalog) -> Vec<String> {
        let mut duplicates = Vec::new();
        for (code, purpose) in other.by_code {
            match self.by_code.entry(code) {
                std::collections::btree_map::Entry::Occupied(taken) => {
                    duplicates.push(taken.key().clone());
                }
                std::collections::btree_map::Entry::Vacant(free) => {
                    free.insert(purpose);
                }
            }
        }
        duplicates
    }

    pub fn get(&self, code: &str) -> Option<&Purpose> {
        self.by_code.get(code)
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Purpose> {
        self.by_code.values()
    }
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purpose(code: &str) -> Purpose {
        Purpose {
            code: code.to_owned(),
            name: "生育登记".to_owned(),
            name_en: "Birth registration".to_owned(),
            legal_basis: "人口与计划生育法".to_owned(),
        }
    }

    #[test]
    fn duplicates_and_bad_codes_are_each_reported() {
        let file = PurposeFile {
            purposes: vec![purpose("a"), purpose("a"), purpose("Bad Code")],
        };
        let (catalog, problems) = PurposeCatalog::build(file);
        assert_eq!(catalog.len(), 2);
        let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["purposes[1].code", "purposes[2].code"]);
    }

    #[test]
    fn merging_adds_new_codes_and_returns_the_duplicates() {
        let build = |codes: &[&str]| {
            PurposeCatalog::build(PurposeFile {
                purposes: codes.iter().map(|c| purpose(c)).collect(),
            })
            .0
        };
        let mut catalog = build(&["a", "b"]);
        let duplicates = catalog.merge(build(&["b", "c"]));
        assert_eq!(duplicates, ["b"]);
        let codes: Vec<_> = catalog.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["a", "b", "c"]);
    }
}
