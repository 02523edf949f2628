//! Every file of the `cmdline` fuzz corpus (fuzz/corpus/cmdline) through the same checks the
//! fuzz target makes, as a regular test.

use std::path::Path;

use wincmdline::image::{ImageCommand, Overrides, Runtime, resolve};
use wincmdline::{Dialect, compose, parse};

#[test]
fn corpus_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cmdline");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/cmdline exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&data);
        for dialect in [Dialect::CRuntime, Dialect::CommandLineToArgvW] {
            let argv = parse(&text, dialect);
            match compose(&argv) {
                Ok(line) => assert_eq!(parse(&line, dialect), argv, "{}", path.display()),
                // Only a program holding a quote (shell32) or an empty line has no line.
                Err(e) => assert!(argv.is_empty() || argv[0].contains('"'), "{}: {e}", path.display()),
            }
        }
        if let Ok(image) = serde_json::from_slice::<ImageCommand>(&data) {
            for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
                match resolve(&image, &Overrides::default(), runtime) {
                    Ok(process) => assert!(process.line().is_ok() || process.args.iter().any(|a| a.contains('\0'))),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
        files += 1;
    }
    assert!(files >= 30, "only {files} corpus files");
}
