//! End-to-end tests: the gateway on a real socket in front of the simulated department
//! systems on real sockets, real SQLite files in temporary directories, and the real
//! `gateway` binary where the command line is what is being tested.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

mod helpers;

mod access;
mod admin;
mod apply;
mod audit;
mod auth;
mod binary;
mod chain_files;
mod corrections;
mod browser;
mod browser_access;
mod browser_admin;
mod browser_corrections;
mod browser_verify;
mod cluster;
mod console;
mod console_access;
mod console_admin;
mod crash;
mod data_dir;
mod drafts;
mod errors;
mod faults;
mod forms;
mod forms_verify;
mod free_text;
mod front_database;
mod hostile_files;
mod jurisdiction;
mod labels;
mod limits;
mod lists;
mod lookups;
mod misbehaviour;
mod oidc;
mod openapi;
mod privacy;
mod registry;
mod surface;
mod tls;
mod traces;
mod upstreams;
mod verification;
mod villages;
mod witness;
