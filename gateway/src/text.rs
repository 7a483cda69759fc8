//! Free text that users type and the gateway keeps — case ids (办件编号),
//! justifications, notes and reasons. Such text is logged, audited in clear and shown
//! to other users, so it must not carry personal identifiers.
//!
//! Every free-text field goes through [`free_text`]: the text is normalized first
//! ([`normalize`]: format characters such as zero-width spaces removed, full-width
//! digits and letters made ASCII, surrounding spaces trimmed), bounded, refused with
//! control characters, and refused if its Unicode NFKC form holds a resident ID number
//! (GB 11643, check digit included) or a mainland mobile number — also when their
//! digits are split by spaces. The normalized text is what the gateway stores, so a
//! disguised number cannot reach the registry or the audit log either.

use connectors::subject::IdNumber;
use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Why a free-text field was refused; the message names the field, never its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is required")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("may not contain control characters")]
    Control,
    #[error("may not contain an ID number: personal data travels only in the subject")]
    IdNumber,
    #[error("may not contain a mobile phone number")]
    Mobile,
}

/// The text as stored: format characters (zero-width spaces and joiners,
/// bidirectional marks, soft hyphens) removed, full-width digits and Latin letters
/// made ASCII, trimmed. Full NFKC is only used to look for numbers: applied to the
/// stored text it would also turn Chinese punctuation (，：（）) into ASCII.
pub fn normalize(text: &str) -> String {
    let normalized: String = text
        .chars()
        .filter(|c| get_general_category(*c) != GeneralCategory::Format)
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            other => other,
        })
        .collect();
    normalized.trim().to_owned()
}

/// The normalized text, if it is non-empty (unless `required` is false), at most
/// `max_chars` long, free of control characters, ID numbers and mobile numbers.
pub fn free_text(text: &str, max_chars: usize, required: bool) -> Result<String, TextError> {
    let text = normalize(text);
    if text.is_empty() && required {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TextError::Control);
    }
    let folded: String = text
        .nfkc()
        .filter(|c| get_general_category(*c) != GeneralCategory::Format)
        .collect();
    personal_numbers(&folded)?;
    Ok(text)
}

/// Refuses text holding an ID number or a mobile number, looking at every run of
/// digits (and `X`) with the spaces inside it ignored.
fn personal_numbers(text: &str) -> Result<(), TextError> {
    for run in digit_runs(text) {
        let chars: Vec<char> = run.chars().collect();
        let id = chars.windows(18).any(|w| {
            let candidate: String = w.iter().collect::<String>().to_ascii_uppercase();
            IdNumber::parse(&candidate).is_ok()
        });
        if id {
            return Err(TextError::IdNumber);
        }
        let digits = run.trim_end_matches(['X', 'x']);
        let mobile = |d: &str| {
            d.len() == 11
                && d.starts_with('1')
                && d.as_bytes()
                    .get(1)
                    .is_some_and(|b| (b'3'..=b'9').contains(b))
        };
        if mobile(digits) || digits.strip_prefix("86").is_some_and(mobile) {
            return Err(TextError::Mobile);
        }
    }
    Ok(())
}

/// Maximal runs of ASCII digits and `X`/`x`, where whitespace between two such
/// characters does not end a run.
fn digit_runs(text: &str) -> Vec<String> {
    let numeric = |c: char| c.is_ascii_digit() || c == 'X' || c == 'x';
    let chars: Vec<char> = text.chars().collect();
    let mut runs = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if numeric(c) {
            current.push(c);
        } else if c.is_whitespace() && !current.is_empty() {
            // Look past the spaces: a digit continues the run.
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && numeric(chars[j]) {
                i = j;
                continue;
            }
            runs.push(std::mem::take(&mut current));
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
        i += 1;
    }
    if !current.is_empty() {
        runs.push(current);
    }
    // A run of letters-and-digits such as a word ending in x is not a number.
    runs.into_iter()
        .filter(|r| r.chars().any(|c| c.is_ascii_digit()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id() -> String {
        IdNumber::build(
            "139901",
            chrono::NaiveDate::from_ymd_opt(1975, 3, 27).unwrap(),
            229,
        )
        .unwrap()
        .as_str()
        .to_owned()
    }

    #[test]
    fn ordinary_text_passes_normalized() {
        assert_eq!(
            free_text("  低保-2026-0012 ", 64, true).unwrap(),
            "低保-2026-0012"
        );
        assert_eq!(
            free_text("ＤＢ２０２６：核验", 64, true).unwrap(),
            "DB2026：核验",
            "full-width letters and digits become ASCII, Chinese punctuation stays"
        );
        assert_eq!(free_text("a\u{200b}b", 64, true).unwrap(), "ab");
        assert_eq!(
            free_text("办件 DB 2026 1201 0001", 64, true).unwrap(),
            "办件 DB 2026 1201 0001"
        );
    }

    #[test]
    fn an_id_number_is_refused_however_it_is_written() {
        let id = id();
        let spaced: String = id
            .chars()
            .enumerate()
            .flat_map(|(i, c)| (i > 0 && i % 4 == 0).then_some(' ').into_iter().chain([c]))
            .collect();
        let zero_width: String = id.chars().flat_map(|c| [c, '\u{200b}']).collect();
        let full_width: String = id
            .chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap(),
                'X' => 'Ｘ',
                other => other,
            })
            .collect();
        for text in [
            format!("case-{id}"),
            format!("申请人{spaced}"),
            format!("申请人{zero_width}"),
            format!("申请人{full_width}"),
            id.to_lowercase(),
        ] {
            assert_eq!(
                free_text(&text, 200, true),
                Err(TextError::IdNumber),
                "{text}"
            );
        }
    }

    #[test]
    fn a_mobile_number_is_refused() {
        for text in [
            "联系电话13812345678",
            "tel 138 1234 5678",
            "+86 138 1234 5678",
            "１３８１２３４５６７８",
        ] {
            assert_eq!(free_text(text, 200, true), Err(TextError::Mobile), "{text}");
        }
        // Other long numbers are not phone numbers.
        assert!(free_text("批次 20261201", 200, true).is_ok());
        assert!(free_text("DB-2026-13", 200, true).is_ok());
    }

    #[test]
    fn empty_long_and_control_text_is_refused() {
        assert_eq!(free_text("  ", 10, true), Err(TextError::Empty));
        assert_eq!(free_text("", 10, false), Ok(String::new()));
        assert_eq!(
            free_text(&"x".repeat(11), 10, true),
            Err(TextError::TooLong(10))
        );
        assert_eq!(free_text("a\u{7}b", 10, true), Err(TextError::Control));
    }
}
