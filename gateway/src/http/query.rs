//! `POST /v1/query`: one lookup of one subject through one connector operation, for a
//! purpose and a case. The handler authenticates the bearer token, takes from the
//! caller's own rate limits, parses and validates the request (the ID number before
//! any upstream call), resolves connector, operation and purpose, and runs the shared
//! `lookup` pipeline: decide → quota → cache or fetch → schema → mask.
//!
//! Every authenticated lookup — answered, refused or failed — leaves one audit event,
//! made durable BEFORE the answer is sent; if it cannot be, the caller gets 503 and
//! nothing else (no audit, no data). An answer names its event in the
//! [`super::receipt`] header. The request is parsed in [`super::request`].

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::SecondsFormat;
use serde::Serialize;
use tracing::Instrument;

use super::error::audit_unavailable;
use super::problem::Problem;
use super::request::parse;
use super::{Authenticated, Peer, RequestId};
use crate::app::App;
use crate::auth::Caller;
use crate::lookup::Trail;
use crate::lookup::single::{self, Ask};
use crate::policy::{Returned, Withheld};

pub(crate) async fn query(
    State(app): State<App>,
    RequestId(request_id): RequestId,
    Peer(peer): Peer,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut trail = Trail::default();
    let answer = run(&app, &caller, &request_id, &headers, body, &mut trail).await;
    let (status, problem) = match &answer {
        Ok(_) => (200, None),
        Err(p) => (p.kind.status().as_u16(), Some(p.kind.slug())),
    };
    let event = trail.event(&request_id, &caller, peer, status, problem);
    let commit = tracing::info_span!(
        "audit.commit",
        audit.seq = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let recorded = match app.audit.append(event).instrument(commit.clone()).await {
        Ok(recorded) => recorded,
        Err(e) => {
            commit.record("otel.status_code", "ERROR");
            return audit_unavailable(&request_id, &e);
        }
    };
    commit.record("audit.seq", recorded.seq);
    match answer {
        Ok(mut response) => {
            super::receipt::attach(&mut response, std::slice::from_ref(&recorded));
            response
        }
        Err(problem) => problem.for_request(&request_id).into_response(),
    }
}

async fn run(
    app: &App,
    caller: &Caller,
    request_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    trail: &mut Trail,
) -> Result<Response, Problem> {
    // One department lookup.
    single::admit(app.services(request_id), caller)
        .instrument(tracing::info_span!("limits"))
        .await
        .map_err(Problem::from)?;
    let (request, lang) = tracing::info_span!("validate").in_scope(|| {
        let request = parse(headers, body)?;
        let lang = super::labels::requested(request.labels.as_deref(), headers)?;
        Ok::<_, Problem>((request, lang))
    })?;
    let config = app.config.load_full();
    let (id_number, household_number) = request.subject.into_parts();
    let ask = Ask {
        connector: request.connector,
        operation: request.operation,
        purpose: request.purpose,
        case_id: request.case_id.clone(),
        id_number,
        household_number,
    };
    let answered = single::ask(app.services(request_id), &config, caller, ask, trail).await?;
    let (found, connector, operation, purpose) = (
        &answered.found,
        answered.connector,
        answered.operation,
        answered.purpose,
    );
    let _respond = tracing::info_span!("respond").entered();
    let result = &found.outcome;
    let fetched_at = found.record.fetched_at();
    let department = &connector.def.department;
    // Written straight from borrowed parts: no `Value` tree is built per answer
    // (unless labels are asked for).
    let answer = Answer {
        request_id,
        connector: &connector.def.id,
        operation,
        department: Named {
            id: &department.id,
            name: &department.name,
        },
        purpose: Coded {
            code: &purpose.code,
            name: &purpose.name,
        },
        case_id: &request.case_id,
        fetched_at: fetched_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        age_s: (app.clock.now() - fetched_at).num_seconds().max(0),
        cache_hit: found.cache_hit,
        data: &result.data,
        fields: &result.fields,
        withheld: &result.withheld,
        decision: Decision {
            rules: &result.rules,
            policy_version: &config.policies.version,
            config_version: &config.version,
        },
    };
    Ok(super::labels::respond(&answer, lang))
}

/// The answer to a lookup.
#[derive(Serialize)]
struct Answer<'a> {
    request_id: &'a str,
    connector: &'a str,
    operation: &'a str,
    department: Named<'a>,
    purpose: Coded<'a>,
    case_id: &'a str,
    fetched_at: String,
    age_s: i64,
    cache_hit: bool,
    data: &'a serde_json::Value,
    fields: &'a BTreeMap<String, Returned>,
    withheld: &'a [Withheld],
    decision: Decision<'a>,
}

#[derive(Serialize)]
struct Named<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct Coded<'a> {
    code: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct Decision<'a> {
    rules: &'a BTreeSet<String>,
    policy_version: &'a str,
    config_version: &'a str,
}
