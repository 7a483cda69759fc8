//! Date arithmetic and date formats shared by the generator and the three departments.
//!
//! Arithmetic saturates (returns the input) instead of failing: the generator only
//! works with dates between 1900 and the population's `as_of` day.

use chrono::{Datelike, Days, Months, NaiveDate};
use rand::Rng;

/// A date from its parts; an impossible date gives 1970-01-01 (callers pass constants).
pub(crate) fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// `date` plus whole years (29 February becomes 28 February).
pub(crate) fn years_after(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_add_months(Months::new(years * 12))
        .unwrap_or(date)
}

/// `date` minus whole years.
pub(crate) fn years_before(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(years * 12))
        .unwrap_or(date)
}

/// `date` plus days.
pub(crate) fn days_after(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days)).unwrap_or(date)
}

/// `date` minus days.
pub(crate) fn days_before(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days)).unwrap_or(date)
}

/// The first day of the month `date` is in.
pub(crate) fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// Whole calendar months from the month of `from` to the month of `to` (0 if `to` is
/// earlier).
pub(crate) fn months_between(from: NaiveDate, to: NaiveDate) -> u32 {
    let months = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    u32::try_from(months).unwrap_or(0)
}

/// A uniformly random day in `from..=to`; `from` if the range is empty.
pub(crate) fn between<R: Rng>(rng: &mut R, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days();
    if span <= 0 {
        return from;
    }
    days_after(from, rng.random_range(0..=span.unsigned_abs()))
}

/// "YYYYMMDD", the 户籍 system's date format.
pub(crate) fn compact(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// "YYYY-MM-DD", the 社保 and 计生 systems' date format.
pub(crate) fn iso(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_days_and_month_counts() {
        assert_eq!(years_after(ymd(2000, 2, 29), 1), ymd(2001, 2, 28));
        assert_eq!(years_before(ymd(2024, 2, 29), 4), ymd(2020, 2, 29));
        assert_eq!(months_between(ymd(2020, 11, 30), ymd(2021, 2, 1)), 3);
        assert_eq!(months_between(ymd(2021, 2, 1), ymd(2020, 11, 30)), 0);
        assert_eq!(compact(ymd(1990, 3, 7)), "19900307");
        assert_eq!(iso(ymd(1990, 3, 7)), "1990-03-07");
    }
}
