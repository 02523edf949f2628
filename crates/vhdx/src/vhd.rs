//! The footer of a fixed VHD (Microsoft's published "Virtual Hard Disk Image Format
//! Specification"): 512 bytes appended to a raw image make it a disk Hyper-V attaches. Windows
//! container tools append one to a finished single-file block CIM so a utility VM can take the
//! layer as a SCSI disk; nothing is padded, the footer follows the last byte of the image.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};
use uuid::Uuid;
use winlayer_core::{Error, Result};

use crate::storage::Storage;

/// The size of a VHD footer.
pub const FOOTER_SIZE: usize = 512;
/// The sector size the footer's sizes and geometry count in.
const SECTOR: u64 = 512;
/// "The reserved bit" of the features field, which the specification says is always set.
const FEATURES: u32 = 0x0000_0002;
/// Format version 1.0.
const VERSION: u32 = 0x0001_0000;
/// Disk type 2: a fixed hard disk.
const FIXED: u32 = 2;
/// Who made the disk. Hyper-V's and Disk2vhd's creators are the ones readers take the current
/// size from rather than the (rounded down) geometry, so winlayer records itself as "win ",
/// the creator of disks Windows itself makes, with its own version.
const CREATOR_APP: &[u8; 4] = b"win ";
const CREATOR_VERSION: u32 = 0x000a_0000;
/// "Wi2k": made on (for) Windows.
const CREATOR_OS: &[u8; 4] = b"Wi2k";

/// Cylinders, heads and sectors per track for a disk of `size` bytes, by the algorithm the
/// specification gives (appendix "CHS calculation"); a disk too big for CHS gets the largest
/// geometry.
pub fn geometry(size: u64) -> (u16, u8, u8) {
    let total = (size / SECTOR).min(65535 * 16 * 255);
    let (sectors, heads, cylinder_times_heads) = if total >= 65535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut sectors = 17;
        let mut cth = total / 17;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            sectors = 31;
            heads = 16;
            cth = total / 31;
        }
        if cth >= heads * 1024 {
            sectors = 63;
            heads = 16;
            cth = total / 63;
        }
        (sectors, heads, cth)
    };
    ((cylinder_times_heads / heads) as u16, heads as u8, sectors as u8)
}

/// The footer of a fixed disk whose data (everything before the footer) is `size` bytes.
pub fn fixed_footer(size: u64, unique_id: Uuid) -> [u8; FOOTER_SIZE] {
    let mut f = [0u8; FOOTER_SIZE];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&FEATURES.to_be_bytes());
    f[12..16].copy_from_slice(&VERSION.to_be_bytes());
    // No dynamic header: a fixed disk's data offset is all ones.
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    // Timestamp (24..28) stays 0, 2000-01-01 00:00 UTC: the same input makes the same bytes.
    f[28..32].copy_from_slice(CREATOR_APP);
    f[32..36].copy_from_slice(&CREATOR_VERSION.to_be_bytes());
    f[36..40].copy_from_slice(CREATOR_OS);
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (cylinders, heads, sectors) = geometry(size);
    f[56..58].copy_from_slice(&cylinders.to_be_bytes());
    f[58] = heads;
    f[59] = sectors;
    f[60..64].copy_from_slice(&FIXED.to_be_bytes());
    f[68..84].copy_from_slice(unique_id.as_bytes());
    // Saved state (84) 0, reserved bytes 0; the checksum is the one's complement of the sum of
    // every other byte.
    let sum = f.iter().fold(0u32, |sum, &b| sum.wrapping_add(b as u32));
    f[64..68].copy_from_slice(&(!sum).to_be_bytes());
    f
}

/// A unique id that depends only on the first `len` bytes of `file`: a name-based GUID of
/// their SHA-256, so the same image always gets the same footer.
pub fn content_id(file: &File, len: u64) -> Result<Uuid> {
    let mut hash = Sha256::new();
    let mut reader = file.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io("reading the image for its VHD unique id", e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"winlayer.vhd");
    Ok(Uuid::new_v5(&namespace, &hash.finalize()))
}

/// Appends a fixed-VHD footer to the image in `file`, whose current length is the disk's size.
/// Without `unique_id` the id is [`content_id`] of the image. Returns the id written.
pub fn append_fixed_footer(file: &mut File, unique_id: Option<Uuid>) -> Result<Uuid> {
    let size = file.metadata().map_err(|e| Error::io("reading the image's length", e))?.len();
    if !size.is_multiple_of(SECTOR) {
        return Err(Error::Invalid(format!("a VHD's data is whole 512-byte sectors; this image is {size} bytes")));
    }
    let id = match unique_id {
        Some(id) => id,
        None => {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("seeking to the image's start", e))?;
            content_id(file, size)?
        }
    };
    file.write_at(&fixed_footer(size, id), size).map_err(|e| Error::io("appending the VHD footer", e))?;
    file.sync().map_err(|e| Error::io("syncing the VHD", e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(f: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
    }

    fn be64(f: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(f[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn every_field_of_a_fixed_footer() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let size = 20 * 1024 * 1024 + 3 * 512;
        let f = fixed_footer(size, id);
        assert_eq!(&f[0..8], b"conectix");
        assert_eq!(be32(&f, 8), 2, "features: only the reserved bit");
        assert_eq!(be32(&f, 12), 0x0001_0000, "version 1.0");
        assert_eq!(be64(&f, 16), u64::MAX, "a fixed disk has no dynamic header");
        assert_eq!(be32(&f, 24), 0, "no wall-clock timestamp");
        assert_eq!(&f[28..32], b"win ");
        assert_eq!(&f[36..40], b"Wi2k");
        assert_eq!(be64(&f, 40), size, "original size");
        assert_eq!(be64(&f, 48), size, "current size");
        // 40963 sectors: 17 sectors a track gives 2409 cylinder-heads, needing 3 heads, raised to 4.
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), 602);
        assert_eq!((f[58], f[59]), (4, 17));
        assert_eq!(be32(&f, 60), 2, "disk type fixed");
        assert_eq!(&f[68..84], id.as_bytes());
        assert_eq!(f[84], 0, "saved state");
        assert!(f[85..].iter().all(|&b| b == 0), "reserved bytes");
        // The checksum, summed here byte by byte without the checksum field.
        let sum: u32 = f.iter().enumerate().filter(|(i, _)| !(64..68).contains(i)).map(|(_, &b)| b as u32).sum();
        assert_eq!(be32(&f, 64), !sum);
    }

    #[test]
    fn geometry_at_the_algorithm_s_boundaries() {
        // Small disks: 17 sectors, at least 4 heads.
        assert_eq!(geometry(512 * 17 * 4 * 10), (10, 4, 17));
        // Past 16 heads × 1024 cylinders × 17 sectors: 31 sectors, 16 heads.
        assert_eq!(geometry(512 * 17 * 16 * 1024), (561, 16, 31));
        // Past 16 × 1024 × 31: 63 sectors.
        assert_eq!(geometry(512 * 31 * 16 * 1024 + 512 * 1000), (504, 16, 63));
        // From 65535 × 16 × 63 sectors on: 255 sectors, and the largest geometry beyond CHS's reach.
        assert_eq!(geometry(512 * 65535 * 16 * 63), (16191, 16, 255));
        assert_eq!(geometry(1 << 50), (65535, 16, 255));
    }

    #[test]
    fn the_footer_follows_the_image_and_its_id_comes_from_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.vhd");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let id = append_fixed_footer(&mut file, None).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096 + 512);
        assert!(bytes[..4096].iter().all(|&b| b == 7));
        assert_eq!(&bytes[4096..], &fixed_footer(4096, id));
        let other = dir.path().join("other.vhd");
        std::fs::write(&other, vec![8u8; 4096]).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&other).unwrap();
        assert_ne!(append_fixed_footer(&mut file, None).unwrap(), id);
        std::fs::write(&other, vec![7u8; 4096]).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&other).unwrap();
        assert_eq!(append_fixed_footer(&mut file, None).unwrap(), id, "same content, same id");
        std::fs::write(&other, vec![7u8; 4000]).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&other).unwrap();
        assert!(append_fixed_footer(&mut file, None).unwrap_err().to_string().contains("4000 bytes"));
        assert_eq!(std::fs::metadata(&other).unwrap().len(), 4000, "nothing appended");
    }
}
