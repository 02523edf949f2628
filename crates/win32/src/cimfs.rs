//! cimfs.dll and cimwriter.dll: writing, forking, merging, sealing and mounting CIM images.
//!
//! Writes (creating, files, links, tombstones, merges, commits, sealing) go through
//! cimwriter.dll when System32 has one exporting the writer's calls (Microsoft ships the
//! writer separately since 2024, and hcsshim prefers it), through cimfs.dll otherwise;
//! mounts, dismounts and verification data always through cimfs.dll. Unlike hcsshim, which
//! also looks for cimwriter.dll beside the program, only System32 is searched.
//!
//! Signatures: Microsoft's CimFs API reference for the documented functions, hcsshim's
//! declarations (internal/winapi/cimfs) for the rest; every function returns an HRESULT but
//! `CimCloseImage`, which returns nothing. Only one stream of an image may be open at a time,
//! which [`Stream`] borrowing its [`Image`] mutably enforces.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use windows_sys::core::{GUID, HRESULT, PCWSTR};
use winlayer_core::FileTime;

use crate::error::hresult;
use crate::wide::{Wide, opt_ptr};
use crate::{Error, Guid, Result, Source};

/// `CIMFS_IMAGE_HANDLE` and `CIMFS_STREAM_HANDLE`: opaque pointers.
type Handle = *mut c_void;

/// `CIMFS_FILE_METADATA` (x64: 96 bytes).
#[repr(C)]
pub(crate) struct FileMetadataC {
    attributes: u32,
    file_size: i64,
    creation_time: i64,
    last_write_time: i64,
    change_time: i64,
    last_access_time: i64,
    security_descriptor: *const c_void,
    security_descriptor_size: u32,
    reparse_data: *const c_void,
    reparse_data_size: u32,
    /// A FILE_FULL_EA_INFORMATION chain.
    extended_attributes: *const c_void,
    /// Despite hcsshim's name for it (`EACount`), the chain's length in bytes.
    extended_attributes_size: u32,
}

/// `CIMFS_IMAGE_PATH`.
#[repr(C)]
pub(crate) struct ImagePathC {
    image_dir: PCWSTR,
    image_name: PCWSTR,
}

api! {
    /// cimfs.dll.
    pub(crate) struct CimFsDll("cimfs.dll") {
        fn CimCreateImage(image_containing_path: PCWSTR, existing_image_name: PCWSTR, new_image_name: PCWSTR, image: *mut Handle) -> HRESULT;
        fn CimCreateImage2(image_containing_path: PCWSTR, flags: u32, existing_image_name: PCWSTR, new_image_name: PCWSTR, image: *mut Handle) -> HRESULT;
        fn CimCloseImage(image: Handle);
        fn CimCommitImage(image: Handle) -> HRESULT;
        fn CimCreateFile(image: Handle, image_relative_path: PCWSTR, metadata: *const FileMetadataC, stream: *mut Handle) -> HRESULT;
        fn CimWriteStream(stream: Handle, buffer: *const c_void, buffer_size: u32) -> HRESULT;
        fn CimCloseStream(stream: Handle) -> HRESULT;
        fn CimDeletePath(image: Handle, path: PCWSTR) -> HRESULT;
        fn CimCreateHardLink(image: Handle, new_path: PCWSTR, existing_path: PCWSTR) -> HRESULT;
        fn CimCreateAlternateStream(image: Handle, path: PCWSTR, size: u64, stream: *mut Handle) -> HRESULT;
        fn CimMountImage(image_containing_path: PCWSTR, image_name: PCWSTR, flags: u32, volume_id: *const GUID) -> HRESULT;
        fn CimDismountImage(volume_id: *const GUID) -> HRESULT;
        fn CimAddFsToMergedImage(image: Handle, path: PCWSTR) -> HRESULT;
        fn CimAddFsToMergedImage2(image: Handle, path: PCWSTR, flags: u32) -> HRESULT;
        fn CimMergeMountImage(count: u32, images: *const ImagePathC, flags: u32, volume_id: *const GUID) -> HRESULT;
        fn CimTombstoneFile(image: Handle, path: PCWSTR) -> HRESULT;
        fn CimCreateMergeLink(image: Handle, new_path: PCWSTR, old_path: PCWSTR) -> HRESULT;
        fn CimSealImage(block_cim_path: PCWSTR, hash_size: *mut u64, fixed_header_size: *mut u64, hash: *mut u8) -> HRESULT;
        fn CimGetVerificationInformation(block_cim_path: PCWSTR, is_sealed: *mut u32, hash_size: *mut u64, signature_size: *mut u64, fixed_header_size: *mut u64, hash: *mut u8, signature: *mut u8) -> HRESULT;
        fn CimMountVerifiedImage(image_path: PCWSTR, fs_name: PCWSTR, flags: u32, volume_id: *const GUID, hash_size: u16, hash: *const u8) -> HRESULT;
        fn CimMergeMountVerifiedImage(count: u32, images: *const ImagePathC, flags: u32, volume_id: *const GUID, hash_size: u16, hash: *const u8) -> HRESULT;
    }
}

/// `CimCreateImage2` flags.
pub mod create_flags {
    /// Store PE images as they are on disk.
    pub const DO_NOT_EXPAND_PE_IMAGES: u32 = 0x1;
    /// Fixed-size data chunks.
    pub const FIXED_SIZE_CHUNKS: u32 = 0x2;
    /// A block CIM on a block device.
    pub const BLOCK_DEVICE_CIM: u32 = 0x4;
    /// A block CIM in a single file.
    pub const SINGLE_FILE_CIM: u32 = 0x8;
    /// The same input gives a byte-identical CIM.
    pub const CONSISTENT_CIM: u32 = 0x10;
    /// A verified (hash-tree) CIM, sealed after writing.
    pub const VERIFIED_CIM: u32 = 0x40;
}

/// Mount flags.
pub mod mount_flags {
    /// Direct access.
    pub const ENABLE_DAX: u32 = 0x2;
    /// The CIM is a block CIM on a block device.
    pub const BLOCK_DEVICE_CIM: u32 = 0x10;
    /// The CIM is a single-file block CIM.
    pub const SINGLE_FILE_CIM: u32 = 0x20;
    /// The CIM is verified.
    pub const VERIFIED_CIM: u32 = 0x80;
}

/// `CimAddFsToMergedImage2` flags.
pub mod merge_flags {
    /// The sources are single-file block CIMs.
    pub const SINGLE_FILE: u32 = 0x1;
    /// The sources are block-device CIMs.
    pub const BLOCK_DEVICE: u32 = 0x2;
    /// The sources are verified CIMs.
    pub const VERIFIED: u32 = 0x4;
}

/// The calls a plain (forked or new) CIM writer needs.
const WRITER: &[&str] = &[
    "CimCreateImage",
    "CimCloseImage",
    "CimCommitImage",
    "CimCreateFile",
    "CimWriteStream",
    "CimCloseStream",
    "CimDeletePath",
    "CimCreateHardLink",
    "CimCreateAlternateStream",
];

/// The calls block CIMs, merges, tombstones and merge links need besides [`WRITER`].
const BLOCK: &[&str] = &["CimCreateImage2", "CimAddFsToMergedImage2", "CimTombstoneFile", "CimCreateMergeLink"];

/// The calls mounting needs, and merged and verified mounting besides.
const MOUNT: &[&str] = &["CimMountImage", "CimDismountImage"];
const MERGED_MOUNT: &[&str] = &["CimMergeMountImage"];
const VERIFIED: &[&str] =
    &["CimSealImage", "CimGetVerificationInformation", "CimMountVerifiedImage", "CimMergeMountVerifiedImage"];

/// The first builds with CimFS that hcsshim accepts: Server 2025 (26100), or Server 2022
/// (20348) from update revision 2031.
pub const CIMFS_BUILD: u32 = 26100;
/// Server 2022's build and the revision from which it has CimFS.
pub const CIMFS_2022: (u32, u32) = (20348, 2031);
/// The first build hcsshim lets mount block and merged CIMs (a threshold its code calls
/// provisional).
pub const BLOCK_BUILD: u32 = 27766;
/// The first build hcsshim lets use verified CIMs (also provisional).
pub const VERIFIED_BUILD: u32 = 27800;

/// What this host can do with CIMs, each `None` when it can and otherwise why not: from the
/// OS build (`os`, `None` when it could not be read, with the reason) and the DLLs' exports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Support {
    /// Mounting CIMs at all (cimfs.sys through cimfs.dll).
    pub cimfs: Option<String>,
    /// Mounting block CIMs and merged block CIMs.
    pub block_mounts: Option<String>,
    /// Sealing and mounting verified CIMs.
    pub verified: Option<String>,
    /// Writing block CIMs (tombstones, merge links, merges).
    pub block_writes: Option<String>,
    /// The DLL writes would go through.
    pub writer: Option<&'static str>,
}

/// Works out [`Support`] from the OS version (`Err`: why it is unknown) and `source`'s DLLs.
pub fn support(source: &Source, os: std::result::Result<(u32, Option<u32>), String>) -> Support {
    let fs = CimFs::load(source);
    let exports = |names: &[&'static str]| match &fs {
        Ok(fs) if fs.exports(names) => None,
        Ok(fs) => {
            let missing = names.iter().find(|n| !fs.exports(&[n])).copied().unwrap_or_default();
            Some(format!("{} does not export {missing}", fs.mounts.as_ref().map_or(fs.writer_dll(), |m| m.file())))
        }
        Err(e) => Some(e.to_string()),
    };
    let build = |min: u32, what: &str| match &os {
        Ok((build, _)) if *build >= min => None,
        Ok((build, _)) => Some(format!("{what} needs Windows build {min} or later; this is {build}")),
        Err(why) => Some(format!("the Windows build is unknown: {why}")),
    };
    let cimfs_build = match &os {
        Ok((b, _)) if *b >= CIMFS_BUILD => None,
        Ok((b, Some(r))) if *b == CIMFS_2022.0 && *r >= CIMFS_2022.1 => None,
        Ok((b, r)) => Some(format!(
            "CimFS needs build {CIMFS_BUILD}, or {}.{} or later; this is {b}{}",
            CIMFS_2022.0,
            CIMFS_2022.1,
            r.map(|r| format!(".{r}")).unwrap_or_default()
        )),
        Err(why) => Some(format!("the Windows build is unknown: {why}")),
    };
    // What mounting needs from the DLLs: cimfs.dll loaded and exporting `names`.
    let mount_calls = |names: &[&'static str]| match &fs {
        Ok(f) if !f.can_mount() => Some(format!("cimfs.dll is missing (only {CIMWRITER_DLL} is installed)")),
        _ => exports(names),
    };
    // A missing DLL or call is named before a build that is too old.
    let both = |a: Option<String>, b: Option<String>| a.or(b);
    let cimfs = both(mount_calls(MOUNT), cimfs_build);
    let block_mounts = both(cimfs.clone(), both(mount_calls(MERGED_MOUNT), build(BLOCK_BUILD, "mounting block CIMs")));
    let verified = both(block_mounts.clone(), both(mount_calls(VERIFIED), build(VERIFIED_BUILD, "verified CIMs")));
    let writer = fs.as_ref().ok().map(CimFs::writer_dll);
    // cimwriter.dll brings its own block writer; cimfs.dll's arrives with block mounts.
    let writes_block = exports(&[WRITER, BLOCK].concat());
    let block_writes = match writer {
        Some(CIMWRITER_DLL) => writes_block,
        _ => both(writes_block, build(BLOCK_BUILD, "writing block CIMs with cimfs.dll")),
    };
    Support { cimfs, block_mounts, verified, block_writes, writer }
}

/// The size of a verified CIM's root hash hcsshim expects (SHA-256); sealing accepts up to
/// [`HASH_BUFFER`] bytes to be safe.
pub const HASH_SIZE: usize = 32;
const HASH_BUFFER: usize = 64;

/// The separately shipped writer exporting the same calls.
pub const CIMWRITER_DLL: &str = "cimwriter.dll";

/// cimfs.dll and (when present) cimwriter.dll, loaded.
#[derive(Clone)]
pub struct CimFs {
    /// cimfs.dll, for mounts; `None` on a host with only cimwriter.dll.
    mounts: Option<Arc<CimFsDll>>,
    /// cimwriter.dll when it has the writer's calls, cimfs.dll otherwise.
    writer: Arc<CimFsDll>,
}

/// An image to mount or merge: its directory (or block file) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePath {
    /// The directory holding the `.cim` file, or the block CIM's file or device.
    pub dir: PathBuf,
    /// The image's name (`layer.cim`).
    pub name: String,
}

/// A sealed verified CIM's verification data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Whether the CIM is sealed.
    pub sealed: bool,
    /// The root hash.
    pub hash: Vec<u8>,
    /// The signature's size.
    pub signature_size: u64,
    /// The size of the fixed header.
    pub fixed_header_size: u64,
}

impl CimFs {
    /// Loads cimfs.dll and cimwriter.dll; fails only when neither loads.
    pub fn load(source: &Source) -> Result<CimFs> {
        let writer = CimFsDll::load_from(source, CIMWRITER_DLL).ok().filter(|w| w.require(WRITER).is_ok());
        match (CimFsDll::load(source), writer) {
            (Ok(cimfs), writer) => {
                let cimfs = Arc::new(cimfs);
                Ok(CimFs { writer: writer.map(Arc::new).unwrap_or_else(|| cimfs.clone()), mounts: Some(cimfs) })
            }
            (Err(_), Some(writer)) => Ok(CimFs { mounts: None, writer: Arc::new(writer) }),
            (Err(e), None) => Err(e),
        }
    }

    /// The DLL writes go through: `cimwriter.dll` or `cimfs.dll`.
    pub fn writer_dll(&self) -> &'static str {
        self.writer.file()
    }

    /// Whether cimfs.dll (mounts) is loaded.
    pub fn can_mount(&self) -> bool {
        self.mounts.is_some()
    }

    /// Whether the DLLs export every function in `names` (writes looked up in the writer,
    /// mounts in cimfs.dll).
    pub fn exports(&self, names: &[&'static str]) -> bool {
        names.iter().all(|n| self.writer.has(n) || self.mounts.as_ref().is_some_and(|m| m.has(n)))
    }

    /// Fails unless every call a CIM writer needs is exported.
    pub fn require_writer(&self) -> Result {
        self.writer.require(WRITER)
    }

    /// Fails unless block CIMs, merges, tombstones and merge links can be written.
    pub fn require_block(&self) -> Result {
        self.writer.require(WRITER)?;
        self.writer.require(BLOCK)
    }

    /// cimfs.dll, or why it is missing.
    fn mounter(&self) -> Result<&CimFsDll> {
        self.mounts.as_deref().ok_or_else(|| Error::Missing {
            dll: CimFsDll::DLL,
            symbol: None,
            reason: format!("only {CIMWRITER_DLL} is installed: CIMs can be written here but not mounted"),
        })
    }

    /// The writer when it exports `call`, else cimfs.dll (sealing may live in either).
    fn writer_of(&self, call: &str) -> Result<&CimFsDll> {
        if self.writer.has(call) { Ok(&self.writer) } else { self.mounter() }
    }

    /// Opens an image for writing in `dir`: `new` alone creates it, `existing` alone extends
    /// it, both fork `existing` into `new` (the parent stays as it is).
    pub fn create_image(&self, dir: &Path, existing: Option<&str>, new: Option<&str>) -> Result<Image> {
        const CALL: &str = "CimCreateImage";
        let (path, old, name) = image_names(CALL, dir, existing, new)?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: the strings are NUL-terminated (NULL where absent) and `handle` is writable.
        let hr = unsafe { self.writer.CimCreateImage(path.ptr(), opt_ptr(&old), opt_ptr(&name), &mut handle)? };
        hresult(CALL, Some(&dir.display()), hr)?;
        Ok(Image { fs: self.clone(), handle, name: describe(dir, existing, new) })
    }

    /// Opens an image with [`create_flags`]; for block CIMs `path` is the block file or
    /// device and `new` the CIM's name inside it.
    pub fn create_image2(&self, path: &Path, flags: u32, existing: Option<&str>, new: Option<&str>) -> Result<Image> {
        const CALL: &str = "CimCreateImage2";
        let (wpath, old, name) = image_names(CALL, path, existing, new)?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: as in create_image.
        let hr =
            unsafe { self.writer.CimCreateImage2(wpath.ptr(), flags, opt_ptr(&old), opt_ptr(&name), &mut handle)? };
        hresult(CALL, Some(&path.display()), hr)?;
        Ok(Image { fs: self.clone(), handle, name: describe(path, existing, new) })
    }

    /// Mounts an image as volume `volume`; returns the volume path `\\?\Volume{…}\`.
    pub fn mount(&self, image: &ImagePath, flags: u32, volume: Guid) -> Result<String> {
        const CALL: &str = "CimMountImage";
        let (dir, name) = (Wide::path(CALL, &image.dir)?, Wide::new(CALL, &image.name)?);
        let id = volume.to_sys();
        // SAFETY: NUL-terminated strings and a GUID that outlive the call.
        let hr = unsafe { self.mounter()?.CimMountImage(dir.ptr(), name.ptr(), flags, &id)? };
        hresult(CALL, Some(&image.name), hr)?;
        Ok(volume_path(volume))
    }

    /// Dismounts the volume `volume`.
    pub fn dismount(&self, volume: Guid) -> Result {
        let id = volume.to_sys();
        // SAFETY: a GUID that outlives the call.
        let hr = unsafe { self.mounter()?.CimDismountImage(&id)? };
        hresult("CimDismountImage", Some(&volume), hr)
    }

    /// Mounts a merged CIM: `images` is the merged image, then its sources in merge order
    /// (topmost first).
    pub fn merge_mount(&self, images: &[ImagePath], flags: u32, volume: Guid) -> Result<String> {
        const CALL: &str = "CimMergeMountImage";
        let paths = image_paths(CALL, images)?;
        let id = volume.to_sys();
        // SAFETY: `paths` points into `_strings`, which lives until after the call.
        let hr = unsafe {
            self.mounter()?.CimMergeMountImage(paths.entries.len() as u32, paths.entries.as_ptr(), flags, &id)?
        };
        hresult(CALL, Some(&images[0].name), hr)?;
        Ok(volume_path(volume))
    }

    /// Mounts a verified block CIM, checked against `root_hash`.
    pub fn mount_verified(&self, image: &ImagePath, flags: u32, volume: Guid, root_hash: &[u8]) -> Result<String> {
        const CALL: &str = "CimMountVerifiedImage";
        let (dir, name) = (Wide::path(CALL, &image.dir)?, Wide::new(CALL, &image.name)?);
        let size = hash_len(CALL, root_hash)?;
        let id = volume.to_sys();
        // SAFETY: strings, GUID and hash outlive the call; `size` is the hash's length.
        let hr = unsafe {
            self.mounter()?.CimMountVerifiedImage(dir.ptr(), name.ptr(), flags, &id, size, root_hash.as_ptr())?
        };
        hresult(CALL, Some(&image.name), hr)?;
        Ok(volume_path(volume))
    }

    /// Mounts a merged verified CIM (merged image first, then its sources), checked against
    /// the merged image's `root_hash`.
    pub fn merge_mount_verified(
        &self,
        images: &[ImagePath],
        flags: u32,
        volume: Guid,
        root_hash: &[u8],
    ) -> Result<String> {
        const CALL: &str = "CimMergeMountVerifiedImage";
        let paths = image_paths(CALL, images)?;
        let size = hash_len(CALL, root_hash)?;
        let id = volume.to_sys();
        // SAFETY: as in merge_mount; the hash outlives the call and `size` is its length.
        let hr = unsafe {
            self.mounter()?.CimMergeMountVerifiedImage(
                paths.entries.len() as u32,
                paths.entries.as_ptr(),
                flags,
                &id,
                size,
                root_hash.as_ptr(),
            )?
        };
        hresult(CALL, Some(&images[0].name), hr)?;
        Ok(volume_path(volume))
    }

    /// Seals a verified block CIM (no change is possible afterwards); returns its root hash.
    pub fn seal(&self, block_path: &Path) -> Result<Vec<u8>> {
        const CALL: &str = "CimSealImage";
        let path = Wide::path(CALL, block_path)?;
        let (mut hash_size, mut header_size) = (0u64, 0u64);
        let mut hash = [0u8; HASH_BUFFER];
        // SAFETY: NUL-terminated path, writable sizes, and a hash buffer larger than the
        // 32 bytes hcsshim gives the call (it takes no buffer size).
        let hr = unsafe {
            self.writer_of("CimSealImage")?.CimSealImage(
                path.ptr(),
                &mut hash_size,
                &mut header_size,
                hash.as_mut_ptr(),
            )?
        };
        hresult(CALL, Some(&block_path.display()), hr)?;
        let len = usize::try_from(hash_size).ok().filter(|l| *l <= HASH_BUFFER);
        let len = len.ok_or_else(|| Error::argument(CALL, format!("reported a {hash_size}-byte hash")))?;
        Ok(hash[..len].to_vec())
    }

    /// Reads a block CIM's verification data.
    pub fn verification(&self, block_path: &Path) -> Result<Verification> {
        const CALL: &str = "CimGetVerificationInformation";
        let path = Wide::path(CALL, block_path)?;
        let (mut sealed, mut hash_size, mut signature_size, mut header_size) = (0u32, 0u64, 0u64, 0u64);
        let mut hash = [0u8; HASH_BUFFER];
        // SAFETY: NUL-terminated path, writable outputs; the signature is not asked for (NULL),
        // as hcsshim does.
        let hr = unsafe {
            self.mounter()?.CimGetVerificationInformation(
                path.ptr(),
                &mut sealed,
                &mut hash_size,
                &mut signature_size,
                &mut header_size,
                hash.as_mut_ptr(),
                std::ptr::null_mut(),
            )?
        };
        hresult(CALL, Some(&block_path.display()), hr)?;
        let len = usize::try_from(hash_size).ok().filter(|l| *l <= HASH_BUFFER);
        let len = len.ok_or_else(|| Error::argument(CALL, format!("reported a {hash_size}-byte hash")))?;
        Ok(Verification {
            sealed: sealed != 0,
            hash: hash[..len].to_vec(),
            signature_size,
            fixed_header_size: header_size,
        })
    }
}

fn image_names(
    call: &'static str,
    path: &Path,
    existing: Option<&str>,
    new: Option<&str>,
) -> Result<(Wide, Option<Wide>, Option<Wide>)> {
    // An empty name is not the same as none to cimfs.dll; hcsshim passes NULL for both.
    let name = |n: Option<&str>| n.filter(|n| !n.is_empty()).map(|n| Wide::new(call, n)).transpose();
    if existing.is_none_or(str::is_empty) && new.is_none_or(str::is_empty) {
        return Err(Error::argument(call, "neither an existing nor a new image name"));
    }
    Ok((Wide::path(call, path)?, name(existing)?, name(new)?))
}

fn describe(path: &Path, existing: Option<&str>, new: Option<&str>) -> String {
    match (existing, new) {
        (Some(e), Some(n)) => format!("{} ({n} forked from {e})", path.display()),
        (_, Some(n)) | (Some(n), None) => format!("{}\\{n}", path.display()),
        (None, None) => path.display().to_string(),
    }
}

/// CIMFS_IMAGE_PATH entries and the strings they point into (kept alive with them).
struct ImagePaths {
    _strings: Vec<(Wide, Wide)>,
    entries: Vec<ImagePathC>,
}

fn image_paths(call: &'static str, images: &[ImagePath]) -> Result<ImagePaths> {
    if images.len() < 2 {
        return Err(Error::argument(call, "needs the merged image and at least one source"));
    }
    let strings = images
        .iter()
        .map(|i| Ok((Wide::path(call, &i.dir)?, Wide::new(call, &i.name)?)))
        .collect::<Result<Vec<_>>>()?;
    let entries = strings.iter().map(|(d, n)| ImagePathC { image_dir: d.ptr(), image_name: n.ptr() }).collect();
    Ok(ImagePaths { _strings: strings, entries })
}

fn hash_len(call: &'static str, hash: &[u8]) -> Result<u16> {
    u16::try_from(hash.len()).map_err(|_| Error::argument(call, format!("a {}-byte root hash", hash.len())))
}

fn volume_path(volume: Guid) -> String {
    format!("\\\\?\\Volume{{{volume}}}\\")
}

/// The metadata of a file, directory or link in a CIM.
#[derive(Clone, Debug, Default)]
pub struct FileMetadata<'a> {
    /// FILE_ATTRIBUTE_* bits.
    pub attributes: u32,
    /// The data length (0 for directories).
    pub size: u64,
    /// CreationTime.
    pub creation: FileTime,
    /// LastWriteTime.
    pub last_write: FileTime,
    /// ChangeTime.
    pub change: FileTime,
    /// LastAccessTime.
    pub last_access: FileTime,
    /// A self-relative security descriptor (empty: none).
    pub security: &'a [u8],
    /// A REPARSE_DATA_BUFFER (empty: none).
    pub reparse: &'a [u8],
    /// A FILE_FULL_EA_INFORMATION chain (empty: none).
    pub eas: &'a [u8],
}

/// An image open for writing; closed (without committing) when dropped.
pub struct Image {
    fs: CimFs,
    handle: Handle,
    name: String,
}

impl Image {
    /// Adds (or replaces) the file, directory or link at `path` (backslashes, relative to the
    /// image root; a trailing backslash is removed, as cimfs.dll refuses it) and opens its data
    /// stream, which must receive exactly `meta.size` bytes.
    pub fn create_file(&mut self, path: &str, meta: &FileMetadata<'_>) -> Result<Stream<'_>> {
        const CALL: &str = "CimCreateFile";
        let path = path.trim_end_matches('\\');
        let wpath = Wide::new(CALL, path)?;
        let size = |what: &str, len: usize| {
            u32::try_from(len).map_err(|_| Error::argument(CALL, format!("{path}: {len}-byte {what}")))
        };
        let ptr = |b: &[u8]| if b.is_empty() { std::ptr::null() } else { b.as_ptr().cast() };
        let file_size =
            i64::try_from(meta.size).map_err(|_| Error::argument(CALL, format!("{path}: size {}", meta.size)))?;
        let c = FileMetadataC {
            attributes: meta.attributes,
            file_size,
            creation_time: meta.creation.ticks(),
            last_write_time: meta.last_write.ticks(),
            change_time: meta.change.ticks(),
            last_access_time: meta.last_access.ticks(),
            security_descriptor: ptr(meta.security),
            security_descriptor_size: size("security descriptor", meta.security.len())?,
            reparse_data: ptr(meta.reparse),
            reparse_data_size: size("reparse buffer", meta.reparse.len())?,
            extended_attributes: ptr(meta.eas),
            extended_attributes_size: size("EA list", meta.eas.len())?,
        };
        let mut stream: Handle = std::ptr::null_mut();
        // SAFETY: `c` and the buffers it points to live until the call returns; `stream` is writable.
        let hr = unsafe { self.fs.writer.CimCreateFile(self.handle, wpath.ptr(), &c, &mut stream)? };
        hresult(CALL, Some(&path), hr)?;
        let directory = meta.attributes & winlayer_core::attrs::DIRECTORY != 0;
        let left = if directory { 0 } else { meta.size };
        Ok(Stream { dll: &self.fs.writer, handle: Some(stream), left, path: path.into() })
    }

    /// Adds the alternate data stream `path` (`file:stream`) of `size` bytes and opens it.
    pub fn create_alternate_stream(&mut self, path: &str, size: u64) -> Result<Stream<'_>> {
        const CALL: &str = "CimCreateAlternateStream";
        let wpath = Wide::new(CALL, path)?;
        let mut stream: Handle = std::ptr::null_mut();
        // SAFETY: NUL-terminated path and a writable handle.
        let hr = unsafe { self.fs.writer.CimCreateAlternateStream(self.handle, wpath.ptr(), size, &mut stream)? };
        hresult(CALL, Some(&path), hr)?;
        Ok(Stream { dll: &self.fs.writer, handle: Some(stream), left: size, path: path.into() })
    }

    /// Removes `path` (in a fork: also what the parent had there).
    pub fn delete_path(&mut self, path: &str) -> Result {
        self.path_call("CimDeletePath", path, CimFsDll::CimDeletePath)
    }

    /// Marks `path` deleted for merges (a whiteout in a block CIM).
    pub fn tombstone(&mut self, path: &str) -> Result {
        self.path_call("CimTombstoneFile", path, CimFsDll::CimTombstoneFile)
    }

    /// Adds `path` (a block CIM) as the next source of this merged image; the first added is
    /// the topmost. `flags` ([`merge_flags`]) selects `CimAddFsToMergedImage2`.
    pub fn add_to_merge(&mut self, path: &Path, flags: Option<u32>) -> Result {
        let Some(flags) = flags else {
            let text = path.to_string_lossy();
            return self.path_call("CimAddFsToMergedImage", &text, CimFsDll::CimAddFsToMergedImage);
        };
        const CALL: &str = "CimAddFsToMergedImage2";
        let wpath = Wide::path(CALL, path)?;
        // SAFETY: NUL-terminated path.
        let hr = unsafe { self.fs.writer.CimAddFsToMergedImage2(self.handle, wpath.ptr(), flags)? };
        hresult(CALL, Some(&path.display()), hr)
    }

    /// Adds a hard link `new` to the existing `existing`.
    pub fn create_hard_link(&mut self, new: &str, existing: &str) -> Result {
        self.link_call("CimCreateHardLink", new, existing, CimFsDll::CimCreateHardLink)
    }

    /// Adds a link `new` to `old` that is resolved when merging (its target is in another
    /// source CIM).
    pub fn create_merge_link(&mut self, new: &str, old: &str) -> Result {
        self.link_call("CimCreateMergeLink", new, old, CimFsDll::CimCreateMergeLink)
    }

    /// Writes the image (and forks it, for a fork) and closes it.
    pub fn commit(self) -> Result {
        // SAFETY: a handle from CimCreateImage(2), still open.
        let hr = unsafe { self.fs.writer.CimCommitImage(self.handle)? };
        hresult("CimCommitImage", Some(&self.name), hr)
    }

    fn path_call(
        &mut self,
        call: &'static str,
        path: &str,
        f: unsafe fn(&CimFsDll, Handle, PCWSTR) -> Result<HRESULT>,
    ) -> Result {
        let wpath = Wide::new(call, path)?;
        // SAFETY: `f` is one of this DLL's (image, path) calls; the path is NUL-terminated.
        let hr = unsafe { f(&self.fs.writer, self.handle, wpath.ptr())? };
        hresult(call, Some(&path), hr)
    }

    fn link_call(
        &mut self,
        call: &'static str,
        new: &str,
        old: &str,
        f: unsafe fn(&CimFsDll, Handle, PCWSTR, PCWSTR) -> Result<HRESULT>,
    ) -> Result {
        let (wnew, wold) = (Wide::new(call, new)?, Wide::new(call, old)?);
        // SAFETY: `f` is one of this DLL's (image, new, old) calls; both paths are NUL-terminated.
        let hr = unsafe { f(&self.fs.writer, self.handle, wnew.ptr(), wold.ptr())? };
        hresult(call, Some(&format!("{new} -> {old}")), hr)
    }
}

// SAFETY: an image handle is not tied to the thread that opened it (hcsshim uses them from
// goroutines, which move between threads); `&mut self` methods keep calls on one image serial.
unsafe impl Send for Image {}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the handle came from CimCreateImage(2) and is closed exactly once, here.
        let _ = unsafe { self.fs.writer.CimCloseImage(self.handle) };
    }
}

/// An open data stream of an image; closed when dropped, or by [`Stream::close`], which also
/// checks that every declared byte was written.
pub struct Stream<'a> {
    dll: &'a CimFsDll,
    handle: Option<Handle>,
    left: u64,
    path: String,
}

impl Stream<'_> {
    /// Appends `data`; more than the declared size is an error.
    pub fn write(&mut self, data: &[u8]) -> Result {
        const CALL: &str = "CimWriteStream";
        let Some(handle) = self.handle else { return Err(Error::argument(CALL, "stream already closed")) };
        if data.len() as u64 > self.left {
            return Err(Error::argument(
                CALL,
                format!("{}: {} more bytes than its declared size", self.path, data.len() as u64 - self.left),
            ));
        }
        for chunk in data.chunks(u32::MAX as usize) {
            // SAFETY: `chunk` is readable for its length, which fits in u32.
            let hr = unsafe { self.dll.CimWriteStream(handle, chunk.as_ptr().cast(), chunk.len() as u32)? };
            hresult(CALL, Some(&self.path), hr)?;
        }
        self.left -= data.len() as u64;
        Ok(())
    }

    /// Closes the stream; fails when bytes are missing.
    pub fn close(mut self) -> Result {
        self.close_handle()?;
        if self.left > 0 {
            return Err(Error::argument(
                "CimCloseStream",
                format!("{}: closed with {} bytes unwritten", self.path, self.left),
            ));
        }
        Ok(())
    }

    fn close_handle(&mut self) -> Result {
        let Some(handle) = self.handle.take() else { return Ok(()) };
        // SAFETY: a stream handle from CimCreateFile/CimCreateAlternateStream, closed once
        // (`take` above).
        let hr = unsafe { self.dll.CimCloseStream(handle)? };
        hresult("CimCloseStream", Some(&self.path), hr)
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        let _ = self.close_handle();
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn layouts_match_the_x64_declarations() {
        assert_eq!(size_of::<FileMetadataC>(), 96);
        let offsets = [
            offset_of!(FileMetadataC, attributes),
            offset_of!(FileMetadataC, file_size),
            offset_of!(FileMetadataC, creation_time),
            offset_of!(FileMetadataC, last_write_time),
            offset_of!(FileMetadataC, change_time),
            offset_of!(FileMetadataC, last_access_time),
            offset_of!(FileMetadataC, security_descriptor),
            offset_of!(FileMetadataC, security_descriptor_size),
            offset_of!(FileMetadataC, reparse_data),
            offset_of!(FileMetadataC, reparse_data_size),
            offset_of!(FileMetadataC, extended_attributes),
            offset_of!(FileMetadataC, extended_attributes_size),
        ];
        assert_eq!(offsets, [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88]);
        assert_eq!((size_of::<ImagePathC>(), offset_of!(ImagePathC, image_name)), (16, 8));
    }
}
