//! Applying a layer's differencing hive (`Hives/<H>_Delta`) onto its parent's full hive
//! (`Hives/<H>_BASE`), the job hcsshim gives offreg.dll's `ORMergeHives`.
//!
//! Known (the spec, "Layered keys"; docs/regf.md cites every source): a differencing hive's
//! key node carries layer semantics — merge, tombstone (delete the key and its subtree),
//! supersede-local (replace the key but keep the subkeys below visible), supersede-tree
//! (replace the whole subtree) — and an "inherit class" bit; a value carries a tombstone flag;
//! values of the upper key override same-named lower ones; the newest time stamp wins.
//! Assumed (no public description of `ORMergeHives` exists): the result is an ordinary hive;
//! the upper key's name spelling, security and flags win; values keep the lower key's order
//! with new ones appended in the upper key's order.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::{compare_names, name_key};
use crate::model::{Hive, Key, LayerSemantics, Value};

/// Merges `delta` onto `base`, giving an ordinary (non-layered) hive with `base`'s root name.
pub fn merge(base: Hive, delta: Hive) -> Result<Hive> {
    if base.layered {
        return Err(Error::Merge(
            "the base hive is itself a differencing hive; merge it onto its own base first".into(),
        ));
    }
    if delta.root.layer == LayerSemantics::Tombstone {
        return Err(Error::Merge("the differencing hive's root key is a tombstone; a root cannot be deleted".into()));
    }
    let name = base.root.name.clone();
    let mut root = merge_key(base.root, delta.root).expect("a root that is not a tombstone stays");
    root.name = name;
    Ok(Hive {
        root,
        // The version Windows writes subkey hashes (lh) and big data with; ORSaveHive's exact
        // choice is unpublished.
        minor_version: base.minor_version.max(delta.minor_version).max(5),
        last_written: base.last_written.max(delta.last_written),
        layered: false,
    })
}

/// Reads both hives, merges them and writes the result.
pub fn merge_bytes(base: &[u8], delta: &[u8]) -> Result<Vec<u8>> {
    merge(Hive::parse(base)?, Hive::parse(delta)?)?.to_bytes()
}

/// What becomes of one subkey.
enum Job {
    /// Only below: stays as it is.
    Keep(Key),
    /// Above (and perhaps below): combined.
    Combine(Option<Key>, Key),
}

/// A merged key whose subkeys are still being merged.
struct Frame {
    key: Key,
    jobs: std::vec::IntoIter<Job>,
}

/// The upper key over the lower one, the whole tree below them; `None` when deleted. Walked
/// with an explicit stack, so 512 levels do not exhaust a thread's stack.
fn merge_key(lower: Key, upper: Key) -> Option<Key> {
    let (key, jobs) = combine(Some(lower), upper)?;
    let mut stack = vec![Frame { key, jobs: jobs.into_iter() }];
    loop {
        let top = stack.last_mut().expect("the root stays until the end");
        match top.jobs.next() {
            Some(Job::Keep(key)) => top.key.subkeys.push(key),
            Some(Job::Combine(lower, upper)) => {
                if let Some((key, jobs)) = combine(lower, upper) {
                    stack.push(Frame { key, jobs: jobs.into_iter() });
                }
            }
            None => {
                let done = stack.pop().expect("not empty").key;
                match stack.last_mut() {
                    Some(parent) => parent.key.subkeys.push(done),
                    None => return Some(done),
                }
            }
        }
    }
}

/// One key of the merge, without its subkeys, and what becomes of each of them; `None` when
/// the key is deleted. With nothing below (`lower` is `None`), tombstones vanish and the rest
/// becomes ordinary keys.
fn combine(lower: Option<Key>, upper: Key) -> Option<(Key, Vec<Job>)> {
    let lower = match upper.layer {
        LayerSemantics::Tombstone => return None,
        LayerSemantics::SupersedeTree => None,
        LayerSemantics::Merge | LayerSemantics::SupersedeLocal => lower,
    };
    let (lower_values, lower_subkeys, lower_class, lower_time, lower_security) = match lower {
        Some(k) => (k.values, k.subkeys, k.class, k.last_written, k.security),
        None => (Vec::new(), Vec::new(), None, Default::default(), None),
    };
    let values = match upper.layer {
        LayerSemantics::Merge => overlay(lower_values, upper.values),
        _ => upper.values.into_iter().filter(|v| !v.tombstone).collect(),
    };
    let jobs = join(lower_subkeys, upper.subkeys);
    let key = Key {
        // With nothing below, an inherited class is no class.
        class: if upper.inherit_class { lower_class } else { upper.class },
        last_written: lower_time.max(upper.last_written),
        security: upper.security.or(lower_security),
        layer: LayerSemantics::Merge,
        inherit_class: false,
        values,
        subkeys: Vec::new(),
        ..upper
    };
    Some((key, jobs))
}

/// Lower values overridden or deleted by upper ones of the same name; new ones appended.
fn overlay(lower: Vec<Value>, upper: Vec<Value>) -> Vec<Value> {
    let mut position: HashMap<Vec<u16>, usize> =
        lower.iter().enumerate().map(|(i, v)| (name_key(&v.name), i)).collect();
    let mut out: Vec<Option<Value>> = lower.into_iter().map(Some).collect();
    for value in upper {
        let key = name_key(&value.name);
        let keep = (!value.tombstone).then_some(value);
        match position.get(&key) {
            Some(&i) => out[i] = keep,
            None if keep.is_some() => {
                position.insert(key, out.len());
                out.push(keep);
            }
            None => {}
        }
    }
    out.into_iter().flatten().collect()
}

/// Pairs the subkeys of both layers by name (case-insensitive), in index order.
fn join(lower: Vec<Key>, upper: Vec<Key>) -> Vec<Job> {
    let sorted = |mut keys: Vec<Key>| {
        keys.sort_by(|a, b| compare_names(&a.name, &b.name));
        keys.into_iter().peekable()
    };
    let (mut lower, mut upper) = (sorted(lower), sorted(upper));
    let mut jobs = Vec::new();
    loop {
        let order = match (lower.peek(), upper.peek()) {
            (None, None) => return jobs,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(l), Some(u)) => compare_names(&l.name, &u.name),
        };
        jobs.push(match order {
            Ordering::Less => Job::Keep(lower.next().expect("peeked")),
            Ordering::Greater => Job::Combine(None, upper.next().expect("peeked")),
            Ordering::Equal => Job::Combine(Some(lower.next().expect("peeked")), upper.next().expect("peeked")),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::REG_SZ;
    use winlayer_core::FileTime;

    fn key(name: &str, values: Vec<Value>, subkeys: Vec<Key>) -> Key {
        Key { values, subkeys, ..Key::new(name) }
    }

    fn layer(mut k: Key, semantics: LayerSemantics) -> Key {
        k.layer = semantics;
        k
    }

    #[test]
    fn values_are_overridden_deleted_and_appended() {
        let lower = vec![Value::dword("a", 1), Value::dword("B", 2), Value::dword("c", 3)];
        let upper = vec![Value::tombstone("b"), Value::dword("C", 30), Value::dword("d", 4), Value::tombstone("zz")];
        let names: Vec<_> = overlay(lower, upper).into_iter().map(|v| (v.name, v.data[0])).collect();
        assert_eq!(names, [("a".to_string(), 1), ("C".to_string(), 30), ("d".to_string(), 4)]);
    }

    #[test]
    fn layer_semantics_decide_what_stays_below() {
        let base = Hive {
            root: key(
                "ROOT",
                vec![],
                vec![
                    key("Gone", vec![Value::dword("x", 1)], vec![key("Child", vec![], vec![])]),
                    key("Local", vec![Value::dword("old", 1)], vec![key("Kept", vec![], vec![])]),
                    key("Tree", vec![Value::dword("old", 1)], vec![key("Dropped", vec![], vec![])]),
                    key("Plain", vec![Value::dword("old", 1)], vec![]),
                ],
            ),
            ..Hive::empty("ROOT")
        };
        let mut delta = Hive::empty_delta("DELTA");
        delta.last_written = FileTime::from_ticks(5).unwrap();
        delta.root.subkeys = vec![
            layer(key("gone", vec![], vec![]), LayerSemantics::Tombstone),
            layer(key("LOCAL", vec![Value::dword("new", 2)], vec![]), LayerSemantics::SupersedeLocal),
            layer(
                key("tree", vec![Value::dword("new", 2)], vec![key("Fresh", vec![Value::tombstone("t")], vec![])]),
                LayerSemantics::SupersedeTree,
            ),
            key("Plain", vec![Value::new("new", REG_SZ, vec![])], vec![]),
            layer(key("NeverWas", vec![], vec![]), LayerSemantics::Tombstone),
            key(
                "Added",
                vec![Value::tombstone("nothing")],
                vec![layer(key("Dead", vec![], vec![]), LayerSemantics::Tombstone)],
            ),
        ];
        let merged = merge(base, delta).unwrap();
        assert_eq!(merged.root.name, "ROOT");
        assert!(!merged.layered);
        assert_eq!(merged.last_written.ticks(), 5);
        let paths: Vec<_> = merged.root.walk().into_iter().map(|(p, k)| (p, k.values.len())).collect();
        let expect = [
            ("\\", 0),
            ("\\Added", 0),
            ("\\LOCAL", 1),
            ("\\LOCAL\\Kept", 0),
            ("\\Plain", 2),
            ("\\tree", 1),
            ("\\tree\\Fresh", 0),
        ];
        assert_eq!(paths, expect.map(|(p, n)| (p.to_string(), n)));
        assert_eq!(merged.root.find("local").unwrap().values[0].name, "new");
        assert!(merged.root.walk().iter().all(|(_, k)| k.layer == LayerSemantics::Merge));
    }

    #[test]
    fn class_inheritance_takes_the_lower_class() {
        let mut lower = Key::new("K");
        lower.class = Some(b"c\0".to_vec());
        let mut upper = Key::new("K");
        upper.inherit_class = true;
        assert_eq!(merge_key(lower.clone(), upper.clone()).unwrap().class, lower.class);
        upper.inherit_class = false;
        assert_eq!(merge_key(lower, upper).unwrap().class, None);
    }

    #[test]
    fn refuses_layered_bases_and_deleted_roots() {
        assert!(merge(Hive::empty_delta("A"), Hive::empty_delta("B")).is_err());
        let mut delta = Hive::empty_delta("B");
        delta.root.layer = LayerSemantics::Tombstone;
        assert!(merge(Hive::empty("A"), delta).is_err());
    }
}
