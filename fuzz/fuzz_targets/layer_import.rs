#![no_main]
//! Any bytes as a layer tar: into a base-layer tar, imported as a base CIM container layer and
//! as a layer over one, exported back. Errors are fine; panics, leftovers of a failed import
//! and base layers that do not export to their canonical tar are bugs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    winlayer_layers::fuzzing::check(data);
});
