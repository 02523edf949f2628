//! Reading raw arguments: fields at byte offsets (from the C declarations, written out here
//! by hand so a layout mistake in the win32 crate shows up as a wrong value), UTF-16
//! strings, GUIDs and byte buffers.

use serde_json::Value;

/// The longest string or buffer the double reads, so a bad pointer cannot run away.
const LIMIT: usize = 1 << 20;

/// A field of type `T` at `offset` bytes into `base`.
///
/// # Safety
/// `base + offset` must be readable for `size_of::<T>()` bytes.
pub unsafe fn field<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: the caller guarantees the bytes are readable; the read tolerates misalignment.
    unsafe { base.add(offset).cast::<T>().read_unaligned() }
}

/// A pointer field at `offset`.
///
/// # Safety
/// As [`field`].
pub unsafe fn pointer<T>(base: *const u8, offset: usize) -> *const T {
    // SAFETY: as the caller guarantees.
    unsafe { field::<usize>(base, offset) as *const T }
}

/// A NUL-terminated UTF-16 string, or `null`; unpaired surrogates show as U+FFFD.
///
/// # Safety
/// `p` must be NULL or point to UTF-16 units ending with a NUL.
pub unsafe fn wstr(p: *const u16) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    let mut len = 0;
    // SAFETY: the units up to the NUL are readable.
    while len < LIMIT && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units were just read.
    Value::String(String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) }))
}

/// `len` bytes at `p` as lower-case hex; `null` for a NULL pointer.
///
/// # Safety
/// `p` must be NULL or readable for `len` bytes.
pub unsafe fn hex(p: *const u8, len: usize) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: the caller guarantees `len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p, len.min(LIMIT)) };
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A GUID (Data1 u32, Data2 u16, Data3 u16, Data4 [u8; 8], little-endian) as text.
///
/// # Safety
/// `p` must be NULL or readable for 16 bytes.
pub unsafe fn guid(p: *const u8) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    // SAFETY: 16 readable bytes.
    let (d1, d2, d3, d4): (u32, u16, u16, [u8; 8]) = unsafe { (field(p, 0), field(p, 4), field(p, 6), field(p, 8)) };
    Value::String(format!(
        "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-{}",
        d4[0],
        d4[1],
        d4[2..].iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Hex text to bytes (scripts carry byte outputs as hex).
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// 64-bit FNV-1a of `bytes`, as hex (large writes are logged by length and this digest).
pub fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Writes `s` NUL-terminated into `buf` of `cap` units; false (nothing written) when it
/// does not fit.
///
/// # Safety
/// `buf` must be writable for `cap` units.
pub unsafe fn put_wstr(buf: *mut u16, cap: usize, s: &str) -> bool {
    let units: Vec<u16> = s.encode_utf16().chain([0]).collect();
    if units.len() > cap {
        return false;
    }
    // SAFETY: `units.len() <= cap` writable units.
    unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), buf, units.len()) };
    true
}
