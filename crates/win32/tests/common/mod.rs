//! The test double (crates/win32-double), loaded beside the test binary: its script and its
//! log of decoded calls.

// Calling the double's three control functions goes through raw pointers.
#![allow(unsafe_code, dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use win32::Source;

/// The double, reset for the calling thread.
pub struct Double {
    lib: libloading::Library,
    path: PathBuf,
}

/// Where cargo put the double's shared library: next to this test binary.
pub fn double_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let name = if cfg!(windows) { "win32_double.dll" } else { "libwin32_double.so" };
    let path = exe.parent().expect("deps directory").join(name);
    assert!(path.exists(), "the test double {} is missing (it is built with `cargo test -p win32`)", path.display());
    path
}

impl Double {
    pub fn new() -> Double {
        let path = double_path();
        // SAFETY: the double's initialisers are the Rust runtime's.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load the double");
        let double = Double { lib, path };
        // SAFETY: double_reset takes nothing and returns nothing.
        unsafe { double.lib.get::<unsafe extern "C" fn()>("double_reset").unwrap()() };
        double
    }

    /// Where the bindings load from.
    pub fn source(&self) -> Source {
        Source::File(self.path.clone())
    }

    /// Sets the script (an object keyed by function name).
    pub fn script(&self, script: Value) {
        let text = script.to_string();
        // SAFETY: a pointer and length of readable bytes.
        let rc = unsafe {
            self.lib.get::<unsafe extern "C" fn(*const u8, usize) -> i32>("double_script").unwrap()(
                text.as_ptr(),
                text.len(),
            )
        };
        assert_eq!(rc, 0, "the double refused the script {text}");
    }

    /// Every call made on this thread since the reset, as `{"call", "args"}` objects.
    pub fn calls(&self) -> Vec<Value> {
        // SAFETY: a NULL buffer of capacity 0 only asks for the length; the second call gets
        // a buffer of that length.
        let text = unsafe {
            let log = self.lib.get::<unsafe extern "C" fn(*mut u8, usize) -> usize>("double_log").unwrap();
            let len = log(std::ptr::null_mut(), 0);
            let mut buf = vec![0u8; len];
            assert_eq!(log(buf.as_mut_ptr(), len), len);
            String::from_utf8(buf).unwrap()
        };
        match serde_json::from_str(&text).unwrap() {
            Value::Array(calls) => calls,
            other => panic!("the log is not an array: {other}"),
        }
    }

    /// The calls named `name`, their arguments only.
    pub fn args_of(&self, name: &str) -> Vec<Value> {
        self.calls().into_iter().filter(|c| c["call"] == name).map(|c| c["args"].clone()).collect()
    }

    /// The names of the calls made, in order.
    pub fn names(&self) -> Vec<String> {
        self.calls().iter().map(|c| c["call"].as_str().unwrap().to_string()).collect()
    }

    /// Fails unless every function bound from `dll` was called.
    pub fn assert_covered(&self, dll: &str) {
        let (_, functions) =
            win32::bindings().into_iter().find(|(name, _)| *name == dll).unwrap_or_else(|| panic!("no DLL {dll}"));
        let called: BTreeSet<String> = self.names().into_iter().collect();
        let missing: Vec<_> = functions.iter().filter(|f| !called.contains(**f)).collect();
        assert!(missing.is_empty(), "{dll}: never called here: {missing:?}");
    }
}

/// The UTF-16 hex of a string as the double logs byte buffers.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
