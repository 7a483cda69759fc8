//! Tests of verification: the comparison rules per kind, divisions, the checks of
//! stated values (and that no error carries one), and a property test that the
//! answer is a function of equality only.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use connectors::definition::Sharing;

fn leaf(path: &str, pii: PiiKind) -> LeafField {
    LeafField {
        path: path.to_owned(),
        pii,
        sharing: Sharing::Conditional,
    }
}

fn leaves() -> Vec<LeafField> {
    vec![
        leaf("name", PiiKind::Name),
        leaf("birth_date", PiiKind::Date),
        leaf("address", PiiKind::Address),
        leaf("id_number", PiiKind::IdNumber),
        leaf("monthly_amount", PiiKind::Money),
        leaf("spouse.name", PiiKind::Name),
        leaf("children[].name", PiiKind::Name),
    ]
}

fn stated(value: &str) -> Claim {
    Claim::Value(value.to_owned())
}

#[test]
fn names_and_addresses_compare_after_normalization_codes_and_dates_exactly() {
    let name = |claim: &str, held: &str| same(PiiKind::Name, &stated(claim), &json!(held), None);
    assert!(name("邓俊浩", "邓俊浩"));
    assert!(name(" 邓 俊浩 ", "邓俊浩"));
    assert!(name("阿依古丽•买买提", "阿依古丽·买买提"));
    assert!(name("ＺＨＡＮＧ　Ｓａｎ", "zhang san"));
    assert!(!name("邓俊涛", "邓俊浩"));
    let address =
        |claim: &str, held: &str| same(PiiKind::Address, &stated(claim), &json!(held), None);
    assert!(address("东岭镇 九里店村 ３组", "东岭镇九里店村3组"));
    assert!(!address("东岭镇九里店村4组", "东岭镇九里店村3组"));
    let date = |claim: &str, held: &str| same(PiiKind::Date, &stated(claim), &json!(held), None);
    assert!(date("1975-03-27", "1975-03-27"));
    assert!(!date("1975-03-28", "1975-03-27"));
    let id = |claim: &str, held: &str| same(PiiKind::IdNumber, &stated(claim), &json!(held), None);
    assert!(id("13990119750327229x", "13990119750327229X"));
    let money =
        |claim: &str, held: serde_json::Value| same(PiiKind::Money, &stated(claim), &held, None);
    assert!(money("520", json!("520.00")));
    assert!(money("0520.5", json!(520.5)));
    assert!(!money("520.01", json!("520.00")));
    // A field the department holds empty matches nothing.
    assert!(!same(PiiKind::Name, &stated(""), &json!(null), None));
    assert!(!same(PiiKind::Code, &stated("null"), &json!(null), None));
}

#[test]
fn an_address_stated_as_a_division_matches_every_address_within_it() {
    let record = json!({"township_code": "139901101", "village_code": "139901101203"});
    let division = division_of(&record);
    let claim = |key: &str, code: &str| {
        let mut object = serde_json::Map::new();
        object.insert(key.to_owned(), json!(code));
        division_claim(&object).unwrap()
    };
    let held = json!("东岭镇九里店村3组");
    for (key, code, expected) in [
        ("village_code", "139901101203", true),
        ("village_code", "139901101204", false),
        ("township_code", "139901101", true),
        ("township_code", "139901102", false),
        ("county_code", "139901", true),
        ("county_code", "139902", false),
    ] {
        assert_eq!(
            same(
                PiiKind::Address,
                &claim(key, code),
                &held,
                division.as_deref()
            ),
            expected,
            "{key} {code}"
        );
    }
    // A nested address is placed by its own object's division, not the subject's.
    let nested = json!({
        "village_code": "139901101203",
        "spouse": {"address": "西河乡某村", "village_code": "139901201205"},
    });
    assert_eq!(
        division_for(&nested, "spouse.address").as_deref(),
        Some("139901201205")
    );
    assert_eq!(
        division_for(&nested, "address").as_deref(),
        Some("139901101203")
    );
    assert_eq!(division_for(&json!({"spouse": {}}), "spouse.address"), None);
    // A record without a division code matches no division.
    assert!(!same(
        PiiKind::Address,
        &claim("county_code", "139901"),
        &held,
        None
    ));
    // Anything but one division key with the right digits is malformed.
    for bad in [
        json!({"village_code": "1399011012"}),
        json!({"township_code": 139901101}),
        json!({"village_code": "139901101203", "township_code": "139901101"}),
        json!({"street": "x"}),
        json!({}),
    ] {
        let Value::Object(object) = bad else {
            unreachable!()
        };
        assert_eq!(division_claim(&object), None, "{object:?}");
    }
}

#[test]
fn stated_values_are_checked_and_errors_never_carry_them() {
    let id = "13990119750327229X";
    let leaves = leaves();
    let ok = claims(
        &json!({"name": "邓俊浩", "spouse": {"name": "王芳"}, "monthly_amount": 520}),
        &leaves,
    )
    .unwrap();
    assert_eq!(
        ok.keys().collect::<Vec<_>>(),
        ["monthly_amount", "name", "spouse.name"]
    );
    let cases = [
        (json!(null), ClaimError::Empty),
        (json!({}), ClaimError::Empty),
        (json!([id]), ClaimError::Empty),
        (json!({id: "x"}), ClaimError::UnknownField),
        (json!({"spouse": {id: "x"}}), ClaimError::UnknownField),
        (
            json!({"children": [{"name": "x"}]}),
            ClaimError::InList("children".into()),
        ),
        (
            json!({"birth_date": "27/03/1975"}),
            ClaimError::Malformed("birth_date".into()),
        ),
        (json!({"name": ["x"]}), ClaimError::Malformed("name".into())),
        (
            json!({"name": "字".repeat(MAX_CLAIM_CHARS + 1)}),
            ClaimError::Malformed("name".into()),
        ),
        (
            json!({"address": {"village_code": id}}),
            ClaimError::Malformed("address".into()),
        ),
    ];
    for (body, expected) in cases {
        let error = claims(&body, &leaves).unwrap_err();
        assert_eq!(error, expected, "{body}");
        let text = error.to_string();
        assert!(!text.contains(id) && !text.contains("1975"), "{text}");
    }
    let many: serde_json::Map<String, Value> = (0..=MAX_CLAIMS)
        .map(|i| (format!("f{i}"), json!("x")))
        .collect();
    assert_eq!(
        claims(&Value::Object(many), &leaves),
        Err(ClaimError::TooMany)
    );
}

proptest! {
    /// The answer is a function of equality only: for any stated and held values, the
    /// result is `match` exactly when their normalized forms are equal, whatever
    /// else they share (a prefix, a length, most characters).
    #[test]
    fn the_answer_is_a_function_of_equality_only(
        held in "[a-c 　ａ-ｃ·•0-9]{0,8}",
        stated_value in "[a-c 　ａ-ｃ·•0-9]{0,8}",
        kind in prop::sample::select(vec![
            PiiKind::Name, PiiKind::Address, PiiKind::Code, PiiKind::IdNumber,
            PiiKind::Money, PiiKind::Date, PiiKind::Phone,
        ]),
    ) {
        let equal = match kind {
            PiiKind::Name | PiiKind::Address => text_form(&stated_value) == text_form(&held),
            PiiKind::IdNumber => id_form(&stated_value) == id_form(&held),
            PiiKind::Money => match (decimal(&stated_value), decimal(&held)) {
                (Some(a), Some(b)) => a == b,
                _ => plain(&stated_value) == plain(&held),
            },
            _ => plain(&stated_value) == plain(&held),
        };
        let result = same(kind, &stated(&stated_value), &json!(held), None);
        prop_assert_eq!(result, equal);
        // Every value is its own match, and the comparison is symmetric.
        prop_assert!(same(kind, &stated(&held), &json!(held), None));
        prop_assert_eq!(result, same(kind, &stated(&held), &json!(stated_value), None));
    }
}
