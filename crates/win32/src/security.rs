//! The security descriptor winlayer's named pipe gets, and reading a kernel object's back.

use std::sync::Arc;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Security::Authorization::SE_KERNEL_OBJECT;
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};
use winlayer_core::security::SecurityDescriptor;

use crate::error::win32;
use crate::system::{Advapi32Dll, Kernel32Dll};
use crate::{Error, Result, Source};

/// The snapshotter pipe's access: full control (FILE_ALL_ACCESS, what GENERIC_ALL maps to
/// for pipes) for SYSTEM and Administrators, nobody else, nothing inherited.
pub const PIPE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// [`PIPE_SDDL`] as a self-relative security descriptor, built by winlayer's own SDDL code
/// (no ConvertStringSecurityDescriptorToSecurityDescriptorW needed).
pub fn pipe_security_descriptor() -> Vec<u8> {
    SecurityDescriptor::from_sddl(PIPE_SDDL).expect("PIPE_SDDL is valid SDDL").to_bytes()
}

/// advapi32.dll's security calls, loaded (with kernel32's LocalFree).
#[derive(Clone)]
pub struct Security {
    advapi32: Arc<Advapi32Dll>,
    kernel32: Arc<Kernel32Dll>,
}

impl Security {
    /// Loads advapi32.dll and kernel32.dll.
    pub fn load(source: &Source) -> Result<Security> {
        Ok(Security { advapi32: Arc::new(Advapi32Dll::load(source)?), kernel32: Arc::new(Kernel32Dll::load(source)?) })
    }

    /// The DACL of the kernel object whose handle value is `handle` (a pipe, a file, …; from
    /// `AsRawHandle`) as a self-relative descriptor (GetSecurityInfo). Windows validates the
    /// handle, so a wrong value is an error, not undefined behaviour.
    pub fn object_dacl(&self, handle: usize) -> Result<Vec<u8>> {
        const CALL: &str = "GetSecurityInfo";
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: only the descriptor is asked for (the other outputs are NULL, which the
        // call allows); Windows validates the handle.
        let code = unsafe {
            self.advapi32.GetSecurityInfo(
                handle as HANDLE,
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut descriptor,
            )?
        };
        win32(CALL, None, code)?;
        if descriptor.is_null() {
            return Err(Error::argument(CALL, "returned no descriptor"));
        }
        // SAFETY: `descriptor` is the self-relative descriptor GetSecurityInfo allocated.
        let len = unsafe { self.advapi32.GetSecurityDescriptorLength(descriptor) };
        let bytes = len.map(|len| {
            // SAFETY: the descriptor is `len` bytes long.
            unsafe { std::slice::from_raw_parts(descriptor.cast::<u8>(), len as usize) }.to_vec()
        });
        // SAFETY: released once with LocalFree, as GetSecurityInfo documents.
        unsafe { self.kernel32.LocalFree(descriptor)? };
        bytes
    }
}
