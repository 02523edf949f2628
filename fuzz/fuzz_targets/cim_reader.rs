//! Opens a hostile CIM (a `.cim` and its region files, see `cimfs::fuzzing`) and reads all of
//! it: any error is fine, a panic, hang or huge allocation is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cimfs::fuzzing::exercise(data);
});
