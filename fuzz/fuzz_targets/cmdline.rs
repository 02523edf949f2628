//! Windows command lines: both parsers on any text, the compose/parse round trip on what they
//! return, and image configs (JSON) through every runtime's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wincmdline::image::{ImageCommand, Overrides, Runtime, resolve};
use wincmdline::{Dialect, compose, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for dialect in [Dialect::CRuntime, Dialect::CommandLineToArgvW] {
        let argv = parse(&text, dialect);
        if let Ok(line) = compose(&argv) {
            assert_eq!(parse(&line, dialect), argv, "round trip of {text:?}");
        }
    }
    if let Ok(image) = serde_json::from_slice::<ImageCommand>(data) {
        for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
            if let Ok(process) = resolve(&image, &Overrides::default(), runtime) {
                let _ = process.line();
            }
        }
    }
});
