//! Test-only support shared by the workspace's tests; never a dependency of shipped code.
//!
//! - [`browser`]: a real headless Chromium behind its own chromedriver, driven over
//!   WebDriver, with the waits and screenshots browser tests need;
//! - [`pki`]: a throwaway certificate authority that signs server and client
//!   certificates, and a rustls client configuration that trusts it;
//! - [`services`]: the test PostgreSQL server, Redis servers of a test's own, and a
//!   TCP forwarder that can be cut;
//! - [`skip`]: a test that cannot check anything here says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a fixture that cannot be built should fail the test loudly"
)]

pub mod browser;
pub mod pki;
pub mod services;

/// Says on the test output that `test` checked nothing, and why, instead of passing
/// silently. Where `.ci/run` makes every test required (`GATEWAY_TESTS_REQUIRED` is
/// set) and `required` says the reason is one CI must not have (a missing tool), the
/// test fails instead.
#[expect(
    clippy::print_stderr,
    reason = "a skipped test says so on the test output"
)]
pub fn skip(test: &str, why: &str, required: bool) {
    if required && std::env::var_os("GATEWAY_TESTS_REQUIRED").is_some() {
        panic!("{test} cannot run here: {why} (GATEWAY_TESTS_REQUIRED is set)");
    }
    eprintln!("SKIPPED {test}: {why}");
}
