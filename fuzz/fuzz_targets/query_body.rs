//! Fuzz target `query_body`: the `POST /v1/query` body as the HTTP layer reads it (JSON, labels, case id, subject keys).
//! The checks and properties are in `gateway::fuzzing::query_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::query_body(data) {
        panic!("query_body: {broken}");
    }
});
