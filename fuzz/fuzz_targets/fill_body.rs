//! Fuzz target `fill_body`: a form fill's body (subject, case id, labels, the values stated for each demo form).
//! The checks and properties are in `gateway::fuzzing::fill_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::fill_body(data) {
        panic!("fill_body: {broken}");
    }
});
