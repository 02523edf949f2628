//! A stand-in for the Windows DLLs the win32 crate binds.
//!
//! Built as a shared library (`libwin32_double.so` on Linux, `win32_double.dll` on Windows),
//! it exports every function the win32 crate looks up, under the same names and C
//! signatures. Each call is recorded with its arguments fully decoded — strings, structures
//! read at the offsets the C declarations give (independently of the win32 crate's own
//! struct definitions), flags, and handles named by the call that returned them
//! (`image1`, `stream2`, `disk1`, `hive1`, …) — and returns what the test scripted (success
//! by default). Tests drive it through three extra exports:
//!
//! * `double_reset()` clears the calling thread's log, script and handles;
//! * `double_script(json, len)` sets per-function results: `{"CimCreateFile": {"ret": -2147024891}}`,
//!   plus outputs some functions return (`version`, `argv`, `hash`, `mount_path`, …);
//! * `double_log(buf, cap)` copies the calling thread's log, a JSON array of
//!   `{"call": name, "args": {…}}`, and returns its length.
//!
//! State is per thread, so tests running in parallel do not see each other's calls.
//!
//! On Windows the double exports kernel32/ntdll/advapi32/shell32 names too (CloseHandle,
//! LocalFree, …), which the Rust runtime inside this DLL would then resolve to the fakes; the
//! double never opens files, threads or processes, so the runtime never calls them.

// A test double is foreign code by nature: it exports C functions and reads the raw
// pointers it is handed. It is never shipped; every unsafe block says why its reads are valid.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use serde_json::{Map, Value, json};

mod block;
mod cimfs;
mod hcs;
mod offreg;
mod read;
mod system;
mod virtdisk;

#[derive(Default)]
struct State {
    calls: Vec<Value>,
    script: Map<String, Value>,
    handles: HashMap<usize, String>,
    counters: HashMap<&'static str, usize>,
    /// Blocks handed out that the caller frees with LocalFree, by address, with their length.
    allocations: HashMap<usize, (Box<[u64]>, usize)>,
    next_address: usize,
    /// Block CIMs written, merged, sealed (cimfs).
    block: block::Registry,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on the calling thread's block CIM registry.
fn with_block<R>(f: impl FnOnce(&mut block::Registry) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut().block))
}

/// Records a call.
fn record(call: &str, args: Value) {
    STATE.with(|s| s.borrow_mut().calls.push(json!({ "call": call, "args": args })));
}

/// The scripted field `key` of `call`, if any.
fn scripted(call: &str, key: &str) -> Option<Value> {
    STATE.with(|s| s.borrow().script.get(call).and_then(|c| c.get(key)).cloned())
}

/// The scripted number `key` of `call`, or `default`.
fn scripted_number(call: &str, key: &str, default: u64) -> u64 {
    scripted(call, key).and_then(|v| v.as_u64()).unwrap_or(default)
}

/// The scripted bytes `key` of `call` (a hex string), or none.
fn scripted_bytes(call: &str, key: &str) -> Vec<u8> {
    read::unhex(scripted(call, key).as_ref().and_then(Value::as_str).unwrap_or(""))
}

/// The scripted string `key` of `call`, or an empty one.
fn scripted_string(call: &str, key: &str) -> String {
    scripted(call, key).and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Whether the scripted flag `key` of `call` is set.
fn scripted_flag(call: &str, key: &str) -> bool {
    scripted(call, key).and_then(|v| v.as_bool()).unwrap_or(false)
}

/// The scripted return value of `call`, or `default`.
fn ret(call: &str, default: i64) -> i64 {
    scripted(call, "ret").and_then(|v| v.as_i64()).unwrap_or(default)
}

/// A new fake handle, named `kind` and a per-kind number.
fn new_handle(kind: &'static str) -> *mut c_void {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let n = s.counters.entry(kind).or_insert(0);
        *n += 1;
        let name = format!("{kind}{n}");
        s.next_address += 0x10;
        let address = 0x10_0000 + s.next_address;
        s.handles.insert(address, name);
        address as *mut c_void
    })
}

/// Records `call` and, when it succeeds, hands out a new `kind` handle through `out`.
///
/// # Safety
/// `out` must be writable when `ok`.
unsafe fn give(call: &str, mut args: Value, kind: &'static str, out: *mut *mut c_void, ok: bool) {
    if ok {
        let h = new_handle(kind);
        // SAFETY: the caller passes a writable handle.
        unsafe { *out = h };
        args["handle"] = handle_name(h);
    }
    record(call, args);
}

/// The name of a handle: `null`, the name given when it was handed out, or `unknown:0x…`.
fn handle_name(h: *const c_void) -> Value {
    if h.is_null() {
        return Value::Null;
    }
    STATE.with(|s| {
        let s = s.borrow();
        match s.handles.get(&(h as usize)) {
            Some(name) => Value::String(name.clone()),
            None => Value::String(format!("unknown:{:#x}", h as usize)),
        }
    })
}

/// Hands out `bytes` in a block the caller releases with LocalFree.
fn allocate(bytes: &[u8]) -> *mut u8 {
    let mut block = vec![0u64; bytes.len().div_ceil(8).max(1)].into_boxed_slice();
    let p = block.as_mut_ptr().cast::<u8>();
    // SAFETY: the block holds at least `bytes.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    STATE.with(|s| s.borrow_mut().allocations.insert(p as usize, (block, bytes.len())));
    p
}

/// The length of a block from [`allocate`].
fn allocation_len(p: *const c_void) -> Option<usize> {
    STATE.with(|s| s.borrow().allocations.get(&(p as usize)).map(|(_, len)| *len))
}

/// Releases a block from [`allocate`]; whether it was one.
fn release(p: *mut c_void) -> bool {
    STATE.with(|s| s.borrow_mut().allocations.remove(&(p as usize)).is_some())
}

/// Clears the calling thread's log, script, handles and allocations.
#[unsafe(no_mangle)]
pub extern "C" fn double_reset() {
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// Sets the calling thread's script from `len` bytes of JSON (an object keyed by function
/// name); returns 0, or -1 when the text is not a JSON object.
///
/// # Safety
/// `json` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn double_script(json: *const u8, len: usize) -> i32 {
    // SAFETY: the caller passes `len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(json, len) };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => {
            STATE.with(|s| s.borrow_mut().script = map);
            0
        }
        _ => -1,
    }
}

/// Copies the calling thread's log (a JSON array) into `buf` when it fits in `cap` bytes;
/// returns its length either way.
///
/// # Safety
/// `buf` must be writable for `cap` bytes (or `cap` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn double_log(buf: *mut u8, cap: usize) -> usize {
    let text = STATE.with(|s| Value::Array(s.borrow().calls.clone()).to_string());
    if text.len() <= cap {
        // SAFETY: the caller gives `cap` writable bytes, and the text fits.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf, text.len()) };
    }
    text.len()
}
