//! Fuzz target `access_request_body`: a township lead's access request body, checked against the demo county.
//! The checks and properties are in `gateway::fuzzing::access_request_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::access_request_body(data) {
        panic!("access_request_body: {broken}");
    }
});
