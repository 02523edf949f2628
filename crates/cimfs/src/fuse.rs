//! A read-only FUSE mount of a CIM's merged view (Linux): FileIDs are inode numbers, so the
//! names of a hard-linked file are one inode; symlinks and junctions are symlinks (targets on
//! the container's drive made relative, as `extract` does); Windows metadata is in
//! `user.windows.*` extended attributes. Lookups are case-insensitive, as on Windows.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEntry, ReplyOpen, ReplyXattr, Request,
};
use winlayer_core::reparse::Link;
use winlayer_core::{Error, FileTime, Result};

use crate::extract::posix_target;
use crate::format::FileRecord;
use crate::reader::{Cim, FileId};

/// The image never changes while mounted: the kernel may keep names and attributes for as
/// long as the mount lives.
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Largest read the kernel is asked to send (it caps this at what it supports).
const MAX_READ: u32 = 1 << 20;

/// Request loops serving the mount at once (requests are read-only, so they run in parallel).
const WORKERS: usize = 2;

/// What the mount keeps per inode, read once at mount time: the record, link count, parent,
/// for links the POSIX target, for directories the entries in collation order.
struct Node {
    record: FileRecord,
    nlink: u32,
    parent: u64,
    link: Option<String>,
    entries: Vec<(Box<str>, u64)>,
}

/// A mounted CIM.
pub struct CimFs {
    cim: Cim,
    nodes: HashMap<u64, Node>,
    uid: u32,
    gid: u32,
    /// The kernel opens files and directories without asking (set at init when it can): an
    /// image never changes, so there is nothing to decide per open, and the page cache and
    /// directory cache are kept across opens.
    no_open: bool,
}

fn system_time(ticks: u64) -> SystemTime {
    let unix = i64::try_from(ticks)
        .ok()
        .and_then(FileTime::from_ticks)
        .map_or(0, |t| t.ticks() - FileTime::UNIX_EPOCH.ticks());
    let d = Duration::from_nanos(unix.unsigned_abs().saturating_mul(100));
    if unix >= 0 { SystemTime::UNIX_EPOCH + d } else { SystemTime::UNIX_EPOCH - d }
}

impl CimFs {
    /// Indexes every name of `cim` (records, link counts, parents, link targets, directory
    /// entries); files are owned by `uid`/`gid`.
    pub fn new(cim: Cim, uid: u32, gid: u32) -> Result<CimFs> {
        let root = cim.root();
        let ino = |id: FileId| Self::ino_of(root, id);
        let mut nodes: HashMap<u64, Node> = HashMap::new();
        let record = cim.record(root)?;
        nodes.insert(1, Node { record, nlink: 2, parent: 1, link: None, entries: Vec::new() });
        let mut dirs: HashMap<Vec<String>, u64> = HashMap::from([(Vec::new(), 1)]);
        cim.walk(|names, id, r| {
            let parent = dirs[&names[..names.len() - 1]];
            let name = names.last().expect("a name").as_str();
            nodes.get_mut(&parent).expect("parent indexed").entries.push((name.into(), ino(id)));
            let link = match cim.reparse(r)? {
                Some(buf) => Link::from_reparse_buffer(&buf).ok().map(|l| posix_target(names, &l.target)),
                None => None,
            };
            if r.is_dir() && link.is_none() {
                dirs.insert(names.to_vec(), ino(id));
                nodes.get_mut(&parent).expect("parent indexed").nlink += 1;
                nodes.insert(ino(id), Node { record: *r, nlink: 2, parent, link: None, entries: Vec::new() });
            } else {
                let node = Node { record: *r, nlink: 0, parent, link, entries: Vec::new() };
                nodes.entry(ino(id)).or_insert(node).nlink += 1;
            }
            Ok(())
        })?;
        let upcase = cim.upcase();
        for node in nodes.values_mut() {
            node.entries.sort_by(|a, b| upcase.chars(&a.0).cmp(upcase.chars(&b.0)));
        }
        Ok(CimFs { cim, nodes, uid, gid, no_open: false })
    }

    /// Inode numbers are FileIDs, with the root's swapped with 1 (FUSE's root inode).
    fn ino_of(root: FileId, id: FileId) -> u64 {
        match id {
            _ if id == root => 1,
            1 => root as u64,
            _ => id as u64,
        }
    }

    fn kind(node: &Node) -> FileType {
        match node {
            Node { link: Some(_), .. } => FileType::Symlink,
            _ if node.record.is_dir() => FileType::Directory,
            _ => FileType::RegularFile,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let node = &self.nodes[&ino];
        let (kind, r) = (Self::kind(node), &node.record);
        let (size, perm) = match kind {
            FileType::Symlink => (node.link.as_ref().map_or(0, |l| l.len() as u64), 0o777),
            FileType::Directory => (r.default_stream.len(), 0o555),
            _ => (r.default_stream.len(), 0o444),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: system_time(r.last_access_time.get()),
            mtime: system_time(r.last_write_time.get()),
            ctime: system_time(r.change_time.get()),
            crtime: system_time(r.creation_time.get()),
            kind,
            perm,
            nlink: node.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The node of an inode, or the errno to answer with.
    fn node(&self, ino: INodeNo) -> std::result::Result<&Node, Errno> {
        self.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    /// A directory's listing from entry `offset` on: `.`, `..`, then the entries in collation
    /// order, each with the offset of the one after it.
    fn listing(&self, ino: INodeNo, offset: u64) -> std::result::Result<Vec<(u64, u64, FileType, &str)>, Errno> {
        let dir = match self.node(ino) {
            Ok(n) if n.record.is_dir() => n,
            Ok(_) => return Err(Errno::ENOTDIR),
            Err(e) => return Err(e),
        };
        let dots = [(ino.0, FileType::Directory, "."), (dir.parent, FileType::Directory, "..")];
        let children = dir.entries.iter().map(|(name, child)| (*child, Self::kind(&self.nodes[child]), &**name));
        Ok(dots
            .into_iter()
            .chain(children)
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (child, kind, name))| (i as u64 + 1, child, kind, name))
            .collect())
    }

    fn failed(&self, e: Error) -> Errno {
        eprintln!("winlayer cim mount: {e}");
        Errno::EIO
    }
}

impl Filesystem for CimFs {
    /// Asks for what makes a read-only image cheap to serve; a kernel without one of these
    /// serves the mount as before.
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Directory listings carry attributes, so the names listed need no lookups; symlink
        // targets stay cached; lookups in one directory run in parallel.
        for flag in [InitFlags::FUSE_DO_READDIRPLUS, InitFlags::FUSE_CACHE_SYMLINKS, InitFlags::FUSE_PARALLEL_DIROPS] {
            let _ = config.add_capabilities(flag);
        }
        let no_open = InitFlags::FUSE_NO_OPEN_SUPPORT | InitFlags::FUSE_NO_OPENDIR_SUPPORT;
        self.no_open = config.add_capabilities(no_open).is_ok();
        // The page count fuser asks for follows the larger of these two.
        if let Err(nearest) = config.set_max_write(MAX_READ) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_READ) {
            let _ = config.set_max_readahead(nearest);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.node(parent).and_then(|dir| {
            if !dir.record.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let name = name.to_str().ok_or(Errno::ENOENT)?;
            let upcase = self.cim.upcase();
            let at = dir.entries.binary_search_by(|(n, _)| upcase.chars(n).cmp(upcase.chars(name)));
            at.map(|i| dir.entries[i].1).map_err(|_| Errno::ENOENT)
        });
        match found {
            Ok(ino) => reply.entry(&TTL, &self.attr(ino), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(_) => reply.attr(&TTL, &self.attr(ino.0)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.nodes.get(&ino.0).and_then(|n| n.link.as_ref()) {
            Some(target) => reply.data(target.as_bytes()),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            // The kernel takes this to mean "open without asking from now on, keeping the cache".
            Ok(_) if self.no_open => reply.error(Errno::ENOSYS),
            Ok(n) if n.record.is_dir() => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Each worker reads into a buffer of its own, kept between requests.
        thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
        BUF.with_borrow_mut(|buf| {
            let got = self.node(ino).and_then(|n| {
                let stream = n.record.default_stream;
                let want = (size as u64).min(stream.len().saturating_sub(offset)) as usize;
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                self.cim.read_stream(&stream, offset, &mut buf[..want]).map_err(|e| self.failed(e))
            });
            match got {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(e),
            }
        })
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            Ok(_) if self.no_open => reply.error(Errno::ENOSYS),
            Ok(n) if n.record.is_dir() => reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        match self.listing(ino, offset) {
            Ok(entries) => {
                for (next, child, kind, name) in entries {
                    if reply.add(INodeNo(child), next, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        match self.listing(ino, offset) {
            Ok(entries) => {
                for (next, child, _, name) in entries {
                    if reply.add(INodeNo(child), next, name, &TTL, &self.attr(child), Generation(0)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = self.node(ino).and_then(|n| {
            let all = self.cim.xattrs(&n.record).map_err(|e| self.failed(e))?;
            all.into_iter().find(|(n, _)| OsStr::new(n) == name).map(|(_, v)| v).ok_or(Errno::ENODATA)
        });
        match value {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() <= size as usize => reply.data(&v),
            Ok(_) => reply.error(Errno::ERANGE),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = self.node(ino).and_then(|n| {
            let all = self.cim.xattrs(&n.record).map_err(|e| self.failed(e))?;
            Ok(all.into_iter().flat_map(|(n, _)| n.into_bytes().into_iter().chain([0])).collect::<Vec<u8>>())
        });
        match names {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() <= size as usize => reply.data(&v),
            Ok(_) => reply.error(Errno::ERANGE),
            Err(e) => reply.error(e),
        }
    }
}

/// The mount options: read-only, named after the image, served by [`WORKERS`] threads.
fn config(cim: &Path) -> Config {
    let mut config = Config::default();
    config.n_threads = Some(WORKERS);
    config.clone_fd = true;
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::FSName(cim.display().to_string()),
        MountOption::Subtype("cimfs".into()),
    ];
    config
}

fn prepare(cim: Cim, mountpoint: &Path) -> Result<(CimFs, Config)> {
    let owner = std::fs::metadata(mountpoint).map_err(|e| Error::io(format!("reading {}", mountpoint.display()), e))?;
    let config = config(cim.path());
    Ok((CimFs::new(cim, owner.uid(), owner.gid())?, config))
}

/// Mounts `cim` read-only on `mountpoint` and serves it until it is unmounted. Files are owned
/// by the mountpoint's owner.
pub fn mount(cim: Cim, mountpoint: &Path) -> Result<()> {
    let (fs, config) = prepare(cim, mountpoint)?;
    fuser::mount(fs, mountpoint, &config).map_err(|e| Error::io(format!("mounting on {}", mountpoint.display()), e))
}

/// Mounts `cim` on `mountpoint` from a background thread; dropping the session unmounts it.
pub fn spawn(cim: Cim, mountpoint: &Path) -> Result<fuser::BackgroundSession> {
    let (fs, config) = prepare(cim, mountpoint)?;
    fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|e| Error::io(format!("mounting on {}", mountpoint.display()), e))
}
