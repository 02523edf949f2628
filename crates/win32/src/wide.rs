//! NUL-terminated UTF-16 strings for the calls, and back.

use std::path::Path;

use crate::{Error, Result};

/// An owned NUL-terminated UTF-16 string to pass as `PCWSTR`.
pub(crate) struct Wide(Vec<u16>);

impl Wide {
    /// `text` as UTF-16; a NUL inside it is an argument error of `call`.
    pub(crate) fn new(call: &'static str, text: &str) -> Result<Wide> {
        if text.contains('\0') {
            return Err(Error::argument(call, format!("{text:?} contains NUL")));
        }
        Ok(Wide(text.encode_utf16().chain([0]).collect()))
    }

    /// A path as Windows spells it: unpaired surrogates kept on Windows, UTF-8 required elsewhere.
    pub(crate) fn path(call: &'static str, path: &Path) -> Result<Wide> {
        #[cfg(windows)]
        {
            use std::os::windows::ffi::OsStrExt;
            let units: Vec<u16> = path.as_os_str().encode_wide().collect();
            if units.contains(&0) {
                return Err(Error::argument(call, format!("path {} contains NUL", path.display())));
            }
            Ok(Wide(units.into_iter().chain([0]).collect()))
        }
        #[cfg(not(windows))]
        {
            let text = path.to_str().ok_or_else(|| Error::argument(call, format!("path {path:?} is not UTF-8")))?;
            Wide::new(call, text)
        }
    }

    pub(crate) fn ptr(&self) -> *const u16 {
        self.0.as_ptr()
    }
}

/// The pointer of an optional string: NULL when absent (which some calls treat differently
/// from an empty string).
pub(crate) fn opt_ptr(w: &Option<Wide>) -> *const u16 {
    w.as_ref().map_or(std::ptr::null(), Wide::ptr)
}

/// The text before the first NUL of `units` (lossy for unpaired surrogates).
pub(crate) fn from_units(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// Reads a NUL-terminated UTF-16 string the callee allocated, at most `limit` units long.
///
/// # Safety
/// `p` must be NULL or point to readable UTF-16 units ending with a NUL within `limit` units.
pub(crate) unsafe fn read_units(p: *const u16, limit: usize) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: the caller guarantees the units up to the NUL (at most `limit`) are readable.
    while len < limit && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units just read are readable.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}
