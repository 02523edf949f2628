//! winlayer's disks against tools it did not write: QEMU (qemu-img, qemu-io), libvhdi and
//! dissect.hypervisor (differencing disks), sfdisk, ntfsinfo and dissect.ntfs (templates).
//! A missing tool fails the test with its name and how to install it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vhdx::format::MIB;
use vhdx::raw::to_raw;
use vhdx::scratch::{self, Mkntfs};
use vhdx::{CreateOptions, Ids, OpenOptions, Vhdx};

const INSTALL: &str =
    "run scripts/install-deps.sh (apt: qemu-utils ntfs-3g fdisk; pip: libvhdi-python dissect.hypervisor dissect.ntfs)";

fn run(command: &mut Command) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {program} ({e}): {INSTALL}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({INSTALL} if a tool or module is missing): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(command: &mut Command) -> String {
    String::from_utf8(run(command).stdout).unwrap()
}

fn python(script: &str, args: &[&Path]) -> String {
    let interpreter = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    stdout(Command::new(interpreter).arg("-c").arg(script).args(args))
}

fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or(name.into())
}

fn raw_of(disk: &Vhdx) -> Vec<u8> {
    let mut out = Vec::new();
    to_raw(disk, &mut out, &mut |_| {}).unwrap();
    out
}

fn open(path: &Path, parents: bool) -> Vhdx {
    Vhdx::open_file(path, &OpenOptions { parents, ..OpenOptions::default() }).unwrap()
}

/// Writes a recognisable pattern: a few whole blocks, a few partial ones, and zeros.
fn pattern(disk: &mut Vhdx, seed: u8) {
    let sector = disk.info().logical_sector_size as u64;
    let size = disk.virtual_size();
    let mut at = 0;
    let mut n = 0u64;
    while at < size {
        let len = (((n * 7919) % 37 + 1) * sector).min(size - at);
        if !n.is_multiple_of(3) {
            let data: Vec<u8> = (0..len).map(|i| (i / sector) as u8 ^ seed ^ n as u8).collect();
            disk.write_at(at, &data).unwrap();
        }
        at += len + ((n * 104_729) % 5) * MIB / 2 / sector * sector;
        n += 1;
    }
    disk.flush().unwrap();
}

fn qemu_raw(path: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu.raw");
    run(Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(path).arg(&out));
    let b = fs::read(&out).unwrap();
    fs::remove_file(out).unwrap();
    b
}

#[test]
fn qemu_accepts_our_dynamic_disks() {
    let dir = tempfile::tempdir().unwrap();
    // QEMU 10 opens only 512-byte logical sectors (4096-byte ones: "Operation not supported");
    // libvhdi and dissect check those below.
    for (i, (size, block)) in [(48 * MIB, MIB), (40 * MIB, 8 * MIB), (33 * MIB + 512, 32 * MIB)].into_iter().enumerate()
    {
        let path = dir.path().join(format!("d{i}.vhdx"));
        let options = CreateOptions { block_size: block as u32, ..CreateOptions::dynamic(size) };
        let mut disk = Vhdx::create_file(&path, &options).unwrap();
        pattern(&mut disk, i as u8);
        let info: serde_json::Value =
            serde_json::from_str(&stdout(Command::new("qemu-img").args(["info", "--output=json"]).arg(&path))).unwrap();
        assert_eq!(info["format"], "vhdx");
        assert_eq!(info["virtual-size"], size);
        assert_eq!(info["cluster-size"], block);
        let check = stdout(Command::new("qemu-img").arg("check").arg(&path));
        assert!(check.contains("No errors"), "{check}");
        assert_eq!(qemu_raw(&path, dir.path()), raw_of(&open(&path, false)), "disk {i}");
    }
}

#[test]
fn we_read_and_write_what_qemu_makes() {
    let dir = tempfile::tempdir().unwrap();
    let layouts = [
        "subformat=dynamic,block_size=1M,block_state_zero=off",
        "subformat=dynamic,block_size=8M,block_state_zero=on",
        "subformat=dynamic,block_size=32M,log_size=2M",
        "subformat=fixed,block_size=1M",
    ];
    for (i, layout) in layouts.into_iter().enumerate() {
        let path = dir.path().join(format!("q{i}.vhdx"));
        run(Command::new("qemu-img").args(["create", "-q", "-f", "vhdx", "-o", layout]).arg(&path).arg("72M"));
        run(Command::new("qemu-io")
            .args([
                "-c",
                "write -P 0xab 0 4k",
                "-c",
                "write -P 0x5c 1536k 3M",
                "-c",
                "write -P 0x01 71M 512",
                "-c",
                "write -z 2M 512k",
            ])
            .arg(&path));
        let disk = open(&path, false);
        let report = disk.check().unwrap();
        assert!(!report.has_errors(), "{layout}: {:?}", report.problems);
        assert_eq!(disk.virtual_size(), 72 * MIB);
        assert_eq!(qemu_raw(&path, dir.path()), raw_of(&disk), "{layout}");

        // Our writes into QEMU's disk, read back by QEMU.
        let mut disk = Vhdx::open_file(&path, &OpenOptions { writable: true, ..OpenOptions::default() }).unwrap();
        pattern(&mut disk, 0x40 + i as u8);
        drop(disk);
        let check = stdout(Command::new("qemu-img").arg("check").arg(&path));
        assert!(check.contains("No errors"), "{layout}: {check}");
        assert_eq!(qemu_raw(&path, dir.path()), raw_of(&open(&path, false)), "{layout} after our writes");
    }
}

#[test]
fn a_log_qemu_left_to_replay_is_refused_until_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.vhdx");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vhdx", "-o", "block_state_zero=off"])
        .arg(&path)
        .arg("16M"));
    run(Command::new("qemu-io").args(["-c", "write -P 0x77 3M 1M"]).arg(&path));
    // QEMU updates the BAT through the log, replays it and then clears the header's LogGuid;
    // its entries stay in the log. Setting the LogGuid back is what a crash before the
    // replay leaves behind.
    let mut b = fs::read(&path).unwrap();
    let header = Vhdx::open_file(&path, &OpenOptions::default()).unwrap().info();
    let log_entry = MIB as usize;
    assert_eq!(&b[log_entry..log_entry + 4], b"loge", "QEMU left no log entry");
    let log_guid = vhdx::format::guid_at(&b, log_entry + 32);
    for at in vhdx::format::HEADER_OFFSETS {
        let h = &mut b[at as usize..at as usize + vhdx::format::HEADER_SIZE];
        vhdx::format::put_guid(h, 48, log_guid);
        vhdx::format::seal(h, 4);
    }
    fs::write(&path, &b).unwrap();
    let e = Vhdx::open_file(&path, &OpenOptions::default()).err().expect("refused").to_string();
    assert!(e.contains("must be replayed"), "{e}");
    let qemu = Command::new("qemu-img").arg("check").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&qemu.stderr);
    assert!(!qemu.status.success() && said.contains("log"), "QEMU did not see a log to replay: {said}");
    run(Command::new("qemu-img").args(["check", "-r", "all"]).arg(&path));
    let disk = open(&path, false);
    assert_ne!(disk.info().data_write_guid, header.data_write_guid, "replay counts as a change");
    let mut block = vec![0u8; MIB as usize];
    disk.read_at(3 * MIB, &mut block).unwrap();
    assert!(block.iter().all(|&x| x == 0x77));
}

const READ_CHAIN: &str = r#"
import sys, pyvhdi
from pathlib import Path
from dissect.hypervisor.disk.vhdx import VHDX
child, parent, other, out_libvhdi, out_dissect, out_parent = sys.argv[1:]
f = pyvhdi.file(); f.open(child)
p = pyvhdi.file(); p.open(parent)
print("type", f.disk_type, "parent", f.parent_filename, "linkage", f.parent_identifier)
wrong = pyvhdi.file(); wrong.open(other)
try:
    f.set_parent(wrong)
    print("wrong parent accepted")
except IOError as e:
    print("wrong parent refused:", e)
f.set_parent(p)
open(out_libvhdi, "wb").write(f.read_buffer(f.media_size))
v = VHDX(Path(child))
open(out_dissect, "wb").write(v.read(v.size))
v = VHDX(Path(parent))
open(out_parent, "wb").write(v.read(v.size))
"#;

#[test]
fn libvhdi_and_dissect_read_our_differencing_disks_through_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("children")).unwrap();
    for (i, sector) in [512u32, 4096].into_iter().enumerate() {
        let parent_path = dir.path().join(format!("parent{i}.vhdx"));
        let options = CreateOptions { logical_sector_size: sector, ..CreateOptions::dynamic(24 * MIB) };
        let mut parent = Vhdx::create_file(&parent_path, &options).unwrap();
        pattern(&mut parent, 0x11);
        drop(parent);
        let child_path = dir.path().join(format!("children/child{i}.vhdx"));
        let parent = open(&parent_path, false);
        let options = CreateOptions::differencing(&parent, &parent_path, &child_path).unwrap();
        let mut child = Vhdx::create_file(&child_path, &options).unwrap();
        child.attach_parent(parent).unwrap();
        // Partial sectors over the parent's data, whole blocks, and blocks beyond it.
        pattern(&mut child, 0x22);
        let ours = raw_of(&child);
        let parent_ours = raw_of(child.parent().unwrap());
        assert_eq!(child.check().unwrap().problems, vec![]);
        assert!(child.check().unwrap().partial_blocks > 0);
        drop(child);

        let other = dir.path().join(format!("other{i}.vhdx"));
        Vhdx::create_file(&other, &CreateOptions { logical_sector_size: sector, ..CreateOptions::dynamic(24 * MIB) })
            .unwrap();
        let [a, b, c] = ["libvhdi.raw", "dissect.raw", "parent.raw"].map(|n| dir.path().join(n));
        let said = python(READ_CHAIN, &[&child_path, &parent_path, &other, &a, &b, &c]);
        assert!(said.contains("type 4"), "{said}");
        assert!(said.contains("wrong parent refused"), "{said}");
        assert!(said.contains(&parent_path.canonicalize().unwrap().display().to_string()), "{said}");
        assert!(fs::read(&a).unwrap() == ours, "libvhdi reads other data through the child ({sector}-byte sectors)");
        assert!(fs::read(&b).unwrap() == ours, "dissect reads other data through the child ({sector}-byte sectors)");
        assert!(fs::read(&c).unwrap() == parent_ours, "dissect reads other data in the parent ({sector}-byte sectors)");
    }
}

const READ_NTFS: &str = r#"
import sys
from pathlib import Path
from dissect.hypervisor.disk.vhdx import VHDX
from dissect.util.stream import RangeStream
from dissect.ntfs import NTFS
disk, start, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v = VHDX(Path(disk))
fs = NTFS(RangeStream(v, start, length))
print("through parent", v.parent is not None, "cluster", fs.cluster_size, "sector", fs.sector_size)
print("root", sorted(fs.mft.get("/").listdir()))
"#;

#[test]
fn the_scratch_templates_hold_a_gpt_and_ntfs_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mkntfs = Mkntfs { program: sbin("mkntfs") };
    let t = scratch::ensure_templates(&root, &mkntfs, &Ids::Random).unwrap();
    assert_eq!(t.created.as_deref(), Some("missing"));
    let base = open(&t.base, false).info();
    assert_eq!((base.virtual_size, base.block_size), (10 << 30, MIB as u32));
    assert_eq!(open(&t.diff, true).parent().unwrap().info().data_write_guid, base.data_write_guid);

    // The partition table, read by sfdisk from QEMU's conversion of the base.
    let raw = dir.path().join("base.raw");
    run(Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(&t.base).arg(&raw));
    let table: serde_json::Value =
        serde_json::from_str(&stdout(Command::new(sbin("sfdisk")).arg("--json").arg(&raw))).unwrap();
    fs::remove_file(&raw).unwrap();
    let parts = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "E3C9E316-0B5C-4DB8-817D-F92DF00215AE");
    assert_eq!(parts[1]["type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    let (start, length) = scratch::data_partition(10 << 30);
    assert_eq!(parts[1]["start"], start / 512);
    assert_eq!(parts[1]["size"], length / 512);

    // The NTFS: ntfsinfo on the partition QEMU cut out of the base, dissect through the
    // differencing template.
    let part = dir.path().join("part.raw");
    let opts =
        format!("driver=raw,offset={start},size={length},file.driver=vhdx,file.file.filename={}", t.base.display());
    run(Command::new("qemu-img").args(["convert", "-O", "raw", "--image-opts", &opts]).arg(&part));
    let info = stdout(Command::new("ntfsinfo").arg("-m").arg(&part));
    assert!(info.contains("Cluster Size: 4096") && info.contains("Volume Version: 3.1"), "{info}");
    let said = python(READ_NTFS, &[&t.diff, Path::new(&start.to_string()), Path::new(&length.to_string())]);
    assert!(said.contains("through parent True") && said.contains("'$MFT'") && said.contains("cluster 4096"), "{said}");

    // Reproducible with a seed.
    let seeded = Ids::Seeded("template".into());
    let [a, b] = ["a.vhdx", "b.vhdx"].map(|n| dir.path().join(n));
    scratch::create_base(&a, &mkntfs, &seeded).unwrap();
    scratch::create_base(&b, &mkntfs, &seeded).unwrap();
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "seeded base templates differ");

    // Kept when sound, recreated as a pair when either is broken or missing.
    assert_eq!(scratch::ensure_templates(&root, &mkntfs, &Ids::Random).unwrap().created, None);
    let mut b = fs::read(&t.diff).unwrap();
    b[65536 + 100] ^= 0xFF;
    b[131072 + 100] ^= 0xFF;
    fs::write(&t.diff, b).unwrap();
    let again = scratch::ensure_templates(&root, &mkntfs, &Ids::Random).unwrap();
    assert!(again.created.as_deref().unwrap().contains("no valid header"), "{:?}", again.created);
    assert_ne!(open(&t.base, false).info().data_write_guid, base.data_write_guid, "the base was made anew");
    fs::remove_file(&t.base).unwrap();
    assert_eq!(scratch::ensure_templates(&root, &mkntfs, &Ids::Random).unwrap().created.as_deref(), Some("missing"));
    open(&t.diff, true);

    // A container's scratch: a copy elsewhere, grown, still reading the base (found by its
    // absolute path) in libvhdi and dissect.
    let sandbox = dir.path().join("snapshots/7/sandbox.vhdx");
    fs::create_dir_all(sandbox.parent().unwrap()).unwrap();
    scratch::copy(&t.diff, &sandbox, Some(20 << 30)).unwrap();
    let copy = open(&sandbox, true);
    assert_eq!(copy.virtual_size(), 20 << 30);
    let said = python(READ_NTFS, &[&sandbox, Path::new(&start.to_string()), Path::new(&length.to_string())]);
    assert!(said.contains("'$MFT'"), "{said}");
    let size = python(
        "import sys, pyvhdi\nf = pyvhdi.file(); f.open(sys.argv[1]); print(f.media_size, f.parent_filename)",
        &[&sandbox],
    );
    assert!(size.starts_with(&format!("{} {}", 20u64 << 30, t.base.canonicalize().unwrap().display())), "{size}");
    assert!(scratch::copy(&t.diff, &sandbox, Some(1 << 30)).unwrap_err().to_string().contains("cannot shrink"));
}

#[test]
fn qemu_reads_a_raw_image_with_our_fixed_vhd_footer() {
    let dir = tempfile::tempdir().unwrap();
    for sectors in [8u64, 40_963, 300_001] {
        let path = dir.path().join(format!("{sectors}.vhd"));
        let data: Vec<u8> = (0..sectors * 512).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &data).unwrap();
        let mut file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        vhdx::vhd::append_fixed_footer(&mut file, None).unwrap();
        // QEMU recognises a VHD by a footer copy at the start, which fixed disks lack: name the format.
        let info: serde_json::Value = serde_json::from_str(&stdout(
            Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json"]).arg(&path),
        ))
        .unwrap();
        assert_eq!(info["format"], "vpc", "{sectors} sectors");
        assert_eq!(info["virtual-size"], sectors * 512, "{sectors} sectors");
        let out = dir.path().join("qemu.raw");
        run(Command::new("qemu-img").args(["convert", "-f", "vpc", "-O", "raw"]).arg(&path).arg(&out));
        assert_eq!(fs::read(&out).unwrap(), data, "{sectors} sectors");
    }
}

#[test]
fn our_vhd_geometry_is_qemus() {
    // qemu-img computes CHS with its own implementation of the same published algorithm (and
    // rounds the disk to the geometry it found): ours must find the same for qemu's size.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.vhd");
    for sectors in [2048u64, 40_963, 278_528, 508_904, 4_194_304, 66_059_280] {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=fixed"])
            .arg(&path)
            .arg((sectors * 512).to_string()));
        let mut footer = [0u8; 512];
        let file = fs::File::open(&path).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut footer, file.metadata().unwrap().len() - 512).unwrap();
        let size = u64::from_be_bytes(footer[48..56].try_into().unwrap());
        let (c, h, s) = vhdx::vhd::geometry(size);
        assert_eq!(&footer[56..60], &[(c >> 8) as u8, c as u8, h, s], "{sectors} sectors, qemu's size {size}");
    }
}
