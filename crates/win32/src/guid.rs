//! GUIDs in Windows' layout (`Data1` u32, `Data2` u16, `Data3` u16, `Data4` [u8; 8]).

use std::fmt;
use std::str::FromStr;

use windows_sys::core::GUID;

/// A GUID, written and parsed as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (braces optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guid(pub u128);

impl Guid {
    /// The all-zero GUID.
    pub const NIL: Guid = Guid(0);

    pub(crate) fn to_sys(self) -> GUID {
        GUID::from_u128(self.0)
    }

    pub(crate) fn from_sys(g: &GUID) -> Guid {
        let d4 = u64::from_be_bytes(g.data4) as u128;
        Guid((g.data1 as u128) << 96 | (g.data2 as u128) << 80 | (g.data3 as u128) << 64 | d4)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Text that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
pub struct GuidError(String);

impl FromStr for Guid {
    type Err = GuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GuidError(s.to_string());
        let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
        let groups: Vec<&str> = inner.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] || !groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad());
        }
        u128::from_str_radix(&groups.concat(), 16).map(Guid).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_layout_round_trip() {
        let g: Guid = "{ec984aec-a0f9-47e9-901f-71415a66345b}".parse().unwrap();
        assert_eq!(g.to_string(), "ec984aec-a0f9-47e9-901f-71415a66345b");
        let sys = g.to_sys();
        assert_eq!((sys.data1, sys.data2, sys.data3), (0xec984aec, 0xa0f9, 0x47e9));
        assert_eq!(sys.data4, [0x90, 0x1f, 0x71, 0x41, 0x5a, 0x66, 0x34, 0x5b]);
        assert_eq!(Guid::from_sys(&sys), g);
        for bad in ["", "ec984aec-a0f9-47e9-901f-71415a66345", "ec984aec+a0f9-47e9-901f-71415a66345b", "{x}"] {
            assert!(bad.parse::<Guid>().is_err(), "{bad}");
        }
    }
}
