//! Filing a correction: the body, its checks (every problem at once, none echoing
//! what was sent), the check that the township was shown the value, and the commit.

use chrono::{DateTime, Utc};
use connectors::definition::Sharing;
use connectors::subject::IdNumber;
use serde::Deserialize;

use super::*;
use crate::app::App;
use crate::audit::{EventKind, Filter, OutcomeClass};
use crate::registry::{Change, Stated};

/// `POST /v1/corrections` as a township's clerk sends it.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CorrectionNew)]
pub struct NewCorrection {
    #[schema(example = "hukou")]
    pub connector: String,
    #[schema(example = "person_by_id")]
    pub operation: String,
    /// A leaf path of the operation's record, one the gateway shares (not `never`).
    #[schema(example = "name")]
    pub field: String,
    pub subject: SubjectBody,
    /// The value the citizen states (at most 200 characters). Personal data: kept
    /// until `corrections.retention_days` after the answer, never logged or echoed.
    pub stated_value: String,
    /// The clerk's note: free text without ID numbers or phone numbers, at most 1000
    /// characters.
    #[serde(default)]
    pub note: String,
    /// The clerk's case (办件编号), as for lookups.
    #[schema(example = "低保-2026-0012")]
    pub case_id: String,
    /// Where the evidence is (a document's reference): free text without ID numbers
    /// or phone numbers, at most 200 characters.
    #[serde(default)]
    #[schema(example = "户口簿第3页复印件，窗口存档 2026-05-12")]
    pub evidence: String,
}

impl std::fmt::Debug for NewCorrection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCorrection")
            .field("connector", &self.connector)
            .field("operation", &self.operation)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

/// Who the correction is about.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CorrectionSubject)]
pub struct SubjectBody {
    #[schema(example = "139901199003071234")]
    pub id_number: String,
}

impl std::fmt::Debug for SubjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectBody(<redacted>)")
    }
}

pub const NEW_CORRECTION_SHAPE: &str =
    "{connector, operation, field, subject: {id_number}, stated_value, note?, case_id, evidence?}";

/// What a valid body flags.
struct Checked {
    connector: String,
    department: String,
    operation: String,
    field: String,
    subject: IdNumber,
    stated: Stated,
    case_id: String,
    evidence: String,
}

/// The stated value as stored: normalized, required, bounded, on one line. Unlike a
/// note it may hold an ID number or a phone number — the field may be one.
fn stated_value(text: &str) -> Result<String, &'static str> {
    let text = crate::text::normalize(text);
    if text.is_empty() {
        return Err("state the value the citizen gives");
    }
    if text.chars().count() > MAX_VALUE_CHARS {
        return Err("is longer than 200 characters");
    }
    if text.chars().any(char::is_control) {
        return Err("may not contain control characters");
    }
    Ok(text)
}

/// Checks a body against the configuration, reporting every problem; an invalid ID
/// number is its own problem (`invalid-id-number`), as for lookups.
fn check(body: &NewCorrection, config: &crate::config::ActiveConfig) -> Result<Checked, Problem> {
    let subject = IdNumber::parse(&body.subject.id_number).map_err(|e| {
        Problem::new(ProblemKind::InvalidIdNumber, e.to_string()).with("at", "subject.id_number")
    })?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |path: &str, message: &str| problems.push((path.into(), message.into()));
    let connector = config.connectors.get(&body.connector);
    let operation = connector.and_then(|c| c.operations.get(&body.operation));
    match (connector, operation) {
        (None, _) => problem("connector", "is not a configured connector"),
        (Some(_), None) => problem("operation", "is not an operation of the connector"),
        (Some(_), Some(op)) => match op.leaves.iter().find(|l| l.path == body.field) {
            None => problem("field", "is not a field of the operation's record"),
            Some(leaf) if leaf.sharing == Sharing::Never => problem(
                "field",
                "is never shared (不予共享): it cannot have been shown",
            ),
            Some(_) => {}
        },
    }
    let value = match stated_value(&body.stated_value) {
        Ok(v) => Some(v),
        Err(message) => {
            problem("stated_value", message);
            None
        }
    };
    let mut free = |at: &str, text: &str, max: usize| -> Option<String> {
        match crate::text::free_text(text, max, false) {
            Ok(text) => Some(text),
            Err(e) => {
                problem(at, &e.to_string());
                None
            }
        }
    };
    let note = free("note", &body.note, MAX_NOTE_CHARS);
    let evidence = free("evidence", &body.evidence, MAX_EVIDENCE_CHARS);
    let case_id = match crate::lookup::check_case_id(&body.case_id) {
        Ok(c) => Some(c),
        Err(e) => {
            problem("case_id", &e.to_string());
            None
        }
    };
    match (connector, value, note, evidence, case_id) {
        (Some(c), Some(value), Some(note), Some(evidence), Some(case_id))
            if problems.is_empty() =>
        {
            Ok(Checked {
                connector: c.def.id.clone(),
                department: c.def.department.id.clone(),
                operation: body.operation.clone(),
                field: body.field.clone(),
                subject,
                stated: Stated { value, note },
                case_id,
                evidence,
            })
        }
        _ => Err(crate::access::invalid(&problems, "correction")),
    }
}

/// Whether a released field (`fields_returned` of a lookup) shows `field`: the same
/// path, or a part of it or a whole it is part of (`address` and
/// `address.village_code`).
fn shows(returned: &str, field: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    returned == field || within(returned, field) || within(field, returned)
}

/// Whether the audit log holds a lookup by `township` of the subject that released
/// the field within [`SHOWN_WITHIN_DAYS`] days before `now`.
async fn was_shown(
    app: &App,
    township: &str,
    pseudonym: &str,
    checked: &Checked,
    now: DateTime<Utc>,
) -> Result<bool, crate::audit::SearchError> {
    let from = now - chrono::Duration::days(SHOWN_WITHIN_DAYS);
    let filter = Filter {
        subject_pseudonym: Some(pseudonym.to_owned()),
        township: Some(township.to_owned()),
        connector: Some(checked.connector.clone()),
        outcome: Some(OutcomeClass::Ok),
        from: Some(from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ..Filter::default()
    };
    let page = app.audit_reader.search(filter, None, 500).await?;
    Ok(page.events.iter().any(|stored| {
        let e = &stored.event;
        e.kind == EventKind::Lookup
            && e.operation.as_deref() == Some(checked.operation.as_str())
            && e.fields_returned.iter().any(|f| shows(f, &checked.field))
    }))
}

/// Files a correction for the caller's township (`body` is the correction as read,
/// or the problem reading it; either way the attempt is audited).
pub async fn file(
    app: &App,
    who: &Who,
    body: Result<NewCorrection, Problem>,
) -> Result<Correction, Problem> {
    let mut act = who.start(app, "correction.file");
    let Some(township) = filing_township(&who.caller).map(str::to_owned) else {
        let p = Problem::new(
            ProblemKind::Forbidden,
            "Only a township's clerks, grid workers and leads file corrections.",
        )
        .with("rule", ROLE_RULE)
        .with("reason", "role");
        return Err(act.refuse(p).await);
    };
    let body = match body {
        Ok(body) => body,
        Err(p) => return Err(act.refuse(p).await),
    };
    let config = app.config.load_full();
    act.event.connector = config
        .connectors
        .get(&body.connector)
        .map(|c| c.def.id.clone());
    let checked = match check(&body, &config) {
        Ok(checked) => checked,
        Err(p) => return Err(act.refuse(p).await),
    };
    let pseudonym = app.pseudonym.pseudonym(checked.subject.as_str());
    act.event.subject_pseudonym = Some(pseudonym.clone());
    act.event.subject_masked = Some(checked.subject.masked());
    act.event.case_id = Some(checked.case_id.clone());
    let now = app.clock.now();
    match was_shown(app, &township, &pseudonym, &checked, now).await {
        Ok(true) => {}
        Ok(false) => {
            let p = Problem::new(
                ProblemKind::Forbidden,
                format!(
                    "A correction flags a value the township was shown: no lookup by your township in the last {SHOWN_WITHIN_DAYS} days released this field of this operation for this person."
                ),
            )
            .with("rule", SHOWN_RULE)
            .with("reason", "not_shown");
            return Err(act.refuse(p).await);
        }
        Err(e) => {
            tracing::error!(request_id = %who.request_id, error = %e, "the audit log could not be searched for a correction");
            let p = Problem::new(
                ProblemKind::AuditUnavailable,
                "The audit log could not be read to check that the value was shown; nothing was filed.",
            );
            return Err(act.refuse(p).await);
        }
    }
    let today = crate::clock::china_date(now);
    let correction = Correction {
        id: new_id(),
        connector: checked.connector,
        department: checked.department,
        operation: checked.operation,
        field: checked.field,
        subject_pseudonym: pseudonym,
        subject_masked: checked.subject.masked(),
        case_id: checked.case_id,
        evidence: checked.evidence,
        township,
        filed_by: who.caller.user.clone(),
        created_at: app.clock.now_rfc3339(),
        deadline: config
            .calendar
            .add_working_days(today, config.corrections.deadline_working_days)
            .to_string(),
        state: CorrectionState::Open,
        answered_at: None,
        answered_by: None,
        reason: None,
        erased_at: None,
        stated: Some(checked.stated),
    };
    act.event.operation = Some(event_operation("filed", &correction));
    act.commit(vec![Change::AddCorrection(correction.clone())])
        .await?;
    tracing::info!(request_id = %who.request_id, user = %who.caller.user, "correction" = %correction.id, connector = %correction.connector, "correction filed");
    Ok(correction)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::config::{EmbeddedSource, LoadOptions};
    use crate::county::{COUNTY_CONFIG, COUNTY_FILES};
    use connectors::subject::IdNumber;

    fn county() -> crate::config::ActiveConfig {
        crate::config::load(
            &EmbeddedSource::new(COUNTY_FILES.iter().copied()),
            std::path::Path::new(COUNTY_CONFIG),
            &LoadOptions::default(),
        )
        .expect("the county loads")
    }

    fn id_number() -> String {
        let born = chrono::NaiveDate::from_ymd_opt(1975, 3, 27).unwrap();
        IdNumber::build("139901", born, 123)
            .unwrap()
            .as_str()
            .to_owned()
    }

    fn body() -> NewCorrection {
        NewCorrection {
            connector: "hukou".into(),
            operation: "person_by_id".into(),
            field: "name".into(),
            subject: SubjectBody {
                id_number: id_number(),
            },
            stated_value: "邓俊豪".into(),
            note: "末字登记有误".into(),
            case_id: "低保-2026-0012".into(),
            evidence: "户口簿复印件".into(),
        }
    }

    #[test]
    fn a_valid_body_is_routed_to_the_connectors_department() {
        let checked = check(&body(), &county()).unwrap();
        assert_eq!(checked.department, "county-psb");
        assert_eq!(checked.stated.value, "邓俊豪");
    }

    #[test]
    fn every_problem_is_named_and_nothing_stated_is_echoed() {
        let config = county();
        let problem = |b: NewCorrection| {
            let Err(p) = check(&b, &config) else {
                panic!("the body should be refused");
            };
            let text = serde_json::to_string(&p.extensions).unwrap() + &p.detail;
            assert!(
                !text.contains("邓俊豪") && !text.contains(&id_number()[..12]),
                "{text}"
            );
            (p.kind, text)
        };
        let (kind, text) = problem(NewCorrection {
            connector: "nope".into(),
            note: "电话 13800138000".into(),
            case_id: String::new(),
            ..body()
        });
        assert_eq!(kind, ProblemKind::InvalidRequest);
        for at in ["connector", "note", "case_id"] {
            assert!(text.contains(&format!("\"path\":\"{at}\"")), "{at}: {text}");
        }
        let (_, text) = problem(NewCorrection {
            field: "no_such_field".into(),
            stated_value: " ".into(),
            ..body()
        });
        assert!(
            text.contains("\"field\"") && text.contains("stated_value"),
            "{text}"
        );
        let (kind, _) = problem(NewCorrection {
            subject: SubjectBody {
                id_number: "139901197503271230".into(),
            },
            ..body()
        });
        assert_eq!(kind, ProblemKind::InvalidIdNumber);
    }

    #[test]
    fn a_released_field_shows_its_parts_and_its_whole() {
        assert!(shows("name", "name"));
        assert!(shows("address", "address.village_code"));
        assert!(shows("address.village_code", "address"));
        assert!(shows("members[].name", "members"));
        assert!(!shows("name_pinyin", "name"));
        assert!(!shows("birth_date", "name"));
    }

    #[test]
    fn a_stated_value_is_bounded_and_on_one_line_and_may_be_a_number() {
        assert_eq!(stated_value("  邓俊豪 ").unwrap(), "邓俊豪");
        assert!(stated_value("").is_err());
        assert!(stated_value(&"字".repeat(201)).is_err());
        assert!(stated_value("a\nb").is_err());
        assert!(stated_value("13800138000").is_ok());
    }
}
