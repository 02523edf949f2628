//! vmcompute.dll: the legacy (WCIFS) layer calls Docker and containerd's `windows`
//! snapshotter have used since Windows Server 2016, and ProcessBaseImage/ProcessUtilityImage.
//!
//! The functions are undocumented; their signatures are the ones hcsshim declares
//! (internal/wclayer): every call takes a `DriverInfo` (flavour 1 = filter driver, home
//! directory the empty string) and the layer's full path as its "id", and returns an HRESULT.
//! Descriptor counts are passed pointer-sized, as hcsshim passes them, which is correct on
//! x64 whether Windows declares the count 32- or 64-bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use windows_sys::core::{GUID, HRESULT, PCWSTR};

use crate::error::hresult;
use crate::wide::{Wide, from_units};
use crate::{Error, Guid, Result, Source};

/// `DriverInfo` { GraphDriverType Flavour; LPCWSTR HomeDir; }.
#[repr(C)]
pub(crate) struct DriverInfo {
    flavour: i32,
    home_dir: PCWSTR,
}

/// `WC_LAYER_DESCRIPTOR` { GUID LayerId; ULONG Flags; PCWSTR Path; }.
#[repr(C)]
pub(crate) struct LayerDescriptor {
    layer_id: GUID,
    flags: u32,
    path: PCWSTR,
}

api! {
    /// vmcompute.dll.
    pub(crate) struct VmcomputeDll("vmcompute.dll") {
        fn ActivateLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
        fn DeactivateLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
        fn DestroyLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
        fn ImportLayer(info: *const DriverInfo, id: PCWSTR, path: PCWSTR, layers: *const LayerDescriptor, count: usize) -> HRESULT;
        fn ExportLayer(info: *const DriverInfo, id: PCWSTR, path: PCWSTR, layers: *const LayerDescriptor, count: usize) -> HRESULT;
        fn PrepareLayer(info: *const DriverInfo, id: PCWSTR, layers: *const LayerDescriptor, count: usize) -> HRESULT;
        fn UnprepareLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
        fn GetLayerMountPath(info: *const DriverInfo, id: PCWSTR, length: *mut usize, buffer: *mut u16) -> HRESULT;
        fn NameToGuid(name: PCWSTR, guid: *mut GUID) -> HRESULT;
        fn ProcessBaseImage(path: PCWSTR) -> HRESULT;
        fn ProcessUtilityImage(path: PCWSTR) -> HRESULT;
    }
}

/// vmcompute.dll, loaded.
#[derive(Clone)]
pub struct Vmcompute {
    dll: Arc<VmcomputeDll>,
}

/// The empty home directory hcsshim passes (a pointer to a NUL, not NULL).
static EMPTY: [u16; 1] = [0];

fn driver_info() -> DriverInfo {
    DriverInfo { flavour: 1, home_dir: EMPTY.as_ptr() }
}

impl Vmcompute {
    /// Loads vmcompute.dll.
    pub fn load(source: &Source) -> Result<Vmcompute> {
        Ok(Vmcompute { dll: Arc::new(VmcomputeDll::load(source)?) })
    }

    /// Fails unless ProcessBaseImage and ProcessUtilityImage are exported.
    pub fn require_processing(&self) -> Result {
        self.dll.require(&["ProcessBaseImage", "ProcessUtilityImage"])
    }

    /// The layer GUID Windows derives from a layer folder's name (the last component of
    /// `layer`, with `\` and `/` both separators, as on Windows).
    pub fn layer_id(&self, layer: &Path) -> Result<Guid> {
        const CALL: &str = "NameToGuid";
        let text = layer.to_str().ok_or_else(|| Error::argument(CALL, format!("{} is not UTF-8", layer.display())))?;
        let name = text.trim_end_matches(['\\', '/']).rsplit(['\\', '/']).next().unwrap_or_default();
        if name.is_empty() || name.ends_with(':') {
            return Err(Error::argument(CALL, format!("{text:?} has no folder name")));
        }
        let wname = Wide::new(CALL, name)?;
        let mut guid = GUID::from_u128(0);
        // SAFETY: a NUL-terminated name and a writable GUID.
        let hr = unsafe { self.dll.NameToGuid(wname.ptr(), &mut guid)? };
        hresult(CALL, Some(&name), hr)?;
        Ok(Guid::from_sys(&guid))
    }

    /// Mounts a layer's scratch VHD as a volume.
    pub fn activate_layer(&self, layer: &Path) -> Result {
        self.layer_call("ActivateLayer", layer, VmcomputeDll::ActivateLayer)
    }

    /// Dismounts a layer activated by [`Vmcompute::activate_layer`].
    pub fn deactivate_layer(&self, layer: &Path) -> Result {
        self.layer_call("DeactivateLayer", layer, VmcomputeDll::DeactivateLayer)
    }

    /// Deletes a layer folder.
    pub fn destroy_layer(&self, layer: &Path) -> Result {
        self.layer_call("DestroyLayer", layer, VmcomputeDll::DestroyLayer)
    }

    /// Detaches the filter attached by [`Vmcompute::prepare_layer`].
    pub fn unprepare_layer(&self, layer: &Path) -> Result {
        self.layer_call("UnprepareLayer", layer, VmcomputeDll::UnprepareLayer)
    }

    /// Imports the backup-format folder `source` as `layer` over `parents` (immediate parent first).
    pub fn import_layer(&self, layer: &Path, source: &Path, parents: &[PathBuf]) -> Result {
        const CALL: &str = "ImportLayer";
        let (id, path) = (Wide::path(CALL, layer)?, Wide::path(CALL, source)?);
        let (_paths, layers) = self.descriptors(CALL, parents)?;
        let info = driver_info();
        // SAFETY: `info`, the strings and the descriptors (pointing into `_paths`) outlive the call.
        let hr = unsafe { self.dll.ImportLayer(&info, id.ptr(), path.ptr(), layers.as_ptr(), layers.len())? };
        hresult(CALL, Some(&layer.display()), hr)
    }

    /// Exports `layer` over `parents` into the backup-format folder `dest`.
    pub fn export_layer(&self, layer: &Path, dest: &Path, parents: &[PathBuf]) -> Result {
        const CALL: &str = "ExportLayer";
        let (id, path) = (Wide::path(CALL, layer)?, Wide::path(CALL, dest)?);
        let (_paths, layers) = self.descriptors(CALL, parents)?;
        let info = driver_info();
        // SAFETY: as in import_layer.
        let hr = unsafe { self.dll.ExportLayer(&info, id.ptr(), path.ptr(), layers.as_ptr(), layers.len())? };
        hresult(CALL, Some(&layer.display()), hr)
    }

    /// Attaches the WCIFS filter presenting `layer` over `parents`.
    pub fn prepare_layer(&self, layer: &Path, parents: &[PathBuf]) -> Result {
        const CALL: &str = "PrepareLayer";
        let id = Wide::path(CALL, layer)?;
        let (_paths, layers) = self.descriptors(CALL, parents)?;
        let info = driver_info();
        // SAFETY: as in import_layer.
        let hr = unsafe { self.dll.PrepareLayer(&info, id.ptr(), layers.as_ptr(), layers.len())? };
        hresult(CALL, Some(&layer.display()), hr)
    }

    /// Where an activated layer is mounted (`\\?\Volume{…}\`), or the folder itself for a
    /// read-only layer; empty when it has no mount.
    pub fn layer_mount_path(&self, layer: &Path) -> Result<String> {
        const CALL: &str = "GetLayerMountPath";
        let id = Wide::path(CALL, layer)?;
        let info = driver_info();
        let mut length = 0usize;
        // SAFETY: first call of the size protocol: a writable length and no buffer.
        let hr = unsafe { self.dll.GetLayerMountPath(&info, id.ptr(), &mut length, std::ptr::null_mut())? };
        hresult(CALL, Some(&layer.display()), hr)?;
        if length == 0 {
            return Ok(String::new());
        }
        if length > 32_768 {
            return Err(Error::argument(CALL, format!("reported a {length}-character mount path")));
        }
        let mut buffer = vec![0u16; length];
        // SAFETY: second call: `buffer` holds the `length` units the first call asked for.
        let hr = unsafe { self.dll.GetLayerMountPath(&info, id.ptr(), &mut length, buffer.as_mut_ptr())? };
        hresult(CALL, Some(&layer.display()), hr)?;
        Ok(from_units(&buffer))
    }

    /// ProcessBaseImage on a base layer folder (creates its `Hives`, `layout` and the scratch
    /// templates `blank-base.vhdx`/`blank.vhdx`).
    pub fn process_base_image(&self, layer: &Path) -> Result {
        self.path_call("ProcessBaseImage", layer, VmcomputeDll::ProcessBaseImage)
    }

    /// ProcessUtilityImage on a base layer's `UtilityVM` folder (creates the utility VM's
    /// `SystemTemplateBase.vhdx`/`SystemTemplate.vhdx` and records them in its BCD).
    pub fn process_utility_image(&self, utility_vm: &Path) -> Result {
        self.path_call("ProcessUtilityImage", utility_vm, VmcomputeDll::ProcessUtilityImage)
    }

    /// What follows building a base layer on Windows (hcsshim's ConvertToBaseLayer):
    /// ProcessBaseImage on `layer`, then ProcessUtilityImage on `layer\UtilityVM` when the
    /// layer has one.
    pub fn process_base_layer(&self, layer: &Path) -> Result {
        self.process_base_image(layer)?;
        let utility_vm = layer.join("UtilityVM");
        if utility_vm.is_dir() { self.process_utility_image(&utility_vm) } else { Ok(()) }
    }

    fn layer_call(
        &self,
        call: &'static str,
        layer: &Path,
        f: unsafe fn(&VmcomputeDll, *const DriverInfo, PCWSTR) -> Result<HRESULT>,
    ) -> Result {
        let id = Wide::path(call, layer)?;
        let info = driver_info();
        // SAFETY: `f` is one of this DLL's (info, id) calls; both outlive it.
        let hr = unsafe { f(&self.dll, &info, id.ptr())? };
        hresult(call, Some(&layer.display()), hr)
    }

    fn path_call(
        &self,
        call: &'static str,
        path: &Path,
        f: unsafe fn(&VmcomputeDll, PCWSTR) -> Result<HRESULT>,
    ) -> Result {
        let wpath = Wide::path(call, path)?;
        // SAFETY: `f` is one of this DLL's (path) calls; the path is NUL-terminated.
        let hr = unsafe { f(&self.dll, wpath.ptr())? };
        hresult(call, Some(&path.display()), hr)
    }

    /// One descriptor per parent (GUID from its folder name, its full path); the strings the
    /// descriptors point into are returned alongside and must outlive the call.
    fn descriptors(&self, call: &'static str, parents: &[PathBuf]) -> Result<(Vec<Wide>, Vec<LayerDescriptor>)> {
        let paths = parents.iter().map(|p| Wide::path(call, p)).collect::<Result<Vec<_>>>()?;
        let mut layers = Vec::with_capacity(parents.len());
        for (parent, path) in parents.iter().zip(&paths) {
            layers.push(LayerDescriptor { layer_id: self.layer_id(parent)?.to_sys(), flags: 0, path: path.ptr() });
        }
        Ok((paths, layers))
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn layouts_match_the_x64_declarations() {
        assert_eq!((size_of::<DriverInfo>(), offset_of!(DriverInfo, home_dir)), (16, 8));
        assert_eq!(size_of::<LayerDescriptor>(), 32);
        assert_eq!((offset_of!(LayerDescriptor, flags), offset_of!(LayerDescriptor, path)), (16, 24));
    }
}
