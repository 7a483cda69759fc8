//! Fuzz target `connector_definition`: a connector definition (YAML) parsed, checked, written back, and loaded into the demo county.
//! The checks and properties are in `gateway::fuzzing::connector_definition`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::connector_definition(data) {
        panic!("connector_definition: {broken}");
    }
});
