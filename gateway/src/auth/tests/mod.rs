//! Tests of bearer-JWT authentication with real keys generated at test time and a
//! real JWKS server on a loopback port.

mod config;
mod jwks;
mod mint;
mod support;
mod verify;
