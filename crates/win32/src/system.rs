//! The OS version (RtlGetVersion, GetVersionExW, the UBR registry value), and the kernel32
//! and advapi32 calls the other modules share.

use std::ffi::c_void;

use windows_sys::Win32::Foundation::{HANDLE, HLOCAL, NTSTATUS, WIN32_ERROR};
use windows_sys::Win32::Security::Authorization::SE_OBJECT_TYPE;
use windows_sys::Win32::Security::{ACL, OBJECT_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, REG_ROUTINE_FLAGS, REG_VALUE_TYPE, RRF_RT_REG_DWORD,
};
use windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW;
use windows_sys::core::{BOOL, PCWSTR};

use crate::error::{Code, failed};
use crate::wide::Wide;
use crate::{Result, Source};

api! {
    /// kernel32.dll (always present on Windows; exported by the test double too, so fake
    /// handles are closed by the double).
    pub(crate) struct Kernel32Dll("kernel32.dll") {
        fn CloseHandle(handle: HANDLE) -> BOOL = windows_sys::Win32::Foundation::CloseHandle;
        fn LocalFree(memory: HLOCAL) -> HLOCAL = windows_sys::Win32::Foundation::LocalFree;
        fn GetVersionExW(info: *mut OSVERSIONINFOW) -> BOOL = windows_sys::Win32::System::SystemInformation::GetVersionExW;
    }
}

api! {
    /// ntdll.dll.
    pub(crate) struct NtdllDll("ntdll.dll") {
        fn RtlGetVersion(info: *mut OSVERSIONINFOW) -> NTSTATUS = windows_sys::Wdk::System::SystemServices::RtlGetVersion;
    }
}

api! {
    /// advapi32.dll.
    pub(crate) struct Advapi32Dll("advapi32.dll") {
        fn RegGetValueW(key: HKEY, subkey: PCWSTR, value: PCWSTR, flags: REG_ROUTINE_FLAGS, kind: *mut REG_VALUE_TYPE, data: *mut c_void, size: *mut u32) -> WIN32_ERROR
            = windows_sys::Win32::System::Registry::RegGetValueW;
        fn GetSecurityInfo(handle: HANDLE, object_type: SE_OBJECT_TYPE, info: OBJECT_SECURITY_INFORMATION, owner: *mut PSID, group: *mut PSID, dacl: *mut *mut ACL, sacl: *mut *mut ACL, descriptor: *mut PSECURITY_DESCRIPTOR) -> WIN32_ERROR
            = windows_sys::Win32::Security::Authorization::GetSecurityInfo;
        fn GetSecurityDescriptorLength(descriptor: PSECURITY_DESCRIPTOR) -> u32
            = windows_sys::Win32::Security::GetSecurityDescriptorLength;
    }
}

/// A Windows version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    /// Major version (10 for Windows 10, 11 and Server 2016 and later).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Build number (17763 = Server 2019, 20348 = Server 2022, 26100 = Server 2025).
    pub build: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// What the OS says about its version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OsVersion {
    /// The real version (RtlGetVersion, which ignores manifests).
    pub version: Version,
    /// The update build revision (`HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\UBR`),
    /// when the value exists.
    pub revision: Option<u32>,
    /// What GetVersionExW tells this process: the real version only for a process whose
    /// manifest declares Windows 10 support, 6.2 (Windows 8) otherwise.
    pub reported_to_process: Version,
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.version)?;
        if let Some(r) = self.revision {
            write!(f, ".{r}")?;
        }
        Ok(())
    }
}

/// The OS version, from `source`'s ntdll, kernel32 and advapi32.
pub fn os_version(source: &Source) -> Result<OsVersion> {
    let version = |call: &'static str, f: &dyn Fn(*mut OSVERSIONINFOW) -> Result<bool>| -> Result<Version> {
        let mut info = OSVERSIONINFOW { dwOSVersionInfoSize: size_of::<OSVERSIONINFOW>() as u32, ..Default::default() };
        if !f(&mut info)? {
            return Err(failed(
                call,
                None,
                Code::Win32(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32),
            ));
        }
        Ok(Version { major: info.dwMajorVersion, minor: info.dwMinorVersion, build: info.dwBuildNumber })
    };
    let ntdll = NtdllDll::load(source)?;
    let kernel32 = Kernel32Dll::load(source)?;
    let real = version("RtlGetVersion", &|info| {
        // SAFETY: `info` is a writable OSVERSIONINFOW with its size set.
        let status = unsafe { ntdll.RtlGetVersion(info)? };
        if status < 0 {
            return Err(failed("RtlGetVersion", None, Code::NtStatus(status)));
        }
        Ok(true)
    })?;
    // SAFETY: as above.
    let reported = version("GetVersionExW", &|info| Ok(unsafe { kernel32.GetVersionExW(info)? } != 0))?;
    let advapi32 = Advapi32Dll::load(source)?;
    Ok(OsVersion { version: real, revision: update_build_revision(&advapi32)?, reported_to_process: reported })
}

/// The UBR registry value; `None` when absent.
fn update_build_revision(advapi32: &Advapi32Dll) -> Result<Option<u32>> {
    const CALL: &str = "RegGetValueW";
    let key = Wide::new(CALL, r"SOFTWARE\Microsoft\Windows NT\CurrentVersion")?;
    let name = Wide::new(CALL, "UBR")?;
    let (mut value, mut size) = (0u32, 4u32);
    // SAFETY: NUL-terminated names, a writable DWORD and its size; the type is not asked for.
    let code = unsafe {
        advapi32.RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.ptr(),
            name.ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&raw mut value).cast(),
            &mut size,
        )?
    };
    match code {
        0 => Ok(Some(value)),
        2 => Ok(None),
        code => Err(failed(CALL, Some(&"UBR"), Code::Win32(code))),
    }
}
