//! offreg.dll's functions. Hives and keys are handed out as `hive<n>` and `key<n>`.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::read::{hex, wstr};
use crate::{give, handle_name, record, ret, scripted_bytes, scripted_flag, scripted_number};

type Key = *mut c_void;

fn code(call: &str, args: Value) -> u32 {
    record(call, args);
    ret(call, 0) as u32
}

/// Records the call and hands out a `kind` handle through `out` when it succeeds.
///
/// # Safety
/// `out` writable.
unsafe fn give_key(call: &str, args: Value, kind: &'static str, out: *mut Key) -> u32 {
    let result = ret(call, 0) as u32;
    // SAFETY: as the caller guarantees.
    unsafe { give(call, args, kind, out, result == 0) };
    result
}

/// # Safety
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORCreateHive(out: *mut Key) -> u32 {
    // SAFETY: writable.
    unsafe { give_key("ORCreateHive", json!({}), "hive", out) }
}

/// # Safety
/// `path` NUL-terminated, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn OROpenHive(path: *const u16, out: *mut Key) -> u32 {
    // SAFETY: as documented above.
    unsafe { give_key("OROpenHive", json!({ "path": wstr(path) }), "hive", out) }
}

/// Records the close.
#[unsafe(no_mangle)]
pub extern "system" fn ORCloseHive(hive: Key) -> u32 {
    code("ORCloseHive", json!({ "hive": handle_name(hive) }))
}

/// # Safety
/// `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORSaveHive(hive: Key, path: *const u16, major: u32, minor: u32) -> u32 {
    // SAFETY: NUL-terminated.
    let args =
        json!({ "hive": handle_name(hive), "path": unsafe { wstr(path) }, "os_major": major, "os_minor": minor });
    code("ORSaveHive", args)
}

/// # Safety
/// `hives` holds `count` handles, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORMergeHives(hives: *const Key, count: u32, out: *mut Key) -> u32 {
    // SAFETY: `count` readable handles.
    let names: Vec<Value> = (0..count as usize).map(|i| handle_name(unsafe { *hives.add(i) })).collect();
    // SAFETY: writable.
    unsafe { give_key("ORMergeHives", json!({ "hives": names }), "hive", out) }
}

/// # Safety
/// Strings NULL or NUL-terminated, `out` and `disposition` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORCreateKey(
    key: Key,
    subkey: *const u16,
    class: *const u16,
    options: u32,
    security: *mut c_void,
    out: *mut Key,
    disposition: *mut u32,
) -> u32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({
            "key": handle_name(key), "subkey": wstr(subkey), "class": wstr(class), "options": options,
            "security_null": security.is_null(), "disposition_null": disposition.is_null(),
        });
        let result = give_key("ORCreateKey", args, "key", out);
        if result == 0 && !disposition.is_null() {
            *disposition = 1; // REG_CREATED_NEW_KEY
        }
        result
    }
}

/// # Safety
/// `subkey` NUL-terminated, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn OROpenKey(key: Key, subkey: *const u16, out: *mut Key) -> u32 {
    // SAFETY: as documented above.
    unsafe { give_key("OROpenKey", json!({ "key": handle_name(key), "subkey": wstr(subkey) }), "key", out) }
}

/// Records the close.
#[unsafe(no_mangle)]
pub extern "system" fn ORCloseKey(key: Key) -> u32 {
    code("ORCloseKey", json!({ "key": handle_name(key) }))
}

/// # Safety
/// `name` NUL-terminated, `data` readable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORSetValue(key: Key, name: *const u16, kind: u32, data: *const u8, size: u32) -> u32 {
    // SAFETY: as documented above.
    let args = unsafe {
        json!({ "key": handle_name(key), "name": wstr(name), "type": kind, "data": hex(data, size as usize) })
    };
    code("ORSetValue", args)
}

/// Returns the scripted `type` and `data` (hex), ERROR_MORE_DATA with the size needed when
/// the buffer is short, ERROR_FILE_NOT_FOUND when the script says `missing`.
///
/// # Safety
/// Strings NULL or NUL-terminated; `kind` NULL or writable; `size` writable; `data` NULL or
/// writable for `*size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORGetValue(
    key: Key,
    subkey: *const u16,
    name: *const u16,
    kind: *mut u32,
    data: *mut c_void,
    size: *mut u32,
) -> u32 {
    const CALL: &str = "ORGetValue";
    // SAFETY: as documented above.
    let size_in = unsafe { *size };
    let args = unsafe {
        json!({
            "key": handle_name(key), "subkey": wstr(subkey), "name": wstr(name),
            "size_in": size_in, "data_null": data.is_null(),
        })
    };
    let result = code(CALL, args);
    if result != 0 {
        return result;
    }
    if scripted_flag(CALL, "missing") {
        return 2;
    }
    let bytes = scripted_bytes(CALL, "data");
    let value_type = scripted_number(CALL, "type", 3) as u32;
    // SAFETY: the outputs are writable; `data` holds `size_in` bytes.
    unsafe {
        if !kind.is_null() {
            *kind = value_type;
        }
        *size = bytes.len() as u32;
        if data.is_null() {
            return 0;
        }
        if bytes.len() > size_in as usize {
            return 234;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
    }
    0
}

/// # Safety
/// `subkey` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORDeleteKey(key: Key, subkey: *const u16) -> u32 {
    // SAFETY: NUL-terminated.
    code("ORDeleteKey", json!({ "key": handle_name(key), "subkey": unsafe { wstr(subkey) } }))
}

/// # Safety
/// `name` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ORDeleteValue(key: Key, name: *const u16) -> u32 {
    // SAFETY: NUL-terminated.
    code("ORDeleteValue", json!({ "key": handle_name(key), "name": unsafe { wstr(name) } }))
}
