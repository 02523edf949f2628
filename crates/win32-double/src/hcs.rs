//! computestorage.dll's and vmcompute.dll's functions.
//!
//! DriverInfo: Flavour i32 @0, HomeDir @8. WC_LAYER_DESCRIPTOR (32 bytes): LayerId GUID @0,
//! Flags u32 @16, Path @24.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::read::{field, fnv, guid, pointer, put_wstr, wstr};
use crate::{handle_name, record, ret, scripted_string};

fn hr(call: &str, args: Value) -> i32 {
    record(call, args);
    ret(call, 0) as i32
}

/// Records the format.
#[unsafe(no_mangle)]
pub extern "system" fn HcsFormatWritableLayerVhd(disk: *mut c_void) -> i32 {
    hr("HcsFormatWritableLayerVhd", json!({ "disk": handle_name(disk) }))
}

/// # Safety
/// Strings NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsSetupBaseOSLayer(layer: *const u16, disk: *mut c_void, options: *const u16) -> i32 {
    // SAFETY: NUL-terminated.
    let args = unsafe { json!({ "layer": wstr(layer), "disk": handle_name(disk), "options": wstr(options) }) };
    hr("HcsSetupBaseOSLayer", args)
}

/// # Safety
/// Strings NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcsSetupBaseOSVolume(layer: *const u16, volume: *const u16, options: *const u16) -> i32 {
    // SAFETY: NUL-terminated.
    let args = unsafe { json!({ "layer": wstr(layer), "volume": wstr(volume), "options": wstr(options) }) };
    hr("HcsSetupBaseOSVolume", args)
}

/// # Safety
/// `p` a DriverInfo with a readable home directory.
unsafe fn driver_info(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: 16 readable bytes.
    unsafe { json!({ "flavour": field::<i32>(p, 0), "home_dir": wstr(pointer(p, 8)) }) }
}

/// # Safety
/// `p` NULL or `count` WC_LAYER_DESCRIPTORs with readable paths.
unsafe fn descriptors(p: *const u8, count: usize) -> Value {
    if p.is_null() {
        return json!({ "null": true, "count": count });
    }
    // SAFETY: `count` entries of 32 bytes.
    (0..count)
        .map(|i| unsafe {
            let d = p.add(32 * i);
            json!({ "layer_id": guid(d), "flags": field::<u32>(d, 16), "path": wstr(pointer(d, 24)) })
        })
        .collect()
}

macro_rules! layer_call {
    ($name:ident) => {
        /// # Safety
        /// `info` a DriverInfo, `id` NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(info: *const u8, id: *const u16) -> i32 {
            // SAFETY: as documented above.
            let args = unsafe { json!({ "info": driver_info(info), "id": wstr(id) }) };
            hr(stringify!($name), args)
        }
    };
}

layer_call!(ActivateLayer);
layer_call!(DeactivateLayer);
layer_call!(DestroyLayer);
layer_call!(UnprepareLayer);

/// A (driver info, id, folder, descriptors, count) call.
macro_rules! folder_call {
    ($name:ident) => {
        /// # Safety
        /// `info` a DriverInfo, strings NUL-terminated, `layers` `count` descriptors.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(
            info: *const u8,
            id: *const u16,
            path: *const u16,
            layers: *const u8,
            count: usize,
        ) -> i32 {
            // SAFETY: as documented above.
            let args = unsafe {
                json!({ "info": driver_info(info), "id": wstr(id), "path": wstr(path), "layers": descriptors(layers, count) })
            };
            hr(stringify!($name), args)
        }
    };
}

folder_call!(ImportLayer);
folder_call!(ExportLayer);

/// # Safety
/// As ImportLayer (`info`, `id`, `layers` of `count`), without the folder.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn PrepareLayer(info: *const u8, id: *const u16, layers: *const u8, count: usize) -> i32 {
    // SAFETY: as documented above.
    let args = unsafe { json!({ "info": driver_info(info), "id": wstr(id), "layers": descriptors(layers, count) }) };
    hr("PrepareLayer", args)
}

/// The two-call size protocol with the scripted `mount_path`: a NULL buffer gets the length
/// (in characters, with the NUL); a buffer gets the text.
///
/// # Safety
/// `info` a DriverInfo, `id` NUL-terminated, `length` writable, `buffer` NULL or writable
/// for `*length` units.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetLayerMountPath(
    info: *const u8,
    id: *const u16,
    length: *mut usize,
    buffer: *mut u16,
) -> i32 {
    const CALL: &str = "GetLayerMountPath";
    // SAFETY: as documented above.
    let length_in = unsafe { *length };
    let args = unsafe {
        json!({ "info": driver_info(info), "id": wstr(id), "length_in": length_in, "buffer_null": buffer.is_null() })
    };
    let code = hr(CALL, args);
    if code < 0 {
        return code;
    }
    let path = scripted_string(CALL, "mount_path");
    let needed = if path.is_empty() { 0 } else { path.encode_utf16().count() + 1 };
    // SAFETY: `length` writable; `buffer` holds `length_in` units.
    unsafe {
        *length = needed;
        if !buffer.is_null() && !put_wstr(buffer, length_in, &path) {
            return 0x8007_007Au32 as i32;
        }
    }
    0
}

/// A GUID from the name (FNV-1a of it and of it with a suffix), or the scripted `guid`.
///
/// # Safety
/// `name` NUL-terminated, `out` writable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn NameToGuid(name: *const u16, out: *mut u8) -> i32 {
    // SAFETY: NUL-terminated.
    let text = unsafe { wstr(name) };
    let code = hr("NameToGuid", json!({ "name": text }));
    if code >= 0 {
        let name = text.as_str().unwrap_or("");
        let high = u64::from_str_radix(&fnv(name.as_bytes()), 16).unwrap_or(0);
        let low = u64::from_str_radix(&fnv(format!("{name}#").as_bytes()), 16).unwrap_or(0);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_le_bytes());
        bytes[8..].copy_from_slice(&low.to_le_bytes());
        // SAFETY: 16 writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, 16) };
    }
    code
}

/// # Safety
/// `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ProcessBaseImage(path: *const u16) -> i32 {
    // SAFETY: NUL-terminated.
    hr("ProcessBaseImage", json!({ "path": unsafe { wstr(path) } }))
}

/// # Safety
/// `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ProcessUtilityImage(path: *const u16) -> i32 {
    // SAFETY: NUL-terminated.
    hr("ProcessUtilityImage", json!({ "path": unsafe { wstr(path) } }))
}
