//! Windows metadata as Linux extended attributes, `user.windows.*`: how a Linux tree shows what
//! NTFS keeps beside a file (the CIM FUSE mount, `cim extract --xattrs`, a layer applied into a
//! directory). `attributes` (hex), the four times (FILETIME ticks), `security` (the raw
//! self-relative descriptor), `reparse` (the raw buffer), `ea.<name>`, and `stream.<name>` for
//! alternate streams up to [`MAX_STREAM`] bytes.

use crate::ea::ExtendedAttribute;

/// Prefix of every attribute.
pub const PREFIX: &str = "user.windows.";
/// Largest alternate stream kept as an extended attribute (Linux's limit for a value).
pub const MAX_STREAM: u64 = 64 * 1024;

/// An object's metadata as the raw values the attributes carry.
pub struct ObjectXattrs<'a> {
    /// FILE_ATTRIBUTE_* bits.
    pub attributes: u32,
    /// Creation, last write, last access and change time, in FILETIME ticks.
    pub times: [u64; 4],
    /// The self-relative security descriptor.
    pub security: Option<&'a [u8]>,
    /// The reparse buffer.
    pub reparse: Option<&'a [u8]>,
    /// Extended attributes.
    pub eas: &'a [ExtendedAttribute],
}

impl ObjectXattrs<'_> {
    /// The attributes, in the order they are set and listed.
    pub fn to_vec(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(format!("{PREFIX}attributes"), format!("0x{:08x}", self.attributes).into_bytes())];
        for (name, t) in ["creation_time", "last_write_time", "last_access_time", "change_time"].iter().zip(self.times)
        {
            out.push((format!("{PREFIX}{name}"), t.to_string().into_bytes()));
        }
        if let Some(sd) = self.security {
            out.push((format!("{PREFIX}security"), sd.to_vec()));
        }
        if let Some(buf) = self.reparse {
            out.push((format!("{PREFIX}reparse"), buf.to_vec()));
        }
        for ea in self.eas {
            out.push((format!("{PREFIX}ea.{}", String::from_utf8_lossy(&ea.name)), ea.value.clone()));
        }
        out
    }
}

/// The attribute holding alternate stream `name`.
pub fn stream(name: &str) -> String {
    format!("{PREFIX}stream.{name}")
}
