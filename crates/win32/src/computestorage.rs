//! computestorage.dll (the HCS v2 storage API): formatting a writable layer's VHD and setting
//! up a base OS layer or volume.

use std::path::Path;
use std::sync::Arc;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::core::{HRESULT, PCWSTR};

use crate::error::hresult;
use crate::virtdisk::VirtualDisk;
use crate::wide::Wide;
use crate::{Result, Source};

api! {
    /// computestorage.dll.
    pub(crate) struct ComputeStorageDll("computestorage.dll") {
        fn HcsFormatWritableLayerVhd(vhd: HANDLE) -> HRESULT
            = windows_sys::Win32::System::HostComputeSystem::HcsFormatWritableLayerVhd;
        fn HcsSetupBaseOSLayer(layer_path: PCWSTR, vhd: HANDLE, options: PCWSTR) -> HRESULT
            = windows_sys::Win32::System::HostComputeSystem::HcsSetupBaseOSLayer;
        fn HcsSetupBaseOSVolume(layer_path: PCWSTR, volume_path: PCWSTR, options: PCWSTR) -> HRESULT
            = windows_sys::Win32::System::HostComputeSystem::HcsSetupBaseOSVolume;
    }
}

/// Which base layer to set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum OsLayerType {
    /// A container base layer.
    Container,
    /// A utility VM base layer.
    #[serde(rename = "Vm")]
    Vm,
}

/// The options JSON of HcsSetupBaseOSLayer/HcsSetupBaseOSVolume (hcsshim's `OsLayerOptions`:
/// fields left out when unset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OsLayerOptions {
    /// Container or VM layer.
    #[serde(rename = "Type")]
    pub kind: OsLayerType,
    /// Skip the code-integrity cache optimisation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_ci_cache_optimization: bool,
    /// Do not update the BCD for boot.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_update_bcd_for_boot: bool,
}

impl OsLayerOptions {
    /// Options for `kind` with nothing else set.
    pub fn new(kind: OsLayerType) -> Self {
        OsLayerOptions { kind, disable_ci_cache_optimization: false, skip_update_bcd_for_boot: false }
    }

    fn json(&self, call: &'static str) -> Result<Wide> {
        Wide::new(call, &serde_json::to_string(self).expect("options serialize"))
    }
}

/// computestorage.dll, loaded.
#[derive(Clone)]
pub struct ComputeStorage {
    dll: Arc<ComputeStorageDll>,
}

impl ComputeStorage {
    /// Loads computestorage.dll.
    pub fn load(source: &Source) -> Result<ComputeStorage> {
        Ok(ComputeStorage { dll: Arc::new(ComputeStorageDll::load(source)?) })
    }

    /// Fails unless HcsFormatWritableLayerVhd is exported.
    pub fn require_format(&self) -> Result {
        self.dll.require(&["HcsFormatWritableLayerVhd"])
    }

    /// Formats the open (not attached) VHD as a container's writable layer (NTFS).
    pub fn format_writable_layer_vhd(&self, disk: &VirtualDisk) -> Result {
        // SAFETY: an open virtual disk handle.
        let hr = unsafe { self.dll.HcsFormatWritableLayerVhd(disk.raw())? };
        hresult("HcsFormatWritableLayerVhd", Some(&disk.path()), hr)
    }

    /// Sets up the base OS layer at `layer` (it creates `Hives` and `Layout` and fails if they
    /// exist): a container layer takes no disk, a VM layer the attached one.
    pub fn setup_base_os_layer(&self, layer: &Path, disk: Option<&VirtualDisk>, options: &OsLayerOptions) -> Result {
        const CALL: &str = "HcsSetupBaseOSLayer";
        let (path, json) = (Wide::path(CALL, layer)?, options.json(CALL)?);
        let handle = disk.map_or(std::ptr::null_mut(), VirtualDisk::raw);
        // SAFETY: NUL-terminated strings; the handle is open or NULL.
        let hr = unsafe { self.dll.HcsSetupBaseOSLayer(path.ptr(), handle, json.ptr())? };
        hresult(CALL, Some(&layer.display()), hr)
    }

    /// Sets up the base OS layer at `layer` on a mounted volume (builds 19645 and later).
    pub fn setup_base_os_volume(&self, layer: &Path, volume: &str, options: &OsLayerOptions) -> Result {
        const CALL: &str = "HcsSetupBaseOSVolume";
        let (path, wvolume, json) = (Wide::path(CALL, layer)?, Wide::new(CALL, volume)?, options.json(CALL)?);
        // SAFETY: NUL-terminated strings.
        let hr = unsafe { self.dll.HcsSetupBaseOSVolume(path.ptr(), wvolume.ptr(), json.ptr())? };
        hresult(CALL, Some(&layer.display()), hr)
    }
}
