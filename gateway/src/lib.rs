//! 县乡数据共享网关 — the county–township data-sharing gateway.
//!
//! A lookup (`POST /v1/query`) goes through these modules, in order:
//!
//! 1. [`server`] — request id, no query strings (a token in one is a 401), body
//!    limit, access log without data;
//! 2. [`auth`] — the bearer JWT is verified and becomes a `Caller` (roles, township);
//! 3. [`query`] — the caller's own rate limits ([`limits`], counted in department
//!    lookups: one here); parse the body; the subject's ID number is checked
//!    (GB 11643, in `connectors::subject`) before anything else; connector, operation
//!    and [`purpose`] are resolved, the case id checked;
//! 4. the shared lookup pipeline (`lookup`, also used by [`forms`]):
//!    - [`policy`] decides: refuse the lookup (403 naming the rule) or plan every
//!      field (default deny: open fields kept, conditional fields only under a grant,
//!      never-shared fields never); the matching grants' quotas are taken;
//!    - the record comes from the connector's [`cache`], or is fetched within the
//!      department's capacity through the connector (`connectors::Connector`; the
//!      HTTP kind maps the department's answer to the canonical record, reading
//!      declared fields only) and checked against its JSON [`schema`] — a violation
//!      fails closed with 502, and only valid records are cached;
//!    - the plan checks row conditions, minimizes and [`mask`]s the record, afresh
//!      for every caller (a cached record is never served as another caller's view);
//! 5. [`audit`] — the event is made durable in the hash-chained log BEFORE the answer
//!    is sent (503 and nothing else if it cannot be). Every error is a [`problem`]
//!    (RFC 9457) that never echoes personal data or upstream content.
//!
//! [`forms`] fills a form template from every department it needs in one request
//! (`POST /v1/forms/{form}/fill`): one audited lookup per operation and person, all at
//! once, under one deadline, after the caller's limits were charged the most lookups
//! the form makes (or the fill was refused whole).
//!
//! Around it: [`config`] loads and checks everything (`gateway check`) — the files
//! `gateway.yaml` names plus the [`registry`] (connectors and their versions, applied
//! policy files, grants from approved [`access`] requests) — and [`live`] swaps a new
//! configuration in whole when either changes, without a restart; [`catalog`] shows
//! what can be shared on what terms; [`store`] opens
//! the stores (registry, audit log, daily counts) from one backend, [`sqlite`] is
//! how every SQLite file is opened and migrated, [`secrets`] keeps keys in the data directory,
//! [`tls`] serves HTTPS and mTLS, [`health`] answers `/healthz` and `/readyz`,
//! [`metrics`] `/metrics`, [`privacy`] is the privacy officer's API over the audit
//! log, [`admin`] holds department and operator actions on connectors (register,
//! version, disable, test, purge the cache), [`witness`] sends the audit log's
//! checkpoints to witnesses and is the witness (`gateway witness serve`), [`demo`] runs
//! the demo county, and [`cli`] is the command line.

// The pipeline's steps, in order.
pub mod audit;
pub mod auth;
pub mod cache;
pub mod fill;
pub mod forms;
pub mod jurisdiction;
pub mod limits;
pub mod lookup;
pub mod mask;
pub mod policy;
pub mod purpose;
pub mod schema;

// Around it: configuration, stores, the shared state and its bootstrap.
pub mod active;
pub mod app;
pub mod classification;
pub mod config;
pub mod datadir;
pub mod departments;
pub mod labels;
pub mod live;
pub mod problem;
pub mod registry;
pub mod secrets;
pub mod sqlite;
pub mod startup;
pub mod store;
pub mod text;

// Front ends.
pub mod http;
pub mod tls;
pub mod witness;

// Tools.
pub mod cli;
pub mod county;
pub mod demo;
pub mod explain;
