//! Fuzz target `audit_segment`: an audit segment file read back from disk: header, frames, events, checkpoints.
//! The checks and properties are in `gateway::fuzzing::audit_segment`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::audit_segment(data) {
        panic!("audit_segment: {broken}");
    }
});
