//! Typed errors: which call failed, with which code, and what was missing.

use std::fmt;

/// Result alias; `Result<>` is `Result<(), Error>`.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// A failure reported by Windows, or a DLL or function this machine does not have.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The DLL or the function is not there.
    #[error("{}", missing_message(dll, symbol.as_deref(), reason))]
    Missing {
        /// The DLL.
        dll: &'static str,
        /// The function, when the DLL loaded but lacks it.
        symbol: Option<&'static str>,
        /// Why the DLL did not load (empty for a missing function).
        reason: String,
    },
    /// A call returned a failure code.
    #[error("{call}{}: {code}", subject.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Call {
        /// The function.
        call: &'static str,
        /// What it was working on (a path, a name), when known.
        subject: Option<String>,
        /// The code it returned.
        code: Code,
    },
    /// An argument that cannot be passed to the call (a NUL inside a string, a size too big).
    #[error("{call}: {message}")]
    Argument {
        /// The function.
        call: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn missing_message(dll: &str, symbol: Option<&str>, reason: &str) -> String {
    match symbol {
        Some(symbol) => format!("this Windows build lacks {symbol} (not exported by {dll})"),
        None if cfg!(windows) => format!("this Windows build lacks {dll}: {reason}"),
        None => format!("{dll} is not available: {reason}"),
    }
}

impl Error {
    pub(crate) fn missing_symbol(dll: &'static str, symbol: &'static str) -> Self {
        Error::Missing { dll, symbol: Some(symbol), reason: String::new() }
    }

    pub(crate) fn argument(call: &'static str, message: impl Into<String>) -> Self {
        Error::Argument { call, message: message.into() }
    }

    /// The code of a failed call.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Call { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the call failed because a file or path was not found.
    pub fn is_not_found(&self) -> bool {
        self.code().and_then(Code::win32).is_some_and(|c| c == ERROR_FILE_NOT_FOUND || c == ERROR_PATH_NOT_FOUND)
    }
}

impl From<Error> for winlayer_core::Error {
    fn from(e: Error) -> Self {
        winlayer_core::Error::Invalid(e.to_string())
    }
}

pub(crate) const ERROR_FILE_NOT_FOUND: u32 = 2;
pub(crate) const ERROR_PATH_NOT_FOUND: u32 = 3;
pub(crate) const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
pub(crate) const ERROR_MORE_DATA: u32 = 234;

/// A failure code in the form the call returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// An HRESULT (negative on failure).
    HResult(i32),
    /// A Win32 error code (`ERROR_*`).
    Win32(u32),
    /// An NTSTATUS.
    NtStatus(i32),
}

impl Code {
    /// The Win32 error the code stands for: itself, or the low word of a FACILITY_WIN32 HRESULT.
    pub fn win32(self) -> Option<u32> {
        match self {
            Code::Win32(c) => Some(c),
            Code::HResult(hr) if (hr as u32) & 0xFFFF_0000 == 0x8007_0000 => Some(hr as u32 & 0xFFFF),
            _ => None,
        }
    }

    /// The symbolic name and a short text, when the code is one the bound calls are known to return.
    fn describe(self) -> Option<(&'static str, &'static str)> {
        let find = |table: &[(u32, &'static str, &'static str)], n: u32| {
            table.iter().find(|(c, _, _)| *c == n).map(|(_, name, text)| (*name, *text))
        };
        let own = match self {
            Code::HResult(hr) => find(HRESULT_NAMES, hr as u32),
            Code::NtStatus(st) => find(NTSTATUS_NAMES, st as u32),
            Code::Win32(_) => None,
        };
        own.or_else(|| self.win32().and_then(|c| find(WIN32_NAMES, c)))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::HResult(hr) => write!(f, "HRESULT 0x{:08X}", *hr as u32)?,
            Code::Win32(c) => write!(f, "error {c}")?,
            Code::NtStatus(st) => write!(f, "NTSTATUS 0x{:08X}", *st as u32)?,
        }
        match self.describe() {
            Some((name, text)) => write!(f, " ({name}: {text})"),
            None => Ok(()),
        }
    }
}

/// Win32 error codes the bound calls are known to return.
const WIN32_NAMES: &[(u32, &str, &str)] = &[
    (1, "ERROR_INVALID_FUNCTION", "incorrect function"),
    (2, "ERROR_FILE_NOT_FOUND", "the file was not found"),
    (3, "ERROR_PATH_NOT_FOUND", "the path was not found"),
    (5, "ERROR_ACCESS_DENIED", "access is denied"),
    (6, "ERROR_INVALID_HANDLE", "the handle is invalid"),
    (8, "ERROR_NOT_ENOUGH_MEMORY", "not enough memory"),
    (32, "ERROR_SHARING_VIOLATION", "the file is in use by another process"),
    (38, "ERROR_HANDLE_EOF", "reached the end of the file (more data than the declared size)"),
    (50, "ERROR_NOT_SUPPORTED", "the request is not supported"),
    (80, "ERROR_FILE_EXISTS", "the file exists"),
    (87, "ERROR_INVALID_PARAMETER", "the parameter is incorrect"),
    (122, "ERROR_INSUFFICIENT_BUFFER", "the buffer is too small"),
    (126, "ERROR_MOD_NOT_FOUND", "the module was not found"),
    (127, "ERROR_PROC_NOT_FOUND", "the procedure was not found"),
    (145, "ERROR_DIR_NOT_EMPTY", "the directory is not empty"),
    (183, "ERROR_ALREADY_EXISTS", "the file or volume already exists"),
    (234, "ERROR_MORE_DATA", "more data is available"),
    (1009, "ERROR_BADDB", "the registry database is corrupt"),
    (1015, "ERROR_REGISTRY_CORRUPT", "the registry is corrupted"),
    (1314, "ERROR_PRIVILEGE_NOT_HELD", "a required privilege is not held by the client"),
    (1392, "ERROR_FILE_CORRUPT", "the file or directory is corrupted and unreadable"),
];

const HRESULT_NAMES: &[(u32, &str, &str)] = &[
    (0x8000_4001, "E_NOTIMPL", "not implemented"),
    (0x8000_4003, "E_POINTER", "invalid pointer"),
    (0x8000_4005, "E_FAIL", "unspecified failure"),
    (0x8000_FFFF, "E_UNEXPECTED", "catastrophic failure"),
    (0x8007_000E, "E_OUTOFMEMORY", "out of memory"),
];

const NTSTATUS_NAMES: &[(u32, &str, &str)] = &[
    (0xC000_0001, "STATUS_UNSUCCESSFUL", "the operation was unsuccessful"),
    (0xC000_000D, "STATUS_INVALID_PARAMETER", "an invalid parameter was passed"),
];

/// Turns an HRESULT into a result.
pub(crate) fn hresult(call: &'static str, subject: Option<&dyn fmt::Display>, hr: i32) -> Result {
    if hr >= 0 { Ok(()) } else { Err(failed(call, subject, Code::HResult(hr))) }
}

/// Turns a Win32 error code into a result.
pub(crate) fn win32(call: &'static str, subject: Option<&dyn fmt::Display>, code: u32) -> Result {
    if code == 0 { Ok(()) } else { Err(failed(call, subject, Code::Win32(code))) }
}

pub(crate) fn failed(call: &'static str, subject: Option<&dyn fmt::Display>, code: Code) -> Error {
    Error::Call { call, subject: subject.map(|s| s.to_string()), code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_render_with_names() {
        assert_eq!(
            Code::HResult(0x8007_0005u32 as i32).to_string(),
            "HRESULT 0x80070005 (ERROR_ACCESS_DENIED: access is denied)"
        );
        assert_eq!(Code::Win32(183).to_string(), "error 183 (ERROR_ALREADY_EXISTS: the file or volume already exists)");
        assert_eq!(
            Code::HResult(0x8000_4005u32 as i32).to_string(),
            "HRESULT 0x80004005 (E_FAIL: unspecified failure)"
        );
        assert_eq!(Code::Win32(9999).to_string(), "error 9999");
        assert_eq!(Code::NtStatus(0xC000_000Du32 as i32).win32(), None);
        let e = failed("CimCreateFile", Some(&"Files\\a"), Code::HResult(0x8007_0002u32 as i32));
        assert_eq!(
            e.to_string(),
            "CimCreateFile (Files\\a): HRESULT 0x80070002 (ERROR_FILE_NOT_FOUND: the file was not found)"
        );
        assert!(e.is_not_found());
        assert_eq!(
            Error::missing_symbol("cimfs.dll", "CimTombstoneFile").to_string(),
            "this Windows build lacks CimTombstoneFile (not exported by cimfs.dll)"
        );
    }
}
