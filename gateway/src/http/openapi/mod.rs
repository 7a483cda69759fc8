//! The API's public contract: an OpenAPI 3.1 document of every route the gateway
//! serves to programs (not the console's pages), served at `GET /openapi.json`
//! without a token.
//!
//! It is generated from the code: each handler carries `#[utoipa::path]` (method,
//! path, request body, answers per status, roles, examples) and the request and
//! answer types derive `utoipa::ToSchema`. The router is built from the same
//! declarations ([`routes`]: `utoipa_axum`), so a route cannot be served without
//! being documented, nor documented at another path than it is served at. This
//! module owns the document's frame (info, tags, security schemes), the problem
//! answers ([`problems`]: the `Problem` schema and, per operation, the problem types
//! it can answer with) and the examples the operations use ([`examples`]: demo-shaped
//! values that work against `gateway demo`).

pub(crate) mod examples;
pub(crate) mod problems;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::problem::Problem;

/// The document's frame; the paths come from the routes ([`api`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "County–township data-sharing gateway API · 县乡数据共享网关",
        description = "The gateway between county departments and townships: lookups \
            (`POST /v1/query`) and auto-filled forms for a purpose and a case, under the \
            county's policy — schema-checked, minimized, masked, rate-limited and recorded \
            in a tamper-evident audit log before any answer is sent.\n\n\
            - **Authentication**: `Authorization: Bearer <JWT>` from an issuer the gateway \
            trusts (`bearer`); a deployment may also require a client certificate (`mtls`). \
            The security requirement of each operation lists the roles it admits; an empty \
            list admits any authenticated caller (what they get still depends on the policy).\n\
            - **Personal data travels only in bodies**: a URL never carries an ID number or a \
            token. A query string is refused (`invalid-request`) except the listed filters and \
            pages of the lists (`state`, `township`, `connector`, `overdue`, `cursor`, `limit`); a \
            token in a query string is `unauthenticated`.\n\
            - **Errors** are `application/problem+json` (RFC 9457, the `Problem` schema) with a \
            stable `type` documented at `GET /problems/{slug}`.\n\
            - **Proof of what was released**: an answer that released data names its audit \
            events in the `Audit-Event` header, `<chain id>/<seq>/<hash>`, separated by `, `.\n\
            - **Examples** use the demo county's names and synthetic people (`gateway demo`); \
            the ID numbers are made up and carry valid check digits.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem)),
    tags(
        (name = "lookups", description = "One record of one person from one department, for a purpose and a case."),
        (name = "forms", description = "Service forms (事项) filled from every department they need (自助填表)."),
        (name = "catalog", description = "What each connector can share and on what terms (共享目录)."),
        (name = "audit", description = "The privacy officer's view of the audit log."),
        (name = "connectors", description = "Department admins register, version, test and switch their connectors."),
        (name = "reviews", description = "The data-governance office approves classification changes."),
        (name = "access", description = "Townships request fields (点菜), departments grant or refuse them, and revoke grants (收回)."),
        (name = "corrections", description = "Townships flag wrong values (数据纠错); the owning department accepts or rejects each."),
        (name = "service", description = "Health, readiness, metrics, problem types and this document."),
    ),
)]
struct ApiDoc;

/// The security schemes: a bearer JWT for every authenticated call, and client
/// certificates where the deployment requires them.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT signed by an issuer configured in `auth.issuers` (ES256, ES384, \
                         EdDSA or RS256 as the issuer allows; ECDSA in low-S form), with `aud` the \
                         gateway's audience, `exp`, `sub` and `roles`; township roles (`clerk`, \
                         `grid_worker`, `township_lead`) need `township` (nine digits), \
                         `grid_worker` needs `villages` (1 to 64 twelve-digit codes under the \
                         township), `dept_admin` needs `department`. The demo mints one per persona \
                         (`gateway demo`, `gateway token mint`). The scopes of a requirement \
                         are the roles admitted.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "mtls",
            SecurityScheme::MutualTls {
                description: Some(
                    "With `tls.require_client_cert`, every connection must present a client \
                     certificate chaining to `tls.client_ca`, in addition to the bearer token \
                     (which still says who calls)."
                        .to_owned(),
                ),
                extensions: None,
            },
        );
    }
}

/// Every documented route with its documentation.
fn api() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(super::query::query))
        .routes(routes!(super::verify::verify))
        .merge(super::forms::routes())
        .merge(super::catalog::routes())
        .merge(super::privacy::routes())
        .merge(super::admin::routes())
        .merge(super::drafts::routes())
        .merge(super::review::routes())
        .merge(super::access::routes())
        .merge(super::corrections::routes())
        .routes(routes!(super::health::healthz))
        .routes(routes!(super::health::readyz))
        .routes(routes!(super::metrics::metrics))
        .routes(routes!(super::problem_doc))
        .routes(routes!(openapi_json))
}

/// The API's routes, exactly those the document describes.
pub(crate) fn routes() -> Router<App> {
    api().split_for_parts().0
}

/// The document.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
        let mut doc = api().into_openapi();
        optional_bodies(&mut doc);
        doc
    });
    &DOCUMENT
}

/// An optional body (`Option<T>` in `request_body`) is one the request may leave out,
/// not a JSON `null`: its schema is `T`'s (the body is marked not required).
fn optional_bodies(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::{RefOr, Schema, Type};
    let is_null = |schema: &RefOr<Schema>| matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let Some(body) = &mut operation.request_body else {
                continue;
            };
            for content in body.content.values_mut() {
                let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                    continue;
                };
                let rest: Vec<&RefOr<Schema>> =
                    one_of.items.iter().filter(|s| !is_null(s)).collect();
                if let [only] = rest[..]
                    && one_of.items.len() == 2
                {
                    content.schema = Some(only.clone());
                }
            }
        }
    }
}

/// The document as served.
fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        document().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document cannot be written");
            String::new()
        })
    });
    &JSON
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    summary = "This document",
    description = "The API's OpenAPI 3.1 document: the public contract. No token needed.",
    responses(
        (status = 200, description = "The document.", content_type = "application/json", body = serde_json::Value),
        OpenApiProblems,
    ),
)]
async fn openapi_json() -> Response {
    let text = document_json();
    if text.is_empty() {
        return Problem::new(
            crate::problem::ProblemKind::Internal,
            "The API document could not be written.",
        )
        .into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

crate::problems!(OpenApiProblems = []);

#[cfg(test)]
mod tests;
