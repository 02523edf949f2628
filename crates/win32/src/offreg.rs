//! offreg.dll, the Offline Registry library: hives as files, without loading them into the
//! running registry (what hcsshim uses to build base-layer hives and merge delta hives).

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;

use windows_sys::Wdk::System::OfflineRegistry::ORHKEY;
use windows_sys::Win32::Foundation::WIN32_ERROR;
use windows_sys::Win32::Security::PSECURITY_DESCRIPTOR;
use windows_sys::core::PCWSTR;

use crate::error::{ERROR_FILE_NOT_FOUND, ERROR_MORE_DATA, win32};
use crate::wide::{Wide, from_units};
use crate::{Error, Result, Source};

use windows_sys::Wdk::System::OfflineRegistry as or;

api! {
    /// offreg.dll.
    pub(crate) struct OffregDll("offreg.dll") {
        fn ORCreateHive(hive: *mut ORHKEY) -> WIN32_ERROR = or::ORCreateHive;
        fn OROpenHive(path: PCWSTR, hive: *mut ORHKEY) -> WIN32_ERROR = or::OROpenHive;
        fn ORCloseHive(hive: ORHKEY) -> WIN32_ERROR = or::ORCloseHive;
        fn ORSaveHive(hive: ORHKEY, path: PCWSTR, os_major: u32, os_minor: u32) -> WIN32_ERROR = or::ORSaveHive;
        fn ORMergeHives(hives: *const ORHKEY, count: u32, result: *mut ORHKEY) -> WIN32_ERROR = or::ORMergeHives;
        fn ORCreateKey(key: ORHKEY, subkey: PCWSTR, class: PCWSTR, options: u32, security: PSECURITY_DESCRIPTOR, result: *mut ORHKEY, disposition: *mut u32) -> WIN32_ERROR
            = or::ORCreateKey;
        fn OROpenKey(key: ORHKEY, subkey: PCWSTR, result: *mut ORHKEY) -> WIN32_ERROR = or::OROpenKey;
        fn ORCloseKey(key: ORHKEY) -> WIN32_ERROR = or::ORCloseKey;
        fn ORSetValue(key: ORHKEY, name: PCWSTR, kind: u32, data: *const u8, size: u32) -> WIN32_ERROR = or::ORSetValue;
        fn ORGetValue(key: ORHKEY, subkey: PCWSTR, name: PCWSTR, kind: *mut u32, data: *mut c_void, size: *mut u32) -> WIN32_ERROR
            = or::ORGetValue;
        fn ORDeleteKey(key: ORHKEY, subkey: PCWSTR) -> WIN32_ERROR = or::ORDeleteKey;
        fn ORDeleteValue(key: ORHKEY, name: PCWSTR) -> WIN32_ERROR = or::ORDeleteValue;
    }
}

/// A registry value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// REG_SZ.
    String(String),
    /// REG_EXPAND_SZ.
    ExpandString(String),
    /// REG_BINARY.
    Binary(Vec<u8>),
    /// REG_DWORD.
    Dword(u32),
    /// REG_MULTI_SZ.
    MultiString(Vec<String>),
    /// REG_QWORD.
    Qword(u64),
    /// Any other type, raw.
    Other {
        /// The REG_* type.
        kind: u32,
        /// The data.
        data: Vec<u8>,
    },
}

fn utf16z(s: &str) -> impl Iterator<Item = u16> + '_ {
    s.encode_utf16().chain([0])
}

impl Value {
    fn encode(&self) -> (u32, Vec<u8>) {
        let bytes = |units: Vec<u16>| units.into_iter().flat_map(u16::to_le_bytes).collect();
        match self {
            Value::String(s) => (1, bytes(utf16z(s).collect())),
            Value::ExpandString(s) => (2, bytes(utf16z(s).collect())),
            Value::Binary(b) => (3, b.clone()),
            Value::Dword(v) => (4, v.to_le_bytes().to_vec()),
            Value::MultiString(list) => (7, bytes(list.iter().flat_map(|s| utf16z(s)).chain([0]).collect())),
            Value::Qword(v) => (11, v.to_le_bytes().to_vec()),
            Value::Other { kind, data } => (*kind, data.clone()),
        }
    }

    fn decode(kind: u32, data: Vec<u8>) -> Value {
        let units = || data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<u16>>();
        match (kind, data.len()) {
            (1, _) => Value::String(from_units(&units())),
            (2, _) => Value::ExpandString(from_units(&units())),
            (3, _) => Value::Binary(data),
            (4, 4) => Value::Dword(u32::from_le_bytes(data[..4].try_into().expect("4 bytes"))),
            (7, _) => {
                let units = units();
                let mut list: Vec<String> = units.split(|&u| u == 0).map(String::from_utf16_lossy).collect();
                while list.last().is_some_and(String::is_empty) {
                    list.pop();
                }
                Value::MultiString(list)
            }
            (11, 8) => Value::Qword(u64::from_le_bytes(data[..8].try_into().expect("8 bytes"))),
            _ => Value::Other { kind, data },
        }
    }
}

/// offreg.dll, loaded.
#[derive(Clone)]
pub struct OfflineRegistry {
    dll: Arc<OffregDll>,
}

impl OfflineRegistry {
    /// Loads offreg.dll.
    pub fn load(source: &Source) -> Result<OfflineRegistry> {
        Ok(OfflineRegistry { dll: Arc::new(OffregDll::load(source)?) })
    }

    /// A new, empty hive.
    pub fn create_hive(&self) -> Result<Key> {
        let mut handle: ORHKEY = std::ptr::null_mut();
        // SAFETY: a writable handle.
        let code = unsafe { self.dll.ORCreateHive(&mut handle)? };
        win32("ORCreateHive", None, code)?;
        Ok(self.key(handle, true, "(new hive)".into()))
    }

    /// Opens the hive file `path`.
    pub fn open_hive(&self, path: &Path) -> Result<Key> {
        const CALL: &str = "OROpenHive";
        let wpath = Wide::path(CALL, path)?;
        let mut handle: ORHKEY = std::ptr::null_mut();
        // SAFETY: a NUL-terminated path and a writable handle.
        let code = unsafe { self.dll.OROpenHive(wpath.ptr(), &mut handle)? };
        win32(CALL, Some(&path.display()), code)?;
        Ok(self.key(handle, true, path.display().to_string()))
    }

    /// Merges hives (a base and its deltas, in order) into a new one.
    pub fn merge_hives(&self, hives: &[&Key]) -> Result<Key> {
        const CALL: &str = "ORMergeHives";
        if let Some(key) = hives.iter().find(|k| !k.hive) {
            return Err(Error::argument(CALL, format!("{} is a key, not a hive", key.name)));
        }
        let handles: Vec<ORHKEY> = hives.iter().map(|h| h.handle).collect();
        let mut handle: ORHKEY = std::ptr::null_mut();
        // SAFETY: `handles` holds `len` open hive handles; `handle` is writable.
        let code = unsafe { self.dll.ORMergeHives(handles.as_ptr(), handles.len() as u32, &mut handle)? };
        win32(CALL, None, code)?;
        Ok(self.key(handle, true, "(merged hive)".into()))
    }

    fn key(&self, handle: ORHKEY, hive: bool, name: String) -> Key {
        Key { reg: self.clone(), handle, hive, name }
    }
}

/// An open hive (its root key) or key; closed when dropped.
pub struct Key {
    reg: OfflineRegistry,
    handle: ORHKEY,
    hive: bool,
    name: String,
}

impl Key {
    /// Saves a hive to `path` in the format of Windows `os_major`.`os_minor`.
    pub fn save(&self, path: &Path, os_major: u32, os_minor: u32) -> Result {
        const CALL: &str = "ORSaveHive";
        if !self.hive {
            return Err(Error::argument(CALL, format!("{} is a key, not a hive", self.name)));
        }
        let wpath = Wide::path(CALL, path)?;
        // SAFETY: an open hive and a NUL-terminated path.
        let code = unsafe { self.reg.dll.ORSaveHive(self.handle, wpath.ptr(), os_major, os_minor)? };
        win32(CALL, Some(&path.display()), code)
    }

    /// Creates (or opens) the subkey `subkey` (backslash-separated), with no class and the
    /// default security.
    pub fn create_key(&self, subkey: &str) -> Result<Key> {
        const CALL: &str = "ORCreateKey";
        let wkey = Wide::new(CALL, subkey)?;
        let (mut handle, mut disposition): (ORHKEY, u32) = (std::ptr::null_mut(), 0);
        // SAFETY: an open key, a NUL-terminated name, NULL class and security, writable outputs.
        let code = unsafe {
            self.reg.dll.ORCreateKey(
                self.handle,
                wkey.ptr(),
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                &mut handle,
                &mut disposition,
            )?
        };
        win32(CALL, Some(&subkey), code)?;
        Ok(self.reg.key(handle, false, subkey.to_string()))
    }

    /// Opens the subkey `subkey`.
    pub fn open_key(&self, subkey: &str) -> Result<Key> {
        const CALL: &str = "OROpenKey";
        let wkey = Wide::new(CALL, subkey)?;
        let mut handle: ORHKEY = std::ptr::null_mut();
        // SAFETY: an open key, a NUL-terminated name, a writable handle.
        let code = unsafe { self.reg.dll.OROpenKey(self.handle, wkey.ptr(), &mut handle)? };
        win32(CALL, Some(&subkey), code)?;
        Ok(self.reg.key(handle, false, subkey.to_string()))
    }

    /// Sets the value `name` ("" for the default value).
    pub fn set_value(&self, name: &str, value: &Value) -> Result {
        const CALL: &str = "ORSetValue";
        let wname = Wide::new(CALL, name)?;
        let (kind, data) = value.encode();
        let size = u32::try_from(data.len()).map_err(|_| Error::argument(CALL, format!("{name}: value too large")))?;
        // SAFETY: an open key, a NUL-terminated name, `size` readable bytes.
        let code = unsafe { self.reg.dll.ORSetValue(self.handle, wname.ptr(), kind, data.as_ptr(), size)? };
        win32(CALL, Some(&name), code)
    }

    /// The value `name` of this key (or of its subkey `subkey`); `None` when absent.
    pub fn value(&self, subkey: Option<&str>, name: &str) -> Result<Option<Value>> {
        const CALL: &str = "ORGetValue";
        const LIMIT: u32 = 16 << 20;
        let wsub = subkey.map(|s| Wide::new(CALL, s)).transpose()?;
        let wname = Wide::new(CALL, name)?;
        let mut data = vec![0u8; 256];
        loop {
            let (mut kind, mut size) = (0u32, data.len() as u32);
            // SAFETY: an open key, NUL-terminated names (subkey NULL when absent), `size`
            // writable bytes and writable outputs.
            let code = unsafe {
                self.reg.dll.ORGetValue(
                    self.handle,
                    crate::wide::opt_ptr(&wsub),
                    wname.ptr(),
                    &mut kind,
                    data.as_mut_ptr().cast(),
                    &mut size,
                )?
            };
            match code {
                ERROR_FILE_NOT_FOUND => return Ok(None),
                ERROR_MORE_DATA if size as usize > data.len() && size <= LIMIT => data.resize(size as usize, 0),
                _ => {
                    win32(CALL, Some(&name), code)?;
                    data.truncate(size as usize);
                    return Ok(Some(Value::decode(kind, data)));
                }
            }
        }
    }

    /// Deletes the subkey `subkey` (which must have no subkeys).
    pub fn delete_key(&self, subkey: &str) -> Result {
        const CALL: &str = "ORDeleteKey";
        let wkey = Wide::new(CALL, subkey)?;
        // SAFETY: an open key and a NUL-terminated name.
        let code = unsafe { self.reg.dll.ORDeleteKey(self.handle, wkey.ptr())? };
        win32(CALL, Some(&subkey), code)
    }

    /// Deletes the value `name`.
    pub fn delete_value(&self, name: &str) -> Result {
        const CALL: &str = "ORDeleteValue";
        let wname = Wide::new(CALL, name)?;
        // SAFETY: an open key and a NUL-terminated name.
        let code = unsafe { self.reg.dll.ORDeleteValue(self.handle, wname.ptr())? };
        win32(CALL, Some(&name), code)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: an open handle, closed once, with the call matching how it was opened.
        let _ = unsafe {
            if self.hive { self.reg.dll.ORCloseHive(self.handle) } else { self.reg.dll.ORCloseKey(self.handle) }
        };
    }
}

// SAFETY: offline registry handles belong to the library, not to a thread.
unsafe impl Send for Key {}
