//! Who a lookup is about and the case it is for: the subject key an operation takes
//! (an ID number checked against GB 11643 before anything else happens, or a
//! household number) and the clerk's case id. Errors say what is wrong, never what
//! was sent.

use connectors::definition::SubjectKey;
use connectors::subject::{IdNumber, IdNumberError};

/// The validated subject key.
pub enum SubjectKeyValue {
    Id(IdNumber),
    Household(String),
}

impl std::fmt::Debug for SubjectKeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectKeyValue({})", self.masked())
    }
}

impl SubjectKeyValue {
    pub fn as_str(&self) -> &str {
        match self {
            SubjectKeyValue::Id(id) => id.as_str(),
            SubjectKeyValue::Household(h) => h,
        }
    }

    /// A form safe for logs.
    pub fn masked(&self) -> String {
        match self {
            SubjectKeyValue::Id(id) => id.masked(),
            SubjectKeyValue::Household(h) => {
                let keep = h.len().min(4);
                format!("{}{}", "*".repeat(h.len() - keep), &h[h.len() - keep..])
            }
        }
    }

    /// The kind of key this is.
    pub fn key(&self) -> SubjectKey {
        match self {
            SubjectKeyValue::Id(_) => SubjectKey::IdNumber,
            SubjectKeyValue::Household(_) => SubjectKey::HouseholdNumber,
        }
    }
}

/// Why a subject or case id was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubjectError {
    /// The ID number fails GB 11643 (the check says which part).
    #[error("{0}")]
    IdNumber(IdNumberError),
    #[error("A household number is 6 to 20 digits.")]
    HouseholdNumber,
    /// The operation takes exactly this key, and the request did not give only it.
    #[error("This operation takes exactly one subject key: subject.{}.", .0.as_str())]
    OneKey(SubjectKey),
    /// A form is filled for a person.
    #[error("A form is filled for a person: subject.id_number.")]
    PersonOnly,
    /// The case id is wrong; the text says how.
    #[error("{0}")]
    CaseId(String),
}

impl SubjectError {
    /// Where in the request the error is.
    pub fn at(&self) -> Option<&'static str> {
        match self {
            SubjectError::IdNumber(_) => None,
            SubjectError::HouseholdNumber => Some("subject.household_number"),
            SubjectError::OneKey(_) | SubjectError::PersonOnly => Some("subject"),
            SubjectError::CaseId(_) => Some("case_id"),
        }
    }
}

/// A household number (户号) as a subject key: 6 to 20 digits.
pub fn household_number(h: String) -> Result<SubjectKeyValue, SubjectError> {
    if (6..=20).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit()) {
        Ok(SubjectKeyValue::Household(h))
    } else {
        Err(SubjectError::HouseholdNumber)
    }
}

/// The subject key `key` from what the request gave: exactly that key.
pub fn subject_key(
    key: SubjectKey,
    id_number: Option<String>,
    household: Option<String>,
) -> Result<SubjectKeyValue, SubjectError> {
    match (key, id_number, household) {
        (SubjectKey::IdNumber, Some(id), None) => IdNumber::parse(&id)
            .map(SubjectKeyValue::Id)
            .map_err(SubjectError::IdNumber),
        (SubjectKey::HouseholdNumber, None, Some(h)) => household_number(h),
        (key, _, _) => Err(SubjectError::OneKey(key)),
    }
}

/// A case id names the clerk's case (办件编号). It is required, short, on one line,
/// and may carry no ID number or mobile number: it is logged and audited in clear.
/// Returns the normalized case id (see [`crate::text`]), which is what is recorded.
pub fn check_case_id(case_id: &str) -> Result<String, SubjectError> {
    if case_id.contains('\n') {
        return Err(SubjectError::CaseId(
            "case_id may not contain control characters.".to_owned(),
        ));
    }
    crate::text::free_text(case_id, 64, true).map_err(|e| {
        SubjectError::CaseId(match e {
            crate::text::TextError::Empty | crate::text::TextError::TooLong(_) => {
                "case_id is required and at most 64 characters.".to_owned()
            }
            other => format!("case_id {other}."),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_bounded_and_free_of_id_numbers() {
        assert!(check_case_id("低保-2026-0012").is_ok());
        assert!(check_case_id("").is_err());
        assert!(check_case_id("   ").is_err());
        assert!(check_case_id(&"x".repeat(65)).is_err());
        assert!(check_case_id("a\nb").is_err());
        let id = IdNumber::build(
            "139901",
            chrono::NaiveDate::from_ymd_opt(1990, 3, 7).unwrap(),
            123,
        )
        .unwrap();
        assert!(check_case_id(&format!("case-{}", id.as_str())).is_err());
    }

    #[test]
    fn household_numbers_are_masked_in_logs() {
        let h = SubjectKeyValue::Household("139901000123".to_owned());
        assert_eq!(h.masked(), "********0123");
    }
}
