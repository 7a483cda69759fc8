//! Checks the civil-affairs export against the population it comes from: the same
//! county gives the same tables, every row is about a resident, 低保 goes to whole
//! agricultural households with histories that make sense, marriage rows say what
//! the births record says, and the SQLite file reads back through its views.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;

use super::minzheng::{SAMPLE_TOWNSHIP, Table, dibao_household, tables, views, write_sqlite};
use super::population::{HukouType, MaritalStatus, Population, ResidentStatus};
use super::testing::population;

/// The shared test county and another, so the rules hold beyond one seed.
fn several() -> Vec<Arc<Population>> {
    vec![population(), Arc::new(Population::generate(4242, 2_500))]
}

/// The demo county and another of its size: big enough for shares to be steady.
fn large() -> Vec<Population> {
    vec![Population::demo(), Population::generate(4242, 12_000)]
}

fn named<'a>(tables: &'a [Table], name: &str) -> &'a Table {
    tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("table {name}"))
}

/// Rows as maps from column name to value.
fn records(table: &Table) -> Vec<BTreeMap<&'static str, Option<String>>> {
    table
        .rows
        .iter()
        .map(|row| {
            assert_eq!(row.len(), table.columns.len(), "{}", table.name);
            table
                .columns
                .iter()
                .map(|(name, _)| *name)
                .zip(row.iter().cloned())
                .collect()
        })
        .collect()
}

fn text<'a>(row: &'a BTreeMap<&'static str, Option<String>>, column: &str) -> &'a str {
    row[column]
        .as_deref()
        .unwrap_or_else(|| panic!("{column} is NULL"))
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

#[test]
fn the_same_county_gives_the_same_tables() {
    let a = Population::generate(77, 1_500);
    let b = Population::generate(77, 1_500);
    assert_eq!(tables(&a), tables(&b));
    let c = Population::generate(78, 1_500);
    assert_ne!(tables(&a), tables(&c));
    let names: Vec<&str> = tables(&a).iter().map(|t| t.name).collect();
    assert_eq!(names, ["mz_dibao", "mz_dibao_ls", "mz_hydj", "mz_cjz"]);
}

#[test]
fn every_row_is_about_a_resident_and_names_them_as_the_register_does() {
    for pop in several() {
        for table in tables(&pop) {
            assert!(!table.rows.is_empty(), "{} is empty", table.name);
            for row in records(&table) {
                let person = pop.person(text(&row, "sfzh")).expect("a resident");
                if let Some(name) = row.get("xm") {
                    assert_eq!(name.as_deref(), Some(person.name.as_str()));
                }
                if let Some(Some(spouse)) = row.get("po_sfzh") {
                    assert!(pop.person(spouse).is_some(), "the spouse is a resident");
                }
            }
        }
    }
}

#[test]
fn dibao_goes_to_whole_agricultural_households_a_few_in_a_hundred() {
    let (mut receiving, mut agricultural) = (0, 0);
    for pop in large() {
        let all = tables(&pop);
        let rows = records(named(&all, "mz_dibao"));
        let mut by_household: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in &rows {
            let id = text(row, "sfzh");
            let person = pop.person(id).unwrap();
            assert_eq!(
                person.status,
                ResidentStatus::Normal,
                "current members only"
            );
            assert_eq!(text(row, "hh"), person.household);
            assert!(["0", "1", "2"].contains(&text(row, "dbzt")));
            assert!(["1", "2"].contains(&text(row, "bzlx")));
            let money = text(row, "yjje");
            let (whole, cents) = money.split_once('.').expect("two decimals");
            assert!(
                cents.len() == 2
                    && whole
                        .parse::<u32>()
                        .is_ok_and(|y| (300..1_000).contains(&y))
            );
            by_household
                .entry(person.household.clone())
                .or_default()
                .insert(id.to_owned());
        }
        for (number, listed) in &by_household {
            let household = pop.household(number).unwrap();
            assert_eq!(household.hukou_type, HukouType::Agricultural);
            let current: BTreeSet<String> = pop
                .members(household)
                .filter(|p| p.status == ResidentStatus::Normal)
                .map(|p| p.id.as_str().to_owned())
                .collect();
            assert_eq!(listed, &current, "every current member of {number}");
            let statuses: BTreeSet<&str> = rows
                .iter()
                .filter(|r| text(r, "hh") == number)
                .map(|r| text(r, "dbzt"))
                .collect();
            assert_eq!(statuses.len(), 1, "one status per household");
        }
        receiving += by_household.len();
        agricultural += pop
            .households
            .iter()
            .filter(|h| h.hukou_type == HukouType::Agricultural)
            .count();
        // Mostly receiving, some suspended or stopped.
        let in_force = rows.iter().filter(|r| text(r, "dbzt") == "1").count();
        assert!(
            in_force * 10 >= rows.len() * 7,
            "{in_force} of {}",
            rows.len()
        );
    }
    let share = receiving as f64 / agricultural as f64;
    assert!(
        (0.06..=0.10).contains(&share),
        "{receiving} of {agricultural}"
    );
}

#[test]
fn dibao_histories_are_ordered_without_overlap_and_end_by_the_data_day() {
    for pop in several() {
        let all = tables(&pop);
        let mut periods: BTreeMap<String, Vec<BTreeMap<&str, Option<String>>>> = BTreeMap::new();
        for row in records(named(&all, "mz_dibao_ls")) {
            periods
                .entry(text(&row, "sfzh").to_owned())
                .or_default()
                .push(row);
        }
        let current = records(named(&all, "mz_dibao"));
        assert_eq!(periods.len(), current.len(), "a history for each recipient");
        for now in &current {
            let id = text(now, "sfzh");
            let person = pop.person(id).unwrap();
            let history = &periods[id];
            assert!((1..=4).contains(&history.len()), "{}", history.len());
            for (i, period) in history.iter().enumerate() {
                let start = date(text(period, "ksrq"));
                assert!(start >= person.birth_date && start <= pop.as_of);
                let end = period["jsrq"].as_deref().map(date);
                let last = i + 1 == history.len();
                match end {
                    Some(end) => {
                        assert!(end >= start && end <= pop.as_of);
                        if let Some(next) = history.get(i + 1) {
                            assert_eq!(end.succ_opt(), Some(date(text(next, "ksrq"))));
                        }
                    }
                    None => assert!(last, "only the current period is open"),
                }
                // New, or (a member born since) joined the household; then changes.
                match (i, text(period, "bdyy")) {
                    (0, "01") => {}
                    (0, "04") => assert_eq!(start, person.birth_date),
                    (0, other) => panic!("a first period began with {other}"),
                    (_, reason) => assert!(["02", "03", "04"].contains(&reason)),
                }
            }
            let last = history.last().unwrap();
            // Stopped (停保): the last period ended; otherwise it still runs.
            assert_eq!(last["jsrq"].is_some(), text(now, "dbzt") == "0");
            assert_eq!(text(now, "yjje"), text(last, "yjje"));
            assert_eq!(text(now, "ksrq"), text(&history[0], "ksrq"));
        }
    }
}

#[test]
fn marriage_rows_say_what_the_births_record_says() {
    for pop in several() {
        let all = tables(&pop);
        let rows = records(named(&all, "mz_hydj"));
        let by_id: BTreeMap<&str, _> = rows.iter().map(|r| (text(r, "sfzh"), r)).collect();
        assert_eq!(by_id.len(), rows.len(), "one row per person");
        for person in pop.residents() {
            let record = &person.fertility;
            let row = by_id.get(person.id.as_str());
            if record.marital_status == MaritalStatus::Unmarried || record.marriage_date.is_none() {
                assert!(row.is_none());
                continue;
            }
            let row = row.expect("a married person has a registration");
            assert_eq!(text(row, "hyzt"), record.marital_status.code());
            assert_eq!(Some(date(text(row, "djrq"))), record.marriage_date);
            assert!(text(row, "djjg").starts_with(pop.county_name));
            assert_eq!(
                row["po_sfzh"].as_deref(),
                record.spouse.as_ref().map(|s| s.id.as_str())
            );
            assert_eq!(
                row["po_xm"].as_deref(),
                record.spouse.as_ref().map(|s| s.name.as_str())
            );
        }
        let codes: BTreeSet<&str> = rows.iter().map(|r| text(r, "hyzt")).collect();
        assert_eq!(codes, BTreeSet::from(["20", "30", "40"]));
    }
}

#[test]
fn a_few_in_a_hundred_residents_hold_a_disability_certificate() {
    let (mut holders, mut residents) = (0, 0);
    for pop in large() {
        let all = tables(&pop);
        for row in records(named(&all, "mz_cjz")) {
            let person = pop.person(text(&row, "sfzh")).unwrap();
            assert_eq!(person.status, ResidentStatus::Normal);
            assert!(("1"..="7").contains(&text(&row, "cjlb")));
            assert!(("1"..="4").contains(&text(&row, "cjdj")));
            let issued = date(text(&row, "fzrq"));
            assert!(issued >= person.birth_date && issued <= pop.as_of);
            holders += 1;
        }
        residents += pop
            .residents()
            .filter(|p| p.status == ResidentStatus::Normal)
            .count();
    }
    let share = holders as f64 / residents as f64;
    assert!((0.03..=0.05).contains(&share), "{holders} of {residents}");
}

#[test]
fn the_sample_household_receives_and_all_its_current_members_are_listed() {
    let pop = population();
    let household = dibao_household(&pop).expect("a 低保 household in 东岭镇");
    assert_eq!(household.township, SAMPLE_TOWNSHIP);
    let all = tables(&pop);
    let rows = records(named(&all, "mz_dibao"));
    let current: Vec<_> = pop
        .members(household)
        .filter(|p| p.status == ResidentStatus::Normal)
        .collect();
    assert!(current.len() >= 2);
    for member in current {
        let row = rows
            .iter()
            .find(|r| text(r, "sfzh") == member.id.as_str())
            .expect("listed");
        assert_eq!(text(row, "dbzt"), "1");
    }
}

#[test]
fn the_sqlite_file_reads_back_through_its_views_and_is_replaced_whole() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minzheng.db");
    std::fs::write(&path, b"an older export that is not a database").unwrap();
    write_sqlite(&pop, &path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["minzheng.db"], "no temporary file is left");

    let db = rusqlite::Connection::open(&path).unwrap();
    let mut listed = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")
        .unwrap();
    let found: Vec<String> = listed
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<&str> = views().iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(found, expected);

    let all = tables(&pop);
    for ((view, _), table) in views().iter().zip(&all) {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let mut statement = db
            // A plain scan, in the order the rows were written.
            .prepare(&format!("SELECT {} FROM {view}", columns.join(", ")))
            .unwrap();
        let rows: Vec<Vec<Option<String>>> = statement
            .query_map([], |row| {
                (0..columns.len())
                    .map(|i| match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Ok(None),
                        rusqlite::types::ValueRef::Integer(n) => Ok(Some(n.to_string())),
                        rusqlite::types::ValueRef::Text(t) => {
                            Ok(Some(String::from_utf8(t.to_vec()).unwrap()))
                        }
                        other => panic!("{view}: unexpected {other:?}"),
                    })
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, table.rows, "{view}");
    }
    // The connector's lookup of one person by `sfzh` uses the index.
    let plan: String = db
        .query_row(
            "EXPLAIN QUERY PLAN SELECT xm FROM v_dibao WHERE sfzh = ?",
            ["x"],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("mz_dibao_sfzh"), "{plan}");

    // Written again over a file a reader holds open: the reader keeps the old
    // file, a new reader sees the new one.
    let other = Population::generate(5, 1_000);
    write_sqlite(&other, &path).unwrap();
    let count = |db: &rusqlite::Connection| -> usize {
        db.query_row("SELECT count(*) FROM v_marriage", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| usize::try_from(n).unwrap())
        .unwrap()
    };
    assert_eq!(count(&db), named(&all, "mz_hydj").rows.len());
    let fresh = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(count(&fresh), named(&tables(&other), "mz_hydj").rows.len());
}
