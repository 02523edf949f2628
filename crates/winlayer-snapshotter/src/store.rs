//! The metadata store: one redb file, one transaction per operation, containerd's storage
//! semantics (`snapshots/storage`).
//!
//! Tables:
//! * `snapshots`: key or name → record (JSON): ID, kind, parent name, parent IDs (immediate
//!   parent first), times, labels, usage recorded at commit;
//! * `ids`: ID → key or name, to tell live snapshot directories from orphans;
//! * `children`: (parent ID, child ID), to refuse removing a parent; IDs survive Commit, so the
//!   index never needs rewriting;
//! * `meta`: the next ID (a sequence that only grows, so IDs are never reused), the format
//!   version and the mode the root was created in.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::snapshot::{Info, Kind, Time, Usage};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const IDS: TableDefinition<u64, &str> = TableDefinition::new("ids");
const CHILDREN: TableDefinition<(u64, u64), ()> = TableDefinition::new("children");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const NEXT_ID: &str = "next_id";
const FORMAT: &str = "format";
const MODE: &str = "mode";
const FORMAT_VERSION: &[u8] = b"winlayer-snapshotter/1";

/// A snapshot as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Its ID: names its directory; kept by Commit.
    pub id: u64,
    /// Its kind.
    pub kind: Kind,
    /// The parent's name, or "".
    pub parent: String,
    /// The IDs of every ancestor, immediate parent first, base layer last.
    pub parent_ids: Vec<u64>,
    /// Creation (or commit) time.
    pub created: Time,
    /// Last label change.
    pub updated: Time,
    /// Labels, none with an empty value.
    pub labels: BTreeMap<String, String>,
    /// Usage recorded at commit; zero for active and view snapshots.
    pub usage: Usage,
}

impl Record {
    /// The Info containerd sees for this record under `name`.
    pub fn info(&self, name: &str) -> Info {
        Info {
            name: name.to_owned(),
            parent: self.parent.clone(),
            kind: self.kind,
            created: self.created,
            updated: self.updated,
            labels: self.labels.clone(),
        }
    }
}

/// The metadata database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database at `path` for a root laid out for `mode`. A root made
    /// for another mode is refused: the layouts differ.
    pub fn open(path: &Path, mode: &str) -> Result<Store> {
        let mut builder = Database::builder();
        // A damaged file gives an error, never a panic.
        builder.set_check_integrity_on_open(true);
        let db = builder
            .create(path)
            .map_err(|e| Error::internal(format!("opening metadata database {}: {e}", path.display())))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(SNAPSHOTS)?;
            txn.open_table(IDS)?;
            txn.open_table(CHILDREN)?;
            let mut meta = txn.open_table(META)?;
            let format = meta.get(FORMAT)?.map(|v| v.value().to_vec());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT, FORMAT_VERSION)?;
                    meta.insert(MODE, mode.as_bytes())?;
                    meta.insert(NEXT_ID, 1u64.to_le_bytes().as_slice())?;
                }
                Some(FORMAT_VERSION) => {
                    let stored = meta.get(MODE)?.map(|v| String::from_utf8_lossy(v.value()).into_owned());
                    if stored.as_deref() != Some(mode) {
                        return Err(Error::invalid_argument(format!(
                            "{} was created for mode {}, not {mode}: use that mode or another root",
                            path.display(),
                            stored.as_deref().unwrap_or("(none)")
                        )));
                    }
                }
                Some(other) => {
                    return Err(Error::internal(format!(
                        "{} is not a winlayer snapshotter database (format {:?})",
                        path.display(),
                        String::from_utf8_lossy(other)
                    )));
                }
            }
        }
        txn.commit()?;
        Ok(Store { db })
    }

    /// A consistent read-only view.
    pub fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx { txn: self.db.begin_read()? })
    }

    /// Runs `f` in one write transaction, committed (durably) only when `f` succeeds.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write()?;
        let value = f(&mut WriteTx { txn: &txn })?;
        txn.commit()?;
        Ok(value)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("metadata database: record of snapshot {key:?} is damaged: {e}")))
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).expect("a record always serializes")
}

fn get(table: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<Record>> {
    match table.get(key)? {
        Some(v) => decode(key, v.value()).map(Some),
        None => Ok(None),
    }
}

fn not_found(key: &str) -> Error {
    Error::not_found(format!("snapshot {key:?} does not exist"))
}

/// Non-empty labels only: containerd drops a label set to "".
fn without_empty(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A read transaction.
pub struct ReadTx {
    txn: redb::ReadTransaction,
}

impl ReadTx {
    /// The record of `key`, or NotFound.
    pub fn get(&self, key: &str) -> Result<Record> {
        get(&self.txn.open_table(SNAPSHOTS)?, key)?.ok_or_else(|| not_found(key))
    }

    /// Calls `f` with every snapshot, in key order.
    pub fn walk(&self, mut f: impl FnMut(&str, Record) -> Result<()>) -> Result<()> {
        let table = self.txn.open_table(SNAPSHOTS)?;
        for entry in table.iter()? {
            let (key, value) = entry?;
            f(key.value(), decode(key.value(), value.value())?)?;
        }
        Ok(())
    }

    /// The IDs of every snapshot.
    pub fn ids(&self) -> Result<HashSet<u64>> {
        let table = self.txn.open_table(IDS)?;
        let mut ids = HashSet::new();
        for entry in table.iter()? {
            ids.insert(entry?.0.value());
        }
        Ok(ids)
    }

    /// The next ID the sequence will give.
    pub fn next_id(&self) -> Result<u64> {
        read_next_id(&self.txn.open_table(META)?)
    }
}

fn read_next_id(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64> {
    let value = meta.get(NEXT_ID)?.ok_or_else(|| Error::internal("metadata database: the ID sequence is missing"))?;
    let bytes: [u8; 8] =
        value.value().try_into().map_err(|_| Error::internal("metadata database: the ID sequence is damaged"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// A write transaction.
pub struct WriteTx<'a> {
    txn: &'a redb::WriteTransaction,
}

impl WriteTx<'_> {
    /// Records a new active or view snapshot `key` on `parent` ("" for none) with a fresh ID.
    /// containerd's order of checks: the parent (NotFound, then InvalidArgument when it is not
    /// committed), then the key (AlreadyExists).
    pub fn create(&mut self, kind: Kind, key: &str, parent: &str, labels: &BTreeMap<String, String>) -> Result<Record> {
        if kind == Kind::Committed {
            return Err(Error::invalid_argument("only active and view snapshots can be created"));
        }
        if key.is_empty() {
            return Err(Error::invalid_argument("snapshot key must not be empty"));
        }
        let mut snapshots = self.txn.open_table(SNAPSHOTS)?;
        let parent_ids = if parent.is_empty() {
            Vec::new()
        } else {
            let p = get(&snapshots, parent)?
                .ok_or_else(|| Error::not_found(format!("parent snapshot {parent:?} does not exist")))?;
            if p.kind != Kind::Committed {
                return Err(Error::invalid_argument(format!("parent {parent:?} is not a committed snapshot")));
            }
            std::iter::once(p.id).chain(p.parent_ids).collect()
        };
        if snapshots.get(key)?.is_some() {
            return Err(Error::already_exists(format!("snapshot {key:?}")));
        }
        let id = self.allocate_id()?;
        let now = Time::now();
        let record = Record {
            id,
            kind,
            parent: parent.to_owned(),
            parent_ids,
            created: now,
            updated: now,
            labels: without_empty(labels),
            usage: Usage::default(),
        };
        snapshots.insert(key, encode(&record).as_slice())?;
        self.txn.open_table(IDS)?.insert(id, key)?;
        if let Some(&parent_id) = record.parent_ids.first() {
            self.txn.open_table(CHILDREN)?.insert((parent_id, id), ())?;
        }
        Ok(record)
    }

    /// The record of `key`, or NotFound.
    pub fn get(&self, key: &str) -> Result<Record> {
        get(&self.txn.open_table(SNAPSHOTS)?, key)?.ok_or_else(|| not_found(key))
    }

    /// Turns active `key` into committed `name`, keeping its ID and parent, replacing its labels
    /// with `labels` and recording `usage`. containerd's order: `name` taken (AlreadyExists),
    /// `key` missing (NotFound), `key` not active (FailedPrecondition).
    pub fn commit(&mut self, name: &str, key: &str, labels: &BTreeMap<String, String>, usage: Usage) -> Result<Record> {
        if name.is_empty() {
            return Err(Error::invalid_argument("committed snapshot name must not be empty"));
        }
        let mut snapshots = self.txn.open_table(SNAPSHOTS)?;
        if snapshots.get(name)?.is_some() {
            return Err(Error::already_exists(format!("committed snapshot {name:?}")));
        }
        let mut record =
            get(&snapshots, key)?.ok_or_else(|| Error::not_found(format!("active snapshot {key:?} does not exist")))?;
        if record.kind != Kind::Active {
            return Err(Error::failed_precondition(format!("snapshot {key:?} is not active")));
        }
        let now = Time::now();
        record.kind = Kind::Committed;
        record.created = now;
        record.updated = now;
        record.labels = without_empty(labels);
        record.usage = usage;
        snapshots.remove(key)?;
        snapshots.insert(name, encode(&record).as_slice())?;
        self.txn.open_table(IDS)?.insert(record.id, name)?;
        Ok(record)
    }

    /// Forgets `key`. A snapshot with children cannot be removed (FailedPrecondition).
    pub fn remove(&mut self, key: &str) -> Result<Record> {
        let mut snapshots = self.txn.open_table(SNAPSHOTS)?;
        let record = get(&snapshots, key)?.ok_or_else(|| not_found(key))?;
        let mut children = self.txn.open_table(CHILDREN)?;
        if children.range((record.id, 0)..=(record.id, u64::MAX))?.next().is_some() {
            return Err(Error::failed_precondition(format!("cannot remove snapshot {key:?} with child")));
        }
        snapshots.remove(key)?;
        self.txn.open_table(IDS)?.remove(record.id)?;
        if let Some(&parent_id) = record.parent_ids.first() {
            children.remove((parent_id, record.id))?;
        }
        Ok(record)
    }

    /// Changes the labels of `name` as containerd's `UpdateInfo` does: no field paths replace
    /// them all, `labels` too, `labels.<k>` sets or (when absent or empty) deletes one label;
    /// any other path is InvalidArgument. Sets the update time.
    pub fn update(&mut self, name: &str, labels: &BTreeMap<String, String>, fieldpaths: &[String]) -> Result<Record> {
        let mut snapshots = self.txn.open_table(SNAPSHOTS)?;
        let mut record = get(&snapshots, name)?.ok_or_else(|| not_found(name))?;
        if fieldpaths.is_empty() {
            record.labels = labels.clone();
        }
        for path in fieldpaths {
            if let Some(label) = path.strip_prefix("labels.") {
                match labels.get(label) {
                    Some(value) => record.labels.insert(label.to_owned(), value.clone()),
                    None => record.labels.remove(label),
                };
            } else if path == "labels" {
                record.labels = labels.clone();
            } else {
                return Err(Error::invalid_argument(format!("cannot update {path:?} field on snapshot {name:?}")));
            }
        }
        record.labels = without_empty(&record.labels);
        record.updated = Time::now();
        snapshots.insert(name, encode(&record).as_slice())?;
        Ok(record)
    }

    /// Moves the ID sequence to at least `next`, so IDs seen on disk are never given again.
    pub fn advance_ids_to(&mut self, next: u64) -> Result<()> {
        let mut meta = self.txn.open_table(META)?;
        if read_next_id(&meta)? < next {
            meta.insert(NEXT_ID, next.to_le_bytes().as_slice())?;
        }
        Ok(())
    }

    fn allocate_id(&mut self) -> Result<u64> {
        let mut meta = self.txn.open_table(META)?;
        let id = read_next_id(&meta)?;
        let next = id.checked_add(1).ok_or_else(|| Error::internal("the snapshot ID sequence is exhausted"))?;
        meta.insert(NEXT_ID, next.to_le_bytes().as_slice())?;
        Ok(id)
    }
}
