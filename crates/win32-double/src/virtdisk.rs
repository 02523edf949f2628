//! virtdisk.dll's functions.
//!
//! VIRTUAL_STORAGE_TYPE: DeviceId u32 @0, VendorId GUID @4.
//! CREATE_VIRTUAL_DISK_PARAMETERS: Version @0, union @8 (it holds 64-bit fields); version 2:
//! UniqueId @8, MaximumSize u64 @24, BlockSizeInBytes @32, SectorSizeInBytes @36,
//! PhysicalSectorSizeInBytes @40, ParentPath @48, SourcePath @56, OpenFlags @64,
//! ParentVirtualStorageType @68, SourceVirtualStorageType @88, ResiliencyGuid @108.
//! OPEN_VIRTUAL_DISK_PARAMETERS: Version @0, union @4; version 2: GetInfoOnly BOOL @4,
//! ReadOnly BOOL @8, ResiliencyGuid @12.
//! ATTACH_VIRTUAL_DISK_PARAMETERS: Version @0, union @8; version 1: Reserved @8; version 2:
//! RestrictedOffset u64 @8, RestrictedLength u64 @16.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::read::{field, guid, pointer, put_wstr, wstr};
use crate::{give, handle_name, record, ret, scripted_string};

type Handle = *mut c_void;

/// # Safety
/// `p` NULL or a VIRTUAL_STORAGE_TYPE.
unsafe fn storage_type(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: 20 readable bytes.
    unsafe { json!({ "device_id": field::<u32>(p, 0), "vendor_id": guid(p.add(4)) }) }
}

/// # Safety
/// `p` NULL or a CREATE_VIRTUAL_DISK_PARAMETERS whose strings are readable.
unsafe fn create_parameters(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: a version-2 structure is 8 + 120 readable bytes.
    unsafe {
        match field::<i32>(p, 0) {
            2 => json!({
                "version": 2,
                "unique_id": guid(p.add(8)),
                "maximum_size": field::<u64>(p, 24),
                "block_size_in_bytes": field::<u32>(p, 32),
                "sector_size_in_bytes": field::<u32>(p, 36),
                "physical_sector_size_in_bytes": field::<u32>(p, 40),
                "parent_path": wstr(pointer(p, 48)),
                "source_path": wstr(pointer(p, 56)),
                "open_flags": field::<i32>(p, 64),
                "parent_storage_type": storage_type(p.add(68)),
                "source_storage_type": storage_type(p.add(88)),
                "resiliency_guid": guid(p.add(108)),
            }),
            v => json!({ "version": v }),
        }
    }
}

/// # Safety
/// `p` NULL or an OPEN_VIRTUAL_DISK_PARAMETERS.
unsafe fn open_parameters(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: a version-2 structure is 28 readable bytes.
    unsafe {
        match field::<i32>(p, 0) {
            2 => json!({
                "version": 2,
                "get_info_only": field::<i32>(p, 4),
                "read_only": field::<i32>(p, 8),
                "resiliency_guid": guid(p.add(12)),
            }),
            v => json!({ "version": v }),
        }
    }
}

/// # Safety
/// `p` NULL or an ATTACH_VIRTUAL_DISK_PARAMETERS.
unsafe fn attach_parameters(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: at most 24 readable bytes, by version.
    unsafe {
        match field::<i32>(p, 0) {
            1 => json!({ "version": 1, "reserved": field::<u32>(p, 8) }),
            2 => {
                json!({ "version": 2, "restricted_offset": field::<u64>(p, 8), "restricted_length": field::<u64>(p, 16) })
            }
            v => json!({ "version": v }),
        }
    }
}

/// Records the call and hands out a `disk` handle on success.
///
/// # Safety
/// `out` writable.
unsafe fn give_disk(call: &str, args: Value, out: *mut Handle) -> u32 {
    let code = ret(call, 0) as u32;
    // SAFETY: as the caller guarantees.
    unsafe { give(call, args, "disk", out, code == 0) };
    code
}

/// # Safety
/// Pointers as CreateVirtualDisk documents.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CreateVirtualDisk(
    storage: *const u8,
    path: *const u16,
    access: i32,
    security: *mut c_void,
    flags: i32,
    provider_flags: u32,
    parameters: *const u8,
    overlapped: *const c_void,
    out: *mut Handle,
) -> u32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({
            "storage_type": storage_type(storage), "path": wstr(path), "access": access,
            "security_null": security.is_null(), "flags": flags, "provider_flags": provider_flags,
            "parameters": create_parameters(parameters), "overlapped_null": overlapped.is_null(),
        });
        give_disk("CreateVirtualDisk", args, out)
    }
}

/// # Safety
/// Pointers as OpenVirtualDisk documents.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn OpenVirtualDisk(
    storage: *const u8,
    path: *const u16,
    access: i32,
    flags: i32,
    parameters: *const u8,
    out: *mut Handle,
) -> u32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({
            "storage_type": storage_type(storage), "path": wstr(path), "access": access, "flags": flags,
            "parameters": open_parameters(parameters),
        });
        give_disk("OpenVirtualDisk", args, out)
    }
}

/// # Safety
/// Pointers as AttachVirtualDisk documents.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn AttachVirtualDisk(
    disk: Handle,
    security: *mut c_void,
    flags: i32,
    provider_flags: u32,
    parameters: *const u8,
    overlapped: *const c_void,
) -> u32 {
    // SAFETY: as documented above.
    let args = unsafe {
        json!({
            "disk": handle_name(disk), "security_null": security.is_null(), "flags": flags,
            "provider_flags": provider_flags, "parameters": attach_parameters(parameters),
            "overlapped_null": overlapped.is_null(),
        })
    };
    record("AttachVirtualDisk", args);
    ret("AttachVirtualDisk", 0) as u32
}

/// Records the detach.
#[unsafe(no_mangle)]
pub extern "system" fn DetachVirtualDisk(disk: Handle, flags: i32, provider_flags: u32) -> u32 {
    record("DetachVirtualDisk", json!({ "disk": handle_name(disk), "flags": flags, "provider_flags": provider_flags }));
    ret("DetachVirtualDisk", 0) as u32
}

/// Writes the scripted `path`; ERROR_INSUFFICIENT_BUFFER (with the size needed) when it
/// does not fit.
///
/// # Safety
/// `size` writable; `buffer` writable for `*size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetVirtualDiskPhysicalPath(disk: Handle, size: *mut u32, buffer: *mut u16) -> u32 {
    const CALL: &str = "GetVirtualDiskPhysicalPath";
    // SAFETY: `size` is readable.
    let size_in = unsafe { *size };
    record(CALL, json!({ "disk": handle_name(disk), "size_in_bytes": size_in }));
    let code = ret(CALL, 0) as u32;
    if code != 0 {
        return code;
    }
    let path = scripted_string(CALL, "path");
    let needed = (path.encode_utf16().count() as u32 + 1) * 2;
    // SAFETY: `buffer` holds `size_in` bytes; `size` is writable.
    unsafe {
        *size = needed;
        if !put_wstr(buffer, size_in as usize / 2, &path) {
            return 122;
        }
    }
    0
}
