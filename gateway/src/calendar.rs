//! The working-day calendar (工作日历) that deadlines count in: which days are public
//! holidays (法定节假日) and which weekend days are make-up working days (调休上班),
//! year by year, as the county's operator keeps them in a file `gateway.yaml` names
//! (`calendar: calendar.yaml`). This module owns the file's format, its checks and
//! the counting; access requests (and whatever else has a deadline in working days)
//! ask the [`Calendar`] of the configuration in force.
//!
//! ```yaml
//! years:
//!   2026:
//!     status: announced          # from the State Council's notice; or `provisional`
//!     holidays:
//!       - { name: 元旦, from: 2026-01-01, to: 2026-01-03 }   # a range, both days in
//!       - { name: 端午节, date: 2026-06-19 }                  # or one day
//!     make_up_days:
//!       - { name: 元旦, date: 2026-01-04 }                    # a Saturday or Sunday worked
//! ```
//!
//! A day of a listed year is a working day when it is a make-up day, or a Monday to
//! Friday that is not a holiday. A day outside the listed years counts Monday to
//! Friday, and so does every day without a calendar: [`Calendar::default`] is that
//! fallback. The listed years follow each other without a gap, so what the file
//! covers is one span ([`Calendar::first_uncovered`]); `gateway check` warns when it
//! ends within the next 90 days or when those days lie in a `provisional` year
//! ([`Calendar::check_warnings`]).
//!
//! The file is read as hostile input: at most [`MAX_CALENDAR_BYTES`], no key that is
//! not known, years between [`FIRST_YEAR`] and [`LAST_YEAR`], every date written
//! `YYYY-MM-DD` and in its year, a range at most [`MAX_RANGE_DAYS`] long, no day both a
//! holiday and a make-up day (nor listed twice), and a make-up day only on a weekend.
//! Every problem is named with its path in the file.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;

/// The largest calendar file read.
pub const MAX_CALENDAR_BYTES: usize = 64 * 1024;

/// The first year a calendar may list.
pub const FIRST_YEAR: i32 = 2000;

/// The last year a calendar may list.
pub const LAST_YEAR: i32 = 2100;

/// The longest holiday range, in days (the longest in practice is nine).
pub const MAX_RANGE_DAYS: u64 = 31;

/// The most holiday entries, and the most make-up days, one year may list.
const MAX_ENTRIES_PER_YEAR: usize = 60;

/// How far ahead `gateway check` wants the calendar to reach, in days.
pub const CHECK_AHEAD_DAYS: u64 = 90;

/// Where a year's dates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YearStatus {
    /// From the State Council's notice of the year's holiday arrangements.
    Announced,
    /// The statutory holidays on their dates, before the notice is published.
    Provisional,
}

/// The calendar deadlines count in; the default is Monday to Friday everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    years: BTreeMap<i32, Year>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Year {
    status: YearStatus,
    holidays: BTreeSet<NaiveDate>,
    make_up_days: BTreeSet<NaiveDate>,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(deserialize_with = "unique_years")]
    years: BTreeMap<i64, YearFile>,
}

/// The years, refusing one listed twice (a plain map would keep the last silently).
fn unique_years<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<i64, YearFile>, D::Error> {
    struct Years;
    impl<'de> serde::de::Visitor<'de> for Years {
        type Value = BTreeMap<i64, YearFile>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map from years to their days")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut years = BTreeMap::new();
            while let Some((year, days)) = map.next_entry::<i64, YearFile>()? {
                if years.insert(year, days).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "year {year} is listed twice"
                    )));
                }
            }
            Ok(years)
        }
    }
    deserializer.deserialize_map(Years)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    status: YearStatus,
    #[serde(default)]
    holidays: Vec<HolidayFile>,
    #[serde(default)]
    make_up_days: Vec<MakeUpDayFile>,
}

/// One holiday: a `date`, or a range `from`–`to` (both days included).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayFile {
    name: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakeUpDayFile {
    name: String,
    date: String,
}

/// A problem in the file: its path there and what is wrong.
pub type CalendarProblem = (String, String);

impl Calendar {
    /// Reads a calendar file, or every problem found in it.
    pub fn from_yaml(text: &str) -> Result<Calendar, Vec<CalendarProblem>> {
        if text.len() > MAX_CALENDAR_BYTES {
            return Err(vec![(
                String::new(),
                format!("is larger than {MAX_CALENDAR_BYTES} bytes"),
            )]);
        }
        let file: CalendarFile =
            connectors::definition::parse_yaml(text).map_err(|p| vec![(p.path, p.message)])?;
        let mut problems = Vec::new();
        let mut years = BTreeMap::new();
        if file.years.is_empty() {
            problems.push(("years".to_owned(), "list at least one year".to_owned()));
        }
        for (key, def) in &file.years {
            let at = format!("years.{key}");
            let year = i32::try_from(*key)
                .ok()
                .filter(|y| (FIRST_YEAR..=LAST_YEAR).contains(y));
            let Some(year) = year else {
                problems.push((
                    at,
                    format!("is not a year between {FIRST_YEAR} and {LAST_YEAR}"),
                ));
                continue;
            };
            years.insert(year, read_year(year, def, &at, &mut problems));
        }
        // Listed years follow each other: what the file covers is one span.
        let listed: Vec<i32> = years.keys().copied().collect();
        for pair in listed.windows(2) {
            if let [a, b] = pair
                && b - a > 1
            {
                problems.push((
                    "years".to_owned(),
                    format!(
                        "{} is missing between {a} and {b}: list every year in between",
                        a + 1
                    ),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Calendar { years })
        } else {
            Err(problems)
        }
    }

    /// Whether no year is listed: Monday to Friday everywhere.
    pub fn is_empty(&self) -> bool {
        self.years.is_empty()
    }

    /// The status of the year `date` is in, if the calendar lists it.
    pub fn status(&self, date: NaiveDate) -> Option<YearStatus> {
        self.years.get(&date.year()).map(|y| y.status)
    }

    /// Whether `date` is a working day: a make-up day, or a Monday to Friday that is
    /// not a holiday (outside the listed years: any Monday to Friday).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        let weekday = !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        match self.years.get(&date.year()) {
            Some(year) if year.make_up_days.contains(&date) => true,
            Some(year) if year.holidays.contains(&date) => false,
            _ => weekday,
        }
    }

    /// The day `n` working days after `start` (`start` itself when `n` is 0): a
    /// deadline given on `start`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// Working days from `today` to `deadline`: how many are left, the deadline's own
    /// day counted (0 when it is due today), or, negative, by how many working days it
    /// is overdue.
    pub fn working_days_left(&self, today: NaiveDate, deadline: NaiveDate) -> i64 {
        let (from, to, sign) = if deadline >= today {
            (today, deadline, 1)
        } else {
            (deadline, today, -1)
        };
        let mut day = from;
        let mut n: i64 = 0;
        // Deadlines are written by the gateway; the bound only keeps a damaged one cheap.
        for _ in 0..20_000 {
            if day >= to {
                break;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
            if self.is_working_day(day) {
                n += 1;
            }
        }
        sign * n
    }

    /// The first day of `from..=to` in no listed year, if any.
    pub fn first_uncovered(&self, from: NaiveDate, to: NaiveDate) -> Option<NaiveDate> {
        let (Some(first), Some(last)) = (self.years.keys().next(), self.years.keys().last()) else {
            return (from <= to).then_some(from);
        };
        if from > to {
            None
        } else if from.year() < *first {
            Some(from)
        } else if to.year() > *last {
            // The years listed follow each other, so the gap starts after the last.
            NaiveDate::from_ymd_opt(last + 1, 1, 1).map(|next| next.max(from))
        } else {
            None
        }
    }

    /// Whether every day of `from..=to` is in a listed year.
    pub fn covers(&self, from: NaiveDate, to: NaiveDate) -> bool {
        self.first_uncovered(from, to).is_none()
    }

    /// The first day of `from..=to` in a `provisional` year, if any.
    pub fn first_provisional(&self, from: NaiveDate, to: NaiveDate) -> Option<NaiveDate> {
        if from > to {
            return None;
        }
        self.years
            .range(from.year()..=to.year())
            .find(|(_, y)| y.status == YearStatus::Provisional)
            .and_then(|(year, _)| NaiveDate::from_ymd_opt(*year, 1, 1))
            .map(|first| first.max(from))
    }

    /// What `gateway check` warns about on `today`: no calendar at all, a calendar
    /// that ends within the next [`CHECK_AHEAD_DAYS`] days, and days within them that
    /// only a `provisional` year covers.
    pub fn check_warnings(&self, today: NaiveDate) -> Vec<String> {
        if self.is_empty() {
            return vec![
                "no `calendar` in gateway.yaml: deadlines in working days count Monday to \
                 Friday, ignoring public holidays and 调休 make-up working days"
                    .to_owned(),
            ];
        }
        let until = today
            .checked_add_days(Days::new(CHECK_AHEAD_DAYS))
            .unwrap_or(today);
        let mut warnings = Vec::new();
        if let Some(day) = self.first_uncovered(today, until) {
            warnings.push(format!(
                "the calendar does not cover {} (within the next {CHECK_AHEAD_DAYS} days): \
                 deadlines from then on count Monday to Friday; add the year to the \
                 calendar file",
                day.year()
            ));
        }
        if let Some(day) = self.first_provisional(today, until) {
            warnings.push(format!(
                "the calendar's {} is provisional (within the next {CHECK_AHEAD_DAYS} \
                 days): replace it with the State Council's notice of that year's holiday \
                 arrangements once it is published, and set `status: announced`",
                day.year()
            ));
        }
        warnings
    }
}

/// One year's days, checked; problems go to `problems`.
fn read_year(year: i32, def: &YearFile, at: &str, problems: &mut Vec<CalendarProblem>) -> Year {
    let mut holidays: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let mut make_up_days: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    for (list, len) in [
        ("holidays", def.holidays.len()),
        ("make_up_days", def.make_up_days.len()),
    ] {
        if len > MAX_ENTRIES_PER_YEAR {
            problems.push((
                format!("{at}.{list}"),
                format!("lists more than {MAX_ENTRIES_PER_YEAR} entries"),
            ));
            return Year {
                status: def.status,
                holidays: BTreeSet::new(),
                make_up_days: BTreeSet::new(),
            };
        }
    }
    for (i, holiday) in def.holidays.iter().enumerate() {
        let here = format!("{at}.holidays[{i}]");
        check_name(&holiday.name, &here, problems);
        let Some((from, to)) = holiday_days(year, holiday, &here, problems) else {
            continue;
        };
        for day in from.iter_days().take_while(|d| *d <= to) {
            if let Some(earlier) = holidays.insert(day, i) {
                problems.push((
                    here.clone(),
                    format!("{day} is already a holiday in holidays[{earlier}]"),
                ));
                break;
            }
        }
    }
    for (i, make_up) in def.make_up_days.iter().enumerate() {
        let here = format!("{at}.make_up_days[{i}]");
        check_name(&make_up.name, &here, problems);
        let Some(day) = date_in(year, &make_up.date, &format!("{here}.date"), problems) else {
            continue;
        };
        if let Some(holiday) = holidays.get(&day) {
            problems.push((
                format!("{here}.date"),
                format!(
                    "{day} is also a holiday in holidays[{holiday}]: a day is one or the other"
                ),
            ));
        } else if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            problems.push((
                format!("{here}.date"),
                format!(
                    "{day} is a {}, a working day already: a make-up working day is a \
                     Saturday or a Sunday",
                    day.format("%A")
                ),
            ));
        } else if let Some(earlier) = make_up_days.insert(day, i) {
            problems.push((
                format!("{here}.date"),
                format!("{day} is already listed in make_up_days[{earlier}]"),
            ));
        }
    }
    Year {
        status: def.status,
        holidays: holidays.into_keys().collect(),
        make_up_days: make_up_days.into_keys().collect(),
    }
}

fn check_name(name: &str, at: &str, problems: &mut Vec<CalendarProblem>) {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        problems.push((
            format!("{at}.name"),
            "must name the holiday in 1 to 64 characters".to_owned(),
        ));
    }
}

/// A holiday's first and last day: `date`, or `from` and `to`.
fn holiday_days(
    year: i32,
    holiday: &HolidayFile,
    at: &str,
    problems: &mut Vec<CalendarProblem>,
) -> Option<(NaiveDate, NaiveDate)> {
    match (&holiday.date, &holiday.from, &holiday.to) {
        (Some(date), None, None) => {
            let day = date_in(year, date, &format!("{at}.date"), problems)?;
            Some((day, day))
        }
        (None, Some(from), Some(to)) => {
            let from = date_in(year, from, &format!("{at}.from"), problems);
            let to = date_in(year, to, &format!("{at}.to"), problems);
            let (from, to) = (from?, to?);
            if to < from {
                problems.push((format!("{at}.to"), format!("{to} is before {from}")));
                return None;
            }
            if to.signed_duration_since(from).num_days() >= MAX_RANGE_DAYS as i64 {
                problems.push((
                    format!("{at}.to"),
                    format!("a holiday of more than {MAX_RANGE_DAYS} days"),
                ));
                return None;
            }
            Some((from, to))
        }
        _ => {
            problems.push((
                at.to_owned(),
                "give either `date`, or both `from` and `to`".to_owned(),
            ));
            None
        }
    }
}

/// A date written `YYYY-MM-DD` that lies in `year`.
fn date_in(
    year: i32,
    text: &str,
    at: &str,
    problems: &mut Vec<CalendarProblem>,
) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == text);
    let Some(day) = parsed else {
        problems.push((at.to_owned(), "is not a date written YYYY-MM-DD".to_owned()));
        return None;
    };
    if day.year() != year {
        problems.push((at.to_owned(), format!("{day} is not in {year}")));
        return None;
    }
    Some(day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    /// The county's calendar, as shipped.
    fn county() -> Calendar {
        let text = crate::county::COUNTY_FILES
            .iter()
            .find(|(path, _)| *path == "county/calendar.yaml")
            .map(|(_, text)| *text)
            .expect("the county ships a calendar");
        Calendar::from_yaml(text).expect("the county's calendar loads")
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn problems(text: &str) -> Vec<CalendarProblem> {
        Calendar::from_yaml(text).expect_err("the file is refused")
    }

    fn paths(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|(at, _)| at).collect()
    }

    #[test]
    fn ten_working_days_from_before_national_day_skip_the_week_and_count_its_saturday() {
        let cal = county();
        // 2026-09-28 is a Monday; 10-01..07 are holidays, Saturday 10-10 is worked.
        assert_eq!(day("2026-09-28").weekday(), Weekday::Mon);
        assert!(!cal.is_working_day(day("2026-10-05")), "a Monday of 国庆");
        assert!(
            cal.is_working_day(day("2026-10-10")),
            "the make-up Saturday"
        );
        // 9-29, 9-30, 10-08, 10-09, 10-10, 10-12 … 10-16.
        assert_eq!(
            cal.add_working_days(day("2026-09-28"), 10),
            day("2026-10-16")
        );
        // Monday to Friday alone would have said 10-12.
        assert_eq!(
            Calendar::default().add_working_days(day("2026-09-28"), 10),
            day("2026-10-12")
        );
        // And Sunday 09-20 is worked before it.
        assert_eq!(
            cal.add_working_days(day("2026-09-19"), 1),
            day("2026-09-20")
        );
    }

    #[test]
    fn the_spring_festival_is_skipped_and_its_saturdays_are_worked() {
        let cal = county();
        // Friday 02-13, then Saturday 02-14 is worked, 02-15..23 are off.
        assert_eq!(
            cal.add_working_days(day("2026-02-13"), 1),
            day("2026-02-14")
        );
        assert_eq!(
            cal.add_working_days(day("2026-02-13"), 2),
            day("2026-02-24")
        );
        // 02-14, 02-24..27, Saturday 02-28, 03-02..05.
        assert_eq!(
            cal.add_working_days(day("2026-02-13"), 10),
            day("2026-03-05")
        );
        assert_eq!(
            Calendar::default().add_working_days(day("2026-02-13"), 10),
            day("2026-02-27")
        );
    }

    #[test]
    fn working_days_left_count_holidays_out_and_make_up_days_in() {
        let cal = county();
        let deadline = day("2026-03-05");
        assert_eq!(cal.working_days_left(day("2026-02-13"), deadline), 10);
        assert_eq!(cal.working_days_left(day("2026-02-14"), deadline), 9);
        // Over the whole festival nothing is used up.
        assert_eq!(cal.working_days_left(day("2026-02-23"), deadline), 9);
        assert_eq!(cal.working_days_left(day("2026-03-05"), deadline), 0);
        // National Day: from 09-30 to 10-10 are 10-08, 10-09, 10-10.
        assert_eq!(
            cal.working_days_left(day("2026-09-30"), day("2026-10-10")),
            3
        );
    }

    #[test]
    fn overdue_counts_are_negative_and_skip_holidays() {
        let cal = county();
        // Due Wednesday 09-30; 10-01..07 are off, so on 10-08 it is one day overdue.
        assert_eq!(
            cal.working_days_left(day("2026-10-08"), day("2026-09-30")),
            -1
        );
        assert_eq!(
            cal.working_days_left(day("2026-10-10"), day("2026-09-30")),
            -3
        );
        // A holiday does not make it more overdue.
        assert_eq!(
            cal.working_days_left(day("2026-10-07"), day("2026-09-30")),
            0
        );
    }

    #[test]
    fn outside_the_listed_years_it_counts_monday_to_friday() {
        let cal = county();
        assert_eq!(cal.status(day("2028-01-03")), None);
        // 2025-10-01 was a holiday, but 2025 is not listed.
        assert!(cal.is_working_day(day("2025-10-01")));
        // 2028-05-05 is a Friday.
        assert_eq!(
            cal.add_working_days(day("2028-05-05"), 10),
            day("2028-05-19")
        );
        let none = Calendar::default();
        assert!(none.is_empty());
        // 2026-05-08 is a Friday: two weeks later, the weekends only skipped.
        assert_eq!(
            none.add_working_days(day("2026-05-08"), 10),
            day("2026-05-22")
        );
        assert_eq!(
            none.add_working_days(day("2026-05-09"), 1),
            day("2026-05-11")
        );
        assert_eq!(
            none.add_working_days(day("2026-05-13"), 0),
            day("2026-05-13")
        );
        assert_eq!(
            none.working_days_left(day("2026-05-08"), day("2026-05-08")),
            0
        );
        assert_eq!(
            none.working_days_left(day("2026-05-08"), day("2026-05-11")),
            1
        );
        assert_eq!(
            none.working_days_left(day("2026-05-08"), day("2026-05-22")),
            10
        );
        assert_eq!(
            none.working_days_left(day("2026-05-11"), day("2026-05-08")),
            -1
        );
        assert_eq!(
            none.working_days_left(day("2026-05-26"), day("2026-05-22")),
            -2
        );
        // A range leaving the listed years.
        assert_eq!(
            cal.first_uncovered(day("2027-12-01"), day("2028-02-01")),
            Some(day("2028-01-01"))
        );
        assert_eq!(
            cal.first_uncovered(day("2025-12-01"), day("2026-02-01")),
            Some(day("2025-12-01"))
        );
        assert!(cal.covers(day("2026-01-01"), day("2027-12-31")));
    }

    #[test]
    fn the_county_calendar_has_2026_announced_and_2027_provisional() {
        let cal = county();
        assert_eq!(cal.status(day("2026-06-01")), Some(YearStatus::Announced));
        assert_eq!(cal.status(day("2027-06-01")), Some(YearStatus::Provisional));
        for off in [
            "2026-01-01",
            "2026-04-06",
            "2026-05-05",
            "2026-06-19",
            "2026-09-25",
        ] {
            assert!(!cal.is_working_day(day(off)), "{off}");
        }
        for worked in ["2026-01-04", "2026-05-09", "2026-09-20"] {
            assert!(cal.is_working_day(day(worked)), "{worked}");
        }
        // 2027: the statutory days only — 春节 is 除夕 to 初三, no make-up days.
        for off in [
            "2027-01-01",
            "2027-02-05",
            "2027-02-08",
            "2027-04-05",
            "2027-06-09",
        ] {
            assert!(!cal.is_working_day(day(off)), "{off}");
        }
        assert!(cal.is_working_day(day("2027-02-09")));
        assert!(
            !cal.is_working_day(day("2027-02-06")),
            "a Saturday, not worked"
        );
    }

    #[test]
    fn check_warns_when_the_next_90_days_are_not_covered_or_provisional() {
        let cal = county();
        // 2027-11-01: 2028 starts within 90 days and is not listed.
        let warnings = cal.check_warnings(day("2027-11-01"));
        assert!(
            warnings.iter().any(|w| w.contains("does not cover 2028")),
            "{warnings:?}"
        );
        // 2026-12-07: 2027 starts within 90 days and is provisional; it is covered.
        let warnings = cal.check_warnings(day("2026-12-07"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("2027 is provisional"), "{warnings:?}");
        // Announced years reaching past the 90 days: nothing to say.
        let confirmed = Calendar::from_yaml(
            "years:\n  2026: { status: announced }\n  2027: { status: announced }\n",
        )
        .unwrap();
        assert_eq!(
            confirmed.check_warnings(day("2026-12-07")),
            Vec::<String>::new()
        );
        assert_eq!(cal.check_warnings(day("2026-03-01")), Vec::<String>::new());
        // No calendar at all: said once.
        let none = Calendar::default().check_warnings(day("2026-12-07"));
        assert_eq!(none.len(), 1);
        assert!(none[0].contains("Monday to Friday"), "{none:?}");
    }

    #[test]
    fn a_file_with_problems_is_refused_naming_each_path() {
        // Unknown keys, at every level.
        assert_eq!(paths("years: {}\nsource: x\n"), ["source"]);
        assert!(
            problems("years: {}\nsource: x\n")[0]
                .1
                .contains("unknown field")
        );
        assert_eq!(
            paths("years:\n  2026: { status: announced, note: x }\n"),
            ["years.2026.note"]
        );
        assert_eq!(
            paths(
                "years:\n  2026:\n    status: announced\n    holidays:\n      - { name: a, date: 2026-01-01, day: x }\n"
            ),
            ["years.2026.holidays[0].day"]
        );
        // An unknown status.
        assert_eq!(
            paths("years:\n  2026: { status: rumoured }\n"),
            ["years.2026.status"]
        );
        // A year listed twice.
        let twice =
            problems("years:\n  2026: { status: announced }\n  2026: { status: provisional }\n");
        assert_eq!(twice.len(), 1);
        assert!(
            twice[0].1.contains("year 2026 is listed twice"),
            "{twice:?}"
        );
        // Not even YAML of the right shape.
        assert_eq!(paths("- 2026\n").len(), 1);
        // Years: none, out of range, not a number, with a gap.
        assert_eq!(paths("years: {}\n"), ["years"]);
        assert_eq!(
            paths("years:\n  1999: { status: announced }\n"),
            ["years.1999"]
        );
        assert_eq!(
            paths("years:\n  99999999999: { status: announced }\n"),
            ["years.99999999999"]
        );
        assert_eq!(paths("years:\n  next: { status: announced }\n").len(), 1);
        let gap =
            problems("years:\n  2026: { status: announced }\n  2028: { status: announced }\n");
        assert_eq!(gap.len(), 1);
        assert!(gap[0].1.contains("2027 is missing"), "{gap:?}");
    }

    #[test]
    fn dates_are_checked_one_by_one() {
        let year = |body: &str| format!("years:\n  2026:\n    status: announced\n{body}");
        let found = |body: &str| problems(&year(body));
        // A day in another year, a malformed one, an impossible one.
        assert_eq!(
            found("    holidays: [{ name: 元旦, date: 2027-01-01 }]\n"),
            [(
                "years.2026.holidays[0].date".to_owned(),
                "2027-01-01 is not in 2026".to_owned()
            )]
        );
        for bad in ["2026-1-4", "2026-02-30", "04/01/2026", "'2026-01-01 '"] {
            let at = found(&format!("    make_up_days: [{{ name: x, date: {bad} }}]\n"));
            assert_eq!(at[0].0, "years.2026.make_up_days[0].date", "{bad}");
        }
        // Both a holiday and a make-up day.
        let both = found(
            "    holidays: [{ name: 国庆节, from: 2026-10-01, to: 2026-10-07 }]\n    \
             make_up_days: [{ name: 国庆节, date: 2026-10-03 }]\n",
        );
        assert_eq!(both[0].0, "years.2026.make_up_days[0].date");
        assert!(both[0].1.contains("also a holiday"), "{both:?}");
        // A make-up day on a weekday, and one listed twice.
        let weekday = found("    make_up_days: [{ name: x, date: 2026-10-09 }]\n");
        assert!(weekday[0].1.contains("Saturday or a Sunday"), "{weekday:?}");
        let twice = found(
            "    make_up_days: [{ name: x, date: 2026-10-10 }, { name: x, date: 2026-10-10 }]\n",
        );
        assert_eq!(twice[0].0, "years.2026.make_up_days[1].date");
        // Ranges: backwards, too long, overlapping another, half given, both forms.
        assert_eq!(
            found("    holidays: [{ name: x, from: 2026-10-07, to: 2026-10-01 }]\n")[0].0,
            "years.2026.holidays[0].to"
        );
        assert!(
            found("    holidays: [{ name: x, from: 2026-01-01, to: 2026-03-01 }]\n")[0]
                .1
                .contains("more than 31 days")
        );
        let overlap = found(
            "    holidays:\n      - { name: a, from: 2026-10-01, to: 2026-10-07 }\n      - { name: b, date: 2026-10-07 }\n",
        );
        assert_eq!(
            overlap,
            [(
                "years.2026.holidays[1]".to_owned(),
                "2026-10-07 is already a holiday in holidays[0]".to_owned()
            )]
        );
        for half in [
            "{ name: x, from: 2026-10-01 }",
            "{ name: x }",
            "{ name: x, date: 2026-10-01, from: 2026-10-01, to: 2026-10-02 }",
        ] {
            assert_eq!(
                found(&format!("    holidays: [{half}]\n"))[0].0,
                "years.2026.holidays[0]",
                "{half}"
            );
        }
        // A name that names nothing.
        assert_eq!(
            found("    holidays: [{ name: ' ', date: 2026-10-01 }]\n")[0].0,
            "years.2026.holidays[0].name"
        );
        // Every problem at once, not only the first.
        assert_eq!(
            found(
                "    holidays: [{ name: x, date: 2027-01-01 }]\n    \
                 make_up_days: [{ name: x, date: 2026-13-01 }]\n"
            )
            .len(),
            2
        );
    }

    #[test]
    fn a_file_is_bounded() {
        let mut big = "years:\n  2026:\n    status: announced\n    holidays:\n".to_owned();
        while big.len() <= MAX_CALENDAR_BYTES {
            big.push_str("      - { name: x, date: 2026-10-01 }\n");
        }
        assert_eq!(paths(&big), [""]);
        let mut many = "years:\n  2026:\n    status: announced\n    holidays:\n".to_owned();
        for _ in 0..=MAX_ENTRIES_PER_YEAR {
            many.push_str("      - { name: x, date: 2026-10-01 }\n");
        }
        assert_eq!(paths(&many), ["years.2026.holidays"]);
    }
}
