//! Fuzz target `form_template`: a form template (YAML) loaded into the demo county in place of one of its forms.
//! The checks and properties are in `gateway::fuzzing::form_template`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = gateway::fuzzing::form_template(data) {
        panic!("form_template: {broken}");
    }
});
