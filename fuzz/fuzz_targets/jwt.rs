//! Fuzz target `jwt`: a bearer token before its signature is checked: header, query-string refusal, parts, claims.
//! The checks and properties are in `gateway::fuzzing::jwt`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::jwt(data) {
        panic!("jwt: {broken}");
    }
});
