//! The simulated civil-affairs front database (县民政局 民政前置库): subsistence
//! allowance (低保) recipients and their history, marriage registrations (婚姻登记)
//! and disability certificates (残疾证), for the same synthetic county.
//!
//! The department has no API. It exports what it shares into a staging database that
//! the gateway reads through its `kind: sql` connector, so this module writes tables
//! and views instead of serving HTTP. The records are derived from an existing
//! [`Population`] without touching its generator or its random stream: every choice
//! is a hash of the person's ID number or the household number (a small mixer below),
//! so the same population always gives the same tables, and the other departments'
//! data, tests and snapshots stay as they were. Every value is made up.
//!
//! This module owns the records, as dialect-neutral [`Table`]s with the [`views`] the
//! connector reads, and the SQLite writer ([`write_sqlite`]); a MySQL or PostgreSQL
//! writer reuses [`tables`] and [`views`] and picks its own column types from
//! [`ColumnType`].
//!
//! The tables (column names in the department's pinyin-initial style):
//!
//! - `mz_dibao`: one row per current member of a 低保 household — `sfzh` 身份证号,
//!   `xm` 姓名, `hh` 户号, `dbzt` 低保状态 (`1` 在保, `2` 暂停, `0` 停保, the
//!   household's), `bzlx` 保障类型 (`1` 城市, `2` 农村), `yjje` 月保障金 (yuan, two
//!   decimals, the latest period's), `ksrq` 起始日期 (when the member began receiving).
//! - `mz_dibao_ls`: each recipient's periods, 1–4, contiguous and without overlap:
//!   `sfzh`, `ksrq`, `jsrq` (NULL for the current period), `yjje`, `bdyy` 变动原因
//!   (why the period began: `01` 新申请, `02` 保障标准调整, `03` 年度复核,
//!   `04` 家庭人口变化).
//! - `mz_hydj`: one row per person who married (any status but 未婚): `sfzh`, `xm`,
//!   `hyzt` 婚姻状况 (GB/T 2261.2: `20` 已婚, `30` 丧偶, `40` 离婚), `djrq` 结婚登记日期,
//!   `djjg` 登记机关 (the township's government or 街道办事处 before the 2003
//!   regulation, the county bureau's registry since), `po_sfzh`/`po_xm` 配偶 (NULL unless married).
//! - `mz_cjz`: a disability certificate for about 4 % of current residents: `sfzh`,
//!   `xm`, `cjlb` 残疾类别 (`1` 视力 … `7` 多重), `cjdj` 残疾等级 (1–4), `fzrq` 发证日期.

use std::path::Path;

use chrono::{Datelike, Days, Months, NaiveDate};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::dates::{iso, ymd};
use super::population::{Household, HukouType, MaritalStatus, Person, Population, ResidentStatus};

/// The kind of a column, for each dialect's writer to name its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (codes, names, ID numbers).
    Text,
    /// A day, written `YYYY-MM-DD`.
    Date,
    /// Yuan with two decimals, written `620.50` (DECIMAL(10,2) where there is one).
    Money,
    /// A whole number, written in decimal.
    Integer,
}

/// One table of the export: its name, columns and rows, every value as text (or NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<(&'static str, ColumnType)>,
    pub rows: Vec<Vec<Option<String>>>,
}

use ColumnType::{Date, Integer, Money, Text};

/// A table's name and columns.
type Layout = (&'static str, &'static [(&'static str, ColumnType)]);

const DIBAO: Layout = (
    "mz_dibao",
    &[
        ("sfzh", Text),
        ("xm", Text),
        ("hh", Text),
        ("dbzt", Text),
        ("bzlx", Text),
        ("yjje", Money),
        ("ksrq", Date),
    ],
);
const DIBAO_HISTORY: Layout = (
    "mz_dibao_ls",
    &[
        ("sfzh", Text),
        ("ksrq", Date),
        ("jsrq", Date),
        ("yjje", Money),
        ("bdyy", Text),
    ],
);
const MARRIAGE: Layout = (
    "mz_hydj",
    &[
        ("sfzh", Text),
        ("xm", Text),
        ("hyzt", Text),
        ("djrq", Date),
        ("djjg", Text),
        ("po_sfzh", Text),
        ("po_xm", Text),
    ],
);
const DISABILITY: Layout = (
    "mz_cjz",
    &[
        ("sfzh", Text),
        ("xm", Text),
        ("cjlb", Text),
        ("cjdj", Integer),
        ("fzrq", Date),
    ],
);

/// The views the connector reads, over the tables of the same columns.
const VIEWS: [(&str, Layout); 4] = [
    ("v_dibao", DIBAO),
    ("v_dibao_history", DIBAO_HISTORY),
    ("v_marriage", MARRIAGE),
    ("v_disability", DISABILITY),
];

/// The township [`dibao_household`] samples from: 东岭镇, where the demo's clerk works.
pub const SAMPLE_TOWNSHIP: &str = "139901101";

/// The views the connector reads (`v_dibao`, `v_dibao_history`, `v_marriage`,
/// `v_disability`), each with its `CREATE VIEW` statement in SQL every dialect reads.
pub fn views() -> Vec<(&'static str, String)> {
    VIEWS
        .iter()
        .map(|(view, (table, columns))| {
            let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
            (
                *view,
                format!(
                    "CREATE VIEW {view} AS SELECT {} FROM {table}",
                    names.join(", ")
                ),
            )
        })
        .collect()
}

/// Every table of the export for `population`, in a fixed order (`mz_dibao`,
/// `mz_dibao_ls`, `mz_hydj`, `mz_cjz`), rows in the population's order.
pub fn tables(population: &Population) -> Vec<Table> {
    let mut dibao = table(DIBAO);
    let mut history = table(DIBAO_HISTORY);
    for household in &population.households {
        let Some(plan) = dibao_plan(population, household) else {
            continue;
        };
        for person in current_members(population, household) {
            let periods = plan.periods_of(person, population.as_of);
            let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
                continue;
            };
            dibao.rows.push(vec![
                Some(person.id.as_str().to_owned()),
                Some(person.name.clone()),
                Some(household.number.clone()),
                Some(plan.status.to_owned()),
                Some(plan.kind.to_owned()),
                Some(yuan(last.fen)),
                Some(iso(first.start)),
            ]);
            for period in &periods {
                history.rows.push(vec![
                    Some(person.id.as_str().to_owned()),
                    Some(iso(period.start)),
                    period.end.map(iso),
                    Some(yuan(period.fen)),
                    Some(period.reason.to_owned()),
                ]);
            }
        }
    }
    let mut marriage = table(MARRIAGE);
    let mut disability = table(DISABILITY);
    for person in population.residents() {
        if let Some(row) = marriage_row(population, person) {
            marriage.rows.push(row);
        }
        if let Some(row) = disability_row(population, person) {
            disability.rows.push(row);
        }
    }
    vec![dibao, history, marriage, disability]
}

/// The first household of [`SAMPLE_TOWNSHIP`] (东岭镇) receiving 低保 (status `1`)
/// with at least two current members: the tests' and the demo's example of a
/// subsistence-allowance application, whose members all have a `v_dibao` row.
pub fn dibao_household(population: &Population) -> Option<&Household> {
    population.households.iter().find(|h| {
        h.township == SAMPLE_TOWNSHIP
            && current_members(population, h).count() >= 2
            && dibao_plan(population, h).is_some_and(|plan| plan.status == "1")
    })
}

/// Why writing the front database failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the front database path has no file name")]
    Path,
    #[error("cannot write the front database file: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the front database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Writes the export for `population` into a fresh SQLite file at `path` (its
/// directory must exist): the tables in one transaction, an index on each table's
/// `sfzh`, and the [`views`]. An older file there is replaced atomically — the new one
/// is written beside it and renamed over it — so a reader never sees half a file.
pub fn write_sqlite(population: &Population, path: &Path) -> Result<(), WriteError> {
    let name = path.file_name().ok_or(WriteError::Path)?;
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    if let Err(e) = write_file(population, &temp) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(e.into());
    }
    Ok(())
}

fn write_file(population: &Population, path: &Path) -> Result<(), WriteError> {
    let mut db = Connection::open(path)?;
    // A new file that replaces nothing until it is renamed: no journal to keep.
    db.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    let tx = db.transaction()?;
    for table in tables(population) {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    Integer => "INTEGER",
                    // Dates and money as text: exactly as written, two decimals kept.
                    Text | Date | Money => "TEXT",
                };
                let required = if *name == "sfzh" { " NOT NULL" } else { "" };
                format!("{name} {kind}{required}")
            })
            .collect();
        tx.execute_batch(&format!(
            "CREATE TABLE {} ({}); CREATE INDEX {0}_sfzh ON {0} (sfzh);",
            table.name,
            columns.join(", ")
        ))?;
        let marks = vec!["?"; table.columns.len()].join(", ");
        let mut insert = tx.prepare(&format!("INSERT INTO {} VALUES ({marks})", table.name))?;
        for row in &table.rows {
            let values =
                row.iter()
                    .zip(&table.columns)
                    .map(|(value, (_, kind))| match (value, kind) {
                        (None, _) => SqlValue::Null,
                        (Some(text), Integer) => text
                            .parse::<i64>()
                            .map_or_else(|_| SqlValue::Text(text.clone()), SqlValue::Integer),
                        (Some(text), _) => SqlValue::Text(text.clone()),
                    });
            insert.execute(rusqlite::params_from_iter(values))?;
        }
    }
    for (_, statement) in views() {
        tx.execute_batch(&statement)?;
    }
    tx.commit()?;
    db.close().map_err(|(_, e)| e)?;
    Ok(())
}

fn table((name, columns): Layout) -> Table {
    Table {
        name,
        columns: columns.to_vec(),
        rows: Vec::new(),
    }
}

/// Members registered here now (not moved out, not deceased).
fn current_members<'a>(
    population: &'a Population,
    household: &'a Household,
) -> impl Iterator<Item = &'a Person> {
    population
        .members(household)
        .filter(|p| p.status == ResidentStatus::Normal)
}

/// A small deterministic stream (FNV-1a of a tag and a key, then splitmix64 steps):
/// the same key gives the same draws on every platform.
#[derive(Debug, Clone)]
struct Draw(u64);

impl Draw {
    fn new(tag: &str, key: &str) -> Draw {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in tag.bytes().chain([0xff]).chain(key.bytes()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Draw(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `choices` by weight.
    fn weighted<T: Copy>(&mut self, choices: &[(T, u64)]) -> T {
        let total: u64 = choices.iter().map(|(_, w)| w).sum();
        let mut roll = self.below(total);
        for &(choice, weight) in choices {
            if roll < weight {
                return choice;
            }
            roll -= weight;
        }
        choices[0].0
    }

    /// A day in `from..=to` (`from` when the range is empty).
    fn day(&mut self, from: NaiveDate, to: NaiveDate) -> NaiveDate {
        let span = u64::try_from((to - from).num_days()).unwrap_or(0);
        from.checked_add_days(Days::new(self.below(span + 1)))
            .unwrap_or(from)
    }
}

/// A household's 低保: its status and type, and its periods (household amounts).
#[derive(Debug)]
struct DibaoPlan {
    status: &'static str,
    kind: &'static str,
    periods: Vec<Period>,
}

#[derive(Debug, Clone, Copy)]
struct Period {
    start: NaiveDate,
    end: Option<NaiveDate>,
    fen: u64,
    reason: &'static str,
}

/// About 8 % of agricultural households with someone still registered receive 低保.
const DIBAO_PER_MILLE: u64 = 80;

fn dibao_plan(population: &Population, household: &Household) -> Option<DibaoPlan> {
    if household.hukou_type != HukouType::Agricultural {
        return None;
    }
    let youngest = current_members(population, household)
        .map(|p| p.birth_date)
        .max()?;
    let mut draw = Draw::new("dibao", &household.number);
    if !draw.chance(DIBAO_PER_MILLE) {
        return None;
    }
    let mut status = draw.weighted(&[("1", 84), ("2", 8), ("0", 8)]);
    // A village committee's code is 2xx, a community's 0xx (城镇社区: 城市低保).
    let community = household.village.get(9..).is_some_and(|n| n < "200");
    let kind = if community { "1" } else { "2" };
    let this_month = population.as_of.with_day(1).unwrap_or(population.as_of);
    let months_back = 3 + draw.below(96) as u32;
    let first = this_month
        .checked_sub_months(Months::new(months_back))
        .unwrap_or(this_month);
    let month = |n: u32| {
        first
            .checked_add_months(Months::new(n))
            .unwrap_or(this_month)
    };
    // A stopped household stopped after its youngest member was born (so every
    // current member was a recipient); where that cannot be, it still receives.
    let mut span = months_back;
    if status == "0" {
        let earliest = (1..=months_back).find(|&n| month(n) > youngest);
        match earliest {
            Some(lo) => span = lo + draw.below(u64::from(months_back - lo + 1)) as u32,
            None => status = "1",
        }
    }
    let count = (1 + draw.below(4) as u32).min(span);
    let mut fen = match kind {
        "1" => 52_000 + draw.below(3_000) * 10,
        _ => 36_000 + draw.below(3_000) * 10,
    };
    let mut periods = Vec::with_capacity(count as usize);
    for k in 0..count {
        let start = month(k * span / count);
        let end = if k + 1 < count {
            month((k + 1) * span / count).pred_opt()
        } else if status == "0" {
            month(span).pred_opt()
        } else {
            None
        };
        let reason = if k == 0 {
            "01"
        } else {
            fen += 500 + draw.below(400) * 10;
            draw.weighted(&[("02", 5), ("03", 4), ("04", 2)])
        };
        periods.push(Period {
            start,
            end,
            fen,
            reason,
        });
    }
    Some(DibaoPlan {
        status,
        kind,
        periods,
    })
}

impl DibaoPlan {
    /// The household's periods as one member had them: from their birth on (a
    /// period that began with their birth says so: `04` 家庭人口变化), with their own
    /// amount (older members get the 老年人 supplement).
    fn periods_of(&self, person: &Person, as_of: NaiveDate) -> Vec<Period> {
        let mut draw = Draw::new("dibao-member", person.id.as_str());
        let extra = if person.age_on(as_of) >= 60 { 5_000 } else { 0 } + draw.below(30) * 10;
        self.periods
            .iter()
            .filter(|p| p.end.is_none_or(|end| end >= person.birth_date))
            .map(|p| Period {
                start: p.start.max(person.birth_date),
                fen: p.fen + extra,
                reason: if person.birth_date > p.start {
                    "04"
                } else {
                    p.reason
                },
                end: p.end,
            })
            .collect()
    }
}

/// "620.50" for 62050 fen.
fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The 《婚姻登记条例》 took effect on this day: registration moved from township
/// governments to the county bureau's registry.
fn registry_since() -> NaiveDate {
    ymd(2003, 10, 1)
}

fn marriage_row(population: &Population, person: &Person) -> Option<Vec<Option<String>>> {
    let record = &person.fertility;
    let registered = record.marriage_date?;
    if record.marital_status == MaritalStatus::Unmarried {
        return None;
    }
    let office = if registered < registry_since() {
        let township = population
            .household(&person.household)
            .and_then(|h| population.townships.iter().find(|t| t.code == h.township));
        match township {
            // A 街道 has an office (办事处) where a 镇 or 乡 has a government.
            Some(t) if t.name.ends_with("街道") => {
                format!("{}{}办事处", population.county_name, t.name)
            }
            Some(t) => format!("{}{}人民政府", population.county_name, t.name),
            None => format!("{}民政局", population.county_name),
        }
    } else {
        format!("{}民政局婚姻登记处", population.county_name)
    };
    let spouse = record.spouse.as_ref();
    Some(vec![
        Some(person.id.as_str().to_owned()),
        Some(person.name.clone()),
        Some(record.marital_status.code().to_owned()),
        Some(iso(registered)),
        Some(office),
        spouse.map(|s| s.id.as_str().to_owned()),
        spouse.map(|s| s.name.clone()),
    ])
}

/// Certificates of the second generation (第二代残疾人证), issued since mid-2008.
fn certificates_since() -> NaiveDate {
    ymd(2008, 7, 1)
}

fn disability_row(population: &Population, person: &Person) -> Option<Vec<Option<String>>> {
    if person.status != ResidentStatus::Normal {
        return None;
    }
    let mut draw = Draw::new("cjz", person.id.as_str());
    let age = person.age_on(population.as_of);
    let per_mille = match age {
        0..18 => 12,
        18..60 => 30,
        _ => 85,
    };
    if !draw.chance(per_mille) {
        return None;
    }
    // 视力 听力 言语 肢体 智力 精神 多重
    let category = draw.weighted(&[
        ("1", 12),
        ("2", 14),
        ("3", 2),
        ("4", 48),
        ("5", 7),
        ("6", 9),
        ("7", 8),
    ]);
    let level = draw.weighted(&[("1", 12), ("2", 23), ("3", 30), ("4", 35)]);
    let assessed = person
        .birth_date
        .checked_add_days(Days::new(180))
        .unwrap_or(person.birth_date);
    let from = assessed.max(certificates_since()).min(population.as_of);
    let issued = draw.day(from, population.as_of);
    Some(vec![
        Some(person.id.as_str().to_owned()),
        Some(person.name.clone()),
        Some(category.to_owned()),
        Some(level.to_owned()),
        Some(iso(issued)),
    ])
}
