//! NTFS extended attributes and the FILE_FULL_EA_INFORMATION list Windows exchanges them in.

/// One extended attribute: a name (bytes, at most 255) and a value (at most 65535 bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtendedAttribute {
    /// The EA name, verbatim.
    pub name: Vec<u8>,
    /// The EA value.
    pub value: Vec<u8>,
}

/// What is wrong with an EA or an EA list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EaError {
    /// A name or value Windows cannot store.
    #[error("extended attribute {0:?}: {1}")]
    Invalid(String, &'static str),
    /// A malformed FILE_FULL_EA_INFORMATION list.
    #[error("extended attribute list: {0}")]
    Malformed(&'static str),
}

impl ExtendedAttribute {
    /// Checks the limits NTFS and the tar dialect impose.
    pub fn check(&self) -> Result<(), EaError> {
        let name = String::from_utf8_lossy(&self.name).into_owned();
        if self.name.is_empty() {
            return Err(EaError::Invalid(name, "empty name"));
        }
        if self.name.len() > 255 {
            return Err(EaError::Invalid(name, "name longer than 255 bytes"));
        }
        if self.value.len() > 65535 {
            return Err(EaError::Invalid(name, "value longer than 65535 bytes"));
        }
        if self.name.iter().any(|&b| b == 0 || b == b'=' || b == b'\n') {
            return Err(EaError::Invalid(name, "name contains NUL, '=' or newline"));
        }
        Ok(())
    }
}

/// Packs EAs into a FILE_FULL_EA_INFORMATION list (flags 0, each entry padded to 4 bytes).
pub fn encode_list(eas: &[ExtendedAttribute]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, ea) in eas.iter().enumerate() {
        let len = 8 + ea.name.len() + 1 + ea.value.len();
        let padded = len.div_ceil(4) * 4;
        let next = if i + 1 == eas.len() { 0 } else { padded as u32 };
        out.extend_from_slice(&next.to_le_bytes());
        out.push(0);
        out.push(ea.name.len() as u8);
        out.extend_from_slice(&(ea.value.len() as u16).to_le_bytes());
        out.extend_from_slice(&ea.name);
        out.push(0);
        out.extend_from_slice(&ea.value);
        out.resize(out.len() + padded - len, 0);
    }
    out
}

/// Reads a FILE_FULL_EA_INFORMATION list; flags are dropped, as the tar dialect drops them.
pub fn decode_list(buf: &[u8]) -> Result<Vec<ExtendedAttribute>, EaError> {
    let mut eas = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let entry = &buf[at..];
        if entry.len() < 8 {
            return Err(EaError::Malformed("entry header is truncated"));
        }
        let next = u32::from_le_bytes(entry[0..4].try_into().unwrap()) as usize;
        let name_len = entry[5] as usize;
        let value_len = u16::from_le_bytes([entry[6], entry[7]]) as usize;
        let end = 8 + name_len + 1 + value_len;
        if entry.len() < end {
            return Err(EaError::Malformed("name or value runs past the end"));
        }
        if entry[8 + name_len] != 0 {
            return Err(EaError::Malformed("name is not NUL-terminated"));
        }
        eas.push(ExtendedAttribute { name: entry[8..8 + name_len].to_vec(), value: entry[9 + name_len..end].to_vec() });
        if next == 0 {
            break;
        }
        if next < end || !next.is_multiple_of(4) {
            return Err(EaError::Malformed("next-entry offset overlaps the entry or is unaligned"));
        }
        at += next;
    }
    Ok(eas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_round_trips_with_padding() {
        let eas = vec![
            ExtendedAttribute { name: b"A".to_vec(), value: b"xyz".to_vec() },
            ExtendedAttribute { name: b"$KERNEL.PURGE.ESBCACHE".to_vec(), value: vec![1, 2, 3, 4, 5] },
        ];
        let buf = encode_list(&eas);
        // first entry: 8 + 1 + 1 + 3 = 13 -> 16
        assert_eq!(&buf[0..4], &16u32.to_le_bytes());
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(decode_list(&buf).unwrap(), eas);
    }

    #[test]
    fn malformed_lists_are_errors() {
        let buf = encode_list(&[
            ExtendedAttribute { name: b"N".to_vec(), value: b"v".to_vec() },
            ExtendedAttribute { name: b"M".to_vec(), value: vec![] },
        ]);
        for cut in 1..buf.len() - 3 {
            let r = decode_list(&buf[..cut]);
            assert!(r.is_err() || r.unwrap().len() < 2, "cut {cut}");
        }
        let mut looped = buf.clone();
        looped[0..4].copy_from_slice(&4u32.to_le_bytes());
        assert!(decode_list(&looped).is_err());
    }

    #[test]
    fn limits() {
        assert!(ExtendedAttribute { name: vec![b'a'; 256], value: vec![] }.check().is_err());
        assert!(ExtendedAttribute { name: b"a=b".to_vec(), value: vec![] }.check().is_err());
        assert!(ExtendedAttribute { name: b"ok".to_vec(), value: vec![0; 65536] }.check().is_err());
        assert!(ExtendedAttribute { name: b"ok".to_vec(), value: vec![0; 65535] }.check().is_ok());
    }
}
