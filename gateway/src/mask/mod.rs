//! Masking operators: how a field's value is shown to a caller.
//!
//! This module owns the closed set of masks ([`Mask`]), their YAML/JSON form, which
//! mask fits which kind of personal data ([`Mask::fits`]), the protective default per
//! kind ([`Mask::default_for`]), and the keyed pseudonym secret ([`PseudonymKey`]).
//!
//! Every operator is fail safe: it never panics on any JSON value, null stays null,
//! arrays and objects become null under every mask but `keep`, and a value it cannot
//! understand becomes null rather than leaking more than asked. Strings are handled
//! by Unicode scalar values (`char`s), never by bytes.

mod address;
mod name;
mod spec;
#[cfg(test)]
mod tests;

use chrono::{Datelike, NaiveDate};
use connectors::definition::PiiKind;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// A mask: how a field's value is shown to a caller.
///
/// Written in YAML as a bare word (`keep`, `redact`, `name`, `id_number`, `phone`,
/// `date_year`, `age_band`, `pseudonym`) or as a one-key map:
/// `{partial: {first: 1, last: 1, fill: "*"}}`, `{id_number: {first: 6, last: 4}}`,
/// `{address_to: township}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "spec::MaskSpec", into = "spec::MaskSpec")]
pub enum Mask {
    /// The value as it is.
    Keep,
    /// Always JSON null.
    Redact,
    /// Keeps `first` and `last` chars and replaces each char between with `fill`; a
    /// value of at most `first + last` chars becomes all `fill`.
    Partial {
        first: usize,
        last: usize,
        fill: char,
    },
    /// A person's name: 张*三, 张*, 欧阳**.
    Name,
    /// An ID number: `first` and `last` chars shown, the rest `*` (defaults 6 and 4,
    /// so the birth date of an 18-char ID never shows).
    IdNumber { first: usize, last: usize },
    /// A phone number: 138****5678; anything but an 11-digit mobile shows its last 4.
    Phone,
    /// A `YYYY-MM-DD` or `YYYY-MM` date → its year `YYYY`.
    DateYear,
    /// A `YYYY-MM-DD` birth date → a 10-year age band (`"30-39"`, `"90+"`) on the
    /// context's today.
    AgeBand,
    /// A Chinese address cut after the given administrative level.
    AddressTo(AddressLevel),
    /// A keyed, domain-separated HMAC-SHA256 pseudonym: `psn_` + 32 hex digits.
    Pseudonym,
}

/// An administrative level of a Chinese address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressLevel {
    /// 省 / 自治区 / 特别行政区 / a municipality (北京市 …).
    Province,
    /// 县 / 区 / 市 / 旗.
    County,
    /// 镇 / 乡 / 街道 / 苏木.
    Township,
    /// 村 / 社区 / 嘎查 / 居委会.
    Village,
}

impl AddressLevel {
    /// The level's name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressLevel::Province => "province",
            AddressLevel::County => "county",
            AddressLevel::Township => "township",
            AddressLevel::Village => "village",
        }
    }
}

/// What a mask may need besides the value: the pseudonym key and today's date.
#[derive(Debug, Clone, Copy)]
pub struct MaskContext<'a> {
    /// The secret for [`Mask::Pseudonym`].
    pub key: &'a PseudonymKey,
    /// The date [`Mask::AgeBand`] counts ages on.
    pub today: NaiveDate,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// The pseudonym secret is shorter than [`PseudonymKey::MIN_LEN`] bytes.
    #[error("the pseudonym key must be at least {min} bytes long, got {got}")]
    KeyTooShort {
        /// The minimum length in bytes.
        min: usize,
        /// The length given, in bytes.
        got: usize,
    },
    /// The HMAC could not be keyed with the secret.
    #[error("the pseudonym key cannot key HMAC-SHA256")]
    InvalidKey,
}

/// The secret for pseudonyms.
///
/// Its `Debug` prints `PseudonymKey(<redacted>)`; it has no `Display` and no way to
/// read the secret back out.
#[derive(Clone)]
pub struct PseudonymKey(Hmac<Sha256>);

/// Domain separation for pseudonyms: a pseudonym of this gateway can never be
/// confused with any other use of the same key.
const PSEUDONYM_DOMAIN: &[u8] = b"county-gateway/pseudonym/v1";

/// Domain separation for secrets derived from the key for other uses.
const DERIVE_DOMAIN: &[u8] = b"county-gateway/derived-secret/v1";

impl PseudonymKey {
    /// The shortest accepted secret, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from a secret of at least [`Self::MIN_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Result<PseudonymKey, MaskError> {
        if secret.len() < Self::MIN_LEN {
            return Err(MaskError::KeyTooShort {
                min: Self::MIN_LEN,
                got: secret.len(),
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| MaskError::InvalidKey)?;
        Ok(PseudonymKey(mac))
    }

    /// A secret for another use of this key (`label` names the use), under its own
    /// domain: never equal to any pseudonym, so no masked value can reveal it.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(DERIVE_DOMAIN);
        mac.update(&[0]);
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `psn_` + lowercase hex of the first 16 bytes of
    /// HMAC-SHA256(key, `county-gateway/pseudonym/v1` || 0x00 || value).
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(PSEUDONYM_DOMAIN);
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::from("psn_");
        out.push_str(&hex::encode(&digest[..16]));
        out
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl Mask {
    /// Stable operator name for responses and audit: "keep", "redact", "partial",
    /// "name", "id_number", "phone", "date_year", "age_band", "address_to", "pseudonym".
    pub fn operator(&self) -> &'static str {
        match self {
            Mask::Keep => "keep",
            Mask::Redact => "redact",
            Mask::Partial { .. } => "partial",
            Mask::Name => "name",
            Mask::IdNumber { .. } => "id_number",
            Mask::Phone => "phone",
            Mask::DateYear => "date_year",
            Mask::AgeBand => "age_band",
            Mask::AddressTo(_) => "address_to",
            Mask::Pseudonym => "pseudonym",
        }
    }

    /// Whether this mask may be used on a field of this pii kind (a mismatch is a
    /// config load error).
    pub fn fits(&self, pii: PiiKind) -> bool {
        use PiiKind as K;
        match self {
            Mask::Keep | Mask::Redact => true,
            Mask::Partial { .. } => matches!(
                pii,
                K::IdNumber | K::Name | K::Phone | K::Address | K::Account | K::FreeText | K::Code
            ),
            Mask::Name => pii == K::Name,
            Mask::IdNumber { .. } => pii == K::IdNumber,
            Mask::Phone => pii == K::Phone,
            Mask::DateYear | Mask::AgeBand => pii == K::Date,
            Mask::AddressTo(_) => pii == K::Address,
            Mask::Pseudonym => {
                matches!(pii, K::IdNumber | K::Name | K::Phone | K::Account | K::Code)
            }
        }
    }

    /// The mask a field gets when a grant names no mask for it: protective by default.
    pub fn default_for(pii: PiiKind) -> Mask {
        use PiiKind as K;
        match pii {
            K::IdNumber => Mask::IdNumber { first: 6, last: 4 },
            K::Name => Mask::Name,
            K::Phone => Mask::Phone,
            K::Address => Mask::AddressTo(AddressLevel::Township),
            K::Date => Mask::DateYear,
            K::Money | K::Account | K::Health | K::FreeText => Mask::Redact,
            K::Code | K::Count | K::None => Mask::Keep,
        }
    }

    /// Applies the mask. Never panics on any JSON value. Null stays null for every
    /// mask; arrays and objects become null under every mask but `keep`; numbers and
    /// booleans are masked as their string form.
    pub fn apply(&self, value: &Value, ctx: &MaskContext<'_>) -> Value {
        let text = match (self, value) {
            (_, Value::Null) | (Mask::Redact, _) => return Value::Null,
            (Mask::Keep, v) => return v.clone(),
            (_, Value::Array(_) | Value::Object(_)) => return Value::Null,
            (_, Value::String(s)) => s.clone(),
            (_, Value::Number(n)) => n.to_string(),
            (_, Value::Bool(b)) => b.to_string(),
        };
        match self.apply_str(&text, ctx) {
            Some(out) => Value::String(out),
            None => Value::Null,
        }
    }

    /// The string operators; `None` means the value becomes null.
    fn apply_str(&self, s: &str, ctx: &MaskContext<'_>) -> Option<String> {
        match self {
            Mask::Keep => Some(s.to_owned()),
            Mask::Redact => None,
            Mask::Partial { first, last, fill } => Some(partial(s, *first, *last, *fill)),
            Mask::Name => Some(name::mask_name(s)),
            Mask::IdNumber { first, last } => Some(partial(s, *first, *last, '*')),
            Mask::Phone => Some(phone(s)),
            Mask::DateYear => date_year(s).map(|y| format!("{y:04}")),
            Mask::AgeBand => age_band(s, ctx.today),
            Mask::AddressTo(level) => address::truncate(s, *level),
            Mask::Pseudonym => Some(ctx.key.pseudonym(s)),
        }
    }
}

/// Keeps `first` and `last` chars, one `fill` per char between; at most
/// `first + last` chars → all `fill`.
fn partial(s: &str, first: usize, last: usize, fill: char) -> String {
    let n = s.chars().count();
    if n <= first.saturating_add(last) {
        return std::iter::repeat_n(fill, n).collect();
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < first || i >= n - last { c } else { fill })
        .collect()
}

/// An 11-digit mobile (1xxxxxxxxxx) → 138****5678; anything else shows its last 4.
fn phone(s: &str) -> String {
    let mobile = s.len() == 11 && s.starts_with('1') && s.bytes().all(|b| b.is_ascii_digit());
    if mobile {
        partial(s, 3, 4, '*')
    } else {
        partial(s, 0, 4, '*')
    }
}

/// Parses a strict `YYYY-MM-DD` date.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// The year of a strict `YYYY-MM-DD` or `YYYY-MM` date.
fn date_year(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    match b.len() {
        10 => parse_date(s).and_then(|d| u32::try_from(d.year()).ok()),
        7 if b[4] == b'-' => {
            let month = digits(&b[5..7])?;
            (1..=12).contains(&month).then_some(())?;
            digits(&b[0..4])
        }
        _ => None,
    }
}

/// The value of a run of ASCII digits.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// A birth date → its 10-year age band on `today`; a future date → `None`.
fn age_band(s: &str, today: NaiveDate) -> Option<String> {
    let born = parse_date(s)?;
    if born > today {
        return None;
    }
    let before_birthday = (today.month(), today.day()) < (born.month(), born.day());
    let age = today.year() - born.year() - i32::from(before_birthday);
    Some(if age >= 90 {
        "90+".to_owned()
    } else {
        let low = age / 10 * 10;
        format!("{low}-{}", low + 9)
    })
}
