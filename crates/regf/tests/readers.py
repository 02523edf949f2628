#!/usr/bin/env python3
"""Reads registry hives with one independent reader and prints, as JSON, what that reader saw.

usage: readers.py READER HIVE...

READER is one of: hivex (python3-hivex, needs the system python), hivexml (the hivexml
command), regipy, python-registry, dissect, libregf.

For every hive the output holds the root key's name and every key below it by path (relative
to the root, "\\" for the root itself) with its values as [name, type, data], data in a
canonical form: text for REG_SZ and REG_EXPAND_SZ, a list for REG_MULTI_SZ, a number for
REG_DWORD and REG_QWORD, hex otherwise. Keys are sorted by path, values by name, so readers
that list in different orders compare equal. Where a reader can say more, a key also has:
"timestamp" (FILETIME ticks; hivex, libregf), "security" (descriptor hex; dissect),
"layer_bits" (the nk layered-key byte) and "tombstones" (names of tombstone values; dissect).
"""

import base64
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

REG_TYPES = {
    "REG_NONE": 0, "REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_BINARY": 3, "REG_DWORD": 4,
    "REG_DWORD_BIG_ENDIAN": 5, "REG_LINK": 6, "REG_MULTI_SZ": 7, "REG_QWORD": 11,
}


def canon(value_type, raw):
    """The canonical form of raw value data."""
    if value_type in (1, 2):
        text = raw.decode("utf-16-le")
        return text[:-1] if text.endswith("\0") else text
    if value_type == 7:
        items = raw.decode("utf-16-le").split("\0")
        return [s for s in items if s]
    if value_type == 4 and len(raw) == 4:
        return int.from_bytes(raw, "little")
    if value_type == 11 and len(raw) == 8:
        return int.from_bytes(raw, "little")
    return raw.hex()


def walk(root, name, children, record):
    """Depth-first walk: name(k), children(k), record(k) -> {"values": [(name, type, canon)], ...}."""
    keys = {}
    stack = [("\\", root)]
    while stack:
        path, key = stack.pop()
        if path in keys:
            raise SystemExit(f"{path} listed twice")
        rec = record(key)
        rec["values"] = sorted([list(v) for v in rec["values"]], key=lambda v: v[0])
        keys[path] = rec
        for child in children(key):
            stack.append(((path if path != "\\" else "") + "\\" + name(child), child))
    return {"root": name(root), "keys": dict(sorted(keys.items()))}


def read_hivex(path):
    import hivex

    h = hivex.Hivex(path)

    def record(node):
        values = []
        for v in h.node_values(node):
            # hivex fails to fetch zero-length data stored out of line (as Windows stores
            # tombstone values), so such data is not fetched.
            t, length = h.value_type(v)
            raw = h.value_value(v)[1] if length else b""
            values.append((h.value_key(v), t, canon(t, raw)))
        return {"values": values, "timestamp": h.node_timestamp(node)}

    return walk(h.root(), h.node_name, h.node_children, record)


def read_hivexml(path):
    xml = subprocess.run(["hivexml", path], check=True, capture_output=True).stdout
    root = ET.fromstring(xml).find("node")
    types = {"none": 0, "string": 1, "expand": 2, "binary": 3, "int32": 4, "int64": 11, "string-list": 7}

    def record(node):
        values = []
        for v in node.findall("value"):
            t = types[v.get("type")]
            name = v.get("key") or ""
            if v.get("encoding") == "base64":
                values.append((name, t, canon(t, base64.b64decode(v.get("value") or ""))))
            elif t == 7:
                values.append((name, t, [s.text for s in v.findall("string") if s.text]))
            elif t in (4, 11):
                # hivexml prints numbers signed.
                values.append((name, t, int(v.get("value")) % (1 << (32 if t == 4 else 64))))
            else:
                values.append((name, t, v.get("value") or ""))
        return {"values": values}

    return walk(root, lambda n: n.get("name"), lambda n: n.findall("node"), record)


def read_regipy(path):
    from regipy.registry import RegistryHive

    hive = RegistryHive(path)

    def record(key):
        values = []
        for v in key.iter_values(trim_values=False):
            t = REG_TYPES[v.value_type]
            data = v.value
            if isinstance(data, bytes):
                data = canon(t, data)
            values.append(("" if v.name == "(default)" else v.name, t, data))
        return {"values": values}

    return walk(hive.root, lambda k: k.name, lambda k: list(k.iter_subkeys()), record)


def read_python_registry(path):
    from Registry import Registry

    reg = Registry.Registry(path)

    def record(key):
        # python-registry names the default value "(default)".
        def name(v):
            return v.name() if v._vkrecord.has_name() else ""

        return {"values": [(name(v), v.value_type(), canon(v.value_type(), v.raw_data())) for v in key.values()]}

    return walk(reg.root(), lambda k: k.name(), lambda k: k.subkeys(), record)


def read_dissect(path):
    from dissect.regf import regf

    hive = regf.RegistryHive(open(path, "rb"))

    def data(v):
        # dissect fails on zero-length data stored out of line (as Windows stores tombstone
        # values), so such data is not fetched.
        return v.data if v.size else b""

    def record(key):
        return {
            # dissect names the default value "(Default)".
            "values": [("" if v.cell.NameLength == 0 else v.name, v.type, canon(v.type, data(v))) for v in key.values()],
            "security": hive.cell(key.cell.Security).cell.Descriptor.hex(),
            # The layered-key bit fields are the second byte of the nk "Spare" (access bits).
            "layer_bits": (key.cell.Spare >> 8) & 0xFF,
            "tombstones": sorted(v.name for v in key.values() if v.cell.Flags & 2),
        }

    return walk(hive.root(), lambda k: k.name, lambda k: list(k.subkeys()), record)


def read_libregf(path):
    import pyregf

    f = pyregf.file()
    f.open(path)

    def record(key):
        return {
            "values": [(v.name or "", v.type, canon(v.type, v.data or b"")) for v in key.values],
            "timestamp": key.get_last_written_time_as_integer(),
        }

    return walk(f.get_root_key(), lambda k: k.name, lambda k: list(k.sub_keys), record)


READERS = {
    "hivex": read_hivex,
    "hivexml": read_hivexml,
    "regipy": read_regipy,
    "python-registry": read_python_registry,
    "dissect": read_dissect,
    "libregf": read_libregf,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in READERS:
        raise SystemExit(__doc__)
    print(json.dumps([READERS[sys.argv[1]](p) for p in sys.argv[2:]], ensure_ascii=False))
