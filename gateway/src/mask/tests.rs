//! Unit and property tests of the masking operators.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use connectors::definition::PiiKind;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{AddressLevel, Mask, MaskContext, MaskError, PseudonymKey};

const ALL_KINDS: [PiiKind; 12] = [
    PiiKind::IdNumber,
    PiiKind::Name,
    PiiKind::Phone,
    PiiKind::Address,
    PiiKind::Date,
    PiiKind::Money,
    PiiKind::Account,
    PiiKind::Health,
    PiiKind::FreeText,
    PiiKind::Code,
    PiiKind::Count,
    PiiKind::None,
];

const LEVELS: [AddressLevel; 4] = [
    AddressLevel::Province,
    AddressLevel::County,
    AddressLevel::Township,
    AddressLevel::Village,
];

/// One mask of every operator, and a few argument variants.
fn all_masks() -> Vec<Mask> {
    let mut masks = vec![
        Mask::Keep,
        Mask::Redact,
        Mask::Partial {
            first: 1,
            last: 1,
            fill: '*',
        },
        Mask::Partial {
            first: 0,
            last: 0,
            fill: '#',
        },
        Mask::Partial {
            first: 3,
            last: 4,
            fill: '*',
        },
        Mask::Partial {
            first: 100,
            last: 100,
            fill: '*',
        },
        Mask::Name,
        Mask::IdNumber { first: 6, last: 4 },
        Mask::IdNumber { first: 0, last: 0 },
        Mask::Phone,
        Mask::DateYear,
        Mask::AgeBand,
        Mask::Pseudonym,
    ];
    masks.extend(LEVELS.map(Mask::AddressTo));
    masks
}

fn key() -> PseudonymKey {
    PseudonymKey::new(&[7u8; 32]).unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 15).unwrap()
}

/// `mask` applied to `value` with the test key and today.
fn apply(mask: &Mask, value: Value) -> Value {
    let key = key();
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    mask.apply(&value, &ctx)
}

fn partial(first: usize, last: usize, fill: char) -> Mask {
    Mask::Partial { first, last, fill }
}

// ---------------------------------------------------------------- operators

#[test]
fn operator_names() {
    let names: Vec<&str> = all_masks().iter().map(Mask::operator).collect();
    assert_eq!(
        names,
        [
            "keep",
            "redact",
            "partial",
            "partial",
            "partial",
            "partial",
            "name",
            "id_number",
            "id_number",
            "phone",
            "date_year",
            "age_band",
            "pseudonym",
            "address_to",
            "address_to",
            "address_to",
            "address_to",
        ]
    );
}

#[test]
fn keep_returns_every_value_unchanged() {
    for v in [
        json!(null),
        json!("张三"),
        json!(12.5),
        json!(true),
        json!([1, "a"]),
        json!({"a": {"b": 1}}),
    ] {
        assert_eq!(apply(&Mask::Keep, v.clone()), v);
    }
}

#[test]
fn redact_is_always_null() {
    for v in [json!("张三"), json!(1), json!(false), json!([1]), json!({})] {
        assert_eq!(apply(&Mask::Redact, v), Value::Null);
    }
}

#[test]
fn null_stays_null_and_containers_become_null() {
    for mask in all_masks() {
        assert_eq!(apply(&mask, Value::Null), Value::Null, "{mask:?}");
        if mask != Mask::Keep {
            assert_eq!(apply(&mask, json!(["张三"])), Value::Null, "{mask:?}");
            assert_eq!(
                apply(&mask, json!({"name": "张三"})),
                Value::Null,
                "{mask:?}"
            );
            assert_eq!(apply(&mask, json!([])), Value::Null, "{mask:?}");
        }
    }
}

#[test]
fn partial_examples() {
    assert_eq!(
        apply(&partial(3, 4, '*'), json!("13812345678")),
        json!("138****5678")
    );
    assert_eq!(
        apply(&partial(1, 1, '*'), json!("张小三丰")),
        json!("张**丰")
    );
    assert_eq!(apply(&partial(1, 1, '#'), json!("abcde")), json!("a###e"));
    assert_eq!(apply(&partial(0, 0, '*'), json!("abc")), json!("***"));
    assert_eq!(apply(&partial(2, 0, '*'), json!("abcd")), json!("ab**"));
    assert_eq!(apply(&partial(0, 2, '*'), json!("abcd")), json!("**cd"));
    // Never the whole value: too short → all fill.
    assert_eq!(apply(&partial(1, 1, '*'), json!("ab")), json!("**"));
    assert_eq!(apply(&partial(3, 4, '*'), json!("张三")), json!("**"));
    assert_eq!(apply(&partial(1, 1, '*'), json!("")), json!(""));
    assert_eq!(
        apply(&partial(usize::MAX, usize::MAX, '*'), json!("abc")),
        json!("***")
    );
    // Scalars are masked as their string form.
    assert_eq!(apply(&partial(1, 1, '*'), json!(12345)), json!("1***5"));
    assert_eq!(apply(&partial(1, 1, '*'), json!(-1.5)), json!("-**5"));
    assert_eq!(apply(&partial(0, 0, '*'), json!(true)), json!("****"));
}

#[test]
fn name_examples() {
    assert_eq!(apply(&Mask::Name, json!("张三")), json!("张*"));
    assert_eq!(apply(&Mask::Name, json!("张小三")), json!("张*三"));
    assert_eq!(apply(&Mask::Name, json!("张")), json!("*"));
    assert_eq!(apply(&Mask::Name, json!("欧阳娜娜")), json!("欧阳**"));
    assert_eq!(apply(&Mask::Name, json!("上官婉儿")), json!("上官**"));
    assert_eq!(apply(&Mask::Name, json!("令狐冲")), json!("令狐*"));
    assert_eq!(apply(&Mask::Name, json!("欧阳")), json!("欧*"));
    assert_eq!(apply(&Mask::Name, json!(123)), json!("1*3"));
}

#[test]
fn id_number_examples() {
    let id = Mask::IdNumber { first: 6, last: 4 };
    assert_eq!(
        apply(&id, json!("110101199003071234")),
        json!("110101********1234")
    );
    assert_eq!(
        apply(&id, json!("11010119900307123X")),
        json!("110101********123X")
    );
    assert_eq!(apply(&id, json!("1234567890")), json!("**********"));
    assert_eq!(apply(&id, json!("12345")), json!("*****"));
    let short = Mask::IdNumber { first: 1, last: 1 };
    assert_eq!(apply(&short, json!("1234")), json!("1**4"));
    assert_eq!(apply(&short, json!(1234)), json!("1**4"));
}

#[test]
fn phone_examples() {
    assert_eq!(
        apply(&Mask::Phone, json!("13812345678")),
        json!("138****5678")
    );
    assert_eq!(
        apply(&Mask::Phone, json!(13812345678_u64)),
        json!("138****5678")
    );
    assert_eq!(
        apply(&Mask::Phone, json!("010-12345678")),
        json!("********5678")
    );
    assert_eq!(
        apply(&Mask::Phone, json!("+8613812345678")),
        json!("**********5678")
    );
    assert_eq!(
        apply(&Mask::Phone, json!("23812345678")),
        json!("*******5678")
    );
    assert_eq!(apply(&Mask::Phone, json!("12345")), json!("*2345"));
    assert_eq!(apply(&Mask::Phone, json!("1234")), json!("****"));
    assert_eq!(apply(&Mask::Phone, json!("")), json!(""));
    assert_eq!(
        apply(&Mask::Phone, json!("电话１３８１２３４５６７８")),
        json!("*********５６７８")
    );
}

#[test]
fn date_year_examples() {
    assert_eq!(apply(&Mask::DateYear, json!("1990-03-07")), json!("1990"));
    assert_eq!(apply(&Mask::DateYear, json!("2026-10")), json!("2026"));
    assert_eq!(apply(&Mask::DateYear, json!("0999-01-01")), json!("0999"));
    for bad in [
        json!("1990-02-30"),
        json!("1990-13"),
        json!("1990-00"),
        json!("19900307"),
        json!("1990"),
        json!("1990-3-7"),
        json!("1990-03-07T00:00:00"),
        json!("+1990-03-07"),
        json!("１９９０-03-07"),
        json!(""),
        json!(1990),
        json!(true),
    ] {
        assert_eq!(apply(&Mask::DateYear, bad.clone()), Value::Null, "{bad}");
    }
}

#[test]
fn age_band_examples() {
    // Today is 2026-05-15.
    let cases = [
        ("1990-03-07", "30-39"),
        ("1990-05-16", "30-39"),
        ("1987-05-15", "30-39"),
        ("1987-05-16", "30-39"),
        ("1986-05-15", "40-49"),
        ("2016-05-15", "10-19"),
        ("2016-05-16", "0-9"),
        ("2026-05-15", "0-9"),
        ("1937-05-16", "80-89"),
        ("1936-05-16", "80-89"),
        ("1936-05-15", "90+"),
        ("1900-01-01", "90+"),
    ];
    for (born, band) in cases {
        assert_eq!(apply(&Mask::AgeBand, json!(born)), json!(band), "{born}");
    }
    for bad in ["2026-05-16", "2990-01-01", "1990-03", "1990-02-30", "", "x"] {
        assert_eq!(apply(&Mask::AgeBand, json!(bad)), Value::Null, "{bad}");
    }
    assert_eq!(apply(&Mask::AgeBand, json!(19900307)), Value::Null);
}

#[test]
fn age_band_on_a_leap_day_birthday() {
    let key = key();
    let on = |y, m, d| MaskContext {
        key: &key,
        today: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
    };
    let born = json!("2016-02-29");
    assert_eq!(Mask::AgeBand.apply(&born, &on(2026, 2, 28)), json!("0-9"));
    assert_eq!(Mask::AgeBand.apply(&born, &on(2026, 3, 1)), json!("10-19"));
}

#[test]
fn address_to_examples() {
    let a = json!("示范县东岭镇桃园村3组12号");
    let to = |level| apply(&Mask::AddressTo(level), a.clone());
    assert_eq!(to(AddressLevel::Province), Value::Null);
    assert_eq!(to(AddressLevel::County), json!("示范县"));
    assert_eq!(to(AddressLevel::Township), json!("示范县东岭镇"));
    assert_eq!(to(AddressLevel::Village), json!("示范县东岭镇桃园村"));
    let b = json!("河北省石家庄市长安区建设北大街5号");
    let to = |level| apply(&Mask::AddressTo(level), b.clone());
    assert_eq!(to(AddressLevel::Province), json!("河北省"));
    assert_eq!(to(AddressLevel::County), json!("河北省石家庄市长安区"));
    assert_eq!(to(AddressLevel::Township), Value::Null);
    assert_eq!(
        apply(&Mask::AddressTo(AddressLevel::County), json!(12)),
        Value::Null
    );
}

#[test]
fn pseudonym_examples() {
    let p = apply(&Mask::Pseudonym, json!("110101199003071234"));
    let p = p.as_str().unwrap();
    assert!(p.starts_with("psn_"));
    assert_eq!(p.len(), 36);
    assert_eq!(key().pseudonym("110101199003071234"), p);
    // Scalars are stringified first.
    assert_eq!(
        apply(&Mask::Pseudonym, json!(123)),
        json!(key().pseudonym("123"))
    );
    assert_eq!(
        apply(&Mask::Pseudonym, json!(true)),
        json!(key().pseudonym("true"))
    );
}

#[test]
fn pseudonym_is_domain_separated_hmac() {
    let secret = [42u8; 40];
    let key = PseudonymKey::new(&secret).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update("county-gateway/pseudonym/v1\0张三".as_bytes());
    let full = mac.finalize().into_bytes();
    assert_eq!(
        key.pseudonym("张三"),
        format!("psn_{}", hex::encode(&full[..16]))
    );
    // Never a bare hash of the value, nor an undomained HMAC.
    let mut bare = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    bare.update("张三".as_bytes());
    let bare = bare.finalize().into_bytes();
    assert_ne!(
        key.pseudonym("张三"),
        format!("psn_{}", hex::encode(&bare[..16]))
    );
}

#[test]
fn pseudonym_key_checks_length_and_hides_itself() {
    assert!(matches!(
        PseudonymKey::new(&[1u8; 31]),
        Err(MaskError::KeyTooShort { min: 32, got: 31 })
    ));
    assert!(PseudonymKey::new(b"").is_err());
    let err = PseudonymKey::new(&[1u8; 3]).unwrap_err().to_string();
    assert!(err.contains("32"), "{err}");
    let key = PseudonymKey::new(b"0123456789abcdef0123456789abcdef-secret").unwrap();
    assert_eq!(format!("{key:?}"), "PseudonymKey(<redacted>)");
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    let shown = format!("{ctx:?} {ctx:#?}");
    assert!(shown.contains("<redacted>"));
    assert!(
        !shown.contains("secret") && !shown.contains("0123"),
        "{shown}"
    );
}

#[test]
fn odd_unicode_never_panics() {
    let inputs = [
        "😀",
        "👨‍👩‍👧‍👦家",
        "e\u{301}\u{301}\u{301}",
        "\u{200d}\u{200d}",
        "𠮷野家",
        "\u{feff}张三",
        "\0\u{7f}",
        "🇨🇳🇨🇳🇨🇳",
    ];
    for mask in all_masks() {
        for s in inputs {
            let out = apply(&mask, json!(s));
            assert!(out.is_null() || out.is_string(), "{mask:?}");
        }
    }
    assert_eq!(apply(&Mask::Name, json!("😀😀😀")), json!("😀*😀"));
    assert_eq!(
        apply(&partial(1, 1, '*'), json!("e\u{301}\u{301}")),
        json!("e*\u{301}")
    );
}

// ---------------------------------------------------------------- fits and defaults

#[test]
fn fits_table() {
    use PiiKind as K;
    let expected: &[(Mask, &[PiiKind])] = &[
        (Mask::Keep, &ALL_KINDS),
        (Mask::Redact, &ALL_KINDS),
        (
            partial(1, 1, '*'),
            &[
                K::IdNumber,
                K::Name,
                K::Phone,
                K::Address,
                K::Account,
                K::FreeText,
                K::Code,
            ],
        ),
        (
            partial(0, 0, '*'),
            &[
                K::IdNumber,
                K::Name,
                K::Phone,
                K::Address,
                K::Account,
                K::FreeText,
                K::Code,
            ],
        ),
        (Mask::Name, &[K::Name]),
        (Mask::IdNumber { first: 6, last: 4 }, &[K::IdNumber]),
        (Mask::Phone, &[K::Phone]),
        (Mask::DateYear, &[K::Date]),
        (Mask::AgeBand, &[K::Date]),
        (Mask::AddressTo(AddressLevel::Village), &[K::Address]),
        (Mask::AddressTo(AddressLevel::Province), &[K::Address]),
        (
            Mask::Pseudonym,
            &[K::IdNumber, K::Name, K::Phone, K::Account, K::Code],
        ),
    ];
    for (mask, kinds) in expected {
        for kind in ALL_KINDS {
            assert_eq!(
                mask.fits(kind),
                kinds.contains(&kind),
                "{mask:?} on {kind:?}"
            );
        }
    }
    // Health, money, count and none take only keep and redact.
    for kind in [K::Health, K::Money, K::Count, K::None] {
        let fitting: Vec<&str> = all_masks()
            .iter()
            .filter(|m| m.fits(kind))
            .map(Mask::operator)
            .collect();
        assert_eq!(fitting, ["keep", "redact"], "{kind:?}");
    }
}

#[test]
fn default_for_table() {
    use PiiKind as K;
    let expected = [
        (K::IdNumber, Mask::IdNumber { first: 6, last: 4 }),
        (K::Name, Mask::Name),
        (K::Phone, Mask::Phone),
        (K::Address, Mask::AddressTo(AddressLevel::Township)),
        (K::Date, Mask::DateYear),
        (K::Money, Mask::Redact),
        (K::Account, Mask::Redact),
        (K::Health, Mask::Redact),
        (K::FreeText, Mask::Redact),
        (K::Code, Mask::Keep),
        (K::Count, Mask::Keep),
        (K::None, Mask::Keep),
    ];
    assert_eq!(expected.len(), ALL_KINDS.len());
    for (kind, mask) in expected {
        assert_eq!(Mask::default_for(kind), mask, "{kind:?}");
        assert!(mask.fits(kind), "the default for {kind:?} must fit it");
    }
}

// ---------------------------------------------------------------- serde

#[test]
fn yaml_forms_round_trip() {
    let forms = [
        ("keep", Mask::Keep),
        ("redact", Mask::Redact),
        ("name", Mask::Name),
        ("id_number", Mask::IdNumber { first: 6, last: 4 }),
        ("phone", Mask::Phone),
        ("date_year", Mask::DateYear),
        ("age_band", Mask::AgeBand),
        ("pseudonym", Mask::Pseudonym),
        (
            "{partial: {first: 1, last: 1, fill: \"*\"}}",
            partial(1, 1, '*'),
        ),
        ("{partial: {first: 1, last: 2}}", partial(1, 2, '*')),
        (
            "{partial: {first: 0, last: 0, fill: \"#\"}}",
            partial(0, 0, '#'),
        ),
        (
            "{partial: {first: 2, last: 0, fill: \"〇\"}}",
            partial(2, 0, '〇'),
        ),
        ("partial:\n  first: 3\n  last: 4\n", partial(3, 4, '*')),
        (
            "{id_number: {first: 6, last: 4}}",
            Mask::IdNumber { first: 6, last: 4 },
        ),
        (
            "{id_number: {first: 3, last: 2}}",
            Mask::IdNumber { first: 3, last: 2 },
        ),
        (
            "{address_to: province}",
            Mask::AddressTo(AddressLevel::Province),
        ),
        (
            "{address_to: county}",
            Mask::AddressTo(AddressLevel::County),
        ),
        (
            "{address_to: township}",
            Mask::AddressTo(AddressLevel::Township),
        ),
        (
            "address_to: village",
            Mask::AddressTo(AddressLevel::Village),
        ),
    ];
    for (yaml, mask) in forms {
        let read: Mask = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(read, mask, "{yaml}");
        let written = serde_yaml_ng::to_string(&mask).unwrap();
        let again: Mask = serde_yaml_ng::from_str(&written).unwrap();
        assert_eq!(again, mask, "{written}");
        let j = serde_json::to_string(&mask).unwrap();
        assert_eq!(serde_json::from_str::<Mask>(&j).unwrap(), mask, "{j}");
    }
    for mask in all_masks() {
        let j = serde_json::to_value(&mask).unwrap();
        assert_eq!(serde_json::from_value::<Mask>(j).unwrap(), mask);
    }
}

#[test]
fn written_forms() {
    let to = |m: Mask| serde_json::to_value(m).unwrap();
    assert_eq!(to(Mask::Keep), json!("keep"));
    assert_eq!(to(Mask::IdNumber { first: 6, last: 4 }), json!("id_number"));
    assert_eq!(
        to(Mask::IdNumber { first: 3, last: 2 }),
        json!({"id_number": {"first": 3, "last": 2}})
    );
    assert_eq!(
        to(partial(1, 1, '*')),
        json!({"partial": {"first": 1, "last": 1}})
    );
    assert_eq!(
        to(partial(1, 1, '#')),
        json!({"partial": {"first": 1, "last": 1, "fill": "#"}})
    );
    assert_eq!(
        to(Mask::AddressTo(AddressLevel::Township)),
        json!({"address_to": "township"})
    );
    assert_eq!(
        serde_yaml_ng::to_string(&Mask::AddressTo(AddressLevel::County)).unwrap(),
        "address_to: county\n"
    );
    assert_eq!(serde_yaml_ng::to_string(&Mask::Phone).unwrap(), "phone\n");
}

#[test]
fn masks_inside_a_config_map() {
    let yaml = "
name: name
id: id_number
phone: {partial: {first: 3, last: 4}}
address: {address_to: village}
born: age_band
";
    let read: BTreeMap<String, Mask> = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(read["name"], Mask::Name);
    assert_eq!(read["phone"], partial(3, 4, '*'));
    assert_eq!(read["address"], Mask::AddressTo(AddressLevel::Village));
    assert_eq!(read["born"], Mask::AgeBand);
}

#[test]
fn bad_forms_are_rejected_with_the_valid_masks() {
    let lists_valid = [
        "kep",
        "Keep",
        "partial",
        "address_to",
        "\"\"",
        "~",
        "5",
        "[keep]",
        "{hash: {}}",
        "{keep: 1}",
        "{name: {}}",
        "{partial: {first: 1, last: 1}, name: x}",
        "{}",
    ];
    for yaml in lists_valid {
        let err = serde_yaml_ng::from_str::<Mask>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("valid masks: keep, redact"), "{yaml}: {err}");
        assert!(
            err.contains("address_to") && err.contains("partial"),
            "{yaml}: {err}"
        );
    }
    let bad_args = [
        ("{partial: {first: 1}}", "needs argument `last`"),
        ("{partial: {last: 1}}", "needs argument `first`"),
        ("{partial: {first: -1, last: 1}}", "non-negative integer"),
        ("{partial: {first: 1.5, last: 1}}", "non-negative integer"),
        ("{partial: {first: \"1\", last: 1}}", "non-negative integer"),
        (
            "{partial: {first: 1, last: 1, fill: \"**\"}}",
            "exactly one character",
        ),
        (
            "{partial: {first: 1, last: 1, fill: \"\"}}",
            "exactly one character",
        ),
        (
            "{partial: {first: 1, last: 1, fill: 1}}",
            "exactly one character",
        ),
        (
            "{partial: {first: 1, last: 1, middle: 2}}",
            "no argument `middle`",
        ),
        ("{partial: 3}", "takes a map of arguments"),
        (
            "{id_number: {first: 6, last: 4, fill: \"#\"}}",
            "no argument `fill`",
        ),
        (
            "{address_to: city}",
            "province, county, township or village",
        ),
        (
            "{address_to: {level: county}}",
            "province, county, township or village",
        ),
    ];
    for (yaml, needle) in bad_args {
        let err = serde_yaml_ng::from_str::<Mask>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{yaml}: {err}");
    }
    let err = serde_json::from_str::<Mask>("\"pseudonymise\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown mask `pseudonymise`"), "{err}");
    assert!(err.contains("valid masks"), "{err}");
}

// ---------------------------------------------------------------- properties

/// Text of every sort, CJK-heavy, without the fill characters `*` and `#` (an input
/// already made of fill characters can come back the same under a mask).
fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    let range = format!("{{{min},{max}}}");
    prop_oneof![
        proptest::string::string_regex(&format!("\\p{{Han}}{range}")).unwrap(),
        proptest::string::string_regex(&format!("[a-zA-Z0-9 .\\-]{range}")).unwrap(),
        proptest::string::string_regex(&format!("[\\p{{Han}}0-9a-z]{range}")).unwrap(),
        proptest::string::string_regex(&format!("\\PC{range}")).unwrap(),
        proptest::string::string_regex(&format!("(?s:.){range}")).unwrap(),
    ]
    .prop_map(|s| s.replace(['*', '#'], "x"))
}

/// Arbitrary JSON values, with strings that look like the data the masks expect.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        text(0, 30).prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}(-[0-9]{2})?".prop_map(Value::String),
        "1[0-9]{10}".prop_map(Value::String),
        "[0-9]{17}[0-9X]".prop_map(Value::String),
        "(示范县|河北省石家庄市)?(东岭|新市)?(镇|乡|街道)?(桃园)?(村|社区)?[0-9]组"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_mask() -> impl Strategy<Value = Mask> {
    let fill = prop_oneof![Just('*'), Just('#'), any::<char>()];
    prop_oneof![
        Just(Mask::Keep),
        Just(Mask::Redact),
        (0..40usize, 0..40usize, fill).prop_map(|(first, last, fill)| partial(first, last, fill)),
        Just(Mask::Name),
        (0..40usize, 0..40usize).prop_map(|(first, last)| Mask::IdNumber { first, last }),
        Just(Mask::Phone),
        Just(Mask::DateYear),
        Just(Mask::AgeBand),
        prop::sample::select(LEVELS.to_vec()).prop_map(Mask::AddressTo),
        Just(Mask::Pseudonym),
    ]
}

/// Suffixes an address may end with after a cut at `level`.
fn level_suffixes(level: AddressLevel) -> &'static [&'static str] {
    match level {
        AddressLevel::Province => &["省", "自治区", "特别行政区", "市"],
        AddressLevel::County => &["市", "县", "区", "旗"],
        AddressLevel::Township => &["镇", "乡", "街道", "苏木"],
        AddressLevel::Village => &["村", "社区", "嘎查", "居委会"],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) No mask but keep shows an input of two chars or more unchanged. The one
    /// exception: an address that is already no finer than the level asked for.
    #[test]
    fn no_mask_but_keep_returns_the_input(s in text(2, 40), fill in prop_oneof![Just('*'), Just('#')]) {
        let mut masks = all_masks();
        masks.push(partial(s.chars().count(), 0, fill));
        masks.push(partial(1, s.chars().count(), fill));
        for mask in masks {
            if mask == Mask::Keep {
                continue;
            }
            let out = apply(&mask, Value::String(s.clone()));
            if let Mask::AddressTo(level) = mask
                && out == Value::String(s.clone()) {
                    prop_assert!(level_suffixes(level).iter().any(|x| s.ends_with(x)));
                    continue;
                }
            prop_assert_ne!(out, Value::String(s.clone()), "{:?}", mask);
        }
    }

    /// (b) The default ID mask never shows chars 7–14 (the birth date) of an 18-char ID.
    #[test]
    fn id_number_hides_the_birth_date(id in prop_oneof![
        "[1-9][0-9]{16}[0-9X]".boxed(),
        "\\PC{18}".prop_map(|s: String| s.replace('*', "x")).boxed(),
        text(18, 18).boxed(),
    ]) {
        let chars: Vec<char> = id.chars().collect();
        prop_assume!(chars.len() == 18);
        let out = apply(&Mask::default_for(PiiKind::IdNumber), Value::String(id.clone()));
        let out = out.as_str().unwrap_or_default().to_owned();
        let middle: String = chars[6..14].iter().collect();
        prop_assert!(!out.contains(&middle));
        let shown: Vec<char> = out.chars().collect();
        prop_assert_eq!(shown.len(), 18);
        prop_assert!(shown[6..14].iter().all(|c| *c == '*'));
        prop_assert_eq!(&shown[..6], &chars[..6]);
        prop_assert_eq!(&shown[14..], &chars[14..]);
    }

    /// (c) Apply never panics on any JSON value, and its result has the promised shape.
    #[test]
    fn apply_never_panics(mask in any_mask(), value in json_value()) {
        let out = apply(&mask, value.clone());
        match (&mask, &value) {
            (Mask::Keep, _) => prop_assert_eq!(out, value),
            (_, Value::Null | Value::Array(_) | Value::Object(_)) | (Mask::Redact, _) => {
                prop_assert_eq!(out, Value::Null);
            }
            _ => prop_assert!(out.is_null() || out.is_string()),
        }
    }

    /// (d) Pseudonyms: deterministic per key, different across keys, never containing
    /// the input, always `psn_` + 32 lowercase hex digits.
    #[test]
    fn pseudonym_properties(
        s in any::<String>(),
        a in prop::collection::vec(any::<u8>(), 32..64),
        b in prop::collection::vec(any::<u8>(), 32..64),
    ) {
        let ka = PseudonymKey::new(&a).unwrap();
        let kb = PseudonymKey::new(&b).unwrap();
        let p = ka.pseudonym(&s);
        prop_assert_eq!(&p, &ka.pseudonym(&s));
        prop_assert_eq!(&p, &PseudonymKey::new(&a).unwrap().pseudonym(&s));
        if a != b {
            prop_assert_ne!(&p, &kb.pseudonym(&s));
        }
        prop_assert_eq!(p.len(), 36);
        prop_assert!(p.starts_with("psn_"));
        prop_assert!(p[4..].bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        // A very short input can occur in 32 hex digits by chance; longer ones cannot.
        let by_chance = s.chars().count() < 8
            && s.chars().all(|c| c.is_ascii_hexdigit() || "psn_".contains(c));
        if !by_chance {
            prop_assert!(!p.contains(&s));
        }
    }

    /// (e) Partial keeps the length in chars.
    #[test]
    fn partial_keeps_the_length(s in prop_oneof![any::<String>(), text(0, 40)], first in 0..50usize, last in 0..50usize, fill in any::<char>()) {
        let out = apply(&partial(first, last, fill), Value::String(s.clone()));
        let out = out.as_str().unwrap_or_default().to_owned();
        prop_assert_eq!(out.chars().count(), s.chars().count());
        let n = s.chars().count();
        if n <= first + last {
            prop_assert!(out.chars().all(|c| c == fill));
        } else {
            prop_assert!(out.chars().take(first).eq(s.chars().take(first)));
            prop_assert!(out.chars().skip(n - last).eq(s.chars().skip(n - last)));
        }
    }

    /// Address cuts are prefixes of the input that end at a suffix of the level.
    #[test]
    fn address_cut_is_a_prefix(s in prop_oneof![
        text(0, 30),
        "(河北省|北京市|内蒙古自治区)?(石家庄市|湘乡市)?(示范县|长安区|安乡县)?(东岭|新市)(镇|乡|街道|苏木)(桃园)?(村|社区|嘎查)?[0-9]组[0-9]{1,3}号",
    ], level in prop::sample::select(LEVELS.to_vec())) {
        if let Value::String(out) = apply(&Mask::AddressTo(level), Value::String(s.clone())) {
            prop_assert!(s.starts_with(&out));
            prop_assert!(level_suffixes(level).iter().any(|x| out.ends_with(x)), "{} → {}", s, out);
        }
    }
}

#[test]
fn a_derived_secret_is_not_the_pseudonym_of_its_label() {
    let key = PseudonymKey::new(&[7u8; 32]).unwrap();
    let label = "county-gateway/limit-keys/v1";
    let derived = hex::encode(key.derive(label));
    assert!(!derived.contains(key.pseudonym(label).trim_start_matches("psn_")));
    assert_eq!(key.derive(label), key.derive(label));
    assert_ne!(key.derive(label), key.derive("another use"));
}
