//! Scratch (writable layer) disks formatted by Windows: a VHDX from virtdisk.dll, made NTFS by
//! computestorage.dll's HcsFormatWritableLayerVhd — the half of a scratch disk winlayer cannot
//! write itself (the VHDX container is native; the NTFS inside is Windows' job).
//!
//! [`ScratchFormatter::create_template`] makes containerd's cimfs-snapshotter template
//! (containerd `plugins/snapshots/windows/cimfs.go`): `blank-base.vhdx`, formatted, and `blank.vhdx`, a
//! differencing child of it that each container copies. Granting the VM group access to
//! both (go-winio's GrantVmGroupAccess) is not done here.

use std::path::Path;

use crate::computestorage::ComputeStorage;
use crate::virtdisk::{CreateOptions, VirtDisk, check_size, open_flags};
use crate::{Result, Source};

/// Block size containerd and hcsshim give scratch disks.
pub const BLOCK_SIZE: u32 = 1 << 20;

/// The size containerd's template base disk gets (10 GiB).
pub const DEFAULT_SIZE: u64 = 10 << 30;

/// virtdisk.dll and computestorage.dll, loaded and checked.
#[derive(Clone)]
pub struct ScratchFormatter {
    disks: VirtDisk,
    storage: ComputeStorage,
}

impl ScratchFormatter {
    /// Loads both DLLs; fails, naming it, when a needed function is missing.
    pub fn load(source: &Source) -> Result<ScratchFormatter> {
        let formatter = ScratchFormatter { disks: VirtDisk::load(source)?, storage: ComputeStorage::load(source)? };
        formatter.disks.require_create()?;
        formatter.storage.require_format()?;
        Ok(formatter)
    }

    /// Creates `path`, a dynamic VHDX of `size` bytes with 1 MiB blocks, and formats it as a
    /// container's writable layer.
    pub fn create_formatted(&self, path: &Path, size: u64) -> Result {
        check_size("CreateVirtualDisk", size)?;
        let disk =
            self.disks.create(path, &CreateOptions { max_size: size, block_size: BLOCK_SIZE, ..Default::default() })?;
        self.storage.format_writable_layer_vhd(&disk)
    }

    /// Creates the formatted `base` and its differencing child `diff` (1 MiB blocks, cached
    /// I/O, parent recorded by its path as given — keep it absolute).
    pub fn create_template(&self, base: &Path, diff: &Path, size: u64) -> Result {
        self.create_formatted(base, size)?;
        let options = CreateOptions {
            block_size: BLOCK_SIZE,
            parent: Some(base.to_path_buf()),
            open_flags: open_flags::CACHED_IO,
            ..Default::default()
        };
        self.disks.create(diff, &options).map(drop)
    }
}
