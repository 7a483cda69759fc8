//! 县乡数据共享网关 — the county–township data-sharing gateway.
//!
//! A lookup (`POST /v1/query`) goes through these modules, in order:
//!
//! 1. [`http`] — request id, no query strings (a token in one is a 401), body
//!    limit, access log without data; the route (`http::query`) parses the body;
//! 2. [`auth`] — the bearer JWT is verified and becomes a `Caller` (roles, township);
//!    the console's sign-in ([`oidc`], OpenID Connect with PKCE) ends in the same
//!    `Caller`, its ID token verified by the same issuers' keys and claim rules;
//! 3. [`limits`] — the caller's own rate limits, counted in department lookups (one
//!    here); the subject's ID number is checked (GB 11643, [`lookup::subject`])
//!    before anything else; connector, operation and [`purpose`] are resolved, the
//!    case id checked;
//! 4. the shared lookup pipeline ([`lookup`], also used by [`fill`]):
//!    - [`policy`] decides: refuse the lookup (403 naming the rule) or plan every
//!      field (default deny: open fields kept, conditional fields only under a grant,
//!      never-shared fields never); the matching grants' quotas are taken; grants
//!      held to the caller's [`jurisdiction`] ask the county's authority where the
//!      subject lives;
//!    - the record comes from the connector's [`cache`], or is fetched within the
//!      department's capacity through the connector (`connectors::Connector`; the
//!      HTTP kind maps the department's answer to the canonical record, reading
//!      declared fields only) and checked against its JSON [`schema`] — a violation
//!      fails closed with 502, and only valid records are cached;
//!    - the plan checks row conditions, minimizes and [`mask`]s the record, afresh
//!      for every caller (a cached record is never served as another caller's view);
//!    - a failure is a typed [`lookup::LookupError`];
//! 5. [`audit`] — the event is made durable in the hash-chained log BEFORE the answer
//!    is sent (503 and nothing else if it cannot be). Every error answer is an
//!    RFC 9457 problem of a kind in the catalogue [`problem`], written in
//!    `http::error`, that never echoes personal data or upstream content.
//!
//! [`fill`] fills a form template ([`forms`]) from every department it needs in one
//! request (`POST /v1/forms/{form}/fill`): one audited lookup per operation and
//! person, all at once, under one deadline, after the caller's limits were charged
//! the most lookups the form makes (or the fill was refused whole). [`verification`]
//! runs the same pipeline to confirm values a caller states (核验, `POST
//! /v1/verify`), answering match or mismatch per field and releasing nothing.
//!
//! Around it: [`config`] loads and checks everything (`gateway check`) — the files
//! `gateway.yaml` names plus the [`registry`] (connectors and their versions, applied
//! policy files, grants from approved [`access`] requests, townships' [`corrections`]
//! of departments' values) — into the connectors in force ([`active`]) and the rest,
//! the working-day [`calendar`] deadlines count in among it; [`live`] swaps a new
//! configuration in whole when
//! either changes, without a restart; [`admin`] administers connectors (who may,
//! disable, purge, test, save a version, put one in force); [`catalog`] is the shared
//! catalog of what can be shared on what terms; [`classification`] holds what
//! loosens a county's classification for review; [`front`] checks departments'
//! front databases (`gateway check`); [`store`] opens the stores (registry, audit
//! log, daily counts, rate-limit buckets) from one backend, [`sqlite`] is how every
//! SQLite file is opened and migrated, [`pg`] how PostgreSQL is reached and migrated
//! (many replicas), and [`cluster`] what replicas tell each other beyond the
//! registry; [`secrets`] keeps keys in the data directory and server addresses out of
//! sight; [`app`] is the shared state (no HTTP in it), [`clock`] its "now",
//! [`traffic`] its RED counters for `/metrics`, [`telemetry`] its traces, and
//! [`startup`] the one bootstrap that `serve`, `demo` and the tests start the gateway
//! through.
//!
//! Front ends: [`http`] (the API: routes per area, extractors, errors), [`console`]
//! (the web pages for people, on the same domain calls as the API), [`tls`]
//! (HTTPS and mTLS), [`witness`] (sends the audit log's checkpoints to witnesses and
//! is one, `gateway witness serve`). Tools: [`cli`] (the command line), [`demo`] and
//! the embedded [`county`], [`explain`] (`gateway policy explain` and golden cases).
//! The HTTP layer depends on the domain; no domain module depends on it.

// The pipeline's steps, in order.
pub mod auth;
pub mod oidc;
pub mod limits;
pub mod purpose;
pub mod policy;
pub mod jurisdiction;
pub mod cache;
pub mod schema;
pub mod mask;
pub mod lookup;
pub mod verification;
pub mod audit;
pub mod forms;
pub mod fill;
pub mod privacy;

// Around it: configuration, stores, the shared state and its bootstrap.
pub mod config;
pub mod active;
pub mod registry;
pub mod action;
pub mod admin;
pub mod live;
pub mod access;
pub mod corrections;
pub mod calendar;
pub mod classification;
pub mod catalog;
pub mod usage;
pub mod traffic;
pub mod telemetry;
pub mod status;
pub mod departments;
pub mod front;
pub mod labels;
pub mod problem;
pub mod store;
pub mod cluster;
pub mod sqlite;
pub mod pg;
pub mod datadir;
pub mod secrets;
pub mod text;
pub mod clock;
pub mod app;
pub mod startup;

// Front ends.
pub mod http;
pub mod console;
pub mod tls;
pub mod witness;

// Tools.
pub mod cli;
pub mod demo;
pub mod county;
pub mod explain;

// For `fuzz/` (cargo fuzz) and the replay of its seeds: not an API.
#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod layout_tests;
