//! Image manifests, indexes, configs, platforms, references and referrers indexes as
//! registries and users give them: no panic, and what parses reads back to itself
//! (`winlayer_oci::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| winlayer_oci::fuzzing::check(data));
