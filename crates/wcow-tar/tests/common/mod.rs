//! Shared test fixtures: a layer with every feature of the dialect, and helpers to write and
//! read layers through the crate.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use wcow_tar::{Input, reader::read_all};
use winlayer_core::ea::ExtendedAttribute;
use winlayer_core::reparse::Link;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{
    Collector, Data, Entry, EntryKind, FileTime, LayerPath, LayerSink, LayerSource, Metadata, Origin, attrs,
};

pub fn path(s: &str) -> LayerPath {
    LayerPath::parse(s).unwrap()
}

pub fn sd(sddl: &str) -> Arc<[u8]> {
    Arc::from(SecurityDescriptor::from_sddl(sddl).unwrap().to_bytes())
}

pub fn meta(attributes: u32, seed: i64) -> Metadata {
    Metadata {
        attributes,
        creation: FileTime::from_unix(1_500_000_000 + seed, 500_000_000).unwrap(),
        last_write: FileTime::from_unix(1_600_000_000 + seed, 123_456_700).unwrap(),
        last_access: FileTime::from_unix(1_600_000_100 + seed, 0).unwrap(),
        change: FileTime::from_unix(1_600_000_200 + seed, 999_999_900).unwrap(),
        security: Some(sd("O:BAG:SYD:(A;;FA;;;BA)(A;;0x1200a9;;;BU)")),
        eas: Vec::new(),
    }
}

fn e(p: &str, kind: EntryKind, meta: Metadata) -> Entry {
    Entry { path: path(p), kind, meta }
}

/// Every feature of the dialect at least once: nested and Unicode names, long paths, every
/// size around the 512-byte block, streams on files and directories, EAs, symlinks (file,
/// directory, relative, absolute), a junction, hard links to a file with streams (including
/// a link whose name sorts first), whiteouts, an opaque marker, hives, a utility VM, times
/// before 1970 and with fractions, and files without a security descriptor.
pub fn kitchen_sink() -> Vec<(Entry, Vec<u8>)> {
    let dir = |p: &str, seed| (e(p, EntryKind::Directory, meta(attrs::DIRECTORY, seed)), Vec::new());
    let file = |p: &str, a: u32, data: Vec<u8>| {
        (e(p, EntryKind::File { size: data.len() as u64 }, meta(a, data.len() as i64)), data)
    };
    let stream = |p: &str, name: &str, data: &[u8]| {
        (e(p, EntryKind::Stream { name: name.into(), size: data.len() as u64 }, Metadata::default()), data.to_vec())
    };
    let link = |p: &str, target: &str, a: u32, junction: bool| {
        (
            e(p, EntryKind::Symlink(Link { target: target.into(), junction }), meta(a | attrs::REPARSE_POINT, 7)),
            Vec::new(),
        )
    };
    let long_dir = format!("Files/{}", "deep/".repeat(30) + "end");
    let mut out = vec![dir("Files", 0), dir("Files/Windows", 1)];
    let mut parent = String::from("Files");
    for part in long_dir.trim_start_matches("Files/").split('/') {
        parent = format!("{parent}/{part}");
        out.push(dir(&parent, 2));
    }
    out.push(file(&format!("{long_dir}/{}.txt", "n".repeat(200)), attrs::ARCHIVE, b"long".to_vec()));
    for size in [0usize, 1, 511, 512, 513, 1023, 1024, 4096, 70_000] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        out.push(file(&format!("Files/Windows/size-{size}.bin"), attrs::ARCHIVE | attrs::READONLY, data));
    }
    out.push(file(
        "Files/Windows/Ünïcödé Ñame – 漢字.txt",
        attrs::ARCHIVE | attrs::HIDDEN | attrs::SYSTEM,
        b"unicode".to_vec(),
    ));
    out.push(file("Files/Windows/MiXeD.CaSe", attrs::ARCHIVE, b"case".to_vec()));
    let mut with_ea = file("Files/Windows/ea.dll", attrs::ARCHIVE, b"MZ".to_vec());
    with_ea.0.meta.eas = vec![
        ExtendedAttribute { name: b"$KERNEL.PURGE.APPXFICACHE".to_vec(), value: vec![0, 1, 2, 255] },
        ExtendedAttribute { name: b"USER.NOTE".to_vec(), value: b"hello".to_vec() },
    ];
    out.push(with_ea);
    out.push(file("Files/Windows/zz-data.exe", attrs::ARCHIVE, b"MZ data with streams".to_vec()));
    out.push(stream("Files/Windows/zz-data.exe", "Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n"));
    out.push(stream("Files/Windows/zz-data.exe", "empty", b""));
    out.push((
        e(
            "Files/Windows/aa-first-name.exe",
            EntryKind::HardLink { target: path("Files/Windows/zz-data.exe") },
            meta(attrs::ARCHIVE, 9),
        ),
        Vec::new(),
    ));
    out.push((
        e(
            "Files/Windows/mm-middle.exe",
            EntryKind::HardLink { target: path("Files/Windows/zz-data.exe") },
            meta(attrs::ARCHIVE, 9),
        ),
        Vec::new(),
    ));
    let mut no_sd = file("Files/Windows/inherits.txt", 0, b"no descriptor, no attributes".to_vec());
    no_sd.0.meta.security = None;
    out.push(no_sd);
    let mut old = file("Files/Windows/old.txt", attrs::ARCHIVE, b"1969".to_vec());
    old.0.meta.last_write = FileTime::parse_pax("-86400.25").unwrap();
    old.0.meta.creation = FileTime::from_ticks(0).unwrap();
    out.push(old);
    out.push(dir("Files/Windows/with-stream-dir", 3));
    out.push(stream("Files/Windows/with-stream-dir", "dirdata", b"directory stream"));
    out.push(link("Files/Windows/rel-link.txt", "..\\Windows\\MiXeD.CaSe", attrs::ARCHIVE, false));
    out.push(link("Files/Windows/abs-dir-link", "C:\\Windows", attrs::DIRECTORY, false));
    out.push(link("Files/Windows/junction", "C:\\ProgramData", attrs::DIRECTORY, true));
    out.push(link("Files/Windows/long-target", &format!("C:\\{}", "x\\".repeat(80)), attrs::ARCHIVE, false));
    out.push((e("Files/Windows/gone.dll", EntryKind::Whiteout, Metadata::default()), Vec::new()));
    out.push((e("Files/Windows/with-stream-dir", EntryKind::Opaque, Metadata::default()), Vec::new()));
    out.push(dir("Hives", 4));
    out.push(file("Hives/Software_Delta", attrs::ARCHIVE, b"regf delta".to_vec()));
    out.push(dir("UtilityVM", 5));
    out.push(dir("UtilityVM/Files", 5));
    out.push((
        e(
            "UtilityVM/Files/shared.exe",
            EntryKind::HardLink { target: path("Files/Windows/zz-data.exe") },
            meta(attrs::ARCHIVE, 9),
        ),
        Vec::new(),
    ));
    out
}

/// Writes entries (any order) as a canonical layer tar.
pub fn write_layer(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    wcow_tar::write_sorted(collect(entries).finish().unwrap(), Vec::new()).unwrap()
}

fn collect(entries: &[(Entry, Vec<u8>)]) -> Collector {
    let mut collector = Collector::new();
    for (entry, data) in entries {
        let mut r: &[u8] = data;
        collector.entry(entry, &mut Data::from_reader(&mut r, data.len() as u64, Origin::Stream)).unwrap();
    }
    collector
}

/// The canonical order of entries (data moved to the first name of each hard-link group),
/// computed by the entry model alone, without any tar in between.
pub fn canonical(entries: &[(Entry, Vec<u8>)]) -> Vec<(Entry, Vec<u8>)> {
    struct Record(Vec<(Entry, Vec<u8>)>);
    impl LayerSink for Record {
        fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> winlayer_core::Result<()> {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(data, &mut bytes).unwrap();
            self.0.push((entry.clone(), bytes));
            Ok(())
        }
    }
    let mut record = Record(Vec::new());
    collect(entries).finish().unwrap().send_to(&mut record).unwrap();
    record.0
}

pub fn read_file(p: &Path) -> Vec<(Entry, Vec<u8>)> {
    read_all(Input::open(p).unwrap()).unwrap()
}
