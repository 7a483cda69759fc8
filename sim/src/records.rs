//! Derives each resident's department records from their household: social insurance
//! (人社) and births (卫健委).
//!
//! Runs after `generate.rs` has placed everyone in a household, so a births record can
//! only list children and spouses who really are in the same household.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use rand::Rng;

use super::dates::{
    days_after, days_before, month_start, months_between, years_after, years_before, ymd,
};
use super::names::{self, pick};
use super::population::{
    BankAccount, BirthRegistration, COUNTY_CODE, ChildRecord, HukouType, InsuranceRecord,
    InsuranceStatus, MaritalStatus, Person, PersonRef, ResidentStatus, Scheme,
    SingleChildCertificate, SocialInsurance,
};

/// Parents (one or two) and their children living in one household.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    /// Indexes into the people list.
    pub(crate) parents: Vec<usize>,
    /// Whether the two parents are (or were, until one died) married to each other.
    pub(crate) married: bool,
    pub(crate) children: Vec<usize>,
}

/// Fills in every person's insurance and births records.
pub(crate) fn attach<R: Rng>(
    rng: &mut R,
    as_of: NaiveDate,
    people: &mut [Person],
    hukou_of: &[HukouType],
    families: &[Family],
) {
    let mut numbers = Numbers::default();
    for family in families {
        births(rng, people, family, &mut numbers);
    }
    for (person, &hukou) in people.iter_mut().zip(hukou_of) {
        if rng.random_bool(0.05) {
            person.fertility.hereditary_note = pick(rng, names::HEREDITARY_NOTES).to_string();
        }
        person.insurance = insurance(rng, person, hukou, as_of);
    }
}

/// Counters for registration and certificate numbers.
#[derive(Debug, Default)]
struct Numbers {
    registrations: HashMap<i32, u32>,
    certificates: u32,
}

/// The births records of one family's parents.
fn births<R: Rng>(rng: &mut R, people: &mut [Person], family: &Family, numbers: &mut Numbers) {
    let mut kids = family.children.clone();
    kids.sort_by_key(|&k| people[k].birth_date);
    let children: Vec<ChildRecord> = kids
        .iter()
        .zip(1..)
        .map(|(&k, order)| ChildRecord {
            name: people[k].name.clone(),
            id: people[k].id.clone(),
            gender: people[k].gender,
            birth_date: people[k].birth_date,
            birth_order: order,
        })
        .collect();
    // Registration before birth became the rule in 2016.
    let registrations: Vec<BirthRegistration> = children
        .iter()
        .filter(|c| c.birth_date >= ymd(2016, 1, 1))
        .map(|c| {
            let date = days_before(c.birth_date, rng.random_range(90..=240));
            let seq = numbers.registrations.entry(date.year()).or_insert(0);
            *seq += 1;
            BirthRegistration {
                number: format!("SYDJ{COUNTY_CODE}-{}-{:06}", date.year(), seq),
                date,
                birth_order: c.birth_order,
            }
        })
        .collect();
    let certificate = match children.as_slice() {
        [only]
            if (ymd(1980, 1, 1)..=ymd(2015, 12, 31)).contains(&only.birth_date)
                && rng.random_bool(0.45) =>
        {
            let issued =
                days_after(only.birth_date, rng.random_range(90..=1400)).min(ymd(2015, 12, 31));
            numbers.certificates += 1;
            Some(SingleChildCertificate {
                number: format!(
                    "DSZN{COUNTY_CODE}-{}-{:05}",
                    issued.year(),
                    numbers.certificates
                ),
                issued,
            })
        }
        _ => None,
    };
    for (i, &parent) in family.parents.iter().enumerate() {
        let spouse = match family.parents.as_slice() {
            [a, b] if family.married => Some(if i == 0 { *b } else { *a }),
            _ => None,
        }
        .filter(|_| people[parent].fertility.marital_status == MaritalStatus::Married)
        .map(|s| PersonRef {
            name: people[s].name.clone(),
            id: people[s].id.clone(),
        });
        let record = &mut people[parent].fertility;
        record.spouse = spouse;
        record.children = children.clone();
        record.registrations = registrations.clone();
        record.single_child_certificate = certificate.clone();
    }
}

/// One insurance record; `last` is the last month paid for (if any).
fn record(
    scheme: Scheme,
    status: InsuranceStatus,
    start: NaiveDate,
    last: Option<NaiveDate>,
    months: u32,
    pension_fen: u64,
) -> InsuranceRecord {
    InsuranceRecord {
        scheme,
        status,
        start,
        contribution_months: months,
        last_payment: last.map(month_start),
        monthly_pension_fen: pension_fen,
    }
}

/// What 人社 holds about one person, chosen by age, hukou type and status.
fn insurance<R: Rng>(
    rng: &mut R,
    p: &Person,
    hukou: HukouType,
    as_of: NaiveDate,
) -> SocialInsurance {
    let end = p.status.changed_on().unwrap_or(as_of);
    let live = p.status == ResidentStatus::Normal;
    let age = end.years_since(p.birth_date).unwrap_or(0);
    let mut records = Vec::new();
    if age < 18 {
        if rng.random_bool(0.95) {
            records.push(resident_medical(p.birth_date, end, live));
        }
        return SocialInsurance {
            records,
            bank: None,
        };
    }
    if rng.random_bool(0.04) {
        return SocialInsurance::default();
    }
    let employee = rng.random_bool(match hukou {
        HukouType::NonAgricultural => 0.7,
        HukouType::Agricultural => 0.25,
    });
    if age >= 60 {
        if employee {
            retired_employee(rng, &mut records, p.birth_date, live);
        } else {
            if rng.random_bool(0.92) {
                records.push(resident_pension_drawn(rng, p.birth_date, end, live));
            }
            records.push(resident_medical(p.birth_date, end, live));
        }
    } else if age < 23 && rng.random_bool(0.5) {
        records.push(resident_medical(p.birth_date, end, live));
    } else if employee {
        let hired = years_after(p.birth_date, rng.random_range(18..=24));
        if hired < years_before(end, 1) {
            working_employee(rng, &mut records, hired, end, live);
        } else {
            // Not working long enough to be on an employer's books: still in school.
            records.push(resident_medical(p.birth_date, end, live));
        }
    } else {
        records.push(resident_pension_paying(rng, p.birth_date, end, live));
        records.push(resident_medical(p.birth_date, end, live));
    }
    let (bank, code) = pick(rng, names::BANKS);
    let length = rng.random_range(16..=19);
    let mut number = format!("99{code}");
    while number.len() < length {
        number.push(char::from(b'0' + rng.random_range(0..10_u8)));
    }
    SocialInsurance {
        records,
        bank: Some(BankAccount {
            number,
            bank: bank.to_owned(),
        }),
    }
}

/// The status of a scheme someone still pays into, unless they left or died.
fn active(live: bool) -> InsuranceStatus {
    if live {
        InsuranceStatus::Paying
    } else {
        InsuranceStatus::Terminated
    }
}

/// 390, paid yearly each January; since 2016, or birth if later.
fn resident_medical(birth: NaiveDate, end: NaiveDate, live: bool) -> InsuranceRecord {
    let start = birth.max(ymd(2016, 1, 1)).min(end);
    let last = ymd(end.year(), 1, 1).max(month_start(start));
    let months = months_between(start, last) + 1;
    record(
        Scheme::ResidentMedical,
        active(live),
        start,
        Some(last),
        months,
        0,
    )
}

/// 110, 310, and usually 210 and 410 for someone of working age hired on `hired`.
fn working_employee<R: Rng>(
    rng: &mut R,
    records: &mut Vec<InsuranceRecord>,
    hired: NaiveDate,
    end: NaiveDate,
    live: bool,
) {
    let (status, last) = if !live {
        (InsuranceStatus::Terminated, month_start(end))
    } else if rng.random_bool(0.85) {
        (InsuranceStatus::Paying, month_start(days_before(end, 31)))
    } else {
        let stopped = days_before(end, rng.random_range(60..=1000)).max(hired);
        (InsuranceStatus::Suspended, month_start(stopped))
    };
    let coverage = rng.random_range(85..=100);
    let mut add = |scheme, introduced: NaiveDate| {
        let start = hired.max(introduced).min(last);
        let months = ((months_between(start, last) + 1) * coverage / 100).max(1);
        records.push(record(scheme, status, start, Some(last), months, 0));
    };
    add(Scheme::EmployeePension, ymd(1995, 1, 1));
    add(Scheme::EmployeeMedical, ymd(1999, 1, 1));
    if rng.random_bool(0.9) {
        add(Scheme::Unemployment, ymd(1999, 1, 1));
    }
    if rng.random_bool(0.75) {
        add(Scheme::WorkInjury, ymd(2004, 1, 1));
    }
}

/// A retired employee: pension and medical records stop at 60; the pension is paid.
fn retired_employee<R: Rng>(
    rng: &mut R,
    records: &mut Vec<InsuranceRecord>,
    birth: NaiveDate,
    live: bool,
) {
    // Years worked before the 1990s reform count as (deemed) contribution months.
    let hired = years_after(birth, rng.random_range(18..=25));
    let last = month_start(days_before(years_after(birth, 60), 1));
    let status = if live {
        InsuranceStatus::Suspended
    } else {
        InsuranceStatus::Terminated
    };
    let pension = if live {
        rng.random_range(260_000..=480_000)
    } else {
        0
    };
    let coverage = rng.random_range(90..=100);
    let months = |start| (months_between(start, last) + 1) * coverage / 100;
    records.push(record(
        Scheme::EmployeePension,
        status,
        hired,
        Some(last),
        months(hired),
        pension,
    ));
    // Employee medical insurance began in 1999; people retired by then joined without
    // ever paying.
    let medical_start = hired.max(ymd(1999, 1, 1));
    let (paid_until, paid_months) = if medical_start <= last {
        (Some(last), months(medical_start))
    } else {
        (None, 0)
    };
    records.push(record(
        Scheme::EmployeeMedical,
        status,
        medical_start,
        paid_until,
        paid_months,
        0,
    ));
    if medical_start <= last && rng.random_bool(0.5) {
        records.push(record(
            Scheme::Unemployment,
            InsuranceStatus::Terminated,
            medical_start,
            Some(last),
            months(medical_start),
            0,
        ));
    }
}

/// 170 for someone under 60: yearly contributions since the scheme reached them.
fn resident_pension_paying<R: Rng>(
    rng: &mut R,
    birth: NaiveDate,
    end: NaiveDate,
    live: bool,
) -> InsuranceRecord {
    let reached = days_after(ymd(2009, 10, 1), rng.random_range(0..=700));
    let start = reached.max(years_after(birth, 16)).min(end);
    let (status, last_year) = if !live {
        (InsuranceStatus::Terminated, end.year())
    } else if rng.random_bool(0.9) {
        (InsuranceStatus::Paying, end.year())
    } else {
        let year = rng.random_range(start.year()..=end.year());
        (InsuranceStatus::Suspended, year)
    };
    let last = ymd(last_year, 1, 1).max(month_start(start));
    let years = u32::try_from(last.year() - start.year() + 1).unwrap_or(1);
    let paid = years - rng.random_range(0..=years / 4);
    record(
        Scheme::ResidentPension,
        status,
        start,
        Some(last),
        paid * 12,
        0,
    )
}

/// 170 for someone 60 or older, who draws a resident pension (older people who were
/// already 60 when the scheme arrived draw it without having paid).
fn resident_pension_drawn<R: Rng>(
    rng: &mut R,
    birth: NaiveDate,
    end: NaiveDate,
    live: bool,
) -> InsuranceRecord {
    let reached = days_after(ymd(2009, 10, 1), rng.random_range(0..=700));
    let sixty = years_after(birth, 60);
    let status = if live {
        InsuranceStatus::Suspended
    } else {
        InsuranceStatus::Terminated
    };
    if sixty <= reached {
        let pension = if live {
            rng.random_range(12_000..=20_000)
        } else {
            0
        };
        return record(
            Scheme::ResidentPension,
            status,
            reached.min(end),
            None,
            0,
            pension,
        );
    }
    let last = ymd(days_before(sixty, 1).year(), 1, 1).max(month_start(reached));
    let years = u32::try_from(last.year() - reached.year() + 1).unwrap_or(1);
    let pension = if live {
        rng.random_range(15_000..=45_000)
    } else {
        0
    };
    record(
        Scheme::ResidentPension,
        status,
        reached,
        Some(last),
        years * 12,
        pension,
    )
}
