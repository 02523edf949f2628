#![no_main]
//! Any bytes: the layer reader must answer with entries or a clear error, never a panic, and
//! whatever it accepts must normalize to a fixed point.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wcow_tar::fuzzing::check(data);
});
