#![no_main]
//! Any bytes: the hive reader must answer with a hive or a clear error, never a panic, and
//! whatever it accepts must write, read back and merge.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    regf::fuzzing::check(data);
});
