//! Checks that the synthetic county is deterministic, valid and self-consistent: what
//! the demo and the gateway's tests rely on when they pick a person and query three
//! departments about them.

use std::collections::HashSet;
use std::sync::Arc;

use super::population::{
    COUNTY_CODE, HukouType, MaritalStatus, Population, Relation, ResidentStatus, SampleKind, Scheme,
};
use super::testing::population;
use connectors::subject::IdNumber;

/// The shared test county and two others, so the invariants hold beyond one seed.
fn several() -> Vec<Arc<Population>> {
    let others = [1, 4242].map(|seed| Arc::new(Population::generate(seed, 2_000)));
    std::iter::once(population()).chain(others).collect()
}

#[test]
fn same_seed_same_county_other_seed_other_county() {
    let a = Population::generate(7, 1_500);
    let b = Population::generate(7, 1_500);
    let c = Population::generate(8, 1_500);
    let ids = |p: &Population| p.residents().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.people, b.people);
    assert_eq!(a.households, b.households);
    assert_eq!(a.townships, b.townships);
    assert_ne!(ids(&a), ids(&c));
}

#[test]
fn demo_county_is_big_enough_and_has_every_sample_kind() {
    let pop = Population::demo();
    assert!(pop.len() >= 12_000);
    assert!(pop.len() < 12_010, "stops right after the last household");
    for kind in [
        SampleKind::MarriedParent,
        SampleKind::Pensioner,
        SampleKind::Child,
        SampleKind::MovedOut,
        SampleKind::Deceased,
    ] {
        assert!(pop.sample(kind).is_some(), "{kind:?}");
    }
}

#[test]
fn four_townships_with_coded_villages() {
    let pop = population();
    let codes: Vec<&str> = pop.townships.iter().map(|t| t.code.as_str()).collect();
    assert_eq!(codes, ["139901001", "139901101", "139901201", "139901202"]);
    let mut names = HashSet::new();
    for t in &pop.townships {
        assert!((5..=12).contains(&t.villages.len()), "{}", t.name);
        for v in &t.villages {
            assert_eq!(v.code.len(), 12);
            assert!(v.code.starts_with(&t.code));
            let kind = &v.code[9..10];
            assert!(
                kind == "0" && v.name.ends_with("社区") || kind == "2" && v.name.ends_with('村')
            );
            assert!(names.insert(v.name.clone()), "village names are unique");
        }
    }
}

#[test]
fn every_id_is_valid_unique_and_agrees_with_the_person() {
    for pop in several() {
        assert!(pop.len() >= 2_000);
        let mut seen = HashSet::new();
        let mut local = 0;
        for p in pop.residents() {
            let parsed = IdNumber::parse(p.id.as_str()).unwrap();
            assert!(seen.insert(parsed.clone()));
            assert_eq!(parsed.birth_date(), p.birth_date);
            assert_eq!(parsed.is_male(), p.gender.code() == "1");
            assert!(p.birth_date <= pop.as_of);
            local += usize::from(parsed.region() == COUNTY_CODE);
            assert!(std::ptr::eq(pop.person(p.id.as_str()).unwrap(), p));
            if let Some(day) = p.status.changed_on() {
                assert!(p.birth_date < day && day <= pop.as_of);
            }
            assert!(p.name.chars().count() >= 2 && p.name.chars().count() <= 3);
        }
        assert!(
            local * 100 >= pop.len() * 85,
            "most people were born in the county"
        );
    }
}

#[test]
fn households_are_well_formed() {
    for pop in several() {
        let mut numbers = HashSet::new();
        for h in &pop.households {
            assert!(numbers.insert(h.number.clone()));
            assert_eq!(h.number.len(), 9);
            assert!(h.number.bytes().all(|b| b.is_ascii_digit()));
            assert!((1..=7).contains(&h.members.len()));
            let (township, village) = pop.place_of(h).unwrap();
            let place = format!("示范县{}{}", township.name, village.name);
            assert!(h.address.starts_with(&place) && h.address.ends_with('号'));
            let members: Vec<_> = pop.members(h).collect();
            assert_eq!(members.len(), h.members.len());
            assert_eq!(members[0].relation, Relation::Head);
            assert_eq!(
                members
                    .iter()
                    .filter(|m| m.relation == Relation::Head)
                    .count(),
                1
            );
            assert_eq!(
                members[0].status,
                ResidentStatus::Normal,
                "the head is registered here"
            );
            for m in &members {
                assert_eq!(m.household, h.number);
                assert_eq!(pop.household_of(m.id.as_str()).unwrap().number, h.number);
            }
        }
        let urban = pop.households.iter().filter(|h| h.township == "139901001");
        let (non_agri, total) = urban.fold((0, 0), |(n, t), h| {
            (
                n + usize::from(h.hukou_type == HukouType::NonAgricultural),
                t + 1,
            )
        });
        assert!(non_agri * 10 >= total * 7, "the 街道 is mostly 非农业");
    }
}

#[test]
fn births_records_point_into_the_household() {
    for pop in several() {
        for p in pop.residents() {
            let f = &p.fertility;
            let household = pop.household_of(p.id.as_str()).unwrap();
            let here = |id: &IdNumber| household.members.contains(id);
            if p.age_on(pop.as_of) < 20 {
                assert_eq!(f.marital_status, MaritalStatus::Unmarried);
                assert!(f.children.is_empty() && f.spouse.is_none() && f.registrations.is_empty());
            }
            if let Some(spouse) = &f.spouse {
                assert_eq!(f.marital_status, MaritalStatus::Married);
                assert!(here(&spouse.id));
                let other = pop.person(spouse.id.as_str()).unwrap();
                assert_eq!(other.name, spouse.name);
                assert_ne!(other.gender, p.gender);
            }
            if f.marital_status != MaritalStatus::Unmarried {
                let married = f.marriage_date.unwrap();
                assert!(married <= pop.as_of);
                assert!(married >= p.birth_date + chrono::Days::new(20 * 365));
                if let Some(first) = f.children.first() {
                    assert!(married < first.birth_date);
                }
            }
            for (order, child) in (1..).zip(&f.children) {
                assert_eq!(child.birth_order, order);
                assert!(
                    here(&child.id),
                    "children in births records live in the household"
                );
                let kid = pop.person(child.id.as_str()).unwrap();
                assert_eq!(
                    (kid.birth_date, kid.gender, &kid.name),
                    (child.birth_date, child.gender, &child.name)
                );
                let gap = child.birth_date.years_since(p.birth_date).unwrap();
                assert!((20..=45).contains(&gap), "parent {gap} years older");
            }
            for reg in &f.registrations {
                let child = &f.children[reg.birth_order as usize - 1];
                assert!(reg.date < child.birth_date);
                assert!(reg.number.starts_with("SYDJ139901-"));
            }
            if let Some(cert) = &f.single_child_certificate {
                assert_eq!(f.children.len(), 1);
                assert!(cert.issued > f.children[0].birth_date);
            }
        }
    }
}

#[test]
fn insurance_fits_age_and_status() {
    for pop in several() {
        let mut pensioners = 0;
        for p in pop.residents() {
            let age = p.age_on(p.status.changed_on().unwrap_or(pop.as_of));
            let si = &p.insurance;
            if age < 18 {
                assert!(
                    si.records
                        .iter()
                        .all(|r| r.scheme == Scheme::ResidentMedical)
                );
                assert!(si.bank.is_none());
            }
            if let Some(bank) = &si.bank {
                assert!((16..=19).contains(&bank.number.len()));
                assert!(
                    !format!("{bank:?}").contains(&bank.number),
                    "Debug masks the account"
                );
            } else {
                assert!(age < 18 || si.records.is_empty());
            }
            for r in &si.records {
                assert!(r.start >= p.birth_date && r.start <= pop.as_of);
                if let Some(last) = r.last_payment {
                    assert!(last >= super::dates::month_start(r.start) && last <= pop.as_of);
                }
                if r.monthly_pension_fen > 0 {
                    assert!(age >= 60 && p.status == ResidentStatus::Normal);
                    pensioners += 1;
                }
                if p.status != ResidentStatus::Normal {
                    assert_eq!(r.status.code(), "3", "leaving ends every scheme");
                }
            }
        }
        assert!(pensioners > 100);
    }
}
