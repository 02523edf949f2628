//! Reparse points for symbolic links and junctions: the REPARSE_DATA_BUFFER Windows stores,
//! built from and read back into the link target a layer tar carries.

/// IO_REPARSE_TAG_SYMLINK.
pub const TAG_SYMLINK: u32 = 0xA000_000C;
/// IO_REPARSE_TAG_MOUNT_POINT (junctions).
pub const TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// SYMLINK_FLAG_RELATIVE.
const SYMLINK_FLAG_RELATIVE: u32 = 1;

/// A link reparse point: what a tar symlink entry describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The target as Windows shows it (the print name), with backslashes.
    pub target: String,
    /// A junction (mount point) rather than a symbolic link.
    pub junction: bool,
}

/// What is wrong with a reparse buffer or a link target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReparseError {
    /// The buffer is malformed.
    #[error("reparse buffer: {0}")]
    Malformed(String),
    /// A tag other than symlink or mount point.
    #[error("unsupported reparse tag 0x{0:08X} (only symbolic links and junctions are)")]
    UnsupportedTag(u32),
    /// The target cannot be stored.
    #[error("link target {0:?}: {1}")]
    Target(String, &'static str),
}

/// Whether a Windows-form target is absolute (`C:\…`, `\\server\…`, `\\?\…`).
pub fn is_absolute_target(target: &str) -> bool {
    let b = target.as_bytes();
    target.starts_with("\\\\") || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// The NT substitute name Windows stores for a target, and whether it is relative.
fn substitute_name(target: &str) -> (String, bool) {
    if let Some(rest) = target.strip_prefix("\\\\?\\") {
        (format!("\\??\\{rest}"), false)
    } else if let Some(rest) = target.strip_prefix("\\\\") {
        (format!("\\??\\UNC\\{rest}"), false)
    } else if is_absolute_target(target) {
        (format!("\\??\\{target}"), false)
    } else {
        (target.to_string(), true)
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

impl Link {
    /// Checks that Windows could store this link: non-empty, no NUL, junctions absolute.
    pub fn check(&self) -> Result<(), ReparseError> {
        if self.target.is_empty() {
            return Err(ReparseError::Target(self.target.clone(), "empty"));
        }
        if self.target.contains('\0') {
            return Err(ReparseError::Target(self.target.clone(), "contains NUL"));
        }
        if self.junction && !is_absolute_target(&self.target) {
            return Err(ReparseError::Target(
                self.target.clone(),
                "a junction must point to an absolute path (C:\\… or \\\\?\\…)",
            ));
        }
        if utf16(&self.target).len() * 2 + 16 > 16 * 1024 {
            return Err(ReparseError::Target(self.target.clone(), "too long for a 16 KiB reparse buffer"));
        }
        Ok(())
    }

    /// The complete REPARSE_DATA_BUFFER (tag, length, reserved, then the name fields).
    pub fn to_reparse_buffer(&self) -> Vec<u8> {
        let (subst, relative) = substitute_name(&self.target);
        let (subst, print) = (utf16(&subst), utf16(&self.target));
        let tag = if self.junction { TAG_MOUNT_POINT } else { TAG_SYMLINK };
        let flags_len = if self.junction { 0 } else { 4 };
        let data_len = 8 + flags_len + subst.len() + 2 + print.len() + 2;
        let mut out = Vec::with_capacity(8 + data_len);
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&(data_len as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        for v in [0, subst.len(), subst.len() + 2, print.len()] {
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        if !self.junction {
            out.extend_from_slice(&(if relative { SYMLINK_FLAG_RELATIVE } else { 0 }).to_le_bytes());
        }
        out.extend_from_slice(&subst);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&print);
        out.extend_from_slice(&[0, 0]);
        out
    }

    /// Reads a REPARSE_DATA_BUFFER back; the print name is the target, or the substitute name
    /// without its `\??\` prefix when the print name is empty.
    pub fn from_reparse_buffer(buf: &[u8]) -> Result<Link, ReparseError> {
        let bad = |m: &str| ReparseError::Malformed(m.to_string());
        if buf.len() < 8 {
            return Err(bad("shorter than its 8-byte header"));
        }
        let tag = u32::from_le_bytes(buf[0..4].try_into().unwrap());
        let junction = match tag {
            TAG_SYMLINK => false,
            TAG_MOUNT_POINT => true,
            other => return Err(ReparseError::UnsupportedTag(other)),
        };
        let data_len = u16::from_le_bytes([buf[4], buf[5]]) as usize;
        let data = buf.get(8..8 + data_len).ok_or_else(|| bad("data length runs past the buffer"))?;
        let fixed = if junction { 8 } else { 12 };
        if data.len() < fixed {
            return Err(bad("too short for its name fields"));
        }
        let field = |i: usize| u16::from_le_bytes([data[2 * i], data[2 * i + 1]]) as usize;
        let names = &data[fixed..];
        let name = |off: usize, len: usize| -> Result<String, ReparseError> {
            let bytes = names.get(off..off + len).ok_or_else(|| bad("name lies outside the buffer"))?;
            if !len.is_multiple_of(2) {
                return Err(bad("odd UTF-16 name length"));
            }
            let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).map_err(|_| bad("name is not valid UTF-16"))
        };
        let subst = name(field(0), field(1))?;
        let print = name(field(2), field(3))?;
        let target = if print.is_empty() {
            subst
                .strip_prefix("\\??\\UNC\\")
                .map(|r| format!("\\\\{r}"))
                .or_else(|| subst.strip_prefix("\\??\\").map(str::to_string))
                .unwrap_or(subst)
        } else {
            print
        };
        Ok(Link { target, junction })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_symlink_layout() {
        let buf = Link { target: "..\\a".into(), junction: false }.to_reparse_buffer();
        // tag, data length = 8 + 4 + (8+2) + (8+2) = 32, reserved
        assert_eq!(&buf[..8], &[0x0C, 0, 0, 0xA0, 32, 0, 0, 0]);
        // subst offset 0 len 8, print offset 10 len 8, flags relative
        assert_eq!(&buf[8..20], &[0, 0, 8, 0, 10, 0, 8, 0, 1, 0, 0, 0]);
        assert_eq!(buf.len(), 8 + 32);
    }

    #[test]
    fn absolute_targets_get_nt_names() {
        for (target, subst) in [
            ("C:\\Windows", "\\??\\C:\\Windows"),
            ("\\\\srv\\share", "\\??\\UNC\\srv\\share"),
            ("\\\\?\\D:\\x", "\\??\\D:\\x"),
        ] {
            assert_eq!(substitute_name(target), (subst.to_string(), false));
            for junction in [false, true] {
                let link = Link { target: target.into(), junction };
                assert_eq!(Link::from_reparse_buffer(&link.to_reparse_buffer()).unwrap(), link);
            }
        }
    }

    #[test]
    fn checks_targets() {
        assert!(Link { target: "rel".into(), junction: true }.check().is_err());
        assert!(Link { target: "".into(), junction: false }.check().is_err());
        assert!(Link { target: "a\0b".into(), junction: false }.check().is_err());
        assert!(Link { target: "C:\\ok".into(), junction: true }.check().is_ok());
    }

    #[test]
    fn hostile_buffers_are_errors() {
        let good = Link { target: "C:\\x".into(), junction: false }.to_reparse_buffer();
        for cut in 0..good.len() {
            assert!(Link::from_reparse_buffer(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut other_tag = good.clone();
        other_tag[3] = 0x80;
        assert!(matches!(Link::from_reparse_buffer(&other_tag), Err(ReparseError::UnsupportedTag(_))));
        let mut far = good.clone();
        far[12] = 0xFF; // print name offset
        assert!(Link::from_reparse_buffer(&far).is_err());
    }
}
