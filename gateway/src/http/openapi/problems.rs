//! Problems in the OpenAPI document: the `Problem` schema (RFC 9457, written once, its
//! `type` one of the catalogue's URIs) and, per operation, one response per status
//! naming the problem types the operation can answer with at that status — its schema
//! narrows `type` to exactly those, so a client (and the truthfulness test) can tell
//! a documented error from an undocumented one.
//!
//! An operation lists its problem types with [`problems!`](crate::problems); every
//! operation can also answer `invalid-request` (a query string where the route takes
//! none, refused before any handler runs) and `internal`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, SchemaType};
use utoipa::openapi::{
    AllOfBuilder, ContentBuilder, Header, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder,
    Schema, Type,
};

use crate::problem::{Blame, Problem, ProblemKind};

/// The media type of problems.
pub(crate) const PROBLEM_JSON: &str = super::super::problem::PROBLEM_JSON;

/// Every operation can answer these, whatever it does.
const EVERYWHERE: [ProblemKind; 2] = [ProblemKind::InvalidRequest, ProblemKind::Internal];

/// Declares `$name`, the problem responses of an operation: the kinds it lists plus
/// those every operation can answer, one response per status. Use it in
/// `#[utoipa::path(responses(...))]` beside the success responses.
#[macro_export]
#[doc(hidden)]
macro_rules! problems {
    ($(#[$doc:meta])* $name:ident = [$($kind:ident),* $(,)?]) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::http::openapi::problems::responses(&[
                    $($crate::problem::ProblemKind::$kind),*
                ])
            }
        }
    };
}

/// One response per status for `kinds` and the kinds every operation answers.
pub(crate) fn responses(kinds: &[ProblemKind]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ProblemKind>> = BTreeMap::new();
    // In the catalogue's order, each once.
    for kind in ProblemKind::ALL {
        if kinds.contains(kind) || EVERYWHERE.contains(kind) {
            by_status
                .entry(kind.status().as_u16())
                .or_default()
                .push(*kind);
        }
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| (status.to_string(), RefOr::T(response(status, &kinds))))
        .collect()
}

/// The response for `kinds`, all of status `status`.
fn response(status: u16, kinds: &[ProblemKind]) -> Response {
    let list: Vec<String> = kinds
        .iter()
        .map(|k| format!("`{}` ({})", k.slug(), k.title()))
        .collect();
    let narrowed = ObjectBuilder::new()
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(kinds.iter().map(|k| k.type_uri()))),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status])),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed);
    let mut response = ResponseBuilder::new()
        .description(format!("A problem: {}.", list.join("; ")))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    for (name, about) in headers(kinds) {
        response = response.header(name, header(about));
    }
    response.build()
}

/// The headers problems of these kinds carry.
fn headers(kinds: &[ProblemKind]) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if kinds.contains(&ProblemKind::Unauthenticated) {
        out.push((
            "WWW-Authenticate",
            "`Bearer`, or `Bearer error=\"invalid_token\", error_description=\"<reason>\"` (RFC 6750).",
        ));
    }
    let limited = [
        ProblemKind::RateLimited,
        ProblemKind::DepartmentCapacity,
        ProblemKind::RateLimitUnavailable,
    ];
    if kinds.iter().any(|k| limited.contains(k)) {
        out.push(("Retry-After", "Seconds until a retry can succeed."));
    }
    if kinds.iter().any(|k| {
        matches!(
            k,
            ProblemKind::RateLimited | ProblemKind::DepartmentCapacity
        )
    }) {
        out.push((
            "RateLimit-Policy",
            "The limit that refused, `\"<limit>\";q=<quota>;w=<window s>` (draft-ietf-httpapi-ratelimit-headers).",
        ));
        out.push((
            "RateLimit",
            "`\"<limit>\";r=0;t=<seconds>` (draft-ietf-httpapi-ratelimit-headers).",
        ));
    }
    out
}

fn header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn integer(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .description(Some(description))
}

fn strings(description: &str) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
}

/// `Problem`: the body of every error answer.
impl utoipa::PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let blames = [Blame::Caller, Blame::Department, Blame::Gateway].map(Blame::as_str);
        let types: Vec<String> = ProblemKind::ALL.iter().map(|k| k.type_uri()).collect();
        let department = ObjectBuilder::new()
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "name",
                ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])),
            )
            .required("id")
            .description(Some(
                "`connector-disabled`: the department that switched it off.",
            ));
        let problem_item = ObjectBuilder::new()
            .property("file", ObjectBuilder::new().schema_type(Type::String))
            .property("path", ObjectBuilder::new().schema_type(Type::String))
            .property("message", ObjectBuilder::new().schema_type(Type::String));
        ObjectBuilder::new()
            .description(Some(
                "An RFC 9457 problem. `type` is stable and documented at its own path \
                 (`GET /problems/{slug}`); `detail` and every other member are written by \
                 the gateway and never hold personal data, a token or a department's content. \
                 Members beyond the standard ones depend on the type.",
            ))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(types))
                    .description(Some("The problem type: `/problems/<slug>`.")),
            )
            .property("title", string("The type's fixed title."))
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The HTTP status.")),
            )
            .property("detail", string("What went wrong, for a person."))
            .property(
                "blame",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(blames))
                    .description(Some(
                        "Who can fix it: the caller's request, the department's system, or the gateway.",
                    )),
            )
            .property("instance", string("`urn:uuid:<request id>`."))
            .property(
                "request_id",
                string("The request's id, as in the `x-request-id` header and the audit log."),
            )
            .property(
                "at",
                string("Where in the request body (or which query parameter) the problem is."),
            )
            .property(
                "reason",
                string("`unauthenticated`: what was wrong with the token (`missing`, `expired`, `missing_claim: township`, …); `forbidden`: the kind of refusal (`role`, `denied_by_rule`, `row_condition`, `jurisdiction`, `not_granted`)."),
            )
            .property("rule", string("`forbidden`: the deciding rule."))
            .property("claim", string("`unauthenticated`: the missing claim."))
            .property("check", string("`invalid-id-number`: the GB 11643 check that failed."))
            .property("connector", string("The connector concerned."))
            .property("department", department)
            .property(
                "limit",
                string("`rate-limited`, `department-capacity`: which limit (`user`, `township`, `grant:<id>`, `grant:<id>:user`, `connector:<id>`)."),
            )
            .property("retry_after_s", integer("Seconds until a retry can succeed."))
            .property(
                "lookups",
                integer("`rate-limited`: the department lookups this request needs."),
            )
            .property(
                "upstream_status",
                integer("`upstream-error`: the department's HTTP status."),
            )
            .property(
                "limit_bytes",
                integer("`upstream-oversize`: the connector's size limit."),
            )
            .property(
                "fault",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(connectors::sql::FrontError::ALL.iter().map(|f| f.code())))
                    .description(Some("`front-database`: the kind of fault, never the database's words.")),
            )
            .property("field", string("`upstream-schema-violation`: the mapped field."))
            .property(
                "upstream_path",
                string("`upstream-schema-violation`: where the mapping reads it."),
            )
            .property(
                "schema_path",
                string("`upstream-schema-violation`: the schema rule that failed."),
            )
            .property(
                "instance_path",
                string("`upstream-schema-violation`: where in the record."),
            )
            .property(
                "operations",
                strings("`unknown-operation`: the connector's operations."),
            )
            .property(
                "problems",
                ArrayBuilder::new().items(problem_item).description(Some(
                    "`invalid-config`, `invalid-request`: every problem found, with its file and path.",
                )),
            )
            .property(
                "origin",
                string("`file-managed`: the file the object comes from."),
            )
            .property(
                "duplicate_of",
                string("`duplicate-request`: the pending request asking the same."),
            )
            .property(
                "not_ready",
                strings("`not-ready`: what is not ready (`audit`, `registry`, `day_counts`)."),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .required("blame")
            .required("instance")
            .required("request_id")
            .into()
    }
}

impl utoipa::ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }
}
