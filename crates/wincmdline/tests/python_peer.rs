//! An implementation we did not write: Python's `subprocess.list2cmdline` follows the same
//! Microsoft C runtime rules as Go's `EscapeArg` (used by containerd, moby and hcsshim).
//! `escape_args` must give the same line for the table and for thousands of generated
//! vectors. The interpreter comes from WINLAYER_PYTHON (default `python3`); the check runs
//! on the build host only (under wine there is no Python to start).
#![cfg(not(windows))]

use std::io::Write;
use std::process::{Command, Stdio};

use wincmdline::escape_args;

mod cases;

const PEER: &str = r#"
import json, subprocess, sys
for line in sys.stdin:
    print(json.dumps(subprocess.list2cmdline(json.loads(line))))
"#;

fn list2cmdline(vectors: &[Vec<String>]) -> Vec<String> {
    let python = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", PEER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs Python ({python}, from WINLAYER_PYTHON): {e}"));
    let input: String = vectors.iter().map(|v| serde_json::to_string(v).unwrap() + "\n").collect();
    // Fed from another thread, so neither side blocks on a full pipe.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{python} failed");
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Deterministic vectors weighted toward the characters the rules care about.
fn generated(count: usize) -> Vec<Vec<String>> {
    let alphabet = ['\\', '\\', '"', '"', ' ', '\t', 'a', 'b', 'ü', '😀', '\n', '%', '^'];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    (0..count)
        .map(|_| (0..1 + next(5)).map(|_| (0..next(9)).map(|_| alphabet[next(alphabet.len())]).collect()).collect())
        .collect()
}

#[test]
fn escape_args_matches_python_list2cmdline() {
    let mut vectors: Vec<Vec<String>> = cases::cases().compose.into_iter().map(|c| c.argv).collect();
    vectors.extend(generated(5000));
    let theirs = list2cmdline(&vectors);
    assert_eq!(theirs.len(), vectors.len());
    for (argv, line) in vectors.iter().zip(&theirs) {
        assert_eq!(&escape_args(argv).unwrap(), line, "{argv:?}");
    }
}
