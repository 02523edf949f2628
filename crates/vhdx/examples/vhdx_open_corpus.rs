//! Writes the seed corpus of the `vhdx_open` fuzz target: disks made by winlayer and (when
//! qemu-img and qemu-io are installed) by QEMU, encoded sparsely (see `vhdx::fuzzing`).
//!
//! Run from the repository root: `cargo run -p vhdx --example vhdx_open_corpus`.

use std::fs;
use std::path::Path;
use std::process::Command;

use vhdx::format::{self, MIB};
use vhdx::fuzzing::encode;
use vhdx::{CreateOptions, Ids, ParentLink, Vhdx};

fn bytes(disk: Vhdx) -> Vec<u8> {
    let storage = disk.into_storage();
    let mut b = vec![0u8; storage.len().unwrap() as usize];
    storage.read_at(&mut b, 0).unwrap();
    b
}

fn made(options: CreateOptions, writes: &[(u64, u64)]) -> Vec<u8> {
    let mut disk = Vhdx::create(Box::new(Vec::<u8>::new()), "seed", &options).unwrap();
    for &(at, len) in writes {
        disk.write_at(at, &vec![0x3C; len as usize]).unwrap();
    }
    bytes(disk)
}

fn main() {
    let out = Path::new("fuzz/corpus/vhdx_open");
    fs::create_dir_all(out).unwrap();
    let ids = Ids::Seeded("corpus".into());
    let dynamic = |size| CreateOptions { ids: ids.clone(), ..CreateOptions::dynamic(size) };
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("dynamic-512", made(dynamic(8 * MIB), &[(0, 512), (3 * MIB, 4096), (8 * MIB - 512, 512)])),
        (
            "dynamic-4096-2m",
            made(
                CreateOptions { logical_sector_size: 4096, block_size: 2 * MIB as u32, ..dynamic(6 * MIB) },
                &[(4096, 8192)],
            ),
        ),
        (
            "differencing",
            made(
                CreateOptions {
                    parent: Some(ParentLink {
                        linkage: ids.guid("data-write", 0),
                        relative_path: Some(".\\parent.vhdx".into()),
                        absolute_path: Some("C:\\layers\\parent.vhdx".into()),
                    }),
                    ..dynamic(4 * MIB)
                },
                &[(512, 1024), (MIB, 4096), (3 * MIB + 4096, 512)],
            ),
        ),
    ];
    let mut grown = Vhdx::create(Box::new(Vec::<u8>::new()), "seed", &dynamic(2 * MIB)).unwrap();
    grown.write_at(MIB, &[7u8; 512]).unwrap();
    grown.resize(600 * 1024 * MIB).unwrap();
    seeds.push(("grown-bat-moved", bytes(grown)));

    // Damaged copies of the first seed.
    let base = seeds[0].1.clone();
    let mut bad_header = base.clone();
    bad_header[format::HEADER_OFFSETS[1] as usize + 9] ^= 1;
    seeds.push(("header-2-checksum", bad_header));
    let mut log = base.clone();
    let entry = &mut log[MIB as usize..MIB as usize + 4096];
    entry[..4].copy_from_slice(b"loge");
    format::put_u32(entry, 8, 4096);
    format::put_u64(entry, 16, 1);
    format::put_guid(entry, 32, vhdx::Uuid::from_u128(9));
    format::seal(entry, 4);
    for at in format::HEADER_OFFSETS {
        let h = &mut log[at as usize..at as usize + format::HEADER_SIZE];
        format::put_guid(h, 48, vhdx::Uuid::from_u128(9));
        format::seal(h, 4);
    }
    seeds.push(("log-to-replay", log));

    let dir = tempfile_dir();
    for (name, layout) in [
        ("qemu-dynamic", "block_size=1M,block_state_zero=off"),
        ("qemu-zero-blocks", "block_size=1M,block_state_zero=on"),
        ("qemu-2m-blocks", "block_size=2M,log_size=1M"),
    ] {
        let path = dir.join(format!("{name}.vhdx"));
        let created =
            Command::new("qemu-img").args(["create", "-q", "-f", "vhdx", "-o", layout]).arg(&path).arg("8M").status();
        if created.is_ok_and(|s| s.success()) {
            Command::new("qemu-io")
                .args(["-c", "write -P 0x61 0 4k", "-c", "write -P 0x62 5M 512", "-c", "write -z 6M 1M"])
                .arg(&path)
                .output()
                .unwrap();
            seeds.push((name, fs::read(&path).unwrap()));
        } else {
            eprintln!("qemu-img missing: no {name} seed");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
    for (name, file) in seeds {
        let encoded = encode(&file);
        let decoded = vhdx::fuzzing::decode(&encoded);
        let mut back = vec![0u8; file.len()];
        vhdx::Storage::read_at(&decoded, &mut back, 0).unwrap();
        assert_eq!(back, file, "{name} encodes and decodes");
        fs::write(out.join(name), &encoded).unwrap();
        println!("{name}: {} bytes describe {} bytes", encoded.len(), file.len());
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vhdx-corpus-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}
