//! One lookup: one subject through one connector operation for one purpose — the
//! part of the pipeline `/v1/query` and form fills share. In order: decide which
//! fields may leave (or refuse) → take from the grants' quotas → get the record from
//! the connector's cache, or fetch it within the department's capacity and check it
//! against its schema (fail closed; only valid records are cached) → check row
//! conditions, minimize and mask.
//!
//! The caller of [`lookup`] owns the [`Trail`] and turns it into the lookup's audit
//! event, made durable before anything of the answer is sent. A lookup fails with a
//! [`LookupError`] ([`error`]); the subject key and case id are checked in
//! [`subject`]. It needs only [`Services`]: the pseudonym key and the limits.

pub mod error;
mod linked;
pub mod single;
pub mod subject;
pub(crate) mod trail;

use std::sync::Arc;
use std::time::Instant;

use connectors::{FetchContext, FetchError};
use tracing::Instrument;
use tracing::field::Empty;

use crate::auth::Caller;
use crate::cache::{Answer, Entry, Record};
use crate::config::{ActiveConfig, ActiveConnector, ActiveOperation};
use crate::jurisdiction::Residence;
use crate::limits::{Limited, Rate, RateLimits};
use crate::mask::{MaskContext, PseudonymKey};
use crate::policy::{Level, Outcome, Outside, Refusal};
use crate::purpose::Purpose;
use crate::schema::Violation;
use crate::traffic::CallOutcome;
pub use error::LookupError;
pub use subject::{SubjectError, SubjectKeyValue, check_case_id, household_number, subject_key};
pub(crate) use trail::Trail;

/// What a lookup needs besides the configuration: the key of subject pseudonyms and
/// masks, the limits (grant quotas, departments' capacity) and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Services<'a> {
    pub pseudonym: &'a PseudonymKey,
    pub limits: &'a RateLimits,
    /// "Now" for records fetched and "today" for grants' validity.
    pub clock: &'a dyn crate::clock::Clock,
    /// Where department calls and policy decisions are counted.
    pub traffic: &'a crate::traffic::Traffic,
    /// The gateway request the lookup serves, passed on to the department (a fetch
    /// shared by callers at once carries the first one's).
    pub request_id: &'a str,
}

/// What is looked up: a resolved connector operation for a purpose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) connector: &'a ActiveConnector,
    pub(crate) operation: &'a str,
    pub(crate) op: &'a ActiveOperation,
    pub(crate) purpose: &'a Purpose,
    /// How the subject was reached, for grants held to the caller's jurisdiction.
    pub(crate) reach: Reach<'a>,
    /// Reading fields, or comparing them with stated values ([`crate::verification`]).
    pub(crate) level: Level,
}

/// How a lookup's subject was reached, for grants that hold only in the caller's
/// jurisdiction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reach<'a> {
    /// Asked for directly: the jurisdiction is checked here if a grant needs it.
    Direct,
    /// A form's subject whose jurisdiction check passed, and where they live: grants
    /// held to a narrower jurisdiction (the caller's villages) are checked against it.
    Inside(&'a Residence),
    /// A person reached through a form's subject who passed (a spouse, a child, a
    /// household member).
    Linked,
}

/// A lookup that released data.
#[derive(Debug)]
pub(crate) struct Found {
    /// The caller's view: minimized and masked, with its account.
    pub(crate) outcome: Outcome,
    /// The canonical record. Stays inside the gateway (a form follows links in it
    /// only where the caller's view holds the link too).
    pub(crate) record: Arc<Entry>,
    pub(crate) cache_hit: bool,
}

/// Why getting a record failed.
#[derive(Debug)]
enum Failure {
    Fetch(FetchError),
    Capacity(Limited),
    Schema(Violation),
}

/// Runs one lookup for `caller`, filling `trail` as it goes. With a `deadline`, the
/// department's answer is waited for until then (a form's deadline). Traced as one
/// `lookup` span (ids and outcome only) with a span per step inside.
pub(crate) async fn lookup(
    app: Services<'_>,
    config: &ActiveConfig,
    caller: &Caller,
    target: Target<'_>,
    subject: &SubjectKeyValue,
    deadline: Option<Instant>,
    trail: &mut Trail,
) -> Result<Found, LookupError> {
    let span = tracing::info_span!(
        "lookup",
        connector = %target.connector.def.id,
        operation = target.operation,
        purpose = %target.purpose.code,
        township = caller.township.as_deref().unwrap_or(""),
        cache.hit = Empty,
        outcome = Empty,
        "problem.type" = Empty,
        otel.status_code = Empty,
    );
    let result = steps(app, config, caller, target, subject, deadline, trail)
        .instrument(span.clone())
        .await;
    match &result {
        Ok(found) => {
            span.record("outcome", "ok");
            span.record("cache.hit", found.cache_hit);
        }
        Err(error) => {
            let slug = error.kind().slug();
            span.record("outcome", slug);
            span.record("problem.type", slug);
            span.record("otel.status_code", "ERROR");
        }
    }
    result
}

async fn steps(
    app: Services<'_>,
    config: &ActiveConfig,
    caller: &Caller,
    target: Target<'_>,
    subject: &SubjectKeyValue,
    deadline: Option<Instant>,
    trail: &mut Trail,
) -> Result<Found, LookupError> {
    let reach = target.reach;
    let connector_id = target.connector.def.id.as_str();
    trail.policy_version = Some(config.policies.version.clone());
    trail.connector = Some(connector_id.to_owned());
    trail.operation = Some(target.operation.to_owned());
    trail.purpose = Some(target.purpose.code.clone());
    let subject_pseudonym = app.pseudonym.pseudonym(subject.as_str());
    trail.subject_pseudonym = Some(subject_pseudonym.clone());
    trail.subject_masked = Some(subject.masked());

    let today = app.clock.today();
    let plan = tracing::info_span!("policy")
        .in_scope(|| {
            config.policies.decide_for(
                target.level,
                caller,
                connector_id,
                target.operation,
                &target.op.leaves,
                &target.purpose.code,
                today,
            )
        })
        .map_err(|refusal| refused(app, trail, refusal))?;
    let quotas = async {
        for grant in &plan.grants {
            if let Some(quota) = &grant.quota {
                app.limits
                    .check_grant(&grant.id, quota, caller.township.as_deref(), &caller.user)
                    .await
                    .map_err(|limited| (grant.id.as_str(), limited))?;
            }
        }
        Ok(())
    };
    if let Err((grant, limited)) = quotas.instrument(tracing::info_span!("limits")).await {
        trail.refused_by(grant);
        return Err(LookupError::Limited(limited));
    }

    // Where the subject lives, before the department is asked, when a grant holds
    // only in the caller's jurisdiction.
    let mut outside = Outside::NOWHERE;
    // A lookup on the authority's own operation learns where the subject lives from
    // the record it fetches anyway: decided once the record is here.
    let on_authority = config
        .jurisdiction
        .as_ref()
        .is_some_and(|a| a.is_authority(connector_id, target.operation));
    let mut deferred = false;
    if plan.needs_jurisdiction() {
        match reach {
            Reach::Direct if on_authority => deferred = true,
            Reach::Direct => {
                let lives = residence(app, config, subject, deadline)
                    .instrument(tracing::info_span!("jurisdiction"))
                    .await?;
                outside = Outside::of(caller, &lives);
                let word = if plan.is_outside(outside) {
                    "outside"
                } else {
                    "inside"
                };
                trail.jurisdiction = Some(word);
                trail.subject_township = lives.township;
                if let Some(refusal) = plan.refuse_outside(outside) {
                    return Err(refused(app, trail, refusal));
                }
            }
            Reach::Inside(lives) => {
                outside = Outside::of(caller, lives);
                let word = if plan.is_outside(outside) {
                    "outside"
                } else {
                    "inside"
                };
                trail.jurisdiction = Some(word);
                trail.subject_township = lives.township.clone();
                if let Some(refusal) = plan.refuse_outside(outside) {
                    return Err(refused(app, trail, refusal));
                }
            }
            Reach::Linked => trail.jurisdiction = Some("linked"),
        }
    } else if let Reach::Inside(lives) = reach {
        trail.subject_township = lives.township.clone();
    }

    let started = Instant::now();
    let got = record(
        app,
        target.connector,
        target.operation,
        target.op,
        subject,
        deadline,
    )
    .await;
    let log = |outcome: &str| {
        tracing::info!(
            user = %caller.user,
            connector = connector_id,
            operation = target.operation,
            purpose = %target.purpose.code,
            subject = %subject.masked(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome,
            "lookup"
        );
    };
    let answer = got.map_err(|failure| {
        let error = failure.error(connector_id);
        log(error.kind().slug());
        error
    })?;
    trail.cache_hit = answer.cache_hit;
    let record = match &*answer.entry {
        Entry::Found(record) => record,
        Entry::NotFound { .. } => {
            if deferred {
                // Nobody by this number lives anywhere: outside, like a resident of
                // another township.
                trail.jurisdiction = Some("outside");
                if let Some(refusal) = plan.refuse_outside(Outside::EVERYWHERE) {
                    log(crate::problem::ProblemKind::Forbidden.slug());
                    return Err(refused(app, trail, refusal));
                }
            }
            let error = LookupError::NotFound {
                connector: connector_id.to_owned(),
            };
            log(error.kind().slug());
            return Err(error);
        }
    };
    if !answer.cache_hit {
        trail.upstream_latency_ms = Some(record.upstream_latency.as_millis() as u64);
    }
    if let Some(authority) = &config.jurisdiction
        && on_authority
        && trail.subject_township.is_none()
    {
        trail.subject_township = authority.township_of(&record.value);
    }
    if deferred && let Some(authority) = &config.jurisdiction {
        outside = Outside::of(caller, &authority.residence_of(&record.value));
        let word = if plan.is_outside(outside) {
            "outside"
        } else {
            "inside"
        };
        trail.jurisdiction = Some(word);
        if let Some(refusal) = plan.refuse_outside(outside) {
            log(crate::problem::ProblemKind::Forbidden.slug());
            return Err(refused(app, trail, refusal));
        }
    }
    let ctx = MaskContext {
        key: app.pseudonym,
        today,
    };
    let outcome = tracing::info_span!("mask")
        .in_scope(|| plan.apply(&record.value, caller, &target.op.fields, &ctx, outside))
        .map_err(|refusal| {
            log(crate::problem::ProblemKind::Forbidden.slug());
            refused(app, trail, refusal)
        })?;
    app.traffic.decision("allowed", "granted");
    match target.level {
        Level::Read => {
            trail.decided(&outcome);
            trail.linked = linked::people(
                &target.op.leaves,
                &record.value,
                &outcome,
                &subject_pseudonym,
                app.pseudonym,
            );
        }
        // Nothing is released: the values stay for comparison, the verification
        // records what it compared.
        Level::Verify => trail.withheld(&outcome),
    }
    log("ok");
    Ok(Found {
        outcome,
        record: answer.entry.clone(),
        cache_hit: answer.cache_hit,
    })
}

/// The policy's refusal of a lookup: counted, and its rule recorded in the trail.
fn refused(app: Services<'_>, trail: &mut Trail, refusal: Refusal) -> LookupError {
    app.traffic.decision("refused", refusal.reason.as_str());
    trail.refused_by(&refusal.rule);
    LookupError::Refused(refusal)
}

/// Where the subject lives (township, and village when the authority names a village
/// field), as the county's authority for residence says (through its cache, within
/// its department's capacity); nowhere for a person it does not know, or when no
/// authority can answer for this kind of subject key.
pub(crate) async fn residence(
    app: Services<'_>,
    config: &ActiveConfig,
    subject: &SubjectKeyValue,
    deadline: Option<Instant>,
) -> Result<Residence, LookupError> {
    let Some(authority) = &config.jurisdiction else {
        return Ok(Residence::default());
    };
    let Some(operation) = authority.operation_for(subject.key()) else {
        return Ok(Residence::default());
    };
    let Some(connector) = config.connectors.get(&authority.connector) else {
        // Disabled: nobody's residence can be told, so nothing that needs it is shown.
        return Err(disabled(config, &authority.connector));
    };
    let Some((operation, op)) = connector.operations.get_key_value(operation) else {
        return Ok(Residence::default());
    };
    let answer = record(app, connector, operation, op, subject, deadline)
        .await
        .map_err(|failure| failure.error(&authority.connector))?;
    Ok(match &*answer.entry {
        Entry::Found(record) => authority.residence_of(&record.value),
        Entry::NotFound { .. } => Residence::default(),
    })
}

/// The failure for a connector its department has switched off: temporary, naming
/// the department.
pub(crate) fn disabled(config: &ActiveConfig, connector: &str) -> LookupError {
    let department = config.disabled.get(connector).map(|id| {
        let name = config.departments.get(id).map(|d| d.name.clone());
        (id.clone(), name)
    });
    LookupError::Disabled {
        connector: connector.to_owned(),
        department,
    }
}

/// The record from the connector's cache, or fetched from the department within its
/// capacity and checked against the operation's schema. With a `deadline`, waited
/// for until then (a form's deadline).
async fn record(
    app: Services<'_>,
    connector: &ActiveConnector,
    operation: &str,
    op: &ActiveOperation,
    subject: &SubjectKeyValue,
    deadline: Option<Instant>,
) -> Result<Answer, Arc<Failure>> {
    let fetching = cached(app, connector, operation, op, subject);
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), fetching)
            .await
            .unwrap_or_else(|_| Err(Arc::new(Failure::Fetch(FetchError::Timeout)))),
        None => fetching.await,
    }
}

async fn cached(
    app: Services<'_>,
    connector: &ActiveConnector,
    operation: &str,
    op: &ActiveOperation,
    subject: &SubjectKeyValue,
) -> Result<Answer, Arc<Failure>> {
    let def = &connector.def;
    let fetch = async {
        if let Some(capacity) = &def.capacity {
            let rate = Rate::per_second(capacity.per_second, capacity.burst());
            if let Err(limited) = app.limits.check_connector(&def.id, rate).await {
                app.traffic
                    .upstream(&def.id, operation, CallOutcome::Busy, None);
                return Err(Failure::Capacity(limited));
            }
        }
        // The department call's span travels on to the department, so that its own
        // tracing joins the trace.
        let call = tracing::info_span!(
            "upstream",
            otel.kind = "client",
            connector = %def.id,
            operation,
            outcome = Empty,
            otel.status_code = Empty,
        );
        // The fetch may be shared by lookups waiting on the cache: it runs to the
        // connector's own limits, each lookup's deadline stays with the lookup.
        let context = FetchContext {
            request_id: Some(app.request_id.to_owned()),
            trace_context: crate::telemetry::traceparent(&call),
            ..FetchContext::default()
        };
        let sent = Instant::now();
        let fetched = connector
            .connector
            .fetch(operation, subject.as_str(), &context)
            .instrument(call.clone())
            .await;
        let took = Some(sent.elapsed());
        let count = |outcome: CallOutcome<'_>| {
            call.record("outcome", outcome.name());
            if !matches!(
                outcome,
                CallOutcome::Record | CallOutcome::Failed(FetchError::NotFound)
            ) {
                call.record("otel.status_code", "ERROR");
            }
            app.traffic.upstream(&def.id, operation, outcome, took)
        };
        match fetched {
            Ok(fetched) => {
                let checked =
                    tracing::info_span!("schema").in_scope(|| op.schema.check(&fetched.record));
                if let Err(violation) = checked {
                    count(CallOutcome::Schema);
                    return Err(Failure::Schema(violation));
                }
                count(CallOutcome::Record);
                Ok(Entry::Found(Record {
                    value: fetched.record,
                    fetched_at: app.clock.now(),
                    upstream_latency: fetched.latency,
                }))
            }
            Err(error) => {
                count(CallOutcome::Failed(&error));
                match error {
                    FetchError::NotFound => Ok(Entry::NotFound {
                        at: app.clock.now(),
                    }),
                    e => Err(Failure::Fetch(e)),
                }
            }
        }
    };
    match &connector.cache {
        Some(cache) => {
            let span = tracing::info_span!("cache", cache.hit = Empty);
            let answer = cache
                .get_or_fetch(operation, subject.as_str(), fetch)
                .instrument(span.clone())
                .await;
            if let Ok(answer) = &answer {
                span.record("cache.hit", answer.cache_hit);
            }
            answer
        }
        None => fetch
            .await
            .map(|entry| Answer {
                entry: Arc::new(entry),
                cache_hit: false,
            })
            .map_err(Arc::new),
    }
}

impl Failure {
    fn error(&self, connector: &str) -> LookupError {
        let connector = connector.to_owned();
        match self {
            Failure::Fetch(error) => LookupError::Upstream {
                connector,
                error: error.clone(),
            },
            Failure::Capacity(limited) => LookupError::Busy {
                connector,
                limited: limited.clone(),
            },
            Failure::Schema(violation) => LookupError::Schema {
                connector,
                violation: violation.clone(),
            },
        }
    }
}
