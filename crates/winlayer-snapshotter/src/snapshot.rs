//! The snapshot model: containerd's `snapshots.Info`, `Kind`, `Usage` and `mount.Mount`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A snapshot's kind. Keys and names share one space; only Committed snapshots are parents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Read-only, made by View; removed, never committed.
    View,
    /// Writable, made by Prepare; becomes Committed through Commit.
    Active,
    /// Immutable, made by Commit; the only kind that can be a parent.
    Committed,
}

/// A UTC instant with nanoseconds, as protobuf's Timestamp carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Time {
    /// The current time.
    pub fn now() -> Time {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Time { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() },
            // A clock before 1970 is not worth failing a request over.
            Err(_) => Time::default(),
        }
    }
}

/// What Stat, Update and List report about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The key (active, view) or name (committed).
    pub name: String,
    /// The committed parent's name, or "".
    pub parent: String,
    /// The kind.
    pub kind: Kind,
    /// When it was created (for committed snapshots: when it was committed).
    pub created: Time,
    /// When its labels last changed.
    pub updated: Time,
    /// Labels; empty values are never stored.
    pub labels: BTreeMap<String, String>,
}

/// Resources a snapshot uses itself, without its parents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated on disk.
    pub size: i64,
    /// Distinct inodes.
    pub inodes: i64,
}

/// A mount, as containerd's `mount.Mount` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type (`bind`, `overlay`, `windows-layer`, `CimFS`).
    pub kind: String,
    /// What to mount.
    pub source: String,
    /// Options in fstab style.
    pub options: Vec<String>,
}

/// containerd's unpacker names extraction snapshots `extract-<time>-<random> <chainID>`; the
/// Windows snapshotters recognise them by this substring.
pub fn is_extraction_key(key: &str) -> bool {
    key.contains("extract")
}
