//! The subject of a lookup: a resident identity number (公民身份号码, GB 11643-1999).
//!
//! This module owns parsing, validating and building the 18-character number and the
//! one masked form that may appear in logs and debug output. It knows nothing about who
//! the number belongs to; departments' records live in upstream systems (and the simulated ones in the `sim` crate).
//!
//! An [`IdNumber`] has no `Display`: the only ways to get the digits out are
//! [`IdNumber::as_str`] (for request bodies) and serde (for the same). `Debug` and
//! [`IdNumber::masked`] show the region and the last four characters only.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Weights of the ISO 7064 MOD 11-2 check over the first 17 digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder of the weighted sum modulo 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";
/// No birth date before this is accepted.
const EARLIEST_BIRTH: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(date) => date,
    None => NaiveDate::MIN,
};

/// A valid 18-character resident identity number; the check character is always an
/// uppercase `X` when it is not a digit.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

/// Why a string is not a valid identity number. Messages never contain the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not exactly 18 characters.
    #[error("an ID number has exactly 18 characters")]
    Length,
    /// Something other than 17 digits followed by a digit or X.
    #[error("an ID number is 17 digits followed by a digit or X")]
    Characters,
    /// The first six digits are not a plausible GB/T 2260 region code.
    #[error("the region code (first 6 digits) is not a valid province and prefecture")]
    Region,
    /// Digits 7-14 are not a real date between 1900-01-01 and today.
    #[error("the birth date (digits 7-14) is not a real date between 1900-01-01 and today")]
    BirthDate,
    /// The last character does not match the MOD 11-2 check of the first 17 digits.
    #[error("the check character does not match the rest of the ID number")]
    Checksum,
}

impl IdNumberError {
    /// A stable machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Characters => "characters",
            Self::Region => "region",
            Self::BirthDate => "birth_date",
            Self::Checksum => "checksum",
        }
    }
}

impl IdNumber {
    /// Validates `s` exactly as given (no trimming). A lowercase `x` check character is
    /// accepted and stored as `X`.
    pub fn parse(s: &str) -> Result<IdNumber, IdNumberError> {
        if s.chars().count() != 18 {
            return Err(IdNumberError::Length);
        }
        let bytes = s.as_bytes();
        // 18 chars that are all ASCII means 18 bytes; anything else fails here.
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !matches!(bytes[17], b'0'..=b'9' | b'X' | b'x')
        {
            return Err(IdNumberError::Characters);
        }
        if !valid_region(&bytes[..6]) {
            return Err(IdNumberError::Region);
        }
        let birth = date_of(&bytes[6..14]).ok_or(IdNumberError::BirthDate)?;
        if birth < EARLIEST_BIRTH || birth > today_in_china() {
            return Err(IdNumberError::BirthDate);
        }
        if check_char(&bytes[..17]) != bytes[17].to_ascii_uppercase() {
            return Err(IdNumberError::Checksum);
        }
        Ok(IdNumber(s.to_ascii_uppercase()))
    }

    /// Builds the number for a person born on `birth` and registered in `region`
    /// (6 digits) with sequence number `seq` (0..=999; odd for men, even for women),
    /// computing the check character. A region that is not 6 digits or a `seq` over 999
    /// fails with the error [`IdNumber::parse`] would give for the resulting string.
    pub fn build(region: &str, birth: NaiveDate, seq: u16) -> Result<IdNumber, IdNumberError> {
        let mut body = format!(
            "{region}{:04}{:02}{:02}{seq:03}",
            birth.year(),
            birth.month(),
            birth.day()
        );
        if body.len() == 17 && body.bytes().all(|b| b.is_ascii_digit()) {
            body.push(char::from(check_char(body.as_bytes())));
        } else {
            // Let `parse` report what is wrong with it.
            body.push('0');
        }
        IdNumber::parse(&body)
    }

    /// All 18 characters, for request bodies only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit GB/T 2260 region code of the place of first registration.
    pub fn region(&self) -> &str {
        &self.0[..6]
    }

    /// The birth date encoded in digits 7-14.
    pub fn birth_date(&self) -> NaiveDate {
        // Checked in `parse`; the fallback is never taken for a constructed value.
        date_of(&self.0.as_bytes()[6..14]).unwrap_or_default()
    }

    /// Whether the 17th digit (the sex digit of the sequence number) is odd.
    pub fn is_male(&self) -> bool {
        self.0.as_bytes()[16] % 2 == 1
    }

    /// The form safe for logs and screens: region, eight stars, the last four characters.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

impl FromStr for IdNumber {
    type Err = IdNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdNumber::parse(s)
    }
}

impl Serialize for IdNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IdNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        IdNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Province-level codes of GB/T 2260 (first two digits), and a non-zero prefecture.
fn valid_region(digits: &[u8]) -> bool {
    let province = u32::from(digits[0] - b'0') * 10 + u32::from(digits[1] - b'0');
    let known = matches!(
        province,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82
    );
    known && &digits[2..4] != b"00"
}

/// The calendar date written as eight ASCII digits YYYYMMDD, if it exists.
fn date_of(digits: &[u8]) -> Option<NaiveDate> {
    let num = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let year = i32::try_from(num(0..4)).ok()?;
    NaiveDate::from_ymd_opt(year, num(4..6), num(6..8))
}

/// Today's date in China Standard Time (UTC+8), where the numbers are issued.
fn today_in_china() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// The check character for 17 ASCII digits.
fn check_char(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    // Worked by hand: 1,1,0,1,0,5,1,9,4,9,1,2,3,1,0,0,2 · weights = 7+9+0+5+0+20+2+9+24
    // +27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2 → 'X'.
    const WORKED_X: &str = "11010519491231002X";
    // 4,4,0,5,2,4,1,8,8,0,0,1,0,1,0,0,1 · weights = 28+36+0+25+16+16+2+8+48+0+0+9+0+5
    // +0+0+2 = 195; 195 mod 11 = 8 → '4'.
    const WORKED_4: &str = "440524188001010014";

    #[test]
    fn parses_hand_checked_numbers() {
        let id = IdNumber::parse(WORKED_X).unwrap();
        assert_eq!(id.region(), "110105");
        assert_eq!(id.birth_date(), date(1949, 12, 31));
        assert!(!id.is_male());
        assert_eq!(id.masked(), "110105********002X");

        let err = IdNumber::parse(WORKED_4).unwrap_err();
        // Born in 1880: the checksum is right but the date is out of range.
        assert_eq!(err, IdNumberError::BirthDate);
    }

    #[test]
    fn lowercase_x_is_normalised() {
        let id = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), WORKED_X);
        assert_eq!(id, IdNumber::parse(WORKED_X).unwrap());
    }

    #[test]
    fn build_computes_the_check_character() {
        let id = IdNumber::build("110105", date(1949, 12, 31), 2).unwrap();
        assert_eq!(id.as_str(), WORKED_X);
        let man = IdNumber::build("139901", date(1990, 3, 7), 123).unwrap();
        assert!(man.is_male());
        assert_eq!(man.birth_date(), date(1990, 3, 7));
    }

    #[test]
    fn each_check_fails_with_its_own_error() {
        let cases = [
            ("11010519491231002", IdNumberError::Length),
            ("11010519491231002X ", IdNumberError::Length),
            (" 11010519491231002X", IdNumberError::Length),
            ("1101051949123100２X", IdNumberError::Characters),
            ("11010519491231002Y", IdNumberError::Characters),
            ("1101051949123100X2", IdNumberError::Characters),
            ("16010519491231002X", IdNumberError::Region),
            ("11000519491231002X", IdNumberError::Region),
            ("11010519490231002X", IdNumberError::BirthDate),
            ("11010518991231002X", IdNumberError::BirthDate),
            ("110105999912310020", IdNumberError::BirthDate),
            ("110105194912310021", IdNumberError::Checksum),
        ];
        for (input, expected) in cases {
            assert_eq!(IdNumber::parse(input).unwrap_err(), expected, "{input:?}");
        }
    }

    #[test]
    fn build_rejects_bad_parts() {
        let d = date(1990, 1, 1);
        assert_eq!(IdNumber::build("13990", d, 1), Err(IdNumberError::Length));
        assert_eq!(
            IdNumber::build("13990a", d, 1),
            Err(IdNumberError::Characters)
        );
        assert_eq!(IdNumber::build("990101", d, 1), Err(IdNumberError::Region));
        assert_eq!(
            IdNumber::build("139901", d, 1000),
            Err(IdNumberError::Length)
        );
        let future = chrono::Utc::now().date_naive() + chrono::Days::new(2);
        assert_eq!(
            IdNumber::build("139901", future, 1),
            Err(IdNumberError::BirthDate)
        );
    }

    #[test]
    fn debug_and_errors_never_show_the_number() {
        let id = IdNumber::parse(WORKED_X).unwrap();
        let debug = format!("{id:?}");
        assert_eq!(debug, "IdNumber(\"110105********002X\")");
        assert!(!debug.contains("19491231"));
        let err = IdNumber::parse("110105194912310021").unwrap_err();
        assert!(!err.to_string().contains("1949"));
        assert_eq!(err.code(), "checksum");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let id = IdNumber::parse(WORKED_X).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{WORKED_X}\""));
        let back: IdNumber = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        let bad = serde_json::from_str::<IdNumber>("\"110105194912310021\"").unwrap_err();
        assert!(!bad.to_string().contains("110105194912310021"));
    }

    const PROVINCES: &[u8] = &[
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
        52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
    ];

    fn valid_id() -> impl Strategy<Value = IdNumber> {
        (
            proptest::sample::select(PROVINCES),
            1u8..=99,
            0u8..=99,
            0u64..45_000,
            0u16..=999,
        )
            .prop_map(|(p, pref, county, days, seq)| {
                let region = format!("{p:02}{pref:02}{county:02}");
                let birth = date(1900, 1, 1) + chrono::Days::new(days);
                IdNumber::build(&region, birth, seq).unwrap()
            })
    }

    proptest! {
        #[test]
        fn built_ids_parse_back(id in valid_id()) {
            let again = IdNumber::parse(id.as_str()).unwrap();
            prop_assert_eq!(again.region(), id.region());
            prop_assert_eq!(again.birth_date(), id.birth_date());
            prop_assert_eq!(again.is_male(), id.is_male());
        }

        #[test]
        fn any_single_change_is_rejected(id in valid_id(), pos in 0usize..18, delta in 1u8..11) {
            let mut chars: Vec<u8> = id.as_str().bytes().collect();
            let alphabet: &[u8] = if pos == 17 { b"0123456789X" } else { b"0123456789" };
            let current = alphabet.iter().position(|&c| c == chars[pos]).unwrap();
            let next = (current + usize::from(delta)) % alphabet.len();
            prop_assume!(next != current);
            chars[pos] = alphabet[next];
            let changed = String::from_utf8(chars).unwrap();
            let err = IdNumber::parse(&changed).unwrap_err();
            if pos == 17 {
                prop_assert_eq!(err, IdNumberError::Checksum);
            } else {
                prop_assert!(matches!(
                    err,
                    IdNumberError::Region | IdNumberError::BirthDate | IdNumberError::Checksum
                ));
            }
        }

        #[test]
        fn masked_hides_the_birth_date(id in valid_id()) {
            let masked = id.masked();
            prop_assert_eq!(masked.len(), 18);
            prop_assert_eq!(&masked[6..14], "********");
            prop_assert!(!masked.contains(&id.as_str()[6..14]));
            prop_assert_eq!(&masked[..6], id.region());
            prop_assert_eq!(&masked[14..], &id.as_str()[14..]);
        }
    }
}
