//! Unit and property tests of decisions: default deny, masks, row conditions, deny
//! rules, validity windows, roles, and an index whose cost does not grow with grants.

use std::collections::{BTreeMap, BTreeSet};

use connectors::definition::FieldDef;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::explain::CallerDef;
use crate::mask::{Mask, MaskContext, PseudonymKey};

fn fields() -> BTreeMap<String, FieldDef> {
    serde_yaml_ng::from_str(
        r#"
id_number: { from: /a, pii: id_number, sharing: open }
township_code: { from: /t, pii: none, sharing: open }
name: { from: /b, pii: name, sharing: conditional }
phone: { from: /p, pii: phone, sharing: conditional }
bank_account: { from: /c, pii: account, sharing: never }
children:
  from: /e
  items:
    birth_date: { from: /x, pii: date, sharing: open }
    name: { from: /y, pii: name, sharing: conditional }
"#,
    )
    .unwrap()
}

fn leaves() -> Vec<LeafField> {
    let mut out = Vec::new();
    fn walk(prefix: &str, f: &BTreeMap<String, FieldDef>, out: &mut Vec<LeafField>) {
        for (name, def) in f {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(items) = &def.items {
                walk(&format!("{path}[]"), items, out);
            } else if let (Some(pii), Some(sharing)) = (def.pii, def.sharing) {
                out.push(LeafField { path, pii, sharing });
            }
        }
    }
    walk("", &fields(), &mut out);
    out
}

fn record() -> Value {
    json!({
        "id_number": "139901199003071234", "township_code": "139901101",
        "name": "张小三", "phone": "13812345678", "bank_account": "9912345678901234",
        "children": [{"birth_date": "2016-02-11", "name": "张丽"}],
        "smuggled": "never declared"
    })
}

fn caller(roles: &[Role], township: &str) -> Caller {
    CallerDef {
        sub: "u1".into(),
        roles: roles.to_vec(),
        township: Some(township.into()),
        villages: Vec::new(),
        department: None,
        app: None,
    }
    .caller()
    .expect("a valid caller")
}

fn grant(id: &str, fields: &[(&str, Mask)]) -> Grant {
    Grant {
        id: id.into(),
        description: String::new(),
        consumers: Consumers {
            roles: [Role::Clerk].into(),
            counties: ["139901".to_owned()].into(),
            ..Consumers::default()
        },
        connector: "c".into(),
        operations: vec!["op".into()],
        purposes: vec!["p".into()],
        fields: fields
            .iter()
            .map(|(f, m)| ((*f).to_owned(), m.clone()))
            .collect(),
        verify: BTreeSet::new(),
        row: None,
        jurisdiction: None,
        valid: Validity::default(),
        quota: None,
        disclosure_delay_days: None,
        legal_basis: "basis".into(),
        approver: "approver".into(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

fn run(set: &PolicySet, caller: &Caller, record: &Value) -> Result<Outcome, Refusal> {
    let key = PseudonymKey::new(&[7u8; 32]).unwrap();
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    let tree = FieldNode::tree(&fields());
    set.decide(caller, "c", "op", &leaves(), "p", today())?
        .apply(record, caller, &tree, &ctx, Outside::NOWHERE)
}

#[test]
fn a_verify_grant_confirms_a_field_that_a_lookup_never_reads() {
    let key = PseudonymKey::new(&[7u8; 32]).unwrap();
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    let tree = FieldNode::tree(&fields());
    let mut verify_only = grant("g-verify", &[]);
    verify_only.verify = ["name".to_owned()].into();
    let masked = grant("g-masked", &[("phone", Mask::Redact)]);
    let set = PolicySet::new(vec![verify_only, masked], vec![], "v".into());
    let clerk = caller(&[Role::Clerk], "139901101");
    let at = |level| {
        set.decide_for(level, &clerk, "c", "op", &leaves(), "p", today())
            .unwrap()
            .apply(&record(), &clerk, &tree, &ctx, Outside::NOWHERE)
            .unwrap()
    };
    // A lookup reads neither the name nor, unmasked, the phone.
    let read = at(Level::Read);
    assert_eq!(read.data.get("name"), None);
    assert_ne!(read.data["phone"], json!("13812345678"));
    let withheld: BTreeMap<_, _> = read
        .withheld
        .iter()
        .map(|w| (w.field.as_str(), (w.reason, w.rule.as_deref())))
        .collect();
    assert_eq!(
        withheld["name"],
        (WithheldReason::VerifyOnly, Some("g-verify"))
    );
    // A verification compares both as held (reading implies verifying), and still
    // never the `never` field.
    let verify = at(Level::Verify);
    assert_eq!(verify.data["name"], json!("张小三"));
    assert_eq!(verify.data["phone"], json!("13812345678"));
    assert_eq!(verify.fields["name"].rule, "g-verify");
    assert_eq!(verify.fields["phone"].rule, "g-masked");
    let never = verify.withheld.iter().find(|w| w.field == "bank_account");
    assert_eq!(never.map(|w| w.reason), Some(WithheldReason::NeverShared));
}

#[test]
fn without_grants_only_open_fields_leave() {
    let set = PolicySet::new(vec![], vec![], "v".into());
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert_eq!(
        out.data,
        json!({"id_number": "139901199003071234", "township_code": "139901101",
               "children": [{"birth_date": "2016-02-11"}]})
    );
    let reasons: BTreeMap<_, _> = out
        .withheld
        .iter()
        .map(|w| (w.field.as_str(), w.reason))
        .collect();
    assert_eq!(reasons["name"], WithheldReason::NotGranted);
    assert_eq!(reasons["bank_account"], WithheldReason::NeverShared);
    assert_eq!(reasons["children[].name"], WithheldReason::NotGranted);
    assert_eq!(out.fields["id_number"].rule, "open");
}

#[test]
fn a_grant_returns_its_fields_masked_and_names_itself() {
    let set = PolicySet::new(
        vec![grant(
            "g1",
            &[("name", Mask::Name), ("children[].name", Mask::Keep)],
        )],
        vec![],
        "v".into(),
    );
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert_eq!(out.data["name"], "张*三");
    assert_eq!(out.data["children"][0]["name"], "张丽");
    assert_eq!(out.fields["name"].mask, "name");
    assert_eq!(out.fields["name"].rule, "g1");
    assert!(out.rules.contains("g1"));
    assert!(out.data.get("phone").is_none());
}

#[test]
fn the_most_revealing_of_several_grants_wins_deterministically() {
    let set = PolicySet::new(
        vec![
            grant("a-masked", &[("name", Mask::Name)]),
            grant("b-kept", &[("name", Mask::Keep)]),
        ],
        vec![],
        "v".into(),
    );
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert_eq!(out.data["name"], "张小三");
    assert_eq!(out.fields["name"].rule, "b-kept");
}

#[test]
fn a_row_condition_refuses_subjects_of_other_townships() {
    let mut g = grant("same-township", &[("name", Mask::Keep)]);
    g.row = Some(RowCondition {
        field: "township_code".into(),
        rule: RowRule::CallerTownship,
    });
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let ok = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert_eq!(ok.data["name"], "张小三");
    let refusal = run(&set, &caller(&[Role::Clerk], "139901201"), &record()).unwrap_err();
    assert_eq!(refusal.rule, "same-township");
    assert_eq!(refusal.reason, RefusalReason::RowCondition);
}

fn run_outside(set: &PolicySet, caller: &Caller, outside: Outside) -> Result<Outcome, Refusal> {
    let key = PseudonymKey::new(&[7u8; 32]).unwrap();
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    let tree = FieldNode::tree(&fields());
    let plan = set.decide(caller, "c", "op", &leaves(), "p", today())?;
    assert!(plan.needs_jurisdiction());
    plan.apply(&record(), caller, &tree, &ctx, outside)
}

#[test]
fn a_jurisdiction_grant_refuses_outsiders_before_the_record_is_seen() {
    let mut g = grant("residents", &[("name", Mask::Keep)]);
    g.jurisdiction = Some(Jurisdiction::Township);
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let clerk = caller(&[Role::Clerk], "139901101");
    let plan = set
        .decide(&clerk, "c", "op", &leaves(), "p", today())
        .unwrap();
    // Decided without the record: the same for a person elsewhere and for nobody.
    let refusal = plan.refuse_outside(Outside::EVERYWHERE).unwrap();
    assert_eq!(refusal.reason, RefusalReason::Jurisdiction);
    assert_eq!(refusal.rule, "residents");
    assert_eq!(
        run_outside(&set, &clerk, Outside::EVERYWHERE)
            .unwrap_err()
            .reason,
        RefusalReason::Jurisdiction
    );
    assert_eq!(
        run_outside(&set, &clerk, Outside::NOWHERE).unwrap().data["name"],
        "张小三"
    );
}

#[test]
fn outside_the_jurisdiction_only_grants_without_it_still_hold() {
    let mut narrow = grant("residents", &[("phone", Mask::Keep)]);
    narrow.jurisdiction = Some(Jurisdiction::Township);
    let broad = grant("county-wide", &[("name", Mask::Name)]);
    let set = PolicySet::new(vec![narrow, broad], vec![], "v".into());
    let clerk = caller(&[Role::Clerk], "139901101");
    let plan = set
        .decide(&clerk, "c", "op", &leaves(), "p", today())
        .unwrap();
    assert!(plan.refuse_outside(Outside::EVERYWHERE).is_none());
    let out = run_outside(&set, &clerk, Outside::EVERYWHERE).unwrap();
    assert_eq!(out.data["name"], "张*三");
    let phone = out.withheld.iter().find(|w| w.field == "phone").unwrap();
    assert_eq!(phone.reason, WithheldReason::Jurisdiction);
    assert_eq!(phone.rule.as_deref(), Some("residents"));
}

/// A grid worker of 东岭镇 serving two of its villages.
fn grid_worker() -> Caller {
    CallerDef {
        sub: "grid".into(),
        roles: vec![Role::GridWorker],
        township: Some("139901101".into()),
        villages: vec!["139901101201".into(), "139901101202".into()],
        department: None,
        app: None,
    }
    .caller()
    .expect("a valid caller")
}

fn grid_grant(id: &str) -> Grant {
    let mut g = grant(id, &[("name", Mask::Keep)]);
    g.consumers.roles = [Role::GridWorker].into();
    g
}

#[test]
fn a_village_row_condition_holds_only_for_the_callers_villages() {
    let condition = RowCondition {
        field: "village_code".into(),
        rule: RowRule::CallerVillages,
    };
    let grid = grid_worker();
    let at = |village: &str| json!({"village_code": village, "township_code": "139901101"});
    assert!(condition.holds(&at("139901101201"), &grid));
    assert!(condition.holds(&at("139901101202"), &grid));
    // Another village of the same township, a missing field, a number: no.
    assert!(!condition.holds(&at("139901101203"), &grid));
    assert!(!condition.holds(&json!({"township_code": "139901101"}), &grid));
    assert!(!condition.holds(&json!({"village_code": 139901101201_u64}), &grid));
    // A caller without villages (a clerk of the same township) is in none of them.
    let clerk = caller(&[Role::Clerk], "139901101");
    assert!(!condition.holds(&at("139901101201"), &clerk));
    assert!(
        condition
            .describe()
            .contains("one of the caller's villages")
    );

    // Through a decision: the record of a resident of another village is refused.
    let mut g = grid_grant("grid-villages");
    g.row = Some(condition);
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let mut inside = record();
    inside["village_code"] = json!("139901101202");
    let ok = run(&set, &grid, &inside).unwrap();
    assert_eq!(ok.data["name"], "张小三");
    let mut elsewhere = record();
    elsewhere["village_code"] = json!("139901101203");
    let refusal = run(&set, &grid, &elsewhere).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::RowCondition);
    assert_eq!(refusal.rule, "grid-villages");
}

#[test]
fn a_village_jurisdiction_holds_only_for_residents_of_the_callers_villages() {
    use crate::jurisdiction::Residence;
    let grid = grid_worker();
    let village = |code: &str| Residence::from_code(code);
    assert!(Jurisdiction::Village.holds(&grid, &village("139901101201")));
    assert!(!Jurisdiction::Village.holds(&grid, &village("139901101203")));
    // Known only to the township (no village field): in the township, in no village.
    assert!(Jurisdiction::Township.holds(&grid, &village("139901101")));
    assert!(!Jurisdiction::Village.holds(&grid, &village("139901101")));
    // Unknown to the authority: nowhere.
    assert_eq!(
        Outside::of(&grid, &Residence::default()),
        Outside::EVERYWHERE
    );
    // A clerk of the township has no villages: a village grant never holds for them.
    let clerk = caller(&[Role::Clerk], "139901101");
    assert!(!Jurisdiction::Village.holds(&clerk, &village("139901101201")));

    let mut g = grid_grant("grid-villages");
    g.jurisdiction = Some(Jurisdiction::Village);
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let plan = set
        .decide(&grid, "c", "op", &leaves(), "p", today())
        .unwrap();
    let next_door = Outside::of(&grid, &village("139901101203"));
    assert_eq!(
        next_door,
        Outside {
            township: false,
            villages: true
        }
    );
    assert!(plan.is_outside(next_door));
    // Another village of the same township gets the answer a person nobody knows gets.
    assert_eq!(
        plan.refuse_outside(next_door),
        plan.refuse_outside(Outside::EVERYWHERE)
    );
    let refusal = run_outside(&set, &grid, next_door).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::Jurisdiction);
    assert!(
        refusal.detail.contains("caller's villages"),
        "{}",
        refusal.detail
    );
    let own = Outside::of(&grid, &village("139901101201"));
    assert!(!plan.is_outside(own));
    assert_eq!(
        run_outside(&set, &grid, own).unwrap().data["name"],
        "张小三"
    );
}

#[test]
fn a_failed_row_condition_only_withholds_when_another_grant_holds() {
    let mut narrow = grant("narrow", &[("phone", Mask::Keep)]);
    narrow.row = Some(RowCondition {
        field: "township_code".into(),
        rule: RowRule::CallerTownship,
    });
    let broad = grant("broad", &[("name", Mask::Name)]);
    let set = PolicySet::new(vec![narrow, broad], vec![], "v".into());
    let out = run(&set, &caller(&[Role::Clerk], "139901201"), &record()).unwrap();
    assert_eq!(out.data["name"], "张*三");
    let phone = out.withheld.iter().find(|w| w.field == "phone").unwrap();
    assert_eq!(phone.reason, WithheldReason::RowCondition);
    assert_eq!(phone.rule.as_deref(), Some("narrow"));
}

#[test]
fn deny_rules_override_grants_and_open_fields() {
    let deny_fields = Deny {
        id: "no-ids".into(),
        reason: "r".into(),
        consumers: Consumers {
            roles: [Role::Clerk].into(),
            ..Consumers::default()
        },
        connector: "c".into(),
        operations: Default::default(),
        purposes: Default::default(),
        fields: Some(["id_number".to_owned(), "name".to_owned()].into()),
    };
    let set = PolicySet::new(
        vec![grant("g", &[("name", Mask::Keep)])],
        vec![deny_fields.clone()],
        "v".into(),
    );
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert!(out.data.get("id_number").is_none());
    assert!(out.data.get("name").is_none());
    let name = out.withheld.iter().find(|w| w.field == "name").unwrap();
    assert_eq!(
        (name.reason, name.rule.as_deref()),
        (WithheldReason::DeniedByRule, Some("no-ids"))
    );

    let whole = Deny {
        id: "nothing".into(),
        fields: None,
        ..deny_fields
    };
    let set = PolicySet::new(
        vec![grant("g", &[("name", Mask::Keep)])],
        vec![whole],
        "v".into(),
    );
    let refusal = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap_err();
    assert_eq!(
        (refusal.rule.as_str(), refusal.reason),
        ("nothing", RefusalReason::DeniedByRule)
    );
}

#[test]
fn a_grant_outside_its_validity_grants_nothing() {
    let mut g = grant("expired", &[("name", Mask::Keep)]);
    g.valid = Validity {
        from: None,
        until: NaiveDate::from_ymd_opt(2026, 10, 31),
    };
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert!(out.data.get("name").is_none());
    let mut g = grant("future", &[("name", Mask::Keep)]);
    g.valid = Validity {
        from: NaiveDate::from_ymd_opt(2026, 11, 2),
        until: None,
    };
    let set = PolicySet::new(vec![g], vec![], "v".into());
    let out = run(&set, &caller(&[Role::Clerk], "139901101"), &record()).unwrap();
    assert!(out.data.get("name").is_none());
}

#[test]
fn roles_that_do_not_look_records_up_are_refused() {
    let set = PolicySet::new(vec![], vec![], "v".into());
    for role in [Role::PrivacyOfficer, Role::Operator, Role::DeptAdmin] {
        let refusal = run(&set, &caller(&[role], "139901101"), &record()).unwrap_err();
        assert_eq!(refusal.rule, ROLE_RULE);
    }
}

#[test]
fn consumers_must_match_every_selector() {
    let mut g = grant("township-only", &[("name", Mask::Keep)]);
    g.consumers.townships = ["139901101".to_owned()].into();
    let set = PolicySet::new(vec![g], vec![], "v".into());
    assert!(
        run(&set, &caller(&[Role::Clerk], "139901101"), &record())
            .unwrap()
            .data
            .get("name")
            .is_some()
    );
    assert!(
        run(&set, &caller(&[Role::Clerk], "139901201"), &record())
            .unwrap()
            .data
            .get("name")
            .is_none()
    );
    assert!(
        run(&set, &caller(&[Role::GridWorker], "139901101"), &record())
            .unwrap()
            .data
            .get("name")
            .is_none()
    );
}

#[test]
fn ten_thousand_unrelated_grants_do_not_change_the_candidates() {
    let mut grants: Vec<Grant> = (0..10_000)
        .map(|i| {
            let mut g = grant(&format!("other-{i}"), &[("name", Mask::Keep)]);
            g.consumers.counties.clear();
            g.consumers.townships = [format!("{:09}", 200_000_000 + i)].into();
            g
        })
        .collect();
    grants.push(grant("mine", &[("name", Mask::Name)]));
    let set = PolicySet::new(grants, vec![], "v".into());
    let c = caller(&[Role::Clerk], "139901101");
    let plan = set.decide(&c, "c", "op", &leaves(), "p", today()).unwrap();
    let ids: Vec<&str> = plan.grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["mine"]);
}

// Property: for random grants, denies and records, nothing leaves that policy does
// not allow, and masked fields never leave unmasked.
const CONDITIONAL: [&str; 3] = ["name", "phone", "children[].name"];

fn mask_strategy() -> impl Strategy<Value = Mask> {
    prop_oneof![
        Just(Mask::Keep),
        Just(Mask::Redact),
        (0usize..3, 0usize..3).prop_map(|(first, last)| Mask::Partial {
            first,
            last,
            fill: '*'
        }),
        Just(Mask::Name),
    ]
}

fn grant_strategy() -> impl Strategy<Value = Grant> {
    (
        proptest::collection::btree_map(0usize..3, mask_strategy(), 0..3),
        any::<bool>(),
        0u32..1000,
    )
        .prop_map(|(fields, row, n)| {
            let fields: Vec<(&str, Mask)> = fields
                .into_iter()
                .filter(|(i, m)| !(CONDITIONAL[*i] == "phone" && *m == Mask::Name))
                .map(|(i, m)| (CONDITIONAL[i], m))
                .collect();
            let mut g = grant(&format!("g{n}"), &fields);
            if row {
                g.row = Some(RowCondition {
                    field: "township_code".into(),
                    rule: RowRule::CallerTownship,
                });
            }
            g
        })
}

fn text() -> impl Strategy<Value = String> {
    "[a-z\u{4e00}-\u{4e10}]{2,8}"
}

proptest! {
    #[test]
    fn nothing_leaves_that_policy_does_not_allow(
        grants in proptest::collection::vec(grant_strategy(), 0..4),
        denied in proptest::collection::btree_set(prop_oneof![Just("name"), Just("id_number"), Just("children[].name")], 0..2),
        name in text(), phone in text(), child in text(), bank in text(),
        same_township in any::<bool>(),
    ) {
        let bank = format!("BANK-{bank}");
        let mut grants = grants;
        grants.sort_by(|a, b| a.id.cmp(&b.id));
        grants.dedup_by(|a, b| a.id == b.id);
        let deny = Deny {
            id: "d".into(), reason: "r".into(),
            consumers: Consumers { roles: [Role::Clerk].into(), ..Consumers::default() },
            connector: "c".into(), operations: Default::default(), purposes: Default::default(),
            fields: Some(denied.iter().map(|s| (*s).to_owned()).collect()),
        };
        let set = PolicySet::new(grants.clone(), vec![deny], "v".into());
        let record = json!({
            "id_number": "139901199003071234", "township_code": "139901101",
            "name": name, "phone": phone, "bank_account": bank,
            "children": [{"birth_date": "2016-02-11", "name": child}],
        });
        let township = if same_township { "139901101" } else { "139901201" };
        let who = caller(&[Role::Clerk], township);
        let Ok(out) = run(&set, &who, &record) else { return Ok(()); };
        let text = out.data.to_string();
        prop_assert!(!text.contains(&bank), "a never field left");
        prop_assert!(out.data.get("bank_account").is_none());
        let passing: Vec<&Grant> = grants.iter().filter(|g| g.row.as_ref().is_none_or(|r| r.holds(&record, &who))).collect();
        for (path, original) in [("name", &name), ("phone", &phone), ("children[].name", &child)] {
            let value = if path == "children[].name" {
                out.data.get("children").and_then(|c| c.get(0)).and_then(|c| c.get("name"))
            } else {
                out.data.get(path)
            };
            let masks: Vec<&Mask> = passing.iter().filter_map(|g| g.fields.get(path)).collect();
            if denied.contains(path) || masks.is_empty() {
                prop_assert!(value.is_none(), "{path} left without a grant or despite a deny");
                continue;
            }
            let Some(value) = value else { prop_assert!(false, "{path} granted but missing"); continue; };
            if !masks.contains(&&Mask::Keep) {
                prop_assert_ne!(value, &Value::String(original.clone()), "{} left unmasked", path);
            }
        }
        if denied.contains("id_number") {
            prop_assert!(out.data.get("id_number").is_none());
        }
    }
}
