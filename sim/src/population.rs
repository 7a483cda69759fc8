//! The synthetic county's residents: the record types the three simulated departments
//! read from, and lookups over them.
//!
//! This module owns the shape of the data and its indexes; how the data is invented is
//! in `generate.rs`, and how each department shows it on the wire is in its own module.
//! Every value here is made up, deterministic from a seed; nothing describes a real
//! person. Fields are `pub` so tests and the demo can read them.

use std::collections::HashMap;
use std::fmt;

use chrono::{Datelike, NaiveDate};

pub use super::codes::{
    Gender, HukouType, InsuranceStatus, MaritalStatus, Relation, ResidentStatus, Scheme,
};
use connectors::subject::IdNumber;

/// The seed the demo uses.
pub const DEMO_SEED: u64 = 2026;
/// The number of residents the demo asks for.
pub const DEMO_RESIDENTS: usize = 12_000;
/// The made-up county code (province 13, prefecture 99 does not exist).
pub const COUNTY_CODE: &str = "139901";
/// The made-up county name.
pub const COUNTY_NAME: &str = "示范县";

/// One scheme a person is (or was) insured under.
#[derive(Debug, Clone, PartialEq)]
pub struct InsuranceRecord {
    pub scheme: Scheme,
    pub status: InsuranceStatus,
    pub start: NaiveDate,
    pub contribution_months: u32,
    /// First day of the last month paid for, or `None` if nothing was ever paid.
    pub last_payment: Option<NaiveDate>,
    /// Monthly pension in fen (0.01 yuan); non-zero only for pensioners aged 60 or more.
    pub monthly_pension_fen: u64,
}

impl InsuranceRecord {
    /// The last month paid for as "YYYYMM", or "" if never.
    pub fn last_payment_month(&self) -> String {
        self.last_payment
            .map(|d| format!("{:04}{:02}", d.year(), d.month()))
            .unwrap_or_default()
    }

    /// The monthly pension in yuan with two decimals, e.g. "1850.20".
    pub fn pension_yuan(&self) -> String {
        format!(
            "{}.{:02}",
            self.monthly_pension_fen / 100,
            self.monthly_pension_fen % 100
        )
    }
}

/// The account benefits are paid into. Never leaves the 人社 department; `Debug` masks it.
#[derive(Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub number: String,
    pub bank: String,
}

impl fmt::Debug for BankAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self.number.get(self.number.len().saturating_sub(4)..);
        f.debug_struct("BankAccount")
            .field("number", &format_args!("****{}", tail.unwrap_or("")))
            .field("bank", &self.bank)
            .finish()
    }
}

/// What the 人社 department holds about a person.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SocialInsurance {
    pub records: Vec<InsuranceRecord>,
    /// Present for insured people aged 16 or more.
    pub bank: Option<BankAccount>,
}

/// A name and ID pair, as the 计生 system stores a spouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRef {
    pub name: String,
    pub id: IdNumber,
}

/// A child as listed in a parent's births record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRecord {
    pub name: String,
    pub id: IdNumber,
    pub gender: Gender,
    pub birth_date: NaiveDate,
    /// 1 for the eldest listed child.
    pub birth_order: u32,
}

/// A 生育登记 (birth registration), made before the child was born.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthRegistration {
    /// e.g. "SYDJ139901-2016-000123"
    pub number: String,
    pub date: NaiveDate,
    pub birth_order: u32,
}

/// A 独生子女父母光荣证 (single-child certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleChildCertificate {
    pub number: String,
    pub issued: NaiveDate,
}

/// What the 卫健委 department holds about a person. People under 20 have an
/// unmarried record with empty lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Fertility {
    pub marital_status: MaritalStatus,
    pub marriage_date: Option<NaiveDate>,
    pub spouse: Option<PersonRef>,
    pub children: Vec<ChildRecord>,
    pub registrations: Vec<BirthRegistration>,
    pub single_child_certificate: Option<SingleChildCertificate>,
    /// 遗传病史: "无" for most people. Health data; never leaves the department.
    pub hereditary_note: String,
}

impl Default for Fertility {
    fn default() -> Self {
        Self {
            marital_status: MaritalStatus::Unmarried,
            marriage_date: None,
            spouse: None,
            children: Vec::new(),
            registrations: Vec::new(),
            single_child_certificate: None,
            hereditary_note: "无".to_owned(),
        }
    }
}

/// One resident, with everything the three departments know about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: IdNumber,
    pub name: String,
    pub gender: Gender,
    /// GB 3304 code, "01" for 汉族.
    pub ethnicity: &'static str,
    pub birth_date: NaiveDate,
    /// The 户号 of the household the person is (or was last) registered in.
    pub household: String,
    pub relation: Relation,
    pub status: ResidentStatus,
    pub insurance: SocialInsurance,
    pub fertility: Fertility,
}

impl Person {
    /// Whole years of age on `date`.
    pub fn age_on(&self, date: NaiveDate) -> u32 {
        date.years_since(self.birth_date).unwrap_or(0)
    }
}

/// A registered household (户).
#[derive(Debug, Clone, PartialEq)]
pub struct Household {
    /// 户号: nine digits, unique.
    pub number: String,
    pub hukou_type: HukouType,
    /// Nine-digit township code.
    pub township: String,
    /// Twelve-digit village (村/社区) code.
    pub village: String,
    /// e.g. "示范县东岭镇桃园村3组12号"
    pub address: String,
    /// Everyone registered here, including those moved out or deceased; the head first.
    pub members: Vec<IdNumber>,
}

/// A village committee (村委会, code 2xx) or community (社区居委会, code 0xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Village {
    pub code: String,
    pub name: String,
}

/// A township-level division (街道/镇/乡) with its villages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Township {
    pub code: String,
    pub name: String,
    pub villages: Vec<Village>,
}

/// Kinds of person [`Population::sample`] can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleKind {
    /// Married, with at least one child, alive and registered here.
    MarriedParent,
    /// Drawing a pension, registered here.
    Pensioner,
    /// A child of the head under 18, registered here.
    Child,
    /// Moved the registration out.
    MovedOut,
    /// Deregistered as deceased.
    Deceased,
}

/// The whole synthetic county.
#[derive(Clone)]
pub struct Population {
    pub county_code: &'static str,
    pub county_name: &'static str,
    /// The day the data describes; every date in it is on or before this day.
    pub as_of: NaiveDate,
    pub townships: Vec<Township>,
    pub households: Vec<Household>,
    pub people: Vec<Person>,
    by_id: HashMap<String, usize>,
    by_household: HashMap<String, usize>,
}

impl fmt::Debug for Population {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Population")
            .field("county_code", &self.county_code)
            .field("as_of", &self.as_of)
            .field("townships", &self.townships.len())
            .field("households", &self.households.len())
            .field("people", &self.people.len())
            .finish_non_exhaustive()
    }
}

impl Population {
    /// Invents a county of at least `min_residents` people, the same for the same seed
    /// on every platform. The demo uses [`DEMO_SEED`] and [`DEMO_RESIDENTS`].
    pub fn generate(seed: u64, min_residents: usize) -> Population {
        super::generate::generate(seed, min_residents)
    }

    /// The demo county: [`DEMO_SEED`], [`DEMO_RESIDENTS`].
    pub fn demo() -> Population {
        Self::generate(DEMO_SEED, DEMO_RESIDENTS)
    }

    pub(crate) fn from_parts(
        as_of: NaiveDate,
        townships: Vec<Township>,
        households: Vec<Household>,
        people: Vec<Person>,
    ) -> Population {
        let by_id = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str().to_owned(), i))
            .collect();
        let by_household = households
            .iter()
            .enumerate()
            .map(|(i, h)| (h.number.clone(), i))
            .collect();
        Population {
            county_code: COUNTY_CODE,
            county_name: COUNTY_NAME,
            as_of,
            townships,
            households,
            people,
            by_id,
            by_household,
        }
    }

    /// The resident with this ID number (a lowercase x is accepted).
    pub fn person(&self, id: &str) -> Option<&Person> {
        let index = match self.by_id.get(id) {
            Some(index) => Some(index),
            None if id.ends_with('x') => self.by_id.get(&id.to_ascii_uppercase()),
            None => None,
        };
        index.map(|&i| &self.people[i])
    }

    /// The household with this 户号.
    pub fn household(&self, number: &str) -> Option<&Household> {
        self.by_household.get(number).map(|&i| &self.households[i])
    }

    /// The household this resident is registered in.
    pub fn household_of(&self, id: &str) -> Option<&Household> {
        self.household(&self.person(id)?.household)
    }

    /// The members of a household, head first.
    pub fn members<'a>(&'a self, household: &'a Household) -> impl Iterator<Item = &'a Person> {
        household
            .members
            .iter()
            .filter_map(|id| self.person(id.as_str()))
    }

    /// The township and village a household is in.
    pub fn place_of(&self, household: &Household) -> Option<(&Township, &Village)> {
        let township = self
            .townships
            .iter()
            .find(|t| t.code == household.township)?;
        let village = township
            .villages
            .iter()
            .find(|v| v.code == household.village)?;
        Some((township, village))
    }

    /// Everyone, in a stable order.
    pub fn residents(&self) -> impl Iterator<Item = &Person> {
        self.people.iter()
    }

    /// The number of residents.
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// Whether there is nobody (only for `min_residents == 0`).
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// The first resident (in [`Population::residents`] order) of the given kind.
    pub fn sample(&self, kind: SampleKind) -> Option<&Person> {
        self.people.iter().find(|p| self.is_kind(p, kind))
    }

    /// The first person of this kind registered in a household of `township`.
    pub fn sample_in(&self, kind: SampleKind, township: &str) -> Option<&Person> {
        self.people.iter().find(|p| {
            self.is_kind(p, kind)
                && self
                    .household(&p.household)
                    .is_some_and(|h| h.township == township)
        })
    }

    fn is_kind(&self, p: &Person, kind: SampleKind) -> bool {
        let normal = p.status == ResidentStatus::Normal;
        match kind {
            SampleKind::MarriedParent => {
                normal
                    && p.fertility.marital_status == MaritalStatus::Married
                    && !p.fertility.children.is_empty()
            }
            SampleKind::Pensioner => {
                normal
                    && p.insurance
                        .records
                        .iter()
                        .any(|r| r.monthly_pension_fen > 0)
            }
            SampleKind::Child => normal && p.relation.is_child() && p.age_on(self.as_of) < 18,
            SampleKind::MovedOut => matches!(p.status, ResidentStatus::MovedOut(_)),
            SampleKind::Deceased => matches!(p.status, ResidentStatus::Deceased(_)),
        }
    }
}
