//! Fuzz target `department_answer`: a department's answer through the demo connectors: envelope, mapping, schema.
//! The checks and properties are in `gateway::fuzzing::department_answer`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::department_answer(data) {
        panic!("department_answer: {broken}");
    }
});
