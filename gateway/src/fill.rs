//! Filling a form (the templates are in [`crate::forms`]): every connector operation the form needs is looked up once per
//! person, all at once, under one deadline; household members a few at a time, in
//! the first `max_rows` rows of a list (the rest are listed without lookups, reason
//! `too_many_rows`: the caller's limits were charged for that many). Each
//! lookup is a full [`crate::lookup`] — policy, quota, cache, schema, masks — and
//! leaves its own audit event (sharing the fill's request id and naming the form).
//! The events are recorded together once every lookup is done, in one transaction of
//! the audit log (one sync for the whole fill), before anything is answered.
//!
//! Values are read from what the caller's view released, never from the canonical
//! record, so a derived value (an age, a count) cannot reveal what was withheld. The
//! canonical record is used for one thing only: following a link (the spouse's, a
//! member's ID number) to look that person up — and only where the caller's view
//! holds the link field too.
//!
//! A `verify` field is never looked up: what the citizen states for it (the fill's
//! `stated`, checked by [`Attempt::stated`]) is verified (核验) with the subject's
//! other stated values of the same operation, one [`crate::verification`] per
//! operation, at once with the lookups and under the same deadline; its audit event
//! (kind `verification`, the stated values never in it) shares the fill's request id
//! and names the form. The field shows match, mismatch or cannot_verify with why —
//! a mismatch limit reached included — never a value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, SecondsFormat};
use connectors::subject::IdNumber;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, Semaphore};
use tracing::Instrument;

use crate::audit::{AuditEvent, AuditLog, Recorded};
use crate::auth::Caller;
use crate::config::ActiveConfig;
use crate::forms::template::{
    Derive, Field, FieldType, FieldValue, Form, Scope, Section, Source, SourceRef,
};
use crate::jurisdiction::Residence;
use crate::lookup::error::fetch_kind;
use crate::lookup::single::{Ask, AskError};
use crate::lookup::{
    Found, LookupError, Reach, Services, SubjectKeyValue, Target, Trail, lookup, residence,
};
use crate::policy::{LOOKUP_ROLES, RefusalReason};
use crate::problem::{Blame, ProblemKind};
use crate::purpose::Purpose;
use crate::verification::{self, CannotVerify, Outcome, VerifyAsk, VerifyError};

/// What a fill runs with.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) services: Services<'a>,
    /// Where the fill's lookups are recorded.
    pub(crate) audit: &'a dyn AuditLog,
    pub(crate) config: &'a ActiveConfig,
    pub(crate) caller: &'a Caller,
    pub(crate) form: &'a Form,
    pub(crate) purpose: &'a Purpose,
    pub(crate) request_id: &'a str,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) case_id: &'a str,
    pub(crate) deadline: Instant,
    pub(crate) today: NaiveDate,
    /// The person the form is filled for.
    pub(crate) subject: &'a IdNumber,
    /// What the citizen states for the form's `verify` fields, by field id (checked
    /// by [`Attempt::stated`]).
    pub(crate) stated: &'a BTreeMap<String, Value>,
}

/// Whether a grant in force gives the caller this purpose.
pub fn may_use(config: &ActiveConfig, caller: &Caller, purpose: &str, today: NaiveDate) -> bool {
    LOOKUP_ROLES.iter().any(|r| caller.roles.contains(r))
        && config.policies.grants().iter().any(|g| {
            g.purposes.iter().any(|p| p == purpose)
                && g.valid.contains(today)
                && g.consumers.matches(caller)
        })
}

/// One lookup made for the form and what became of it.
#[derive(Debug)]
pub(crate) struct Done {
    connector: String,
    operation: String,
    /// The form's subject, masked; `None` for a person reached through a link, who
    /// is shown only as the link shows them.
    subject_masked: Option<String>,
    result: Result<Found, LookupError>,
    /// Its audit event, which the fill records with the others.
    event: AuditEvent,
}

type Key = (String, String, String);

/// A lookup under way or done, awaitable by every field that needs it.
type Pending<'a> = Shared<BoxFuture<'a, Arc<Done>>>;

/// The fill's lookups, each started once and shared by every field that needs it.
struct Lookups<'a> {
    ctx: &'a Context<'a>,
    /// How the form's subject stands to the caller's jurisdiction, and how the
    /// persons reached through them do.
    subject_reach: Reach<'a>,
    linked_reach: Reach<'a>,
    /// Every lookup started, in the order they were.
    started: Mutex<Vec<(Key, Pending<'a>)>>,
    members: Semaphore,
}

impl<'a> Lookups<'a> {
    async fn get(&self, connector: &str, operation: &str, subject: &IdNumber) -> Arc<Done> {
        let key = (
            connector.to_owned(),
            operation.to_owned(),
            subject.as_str().to_owned(),
        );
        let pending = {
            let mut started = self.started.lock().await;
            match started.iter().find(|(k, _)| *k == key) {
                Some((_, pending)) => pending.clone(),
                None => {
                    let reach = if subject == self.ctx.subject {
                        self.subject_reach
                    } else {
                        self.linked_reach
                    };
                    let pending = run(
                        self.ctx,
                        connector.to_owned(),
                        operation.to_owned(),
                        subject.clone(),
                        reach,
                    )
                    .boxed()
                    .shared();
                    started.push((key, pending.clone()));
                    pending
                }
            }
        };
        pending.await
    }

    /// Every lookup the given fields need for `subject`, started together.
    async fn all(
        &self,
        fields: &[Field],
        subject: Option<&IdNumber>,
    ) -> BTreeMap<(String, String), Arc<Done>> {
        let Some(subject) = subject else {
            return BTreeMap::new();
        };
        let mut needed: Vec<&Source> = fields.iter().filter_map(Field::lookup).collect();
        needed.sort_by(|a, b| (&a.connector, &a.operation).cmp(&(&b.connector, &b.operation)));
        needed.dedup_by(|a, b| a.connector == b.connector && a.operation == b.operation);
        let got = join_all(
            needed
                .iter()
                .map(|s| self.get(&s.connector, &s.operation, subject)),
        )
        .await;
        needed
            .into_iter()
            .zip(got)
            .map(|(s, done)| ((s.connector.clone(), s.operation.clone()), done))
            .collect()
    }
}

/// One lookup, with the audit event that records it.
async fn run(
    ctx: &Context<'_>,
    connector: String,
    operation: String,
    subject: IdNumber,
    reach: Reach<'_>,
) -> Arc<Done> {
    let mut trail = Trail::default();
    trail.form = Some(ctx.form.id.clone());
    trail.case_id = Some(ctx.case_id.to_owned());
    let primary = &subject == ctx.subject;
    let subject = SubjectKeyValue::Id(subject);
    let target = ctx.config.connectors.get(&connector).and_then(|c| {
        c.operations
            .get_key_value(&operation)
            .map(|(operation, op)| Target {
                connector: c,
                operation,
                op,
                purpose: ctx.purpose,
                reach,
                level: crate::policy::Level::Read,
            })
    });
    let result = match target {
        Some(target) => {
            lookup(
                ctx.services,
                ctx.config,
                ctx.caller,
                target,
                &subject,
                Some(ctx.deadline),
                &mut trail,
            )
            .await
        }
        // The template was checked against this configuration when it loaded.
        None => Err(LookupError::NotConfigured {
            connector: connector.clone(),
        }),
    };
    let (status, problem) = match &result {
        Ok(_) => (200, None),
        Err(e) => (e.kind().status().as_u16(), Some(e.kind().slug())),
    };
    let event = trail.event(ctx.request_id, ctx.caller, ctx.peer, status, problem);
    Arc::new(Done {
        connector,
        operation,
        subject_masked: primary.then(|| subject.masked()),
        result,
        event,
    })
}

/// A filled form and the lookups made for it.
#[derive(Debug)]
pub struct Filled {
    pub(crate) body: Value,
    pub(crate) lookups: Vec<Arc<Done>>,
    /// Whether every lookup's audit event was made durable; if not, nothing of the
    /// fill may be answered.
    pub(crate) audited: bool,
    /// Where the fill's events are in the log (the jurisdiction check's first).
    pub(crate) recorded: Vec<Recorded>,
    /// The answer instead of the form: the subject is outside the caller's
    /// jurisdiction (nothing was asked of any department), or no department holds
    /// this person.
    pub(crate) problem: Option<Unfilled>,
}

/// Why a form was answered with a problem instead of the form.
#[derive(Debug, Clone, PartialEq)]
pub enum Unfilled {
    /// The subject's jurisdiction check refused or failed.
    Lookup(LookupError),
    /// No department the form asks holds a record of this person.
    PersonUnknown,
}

impl Unfilled {
    pub fn kind(&self) -> ProblemKind {
        match self {
            Unfilled::Lookup(error) => error.kind(),
            Unfilled::PersonUnknown => ProblemKind::PersonUnknown,
        }
    }
}

/// The first grant of the form's lookups, for this caller and purpose, that holds
/// only in the caller's jurisdiction: the jurisdiction, and the refusal for a subject
/// outside it.
fn jurisdiction_grant(
    ctx: &Context<'_>,
) -> Option<(crate::policy::Jurisdiction, crate::policy::Refusal)> {
    let mut sources: Vec<&Source> = Vec::new();
    for section in &ctx.form.sections {
        match &section.scope {
            Scope::Subject => {}
            Scope::Linked(source) | Scope::Repeat { list: source, .. } => sources.push(source),
        }
        sources.extend(section.fields.iter().filter_map(Field::lookup));
    }
    sources.iter().find_map(|source| {
        let op = ctx
            .config
            .connectors
            .get(&source.connector)?
            .operations
            .get(&source.operation)?;
        let plan = ctx
            .config
            .policies
            .decide(
                ctx.caller,
                &source.connector,
                &source.operation,
                &op.leaves,
                &ctx.purpose.code,
                ctx.today,
            )
            .ok()?;
        let grant = plan.grants.iter().find(|g| g.jurisdiction.is_some())?;
        let jurisdiction = grant.jurisdiction?;
        let refusal = crate::policy::Refusal {
            rule: grant.id.clone(),
            reason: crate::policy::RefusalReason::Jurisdiction,
            detail: format!(
                "Grant `{}` applies only {}; this person is not registered there. No \
                 department was asked.",
                grant.id,
                jurisdiction.describe()
            ),
        };
        Some((jurisdiction, refusal))
    })
}

/// The jurisdiction check for the form's subject, once, before any department is
/// asked: its audit event, and where the subject lives (`Ok(None)`: no grant of the
/// form needs it) or why the fill stops.
async fn check_subject(
    ctx: &Context<'_>,
) -> (Option<AuditEvent>, Result<Option<Residence>, LookupError>) {
    let Some((jurisdiction, refusal)) = jurisdiction_grant(ctx) else {
        return (None, Ok(None));
    };
    let mut trail = Trail::default();
    trail.form = Some(ctx.form.id.clone());
    trail.case_id = Some(ctx.case_id.to_owned());
    trail.purpose = Some(ctx.purpose.code.clone());
    trail.policy_version = Some(ctx.config.policies.version.clone());
    trail.subject_pseudonym = Some(ctx.services.pseudonym.pseudonym(ctx.subject.as_str()));
    trail.subject_masked = Some(ctx.subject.masked());
    if let Some(authority) = &ctx.config.jurisdiction {
        trail.connector = Some(authority.connector.clone());
        trail.operation = Some(authority.by_id_number.clone());
    }
    let subject = SubjectKeyValue::Id(ctx.subject.clone());
    let result = match residence(ctx.services, ctx.config, &subject, Some(ctx.deadline)).await {
        Ok(lives) if jurisdiction.holds(ctx.caller, &lives) => {
            trail.jurisdiction = Some("inside");
            trail.subject_township = lives.township.clone();
            Ok(Some(lives))
        }
        Ok(lives) => {
            trail.jurisdiction = Some("outside");
            trail.subject_township = lives.township;
            trail.refused_by(&refusal.rule);
            Err(LookupError::Refused(refusal))
        }
        Err(error) => Err(error),
    };
    let (status, problem) = match &result {
        Ok(_) => (200, None),
        Err(e) => (e.kind().status().as_u16(), Some(e.kind().slug())),
    };
    let event = trail.event(ctx.request_id, ctx.caller, ctx.peer, status, problem);
    (Some(event), result)
}

/// Fills `ctx.form` for `ctx.subject`: traced as one `fill` span, a `lookup` span
/// per department call inside it.
pub(crate) async fn fill(ctx: &Context<'_>) -> Filled {
    let span = tracing::info_span!(
        "fill",
        form = %ctx.form.id,
        purpose = %ctx.purpose.code,
        township = ctx.caller.township.as_deref().unwrap_or(""),
    );
    fill_in(ctx).instrument(span).await
}

async fn fill_in(ctx: &Context<'_>) -> Filled {
    let subject = ctx.subject;
    let started = Instant::now();
    let (check, checked) = check_subject(ctx).await;
    let inside = match checked {
        Ok(inside) => inside,
        Err(error) => {
            let (audited, recorded) = record(ctx, check.into_iter().collect()).await;
            return Filled {
                body: Value::Null,
                lookups: Vec::new(),
                audited,
                recorded,
                problem: Some(Unfilled::Lookup(error)),
            };
        }
    };
    let (subject_reach, linked_reach) = match &inside {
        Some(lives) => (Reach::Inside(lives), Reach::Linked),
        None => (Reach::Direct, Reach::Direct),
    };
    let lookups = Lookups {
        ctx,
        subject_reach,
        linked_reach,
        started: Mutex::new(Vec::new()),
        members: Semaphore::new(ctx.form.member_concurrency),
    };
    let (sections, checks) = futures::join!(
        join_all(
            ctx.form
                .sections
                .iter()
                .map(|s| section(ctx, &lookups, s, subject)),
        ),
        verifications(ctx),
    );
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for (section, (mut body, mut gaps)) in ctx.form.sections.iter().zip(sections) {
        show_verified(section, &checks, &mut body, &mut gaps);
        missing.extend(gaps.into_iter().map(|mut gap| {
            gap["section"] = Value::String(section.id.clone());
            gap
        }));
        out.push(body);
    }
    let done: Vec<Arc<Done>> = lookups
        .started
        .into_inner()
        .iter()
        .filter_map(|(_, pending)| pending.peek().cloned())
        .collect();
    let complete = done.iter().all(|d| match &d.result {
        Ok(_) => true,
        Err(p) => !failed(p),
    }) && !missing.iter().any(|gap| gap["reason"] == TOO_MANY_ROWS)
        && !checks.iter().any(|c| c.failed);
    let body = json!({
        "request_id": ctx.request_id,
        "form": {"id": ctx.form.id, "title": ctx.form.title, "title_en": ctx.form.title_en},
        "purpose": {"code": ctx.purpose.code, "name": ctx.purpose.name},
        "case_id": ctx.case_id,
        "subject": subject.masked(),
        "complete": complete,
        "deadline_ms": ctx.form.deadline.as_millis() as u64,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "sections": out,
        "missing": missing,
        "lookups": done
            .iter()
            .map(|d| lookup_summary(ctx, d))
            .chain(checks.iter().map(|c| verification_summary(ctx, c)))
            .collect::<Vec<_>>(),
    });
    // Every department asked about the subject answered that it has no record: say
    // so plainly instead of a form of `not_found` fields.
    let about_subject: Vec<&Arc<Done>> =
        done.iter().filter(|d| d.subject_masked.is_some()).collect();
    let unknown = !about_subject.is_empty()
        && about_subject
            .iter()
            .all(|d| matches!(&d.result, Err(LookupError::NotFound { .. })));
    let events = check
        .into_iter()
        .chain(done.iter().map(|d| d.event.clone()))
        .chain(checks.into_iter().map(|c| c.event))
        .collect();
    let (audited, recorded) = record(ctx, events).await;
    Filled {
        body,
        lookups: done,
        audited,
        recorded,
        problem: unknown.then_some(Unfilled::PersonUnknown),
    }
}

/// Records every event of the fill in one append: whether all were made durable, and
/// where those that were are in the log.
async fn record(ctx: &Context<'_>, events: Vec<AuditEvent>) -> (bool, Vec<Recorded>) {
    let mut audited = true;
    let mut recorded = Vec::with_capacity(events.len());
    let span = tracing::info_span!(
        "audit.commit",
        audit.events = events.len(),
        audit.seq = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let outcomes = ctx.audit.append_all(events).instrument(span.clone()).await;
    for outcome in outcomes {
        match outcome {
            Ok(at) => recorded.push(at),
            Err(e) => {
                tracing::error!(request_id = ctx.request_id, error = %e, "the audit log could not record a form lookup");
                audited = false;
            }
        }
    }
    if !audited {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(last) = recorded.last() {
        span.record("audit.seq", last.seq);
    }
    (audited, recorded)
}

/// The reason of a row's fields left without their lookup because the list has more
/// rows than the section's `max_rows`.
const TOO_MANY_ROWS: &str = "too_many_rows";

/// Whether a lookup's problem means a department (or the way to it) failed, as
/// opposed to the policy withholding something or the person having no record.
fn failed(error: &LookupError) -> bool {
    !matches!(
        error,
        LookupError::Refused(_) | LookupError::NotFound { .. }
    )
}

fn lookup_summary(ctx: &Context<'_>, done: &Done) -> Value {
    let department = ctx
        .config
        .connectors
        .get(&done.connector)
        .map(|c| json!({"id": c.def.department.id, "name": c.def.department.name}));
    let mut summary = json!({
        "connector": done.connector,
        "operation": done.operation,
        "department": department,
        "subject": done.subject_masked.as_deref().unwrap_or("linked"),
    });
    match &done.result {
        Ok(found) => {
            summary["outcome"] = json!("ok");
            summary["cache_hit"] = json!(found.cache_hit);
            summary["fetched_at"] = json!(time(found));
        }
        Err(error) => {
            summary["outcome"] = json!(error.kind().slug());
            summary["reason"] = json!(missing_reason(error));
        }
    }
    summary
}

fn time(found: &Found) -> String {
    found
        .record
        .fetched_at()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a field has no value.
#[derive(Debug, Clone)]
struct Missing {
    reason: &'static str,
    rule: Option<String>,
    connector: Option<String>,
}

impl Missing {
    fn new(reason: &'static str) -> Missing {
        Missing {
            reason,
            rule: None,
            connector: None,
        }
    }
}

/// The reason a form shows for a lookup that failed.
fn missing_reason(error: &LookupError) -> &'static str {
    match error {
        LookupError::Refused(refusal) => match refusal.reason {
            RefusalReason::RowCondition => "row_condition",
            RefusalReason::DeniedByRule => "denied_by_rule",
            RefusalReason::Jurisdiction => "jurisdiction",
            RefusalReason::Role => "not_granted",
        },
        LookupError::NotFound { .. } => "not_found",
        LookupError::Upstream {
            error: connectors::FetchError::Timeout,
            ..
        } => "timed_out",
        LookupError::Limited(limited) if !limited.is_department() => "rate_limited",
        LookupError::Limited(_) | LookupError::Busy { .. } => "department_busy",
        LookupError::Upstream { error, .. } if fetch_kind(error).blame() == Blame::Department => {
            "department_unavailable"
        }
        LookupError::Schema { .. } => "department_unavailable",
        LookupError::Upstream { .. }
        | LookupError::Disabled { .. }
        | LookupError::NotConfigured { .. } => "gateway_error",
    }
}

fn from_error(done: &Done, error: &LookupError) -> Missing {
    Missing {
        reason: missing_reason(error),
        // The deciding rule, or the limit that stopped the lookup (`grant:<id>`).
        rule: match error {
            LookupError::Refused(refusal) => Some(refusal.rule.clone()),
            LookupError::Limited(limited) | LookupError::Busy { limited, .. } => {
                Some(limited.limit.clone())
            }
            _ => None,
        },
        connector: Some(done.connector.clone()),
    }
}

/// A value the caller's view released, with the lookup it came from.
struct Released<'d> {
    value: Value,
    mask: &'static str,
    done: &'d Done,
    found: &'d Found,
}

fn found(done: &Done) -> Result<&Found, Missing> {
    done.result.as_ref().map_err(|e| from_error(done, e))
}

/// Whether the caller's view released the leaf at `path`, or why not.
fn released_leaf(done: &Done, found: &Found, path: &str) -> Result<&'static str, Missing> {
    if let Some(returned) = found.outcome.fields.get(path) {
        return Ok(returned.mask);
    }
    let withheld = found.outcome.withheld.iter().find(|w| w.field == path);
    Err(Missing {
        reason: withheld.map_or("not_granted", |w| w.reason.as_str()),
        rule: withheld.and_then(|w| w.rule.clone()),
        connector: Some(done.connector.clone()),
    })
}

/// Follows a dotted path (`a.b`, `list[].field`) through a JSON value.
fn walk(value: &Value, path: &str) -> Option<Value> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    if let Some(list) = head.strip_suffix("[]") {
        let items = value.get(list)?.as_array()?;
        let rest = rest?;
        return Some(Value::Array(
            items
                .iter()
                .map(|item| walk(item, rest).unwrap_or(Value::Null))
                .collect(),
        ));
    }
    let child = value.get(head)?;
    match rest {
        Some(_) if child.is_null() => Some(Value::Null),
        Some(rest) => walk(child, rest),
        None => Some(child.clone()),
    }
}

/// The released value of a lookup's field (`path` a leaf, or a list for counting).
fn released<'d>(done: &'d Done, path: &str, list: bool) -> Result<Released<'d>, Missing> {
    let found = found(done)?;
    let mask = if list {
        "keep"
    } else {
        released_leaf(done, found, path)?
    };
    let value = walk(&found.outcome.data, path).unwrap_or(Value::Null);
    if list && !value.is_array() {
        // No field of the list's items is released.
        return Err(Missing {
            connector: Some(done.connector.clone()),
            ..Missing::new("not_granted")
        });
    }
    Ok(Released {
        value,
        mask,
        done,
        found,
    })
}

/// The row a repeated section is filling: its item in the caller's view.
struct Row<'d> {
    item: &'d Value,
    list: &'d Source,
    done: &'d Done,
    found: &'d Found,
}

fn resolve<'d>(
    reference: &SourceRef,
    got: &'d BTreeMap<(String, String), Arc<Done>>,
    row: Option<&Row<'d>>,
    list: bool,
    no_subject: &Missing,
) -> Result<Released<'d>, Missing> {
    match reference {
        SourceRef::Lookup(source) => {
            match got.get(&(source.connector.clone(), source.operation.clone())) {
                Some(done) => released(done, &source.path, list),
                None => Err(no_subject.clone()),
            }
        }
        SourceRef::Item(path) => {
            let Some(row) = row else {
                return Err(Missing::new("gateway_error"));
            };
            let mask = if list {
                "keep"
            } else {
                released_leaf(row.done, row.found, &format!("{}[].{path}", row.list.path))?
            };
            let value = walk(row.item, path).unwrap_or(Value::Null);
            if list && !value.is_array() {
                return Err(Missing::new("not_granted"));
            }
            Ok(Released {
                value,
                mask,
                done: row.done,
                found: row.found,
            })
        }
    }
}

/// Where a value came from, as the form shows it.
fn provenance(ctx: &Context<'_>, r: &Released<'_>) -> Map<String, Value> {
    let department = ctx
        .config
        .connectors
        .get(&r.done.connector)
        .map(|c| json!({"id": c.def.department.id, "name": c.def.department.name}));
    let fetched_at = r.found.record.fetched_at();
    let mut out = Map::new();
    out.insert(
        "source".into(),
        json!({"department": department, "connector": r.done.connector, "operation": r.done.operation}),
    );
    out.insert("fetched_at".into(), json!(time(r.found)));
    out.insert(
        "age_s".into(),
        json!((ctx.services.clock.now() - fetched_at).num_seconds().max(0)),
    );
    out.insert("verified".into(), json!(true));
    out
}

/// One field's answer: its value with provenance, or why it is missing.
fn field(
    ctx: &Context<'_>,
    f: &Field,
    got: &BTreeMap<(String, String), Arc<Done>>,
    row: Option<&Row<'_>>,
    no_subject: &Missing,
) -> Result<Value, (Value, Missing)> {
    let mut out = json!({"id": f.id, "title": f.title, "type": f.kind.as_str()});
    if let Some(en) = &f.title_en {
        out["title_en"] = json!(en);
    }
    let computed = match &f.value {
        FieldValue::Input => {
            out["value"] = Value::Null;
            out["input"] = json!(true);
            out["verified"] = json!(false);
            return Ok(out);
        }
        // Never a value: what the verification came to is added once it is done
        // ([`show_verified`]).
        FieldValue::Verify(_) => {
            out["value"] = Value::Null;
            out["verify"] = json!(true);
            return Ok(out);
        }
        FieldValue::From(reference) => resolve(reference, got, row, false, no_subject).map(|r| {
            let masked = r.mask != "keep";
            (r.value.clone(), Some(r.mask).filter(|_| masked), None, r)
        }),
        FieldValue::Derive(derive) => derived(ctx, derive, got, row, no_subject)
            .map(|(value, r)| (value, None, Some(derive.name()), r)),
    };
    match computed {
        Ok((value, mask, derived, r)) => {
            let Value::Object(map) = &mut out else {
                return Err((out, Missing::new("gateway_error")));
            };
            map.insert("value".into(), value);
            map.extend(provenance(ctx, &r));
            map.insert("masked".into(), json!(mask.is_some()));
            if let Some(mask) = mask {
                map.insert("mask".into(), json!(mask));
            }
            if let Some(derived) = derived {
                map.insert("derived".into(), json!(derived));
            }
            if let FieldValue::Derive(Derive::Count { conditions, .. }) = &f.value
                && !conditions.is_empty()
            {
                // What was counted: only the items with these values.
                let counted: Map<String, Value> = conditions
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                map.insert("counted".into(), Value::Object(counted));
            }
            Ok(out)
        }
        Err(missing) => {
            out["value"] = Value::Null;
            let mut why = json!({"reason": missing.reason});
            if let Some(rule) = &missing.rule {
                why["rule"] = json!(rule);
            }
            if let Some(connector) = &missing.connector {
                why["connector"] = json!(connector);
            }
            out["missing"] = why;
            Err((out, missing))
        }
    }
}

/// A derived value, computed from released values only.
fn derived<'d>(
    ctx: &Context<'_>,
    derive: &Derive,
    got: &'d BTreeMap<(String, String), Arc<Done>>,
    row: Option<&Row<'d>>,
    no_subject: &Missing,
) -> Result<(Value, Released<'d>), Missing> {
    match derive {
        Derive::Age(reference) => {
            let r = resolve(reference, got, row, false, no_subject)?;
            let value = match r.value.as_str() {
                None => Value::Null,
                Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                    Ok(date) => json!(ctx.today.years_since(date).unwrap_or(0)),
                    // Released only masked (a year, a band): no exact age from it.
                    Err(_) => return Err(Missing::new("masked")),
                },
            };
            Ok((value, r))
        }
        Derive::Count { list, conditions } => {
            let (r, matching) = matching_items(list, conditions, got, row, no_subject)?;
            Ok((json!(matching), r))
        }
        Derive::Any { list, conditions } => {
            let (r, matching) = matching_items(list, conditions, got, row, no_subject)?;
            Ok((json!(matching > 0), r))
        }
        Derive::Sum(reference) => {
            let r = resolve(reference, got, row, false, no_subject)?;
            let sum: f64 = r
                .value
                .as_array()
                .map(|items| items.iter().filter_map(Value::as_f64).sum())
                .unwrap_or(0.0);
            Ok((json!((sum * 100.0).round() / 100.0), r))
        }
    }
}

/// A list's released items, and how many of them have every named field value (each
/// of those fields released too: no count from what was withheld).
fn matching_items<'d>(
    list: &SourceRef,
    conditions: &[(String, String)],
    got: &'d BTreeMap<(String, String), Arc<Done>>,
    row: Option<&Row<'d>>,
    no_subject: &Missing,
) -> Result<(Released<'d>, usize), Missing> {
    let r = resolve(list, got, row, true, no_subject)?;
    let list_path = match list {
        SourceRef::Lookup(s) => s.path.clone(),
        SourceRef::Item(p) => match row {
            Some(row) => format!("{}[].{p}", row.list.path),
            None => p.clone(),
        },
    };
    for (name, _) in conditions {
        released_leaf(r.done, r.found, &format!("{list_path}[].{name}"))?;
    }
    let matching = r.value.as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|item| {
                conditions
                    .iter()
                    .all(|(name, want)| item.get(name).and_then(Value::as_str) == Some(want))
            })
            .count()
    });
    Ok((r, matching))
}

/// The fields of one person (or row), and the gaps among them.
fn fields(
    ctx: &Context<'_>,
    list: &[Field],
    got: &BTreeMap<(String, String), Arc<Done>>,
    row: Option<&Row<'_>>,
    no_subject: &Missing,
) -> (Vec<Value>, Vec<Value>) {
    let mut out = Vec::new();
    let mut gaps = Vec::new();
    for f in list {
        match field(ctx, f, got, row, no_subject) {
            Ok(value) => out.push(value),
            Err((value, missing)) => {
                out.push(value);
                gaps.push(json!({"field": f.id, "reason": missing.reason}));
            }
        }
    }
    (out, gaps)
}

/// The ID number a lookup's record links to at `path`, if the caller's view holds it.
fn link(done: &Done, path: &str, index: Option<usize>) -> Result<Option<IdNumber>, Missing> {
    let found = found(done)?;
    released_leaf(done, found, path)?;
    let crate::cache::Entry::Found(record) = &*found.record else {
        return Err(Missing::new("not_found"));
    };
    let canonical = match index {
        None => walk(&record.value, path),
        Some(i) => walk(&record.value, path).and_then(|v| v.get(i).cloned()),
    };
    match canonical.as_ref().and_then(Value::as_str) {
        None => Ok(None),
        Some(text) => IdNumber::parse(text)
            .map(Some)
            .map_err(|_| Missing::new("not_found")),
    }
}

/// One section: its header, its fields or rows, and its gaps.
async fn section(
    ctx: &Context<'_>,
    lookups: &Lookups<'_>,
    section: &Section,
    subject: &IdNumber,
) -> (Value, Vec<Value>) {
    let mut out = json!({"id": section.id, "title": section.title});
    if let Some(en) = &section.title_en {
        out["title_en"] = json!(en);
    }
    match &section.scope {
        Scope::Subject => {
            let got = lookups.all(&section.fields, Some(subject)).await;
            let (fields, gaps) = fields(
                ctx,
                &section.fields,
                &got,
                None,
                &Missing::new("gateway_error"),
            );
            out["fields"] = json!(fields);
            (out, gaps)
        }
        Scope::Linked(source) => {
            let done = lookups
                .get(&source.connector, &source.operation, subject)
                .await;
            let (person, no_subject) = match link(&done, &source.path, None) {
                Ok(Some(id)) => (Some(id), Missing::new("gateway_error")),
                Ok(None) => (None, Missing::new("no_subject")),
                Err(missing) => (None, missing),
            };
            if person.is_some() {
                // The person as the caller's view shows the link, masked as granted.
                if let Ok(shown) = released(&done, &source.path, false) {
                    out["subject"] = shown.value;
                }
            }
            let got = lookups.all(&section.fields, person.as_ref()).await;
            let (fields, gaps) = fields(ctx, &section.fields, &got, None, &no_subject);
            out["fields"] = json!(fields);
            (out, gaps)
        }
        Scope::Repeat {
            list,
            lookup_each,
            max_rows,
        } => {
            let done = lookups.get(&list.connector, &list.operation, subject).await;
            let items = match released(&done, &list.path, true) {
                Ok(r) => r,
                Err(missing) => {
                    out["rows"] = json!([]);
                    out["missing"] = json!({"reason": missing.reason, "rule": missing.rule});
                    return (out, vec![json!({"field": "*", "reason": missing.reason})]);
                }
            };
            let empty = Vec::new();
            let rows = items.value.as_array().unwrap_or(&empty);
            let built = join_all(rows.iter().enumerate().map(|(i, item)| {
                let done = &done;
                async move {
                    let row = Row {
                        item,
                        list,
                        done,
                        found: items.found,
                    };
                    let (person, no_subject) = if *lookup_each && i >= *max_rows {
                        // Past the rows the form's cost paid for: listed, not looked up.
                        (None, Missing::new(TOO_MANY_ROWS))
                    } else if *lookup_each {
                        match link(done, &format!("{}[].id_number", list.path), Some(i)) {
                            Ok(Some(id)) => (Some(id), Missing::new("gateway_error")),
                            Ok(None) => (None, Missing::new("no_subject")),
                            Err(missing) => (None, missing),
                        }
                    } else {
                        (Some(subject.clone()), Missing::new("gateway_error"))
                    };
                    let got = if *lookup_each && person.is_some() {
                        match lookups.members.acquire().await {
                            Ok(_permit) => lookups.all(&section.fields, person.as_ref()).await,
                            Err(_) => BTreeMap::new(),
                        }
                    } else {
                        lookups.all(&section.fields, person.as_ref()).await
                    };
                    let (fields, gaps) =
                        fields(ctx, &section.fields, &got, Some(&row), &no_subject);
                    let gaps: Vec<Value> = gaps
                        .into_iter()
                        .map(|mut g| {
                            g["row"] = json!(i);
                            g
                        })
                        .collect();
                    (json!({"fields": fields}), gaps)
                }
            }))
            .await;
            let mut gaps = Vec::new();
            let mut rows_out = Vec::new();
            for (row, g) in built {
                rows_out.push(row);
                gaps.extend(g);
            }
            out["rows"] = json!(rows_out);
            (out, gaps)
        }
    }
}

/// One verification made for the form: the subject's stated values at one
/// operation, and what became of them.
#[derive(Debug)]
struct Checked {
    connector: String,
    operation: String,
    /// By field id: `{result, reason}` as `POST /v1/verify` answers a field.
    results: BTreeMap<String, Value>,
    /// `ok`, or the problem type's slug of why nothing was compared.
    outcome: &'static str,
    /// Why nothing was compared (as in `missing`).
    reason: Option<&'static str>,
    /// A department (or the way to it) failed: the form is not complete.
    failed: bool,
    /// Its audit event (kind `verification`), recorded with the fill's.
    event: AuditEvent,
}

/// The verifications of the values stated for the form's `verify` fields: one per
/// operation of the subject, all at once.
async fn verifications(ctx: &Context<'_>) -> Vec<Checked> {
    type Stated<'f> = Vec<(&'f str, &'f str, &'f Value)>;
    let mut groups: BTreeMap<(&str, &str), Stated<'_>> = BTreeMap::new();
    for section in &ctx.form.sections {
        if section.scope != Scope::Subject {
            continue;
        }
        for f in &section.fields {
            if let (Some(source), Some(value)) = (f.verify(), ctx.stated.get(&f.id)) {
                groups
                    .entry((source.connector.as_str(), source.operation.as_str()))
                    .or_default()
                    .push((f.id.as_str(), source.path.as_str(), value));
            }
        }
    }
    join_all(
        groups
            .into_iter()
            .map(|((connector, operation), stated)| verify_one(ctx, connector, operation, stated)),
    )
    .await
}

/// Sets `value` at a dotted path (no lists) of `object`.
fn insert_at(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = object
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                insert_at(inner, rest, value);
            }
        }
    }
}

/// One verification (the stated values as `(field id, path, value)`), with the audit
/// event that records it: sharing the fill's request id and naming the form.
async fn verify_one(
    ctx: &Context<'_>,
    connector: &str,
    operation: &str,
    stated: Vec<(&str, &str, &Value)>,
) -> Checked {
    let mut claims = Map::new();
    for (_, path, value) in &stated {
        insert_at(&mut claims, path, (*value).clone());
    }
    let mut trail = Trail::verification();
    trail.form = Some(ctx.form.id.clone());
    trail.case_id = Some(ctx.case_id.to_owned());
    let ask = VerifyAsk {
        lookup: Ask {
            connector: connector.to_owned(),
            operation: operation.to_owned(),
            purpose: ctx.purpose.code.clone(),
            case_id: ctx.case_id.to_owned(),
            id_number: Some(ctx.subject.as_str().to_owned()),
            household_number: None,
        },
        claims: Value::Object(claims),
    };
    let answer = verification::verify_by(
        ctx.services,
        ctx.config,
        ctx.caller,
        ask,
        Some(ctx.deadline),
        &mut trail,
    )
    .instrument(tracing::info_span!("verify", connector, operation))
    .await;
    let cannot = |reason: &str| json!({"result": Outcome::CannotVerify.as_str(), "reason": reason});
    let (results, outcome, reason, failed, status): (BTreeMap<String, Value>, _, _, _, _) =
        match &answer {
            Ok(verified) => {
                let results = stated
                    .iter()
                    .map(|(id, path, _)| {
                        let result = match verified.fields.get(*path) {
                            Some(r) => {
                                let mut out = json!({"result": r.result.as_str()});
                                if let Some(reason) = r.reason {
                                    out["reason"] = json!(reason.as_str());
                                }
                                out
                            }
                            None => cannot("gateway_error"),
                        };
                        ((*id).to_owned(), result)
                    })
                    .collect();
                let failed = verified
                    .fields
                    .values()
                    .any(|r| r.reason == Some(CannotVerify::DepartmentUnavailable));
                (results, "ok", None, failed, 200)
            }
            Err(error) => {
                let reason = match error {
                    VerifyError::Ask(AskError::Lookup(error)) => missing_reason(error),
                    VerifyError::Claims(_) => "invalid_value",
                    VerifyError::Ask(_) => "gateway_error",
                };
                let results = stated
                    .iter()
                    .map(|(id, _, _)| ((*id).to_owned(), cannot(reason)))
                    .collect();
                let failed = matches!(
                    reason,
                    "timed_out" | "department_busy" | "department_unavailable" | "gateway_error"
                );
                let kind = error.kind();
                (
                    results,
                    kind.slug(),
                    Some(reason),
                    failed,
                    kind.status().as_u16(),
                )
            }
        };
    let problem = (status != 200).then_some(outcome);
    let event = trail.event(ctx.request_id, ctx.caller, ctx.peer, status, problem);
    Checked {
        connector: connector.to_owned(),
        operation: operation.to_owned(),
        results,
        outcome,
        reason,
        failed,
        event,
    }
}

/// Adds to a section about the subject what each `verify` field's verification came
/// to, or that nothing was stated for it (a gap, reason `not_stated`).
fn show_verified(section: &Section, checks: &[Checked], body: &mut Value, gaps: &mut Vec<Value>) {
    if section.scope != Scope::Subject {
        return;
    }
    let Some(shown) = body.get_mut("fields").and_then(Value::as_array_mut) else {
        return;
    };
    for f in section.fields.iter().filter(|f| f.verify().is_some()) {
        let Some(out) = shown.iter_mut().find(|v| v["id"] == f.id.as_str()) else {
            continue;
        };
        match checks.iter().find_map(|c| c.results.get(&f.id)) {
            Some(result) => out["verification"] = result.clone(),
            None => {
                out["missing"] = json!({"reason": NOT_STATED});
                gaps.push(json!({"field": f.id, "reason": NOT_STATED}));
            }
        }
    }
}

/// The reason of a `verify` field for which the citizen stated nothing.
const NOT_STATED: &str = "not_stated";

fn verification_summary(ctx: &Context<'_>, checked: &Checked) -> Value {
    let department = ctx
        .config
        .connectors
        .get(&checked.connector)
        .map(|c| json!({"id": c.def.department.id, "name": c.def.department.name}));
    let mut summary = json!({
        "connector": checked.connector,
        "operation": checked.operation,
        "department": department,
        "subject": ctx.subject.masked(),
        "verification": true,
        "outcome": checked.outcome,
    });
    if let Some(reason) = checked.reason {
        summary["reason"] = json!(reason);
    }
    summary
}

/// Checks the values stated for `form`'s `verify` fields (see [`Attempt::stated`]).
pub(crate) fn check_stated(
    config: &ActiveConfig,
    form: &Form,
    stated: Map<String, Value>,
) -> Result<BTreeMap<String, Value>, StatedError> {
    if stated.len() > crate::verification::MAX_CLAIMS {
        return Err(StatedError::TooMany);
    }
    let mut out = BTreeMap::new();
    for (id, value) in stated {
        let Some((field, source)) = form
            .sections
            .iter()
            .filter(|s| s.scope == Scope::Subject)
            .flat_map(|s| &s.fields)
            .find_map(|f| f.verify().filter(|_| f.id == id).map(|source| (f, source)))
        else {
            return Err(StatedError::UnknownField);
        };
        let address = config
            .connectors
            .get(&source.connector)
            .and_then(|c| c.operations.get(&source.operation))
            .and_then(|op| op.leaves.iter().find(|l| l.path == source.path))
            .is_some_and(|l| l.pii == connectors::definition::PiiKind::Address);
        let malformed = || StatedError::Malformed(field.id.clone());
        match &value {
            Value::Null => continue,
            Value::String(text) if text.trim().is_empty() => continue,
            Value::String(text) => {
                if text.chars().count() > crate::verification::MAX_CLAIM_CHARS {
                    return Err(malformed());
                }
                if field.kind == FieldType::Date
                    && NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_err()
                {
                    return Err(malformed());
                }
            }
            Value::Object(division) if address => {
                let digits = |key: &str| match key {
                    "village_code" => Some(12),
                    "township_code" => Some(9),
                    "county_code" => Some(6),
                    _ => None,
                };
                let ok = division.len() == 1
                    && division.iter().all(|(key, code)| {
                        digits(key).is_some_and(|n| {
                            code.as_str().is_some_and(|c| {
                                c.len() == n && c.bytes().all(|b| b.is_ascii_digit())
                            })
                        })
                    });
                if !ok {
                    return Err(malformed());
                }
            }
            _ => return Err(malformed()),
        }
        out.insert(id, value);
    }
    Ok(out)
}

/// Why a fill was refused before any department was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The caller's own limits cannot take the form's lookups.
    Limited(crate::limits::Limited),
    /// No form template with this id is configured.
    UnknownForm,
    /// No grant in force gives the caller the form's purpose.
    NotGranted,
    /// The ID number or the case id is wrong.
    Subject(crate::lookup::SubjectError),
    /// The form's purpose is not configured (the gateway's fault).
    NoPurpose,
    /// What the citizen states for the form's `verify` fields is not usable.
    Stated(StatedError),
}

/// What is wrong with the values stated for a form's `verify` fields. Names a field
/// only when it is one of the form's (a key could be anything, even personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatedError {
    /// More values than the form has `verify` fields, or than one verification takes.
    TooMany,
    /// A key that is not the id of one of the form's `verify` fields (not named back).
    UnknownField,
    /// Not a string of at most 200 characters (a date as `YYYY-MM-DD`), nor for an
    /// address the division it lies in.
    Malformed(String),
}

impl std::fmt::Display for StatedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatedError::TooMany => write!(
                f,
                "`stated` holds more values than the form has fields to verify (at most {})",
                crate::verification::MAX_CLAIMS
            ),
            StatedError::UnknownField => f.write_str(
                "a key of `stated` is not the id of one of the form's fields to verify \
                 (GET /v1/forms: `verify: true`)",
            ),
            StatedError::Malformed(field) => write!(
                f,
                "the value stated for `{field}` is not one it can hold (a string of at most {} \
                 characters; a date as YYYY-MM-DD; an address as text or as one of \
                 village_code (12 digits), township_code (9) or county_code (6))",
                crate::verification::MAX_CLAIM_CHARS
            ),
        }
    }
}

impl Refused {
    /// The problem type this refusal answers with (and the audit log records).
    pub fn kind(&self) -> ProblemKind {
        match self {
            Refused::Limited(limited) => LookupError::Limited(limited.clone()).kind(),
            Refused::UnknownForm => ProblemKind::UnknownForm,
            Refused::NotGranted => ProblemKind::Forbidden,
            Refused::Subject(crate::lookup::SubjectError::IdNumber(_)) => {
                ProblemKind::InvalidIdNumber
            }
            Refused::Subject(_) | Refused::Stated(_) => ProblemKind::InvalidRequest,
            Refused::NoPurpose => ProblemKind::Internal,
        }
    }
}

/// One fill as a front end runs it: [`Attempt::admit`] checks the caller's limits
/// (charged the form's cost), the form and the caller's grant before the front end
/// reads its input; [`Attempt::person`] checks the ID number and case id;
/// [`Attempt::fill`] asks the departments. A fill refused before any lookup is
/// recorded as one event by [`Attempt::record_refusal`].
#[derive(Debug)]
pub struct Attempt<'a> {
    services: Services<'a>,
    audit: &'a dyn AuditLog,
    config: &'a ActiveConfig,
    caller: &'a Caller,
    peer: Option<SocketAddr>,
    trail: Trail,
}

impl<'a> Attempt<'a> {
    pub fn new(
        services: Services<'a>,
        audit: &'a dyn AuditLog,
        config: &'a ActiveConfig,
        caller: &'a Caller,
        peer: Option<SocketAddr>,
    ) -> Attempt<'a> {
        let mut trail = Trail::default();
        trail.policy_version = Some(config.policies.version.clone());
        Attempt {
            services,
            audit,
            config,
            caller,
            peer,
            trail,
        }
    }

    /// The caller's own limits, charged the form's cost (the most lookups it makes;
    /// 1 for an unknown form), then the form, then the caller's grant for its
    /// purpose. Only a form id the gateway knows is recorded.
    pub async fn admit(&mut self, form_id: &str) -> Result<Arc<Form>, Refused> {
        let form = self.config.forms.get(form_id).cloned();
        if let Some(form) = &form {
            self.trail.form = Some(form.id.clone());
            self.trail.purpose = Some(form.purpose.clone());
        }
        let cost = form.as_ref().map_or(1, |f| f.max_lookups);
        self.services
            .limits
            .check_caller(&self.caller.user, self.caller.township.as_deref(), cost)
            .await
            .map_err(Refused::Limited)?;
        let form = form.ok_or(Refused::UnknownForm)?;
        if !may_use(
            self.config,
            self.caller,
            &form.purpose,
            self.services.clock.today(),
        ) {
            return Err(Refused::NotGranted);
        }
        Ok(form)
    }

    /// The person (by ID number: a form is filled for a person) and the case id,
    /// checked; the case id as it is recorded.
    pub fn person(
        &mut self,
        subject: Result<SubjectKeyValue, crate::lookup::SubjectError>,
        case_id: &str,
    ) -> Result<(IdNumber, String), Refused> {
        let case_id = crate::lookup::check_case_id(case_id).map_err(Refused::Subject)?;
        self.trail.case_id = Some(case_id.clone());
        let subject = match subject.map_err(Refused::Subject)? {
            SubjectKeyValue::Id(id) => id,
            SubjectKeyValue::Household(_) => {
                return Err(Refused::Subject(crate::lookup::SubjectError::PersonOnly));
            }
        };
        self.trail.subject_pseudonym = Some(self.services.pseudonym.pseudonym(subject.as_str()));
        self.trail.subject_masked = Some(subject.masked());
        Ok((subject, case_id))
    }

    /// The values the citizen states for `form`'s `verify` fields (`stated` in the
    /// request; empty values are not stated), checked: by field id.
    pub fn stated(
        &self,
        form: &Form,
        stated: Map<String, Value>,
    ) -> Result<BTreeMap<String, Value>, Refused> {
        check_stated(self.config, form, stated).map_err(Refused::Stated)
    }

    /// Records a fill refused before any lookup (status and problem type as
    /// answered); `Err` when the audit log could not record it (then nothing but
    /// `audit-unavailable` may be answered).
    pub async fn record_refusal(
        self,
        status: u16,
        problem: &str,
    ) -> Result<(), crate::audit::AuditError> {
        let event = self.trail.event(
            self.services.request_id,
            self.caller,
            self.peer,
            status,
            Some(problem),
        );
        self.audit.append(event).await.map(|_| ())
    }

    /// Fills `form` for `subject` from every department it needs.
    pub async fn fill(
        self,
        form: &Form,
        subject: &IdNumber,
        case_id: &str,
        stated: &BTreeMap<String, Value>,
    ) -> Result<Filled, Refused> {
        let purpose = self
            .config
            .purposes
            .get(&form.purpose)
            .ok_or(Refused::NoPurpose)?;
        let today = self.services.clock.today();
        let request_id = self.services.request_id;
        let ctx = Context {
            stated,
            services: self.services,
            audit: self.audit,
            config: self.config,
            caller: self.caller,
            form,
            purpose,
            request_id,
            peer: self.peer,
            case_id,
            deadline: Instant::now() + form.deadline,
            today,
            subject,
        };
        Ok(fill(&ctx).await)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Map, Value, json};

    use super::{StatedError, check_stated, insert_at};
    use crate::config::{ActiveConfig, EmbeddedSource, LoadOptions, load};
    use crate::county::{COUNTY_CONFIG, COUNTY_FILES};

    fn county() -> ActiveConfig {
        let files = COUNTY_FILES.iter().map(|(p, t)| (*p, (*t).to_owned()));
        load(
            &EmbeddedSource::new(files),
            Path::new(COUNTY_CONFIG),
            &LoadOptions::default(),
        )
        .expect("the demo county loads")
    }

    fn stated(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn stated_values_are_checked_against_the_forms_fields_to_verify() {
        let config = county();
        let form = config.forms.get("elderly-allowance").expect("the form");
        let check = |value: Value| check_stated(&config, form, stated(value));

        let ok = check(json!({
            "name": "王 秀英",
            "birth_date": "1948-03-02",
            "address": {"village_code": "139901101203"},
        }))
        .expect("usable");
        assert_eq!(ok.len(), 3);
        // Empty values are not stated.
        let ok = check(json!({"name": " ", "birth_date": null})).expect("usable");
        assert!(ok.is_empty());

        // A key that is no field to verify (even one the form reads) is refused, and
        // the error does not carry it.
        for key in ["id_number", "13990119750327229X", "bank_account"] {
            let error = check(json!({ key: "x" })).unwrap_err();
            assert_eq!(error, StatedError::UnknownField);
            assert!(!error.to_string().contains(key), "{error}");
        }
        // Not a date; too long; a division for a name; a division that is none.
        let long = "名".repeat(201);
        for (value, field) in [
            (json!({"birth_date": "1948/03/02"}), "birth_date"),
            (json!({"name": long}), "name"),
            (json!({"name": {"village_code": "139901101203"}}), "name"),
            (json!({"address": {"village_code": "1399"}}), "address"),
            (json!({"address": {"street": "139901101203"}}), "address"),
            (json!({"name": 42}), "name"),
        ] {
            assert_eq!(
                check(value.clone()),
                Err(StatedError::Malformed(field.to_owned())),
                "{value}"
            );
        }
        let many: Map<String, Value> = (0..=crate::verification::MAX_CLAIMS)
            .map(|i| (format!("f{i}"), json!("x")))
            .collect();
        assert_eq!(check_stated(&config, form, many), Err(StatedError::TooMany));
    }

    #[test]
    fn stated_values_are_shaped_like_the_record() {
        let mut claims = Map::new();
        insert_at(&mut claims, "name", json!("王秀英"));
        insert_at(&mut claims, "spouse.name", json!("李四"));
        insert_at(&mut claims, "spouse.birth_date", json!("1950-01-01"));
        assert_eq!(
            Value::Object(claims),
            json!({"name": "王秀英", "spouse": {"name": "李四", "birth_date": "1950-01-01"}})
        );
    }
}
