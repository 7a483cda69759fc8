//! Fuzz target `mask`: a mask spec and a value: the masked value shows no more than the spec allows.
//! The checks and properties are in `gateway::fuzzing::mask`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::mask(data) {
        panic!("mask: {broken}");
    }
});
