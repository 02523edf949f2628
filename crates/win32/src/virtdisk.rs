//! virtdisk.dll: creating, opening, attaching and detaching virtual disks.
//!
//! Parameters follow what go-winio's `vhd` package passes (version 2 structures, the storage
//! type left zero so Windows picks VHD or VHDX from the file extension, no security
//! descriptor, no overlapped I/O); the structures themselves are `windows-sys`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{HANDLE, WIN32_ERROR};
use windows_sys::Win32::Security::PSECURITY_DESCRIPTOR;
use windows_sys::Win32::Storage::Vhd as vhd;
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::core::{PCWSTR, PWSTR};

use crate::error::{ERROR_INSUFFICIENT_BUFFER, win32};
use crate::system::Kernel32Dll;
use crate::wide::{Wide, from_units};
use crate::{Error, Guid, Result, Source};

api! {
    /// virtdisk.dll.
    pub(crate) struct VirtDiskDll("virtdisk.dll") {
        fn CreateVirtualDisk(storage_type: *const vhd::VIRTUAL_STORAGE_TYPE, path: PCWSTR, access: vhd::VIRTUAL_DISK_ACCESS_MASK, security: PSECURITY_DESCRIPTOR, flags: vhd::CREATE_VIRTUAL_DISK_FLAG, provider_flags: u32, parameters: *const vhd::CREATE_VIRTUAL_DISK_PARAMETERS, overlapped: *const OVERLAPPED, handle: *mut HANDLE) -> WIN32_ERROR
            = vhd::CreateVirtualDisk;
        fn OpenVirtualDisk(storage_type: *const vhd::VIRTUAL_STORAGE_TYPE, path: PCWSTR, access: vhd::VIRTUAL_DISK_ACCESS_MASK, flags: vhd::OPEN_VIRTUAL_DISK_FLAG, parameters: *const vhd::OPEN_VIRTUAL_DISK_PARAMETERS, handle: *mut HANDLE) -> WIN32_ERROR
            = vhd::OpenVirtualDisk;
        fn AttachVirtualDisk(handle: HANDLE, security: PSECURITY_DESCRIPTOR, flags: vhd::ATTACH_VIRTUAL_DISK_FLAG, provider_flags: u32, parameters: *const vhd::ATTACH_VIRTUAL_DISK_PARAMETERS, overlapped: *const OVERLAPPED) -> WIN32_ERROR
            = vhd::AttachVirtualDisk;
        fn DetachVirtualDisk(handle: HANDLE, flags: vhd::DETACH_VIRTUAL_DISK_FLAG, provider_flags: u32) -> WIN32_ERROR
            = vhd::DetachVirtualDisk;
        fn GetVirtualDiskPhysicalPath(handle: HANDLE, size_in_bytes: *mut u32, path: PWSTR) -> WIN32_ERROR
            = vhd::GetVirtualDiskPhysicalPath;
    }
}

/// `OPEN_VIRTUAL_DISK_FLAG` values.
pub mod open_flags {
    /// Open without the parent chain.
    pub const NO_PARENTS: i32 = 0x1;
    /// Cached I/O (what containerd uses for scratch disks).
    pub const CACHED_IO: i32 = 0x8;
    /// Ignore a relative parent locator.
    pub const IGNORE_RELATIVE_PARENT_LOCATOR: i32 = 0x80;
}

/// `ATTACH_VIRTUAL_DISK_FLAG` values.
pub mod attach_flags {
    /// Read-only.
    pub const READ_ONLY: i32 = 0x1;
    /// No drive letter.
    pub const NO_DRIVE_LETTER: i32 = 0x2;
    /// Stays attached after the handle closes.
    pub const PERMANENT_LIFETIME: i32 = 0x4;
    /// Bypass the default encryption policy (hcsshim's ExpandScratchSize).
    pub const BYPASS_DEFAULT_ENCRYPTION_POLICY: i32 = 0x20;
}

/// `VIRTUAL_DISK_ACCESS_MASK` values (version-1 parameters only; version 2 takes none).
pub mod access {
    /// No access rights (required with version-2 parameters).
    pub const NONE: i32 = 0;
    /// Attach read-only.
    pub const ATTACH_RO: i32 = 0x0001_0000;
    /// Attach read-write.
    pub const ATTACH_RW: i32 = 0x0002_0000;
    /// Detach.
    pub const DETACH: i32 = 0x0004_0000;
    /// Query information.
    pub const GET_INFO: i32 = 0x0008_0000;
}

/// What to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Virtual size in bytes (0 with a parent: the parent's).
    pub max_size: u64,
    /// Block size in bytes (0: Windows' default).
    pub block_size: u32,
    /// Logical sector size (0: default).
    pub sector_size: u32,
    /// Physical sector size (0: default).
    pub physical_sector_size: u32,
    /// Makes a differencing disk on this parent.
    pub parent: Option<PathBuf>,
    /// Copies this disk's content.
    pub source: Option<PathBuf>,
    /// The disk's identifier (nil: Windows picks one).
    pub unique_id: Guid,
    /// [`open_flags`] for opening the new disk (and its parent).
    pub open_flags: i32,
    /// `CREATE_VIRTUAL_DISK_FLAG` bits.
    pub flags: i32,
}

/// How to open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// [`access`] rights (keep [`access::NONE`] with these version-2 parameters).
    pub access: i32,
    /// [`open_flags`] bits.
    pub flags: i32,
    /// Only to query information.
    pub get_info_only: bool,
    /// Read-only.
    pub read_only: bool,
}

/// virtdisk.dll, loaded (with kernel32's CloseHandle for the handles it returns).
#[derive(Clone)]
pub struct VirtDisk {
    dll: Arc<VirtDiskDll>,
    kernel32: Arc<Kernel32Dll>,
}

impl VirtDisk {
    /// Loads virtdisk.dll.
    pub fn load(source: &Source) -> Result<VirtDisk> {
        Ok(VirtDisk { dll: Arc::new(VirtDiskDll::load(source)?), kernel32: Arc::new(Kernel32Dll::load(source)?) })
    }

    /// Fails unless CreateVirtualDisk is exported.
    pub fn require_create(&self) -> Result {
        self.dll.require(&["CreateVirtualDisk"])
    }

    /// Creates a virtual disk (version-2 parameters) and returns it open.
    pub fn create(&self, path: &Path, options: &CreateOptions) -> Result<VirtualDisk> {
        const CALL: &str = "CreateVirtualDisk";
        let wpath = Wide::path(CALL, path)?;
        let parent = options.parent.as_deref().map(|p| Wide::path(CALL, p)).transpose()?;
        let source = options.source.as_deref().map(|p| Wide::path(CALL, p)).transpose()?;
        let mut params =
            vhd::CREATE_VIRTUAL_DISK_PARAMETERS { Version: vhd::CREATE_VIRTUAL_DISK_VERSION_2, ..Default::default() };
        params.Anonymous.Version2 = vhd::CREATE_VIRTUAL_DISK_PARAMETERS_0_1 {
            UniqueId: options.unique_id.to_sys(),
            MaximumSize: options.max_size,
            BlockSizeInBytes: options.block_size,
            SectorSizeInBytes: options.sector_size,
            PhysicalSectorSizeInBytes: options.physical_sector_size,
            ParentPath: parent.as_ref().map_or(std::ptr::null(), Wide::ptr),
            SourcePath: source.as_ref().map_or(std::ptr::null(), Wide::ptr),
            OpenFlags: options.open_flags,
            ..Default::default()
        };
        let storage = vhd::VIRTUAL_STORAGE_TYPE::default();
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: every pointer refers to a local that outlives the call; NULL security and
        // overlapped are allowed.
        let code = unsafe {
            self.dll.CreateVirtualDisk(
                &storage,
                wpath.ptr(),
                access::NONE,
                std::ptr::null_mut(),
                options.flags,
                0,
                &params,
                std::ptr::null(),
                &mut handle,
            )?
        };
        win32(CALL, Some(&path.display()), code)?;
        Ok(VirtualDisk { disk: self.clone(), handle, path: path.display().to_string() })
    }

    /// Opens a virtual disk (version-2 parameters).
    pub fn open(&self, path: &Path, options: &OpenOptions) -> Result<VirtualDisk> {
        const CALL: &str = "OpenVirtualDisk";
        let wpath = Wide::path(CALL, path)?;
        let mut params =
            vhd::OPEN_VIRTUAL_DISK_PARAMETERS { Version: vhd::OPEN_VIRTUAL_DISK_VERSION_2, ..Default::default() };
        params.Anonymous.Version2 = vhd::OPEN_VIRTUAL_DISK_PARAMETERS_0_1 {
            GetInfoOnly: options.get_info_only.into(),
            ReadOnly: options.read_only.into(),
            ..Default::default()
        };
        let storage = vhd::VIRTUAL_STORAGE_TYPE::default();
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: every pointer refers to a local that outlives the call.
        let code = unsafe {
            self.dll.OpenVirtualDisk(&storage, wpath.ptr(), options.access, options.flags, &params, &mut handle)?
        };
        win32(CALL, Some(&path.display()), code)?;
        Ok(VirtualDisk { disk: self.clone(), handle, path: path.display().to_string() })
    }
}

/// An open virtual disk; its handle is closed when dropped (which also detaches a disk
/// attached without [`attach_flags::PERMANENT_LIFETIME`]).
pub struct VirtualDisk {
    disk: VirtDisk,
    handle: HANDLE,
    path: String,
}

// SAFETY: a kernel handle may be used and closed from any thread.
unsafe impl Send for VirtualDisk {}

impl VirtualDisk {
    /// Attaches the disk (version-2 parameters: no restricted range).
    pub fn attach(&self, flags: i32) -> Result {
        const CALL: &str = "AttachVirtualDisk";
        let params =
            vhd::ATTACH_VIRTUAL_DISK_PARAMETERS { Version: vhd::ATTACH_VIRTUAL_DISK_VERSION_2, ..Default::default() };
        // SAFETY: an open handle and parameters that outlive the call; NULL security and overlapped.
        let code = unsafe {
            self.disk.dll.AttachVirtualDisk(self.handle, std::ptr::null_mut(), flags, 0, &params, std::ptr::null())?
        };
        win32(CALL, Some(&self.path), code)
    }

    /// Detaches the disk.
    pub fn detach(&self) -> Result {
        // SAFETY: an open handle.
        let code = unsafe { self.disk.dll.DetachVirtualDisk(self.handle, 0, 0)? };
        win32("DetachVirtualDisk", Some(&self.path), code)
    }

    /// The attached disk's device path (`\\.\PhysicalDriveN`).
    pub fn physical_path(&self) -> Result<String> {
        const CALL: &str = "GetVirtualDiskPhysicalPath";
        let mut units = vec![0u16; 260];
        loop {
            let mut bytes = (units.len() * 2) as u32;
            // SAFETY: `units` holds `bytes` writable bytes.
            let code =
                unsafe { self.disk.dll.GetVirtualDiskPhysicalPath(self.handle, &mut bytes, units.as_mut_ptr())? };
            if code == ERROR_INSUFFICIENT_BUFFER && (bytes as usize) > units.len() * 2 && bytes <= 65_536 {
                units = vec![0u16; (bytes as usize).div_ceil(2)];
                continue;
            }
            win32(CALL, Some(&self.path), code)?;
            return Ok(from_units(&units));
        }
    }

    /// The raw handle, for calls that take one (HcsFormatWritableLayerVhd).
    pub(crate) fn raw(&self) -> HANDLE {
        self.handle
    }

    /// The path the disk was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for VirtualDisk {
    fn drop(&mut self) {
        // SAFETY: the handle came from Create/OpenVirtualDisk and is closed once, here.
        let _ = unsafe { self.disk.kernel32.CloseHandle(self.handle) };
    }
}

impl std::fmt::Debug for VirtualDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualDisk").field("path", &self.path).finish()
    }
}

/// Fails with a clear message for sizes a VHDX cannot have.
pub(crate) fn check_size(call: &'static str, size: u64) -> Result {
    // [MS-VHDX]: at most 64 TiB.
    if size == 0 || size > 64 << 40 {
        return Err(Error::argument(call, format!("virtual size {size} is outside 1 byte ..= 64 TiB")));
    }
    Ok(())
}
