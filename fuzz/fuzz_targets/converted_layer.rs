#![no_main]
//! Any bytes as a pre-converted CIM layer archive (what the differ's fast path unpacks): as a
//! base layer and as a layer over a fixed base. Errors are fine; panics, leftovers of a
//! refused archive and accepted layers that do not export are bugs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = winlayer_layers::fuzzing::check_converted(data);
});
