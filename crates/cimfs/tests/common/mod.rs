//! Helpers shared by the integration tests: generated layers, CIM creation and export.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cimfs::{Changes, Cim, CimSource, CimWriter, Summary};
use wcow_tar::{Input, LayerReader, Mode};
use winlayer_core::{Collector, LayerSource};

/// The project's generator of Windows layer test data, `scripts/gen-layer.py`.
pub fn generator() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-layer.py")).to_path_buf()
}

/// Runs the layer generator (through WINLAYER_PYTHON, default python3).
pub fn gen_layer(out: &Path, args: &[&str]) -> PathBuf {
    let python = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .arg(generator())
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("running {python} (set WINLAYER_PYTHON): {e}"));
    assert!(status.success(), "scripts/gen-layer.py {args:?} failed");
    out.to_path_buf()
}

/// Writes `cim` from a layer tar, forked from `parent` when given.
pub fn create(tar: &Path, cim: &Path, parent: Option<&Path>) -> Summary {
    let mut writer = CimWriter::create(cim, parent).unwrap();
    LayerReader::new(Input::open(tar).unwrap(), Mode::Strict).send_to(&mut writer).unwrap();
    writer.finish().unwrap()
}

/// The canonical tar of a layer tar.
pub fn canonical(tar: &Path) -> Vec<u8> {
    let sorted = wcow_tar::canonicalize(Input::open(tar).unwrap()).unwrap();
    wcow_tar::write_sorted(sorted, Vec::new()).unwrap()
}

/// The merged view of a CIM as a canonical tar.
pub fn export(cim: &Path) -> Vec<u8> {
    let cim = Cim::open(cim).unwrap();
    let mut collector = Collector::new();
    CimSource::new(&cim).send_to(&mut collector).unwrap();
    wcow_tar::write_sorted(collector.finish().unwrap(), Vec::new()).unwrap()
}

/// What an image changes in the view of the image it was forked from (found beside it), as a
/// layer read back from its canonical tar (so it also obeys every layer rule).
pub fn changes(cim: &Path) -> Layer {
    let cim = Cim::open(cim).unwrap();
    let parent = cim.find_parent().unwrap().map(|p| Cim::open(&p).unwrap());
    let mut collector = Collector::new();
    Changes::new(&cim, parent.as_ref()).send_to(&mut collector).unwrap();
    let tar = wcow_tar::write_sorted(collector.finish().unwrap(), Vec::new()).unwrap();
    Layer::from_tar_bytes(&tar)
}

/// Entries of a tar, one line each (kind, path, attributes, size, link target), for readable diffs.
pub fn listing(tar: &[u8]) -> Vec<String> {
    wcow_tar::reader::read_all(wcow_tar::reader::from_bytes(tar.to_vec()).unwrap())
        .unwrap()
        .into_iter()
        .map(|(e, d)| {
            format!("{} {} {:#x} {} {:?} {:?}", e.kind.name(), e.path, e.meta.attributes, d.len(), e.kind, e.meta)
        })
        .collect()
}

use std::collections::BTreeMap;
use std::sync::Arc;

use winlayer_core::ea::ExtendedAttribute;
use winlayer_core::reparse::Link;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Data, Entry, EntryKind, FileTime, LayerPath, LayerSink, Metadata, Origin, attrs};

pub fn p(s: &str) -> LayerPath {
    LayerPath::parse(s).unwrap()
}

/// A hand-made layer: entries with their data, in the order given.
#[derive(Default, Clone)]
pub struct Layer {
    pub entries: Vec<(Entry, Vec<u8>)>,
    clock: i64,
}

impl Layer {
    /// Metadata with distinct, fractional times and a real security descriptor.
    pub fn meta(&mut self, attributes: u32) -> Metadata {
        self.clock += 1;
        let t = |k: i64| FileTime::from_unix(1_600_000_000 + self.clock * 100 + k, 123_456_700 + k as u32).unwrap();
        let mut m = Metadata::with_times(attributes, t(0));
        (m.creation, m.last_access, m.change) = (t(1), t(2), t(3));
        let sddl =
            if self.clock % 2 == 0 { "O:BAG:SYD:(A;;FA;;;BA)(A;;0x1200a9;;;BU)" } else { "O:SYG:SYD:(A;OICI;FA;;;SY)" };
        m.security = Some(Arc::from(SecurityDescriptor::from_sddl(sddl).unwrap().to_bytes()));
        m
    }
    pub fn push(&mut self, path: &str, kind: EntryKind, meta: Metadata, data: &[u8]) -> &mut Self {
        self.entries.push((Entry { path: p(path), kind, meta }, data.to_vec()));
        self
    }
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let m = self.meta(attrs::DIRECTORY);
        self.push(path, EntryKind::Directory, m, b"")
    }
    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let m = self.meta(attrs::ARCHIVE);
        self.push(path, EntryKind::File { size: data.len() as u64 }, m, data)
    }
    pub fn file_with(&mut self, path: &str, data: &[u8], attributes: u32, eas: &[(&str, &[u8])]) -> &mut Self {
        let mut m = self.meta(attributes);
        m.eas = eas.iter().map(|(n, v)| ExtendedAttribute { name: n.as_bytes().to_vec(), value: v.to_vec() }).collect();
        m.eas.sort();
        self.push(path, EntryKind::File { size: data.len() as u64 }, m, data)
    }
    pub fn stream(&mut self, owner: &str, name: &str, data: &[u8]) -> &mut Self {
        self.push(owner, EntryKind::Stream { name: name.into(), size: data.len() as u64 }, Metadata::default(), data)
    }
    pub fn link(&mut self, path: &str, target: &str) -> &mut Self {
        let m = self.meta(attrs::ARCHIVE);
        self.push(path, EntryKind::HardLink { target: p(target) }, Metadata { security: None, ..m }, b"")
    }
    pub fn symlink(&mut self, path: &str, target: &str, junction: bool, dir: bool) -> &mut Self {
        let m = self.meta(attrs::REPARSE_POINT | if dir { attrs::DIRECTORY } else { attrs::ARCHIVE });
        self.push(path, EntryKind::Symlink(Link { target: target.into(), junction }), m, b"")
    }
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        self.push(path, EntryKind::Whiteout, Metadata::default(), b"")
    }
    /// A layer read from a tar.
    pub fn from_tar(tar: &Path) -> Layer {
        Layer { entries: wcow_tar::reader::read_all(Input::open(tar).unwrap()).unwrap(), clock: 0 }
    }
    /// A layer read from tar bytes.
    pub fn from_tar_bytes(tar: &[u8]) -> Layer {
        let input = wcow_tar::reader::from_bytes(tar.to_vec()).unwrap();
        Layer { entries: wcow_tar::reader::read_all(input).unwrap(), clock: 0 }
    }
    /// The layer as a tar, in the entries' order.
    pub fn tar(&self) -> Vec<u8> {
        let mut w = wcow_tar::TarWriter::new(Vec::new());
        self.send(&mut w);
        w.finish().unwrap()
    }
    pub fn send(&self, sink: &mut dyn LayerSink) {
        for (e, d) in &self.entries {
            let mut r: &[u8] = d;
            sink.entry(e, &mut Data::from_reader(&mut r, d.len() as u64, Origin::Stream)).unwrap();
        }
    }
}

/// Writes `cim` from a hand-made layer, forked from `parent` when given.
pub fn create_layer(layer: &Layer, cim: &Path, parent: Option<&Path>) -> Summary {
    let mut writer = CimWriter::create(cim, parent).unwrap();
    layer.send(&mut writer);
    writer.finish().unwrap()
}

/// An object of the reference model: what a path shows after layers are applied.
#[derive(Clone)]
pub struct Object {
    pub kind: EntryKind,
    pub meta: Metadata,
    pub data: Vec<u8>,
    pub streams: BTreeMap<String, Vec<u8>>,
}

/// The reference model of layers applied in order (OCI whiteouts: a layer's whiteouts delete
/// from the layers below it; a directory over a directory keeps its children, anything else
/// replaces the path; hard links name the file at their target in this layer, else below).
#[derive(Default, Clone)]
pub struct Model {
    names: BTreeMap<String, (LayerPath, usize)>,
    objects: Vec<Object>,
}

impl Model {
    fn remove_tree(&mut self, folded: &str) {
        let below = format!("{folded}/");
        self.names.retain(|k, _| k != folded && !k.starts_with(&below));
    }

    pub fn apply(&mut self, layer: &Layer) {
        let before = self.names.clone();
        for (e, _) in &layer.entries {
            if e.kind == EntryKind::Whiteout {
                self.remove_tree(&e.path.folded());
            }
        }
        let mut added: BTreeMap<String, usize> = BTreeMap::new();
        let mut last = None;
        for (e, d) in &layer.entries {
            let folded = e.path.folded();
            match &e.kind {
                EntryKind::Directory | EntryKind::File { .. } | EntryKind::Symlink(_) => {
                    let is_dir = e.kind == EntryKind::Directory;
                    let object = Object {
                        kind: e.kind.clone(),
                        meta: e.meta.clone(),
                        data: d.clone(),
                        streams: BTreeMap::new(),
                    };
                    let existing_dir =
                        self.names.get(&folded).filter(|(_, o)| self.objects[*o].kind == EntryKind::Directory);
                    if !(is_dir && existing_dir.is_some()) {
                        self.remove_tree(&folded);
                    } else {
                        // The new spelling of a directory's name shows in its children's paths.
                        let below = format!("{folded}/");
                        let depth = e.path.components().count();
                        for (k, (path, _)) in self.names.iter_mut() {
                            if k.starts_with(&below) {
                                let rest: Vec<&str> = path.components().skip(depth).collect();
                                *path = p(&format!("{}/{}", e.path, rest.join("/")));
                            }
                        }
                    }
                    self.objects.push(object);
                    let id = self.objects.len() - 1;
                    self.names.insert(folded.clone(), (e.path.clone(), id));
                    added.insert(folded, id);
                    last = Some(id);
                }
                EntryKind::Stream { name, .. } => {
                    self.objects[last.unwrap()].streams.insert(name.clone(), d.clone());
                }
                EntryKind::HardLink { target } => {
                    let t = target.folded();
                    let id = added.get(&t).copied().or_else(|| before.get(&t).map(|(_, id)| *id)).expect("link target");
                    self.remove_tree(&folded);
                    self.names.insert(folded.clone(), (e.path.clone(), id));
                    added.insert(folded, id);
                    last = None;
                }
                _ => last = None,
            }
        }
    }

    /// The model as a canonical layer tar.
    pub fn canonical_tar(&self) -> Vec<u8> {
        let mut c = Collector::new();
        let mut first: BTreeMap<usize, LayerPath> = BTreeMap::new();
        let mut paths: Vec<&(LayerPath, usize)> = self.names.values().collect();
        paths.sort_by(|a, b| a.0.tree_cmp(&b.0));
        for (path, id) in paths {
            let o = &self.objects[*id];
            let mut meta = o.meta.clone();
            if meta.attributes & !attrs::DIRECTORY == 0 && o.kind != EntryKind::Directory {
                meta.attributes = attrs::NORMAL;
            }
            meta.attributes &= 0x227 | attrs::DIRECTORY | attrs::REPARSE_POINT | attrs::NORMAL;
            let entry = match first.get(id) {
                Some(t) if o.kind != EntryKind::Directory => Entry {
                    path: path.clone(),
                    kind: EntryKind::HardLink { target: t.clone() },
                    meta: Metadata { security: None, eas: Vec::new(), ..meta },
                },
                _ => {
                    first.insert(*id, path.clone());
                    Entry { path: path.clone(), kind: o.kind.clone(), meta }
                }
            };
            let is_link = matches!(entry.kind, EntryKind::HardLink { .. });
            let data: &[u8] = if is_link { b"" } else { &o.data };
            let mut r = data;
            c.entry(&entry, &mut Data::from_reader(&mut r, data.len() as u64, Origin::Stream)).unwrap();
            if !is_link {
                for (name, d) in &o.streams {
                    let mut r: &[u8] = d;
                    let e = Entry {
                        path: path.clone(),
                        kind: EntryKind::Stream { name: name.clone(), size: d.len() as u64 },
                        meta: Metadata::default(),
                    };
                    c.entry(&e, &mut Data::from_reader(&mut r, d.len() as u64, Origin::Stream)).unwrap();
                }
            }
        }
        wcow_tar::write_sorted(c.finish().unwrap(), Vec::new()).unwrap()
    }

    /// Object number `id`.
    pub fn object(&self, id: usize) -> &Object {
        &self.objects[id]
    }

    /// Paths (folded) of the model with their object number, for mount checks.
    pub fn paths(&self) -> Vec<(LayerPath, usize, bool, Vec<u8>, Metadata)> {
        self.names
            .values()
            .map(|(p, id)| {
                let o = &self.objects[*id];
                (p.clone(), *id, o.kind == EntryKind::Directory, o.data.clone(), o.meta.clone())
            })
            .collect()
    }
}

/// Asserts two canonical tars are equal, showing a readable diff when not.
pub fn assert_same_tar(want: &[u8], got: &[u8]) {
    if want != got {
        let (w, g) = (listing(want), listing(got));
        for (a, b) in w.iter().zip(&g) {
            assert_eq!(a, b);
        }
        assert_eq!(w.len(), g.len(), "entry counts differ");
        panic!("canonical tars differ in bytes only");
    }
}

/// Four layers: additions, replacements (file over file, file over directory, directory over
/// file), deletions of files and whole trees, a deleted and re-created directory, hard links
/// inside a layer and to files of lower layers (including a name whose file was replaced
/// above), streams on files and directories, and a case-changed replacement.
pub fn chain() -> Vec<Layer> {
    let mut l1 = Layer::default();
    l1.dir("Files").dir("Files/a").file("Files/a/x", b"x one").file("Files/a/y", b"y one");
    l1.dir("Files/b").stream("Files/b", "dirstream", b"on a directory").file("Files/b/z", &[7u8; 5000]);
    l1.stream("Files/b/z", "Zone.Identifier", b"[ZoneTransfer]");
    l1.link("Files/alias", "Files/a/x").dir("Files/keep").dir("Files/keep/deep").file("Files/keep/deep/f", b"f");
    l1.symlink("Files/sym", "a\\x", false, false).symlink("Files/junction", "C:\\b", true, true);
    l1.dir("Files/Case").file("Files/Case/Name.txt", b"old case");

    let mut l2 = Layer::default();
    l2.dir("Files").dir("Files/a").whiteout("Files/a/y").file("Files/a/x", b"x two").file("Files/a/new", b"new in 2");
    l2.link("Files/a/lz", "Files/b/z").whiteout("Files/keep");
    l2.dir("Files/b").file("Files/b/z2", &vec![9u8; 4096]).dir("Files/Case").file("Files/Case/NAME.TXT", b"new case");

    let mut l3 = Layer::default();
    l3.dir("Files").whiteout("Files/a").dir("Files/a").file("Files/a/only", b"after re-creation");
    l3.file("Files/b", b"b is a file now").dir("Files/c").link("Files/c/h", "Files/alias");
    l3.file_with("Files/c/h3", b"", 0x1 | 0x20, &[("user.x", b"v")]).link("Files/c/h2", "Files/c/h3");

    let mut l4 = Layer::default();
    l4.dir("Files").whiteout("Files/alias").dir("Files/b").file("Files/b/back", b"dir again");
    l4.dir("Files/keep").file("Files/keep/fresh", b"keep is back").whiteout("Files/sym");
    vec![l1, l2, l3, l4]
}
