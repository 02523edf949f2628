//! Writes the hand-made part of the `layer_import` fuzz corpus (fuzz/corpus/layer_import/):
//! base layers and layers with hives as importers meet them, and the hostile cases the import
//! refuses. `cargo run -p winlayer-layers --example layer_import_corpus`.

use std::path::Path;

use regf::{Hive, Value};
use winlayer_core::reparse::Link;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Data, Entry, EntryKind, FileTime, LayerPath, LayerSink, Metadata, Origin, attrs};

/// A layer tar written entry by entry, in the order given.
struct Tar(wcow_tar::TarWriter<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(wcow_tar::TarWriter::new(Vec::new()))
    }
    fn put(&mut self, path: &str, kind: EntryKind, attributes: u32, data: &[u8]) -> &mut Tar {
        let mut meta = Metadata::with_times(attributes, FileTime::from_unix(1_600_000_000, 0).unwrap());
        if kind.has_metadata() && !matches!(kind, EntryKind::HardLink { .. }) {
            let sd = SecurityDescriptor::from_sddl("O:BAG:SYD:(A;;FA;;;BA)(A;;0x1200a9;;;BU)").unwrap();
            meta.security = Some(sd.to_bytes().into());
        }
        let entry = Entry { path: LayerPath::parse(path).unwrap(), kind, meta };
        let mut r = data;
        self.0.entry(&entry, &mut Data::from_reader(&mut r, data.len() as u64, Origin::Stream)).unwrap();
        self
    }
    fn dir(&mut self, path: &str) -> &mut Tar {
        self.put(path, EntryKind::Directory, attrs::DIRECTORY, b"")
    }
    fn dirs(&mut self, paths: &[&str]) -> &mut Tar {
        for p in paths {
            self.dir(p);
        }
        self
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Tar {
        self.put(path, EntryKind::File { size: data.len() as u64 }, attrs::ARCHIVE, data)
    }
    fn link(&mut self, path: &str, target: &str) -> &mut Tar {
        self.put(path, EntryKind::HardLink { target: LayerPath::parse(target).unwrap() }, attrs::ARCHIVE, b"")
    }
    fn symlink(&mut self, path: &str, target: &str, dir: bool) -> &mut Tar {
        let link = EntryKind::Symlink(Link { target: target.into(), junction: dir });
        self.put(path, link, attrs::REPARSE_POINT | if dir { attrs::DIRECTORY } else { attrs::ARCHIVE }, b"")
    }
    fn stream(&mut self, owner: &str, name: &str, data: &[u8]) -> &mut Tar {
        self.put(owner, EntryKind::Stream { name: name.into(), size: data.len() as u64 }, 0, data)
    }
    fn whiteout(&mut self, path: &str) -> &mut Tar {
        self.put(path, EntryKind::Whiteout, 0, b"")
    }
    fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, wcow_tar::TarWriter::new(Vec::new())).finish().unwrap()
    }
}

const CONFIG: [&str; 4] = ["Files/Windows", "Files/Windows/System32", "Files/Windows/System32/config", ""];

fn base() -> Tar {
    let mut t = Tar::new();
    t.dirs(&["Files", CONFIG[0], CONFIG[1], CONFIG[2]]);
    let empty = Hive::empty("ROOT").to_bytes().unwrap();
    for hive in ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"] {
        t.file(&format!("{}/{hive}", CONFIG[2]), &empty);
    }
    t
}

fn delta() -> Vec<u8> {
    let mut hive = Hive::empty_delta("ROOT");
    hive.root.create("Software\\App").set_value(Value::string("Name", "app"));
    hive.to_bytes().unwrap()
}

fn layer() -> Tar {
    let mut t = Tar::new();
    t.dirs(&["Files", "Files/app", "Hives"]);
    t
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/layer_import");
    std::fs::create_dir_all(&out).unwrap();
    let d = delta();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("valid-base-minimal", base().finish()),
        (
            "valid-base-app",
            base()
                .dirs(&["Files/app"])
                .file("Files/app/a.exe", b"MZ")
                .stream("Files/app/a.exe", "Zone.Identifier", b"z")
                .link("Files/app/b.exe", "Files/app/a.exe")
                .symlink("Files/app/cur", "a.exe", false)
                .symlink("Files/app/j", "C:\\Windows", true)
                .link("Files/app/system-copy", "Files/Windows/System32/config/SYSTEM")
                .finish(),
        ),
        (
            "valid-base-uvm",
            base()
                .dirs(&["UtilityVM", "UtilityVM/Files", "UtilityVM/Files/EFI", "UtilityVM/Files/EFI/Microsoft"])
                .dirs(&["UtilityVM/Files/EFI/Microsoft/Boot"])
                .file("UtilityVM/Files/EFI/Microsoft/Boot/BCD", &Hive::empty("BCD").to_bytes().unwrap())
                .file("UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi", b"MZ boot")
                .finish(),
        ),
        ("valid-plain-files", Tar::new().dirs(&["Files", "Files/etc"]).file("Files/etc/hosts", b"h").finish()),
        (
            "valid-layer-deltas",
            layer()
                .file("Hives/System_Delta", &d)
                .file("Hives/DefaultUser_Delta", &d)
                .file("Files/app/new", b"n")
                .whiteout("Files/Windows/System32/config/SAM")
                .link("Files/app/system-copy", "Files/Windows/System32/config/SYSTEM")
                .finish(),
        ),
        ("valid-layer-whiteouts", layer().whiteout("Files/app/old").whiteout("Files/Windows").finish()),
        ("hostile-delta-not-a-hive", layer().file("Hives/System_Delta", b"regf but not a hive").finish()),
        ("hostile-delta-truncated", layer().file("Hives/Software_Delta", &d[..4100]).finish()),
        ("hostile-std-as-directory", layer().dir("Hives/Sam_Delta").finish()),
        ("hostile-std-as-symlink", layer().symlink("Hives/Sam_Delta", "C:\\x", false).finish()),
        ("hostile-std-as-hard-link", layer().file("Files/app/x", &d).link("Hives/Sam_Delta", "Files/app/x").finish()),
        (
            "hostile-std-with-stream",
            layer().file("Hives/System_Delta", &d).stream("Hives/System_Delta", "s", b"s").finish(),
        ),
        ("hostile-std-twice", layer().file("Hives/System_Delta", &d).file("Hives/SYSTEM_DELTA", &d).finish()),
        ("hostile-generated-base-hive", layer().file("Hives/SYSTEM_BASE", &d).finish()),
        ("hostile-base-with-hives", base().dir("Hives").file("Hives/System_Delta", &d).finish()),
        ("hostile-base-whiteout", base().whiteout("Files/gone").finish()),
        (
            "hostile-std-below-directory-link",
            Tar::new()
                .dir("Files")
                .symlink("Files/Windows", "C:\\Elsewhere", true)
                .dirs(&[CONFIG[1], CONFIG[2]])
                .file("Files/Windows/System32/config/SAM", b"x")
                .finish(),
        ),
        ("hostile-config-as-file", Tar::new().dirs(&["Files", CONFIG[0]]).file(CONFIG[1], b"x").finish()),
        ("hostile-uvm-without-bcd", base().dirs(&["UtilityVM", "UtilityVM/Files"]).finish()),
        ("empty-archive", vec![0u8; 1024]),
    ];
    for (name, bytes) in cases {
        std::fs::write(out.join(name), bytes).unwrap();
    }
    // Seeds from the tar reader's corpus: layers from other writers.
    let tars = out.join("../tar_reader");
    for name in ["valid-go-hcsshim-style", "valid-pax", "valid-from-dir", "valid-gnu", "hostile-hard-link-to-hives"] {
        std::fs::copy(tars.join(name), out.join(format!("tar-{name}"))).unwrap();
    }
}
