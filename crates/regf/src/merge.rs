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

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::name_key;
use crate::model::{Hive, Key, LayerSemantics, Value};

/// Merges `delta` onto `base`, giving an ordinary (non-layered) hive with `base`'s root name.
pub fn merge(base: Hive, delta: Hive) -> Result<Hive> {
    if base.layered {
        return Err(Error::Unwritable(
            "the base hive is itself a differencing hive; merge it onto its own base first".into(),
        ));
    }
    if delta.root.layer == LayerSemantics::Tombstone {
        return Err(Error::Unwritable(
            "the differencing hive's root key is a tombstone; a root cannot be deleted".into(),
        ));
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

/// The upper key `delta` over the lower key `base`; `None` when the result is deleted.
fn merge_key(base: Key, delta: Key) -> Option<Key> {
    let (values, subkeys) = match delta.layer {
        LayerSemantics::Tombstone => return None,
        LayerSemantics::SupersedeTree => return materialize(delta),
        LayerSemantics::SupersedeLocal => (own_values(delta.values), merge_subkeys(base.subkeys, delta.subkeys)),
        LayerSemantics::Merge => (overlay(base.values, delta.values), merge_subkeys(base.subkeys, delta.subkeys)),
    };
    Some(Key {
        class: if delta.inherit_class { base.class } else { delta.class },
        last_written: base.last_written.max(delta.last_written),
        security: delta.security.or(base.security),
        layer: LayerSemantics::Merge,
        inherit_class: false,
        values,
        subkeys,
        ..delta
    })
}

/// An upper key with nothing below it: tombstones vanish, the rest becomes ordinary keys.
fn materialize(key: Key) -> Option<Key> {
    if key.layer == LayerSemantics::Tombstone {
        return None;
    }
    Some(Key {
        // Nothing below to inherit a class from.
        class: if key.inherit_class { None } else { key.class },
        layer: LayerSemantics::Merge,
        inherit_class: false,
        values: own_values(key.values),
        subkeys: key.subkeys.into_iter().filter_map(materialize).collect(),
        ..key
    })
}

fn own_values(values: Vec<Value>) -> Vec<Value> {
    values.into_iter().filter(|v| !v.tombstone).collect()
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

/// Joins the subkeys of both layers by name (case-insensitive), in index order.
fn merge_subkeys(lower: Vec<Key>, upper: Vec<Key>) -> Vec<Key> {
    let sorted = |keys: Vec<Key>| {
        let mut keyed: Vec<_> = keys.into_iter().map(|k| (name_key(&k.name), k)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.into_iter().peekable()
    };
    let (mut lower, mut upper) = (sorted(lower), sorted(upper));
    let mut out = Vec::new();
    loop {
        let order = match (lower.peek(), upper.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(l), Some(u)) => l.0.cmp(&u.0),
        };
        let merged = match order {
            std::cmp::Ordering::Less => lower.next().map(|(_, k)| k),
            std::cmp::Ordering::Greater => upper.next().and_then(|(_, k)| materialize(k)),
            std::cmp::Ordering::Equal => {
                let (l, u) = (lower.next().expect("peeked").1, upper.next().expect("peeked").1);
                merge_key(l, u)
            }
        };
        out.extend(merged);
    }
    out
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
