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

use super::dates::{between, days_after, days_before, years_after, years_before, ymd};
use super::names::{self, pick};
use super::population::{
    COUNTY_CODE, COUNTY_NAME, Fertility, Gender, Household, HukouType, MaritalStatus, Person,
    Population, Relation, ResidentStatus, SocialInsurance, Township, Village,
};
use super::records::{self, Family};
use crate::subject::IdNumber;

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

struct Generator {
    rng: ChaCha8Rng,
    as_of: NaiveDate,
    used_ids: HashSet<String>,
    people: Vec<Person>,
    households: Vec<Household>,
    families: Vec<Family>,
    /// The hukou type of each person's household, by person index.
    hukou_of: Vec<HukouType>,
}

/// Where a household being built lives and what it shares.
struct Home {
    number: String,
    hukou: HukouType,
    ethnicity: &'static str,
    surname: &'static str,
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
            format!("{COUNTY_NAME}{}{}{building}栋{flat}号", township.name, village.name)
        } else {
            let (group, number) = (self.rng.random_range(1..=12), self.rng.random_range(1..=60));
            format!("{COUNTY_NAME}{}{}{group}组{number}号", township.name, village.name)
        };
        let home = Home {
            number: format!("{}{:02}{:06}", t + 1, (v + 1) % 100, self.households.len() + 1),
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
                self.add(home, Relation::Head, gender, birth, COUNTY_CODE, None);
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
                if let Some(head) = self.add(home, Relation::Head, gender, birth, COUNTY_CODE, None)
                {
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

    /// A married couple, optionally with children and the head's parents.
    fn couple(&mut self, home: &Home, husband_age: u32, children: bool, parents: bool) {
        let husband_birth = self.born_aged(husband_age);
        let gap_days = self.rng.random_range(-730..=2190_i64);
        let wife_birth = if gap_days >= 0 {
            days_after(husband_birth, gap_days.unsigned_abs())
        } else {
            days_before(husband_birth, gap_days.unsigned_abs())
        };
        let male_head = self.rng.random_bool(if children { 0.85 } else { 0.75 });
        let wife_region = if self.rng.random_bool(0.8) {
            COUNTY_CODE
        } else {
            pick(&mut self.rng, names::OUTSIDE_REGIONS)
        };
        let husband_surname = if male_head {
            home.surname
        } else {
            pick(&mut self.rng, names::SURNAMES)
        };
        let (husband, wife) = if male_head {
            let h = self.add(home, Relation::Head, Gender::Male, husband_birth, COUNTY_CODE, None);
            let w = self.add(home, Relation::Wife, Gender::Female, wife_birth, wife_region, Some(""));
            (h, w)
        } else {
            let w = self.add(home, Relation::Head, Gender::Female, wife_birth, COUNTY_CODE, None);
            let h = self.add(
                home,
                Relation::Husband,
                Gender::Male,
                husband_birth,
                wife_region,
                Some(husband_surname),
            );
            (h, w)
        };
        let kids = if children {
            self.children(home, Some(husband_birth), Some(wife_birth), husband_surname)
        } else {
            Vec::new()
        };
        let legal = years_after(husband_birth, 22).max(years_after(wife_birth, 20));
        let married = self.marriage_date(legal, kids.first().map(|&k| self.people[k].birth_date));
        for partner in [husband, wife].into_iter().flatten() {
            self.set_marital(partner, MaritalStatus::Married, Some(married));
        }
        // Some elderly couples have lost a partner: never the head, who keeps the 户.
        if !children && husband_age >= 68 && self.rng.random_bool(0.15) {
            let (gone, survivor) = if male_head { (wife, husband) } else { (husband, wife) };
            if let (Some(gone), Some(survivor)) = (gone, survivor) {
                self.decease(gone, years_after(self.people[gone].birth_date, 60));
                self.set_marital(survivor, MaritalStatus::Widowed, Some(married));
            }
        }
        self.families.push(Family {
            parents: [husband, wife].into_iter().flatten().collect(),
            married: true,
            children: kids,
        });
        if parents {
            let head = if male_head { husband } else { wife };
            if let Some(head) = head {
                self.head_parents(home, head);
            }
        }
    }

    /// A divorced or widowed head with children, sometimes with the head's parents.
    fn single_parent(&mut self, home: &Home) {
        let age = self.rng.random_range(28..=55);
        let gender = self.gender(0.4);
        let birth = self.born_aged(age);
        let Some(head) = self.add(home, Relation::Head, gender, birth, COUNTY_CODE, None) else {
            return;
        };
        // A single mother's children carry her surname or their absent father's.
        let surname = if gender == Gender::Male || self.rng.random_bool(0.5) {
            home.surname
        } else {
            pick(&mut self.rng, names::SURNAMES)
        };
        let (kids, legal) = match gender {
            Gender::Male => (self.children(home, Some(birth), None, surname), years_after(birth, 22)),
            Gender::Female => (self.children(home, None, Some(birth), surname), years_after(birth, 20)),
        };
        let married = self.marriage_date(legal, kids.first().map(|&k| self.people[k].birth_date));
        let marital = if self.rng.random_bool(0.65) {
            MaritalStatus::Divorced
        } else {
            MaritalStatus::Widowed
        };
        self.set_marital(head, marital, Some(married));
        self.families.push(Family {
            parents: vec![head],
            married: false,
            children: kids,
        });
        if self.rng.random_bool(0.2) {
            self.head_parents(home, head);
        }
    }

    /// Children of the given parents (at least one present), eldest first. Fathers are
    /// 23-45 years older than their children, mothers 21-42.
    fn children(
        &mut self,
        home: &Home,
        father: Option<NaiveDate>,
        mother: Option<NaiveDate>,
        surname: &'static str,
    ) -> Vec<usize> {
        let mut start = NaiveDate::MIN;
        let mut end = days_before(self.as_of, 20);
        if let Some(f) = father {
            start = start.max(years_after(f, 23));
            end = end.min(years_after(f, 45));
        }
        if let Some(m) = mother {
            start = start.max(years_after(m, 21));
            end = end.min(years_after(m, 42));
        }
        if start > end {
            return Vec::new();
        }
        let wanted = match (home.hukou, self.rng.random_range(0..100)) {
            (HukouType::NonAgricultural, 0..60) | (HukouType::Agricultural, 0..35) => 1,
            (HukouType::NonAgricultural, 60..95) | (HukouType::Agricultural, 35..80) => 2,
            _ => 3,
        };
        let mut kids = Vec::with_capacity(wanted);
        let mut birth = between(&mut self.rng, start, years_after(start, 8).min(end));
        while kids.len() < wanted && birth <= end {
            let gender = self.gender(0.5);
            let relation = match gender {
                Gender::Male => Relation::Son,
                Gender::Female => Relation::Daughter,
            };
            if let Some(kid) = self.add(home, relation, gender, birth, COUNTY_CODE, Some(surname)) {
                if birth <= years_before(self.as_of, 18) && self.rng.random_bool(0.15) {
                    let left = between(&mut self.rng, years_after(birth, 18), days_before(self.as_of, 1));
                    self.people[kid].status = ResidentStatus::MovedOut(left);
                }
                kids.push(kid);
            }
            birth = days_after(birth, self.rng.random_range(450..=2200));
        }
        kids
    }

    /// One or both parents of the head, living with them.
    fn head_parents(&mut self, home: &Home, head: usize) {
        let head_birth = self.people[head].birth_date;
        let mother_birth = days_before(
            years_before(head_birth, self.rng.random_range(22..=38)),
            self.rng.random_range(0..365),
        );
        let father_birth = years_before(mother_birth, self.rng.random_range(1..=5))
            .max(years_before(head_birth, 44));
        let both = self.rng.random_bool(0.6);
        let father_first = self.rng.random_bool(0.5);
        let mut parents = Vec::new();
        if both || father_first {
            parents.push(self.add(home, Relation::Father, Gender::Male, father_birth, COUNTY_CODE, None));
        }
        if both || !father_first {
            parents.push(self.add(home, Relation::Mother, Gender::Female, mother_birth, COUNTY_CODE, Some("")));
        }
        let parents: Vec<usize> = parents.into_iter().flatten().collect();
        let legal = years_after(father_birth, 22).max(years_after(mother_birth, 20));
        let married = self.marriage_date(legal, Some(head_birth));
        let marital = if both { MaritalStatus::Married } else { MaritalStatus::Widowed };
        for &p in &parents {
            self.set_marital(p, marital, Some(married));
        }
        let eldest = parents.iter().map(|&p| self.people[p].birth_date).min();
        if both && eldest.is_some_and(|b| b <= years_before(self.as_of, 75)) && self.rng.random_bool(0.3) {
            let gone = parents[self.rng.random_range(0..parents.len())];
            self.decease(gone, years_after(self.people[gone].birth_date, 70));
            for &p in parents.iter().filter(|&&p| p != gone) {
                self.set_marital(p, MaritalStatus::Widowed, Some(married));
            }
        }
        self.families.push(Family {
            parents,
            married: both,
            children: vec![head],
        });
    }

    /// Marks a person deceased on a recent day after `not_before`.
    fn decease(&mut self, person: usize, not_before: NaiveDate) {
        let from = not_before.max(years_before(self.as_of, 6));
        let day = between(&mut self.rng, from, days_before(self.as_of, 10));
        self.people[person].status = ResidentStatus::Deceased(day);
    }

    /// A wedding on or after `legal`, some months before the first child if any.
    fn marriage_date(&mut self, legal: NaiveDate, first_child: Option<NaiveDate>) -> NaiveDate {
        let latest = match first_child {
            Some(child) => days_before(child, self.rng.random_range(300..=1500)),
            None => years_after(legal, self.rng.random_range(0..=6)).min(days_before(self.as_of, 30)),
        };
        between(&mut self.rng, legal, latest).max(legal)
    }

    fn set_marital(&mut self, person: usize, status: MaritalStatus, married: Option<NaiveDate>) {
        let record = &mut self.people[person].fertility;
        record.marital_status = status;
        record.marriage_date = married;
    }

    fn gender(&mut self, male_share: f64) -> Gender {
        if self.rng.random_bool(male_share) {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    fn born_aged(&mut self, age: u32) -> NaiveDate {
        let birthday = years_before(self.as_of, age);
        days_before(birthday, self.rng.random_range(1..365))
    }

    fn given_name(&mut self, gender: Gender) -> String {
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

    /// Adds a person with a fresh, unique ID. `surname`: `None` for the household's,
    /// `Some("")` for a random one (a spouse or the head's mother), else that one.
    fn add(
        &mut self,
        home: &Home,
        relation: Relation,
        gender: Gender,
        birth: NaiveDate,
        region: &str,
        surname: Option<&str>,
    ) -> Option<usize> {
        let surname = match surname {
            None => home.surname,
            Some("") => pick(&mut self.rng, names::SURNAMES),
            Some(s) => s,
        };
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
