//! cimfs.dll's functions.
//!
//! CIMFS_FILE_METADATA (x64, 96 bytes): Attributes u32 @0, FileSize i64 @8, CreationTime @16,
//! LastWriteTime @24, ChangeTime @32, LastAccessTime @40, SecurityDescriptorBuffer @48,
//! SecurityDescriptorSize u32 @56, ReparseDataBuffer @64, ReparseDataSize u32 @72,
//! ExtendedAttributes @80, EACount (bytes) u32 @88. CIMFS_IMAGE_PATH: ImageDir @0,
//! ImageName @8.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::block::Refusal;
use crate::read::{field, fnv, guid, hex, pointer, wstr};
use crate::{give, handle_name, record, ret, scripted_bytes, scripted_number, with_block};

type Handle = *mut c_void;

/// Records `args` for `call` and returns its scripted HRESULT.
fn hr(call: &str, args: Value) -> i32 {
    record(call, args);
    ret(call, 0) as i32
}

/// Records `args` for `call` and returns its scripted HRESULT, or the refusal's code (logged
/// with `"refused": why`) when the block rules refuse the call.
fn checked(call: &str, mut args: Value, check: Result<(), Refusal>) -> i32 {
    match check {
        Ok(()) => hr(call, args),
        Err((code, why)) => {
            args["refused"] = why.into();
            record(call, args);
            code
        }
    }
}

/// Like [`give_hr`], after the block rules' `check`.
///
/// # Safety
/// `out` must be writable.
unsafe fn give_checked(
    call: &str,
    mut args: Value,
    kind: &'static str,
    out: *mut Handle,
    check: Result<(), Refusal>,
) -> i32 {
    match check {
        // SAFETY: as the caller guarantees.
        Ok(()) => unsafe { give_hr(call, args, kind, out) },
        Err((code, why)) => {
            args["refused"] = why.into();
            record(call, args);
            code
        }
    }
}

fn name_of(image: Handle) -> String {
    handle_name(image).as_str().unwrap_or_default().to_string()
}

/// Runs `f` on the block registry with the name of `image` (looked up first: both live in
/// the thread's state).
fn with_image<R>(image: Handle, f: impl FnOnce(&mut crate::block::Registry, &str) -> R) -> R {
    let handle = name_of(image);
    with_block(|r| f(r, &handle))
}

/// Records the call and hands out a `kind` handle through `out` when it succeeds.
///
/// # Safety
/// `out` must be writable.
unsafe fn give_hr(call: &str, args: Value, kind: &'static str, out: *mut Handle) -> i32 {
    let code = ret(call, 0) as i32;
    // SAFETY: as the caller guarantees.
    unsafe { give(call, args, kind, out, code >= 0) };
    code
}

/// An (image, path) call.
macro_rules! path_call {
    ($name:ident) => {
        /// # Safety
        /// `path` NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(image: Handle, path: *const u16) -> i32 {
            // SAFETY: NUL-terminated.
            let args = json!({ "image": handle_name(image), "path": unsafe { wstr(path) } });
            let check = with_image(image, |r, h| r.write(h, stringify!($name)));
            checked(stringify!($name), args, check)
        }
    };
}

/// An (image, new path, existing path) call.
macro_rules! link_call {
    ($name:ident, $new:literal, $old:literal) => {
        /// # Safety
        /// Both paths NUL-terminated.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $name(image: Handle, new: *const u16, old: *const u16) -> i32 {
            // SAFETY: NUL-terminated.
            let args = unsafe { json!({ "image": handle_name(image), $new: wstr(new), $old: wstr(old) }) };
            let check = with_image(image, |r, h| r.write(h, stringify!($name)));
            checked(stringify!($name), args, check)
        }
    };
}

path_call!(CimDeletePath);
path_call!(CimTombstoneFile);
link_call!(CimCreateHardLink, "new", "existing");
link_call!(CimCreateMergeLink, "new", "old");

/// # Safety
/// `p` must point to a CIMFS_FILE_METADATA whose buffers are readable for their sizes.
unsafe fn metadata(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: the structure and the buffers it points to are readable, as the caller guarantees.
    unsafe {
        json!({
            "attributes": field::<u32>(p, 0),
            "file_size": field::<i64>(p, 8),
            "creation_time": field::<i64>(p, 16),
            "last_write_time": field::<i64>(p, 24),
            "change_time": field::<i64>(p, 32),
            "last_access_time": field::<i64>(p, 40),
            "security_descriptor": hex(pointer(p, 48), field::<u32>(p, 56) as usize),
            "reparse_data": hex(pointer(p, 64), field::<u32>(p, 72) as usize),
            "extended_attributes": hex(pointer(p, 80), field::<u32>(p, 88) as usize),
        })
    }
}

/// # Safety
/// `p` must point to `n` CIMFS_IMAGE_PATH entries with readable strings.
unsafe fn image_paths(n: u32, p: *const u8) -> Value {
    // SAFETY: `n` entries of 16 bytes, as the caller guarantees.
    (0..n as usize)
        .map(|i| unsafe { json!({ "dir": wstr(pointer(p, 16 * i)), "name": wstr(pointer(p, 16 * i + 8)) }) })
        .collect()
}

/// # Safety
/// The strings must be NULL or NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimCreateImage(
    path: *const u16,
    existing: *const u16,
    new: *const u16,
    out: *mut Handle,
) -> i32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({ "path": wstr(path), "existing": wstr(existing), "new": wstr(new) });
        give_hr("CimCreateImage", args, "image", out)
    }
}

/// # Safety
/// As CimCreateImage.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimCreateImage2(
    path: *const u16,
    flags: u32,
    existing: *const u16,
    new: *const u16,
    out: *mut Handle,
) -> i32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({ "path": wstr(path), "flags": flags, "existing": wstr(existing), "new": wstr(new) });
        let (p, name) = (args["path"].as_str().unwrap_or_default(), args["new"].as_str());
        let block = match with_block(|r| r.create(p, flags, args["existing"].as_str(), name)) {
            Ok(block) => block,
            Err(refusal) => return give_checked("CimCreateImage2", args, "image", out, Err(refusal)),
        };
        let (p, name) = (p.to_string(), name.unwrap_or_default().to_string());
        let code = give_hr("CimCreateImage2", args, "image", out);
        if block && code >= 0 {
            let handle = name_of(*out);
            with_block(|r| r.opened(&handle, &p, flags, &name));
        }
        code
    }
}

/// Records the close.
#[unsafe(no_mangle)]
pub extern "system" fn CimCloseImage(image: Handle) {
    record("CimCloseImage", json!({ "image": handle_name(image) }));
    with_image(image, |r, h| r.close(h));
}

/// Records the commit.
#[unsafe(no_mangle)]
pub extern "system" fn CimCommitImage(image: Handle) -> i32 {
    let check = with_image(image, |r, h| r.commit(h));
    checked("CimCommitImage", json!({ "image": handle_name(image) }), check)
}

/// # Safety
/// `path` NUL-terminated, `meta` a valid CIMFS_FILE_METADATA, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimCreateFile(image: Handle, path: *const u16, meta: *const u8, out: *mut Handle) -> i32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({ "image": handle_name(image), "path": wstr(path), "metadata": metadata(meta) });
        let check = with_image(image, |r, h| r.write(h, "CimCreateFile"));
        give_checked("CimCreateFile", args, "stream", out, check)
    }
}

/// # Safety
/// `buffer` readable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimWriteStream(stream: Handle, buffer: *const u8, size: u32) -> i32 {
    // SAFETY: `size` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buffer, size as usize) };
    let mut args = json!({ "stream": handle_name(stream), "size": size, "fnv": fnv(bytes) });
    if bytes.len() <= 256 {
        // SAFETY: as above.
        args["data"] = unsafe { hex(buffer, bytes.len()) };
    }
    hr("CimWriteStream", args)
}

/// Records the close.
#[unsafe(no_mangle)]
pub extern "system" fn CimCloseStream(stream: Handle) -> i32 {
    hr("CimCloseStream", json!({ "stream": handle_name(stream) }))
}

/// # Safety
/// `path` NUL-terminated, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimCreateAlternateStream(
    image: Handle,
    path: *const u16,
    size: u64,
    out: *mut Handle,
) -> i32 {
    // SAFETY: as documented above.
    unsafe {
        let args = json!({ "image": handle_name(image), "path": wstr(path), "size": size });
        let check = with_image(image, |r, h| r.write(h, "CimCreateAlternateStream"));
        give_checked("CimCreateAlternateStream", args, "stream", out, check)
    }
}

/// # Safety
/// Strings NUL-terminated, `volume` a GUID.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimMountImage(path: *const u16, name: *const u16, flags: u32, volume: *const u8) -> i32 {
    // SAFETY: as documented above.
    let args = unsafe { json!({ "path": wstr(path), "name": wstr(name), "flags": flags, "volume": guid(volume) }) };
    let (p, n) = (args["path"].as_str().unwrap_or_default(), args["name"].as_str().unwrap_or_default());
    let check = with_block(|r| r.mount(p, n, flags, None));
    checked("CimMountImage", args, check)
}

/// # Safety
/// `volume` a GUID.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimDismountImage(volume: *const u8) -> i32 {
    // SAFETY: a GUID.
    hr("CimDismountImage", json!({ "volume": unsafe { guid(volume) } }))
}

/// # Safety
/// `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimAddFsToMergedImage2(image: Handle, path: *const u16, flags: u32) -> i32 {
    // SAFETY: NUL-terminated.
    let args = json!({ "image": handle_name(image), "path": unsafe { wstr(path) }, "flags": flags });
    let check = with_image(image, |r, h| r.add_source(h, args["path"].as_str().unwrap_or_default(), Some(flags)));
    checked("CimAddFsToMergedImage2", args, check)
}

/// # Safety
/// `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimAddFsToMergedImage(image: Handle, path: *const u16) -> i32 {
    // SAFETY: NUL-terminated.
    let args = json!({ "image": handle_name(image), "path": unsafe { wstr(path) } });
    let check = with_image(image, |r, h| r.add_source(h, args["path"].as_str().unwrap_or_default(), None));
    checked("CimAddFsToMergedImage", args, check)
}

/// The (dir, name) pairs of decoded CIMFS_IMAGE_PATH entries.
fn pairs(images: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    images.as_array().into_iter().flatten().map(|i| (text(&i["dir"]), text(&i["name"]))).collect()
}

/// # Safety
/// `paths` holds `count` CIMFS_IMAGE_PATH entries; `volume` a GUID.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimMergeMountImage(count: u32, paths: *const u8, flags: u32, volume: *const u8) -> i32 {
    // SAFETY: as documented above.
    let args = unsafe { json!({ "images": image_paths(count, paths), "flags": flags, "volume": guid(volume) }) };
    let check = with_block(|r| r.merge_mount(&pairs(&args["images"]), flags, None));
    checked("CimMergeMountImage", args, check)
}

/// Writes the scripted `hash` (hex) and `fixed_header_size`.
///
/// # Safety
/// `path` NUL-terminated; the sizes writable; `hash` writable for the scripted hash.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimSealImage(
    path: *const u16,
    hash_size: *mut u64,
    header: *mut u64,
    hash: *mut u8,
) -> i32 {
    // SAFETY: NUL-terminated.
    let args = json!({ "path": unsafe { wstr(path) }, "hash_null": hash.is_null() });
    let p = args["path"].as_str().unwrap_or_default().to_string();
    let code = checked("CimSealImage", args, with_block(|r| r.seal(&p)));
    if code >= 0 {
        let bytes = scripted_bytes("CimSealImage", "hash");
        with_block(|r| r.sealed(&p, bytes.clone()));
        let fixed = scripted_number("CimSealImage", "fixed_header_size", 0);
        // SAFETY: the outputs are writable; the hash buffer holds the scripted hash.
        unsafe {
            *hash_size = bytes.len() as u64;
            *header = fixed;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), hash, bytes.len());
        }
    }
    code
}

/// Writes the scripted `sealed`, `hash`, `signature_size` and `fixed_header_size`.
///
/// # Safety
/// `path` NUL-terminated; outputs writable; `hash` writable for the scripted hash.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimGetVerificationInformation(
    path: *const u16,
    sealed: *mut u32,
    hash_size: *mut u64,
    signature_size: *mut u64,
    header: *mut u64,
    hash: *mut u8,
    signature: *mut u8,
) -> i32 {
    const CALL: &str = "CimGetVerificationInformation";
    // SAFETY: NUL-terminated.
    let args =
        json!({ "path": unsafe { wstr(path) }, "hash_null": hash.is_null(), "signature_null": signature.is_null() });
    let code = hr(CALL, args);
    if code >= 0 {
        let number = |key: &str| scripted_number(CALL, key, 0);
        let bytes = scripted_bytes(CALL, "hash");
        // SAFETY: the outputs are writable; the hash buffer holds the scripted hash.
        unsafe {
            *sealed = number("sealed") as u32;
            *hash_size = bytes.len() as u64;
            *signature_size = number("signature_size");
            *header = number("fixed_header_size");
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), hash, bytes.len());
        }
    }
    code
}

/// # Safety
/// Strings NUL-terminated, `volume` a GUID, `hash` readable for `hash_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimMountVerifiedImage(
    path: *const u16,
    name: *const u16,
    flags: u32,
    volume: *const u8,
    hash_size: u16,
    hash: *const u8,
) -> i32 {
    // SAFETY: as documented above.
    let args = unsafe {
        json!({
            "path": wstr(path), "name": wstr(name), "flags": flags, "volume": guid(volume),
            "hash_size": hash_size, "hash": hex(hash, hash_size as usize),
        })
    };
    // SAFETY: `hash_size` readable bytes (none when NULL).
    let root = if hash.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(hash, hash_size as usize) } };
    let (p, n) = (args["path"].as_str().unwrap_or_default(), args["name"].as_str().unwrap_or_default());
    let check = with_block(|r| r.mount(p, n, flags, Some(root)));
    checked("CimMountVerifiedImage", args, check)
}

/// # Safety
/// `paths` holds `count` entries, `volume` a GUID, `hash` readable for `hash_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn CimMergeMountVerifiedImage(
    count: u32,
    paths: *const u8,
    flags: u32,
    volume: *const u8,
    hash_size: u16,
    hash: *const u8,
) -> i32 {
    // SAFETY: as documented above.
    let args = unsafe {
        json!({
            "images": image_paths(count, paths), "flags": flags, "volume": guid(volume),
            "hash_size": hash_size, "hash": hex(hash, hash_size as usize),
        })
    };
    // SAFETY: `hash_size` readable bytes (none when NULL).
    let root = if hash.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(hash, hash_size as usize) } };
    let check = with_block(|r| r.merge_mount(&pairs(&args["images"]), flags, Some(root)));
    checked("CimMergeMountVerifiedImage", args, check)
}
