//! Fuzz target `privacy_filter`: the privacy officer's bodies: search and export filters, a citizen's report, the anomaly window.
//! The checks and properties are in `gateway::fuzzing::privacy_filter`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::privacy_filter(data) {
        panic!("privacy_filter: {broken}");
    }
});
