//! Test-only support shared by the workspace's tests; never a dependency of shipped code.
//!
//! - [`pki`]: a throwaway certificate authority that signs server and client
//!   certificates, and a rustls client configuration that trusts it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a fixture that cannot be built should fail the test loudly"
)]

pub mod pki;
