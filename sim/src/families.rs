//! The shapes a household can take: couples with or without children, single parents,
//! the head's parents living with them; with plausible ages, marriages and deaths.
//!
//! These are `Generator` methods split out of `generate.rs`, which owns the run, the
//! places and the individual people (names and ID numbers).

use chrono::NaiveDate;
use rand::Rng;

use super::dates::{between, days_after, days_before, years_after, years_before};
use super::generate::{Generator, Home};
use super::names::{self, pick};
use super::population::{COUNTY_CODE, Gender, HukouType, MaritalStatus, Relation, ResidentStatus};
use super::records::Family;

impl Generator {
    /// A married couple, optionally with children and the head's parents.
    pub(super) fn couple(&mut self, home: &Home, husband_age: u32, children: bool, parents: bool) {
        let husband_birth = self.born_aged(husband_age);
        let gap_days = self.rng.random_range(-730..=2190_i64);
        let wife_birth = if gap_days >= 0 {
            days_after(husband_birth, gap_days.unsigned_abs())
        } else {
            days_before(husband_birth, gap_days.unsigned_abs())
        }
        // Old enough to have married (at 20) at least a year ago.
        .min(years_before(self.as_of, 21));
        let male_head = self.rng.random_bool(if children { 0.85 } else { 0.75 });
        let wife_region = if self.rng.random_bool(0.8) {
            COUNTY_CODE
        } else {
            pick(&mut self.rng, names::OUTSIDE_REGIONS)
        };
        let (husband_surname, wife_surname) = if male_head {
            (home.surname, self.random_surname())
        } else {
            (self.random_surname(), home.surname)
        };
        let (husband, wife) = if male_head {
            let h = self.add(
                home,
                Relation::Head,
                Gender::Male,
                husband_birth,
                COUNTY_CODE,
                home.surname,
            );
            let w = self.add(
                home,
                Relation::Wife,
                Gender::Female,
                wife_birth,
                wife_region,
                wife_surname,
            );
            (h, w)
        } else {
            let w = self.add(
                home,
                Relation::Head,
                Gender::Female,
                wife_birth,
                COUNTY_CODE,
                home.surname,
            );
            let h = self.add(
                home,
                Relation::Husband,
                Gender::Male,
                husband_birth,
                wife_region,
                husband_surname,
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
            let (gone, survivor) = if male_head {
                (wife, husband)
            } else {
                (husband, wife)
            };
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
    pub(super) fn single_parent(&mut self, home: &Home) {
        let age = self.rng.random_range(28..=55);
        let gender = self.gender(0.4);
        let birth = self.born_aged(age);
        let Some(head) = self.add(
            home,
            Relation::Head,
            gender,
            birth,
            COUNTY_CODE,
            home.surname,
        ) else {
            return;
        };
        // A single mother's children carry her surname or their absent father's.
        let surname = if gender == Gender::Male || self.rng.random_bool(0.5) {
            home.surname
        } else {
            self.random_surname()
        };
        let (kids, legal) = match gender {
            Gender::Male => (
                self.children(home, Some(birth), None, surname),
                years_after(birth, 22),
            ),
            Gender::Female => (
                self.children(home, None, Some(birth), surname),
                years_after(birth, 20),
            ),
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
            if let Some(kid) = self.add(home, relation, gender, birth, COUNTY_CODE, surname) {
                if birth <= years_before(self.as_of, 18) && self.rng.random_bool(0.15) {
                    let left = between(
                        &mut self.rng,
                        years_after(birth, 18),
                        days_before(self.as_of, 1),
                    );
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
        // Nobody in the household is much older than 95.
        let head_age = self.people[head].age_on(self.as_of);
        let oldest_gap = 38.min(90_u32.saturating_sub(head_age)).max(22);
        let mother_birth = days_before(
            years_before(head_birth, self.rng.random_range(22..=oldest_gap)),
            self.rng.random_range(0..365),
        );
        let father_birth = years_before(mother_birth, self.rng.random_range(1..=5))
            .max(years_before(head_birth, 44));
        let both = self.rng.random_bool(0.6);
        let mother_surname = self.random_surname();
        let father_first = self.rng.random_bool(0.5);
        let mut parents = Vec::new();
        if both || father_first {
            parents.push(self.add(
                home,
                Relation::Father,
                Gender::Male,
                father_birth,
                COUNTY_CODE,
                home.surname,
            ));
        }
        if both || !father_first {
            parents.push(self.add(
                home,
                Relation::Mother,
                Gender::Female,
                mother_birth,
                COUNTY_CODE,
                mother_surname,
            ));
        }
        let parents: Vec<usize> = parents.into_iter().flatten().collect();
        let legal = years_after(father_birth, 22).max(years_after(mother_birth, 20));
        let married = self.marriage_date(legal, Some(head_birth));
        let marital = if both {
            MaritalStatus::Married
        } else {
            MaritalStatus::Widowed
        };
        for &p in &parents {
            self.set_marital(p, marital, Some(married));
        }
        let eldest = parents.iter().map(|&p| self.people[p].birth_date).min();
        if both
            && eldest.is_some_and(|b| b <= years_before(self.as_of, 75))
            && self.rng.random_bool(0.3)
        {
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
            None => {
                years_after(legal, self.rng.random_range(0..=6)).min(days_before(self.as_of, 30))
            }
        };
        between(&mut self.rng, legal, latest).max(legal)
    }

    pub(super) fn set_marital(
        &mut self,
        person: usize,
        status: MaritalStatus,
        married: Option<NaiveDate>,
    ) {
        let record = &mut self.people[person].fertility;
        record.marital_status = status;
        record.marriage_date = married;
    }
}
