//! Where the GUIDs of new disks and of each modification come from.

use uuid::Uuid;

/// The source of the GUIDs a disk gets when it is created or changed (its FileWriteGuid,
/// DataWriteGuid and virtual disk id).
///
/// [MS-VHDX] wants a new, unique DataWriteGuid every time a disk's contents change, because a
/// differencing child records its parent's DataWriteGuid and refuses a parent that changed
/// since. Random GUIDs (the default) give that guarantee. A seed gives byte-identical files
/// for identical inputs instead, at the price that two different changes made from the same
/// state with the same seed get the same GUID: use it for reproducible builds, not for disks
/// that are changed by hand afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ids {
    /// Fresh random (version 4) GUIDs.
    #[default]
    Random,
    /// Name-based (version 5) GUIDs derived from the seed, what they are for and the header
    /// sequence number they are written with.
    Seeded(String),
}

impl Ids {
    /// The source for another disk made from the same seed (so that, say, a base disk and its
    /// child do not share GUIDs).
    pub fn for_disk(&self, label: &str) -> Ids {
        match self {
            Ids::Random => Ids::Random,
            Ids::Seeded(seed) => Ids::Seeded(format!("{seed}/{label}")),
        }
    }

    /// The GUID for `purpose` in the header with `sequence`.
    pub fn guid(&self, purpose: &str, sequence: u64) -> Uuid {
        match self {
            Ids::Random => Uuid::new_v4(),
            Ids::Seeded(seed) => {
                let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"winlayer.vhdx");
                Uuid::new_v5(&namespace, format!("{seed}\n{purpose}\n{sequence}").as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_stable_and_distinct() {
        let ids = Ids::Seeded("s".into());
        assert_eq!(ids.guid("data-write", 1), ids.guid("data-write", 1));
        assert_ne!(ids.guid("data-write", 1), ids.guid("data-write", 2));
        assert_ne!(ids.guid("data-write", 1), ids.guid("file-write", 1));
        assert_ne!(Ids::Random.guid("x", 0), Ids::Random.guid("x", 0));
    }
}
