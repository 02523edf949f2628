//! kernel32, ntdll, advapi32 and shell32 functions the win32 crate routes through its
//! loader (so fake handles and fake allocations come back to the double).
//!
//! OSVERSIONINFOW (276 bytes): dwOSVersionInfoSize @0, dwMajorVersion @4, dwMinorVersion @8,
//! dwBuildNumber @12, dwPlatformId @16, szCSDVersion[128] @20.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::read::{field, wstr};
use crate::{
    allocate, allocation_len, handle_name, record, release, ret, scripted, scripted_bytes, scripted_flag,
    scripted_number,
};

/// Records the close; TRUE unless scripted.
#[unsafe(no_mangle)]
pub extern "system" fn CloseHandle(handle: *mut c_void) -> i32 {
    record("CloseHandle", json!({ "handle": handle_name(handle) }));
    ret("CloseHandle", 1) as i32
}

/// Frees a block the double handed out; records whether it was one.
#[unsafe(no_mangle)]
pub extern "system" fn LocalFree(memory: *mut c_void) -> *mut c_void {
    let known = release(memory);
    record("LocalFree", json!({ "null": memory.is_null(), "allocated_by_double": known }));
    std::ptr::null_mut()
}

/// Fills an OSVERSIONINFOW with the scripted `version` ({major, minor, build}).
///
/// # Safety
/// `info` writable for 276 bytes.
unsafe fn fill_version(call: &str, info: *mut u8) -> Value {
    // SAFETY: the size field is readable.
    let size = unsafe { field::<u32>(info, 0) };
    let version = scripted(call, "version").unwrap_or_else(|| json!({ "major": 10, "minor": 0, "build": 20348 }));
    let part = |k: &str| version.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    // SAFETY: writable, as documented above.
    unsafe {
        info.add(4).cast::<u32>().write_unaligned(part("major"));
        info.add(8).cast::<u32>().write_unaligned(part("minor"));
        info.add(12).cast::<u32>().write_unaligned(part("build"));
        info.add(16).cast::<u32>().write_unaligned(2);
    }
    json!({ "size": size })
}

/// # Safety
/// `info` an OSVERSIONINFOW.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetVersionExW(info: *mut u8) -> i32 {
    // SAFETY: as documented above.
    record("GetVersionExW", unsafe { fill_version("GetVersionExW", info) });
    ret("GetVersionExW", 1) as i32
}

/// # Safety
/// `info` an OSVERSIONINFOW.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn RtlGetVersion(info: *mut u8) -> i32 {
    // SAFETY: as documented above.
    record("RtlGetVersion", unsafe { fill_version("RtlGetVersion", info) });
    ret("RtlGetVersion", 0) as i32
}

/// Returns the scripted `dword` (or ERROR_FILE_NOT_FOUND when the script says `missing`).
///
/// # Safety
/// Strings NUL-terminated; `data` NULL or writable for `*size` bytes; `size` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn RegGetValueW(
    key: *mut c_void,
    subkey: *const u16,
    value: *const u16,
    flags: u32,
    kind: *mut u32,
    data: *mut c_void,
    size: *mut u32,
) -> u32 {
    const CALL: &str = "RegGetValueW";
    let key_name = match key as usize as u64 {
        0xFFFF_FFFF_8000_0002 => json!("HKEY_LOCAL_MACHINE"),
        other => json!(format!("{other:#x}")),
    };
    // SAFETY: as documented above.
    let size_in = unsafe { *size };
    let args = unsafe {
        json!({
            "key": key_name, "subkey": wstr(subkey), "value": wstr(value), "flags": flags,
            "type_null": kind.is_null(), "size_in": size_in,
        })
    };
    record(CALL, args);
    let result = ret(CALL, 0) as u32;
    if result != 0 {
        return result;
    }
    if scripted_flag(CALL, "missing") {
        return 2;
    }
    let dword = scripted_number(CALL, "dword", 0) as u32;
    // SAFETY: as documented above.
    unsafe {
        if !kind.is_null() {
            *kind = 4;
        }
        *size = 4;
        if !data.is_null() {
            if size_in < 4 {
                return 234;
            }
            data.cast::<u32>().write_unaligned(dword);
        }
    }
    0
}

/// Hands out the scripted `descriptor` (hex) as the object's security descriptor.
///
/// # Safety
/// Output pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetSecurityInfo(
    handle: *mut c_void,
    object_type: i32,
    info: u32,
    owner: *mut *mut c_void,
    group: *mut *mut c_void,
    dacl: *mut *mut c_void,
    sacl: *mut *mut c_void,
    descriptor: *mut *mut c_void,
) -> u32 {
    const CALL: &str = "GetSecurityInfo";
    record(
        CALL,
        json!({
            "handle": handle_name(handle), "object_type": object_type, "security_information": info,
            "owner_null": owner.is_null(), "group_null": group.is_null(), "dacl_null": dacl.is_null(),
            "sacl_null": sacl.is_null(), "descriptor_null": descriptor.is_null(),
        }),
    );
    let result = ret(CALL, 0) as u32;
    if result == 0 && !descriptor.is_null() {
        let bytes = scripted_bytes(CALL, "descriptor");
        // SAFETY: writable.
        unsafe { *descriptor = allocate(&bytes).cast() };
    }
    result
}

/// The length of a descriptor the double handed out (0 for any other pointer).
#[unsafe(no_mangle)]
pub extern "system" fn GetSecurityDescriptorLength(descriptor: *mut c_void) -> u32 {
    let len = allocation_len(descriptor);
    record("GetSecurityDescriptorLength", json!({ "allocated_by_double": len.is_some() }));
    len.unwrap_or(0) as u32
}

/// Returns the scripted `argv` in one block (pointers, then the strings), as Windows does.
///
/// # Safety
/// `line` NUL-terminated, `count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CommandLineToArgvW(line: *const u16, count: *mut i32) -> *mut *mut u16 {
    const CALL: &str = "CommandLineToArgvW";
    // SAFETY: NUL-terminated.
    record(CALL, json!({ "line": unsafe { wstr(line) } }));
    let args: Vec<String> = scripted(CALL, "argv")
        .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()))
        .unwrap_or_default();
    let strings: Vec<Vec<u16>> = args.iter().map(|a| a.encode_utf16().chain([0]).collect()).collect();
    let table = 8 * args.len();
    let total = table + strings.iter().map(|s| 2 * s.len()).sum::<usize>();
    let block = allocate(&vec![0u8; total]);
    let mut at = table;
    for (i, s) in strings.iter().enumerate() {
        // SAFETY: the block holds the table and every string.
        unsafe {
            let p = block.add(at).cast::<u16>();
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            block.add(8 * i).cast::<*mut u16>().write_unaligned(p);
        }
        at += 2 * s.len();
    }
    // SAFETY: writable.
    unsafe { *count = args.len() as i32 };
    block.cast()
}
