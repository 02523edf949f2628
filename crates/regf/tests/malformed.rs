//! Hostile and broken hives: every one is refused with an error that says what is wrong and
//! where; none panics, hangs or allocates more than the input could hold.

mod common;

use common::*;
use proptest::prelude::*;
use regf::{Error, Hive, ReadOptions, Value};

/// Every allocated cell: (file offset of the cell, its signature).
fn cells(bytes: &[u8]) -> Vec<(usize, [u8; 2])> {
    let mut out = Vec::new();
    let end = 4096 + u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
    let mut bin = 4096;
    while bin < end {
        let bin_end = bin + u32::from_le_bytes(bytes[bin + 8..bin + 12].try_into().unwrap()) as usize;
        let mut cell = bin + 32;
        while cell < bin_end {
            let size = i32::from_le_bytes(bytes[cell..cell + 4].try_into().unwrap());
            if size < 0 {
                out.push((cell, [bytes[cell + 4], bytes[cell + 5]]));
            }
            cell += size.unsigned_abs() as usize;
        }
        bin = bin_end;
    }
    out
}

/// File offset of the cell of the key node named `name`.
fn key_node(bytes: &[u8], name: &str) -> usize {
    cells(bytes)
        .into_iter()
        .find(|&(at, sig)| {
            let len = u16::from_le_bytes([bytes[at + 4 + 72], bytes[at + 4 + 73]]) as usize;
            &sig == b"nk" && bytes[at + 4 + 76..at + 4 + 76 + len] == *name.as_bytes()
        })
        .map(|(at, _)| at)
        .unwrap_or_else(|| panic!("no key node {name}"))
}

fn put32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Fixes the base block checksum after an edit there.
fn reseal(bytes: &mut [u8]) {
    let sum = (0..508).step_by(4).fold(0u32, |c, at| c ^ get32(bytes, at));
    put32(bytes, 508, sum);
}

/// A cell offset as the hive stores it (relative to the hive bins).
fn rel(file_offset: usize) -> u32 {
    (file_offset - 4096) as u32
}

/// Parses, expecting an error whose message contains every one of `words`.
fn refused(bytes: &[u8], words: &[&str]) -> Error {
    let err = Hive::parse(bytes).expect_err("a broken hive must be refused");
    let text = err.to_string();
    for word in words {
        assert!(text.contains(word), "error {text:?} does not mention {word:?}");
    }
    err
}

fn sample() -> Vec<u8> {
    let mut hive = Hive::empty("ROOT");
    let a = hive.root.create("Alpha");
    a.values = vec![Value::string("s", "text value"), Value::binary("big", pattern(40_000)), Value::dword("d", 7)];
    hive.root.create("Alpha\\Child");
    hive.root.create("Beta");
    hive.to_bytes().unwrap()
}

#[test]
fn not_hives() {
    assert!(matches!(refused(&[], &["shorter than the 4096-byte base block"]), Error::NotAHive(_)));
    let mut bytes = sample();
    bytes[0] = b'x';
    refused(&bytes, &["signature", "not \"regf\""]);
    let mut bytes = sample();
    put32(&mut bytes, 24, 2);
    reseal(&mut bytes);
    refused(&bytes, &["version 1.2"]);
    let mut bytes = sample();
    put32(&mut bytes, 28, 1);
    reseal(&mut bytes);
    refused(&bytes, &["transaction log"]);
}

#[test]
fn dirty_hives_are_refused_unless_allowed() {
    let mut bytes = sample();
    put32(&mut bytes, 4, 7);
    reseal(&mut bytes);
    assert!(matches!(refused(&bytes, &["dirty", "sequence numbers 7 and 1 differ"]), Error::Dirty(_)));
    assert!(Hive::parse_with(&bytes, ReadOptions { allow_dirty: true }).is_ok());
    let mut bytes = sample();
    bytes[200] ^= 1;
    refused(&bytes, &["dirty", "checksum"]);
}

#[test]
fn truncated_anywhere() {
    let bytes = sample();
    let bins_end = 4096 + get32(&bytes, 40) as usize;
    for cut in (0..bins_end).step_by(61) {
        assert!(Hive::parse(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Trailing data after the hive bins is allowed (Windows leaves some).
    let mut longer = bytes.clone();
    longer.extend([0xAB; 100]);
    assert!(Hive::parse(&longer).is_ok());
}

#[test]
fn broken_bins_and_cells() {
    let mut bytes = sample();
    bytes[4096] = b'X';
    refused(&bytes, &["hive bin at 0x0", "not \"hbin\""]);
    let mut bytes = sample();
    put32(&mut bytes, 4096 + 4, 0x1000);
    refused(&bytes, &["says it is at 0x1000"]);
    let mut bytes = sample();
    put32(&mut bytes, 4096 + 8, 0x7FFF_F000);
    refused(&bytes, &["hive bin at 0x0", "size 0x7ffff000"]);
    // A zero-size cell would loop forever in a naive reader.
    let mut bytes = sample();
    put32(&mut bytes, 4096 + 32, 0);
    refused(&bytes, &["cell at 0x20", "size 0"]);
    let mut bytes = sample();
    put32(&mut bytes, 4096 + 32, (-13i32) as u32);
    refused(&bytes, &["cell at 0x20", "size -13"]);
}

#[test]
fn offsets_that_point_nowhere() {
    let mut bytes = sample();
    put32(&mut bytes, 36, 0x7FFF_FFF8);
    reseal(&mut bytes);
    refused(&bytes, &["key node at 0x7ffffff8 is not an allocated cell"]);
    let mut bytes = sample();
    put32(&mut bytes, 36, 0x21);
    reseal(&mut bytes);
    refused(&bytes, &["not an allocated cell"]);
    let alpha = key_node(&sample(), "Alpha");
    let mut bytes = sample();
    put32(&mut bytes, alpha + 4 + 44, 0xFFFF_FFFF);
    refused(&bytes, &["key \\Alpha", "security cell is missing"]);
    let mut bytes = sample();
    put32(&mut bytes, alpha + 4 + 40, rel(alpha) + 8);
    refused(&bytes, &["key \\Alpha", "value list", "not an allocated cell"]);
}

#[test]
fn loops_and_shared_cells() {
    // A subkey list that leads back to the root.
    let bytes = sample();
    let alpha = key_node(&bytes, "Alpha");
    let child = key_node(&bytes, "Child");
    let list = get32(&bytes, alpha + 4 + 28) as usize + 4096;
    let mut looped = bytes.clone();
    put32(&mut looped, list + 8, 0x20);
    refused(&looped, &["key \\Alpha", "already used elsewhere"]);
    // Two keys sharing one value list.
    let mut shared = bytes.clone();
    put32(&mut shared, child + 4 + 36, 1);
    put32(&mut shared, child + 4 + 40, get32(&bytes, alpha + 4 + 40));
    refused(&shared, &["key \\Alpha\\Child", "value list", "already used elsewhere"]);
}

#[test]
fn subkey_index_is_checked() {
    let bytes = sample();
    let root_list = get32(&bytes, 4096 + 0x20 + 4 + 28) as usize + 4096;
    assert_eq!(&bytes[root_list + 4..root_list + 6], b"lh");
    // Out of order: swap the two entries (Alpha, Beta).
    let mut swapped = bytes.clone();
    let (a, b) = (bytes[root_list + 8..root_list + 16].to_vec(), bytes[root_list + 16..root_list + 24].to_vec());
    swapped[root_list + 8..root_list + 16].copy_from_slice(&b);
    swapped[root_list + 16..root_list + 24].copy_from_slice(&a);
    refused(&swapped, &["\"Beta\" and \"Alpha\" are out of order"]);
    // A wrong hash.
    let mut hashed = bytes.clone();
    hashed[root_list + 12] ^= 1;
    refused(&hashed, &["hint or hash for subkey \"Alpha\" is wrong"]);
    // The count disagrees with the list.
    let mut counted = bytes.clone();
    put32(&mut counted, 4096 + 0x20 + 4 + 20, 3);
    refused(&counted, &["it says it has 3 subkeys, but its subkey list holds 2"]);
    // An unknown list signature.
    let mut signed = bytes.clone();
    signed[root_list + 4..root_list + 6].copy_from_slice(b"zz");
    refused(&signed, &["is not a subkey list"]);
    // An index root that points to an index root.
    let alpha_list = get32(&bytes, key_node(&bytes, "Alpha") + 4 + 28) as usize + 4096;
    let mut nested = bytes.clone();
    nested[root_list + 4..root_list + 8].copy_from_slice(b"ri\x01\x00");
    put32(&mut nested, root_list + 8, rel(alpha_list));
    nested[alpha_list + 4..alpha_list + 6].copy_from_slice(b"ri");
    refused(&nested, &["points to another index root"]);
}

#[test]
fn absurd_sizes_are_refused_without_allocating_them() {
    let bytes = sample();
    let alpha = key_node(&bytes, "Alpha");
    // 4 billion values.
    let mut many = bytes.clone();
    put32(&mut many, alpha + 4 + 36, u32::MAX);
    refused(&many, &["4294967295 values do not fit"]);
    // A name longer than its cell.
    let mut long = bytes.clone();
    long[alpha + 4 + 72..alpha + 4 + 74].copy_from_slice(&u16::MAX.to_le_bytes());
    refused(&long, &["65535-byte name overruns the cell"]);
    // Value data sizes: 2 GiB of big data, inline data longer than 4 bytes.
    let vk: Vec<usize> = cells(&bytes).into_iter().filter(|c| &c.1 == b"vk").map(|c| c.0).collect();
    let big = vk.iter().copied().find(|&at| bytes[at + 24..at + 27] == *b"big").unwrap();
    let mut huge = bytes.clone();
    put32(&mut huge, big + 4 + 4, 0x7FFF_FFFF);
    refused(&huge, &["value \"big\"", "big data segments cannot hold exactly 2147483647 bytes"]);
    let mut inline = bytes.clone();
    put32(&mut inline, vk[0] + 4 + 4, 0x8000_0009);
    refused(&inline, &["9 bytes cannot be stored inline"]);
}

#[test]
fn broken_security_descriptors() {
    let bytes = sample();
    let sk = cells(&bytes).into_iter().find(|c| &c.1 == b"sk").unwrap().0;
    let mut bad = bytes.clone();
    bad[sk + 4 + 20] = 9; // descriptor revision
    refused(&bad, &["security cell 0x", "revision 9"]);
    let mut unlinked = bytes.clone();
    put32(&mut unlinked, sk + 4 + 4, 0x20);
    refused(&unlinked, &["next link 0x20 is not a security cell"]);
}

/// The deepest tree Windows allows (512 levels) writes, reads and merges on an ordinary
/// thread stack; one level more is refused by the writer.
#[test]
fn deepest_allowed_tree() {
    let chain = |hive: &mut Hive, levels: usize, leaf: Value| {
        let mut key = &mut hive.root;
        for i in 0..levels {
            key = key.create(&format!("L{i}"));
        }
        key.set_value(leaf);
    };
    let mut base = Hive::empty("ROOT");
    chain(&mut base, 512, Value::dword("bottom", 1));
    let mut delta = Hive::empty_delta("D");
    chain(&mut delta, 512, Value::dword("bottom", 2));
    let merged = regf::merge_bytes(&base.to_bytes().unwrap(), &delta.to_bytes().unwrap()).unwrap();
    let path = (0..512).map(|i| format!("L{i}")).collect::<Vec<_>>().join("\\");
    let read = Hive::parse(&merged).unwrap();
    assert_eq!(read.root.find(&path).unwrap().value("bottom").unwrap().data, [2, 0, 0, 0]);
    chain(&mut base, 513, Value::dword("bottom", 1));
    let err = base.to_bytes().unwrap_err().to_string();
    assert!(err.contains("deeper than 512 levels"), "{err}");
}

/// A key chain deeper than Windows' 512 levels, with consistent parent fields: refused
/// rather than recursing without bound.
#[test]
fn depth_is_bounded() {
    let mut hive = Hive::empty("ROOT");
    let mut a = &mut hive.root;
    for i in 0..300 {
        a = a.create(&format!("A{i:03}"));
    }
    let mut b = &mut hive.root;
    for i in 0..300 {
        b = b.create(&format!("B{i:03}"));
    }
    let mut bytes = hive.to_bytes().unwrap();
    assert!(Hive::parse(&bytes).is_ok());
    // Hang B001..B299 below A299: 300 + 299 levels.
    let (a_last, b0, b1) = (key_node(&bytes, "A299"), key_node(&bytes, "B000"), key_node(&bytes, "B001"));
    put32(&mut bytes, a_last + 4 + 20, 1);
    let b0_list = get32(&bytes, b0 + 4 + 28);
    put32(&mut bytes, a_last + 4 + 28, b0_list);
    put32(&mut bytes, b1 + 4 + 16, rel(a_last));
    put32(&mut bytes, b0 + 4 + 20, 0);
    put32(&mut bytes, b0 + 4 + 28, u32::MAX);
    refused(&bytes, &["deeper than 512 levels"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any corruption of a valid hive: an error or a hive that writes and reads back.
    #[test]
    fn corruption_never_panics(edits in prop::collection::vec((0usize..20_000, any::<u8>()), 1..8)) {
        let mut bytes = sample();
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        if let Ok(hive) = Hive::parse_with(&bytes, ReadOptions { allow_dirty: true })
            && let Ok(written) = hive.to_bytes()
        {
            prop_assert!(Hive::parse(&written).is_ok());
        }
    }
}
