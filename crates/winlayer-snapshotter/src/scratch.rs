//! Container scratch disks (`sandbox.vhdx`) from the `vhdx` crate, made where and as
//! containerd's Windows snapshotters make them:
//! * `windows`: a copy of the base layer's `blank.vhdx` (written when Windows imports a base
//!   layer), grown to the requested size;
//! * `cimfs`, and `blockcim` by default: a copy of the root's shared differencing template
//!   `blank.vhdx` over `blank-base.vhdx` (made when the snapshotter starts, remade by a Prepare
//!   that finds them missing or broken), grown to the requested size;
//! * `blockcim` with `unformatted_scratch`: a copy of the root's unformatted 40 GiB dynamic
//!   `blank.vhdx`, or for another size a new unformatted disk of that size (an unformatted disk
//!   cannot be grown the way Windows grows NTFS; below 40 GiB, ReFS's minimum, is refused);
//! * with the utility-VM label, also `vm/sandbox.vhdx`, a copy of the base layer's
//!   `UtilityVM/SystemTemplate.vhdx`.
//!
//! Growing changes the disk only: Windows extends the NTFS volume when it mounts the scratch.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vhdx::scratch::{BaseMaker, DIFF_NAME, Mkntfs, copy, ensure_templates};
use vhdx::{CreateOptions, Ids, OpenOptions, Vhdx};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::{MIN_UNFORMATTED_SCRATCH, Mode, SANDBOX, ScratchProvider, ScratchRequest};
use crate::private;

/// Scratch disks made with the `vhdx` crate.
pub struct VhdxScratch {
    formatter: Box<dyn BaseMaker + Send + Sync>,
    /// Two Prepares must not both remake the cimfs templates.
    templates: Mutex<()>,
}

impl VhdxScratch {
    /// Formats the cimfs base template's NTFS with `formatter`.
    pub fn new(formatter: Box<dyn BaseMaker + Send + Sync>) -> Self {
        VhdxScratch { formatter, templates: Mutex::new(()) }
    }
}

impl Default for VhdxScratch {
    /// On Windows, when virtdisk.dll and computestorage.dll offer what is needed, Windows
    /// creates and formats the base template; otherwise ntfs-3g's `mkntfs` formats it.
    fn default() -> Self {
        #[cfg(windows)]
        if let Ok(windows) = win32::scratch::ScratchFormatter::load(&win32::Source::System) {
            return VhdxScratch::new(Box::new(WindowsFormat(windows)));
        }
        VhdxScratch::new(Box::new(Mkntfs::default()))
    }
}

/// The base template made by Windows itself (CreateVirtualDisk, then
/// HcsFormatWritableLayerVhd), as containerd's CimFS snapshotter makes it.
#[cfg(windows)]
struct WindowsFormat(win32::scratch::ScratchFormatter);

#[cfg(windows)]
impl BaseMaker for WindowsFormat {
    fn create_base(&self, path: &Path, _ids: &Ids) -> winlayer_core::Result<()> {
        // CreateVirtualDisk refuses an existing file, and the caller hands us an empty one.
        let _ = std::fs::remove_file(path);
        self.0
            .create_formatted(path, vhdx::scratch::TEMPLATE_SIZE)
            .map_err(|e| winlayer_core::Error::Invalid(format!("Windows could not make the scratch template: {e}")))
    }
}

/// The `vhdx` crate's errors: its "invalid" (a size below the template's, a broken disk) is
/// the caller's problem; I/O is ours.
fn vhdx_error(what: &str, err: winlayer_core::Error) -> Error {
    let kind = match err {
        winlayer_core::Error::Io { .. } => ErrorKind::Internal,
        _ => ErrorKind::InvalidArgument,
    };
    Error::new(kind, format!("{what}: {err}"))
}

/// A template a base layer must carry (the Windows differ writes them).
fn base_layer_file(base: &Path, name: &str) -> Result<PathBuf> {
    let path = base.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::failed_precondition(format!(
            "base layer {} has no {name} (Windows writes it when it imports a base layer)",
            base.display()
        )))
    }
}

impl VhdxScratch {
    /// The cimfs template pair in `root`, (re)made when either is missing or broken.
    fn cimfs_templates(&self, root: &Path) -> Result<vhdx::scratch::Templates> {
        let _one_at_a_time = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let templates = ensure_templates(root, &*self.formatter, &Ids::Random)
            .map_err(|e| vhdx_error("making the scratch templates", e))?;
        private::restrict(&templates.base)?;
        private::restrict(&templates.diff)?;
        Ok(templates)
    }
}

impl VhdxScratch {
    /// `blockcim` mode's unformatted template in `root`: a dynamic disk of 40 GiB with nothing
    /// on it, (re)made when missing or when `blank.vhdx` is anything else (the formatted pair's
    /// differencing disk, a broken file).
    fn unformatted_template(&self, root: &Path) -> Result<PathBuf> {
        let _one_at_a_time = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let path = root.join(DIFF_NAME);
        let usable = Vhdx::open_file(&path, &OpenOptions::default())
            .is_ok_and(|d| d.info().parent.is_none() && d.virtual_size() == MIN_UNFORMATTED_SCRATCH);
        if !usable {
            new_unformatted(&path, MIN_UNFORMATTED_SCRATCH)?;
        }
        Ok(path)
    }
}

/// A new unformatted dynamic disk of `size` bytes at `path`, written beside it and renamed
/// into place.
fn new_unformatted(path: &Path, size: u64) -> Result<()> {
    let temp = path.with_extension("vhdx.new");
    let _ = std::fs::remove_file(&temp);
    let made = Vhdx::create_file(&temp, &CreateOptions::dynamic(size))
        .and_then(|mut d| d.flush())
        .map_err(|e| vhdx_error(&format!("making the unformatted disk {}", path.display()), e));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::rename(&temp, path).map_err(|e| Error::io("renaming into place", path, e))?;
    private::restrict(path)
}

impl ScratchProvider for VhdxScratch {
    fn prepare_root(&self, root: &Path, mode: Mode, unformatted: bool) -> Result<()> {
        match mode {
            Mode::Blockcim if unformatted => self.unformatted_template(root).map(drop),
            Mode::Cimfs | Mode::Blockcim => self.cimfs_templates(root).map(drop),
            Mode::Windows | Mode::Linux => Ok(()),
        }
    }

    fn create(&self, request: &ScratchRequest<'_>) -> Result<()> {
        let base = request.parents.last().ok_or_else(|| Error::internal("a scratch needs a parent layer"))?;
        let template = match request.mode {
            Mode::Windows => base_layer_file(base, "blank.vhdx")?,
            Mode::Blockcim if request.unformatted => {
                let size = request.size_bytes;
                if size != 0 && size < MIN_UNFORMATTED_SCRATCH {
                    return Err(Error::invalid_argument(format!(
                        "blockcim mode with unformatted scratches: a scratch must be at least {} GiB (ReFS's \
                         minimum), not {size} bytes",
                        MIN_UNFORMATTED_SCRATCH >> 30
                    )));
                }
                self.unformatted_template(request.root)?
            }
            Mode::Cimfs | Mode::Blockcim => self.cimfs_templates(request.root)?.diff,
            Mode::Linux => return Err(Error::internal("linux mode has no scratch disks")),
        };
        if request.utility_vm {
            let uvm = base_layer_file(base, "UtilityVM/SystemTemplate.vhdx")?;
            let vm = request.dir.join("vm");
            private::create_dir(&vm)?;
            let disk = vm.join("sandbox.vhdx");
            copy(&uvm, &disk, None).map_err(|e| vhdx_error("making vm/sandbox.vhdx", e))?;
            private::restrict(&disk)?;
        }
        let size = (request.size_bytes > 0).then_some(request.size_bytes);
        let disk = request.dir.join(SANDBOX);
        if request.unformatted && size.is_some_and(|s| s != MIN_UNFORMATTED_SCRATCH) {
            // Nothing on it to grow with the disk: a new one of that size.
            return new_unformatted(&disk, request.size_bytes);
        }
        copy(&template, &disk, size).map_err(|e| vhdx_error("making sandbox.vhdx", e))?;
        private::restrict(&disk)
    }
}
