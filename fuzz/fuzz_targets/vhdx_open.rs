//! Opens, checks, reads and writes arbitrary (sparsely described) VHDX files.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vhdx::fuzzing::exercise(data);
});
