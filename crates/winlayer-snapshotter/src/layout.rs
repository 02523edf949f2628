//! What a mode decides: the directories under the root and the mounts returned. The state
//! machine does not depend on it.
//!
//! | mode | snapshot directory | mounts |
//! |---|---|---|
//! | `windows` | `snapshots/<id>` (`Files/` for a new base layer, empty for extraction) | `windows-layer`, `parentLayerPaths=` |
//! | `cimfs` | `snapshots/<id>`, CIMs in `snapshots/cim-layers/<id>.cim` | `CimFS`, `cimpath=`, `parentLayerPaths=`, `parentCimPaths=` |
//! | `blockcim` | `snapshots/<id>`: a layer's `layer.vhd` (block CIM `layer.cim`), a scratch's `sandbox.vhdx`, the immediate parent's `merged.vhd` (`merged.cim`) | `BlockCIM`, `parentCimPaths=`, `blockCIMType=file`, `mergedCIMPath=` |
//! | `linux` | `snapshots/<id>/fs` (+ `work/` for actives) | `bind` or `overlay`, as containerd's overlay snapshotter |

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::private;
use crate::snapshot::{Kind, Mount, is_extraction_key};

/// The on-disk layout and mount shapes served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// containerd's legacy Windows snapshotter: `windows-layer` mounts for hcsshim.
    Windows,
    /// containerd's CimFS snapshotter: `CimFS` mounts.
    Cimfs,
    /// containerd's block CIM snapshotter (2.2+): `BlockCIM` mounts, one single-file block
    /// CIM per layer, a merged CIM for a scratch over more than one layer.
    Blockcim,
    /// containerd's overlay snapshotter: real mounts on Linux.
    Linux,
}

impl Mode {
    /// Every mode, for help texts.
    pub const ALL: [Mode; 4] = [Mode::Windows, Mode::Cimfs, Mode::Blockcim, Mode::Linux];

    /// The mode's name in flags and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Windows => "windows",
            Mode::Cimfs => "cimfs",
            Mode::Blockcim => "blockcim",
            Mode::Linux => "linux",
        }
    }

    /// The modes whose layers are CIMs and whose scratches come from the root's templates.
    pub fn is_cim(self) -> bool {
        matches!(self, Mode::Cimfs | Mode::Blockcim)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            Error::invalid_argument(format!("unknown mode {s:?}: expected windows, cimfs, blockcim or linux"))
        })
    }
}

/// containerd's scratch size labels: bytes (since 1.7), and the deprecated gigabytes (the only
/// one in 1.6), which the bytes label overrides.
pub const SIZE_BYTES_LABEL: &str = "containerd.io/snapshot/windows/rootfs.sizebytes";
/// The deprecated size label, in GiB.
pub const SIZE_GB_LABEL: &str = "containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb";
/// Asks for the utility VM's scratch (`vm/sandbox.vhdx`) too.
pub const UVM_SCRATCH_LABEL: &str = "containerd.io/snapshot/io.microsoft.vm.storage.scratch";

/// containerd's `blockcim` snapshotter settings, under the keys of its plugin configuration.
/// containerd does not record them with the root, and neither does winlayer: they apply to
/// what is written and mounted from the start on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockCimOptions {
    /// Layers and merged CIMs are verified CIMs, sealed when written (their root hash in
    /// `integrity_checksum` beside a layer's `layer.vhd`); mounts carry `enable_layer_integrity`.
    #[serde(default)]
    pub enable_layer_integrity: bool,
    /// A fixed-VHD footer follows every layer and merged CIM, so a utility VM can attach the
    /// file as a disk; mounts carry `append_vhd_footer`.
    #[serde(default)]
    pub append_vhd_footer: bool,
    /// Scratches are unformatted disks (formatted inside a utility VM): one 40 GiB template,
    /// a new disk for any other size, none smaller.
    #[serde(default)]
    pub unformatted_scratch: bool,
}

impl BlockCimOptions {
    /// Whether any is set.
    pub fn any(&self) -> bool {
        self.enable_layer_integrity || self.append_vhd_footer || self.unformatted_scratch
    }

    /// Refuses settings given for a mode other than `blockcim`.
    pub fn check(&self, mode: Mode) -> Result<()> {
        if mode != Mode::Blockcim && self.any() {
            return Err(Error::invalid_argument(format!(
                "enable_layer_integrity, append_vhd_footer and unformatted_scratch are blockcim mode's settings, \
                 not {mode} mode's"
            )));
        }
        Ok(())
    }

    /// The `winlayer serve` flags that set them.
    pub fn flags(&self) -> Vec<&'static str> {
        [
            (self.enable_layer_integrity, "--enable-layer-integrity"),
            (self.append_vhd_footer, "--append-vhd-footer"),
            (self.unformatted_scratch, "--unformatted-scratch"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect()
    }
}

/// `blockcim` mode: a layer's block file and the CIM inside it.
pub const LAYER_BLOCK: &str = "layer.vhd";
/// The CIM inside [`LAYER_BLOCK`].
pub const LAYER_CIM: &str = "layer.cim";
/// `blockcim` mode: the merged CIM's block file, in the directory of a scratch's immediate parent.
pub const MERGED_BLOCK: &str = "merged.vhd";
/// The CIM inside [`MERGED_BLOCK`].
pub const MERGED_CIM: &str = "merged.cim";
/// The scratch disk; in `blockcim` mode its presence tells a scratch from a layer.
pub const SANDBOX: &str = "sandbox.vhdx";
/// The smallest unformatted scratch containerd makes (ReFS's minimum).
pub const MIN_UNFORMATTED_SCRATCH: u64 = 40 << 30;

/// What a container's writable scratch needs in the Windows modes.
#[derive(Debug)]
pub struct ScratchRequest<'a> {
    /// The mode (the template differs: the base layer's `blank.vhdx` for `windows`, the root's
    /// shared `blank.vhdx` for `cimfs` and `blockcim`).
    pub mode: Mode,
    /// `blockcim` mode with unformatted scratches.
    pub unformatted: bool,
    /// The snapshotter root.
    pub root: &'a Path,
    /// The snapshot directory being built, where `sandbox.vhdx` goes.
    pub dir: &'a Path,
    /// The parent layer directories, immediate parent first, base layer last.
    pub parents: &'a [PathBuf],
    /// Requested size in bytes; 0 keeps the template's size.
    pub size_bytes: u64,
    /// Also make the utility VM's scratch, `vm/sandbox.vhdx`.
    pub utility_vm: bool,
}

/// Makes scratch disks (`sandbox.vhdx`): [`crate::scratch::VhdxScratch`] with the `vhdx`
/// crate; a Windows build may format them with Windows' own API instead.
pub trait ScratchProvider: Send + Sync {
    /// Makes what every scratch of `mode` will share under `root`, when the snapshotter
    /// starts (as containerd's CimFS snapshotter makes its templates at init); `unformatted`
    /// is `blockcim` mode's `unformatted_scratch`.
    fn prepare_root(&self, _root: &Path, _mode: Mode, _unformatted: bool) -> Result<()> {
        Ok(())
    }

    /// Creates the scratch files in `request.dir`.
    fn create(&self, request: &ScratchRequest<'_>) -> Result<()>;
}

/// Paths and mount shapes of one mode under one root.
pub struct Layout {
    mode: Mode,
    root: PathBuf,
    snapshots: PathBuf,
    /// containerd adds `index=off` to overlay mounts when the kernel enables the index.
    overlay_index_off: bool,
    /// `blockcim` mode's settings.
    block: BlockCimOptions,
}

/// Name of the directory holding every CIM in `cimfs` mode (CimFS wants them side by side).
pub const CIM_LAYERS: &str = "cim-layers";

impl Layout {
    /// The layout of `mode` under `root` (an absolute path).
    pub fn new(mode: Mode, root: &Path) -> Layout {
        Layout::with_block(mode, root, BlockCimOptions::default())
    }

    /// The layout of `mode` under `root`, with `blockcim` mode's settings.
    pub fn with_block(mode: Mode, root: &Path, block: BlockCimOptions) -> Layout {
        let overlay_index_off = mode == Mode::Linux
            && fs::read_to_string("/sys/module/overlay/parameters/index").is_ok_and(|v| v.trim() == "Y");
        Layout { mode, root: root.to_owned(), snapshots: root.join("snapshots"), overlay_index_off, block }
    }

    /// `blockcim` mode's settings.
    pub fn block(&self) -> BlockCimOptions {
        self.block
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `<root>/snapshots`.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    /// A snapshot's directory.
    pub fn dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(id.to_string())
    }

    /// Where a snapshot's directory is built before it is renamed into place.
    pub fn staging_dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(format!("new-{id}"))
    }

    /// Where a removed snapshot's directory waits for deletion.
    pub fn removed_dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(format!("rm-{id}"))
    }

    /// The `cimfs` mode's CIM of a layer.
    pub fn cim_path(&self, id: u64) -> PathBuf {
        self.snapshots.join(CIM_LAYERS).join(format!("{id}.cim"))
    }

    /// The `blockcim` mode's block file of a layer (holding [`LAYER_CIM`]).
    pub fn layer_block(&self, id: u64) -> PathBuf {
        self.dir(id).join(LAYER_BLOCK)
    }

    /// The `blockcim` mode's merged block file kept in layer `id`'s directory, for the
    /// scratches whose immediate parent it is (holding [`MERGED_CIM`]).
    pub fn merged_block(&self, id: u64) -> PathBuf {
        self.dir(id).join(MERGED_BLOCK)
    }

    /// Directories every root of this mode has.
    pub fn fixed_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.snapshots.clone()];
        if self.mode == Mode::Cimfs {
            dirs.push(self.snapshots.join(CIM_LAYERS));
        }
        dirs
    }

    /// What Usage measures for an active snapshot (and Commit records).
    pub fn usage_dir(&self, id: u64) -> PathBuf {
        match self.mode {
            Mode::Linux => self.dir(id).join("fs"),
            Mode::Windows | Mode::Cimfs | Mode::Blockcim => self.dir(id),
        }
    }

    /// Refuses commits the mode cannot do. containerd's CimFS snapshotter commits extraction
    /// snapshots only: turning a scratch into a CIM layer is not implemented there either.
    pub fn check_commit(&self, key: &str) -> Result<()> {
        if self.mode.is_cim() && !is_extraction_key(key) {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                format!(
                    "{} mode: committing scratch snapshot {key:?} to a read-only CIM layer is not supported",
                    self.mode
                ),
            ));
        }
        Ok(())
    }

    /// Fills the new snapshot directory `staging` (already created).
    pub fn build(
        &self,
        staging: &Path,
        kind: Kind,
        key: &str,
        parent_ids: &[u64],
        labels: &BTreeMap<String, String>,
        scratch: &dyn ScratchProvider,
    ) -> Result<()> {
        let mkdir = |path: PathBuf, mode: u32| -> Result<()> {
            fs::create_dir(&path).map_err(|e| Error::io("creating", &path, e))?;
            set_mode(&path, mode)
        };
        match self.mode {
            Mode::Linux => {
                let fs_dir = staging.join("fs");
                mkdir(fs_dir.clone(), 0o755)?;
                if kind == Kind::Active {
                    mkdir(staging.join("work"), 0o711)?;
                }
                // The new upper directory belongs to whoever owns the parent's root, so a
                // container sees its image's root owner (containerd's overlay does the same).
                if let Some(&parent) = parent_ids.first() {
                    copy_owner(&self.dir(parent).join("fs"), &fs_dir)?;
                }
                Ok(())
            }
            Mode::Windows | Mode::Cimfs | Mode::Blockcim => {
                if is_extraction_key(key) {
                    // The differ fills it.
                    return Ok(());
                }
                if parent_ids.is_empty() {
                    return match self.mode {
                        Mode::Windows => private::create_dir(&staging.join("Files")),
                        _ => Err(Error::invalid_argument(format!(
                            "{} mode: scratch snapshot {key:?} without any parent is not supported",
                            self.mode
                        ))),
                    };
                }
                let parents: Vec<PathBuf> = parent_ids.iter().map(|&id| self.dir(id)).collect();
                scratch.create(&ScratchRequest {
                    mode: self.mode,
                    unformatted: self.mode == Mode::Blockcim && self.block.unformatted_scratch,
                    root: &self.root,
                    dir: staging,
                    parents: &parents,
                    size_bytes: requested_scratch_size(labels)?,
                    utility_vm: labels.contains_key(UVM_SCRATCH_LABEL),
                })
            }
        }
    }

    /// The `blockcim` merge a new scratch over `parent_ids` needs: the merged block file and
    /// its sources (the parents' block files, immediate parent first), or `None` when the
    /// snapshot is no scratch over more than one layer.
    pub fn merge_for(&self, key: &str, parent_ids: &[u64]) -> Option<(PathBuf, Vec<PathBuf>)> {
        if self.mode != Mode::Blockcim || is_extraction_key(key) || parent_ids.len() < 2 {
            return None;
        }
        Some((self.merged_block(parent_ids[0]), parent_ids.iter().map(|&p| self.layer_block(p)).collect()))
    }

    /// The mounts of a snapshot, exactly as containerd's snapshotter of this mode returns them.
    pub fn mounts(&self, kind: Kind, id: u64, parent_ids: &[u64]) -> Vec<Mount> {
        let access = if kind == Kind::View { "ro" } else { "rw" };
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        match self.mode {
            Mode::Linux => {
                let upper = |id: u64| path(self.dir(id).join("fs"));
                let bind = |source: String, access: &str| Mount {
                    kind: "bind".into(),
                    source,
                    options: vec![access.into(), "rbind".into()],
                };
                if parent_ids.is_empty() {
                    return vec![bind(upper(id), access)];
                }
                let mut options = Vec::new();
                if self.overlay_index_off {
                    options.push("index=off".to_owned());
                }
                if kind == Kind::Active {
                    options.push(format!("workdir={}", path(self.dir(id).join("work"))));
                    options.push(format!("upperdir={}", upper(id)));
                } else if parent_ids.len() == 1 {
                    return vec![bind(upper(parent_ids[0]), "ro")];
                }
                let lower: Vec<String> = parent_ids.iter().map(|&p| upper(p)).collect();
                options.push(format!("lowerdir={}", lower.join(":")));
                vec![Mount { kind: "overlay".into(), source: "overlay".into(), options }]
            }
            Mode::Blockcim => {
                // No ro/rw: what a BlockCIM mount is, its source says (a scratch directory, or
                // a layer's CIM inside its block file).
                let cim = |id: u64| path(self.layer_block(id).join(LAYER_CIM));
                let parents: Vec<String> = parent_ids.iter().map(|&p| cim(p)).collect();
                let mut options = vec![format!("parentCimPaths={}", go_json(&parents)), "blockCIMType=file".into()];
                if self.block.enable_layer_integrity {
                    options.push("enable_layer_integrity".into());
                }
                if self.block.append_vhd_footer {
                    options.push("append_vhd_footer".into());
                }
                let source = if self.dir(id).join(SANDBOX).exists() {
                    if parent_ids.len() > 1 {
                        options
                            .push(format!("mergedCIMPath={}", path(self.merged_block(parent_ids[0]).join(MERGED_CIM))));
                    }
                    path(self.dir(id))
                } else {
                    cim(id)
                };
                vec![Mount { kind: "BlockCIM".into(), source, options }]
            }
            Mode::Windows | Mode::Cimfs => {
                let mut options = vec![access.to_owned()];
                if self.mode == Mode::Cimfs {
                    options.push(format!("cimpath={}", path(self.cim_path(id))));
                }
                if !parent_ids.is_empty() {
                    let dirs: Vec<String> = parent_ids.iter().map(|&p| path(self.dir(p))).collect();
                    options.push(format!("parentLayerPaths={}", go_json(&dirs)));
                    if self.mode == Mode::Cimfs {
                        let cims: Vec<String> = parent_ids.iter().map(|&p| path(self.cim_path(p))).collect();
                        options.push(format!("parentCimPaths={}", go_json(&cims)));
                    }
                }
                let kind = if self.mode == Mode::Windows { "windows-layer" } else { "CimFS" };
                vec![Mount { kind: kind.into(), source: path(self.dir(id)), options }]
            }
        }
    }
}

/// A JSON array of strings as Go's `json.Marshal` writes it (HTML characters escaped).
fn go_json(items: &[String]) -> String {
    serde_json::to_string(items)
        .expect("strings always serialize")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The scratch size asked for by labels, in bytes (0: the template's size).
pub fn requested_scratch_size(labels: &BTreeMap<String, String>) -> Result<u64> {
    let parse = |label: &str, value: &str, max: u64| {
        value.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(|| {
            Error::invalid_argument(format!("label {label:?}={value:?} is not an unsigned integer up to {max}"))
        })
    };
    // Both are read, in containerd's order: a malformed one is an error even when the other wins.
    let mut size = 0;
    if let Some(gb) = labels.get(SIZE_GB_LABEL) {
        // containerd parses gigabytes as a 32-bit number.
        size = parse(SIZE_GB_LABEL, gb, u64::from(u32::MAX))? << 30;
    }
    if let Some(bytes) = labels.get(SIZE_BYTES_LABEL) {
        size = parse(SIZE_BYTES_LABEL, bytes, u64::MAX)?;
    }
    Ok(size)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io("setting mode of", path, e))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    // Windows directories inherit the root's ACL, which the service owns.
    Ok(())
}

#[cfg(unix)]
fn copy_owner(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(from).map_err(|e| Error::io("reading owner of parent", from, e))?;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(|e| Error::io("changing owner of", to, e))
}

#[cfg(not(unix))]
fn copy_owner(_: &Path, _: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn windows_mounts_match_containerd() {
        let layout = Layout::new(Mode::Windows, Path::new("/r"));
        assert_eq!(
            layout.mounts(Kind::Active, 3, &[2, 1]),
            [Mount {
                kind: "windows-layer".into(),
                source: "/r/snapshots/3".into(),
                options: vec!["rw".into(), r#"parentLayerPaths=["/r/snapshots/2","/r/snapshots/1"]"#.into()],
            }]
        );
        assert_eq!(
            layout.mounts(Kind::View, 4, &[]),
            [Mount { kind: "windows-layer".into(), source: "/r/snapshots/4".into(), options: vec!["ro".into()] }]
        );
    }

    #[test]
    fn cimfs_mounts_match_containerd() {
        let layout = Layout::new(Mode::Cimfs, Path::new("/r"));
        assert_eq!(
            layout.mounts(Kind::Active, 5, &[]),
            [Mount {
                kind: "CimFS".into(),
                source: "/r/snapshots/5".into(),
                options: vec!["rw".into(), "cimpath=/r/snapshots/cim-layers/5.cim".into()],
            }]
        );
        assert_eq!(
            layout.mounts(Kind::View, 6, &[5, 2])[0].options,
            [
                "ro",
                "cimpath=/r/snapshots/cim-layers/6.cim",
                r#"parentLayerPaths=["/r/snapshots/5","/r/snapshots/2"]"#,
                r#"parentCimPaths=["/r/snapshots/cim-layers/5.cim","/r/snapshots/cim-layers/2.cim"]"#,
            ]
        );
    }

    /// containerd 2.2's blockcim snapshotter: type `BlockCIM` with no ro/rw, then
    /// `parentCimPaths=` (always, `[]` without parents), `blockCIMType=file`, the two
    /// settings' flags when set, and `mergedCIMPath=` (the immediate parent's merged CIM) for a
    /// scratch over more than one layer; the source is the directory of a scratch (one with
    /// `sandbox.vhdx`) or a layer's CIM inside its block file.
    #[test]
    fn blockcim_mounts_match_containerd() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path().display().to_string();
        let plain = Layout::new(Mode::Blockcim, tmp.path());
        let cim = |id: u64| format!("{r}/snapshots/{id}/layer.vhd/layer.cim");
        // An extraction snapshot (a layer being written) and a committed layer.
        assert_eq!(
            plain.mounts(Kind::Active, 1, &[]),
            [Mount {
                kind: "BlockCIM".into(),
                source: cim(1),
                options: vec!["parentCimPaths=[]".into(), "blockCIMType=file".into()],
            }]
        );
        assert_eq!(plain.mounts(Kind::Committed, 2, &[1])[0].options[0], format!("parentCimPaths=[\"{}\"]", cim(1)));
        // Scratches and views: sandbox.vhdx makes the snapshot directory the source.
        for id in [3, 4] {
            fs::create_dir_all(tmp.path().join("snapshots").join(id.to_string())).unwrap();
            fs::write(tmp.path().join(format!("snapshots/{id}/sandbox.vhdx")), b"").unwrap();
        }
        let one = plain.mounts(Kind::Active, 3, &[1]);
        assert_eq!((one[0].kind.as_str(), one[0].source.clone()), ("BlockCIM", format!("{r}/snapshots/3")));
        assert_eq!(one[0].options, [format!("parentCimPaths=[\"{}\"]", cim(1)), "blockCIMType=file".into()]);
        let all = BlockCimOptions { enable_layer_integrity: true, append_vhd_footer: true, unformatted_scratch: true };
        let verified = Layout::with_block(Mode::Blockcim, tmp.path(), all);
        for kind in [Kind::Active, Kind::View] {
            let m = verified.mounts(kind, 4, &[2, 1]);
            assert_eq!(m[0].source, format!("{r}/snapshots/4"));
            assert_eq!(
                m[0].options,
                [
                    format!("parentCimPaths=[\"{}\",\"{}\"]", cim(2), cim(1)),
                    "blockCIMType=file".into(),
                    "enable_layer_integrity".into(),
                    "append_vhd_footer".into(),
                    format!("mergedCIMPath={r}/snapshots/2/merged.vhd/merged.cim"),
                ]
            );
        }
        // A layer over two others has no merged CIM of its own: only scratches mount one.
        assert_eq!(verified.mounts(Kind::Committed, 5, &[2, 1])[0].options.len(), 4);
        assert_eq!(verified.mounts(Kind::Committed, 5, &[2, 1])[0].source, cim(5));
    }

    #[test]
    fn blockcim_merges_only_for_scratches_over_more_than_one_layer() {
        let layout = Layout::new(Mode::Blockcim, Path::new("/r"));
        let block = |id: u64| PathBuf::from(format!("/r/snapshots/{id}/layer.vhd"));
        assert_eq!(
            layout.merge_for("container", &[3, 2, 1]),
            Some((PathBuf::from("/r/snapshots/3/merged.vhd"), vec![block(3), block(2), block(1)]))
        );
        assert_eq!(layout.merge_for("container", &[1]), None);
        assert_eq!(layout.merge_for("default/9/extract-9 sha256:a", &[2, 1]), None);
        assert_eq!(Layout::new(Mode::Cimfs, Path::new("/r")).merge_for("container", &[2, 1]), None);
    }

    #[test]
    fn linux_mounts_match_containerd_overlay() {
        let mut layout = Layout::new(Mode::Linux, Path::new("/r"));
        layout.overlay_index_off = false;
        let m = layout.mounts(Kind::Active, 1, &[]);
        assert_eq!((m[0].kind.as_str(), m[0].source.as_str()), ("bind", "/r/snapshots/1/fs"));
        assert_eq!(m[0].options, ["rw", "rbind"]);
        assert_eq!(layout.mounts(Kind::View, 1, &[])[0].options, ["ro", "rbind"]);
        let m = layout.mounts(Kind::View, 3, &[2]);
        assert_eq!(
            (m[0].source.as_str(), &m[0].options[..]),
            ("/r/snapshots/2/fs", &["ro", "rbind"].map(String::from)[..])
        );
        let m = layout.mounts(Kind::Active, 3, &[2, 1]);
        assert_eq!(m[0].kind, "overlay");
        assert_eq!(
            m[0].options,
            [
                "workdir=/r/snapshots/3/work",
                "upperdir=/r/snapshots/3/fs",
                "lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs"
            ]
        );
        assert_eq!(layout.mounts(Kind::View, 3, &[2, 1])[0].options, ["lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs"]);
    }

    #[test]
    fn go_json_escapes_like_go() {
        assert_eq!(go_json(&["a&b<c>".into(), "C:\\x".into()]), r#"["a\u0026b\u003cc\u003e","C:\\x"]"#);
    }

    #[test]
    fn size_labels() {
        assert_eq!(requested_scratch_size(&labels(&[])).unwrap(), 0);
        assert_eq!(requested_scratch_size(&labels(&[(SIZE_GB_LABEL, "2")])).unwrap(), 2 << 30);
        assert_eq!(requested_scratch_size(&labels(&[(SIZE_GB_LABEL, "2"), (SIZE_BYTES_LABEL, "4096")])).unwrap(), 4096);
        for bad in
            [(SIZE_BYTES_LABEL, "-1"), (SIZE_BYTES_LABEL, "1e9"), (SIZE_GB_LABEL, "4294967296"), (SIZE_GB_LABEL, "")]
        {
            let err = requested_scratch_size(&labels(&[bad])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.message().contains(bad.0), "{err}");
        }
    }

    #[test]
    fn mode_names_round_trip() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>().unwrap(), mode);
        }
        assert_eq!("lcow".parse::<Mode>().unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
}
