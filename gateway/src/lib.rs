//! 县乡数据共享网关 — the county–township data-sharing gateway.
//!
//! A lookup (`POST /v1/query`) goes through these modules, in order:
//!
//! 1. [`server`] — request id, no query strings (a token in one is a 401), body
//!    limit, access log without data;
//! 2. [`auth`] — the bearer JWT is verified and becomes a `Caller` (roles, township);
//! 3. [`query`] — parse the body; the subject's ID number is checked (GB 11643, in
//!    `connectors::subject`) before anything else; connector, operation and
//!    [`purpose`] are resolved, the case id checked;
//! 4. [`policy`] — the decision: refuse the lookup (403 naming the rule) or plan
//!    every field (default deny: open fields kept, conditional fields only under a
//!    grant, never-shared fields never);
//! 5. fetch through the connector (`connectors::Connector`; the HTTP kind maps the
//!    department's answer to the canonical record, reading declared fields only);
//! 6. [`schema`] — the record is checked against its JSON Schema; a violation fails
//!    closed with 502;
//! 7. the plan checks row conditions, minimizes and [`mask`]s the record;
//! 8. [`audit`] — the event is made durable in the hash-chained log BEFORE the answer
//!    is sent (503 and nothing else if it cannot be). Every error is a [`problem`]
//!    (RFC 9457) that never echoes personal data or upstream content.
//!
//! Around it: [`config`] loads and checks everything (`gateway check`), [`store`] is
//! the durable store behind a trait, [`secrets`] keeps keys in the data directory,
//! [`tls`] serves HTTPS and mTLS, [`health`] answers `/healthz` and `/readyz`,
//! [`privacy`] is the privacy officer's API over the audit log, [`demo`] runs the
//! demo county, and [`cli`] is the command line.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod forms;
pub mod health;
pub mod limits;
pub(crate) mod lookup;
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
