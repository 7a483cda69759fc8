//! Invents the synthetic county: townships and villages, households, and the people in
//! them with unique, valid ID numbers.
//!
//! Everything is drawn from one `ChaCha8Rng` (stable across platforms), so a seed
//! always gives the same county. Insurance and births records are derived from the
//! households afterwards, in `records.rs`.

use std::collections::HashSet;

use chrono::NaiveDate;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dates::{days_before, years_after, years_before, ymd};
use super::names::{self, pick};
use super::population::{
    COUNTY_CODE, COUNTY_NAME, Fertility, Gender, Household, HukouType, MaritalStatus, Person,
    Population, Relation, ResidentStatus, SocialInsurance, Township, Village,
};
use super::records::{self, Family};
use connectors::subject::IdNumber;

/// The day the synthetic data describes (or today, if the clock is earlier).
const AS_OF: NaiveDate = match NaiveDate::from_ymd_opt(2026, 10, 31) {
    Some(date) => date,
    None => NaiveDate::MIN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// 街道: urban, mostly communities and 非农业 households.
    Subdistrict,
    /// 镇: a small town centre and villages.
    Town,
    /// 乡: villages only.
    Rural,
}

/// The four townships: code, name, kind, share of households (percent).
const TOWNSHIPS: [(&str, &str, Kind, u32); 4] = [
    ("139901001", "城关街道", Kind::Subdistrict, 36),
    ("139901101", "东岭镇", Kind::Town, 30),
    ("139901201", "西河乡", Kind::Rural, 18),
    ("139901202", "南坪乡", Kind::Rural, 16),
];

pub(crate) fn generate(seed: u64, min_residents: usize) -> Population {
    let today = chrono::Utc::now().date_naive();
    let mut g = Generator {
        rng: ChaCha8Rng::seed_from_u64(seed),
        as_of: AS_OF.min(today),
        used_ids: HashSet::with_capacity(min_residents * 2),
        people: Vec::with_capacity(min_residents + 8),
        households: Vec::new(),
        families: Vec::new(),
        hukou_of: Vec::new(),
    };
    let townships = g.places();
    while g.people.len() < min_residents {
        g.household(&townships);
    }
    let Generator {
        mut rng,
        as_of,
        mut people,
        households,
        families,
        hukou_of,
        ..
    } = g;
    records::attach(&mut rng, as_of, &mut people, &hukou_of, &families);
    Population::from_parts(as_of, townships, households, people)
}

/// The state of one generation run; `families.rs` adds the household shapes.
pub(super) struct Generator {
    pub(super) rng: ChaCha8Rng,
    pub(super) as_of: NaiveDate,
    used_ids: HashSet<String>,
    pub(super) people: Vec<Person>,
    households: Vec<Household>,
    pub(super) families: Vec<Family>,
    /// The hukou type of each person's household, by person index.
    hukou_of: Vec<HukouType>,
}

/// Where a household being built lives and what it shares.
pub(super) struct Home {
    pub(super) number: String,
    pub(super) hukou: HukouType,
    pub(super) ethnicity: &'static str,
    pub(super) surname: &'static str,
}

impl Generator {
    fn places(&mut self) -> Vec<Township> {
        let mut villages = names::VILLAGE_STEMS.to_vec();
        let mut communities = names::COMMUNITY_STEMS.to_vec();
        villages.shuffle(&mut self.rng);
        communities.shuffle(&mut self.rng);
        TOWNSHIPS
            .iter()
            .map(|&(code, name, kind, _)| {
                let total: usize = self.rng.random_range(5..=12);
                let urban = match kind {
                    Kind::Subdistrict => total - self.rng.random_range(1..=2),
                    Kind::Town => self.rng.random_range(1..=2),
                    Kind::Rural => 0,
                };
                let mut list = Vec::with_capacity(total);
                for n in 0..total {
                    let (number, stem, suffix) = if n < urban {
                        (n + 1, communities.pop(), "社区")
                    } else {
                        (200 + n - urban + 1, villages.pop(), "村")
                    };
                    list.push(Village {
                        code: format!("{code}{number:03}"),
                        name: format!("{}{suffix}", stem.unwrap_or("新建")),
                    });
                }
                Township {
                    code: code.to_owned(),
                    name: name.to_owned(),
                    villages: list,
                }
            })
            .collect()
    }

    fn household(&mut self, townships: &[Township]) {
        let mut roll = self.rng.random_range(0..100);
        let mut t = 0;
        while t + 1 < TOWNSHIPS.len() && roll >= TOWNSHIPS[t].3 {
            roll -= TOWNSHIPS[t].3;
            t += 1;
        }
        let township = &townships[t];
        let v = self.rng.random_range(0..township.villages.len());
        let village = &township.villages[v];
        let community = village.code.get(9..).is_some_and(|n| n < "200");
        let non_agricultural = match (TOWNSHIPS[t].2, community) {
            (Kind::Subdistrict, _) => 0.9,
            (Kind::Town, true) => 0.6,
            (Kind::Town, false) => 0.15,
            (Kind::Rural, _) => 0.08,
        };
        let hukou = if self.rng.random_bool(non_agricultural) {
            HukouType::NonAgricultural
        } else {
            HukouType::Agricultural
        };
        let address = if community {
            let (building, flat) = (self.rng.random_range(1..=30), self.rng.random_range(1..=24));
            format!(
                "{COUNTY_NAME}{}{}{building}栋{flat}号",
                township.name, village.name
            )
        } else {
            let (group, number) = (self.rng.random_range(1..=12), self.rng.random_range(1..=60));
            format!(
                "{COUNTY_NAME}{}{}{group}组{number}号",
                township.name, village.name
            )
        };
        let home = Home {
            number: format!(
                "{}{:02}{:06}",
                t + 1,
                (v + 1) % 100,
                self.households.len() + 1
            ),
            hukou,
            ethnicity: names::weighted(&mut self.rng, names::ETHNICITIES),
            surname: pick(&mut self.rng, names::SURNAMES),
        };
        let first = self.people.len();
        self.members(&home);
        let members = self.people[first..].iter().map(|p| p.id.clone()).collect();
        self.hukou_of.resize(self.people.len(), hukou);
        self.households.push(Household {
            number: home.number,
            hukou_type: hukou,
            township: township.code.clone(),
            village: village.code.clone(),
            address,
            members,
        });
    }

    /// Decides the shape of the household and adds its members, head first.
    fn members(&mut self, home: &Home) {
        let shape = self.rng.random_range(0..100);
        match shape {
            0..6 => {
                let age = self.rng.random_range(20..=34);
                let gender = self.gender(0.6);
                let birth = self.born_aged(age);
                self.add(
                    home,
                    Relation::Head,
                    gender,
                    birth,
                    COUNTY_CODE,
                    home.surname,
                );
            }
            6..11 => {
                let age = self.rng.random_range(66..=90);
                let gender = self.gender(0.35);
                let birth = self.born_aged(age);
                let marital = if self.rng.random_bool(0.9) {
                    MaritalStatus::Widowed
                } else {
                    MaritalStatus::Divorced
                };
                if let Some(head) = self.add(
                    home,
                    Relation::Head,
                    gender,
                    birth,
                    COUNTY_CODE,
                    home.surname,
                ) {
                    let married = years_after(birth, self.rng.random_range(21..=27));
                    self.set_marital(head, marital, Some(married));
                }
            }
            11..23 => {
                let age = self.rng.random_range(62..=88);
                self.couple(home, age, false, false);
            }
            23..90 => {
                let age = self.rng.random_range(25..=60);
                let with_parents = age <= 58 && self.rng.random_bool(0.3);
                self.couple(home, age, true, with_parents);
            }
            _ => self.single_parent(home),
        }
    }

    pub(super) fn gender(&mut self, male_share: f64) -> Gender {
        if self.rng.random_bool(male_share) {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    pub(super) fn born_aged(&mut self, age: u32) -> NaiveDate {
        let birthday = years_before(self.as_of, age);
        days_before(birthday, self.rng.random_range(1..365))
    }

    pub(super) fn random_surname(&mut self) -> &'static str {
        pick(&mut self.rng, names::SURNAMES)
    }

    pub(super) fn given_name(&mut self, gender: Gender) -> String {
        let list = match gender {
            Gender::Male => names::GIVEN_MALE,
            Gender::Female => names::GIVEN_FEMALE,
        };
        let mut name = pick(&mut self.rng, list).to_string();
        if self.rng.random_bool(0.7) {
            name.push_str(pick(&mut self.rng, list));
        }
        name
    }

    /// Adds a person with a fresh, unique ID.
    pub(super) fn add(
        &mut self,
        home: &Home,
        relation: Relation,
        gender: Gender,
        birth: NaiveDate,
        region: &str,
        surname: &str,
    ) -> Option<usize> {
        let name = format!("{surname}{}", self.given_name(gender));
        let id = self.fresh_id(region, birth, gender)?;
        let blood = !matches!(relation, Relation::Wife | Relation::Husband);
        let ethnicity = if blood || self.rng.random_bool(0.9) {
            home.ethnicity
        } else {
            names::weighted(&mut self.rng, names::ETHNICITIES)
        };
        self.people.push(Person {
            birth_date: id.birth_date(),
            id,
            name,
            gender,
            ethnicity,
            household: home.number.clone(),
            relation,
            status: ResidentStatus::Normal,
            insurance: SocialInsurance::default(),
            fertility: Fertility::default(),
        });
        Some(self.people.len() - 1)
    }

    /// An ID not used before: a random sequence number of the right parity, moving the
    /// birth date back a day in the (unlikely) case that one day is crowded.
    fn fresh_id(&mut self, region: &str, birth: NaiveDate, gender: Gender) -> Option<IdNumber> {
        let parity = u16::from(gender == Gender::Male);
        let floor = ymd(1900, 1, 1);
        for attempt in 0..400_u64 {
            let day = days_before(birth, attempt / 20).max(floor);
            let seq = self.rng.random_range(0..500_u16) * 2 + parity;
            let Ok(id) = IdNumber::build(region, day, seq) else {
                continue;
            };
            if self.used_ids.insert(id.as_str().to_owned()) {
                return Some(id);
            }
        }
        None
    }
}
