//! shell32.dll's `CommandLineToArgvW`: Windows' own command-line splitter, to check
//! winlayer's (the wincmdline crate) against it on Windows or under wine.

use std::sync::Arc;

use windows_sys::core::{PCWSTR, PWSTR};

use crate::error::{Code, failed};
use crate::system::Kernel32Dll;
use crate::wide::{Wide, read_units};
use crate::{Result, Source};

api! {
    /// shell32.dll.
    pub(crate) struct Shell32Dll("shell32.dll") {
        fn CommandLineToArgvW(line: PCWSTR, count: *mut i32) -> *mut PWSTR = windows_sys::Win32::UI::Shell::CommandLineToArgvW;
    }
}

/// shell32.dll, loaded (with kernel32's LocalFree for the array it returns).
#[derive(Clone)]
pub struct Shell {
    dll: Arc<Shell32Dll>,
    kernel32: Arc<Kernel32Dll>,
}

impl Shell {
    /// Loads shell32.dll.
    pub fn load(source: &Source) -> Result<Shell> {
        Ok(Shell { dll: Arc::new(Shell32Dll::load(source)?), kernel32: Arc::new(Kernel32Dll::load(source)?) })
    }

    /// Splits `line` as `CommandLineToArgvW` does (an empty line gives the calling program's
    /// path, as Windows documents).
    pub fn command_line_to_argv(&self, line: &str) -> Result<Vec<String>> {
        const CALL: &str = "CommandLineToArgvW";
        let wline = Wide::new(CALL, line)?;
        let mut count = 0i32;
        // SAFETY: a NUL-terminated line and a writable count.
        let argv = unsafe { self.dll.CommandLineToArgvW(wline.ptr(), &mut count)? };
        if argv.is_null() {
            let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32;
            return Err(failed(CALL, None, Code::Win32(code)));
        }
        let args = (0..count.max(0) as usize)
            // SAFETY: `argv` holds `count` pointers to NUL-terminated strings.
            .map(|i| unsafe { read_units(*argv.add(i), 32_768) })
            .collect();
        // SAFETY: one LocalFree releases the array and its strings, as documented.
        unsafe { self.kernel32.LocalFree(argv.cast())? };
        Ok(args)
    }
}
