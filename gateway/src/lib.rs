//! 县乡数据共享网关 — the county–township data-sharing gateway.
//!
//! A lookup (`POST /v1/query`) goes through these modules, in order:
//!
//! 1. [`server`] — request id, no query strings, body limit, access log without data;
//! 2. [`query`] — parse the body; the subject's ID number is checked (GB 11643, in
//!    `connectors::subject`) before anything else; connector, operation and
//!    [`purpose`] are resolved, the case id checked;
//! 3. [`policy`] — the decision: which fields may leave, which are withheld and why
//!    (default deny; so far only `open` fields are returned);
//! 4. fetch through the connector (`connectors::Connector`; the HTTP kind maps the
//!    department's answer to the canonical record, reading declared fields only);
//! 5. [`schema`] — the record is checked against its JSON Schema; a violation fails
//!    closed with 502;
//! 6. the decision minimizes the record, and the answer is sent. Every error is a
//!    [`problem`] (RFC 9457) that never echoes personal data or upstream content.
//!
//! Around it: [`config`] loads and checks everything (`gateway check`), [`store`] is
//! the durable store behind a trait, [`health`] answers `/healthz` and `/readyz`,
//! [`demo`] runs the demo county, and [`cli`] is the command line. Every lookup is
//! recorded in the [`audit`] log before its answer is sent; [`privacy`] is the
//! privacy officer's API over that log.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod health;
pub mod mask;
pub mod policy;
pub mod privacy;
pub mod problem;
pub mod purpose;
pub mod query;
pub mod schema;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
