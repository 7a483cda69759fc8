//! Fuzz target `id_and_division`: the ID-number check (GB 11643) and the division codes (village, township, county).
//! The checks and properties are in `gateway::fuzzing::id_and_division`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::id_and_division(data) {
        panic!("id_and_division: {broken}");
    }
});
