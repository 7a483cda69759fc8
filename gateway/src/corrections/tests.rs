//! The rules of corrections without a server: who sees and answers which, the
//! deadline and the overdue mark, the queue's order, retention at an injected time,
//! and that nothing the citizen stated reaches an event's operation or a problem.

use super::*;
use crate::calendar::Calendar;
use crate::registry::Stated;
use chrono::{DateTime, Utc};

pub(crate) fn caller(
    user: &str,
    roles: &[Role],
    township: Option<&str>,
    dept: Option<&str>,
) -> Caller {
    Caller {
        user: user.to_owned(),
        issuer: "test".to_owned(),
        roles: roles.iter().copied().collect(),
        township: township.map(str::to_owned),
        county: township.map(|t| t[..6].to_owned()),
        department: dept.map(str::to_owned),
        villages: Default::default(),
        app: None,
        expires_at: 0,
    }
}

fn day(text: &str) -> NaiveDate {
    crate::access::parse_date(text).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A correction of 东岭镇 to hukou's `name`, filed on `created` (deadline five
/// working days later).
pub(crate) fn correction(created: &str, state: CorrectionState) -> Correction {
    Correction {
        id: "cr-test".to_owned(),
        connector: "hukou".to_owned(),
        department: "county-psb".to_owned(),
        operation: "person_by_id".to_owned(),
        field: "name".to_owned(),
        subject_pseudonym: "psn_00".to_owned(),
        subject_masked: "139901********123X".to_owned(),
        case_id: "CASE-1".to_owned(),
        evidence: "户口簿复印件".to_owned(),
        township: "139901101".to_owned(),
        filed_by: "clerk".to_owned(),
        created_at: format!("{created}T02:00:00.000Z"),
        deadline: crate::calendar::Calendar::default()
            .add_working_days(day(created), 5)
            .to_string(),
        state,
        answered_at: None,
        answered_by: None,
        reason: None,
        erased_at: None,
        stated: Some(Stated {
            value: "邓俊豪".to_owned(),
            note: "姓名末字登记有误".to_owned(),
        }),
    }
}

#[test]
fn the_filing_township_and_the_owning_department_see_a_correction_and_no_one_else() {
    let c = correction("2026-05-08", CorrectionState::Open);
    let clerk = caller("c", &[Role::Clerk], Some("139901101"), None);
    let grid = caller("g", &[Role::GridWorker], Some("139901101"), None);
    let other_clerk = caller("c2", &[Role::Clerk], Some("139901201"), None);
    let admin = caller("a", &[Role::DeptAdmin], None, Some("county-psb"));
    let other_admin = caller("a2", &[Role::DeptAdmin], None, Some("county-hrss"));
    let officer = caller("p", &[Role::PrivacyOfficer], None, None);
    let operator = caller("o", &[Role::Operator], None, None);
    assert!(visible(&clerk, &c) && visible(&grid, &c) && visible(&admin, &c));
    assert!(!visible(&other_clerk, &c));
    assert!(!visible(&other_admin, &c));
    assert!(!visible(&officer, &c) && !may_list(&officer));
    assert!(!may_list(&operator));
    // Only the owning department answers; the township that filed it does not.
    assert!(answers(&admin, &c));
    assert!(!answers(&other_admin, &c));
    assert!(!answers(&clerk, &c));
    // Only lookup roles of a township file.
    assert_eq!(filing_township(&clerk), Some("139901101"));
    assert_eq!(filing_township(&admin), None);
    assert_eq!(
        filing_township(&caller("x", &[Role::Clerk], None, None)),
        None
    );
}

#[test]
fn five_working_days_then_overdue_by_working_days() {
    // Filed on Friday 2026-05-08: due Friday 2026-05-15.
    let c = correction("2026-05-08", CorrectionState::Open);
    assert_eq!(c.deadline, "2026-05-15");
    assert_eq!(
        overdue_by(&c, day("2026-05-15"), &Calendar::default()),
        None,
        "due on the day itself"
    );
    assert_eq!(
        overdue_by(&c, day("2026-05-18"), &Calendar::default()),
        Some(1)
    );
    // The weekend does not count.
    assert_eq!(
        overdue_by(&c, day("2026-05-17"), &Calendar::default()),
        Some(0)
    );
    assert_eq!(
        overdue_by(&c, day("2026-05-20"), &Calendar::default()),
        Some(3)
    );
    let answered = correction("2026-05-08", CorrectionState::Accepted);
    assert_eq!(
        overdue_by(&answered, day("2026-05-20"), &Calendar::default()),
        None
    );
    let view = CorrectionView::of(&c, day("2026-05-20"), &Calendar::default());
    assert!(view.overdue);
    assert_eq!(view.working_days_overdue, 3);
}

#[test]
fn the_queue_lists_open_ones_first_then_oldest_first() {
    let mk = |id: &str, created: &str, state| Correction {
        id: id.to_owned(),
        ..correction(created, state)
    };
    let mut all = vec![
        mk("cr-1", "2026-05-04", CorrectionState::Accepted),
        mk("cr-2", "2026-05-05", CorrectionState::Open),
        mk("cr-3", "2026-05-06", CorrectionState::Rejected),
        mk("cr-4", "2026-05-07", CorrectionState::Open),
    ];
    queue_order(&mut all);
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cr-2", "cr-4", "cr-1", "cr-3"]);
}

#[test]
fn what_the_citizen_stated_is_kept_until_retention_after_the_answer() {
    let open = correction("2026-05-08", CorrectionState::Open);
    // Open: kept, however long.
    assert!(!erasable(&open, at("2027-05-08T00:00:00Z"), 30));
    let answered = Correction {
        state: CorrectionState::Rejected,
        answered_at: Some("2026-05-11T02:00:00.000Z".to_owned()),
        ..open.clone()
    };
    assert!(!erasable(&answered, at("2026-06-10T01:59:59Z"), 30));
    assert!(erasable(&answered, at("2026-06-10T02:00:00Z"), 30));
    // Already erased: nothing left to erase.
    let erased = Correction {
        stated: None,
        erased_at: Some("2026-06-10T02:00:00.000Z".to_owned()),
        ..answered.clone()
    };
    assert!(!erasable(&erased, at("2027-01-01T00:00:00Z"), 30));
    let view = CorrectionView::of(&erased, day("2026-06-11"), &Calendar::default());
    assert_eq!(view.stated_value, None);
    assert_eq!(view.note, None);
    assert_eq!(view.state, CorrectionState::Rejected);
}

#[test]
fn an_events_operation_names_ids_and_never_what_was_stated() {
    let c = correction("2026-05-08", CorrectionState::Open);
    let op = event_operation("filed", &c);
    assert_eq!(
        op,
        "correction.filed cr-test op=person_by_id field=name dept=county-psb"
    );
    assert!(!op.contains("邓俊豪") && !op.contains("姓名末字"));
    // The stored body never holds the statement either.
    let body = serde_json::to_string(&c).unwrap();
    assert!(
        !body.contains("邓俊豪") && !body.contains("姓名末字"),
        "{body}"
    );
    let body = NewCorrection {
        stated_value: "邓俊豪".to_owned(),
        subject: SubjectBody {
            id_number: "139901199003071234".to_owned(),
        },
        ..NewCorrection::default()
    };
    let debug = format!("{body:?}");
    assert!(
        !debug.contains("邓俊豪") && !debug.contains("1399011990"),
        "{debug}"
    );
}

#[test]
fn a_correction_id_is_short_and_plain() {
    let id = new_id();
    assert!(id.starts_with("cr-") && id.len() == 35, "{id}");
    assert_eq!(crate::admin::short(&id), id);
}
