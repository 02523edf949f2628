//! What the double remembers about block CIMs so that it can refuse, as cimfs.dll would or as
//! hcsshim's use of it requires, calls made out of order or with mismatched arguments: the
//! flags of each open image, the block files committed (their CIMs, which are merged from
//! which sources in which order, which are verified, closed and sealed), and the root hashes
//! sealing returned.
//!
//! Refused calls return E_INVALIDARG (or ERROR_FILE_NOT_FOUND for a source that was never
//! written) and are logged with `"refused": why`, so a test sees both the code and the reason.

use std::collections::HashMap;

/// HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER).
pub const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
/// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND).
pub const E_NOT_FOUND: i32 = 0x8007_0002_u32 as i32;

/// CimCreateImage2 flags the double knows (all the public ones).
const CREATE_KNOWN: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x40;
const BLOCK_DEVICE: u32 = 0x4;
const SINGLE_FILE: u32 = 0x8;
const VERIFIED: u32 = 0x40;
/// Merge flags.
const MERGE_SINGLE_FILE: u32 = 0x1;
const MERGE_BLOCK_DEVICE: u32 = 0x2;
const MERGE_VERIFIED: u32 = 0x4;
/// Mount flags.
const MOUNT_BLOCK_DEVICE: u32 = 0x10;
const MOUNT_SINGLE_FILE: u32 = 0x20;
const MOUNT_VERIFIED: u32 = 0x80;

/// A refusal: the HRESULT and why.
pub type Refusal = (i32, String);

fn invalid(why: impl Into<String>) -> Refusal {
    (E_INVALIDARG, why.into())
}

/// An image opened with CimCreateImage2.
#[derive(Clone, Debug)]
struct Open {
    block: String,
    name: String,
    flags: u32,
    files: bool,
    sources: Vec<String>,
    committed: bool,
}

/// A CIM committed inside a block file.
#[derive(Clone, Debug, Default)]
struct Committed {
    flags: u32,
    /// For a merged CIM, its sources, topmost first (`block\name`).
    sources: Vec<String>,
}

#[derive(Default)]
pub struct Registry {
    open: HashMap<String, Open>,
    /// `block\name` (lower case) → the committed CIM.
    cims: HashMap<String, Committed>,
    /// Block files (lower case) with an image still open.
    busy: HashMap<String, usize>,
    /// Block files (lower case) sealed, with their root hash.
    sealed: HashMap<String, Vec<u8>>,
}

/// Paths compare as Windows compares them: case-insensitively, either slash (tests on Linux
/// build paths with `/`).
fn key(s: &str) -> String {
    s.to_lowercase().replace('/', "\\")
}

fn cim_key(block: &str, name: &str) -> String {
    key(&format!("{block}\\{name}"))
}

impl Registry {
    /// CimCreateImage2 for a block image; `Ok(false)` when the image is not a block CIM (no
    /// rules beyond the known flags).
    pub fn create(
        &mut self,
        path: &str,
        flags: u32,
        existing: Option<&str>,
        new: Option<&str>,
    ) -> Result<bool, Refusal> {
        if flags & !CREATE_KNOWN != 0 {
            return Err(invalid(format!("unknown create flags {:#x}", flags & !CREATE_KNOWN)));
        }
        let block = flags & (BLOCK_DEVICE | SINGLE_FILE);
        if block == BLOCK_DEVICE | SINGLE_FILE {
            return Err(invalid("both block-device and single-file"));
        }
        if block == 0 {
            return match flags & VERIFIED {
                0 => Ok(false),
                _ => Err(invalid("a verified CIM must be a block CIM")),
            };
        }
        if existing.is_some() {
            return Err(invalid("block CIMs cannot be forked"));
        }
        let Some(name) = new.filter(|n| n.ends_with(".cim") && !n.contains(['\\', '/'])) else {
            return Err(invalid(format!("the name inside the block file must be NAME.cim, not {new:?}")));
        };
        if self.sealed.contains_key(&key(path)) {
            return Err(invalid(format!("{path} is sealed")));
        }
        if self.cims.contains_key(&cim_key(path, name)) {
            return Err(invalid(format!("{path} already holds {name}")));
        }
        Ok(true)
    }

    /// Remembers the block image handed out as `handle`.
    pub fn opened(&mut self, handle: &str, path: &str, flags: u32, name: &str) {
        *self.busy.entry(key(path)).or_default() += 1;
        let open =
            Open { block: path.into(), name: name.into(), flags, files: false, sources: vec![], committed: false };
        self.open.insert(handle.into(), open);
    }

    fn image(&mut self, handle: &str) -> Option<&mut Open> {
        self.open.get_mut(handle)
    }

    /// A file, stream, link or deletion written into `handle`.
    pub fn write(&mut self, handle: &str, call: &str) -> Result<(), Refusal> {
        let Some(open) = self.image(handle) else {
            return match call {
                "CimTombstoneFile" | "CimCreateMergeLink" => Err(invalid(format!("{call} needs a block CIM"))),
                _ => Ok(()),
            };
        };
        if open.committed {
            return Err(invalid("the image is already committed"));
        }
        if !open.sources.is_empty() {
            return Err(invalid("a merged CIM holds only its sources"));
        }
        if call == "CimDeletePath" {
            return Err(invalid("a block CIM deletes with tombstones"));
        }
        open.files = true;
        Ok(())
    }

    /// CimAddFsToMergedImage(2): `flags` None for the first version.
    pub fn add_source(&mut self, handle: &str, path: &str, flags: Option<u32>) -> Result<(), Refusal> {
        let Some(flags) = flags else { return Err(invalid("block sources need CimAddFsToMergedImage2's flags")) };
        let source = self.cims.get(&key(path)).cloned();
        let Some(open) = self.open.get_mut(handle) else { return Err(invalid("merging needs a block image")) };
        if open.files {
            return Err(invalid("a merged CIM holds only its sources, and files were written"));
        }
        if open.committed {
            return Err(invalid("the image is already committed"));
        }
        if flags & !(MERGE_SINGLE_FILE | MERGE_BLOCK_DEVICE | MERGE_VERIFIED) != 0 {
            return Err(invalid(format!("unknown merge flags {flags:#x}")));
        }
        let want = match open.flags & (SINGLE_FILE | BLOCK_DEVICE) {
            SINGLE_FILE => MERGE_SINGLE_FILE,
            _ => MERGE_BLOCK_DEVICE,
        } | if open.flags & VERIFIED != 0 { MERGE_VERIFIED } else { 0 };
        if flags != want {
            return Err(invalid(format!("merge flags {flags:#x} for an image created with {:#x}", open.flags)));
        }
        let Some(source) = source else { return Err((E_NOT_FOUND, format!("no committed block CIM {path}"))) };
        if !source.sources.is_empty() {
            return Err(invalid(format!("{path} is itself a merged CIM")));
        }
        if source.flags & (SINGLE_FILE | BLOCK_DEVICE | VERIFIED)
            != open.flags & (SINGLE_FILE | BLOCK_DEVICE | VERIFIED)
        {
            return Err(invalid(format!("{path} is not of the merged image's type")));
        }
        if open.sources.iter().any(|s| key(s) == key(path)) {
            return Err(invalid(format!("{path} added twice")));
        }
        open.sources.push(path.into());
        Ok(())
    }

    /// CimCommitImage.
    pub fn commit(&mut self, handle: &str) -> Result<(), Refusal> {
        let Some(open) = self.open.get_mut(handle) else { return Ok(()) };
        if open.committed {
            return Err(invalid("committed twice"));
        }
        if open.sources.len() == 1 {
            return Err(invalid("a merged CIM needs at least two sources"));
        }
        open.committed = true;
        let committed = Committed { flags: open.flags, sources: open.sources.clone() };
        self.cims.insert(cim_key(&open.block, &open.name), committed);
        Ok(())
    }

    /// CimCloseImage.
    pub fn close(&mut self, handle: &str) {
        if let Some(open) = self.open.remove(handle) {
            let k = key(&open.block);
            if let Some(n) = self.busy.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(&k);
                }
            }
        }
    }

    /// CimSealImage: a verified block file, every image in it committed and closed.
    pub fn seal(&mut self, path: &str) -> Result<(), Refusal> {
        let k = key(path);
        if self.busy.contains_key(&k) {
            return Err(invalid(format!("{path} is still open: close the image before sealing")));
        }
        let prefix = format!("{k}\\");
        let cims: Vec<&Committed> = self.cims.iter().filter(|(c, _)| c.starts_with(&prefix)).map(|(_, v)| v).collect();
        if cims.is_empty() {
            return Err((E_NOT_FOUND, format!("no committed CIM in {path}")));
        }
        if cims.iter().any(|c| c.flags & VERIFIED == 0) {
            return Err(invalid(format!("{path} was not created as a verified CIM")));
        }
        if self.sealed.contains_key(&k) {
            return Err(invalid(format!("{path} is already sealed")));
        }
        Ok(())
    }

    /// Remembers the hash sealing returned.
    pub fn sealed(&mut self, path: &str, hash: Vec<u8>) {
        self.sealed.insert(key(path), hash);
    }

    /// CimMountImage or CimMountVerifiedImage of `path\name` with `flags` (and a hash).
    pub fn mount(&self, path: &str, name: &str, flags: u32, hash: Option<&[u8]>) -> Result<(), Refusal> {
        let cim = self.cims.get(&cim_key(path, name));
        let claims_block = flags & (MOUNT_SINGLE_FILE | MOUNT_BLOCK_DEVICE) != 0;
        let Some(cim) = cim else {
            return match claims_block || hash.is_some() {
                true => Err((E_NOT_FOUND, format!("no committed block CIM {path}\\{name}"))),
                false => Ok(()),
            };
        };
        if !cim.sources.is_empty() {
            return Err(invalid("a merged CIM is mounted with its sources (CimMergeMountImage)"));
        }
        self.check_mount(path, cim, flags, hash)
    }

    fn check_mount(&self, path: &str, cim: &Committed, flags: u32, hash: Option<&[u8]>) -> Result<(), Refusal> {
        let want = match cim.flags & (SINGLE_FILE | BLOCK_DEVICE) {
            SINGLE_FILE => MOUNT_SINGLE_FILE,
            _ => MOUNT_BLOCK_DEVICE,
        };
        if flags & (MOUNT_SINGLE_FILE | MOUNT_BLOCK_DEVICE) != want {
            return Err(invalid(format!("mount flags {flags:#x} for a CIM created with {:#x}", cim.flags)));
        }
        match (hash, self.sealed.get(&key(path))) {
            (None, Some(_)) if flags & MOUNT_VERIFIED == 0 => {
                Err(invalid("a sealed CIM is mounted verified, with its root hash"))
            }
            (Some(_), None) => Err(invalid(format!("{path} is not sealed"))),
            (Some(h), Some(sealed)) if h != sealed.as_slice() => {
                Err((0xC000_0483_u32 as i32, "integrity violation: the root hash does not match".into()))
            }
            _ => Ok(()),
        }
    }

    /// CimMergeMountImage(Verified): `images` = [merged, sources…] as (dir, name).
    pub fn merge_mount(&self, images: &[(String, String)], flags: u32, hash: Option<&[u8]>) -> Result<(), Refusal> {
        let Some(((path, name), sources)) = images.split_first() else { return Err(invalid("no images")) };
        let Some(cim) = self.cims.get(&cim_key(path, name)) else {
            return Err((E_NOT_FOUND, format!("no committed merged CIM {path}\\{name}")));
        };
        let given: Vec<String> = sources.iter().map(|(d, n)| cim_key(d, n)).collect();
        let merged: Vec<String> = cim.sources.iter().map(|s| key(s)).collect();
        if merged.is_empty() {
            return Err(invalid(format!("{path}\\{name} is not a merged CIM")));
        }
        if given != merged {
            return Err(invalid(format!("sources {given:?} are not the merge's {merged:?}, in its order")));
        }
        self.check_mount(path, cim, flags, hash)
    }
}
