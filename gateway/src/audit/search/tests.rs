//! Search and export on a real log written by the real writer: each filter alone and
//! combined, keyset pagination, time-bound normalisation, CSV quoting and JSON Lines,
//! reading while the writer appends.

use std::path::Path;

use super::testing::{cst, lookup, query_plan, refused, subject, write_log};
use super::*;
use crate::audit::{AuditLog as _, AuditOutcome, MaskedField, SqliteAudit, WithheldField};

/// The time of scenario event `seq` (one a minute from 10:00 CST on 2 March 2026).
fn minute(seq: u64) -> String {
    cst(2026, 3, 2, 10, (seq - 1) as u32, 0)
}

/// Twelve events:
///
/// | seq | user  | township  | connector | purpose | subject | status |
/// | --- | ----- | --------- | --------- | ------- | ------- | ------ |
/// | 1   | alice | 139901001 | hukou     | birth   | s1      | 200    |
/// | 2   | alice | 139901001 | hukou     | birth   | S       | 200    |
/// | 3   | alice | 139901001 | hukou     | subsist | s3      | 200    |
/// | 4   | bob   | 139901001 | hukou     | birth   | s4      | 403    |
/// | 5   | bob   | 139901001 | shebao    | birth   | s5      | 200    |
/// | 6   | carol | 139901002 | hukou     | birth   | S       | 200    |
/// | 7   | alice | 139901001 | hukou     | birth   | s7      | 401    |
/// | 8   | bob   | 139901001 | hukou     | subsist | s8      | 200    |
/// | 9   | carol | 139901002 | shebao    | birth   | s9      | 200    |
/// | 10  | alice | 139901001 | hukou     | birth   | s10     | 502    |
/// | 11  | bob   | 139901001 | hukou     | birth   | S       | 200    |
/// | 12  | carol | 139901002 | hukou     | birth   | s12     | 404    |
fn scenario() -> Vec<AuditEvent> {
    let users = [
        "alice", "alice", "alice", "bob", "bob", "carol", "alice", "bob", "carol", "alice", "bob",
        "carol",
    ];
    let mut events = Vec::new();
    for seq in 1..=12u64 {
        let user = users[(seq - 1) as usize];
        let mut e = lookup(seq, &minute(seq), user);
        if user == "carol" {
            e.caller.township = Some("139901002".into());
        }
        if matches!(seq, 5 | 9) {
            e.connector = Some("shebao".into());
        }
        if matches!(seq, 3 | 8) {
            e.purpose = Some("subsistence_allowance".into());
        }
        if matches!(seq, 2 | 6 | 11) {
            e.subject_pseudonym = Some(subject(100));
        }
        let status = |status: u16, problem: &str| AuditOutcome {
            status,
            problem: Some(problem.into()),
        };
        match seq {
            4 => e = refused(e, "hukou-birth-registration"),
            7 => e.outcome = status(401, "unauthenticated"),
            10 => e.outcome = status(502, "upstream_unavailable"),
            12 => e.outcome = status(404, "subject_not_found"),
            _ => {}
        }
        events.push(e);
    }
    events
}

fn seqs(dir: &Path, filter: &Filter) -> Vec<u64> {
    let page = search(dir, filter, None, MAX_PAGE).unwrap();
    assert_eq!(page.next, None);
    page.events.iter().map(|e| e.seq).collect()
}

fn text(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[tokio::test]
async fn each_filter_alone_and_combined_finds_exactly_its_events() {
    let dir = write_log(scenario()).await;
    let dir = dir.path();
    let all: Vec<u64> = (1..=12).rev().collect();
    assert_eq!(seqs(dir, &Filter::default()), all);

    let cases: Vec<(Filter, Vec<u64>)> = vec![
        (
            Filter {
                subject_pseudonym: Some(subject(100)),
                ..Filter::default()
            },
            vec![11, 6, 2],
        ),
        (
            Filter {
                user: text("alice"),
                ..Filter::default()
            },
            vec![10, 7, 3, 2, 1],
        ),
        (
            Filter {
                township: text("139901002"),
                ..Filter::default()
            },
            vec![12, 9, 6],
        ),
        (
            Filter {
                connector: text("shebao"),
                ..Filter::default()
            },
            vec![9, 5],
        ),
        (
            Filter {
                purpose: text("subsistence_allowance"),
                ..Filter::default()
            },
            vec![8, 3],
        ),
        (
            Filter {
                outcome: Some(OutcomeClass::Ok),
                ..Filter::default()
            },
            vec![11, 9, 8, 6, 5, 3, 2, 1],
        ),
        (
            Filter {
                outcome: Some(OutcomeClass::Refused),
                ..Filter::default()
            },
            vec![7, 4],
        ),
        (
            Filter {
                outcome: Some(OutcomeClass::Failed),
                ..Filter::default()
            },
            vec![12, 10],
        ),
        (
            Filter {
                status: Some(403),
                ..Filter::default()
            },
            vec![4],
        ),
        (
            Filter {
                from: Some(minute(4)),
                ..Filter::default()
            },
            (4..=12).rev().collect(),
        ),
        (
            Filter {
                until: Some(minute(4)),
                ..Filter::default()
            },
            vec![3, 2, 1],
        ),
        // Another offset, the same instants: 10:03 CST is 02:03 UTC.
        (
            Filter {
                from: text("2026-03-02T10:03:00+08:00"),
                until: text("2026-03-02T02:06:00Z"),
                ..Filter::default()
            },
            vec![6, 5, 4],
        ),
        // A finer fraction rounds up to the next millisecond: still inclusive …
        (
            Filter {
                from: text("2026-03-02T02:02:59.9995Z"),
                until: text("2026-03-02T02:04:00.000001Z"),
                ..Filter::default()
            },
            vec![5, 4],
        ),
        // … and still exclusive.
        (
            Filter {
                from: text("2026-03-02T02:03:00.0005Z"),
                until: text("2026-03-02T02:05:00Z"),
                ..Filter::default()
            },
            vec![5],
        ),
        (
            Filter {
                user: text("alice"),
                purpose: text("birth_registration"),
                outcome: Some(OutcomeClass::Ok),
                ..Filter::default()
            },
            vec![2, 1],
        ),
        (
            Filter {
                township: text("139901001"),
                connector: text("hukou"),
                from: Some(minute(5)),
                ..Filter::default()
            },
            vec![11, 10, 8, 7],
        ),
        (
            Filter {
                subject_pseudonym: Some(subject(100)),
                user: text("bob"),
                ..Filter::default()
            },
            vec![11],
        ),
        (
            Filter {
                user: text("carol"),
                status: Some(200),
                ..Filter::default()
            },
            vec![9, 6],
        ),
        (
            Filter {
                user: text("carol"),
                outcome: Some(OutcomeClass::Refused),
                ..Filter::default()
            },
            vec![],
        ),
        // Values are bound, never spliced into the SQL.
        (
            Filter {
                user: text("alice' OR '1'='1"),
                ..Filter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(seqs(dir, &filter), expected, "{filter:?}");
    }

    // The events come back as they were written.
    let page = search(dir, &Filter::default(), None, 1).unwrap();
    assert_eq!(page.events[0].event, scenario()[11]);
    assert_eq!(page.events[0].hash.len(), 64);
    assert_eq!(page.next, Some(12));
}

#[tokio::test]
async fn pages_of_ten_cover_twenty_five_events_without_overlap() {
    let events = (1..=25)
        .map(|n| lookup(n, &cst(2026, 3, 2, 9, n as u32, 0), "alice"))
        .collect();
    let dir = write_log(events).await;
    let dir = dir.path();
    let filter = Filter::default();

    let first = search(dir, &filter, None, 10).unwrap();
    let second = search(dir, &filter, first.next, 10).unwrap();
    let third = search(dir, &filter, second.next, 10).unwrap();
    let seqs = |page: &Page| page.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&first), (16..=25).rev().collect::<Vec<_>>());
    assert_eq!(first.next, Some(16));
    assert_eq!(seqs(&second), (6..=15).rev().collect::<Vec<_>>());
    assert_eq!(second.next, Some(6));
    assert_eq!(seqs(&third), vec![5, 4, 3, 2, 1]);
    assert_eq!(third.next, None);

    // `before` alone; a page that ends exactly at the oldest event says so.
    let page = search(dir, &filter, Some(11), 10).unwrap();
    assert_eq!(seqs(&page), (1..=10).rev().collect::<Vec<_>>());
    assert_eq!(page.next, None);
    assert!(search(dir, &filter, Some(1), 10).unwrap().events.is_empty());

    // Pagination combines with filters: the time bound keeps 20 of them.
    let filter = Filter {
        from: Some(cst(2026, 3, 2, 9, 6, 0)),
        ..Filter::default()
    };
    let first = search(dir, &filter, None, 10).unwrap();
    let second = search(dir, &filter, first.next, 10).unwrap();
    assert_eq!(seqs(&second), (6..=15).rev().collect::<Vec<_>>());
    assert_eq!(second.next, None);

    // The limit is 1 to MAX_PAGE; another is refused, naming it.
    assert_eq!(search(dir, &filter, None, 1).unwrap().events.len(), 1);
    for limit in [0, MAX_PAGE + 1, usize::MAX] {
        let error = search(dir, &Filter::default(), None, limit).unwrap_err();
        assert!(
            matches!(&error, SearchError::InvalidFilter("limit", why) if why.contains("1000")),
            "{error}"
        );
    }
    let all = search(dir, &Filter::default(), None, MAX_PAGE).unwrap();
    assert_eq!(all.events.len(), 25);
    assert_eq!(all.next, None);
}

#[tokio::test]
async fn a_bad_filter_is_refused_clearly() {
    let dir = write_log(scenario()).await;
    let bad = [
        Filter {
            from: text("yesterday"),
            ..Filter::default()
        },
        Filter {
            until: text("2026-13-01T00:00:00Z"),
            ..Filter::default()
        },
        // No offset: which time zone is meant is not known.
        Filter {
            from: text("2026-03-01T08:00:00"),
            ..Filter::default()
        },
        Filter {
            from: Some(minute(5)),
            until: Some(minute(5)),
            ..Filter::default()
        },
        Filter {
            status: Some(42),
            ..Filter::default()
        },
    ];
    for filter in bad {
        let error = search(dir.path(), &filter, None, 10).unwrap_err();
        assert!(
            matches!(error, SearchError::InvalidFilter(..)),
            "{filter:?}: {error}"
        );
        let mut out = Vec::new();
        let error = export(dir.path(), &filter, ExportFormat::Csv(Lang::En), &mut out).unwrap_err();
        assert!(matches!(error, SearchError::InvalidFilter(..)));
        assert!(out.is_empty());
    }
    let error = search(
        dir.path(),
        &Filter {
            from: text("yesterday"),
            ..Filter::default()
        },
        None,
        10,
    )
    .unwrap_err();
    assert!(error.to_string().contains("`from` is neither a date"));
    assert!(!error.to_string().contains("yesterday"));

    // Unknown criteria are refused, not ignored.
    assert!(serde_json::from_str::<Filter>(r#"{"usr": "alice"}"#).is_err());
    let filter: Filter =
        serde_json::from_str(r#"{"user": "alice", "outcome": "refused", "status": 401}"#).unwrap();
    assert_eq!(seqs(dir.path(), &filter), vec![7]);
}

#[test]
fn a_missing_log_is_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let error = search(dir.path(), &Filter::default(), None, 10).unwrap_err();
    assert!(matches!(error, SearchError::NoLog(_)), "{error}");
    assert!(!dir.path().join(AUDIT_FILE).exists());
}

/// A small RFC 4180 reader: records of cells, quoted cells may hold commas, doubled
/// quotes and line breaks; records end in CRLF.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(cell.is_empty(), "a quote inside an unquoted cell");
                quoted = true;
            }
            ',' => record.push(std::mem::take(&mut cell)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF outside quotes");
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("LF without CR outside quotes"),
            _ => cell.push(c),
        }
    }
    assert!(!quoted, "an unterminated quoted cell");
    assert!(
        cell.is_empty() && record.is_empty(),
        "the last record has no CRLF"
    );
    records
}

fn awkward_events() -> Vec<AuditEvent> {
    let mut events: Vec<AuditEvent> = (1..=4).map(|n| lookup(n, &minute(n), "alice")).collect();
    let e = &mut events[1];
    e.case_id = Some("CASE \"7\", line one\nline two\r\nend".into());
    e.caller.roles = vec!["clerk".into(), "township_lead".into()];
    e.caller.department = Some("民政局, 社会救助科".into());
    e.fields_masked = vec![
        MaskedField {
            field: "name".into(),
            mask: "name".into(),
        },
        MaskedField {
            field: "address".into(),
            mask: "address_to_village".into(),
        },
    ];
    e.fields_withheld = vec![
        WithheldField {
            field: "income".into(),
            reason: "never_shared".into(),
            rule: None,
        },
        WithheldField {
            field: "household_number".into(),
            reason: "row_condition".into(),
            rule: Some("hukou-birth-registration".into()),
        },
    ];
    events[2] = refused(events[2].clone(), "deny-grid-workers-households");
    events[3].disclose_after = Some("2026-09-01".into());
    events
}

#[tokio::test]
async fn csv_export_quotes_awkward_cells_and_reads_back() {
    let dir = write_log(awkward_events()).await;
    let stored = {
        let mut page = search(dir.path(), &Filter::default(), None, 10).unwrap();
        page.events.reverse();
        page.events
    };
    let mut out = Vec::new();
    let count = export(
        dir.path(),
        &Filter::default(),
        ExportFormat::Csv(Lang::En),
        &mut out,
    )
    .unwrap();
    assert_eq!(count, 4);
    let csv = String::from_utf8(out).unwrap();
    let csv = csv.strip_prefix(UTF8_BOM).expect("a BOM first");
    assert!(csv.starts_with(
        "seq,time,request_id,user,roles,township,department,app,source_ip,purpose,case_id,\
         connector,operation,subject_pseudonym,subject_masked,fields_returned,fields_masked,\
         fields_withheld,rules,policy_version,status,problem,upstream_latency_ms,hash\r\n"
    ));
    assert!(csv.contains(",\"CASE \"\"7\"\", line one\nline two\r\nend\","));
    assert!(csv.contains(",\"民政局, 社会救助科\","));

    let records = read_csv(csv);
    assert_eq!(records.len(), 5);
    assert_eq!(records[0], CSV_HEADER.map(str::to_owned).to_vec());
    for (record, stored) in records[1..].iter().zip(&stored) {
        assert_eq!(record.len(), CSV_HEADER.len());
        assert_eq!(record, &csv_fields(stored).to_vec());
    }
    let second = &records[2];
    let cell = |name: &str| second[CSV_HEADER.iter().position(|h| *h == name).unwrap()].as_str();
    assert_eq!(cell("seq"), "2");
    assert_eq!(cell("case_id"), "CASE \"7\", line one\nline two\r\nend");
    assert_eq!(cell("roles"), "clerk;township_lead");
    assert_eq!(cell("department"), "民政局, 社会救助科");
    assert_eq!(cell("fields_returned"), "name;birth_date");
    assert_eq!(
        cell("fields_masked"),
        "name:name;address:address_to_village"
    );
    assert_eq!(
        cell("fields_withheld"),
        "income:never_shared;household_number:row_condition"
    );
    assert_eq!(cell("status"), "200");
    assert_eq!(cell("upstream_latency_ms"), "15");
    assert_eq!(cell("hash"), stored[1].hash);
    let third = &records[3];
    assert_eq!(third[20], "403");
    assert_eq!(third[21], "forbidden");
    assert_eq!(third[22], "", "no latency: an empty cell");
    assert_eq!(third[18], "deny-grid-workers-households");

    // The export is filtered like a search; no match gives the header alone.
    let mut out = Vec::new();
    let filter = Filter {
        user: text("nobody"),
        ..Filter::default()
    };
    assert_eq!(
        export(dir.path(), &filter, ExportFormat::Csv(Lang::ZhCn), &mut out).unwrap(),
        0
    );
    let text = String::from_utf8(out).unwrap();
    let only = read_csv(text.strip_prefix(UTF8_BOM).expect("a BOM first"));
    assert_eq!(only, vec![CSV_HEADER_ZH.map(str::to_owned).to_vec()]);
}

#[tokio::test]
async fn csv_cells_a_spreadsheet_would_evaluate_are_written_as_text() {
    let mut events = awkward_events();
    events[0].case_id = Some("=HYPERLINK(\"http://x.example\",\"点我\")".into());
    events[1].case_id = Some("+1".into());
    events[2].case_id = Some("-2+3".into());
    events[3].case_id = Some("@SUM(A1)".into());
    events[3].purpose = Some("\tcmd".into());
    let dir = write_log(events).await;
    let mut out = Vec::new();
    export(
        dir.path(),
        &Filter::default(),
        ExportFormat::Csv(Lang::En),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let records = read_csv(text.strip_prefix(UTF8_BOM).expect("a BOM first"));
    let column = |name: &str| CSV_HEADER.iter().position(|h| *h == name).unwrap();
    let cases: Vec<&str> = records[1..]
        .iter()
        .map(|r| r[column("case_id")].as_str())
        .collect();
    assert_eq!(
        cases,
        [
            "'=HYPERLINK(\"http://x.example\",\"点我\")",
            "'+1",
            "'-2+3",
            "'@SUM(A1)"
        ]
    );
    assert_eq!(records[4][column("purpose")], "'\tcmd");
    for record in &records[1..] {
        for cell in record {
            assert!(!cell.starts_with(FORMULA_STARTS), "{cell:?}");
        }
    }
}

#[test]
fn csv_cells_are_quoted_only_when_needed() {
    let mut line = String::new();
    for cell in [
        "plain",
        "a,b",
        "say \"hi\"",
        "cr\rhere",
        "lf\nhere",
        "",
        "中文",
    ] {
        push_csv_cell(&mut line, cell);
        line.push('|');
    }
    assert_eq!(
        line,
        "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"cr\rhere\"|\"lf\nhere\"||中文|"
    );
}

#[tokio::test]
async fn json_lines_export_reads_back_as_the_same_events_oldest_first() {
    let events = awkward_events();
    let dir = write_log(events.clone()).await;
    let mut out = Vec::new();
    let count = export(
        dir.path(),
        &Filter::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .unwrap();
    assert_eq!(count, 4);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let mut newest_first = search(dir.path(), &Filter::default(), None, 10)
        .unwrap()
        .events;
    newest_first.reverse();
    for ((line, written), stored) in lines.iter().zip(&events).zip(&newest_first) {
        let read: StoredEvent = serde_json::from_str(line).unwrap();
        assert_eq!(&read.event, written);
        assert_eq!(&read, stored);
    }
    // `disclose_after` only where it was set, as on the event.
    assert!(!lines[0].contains("disclose_after"));
    assert!(lines[3].contains("\"disclose_after\":\"2026-09-01\""));

    let filter = Filter {
        outcome: Some(OutcomeClass::Refused),
        ..Filter::default()
    };
    let mut out = Vec::new();
    assert_eq!(
        export(dir.path(), &filter, ExportFormat::JsonLines, &mut out).unwrap(),
        1
    );
    let read: StoredEvent = serde_json::from_slice(out.trim_ascii_end()).unwrap();
    assert_eq!(read.seq, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_consistent_snapshots_while_the_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let audit = SqliteAudit::open(dir.path(), Default::default()).unwrap();
    for n in 1..=50 {
        audit
            .append(lookup(n, &cst(2026, 3, 2, 9, 0, 0), "alice"))
            .await
            .unwrap();
    }
    let writer = {
        let audit = audit.clone();
        tokio::spawn(async move {
            for n in 51..=300 {
                audit
                    .append(lookup(n, &cst(2026, 3, 2, 9, 0, 0), "alice"))
                    .await
                    .unwrap();
            }
        })
    };
    let data_dir = dir.path().to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let mut last_seen = 0;
        for _ in 0..20 {
            let page = search(&data_dir, &Filter::default(), None, 1000).unwrap();
            let newest = page.events[0].seq;
            assert!(newest >= last_seen && newest >= 50);
            let expected: Vec<u64> = (1..=newest).rev().collect();
            let got: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
            assert_eq!(got, expected, "a gap or a duplicate in a snapshot");
            let mut out = Vec::new();
            let count = export(
                &data_dir,
                &Filter::default(),
                ExportFormat::JsonLines,
                &mut out,
            )
            .unwrap();
            assert!(count >= newest);
            last_seen = newest;
        }
    });
    reader.await.unwrap();
    writer.await.unwrap();
    let page = search(dir.path(), &Filter::default(), None, 1).unwrap();
    assert_eq!(page.events[0].seq, 300);
    audit.shutdown().await;
}

#[tokio::test]
async fn filtered_reads_go_through_the_filters_index() {
    let dir = write_log(scenario()).await;
    let plan = |filter: &Filter, export: bool| {
        let clause = Clause::of(filter).unwrap();
        let sql = if export {
            export_sql(&clause.sql())
        } else {
            page_sql(true, &clause.sql())
        };
        query_plan(dir.path(), &sql)
    };
    let by_user = Filter {
        user: text("alice"),
        outcome: Some(OutcomeClass::Ok),
        ..Filter::default()
    };
    for export in [false, true] {
        let plan = plan(&by_user, export);
        assert!(plan.contains("INDEX events_user"), "{plan}");
        assert!(!plan.contains("events_status"), "{plan}");
    }
    let by_subject = Filter {
        subject_pseudonym: Some(subject(100)),
        status: Some(200),
        ..Filter::default()
    };
    let subject_plan = plan(&by_subject, false);
    assert!(
        subject_plan.contains("INDEX events_subject"),
        "{subject_plan}"
    );
    let refusals = Filter {
        outcome: Some(OutcomeClass::Refused),
        ..Filter::default()
    };
    let refusal_plan = plan(&refusals, true);
    assert!(
        refusal_plan.contains("INDEX events_status"),
        "{refusal_plan}"
    );
    let window = Filter {
        from: Some(minute(3)),
        until: Some(minute(5)),
        ..Filter::default()
    };
    let window_plan = plan(&window, false);
    assert!(window_plan.contains("INDEX events_time"), "{window_plan}");
}

#[test]
fn a_date_is_that_day_in_china_and_an_instant_any_offset() {
    let at = |bound, text| format_time(parse_time_bound(bound, text).unwrap());
    assert_eq!(at(Bound::From, "2026-12-01"), "2026-11-30T16:00:00.000Z");
    assert_eq!(at(Bound::Until, "2026-12-01"), "2026-12-01T16:00:00.000Z");
    assert_eq!(
        at(Bound::Until, "2026-12-01T08:00:00+08:00"),
        "2026-12-01T00:00:00.000Z"
    );
    for bad in ["2026-12-32", "yesterday", "2026-12-01T08:00:00"] {
        let error = parse_time_bound(Bound::From, bad).unwrap_err();
        assert!(
            matches!(&error, SearchError::InvalidFilter("from", why) if !why.contains(bad)),
            "{error}"
        );
    }
}
