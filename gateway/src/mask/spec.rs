//! The YAML/JSON form of a [`Mask`]: a bare word or a one-key map.
//!
//! serde_yaml_ng cannot read externally tagged enum variants written as maps, so a
//! mask is read through this untagged shape and checked by hand, which also gives
//! errors that list every valid mask.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{AddressLevel, Mask};

/// Every valid mask, for error messages.
const VALID: &str = "valid masks: keep, redact, name, id_number, phone, date_year, \
    age_band, pseudonym, {partial: {first: N, last: N, fill: \"*\"}} (fill optional), \
    {id_number: {first: N, last: N}}, {address_to: province|county|township|village}";

/// The default [`Mask::IdNumber`] arguments: written as the bare word `id_number`.
const ID_FIRST: usize = 6;
const ID_LAST: usize = 4;

/// The written shape of a [`Mask`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum MaskSpec {
    /// `keep`, `redact`, …
    Word(String),
    /// `{partial: {…}}`, `{id_number: {…}}`, `{address_to: LEVEL}`.
    Map(BTreeMap<String, Value>),
    /// Anything else; always an error, but one that lists the valid masks.
    Other(Value),
}

impl TryFrom<MaskSpec> for Mask {
    type Error = String;

    fn try_from(spec: MaskSpec) -> Result<Self, Self::Error> {
        match spec {
            MaskSpec::Word(word) => from_word(&word),
            MaskSpec::Map(map) => {
                let mut entries = map.into_iter();
                match (entries.next(), entries.next()) {
                    (Some((key, arg)), None) => from_map(&key, arg),
                    _ => Err(format!("a mask map has exactly one key; {VALID}")),
                }
            }
            MaskSpec::Other(_) => Err(format!("a mask is a word or a one-key map; {VALID}")),
        }
    }
}

fn from_word(word: &str) -> Result<Mask, String> {
    Ok(match word {
        "keep" => Mask::Keep,
        "redact" => Mask::Redact,
        "name" => Mask::Name,
        "id_number" => Mask::IdNumber {
            first: ID_FIRST,
            last: ID_LAST,
        },
        "phone" => Mask::Phone,
        "date_year" => Mask::DateYear,
        "age_band" => Mask::AgeBand,
        "pseudonym" => Mask::Pseudonym,
        "partial" | "address_to" => {
            return Err(format!("mask `{word}` needs arguments; {VALID}"));
        }
        other => return Err(format!("unknown mask `{other}`; {VALID}")),
    })
}

fn from_map(key: &str, arg: Value) -> Result<Mask, String> {
    match key {
        "partial" => {
            let mut args = Args::new(key, arg, &["first", "last", "fill"])?;
            let first = args.count("first")?.ok_or_else(|| args.missing("first"))?;
            let last = args.count("last")?.ok_or_else(|| args.missing("last"))?;
            let fill = args.fill()?.unwrap_or('*');
            Ok(Mask::Partial { first, last, fill })
        }
        "id_number" => {
            let mut args = Args::new(key, arg, &["first", "last"])?;
            let first = args.count("first")?.unwrap_or(ID_FIRST);
            let last = args.count("last")?.unwrap_or(ID_LAST);
            Ok(Mask::IdNumber { first, last })
        }
        "address_to" => {
            const LEVELS: &str = "province, county, township or village";
            let level = match arg.as_str() {
                Some("province") => AddressLevel::Province,
                Some("county") => AddressLevel::County,
                Some("township") => AddressLevel::Township,
                Some("village") => AddressLevel::Village,
                _ => return Err(format!("mask `address_to` takes a level: {LEVELS}")),
            };
            Ok(Mask::AddressTo(level))
        }
        "keep" | "redact" | "name" | "phone" | "date_year" | "age_band" | "pseudonym" => Err(
            format!("mask `{key}` takes no arguments: write it as a bare word; {VALID}"),
        ),
        other => Err(format!("unknown mask `{other}`; {VALID}")),
    }
}

/// The arguments map of a mask, read key by key.
struct Args {
    mask: String,
    map: Map<String, Value>,
}

impl Args {
    fn new(mask: &str, arg: Value, allowed: &[&str]) -> Result<Args, String> {
        let Value::Object(map) = arg else {
            return Err(format!(
                "mask `{mask}` takes a map of arguments ({}); {VALID}",
                allowed.join(", ")
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "mask `{mask}` has no argument `{unknown}`; it takes {}",
                allowed.join(", ")
            ));
        }
        Ok(Args {
            mask: mask.to_owned(),
            map,
        })
    }

    fn missing(&self, name: &str) -> String {
        format!("mask `{}` needs argument `{name}`", self.mask)
    }

    /// A non-negative integer argument.
    fn count(&mut self, name: &str) -> Result<Option<usize>, String> {
        let Some(v) = self.map.remove(name) else {
            return Ok(None);
        };
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "argument `{name}` of mask `{}` must be a non-negative integer",
                    self.mask
                )
            })
    }

    /// The `fill` argument: a string of exactly one char.
    fn fill(&mut self) -> Result<Option<char>, String> {
        let Some(v) = self.map.remove("fill") else {
            return Ok(None);
        };
        let mut chars = v.as_str().unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(Some(c)),
            _ => Err(format!(
                "argument `fill` of mask `{}` must be a string of exactly one character",
                self.mask
            )),
        }
    }
}

impl From<Mask> for MaskSpec {
    fn from(mask: Mask) -> Self {
        let word = |w: &str| MaskSpec::Word(w.to_owned());
        let one = |key: &str, arg: Value| MaskSpec::Map(BTreeMap::from([(key.to_owned(), arg)]));
        match mask {
            Mask::Partial { first, last, fill } => {
                let mut args = Map::new();
                args.insert("first".to_owned(), first.into());
                args.insert("last".to_owned(), last.into());
                if fill != '*' {
                    args.insert("fill".to_owned(), fill.to_string().into());
                }
                one("partial", Value::Object(args))
            }
            Mask::IdNumber { first, last } if (first, last) != (ID_FIRST, ID_LAST) => {
                let mut args = Map::new();
                args.insert("first".to_owned(), first.into());
                args.insert("last".to_owned(), last.into());
                one("id_number", Value::Object(args))
            }
            Mask::AddressTo(level) => one("address_to", level.as_str().into()),
            other => word(other.operator()),
        }
    }
}
