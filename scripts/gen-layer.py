#!/usr/bin/env python3
"""Writes deterministic Windows container layer tars for winlayer's tests and benchmarks.

A layer as Windows exports one (hcsshim through go-winio's backuptar): a Files/ tree with
log-normal file sizes; every object with PAX MSWINDOWS.fileattr, MSWINDOWS.rawsd (binary
self-relative security descriptors, laid out as Windows lays them out), LIBARCHIVE.creationtime,
mtime, atime and ctime at 100 ns precision; some extended attributes; alternate data streams as
`path:stream` entries right after their owner; hard links (WinSxS style, and from the utility
VM into Files/); a directory symlink and a junction; directories without a trailing '/'.

Profiles:
  small  a base layer without a utility VM (default 300 files, 4 MiB)
  base   a base layer (default 20000 files, 400 MiB): valid registry hives in
         Files/Windows/System32/config, UtilityVM/Files with its EFI BCD (a valid hive too)
  app    a layer over a base (default 2000 files, 50 MiB): Hives/*_Delta differencing hives
         that add, change and delete keys and values of the base's hives, and whiteouts of
         files every base layer has

Same arguments, same bytes. Python 3 standard library only.

  gen-layer.py --profile base --files 2000 --mib 40 -o base.tar
  gen-layer.py --profile app --seed 2 --gzip -o - | winlayer tar verify -
"""
import argparse
import base64
import gzip
import io
import math
import random
import struct
import sys
import tarfile

# File attributes.
READONLY, HIDDEN, SYSTEM, DIRECTORY, ARCHIVE = 0x1, 0x2, 0x4, 0x10, 0x20
REPARSE_POINT = 0x400

# ---------------------------------------------------------------------------------------------
# Security descriptors (binary, self-relative).


def sid(text):
    """S-1-A-S1-S2… as a binary SID."""
    parts = text.split("-")
    subs = [int(p) for p in parts[3:]]
    return struct.pack("<BB", 1, len(subs)) + int(parts[2]).to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


SY, BA, BU = sid("S-1-5-18"), sid("S-1-5-32-544"), sid("S-1-5-32-545")
TI = sid("S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464")
CO, AC, RAC = sid("S-1-3-0"), sid("S-1-15-2-1"), sid("S-1-15-2-2")
LOW_LABEL = sid("S-1-16-4096")
DOMAIN_USERS = sid("S-1-5-21-2380712398-2178961104-3178262419-513")

ACCESS_ALLOWED, SYSTEM_MANDATORY_LABEL = 0x00, 0x11
OI, CI, IO, ID = 0x01, 0x02, 0x08, 0x10
FULL, READ_EXECUTE, MODIFY = 0x1F01FF, 0x1200A9, 0x1301BF
GENERIC_ALL, GENERIC_READ_EXECUTE = 0x10000000, 0xA0000000
KEY_ALL, KEY_READ = 0xF003F, 0x20019

SE_DACL_PRESENT, SE_SACL_PRESENT = 0x0004, 0x0010
SE_DACL_AUTO_INHERITED, SE_SACL_AUTO_INHERITED = 0x0400, 0x0800
SE_DACL_PROTECTED, SE_SELF_RELATIVE = 0x1000, 0x8000


def acl(aces):
    body = b"".join(struct.pack("<BBHI", kind, flags, 8 + len(who), mask) + who for kind, flags, mask, who in aces)
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


def descriptor(owner, group, dacl, control=0, sacl=None):
    """Header, SACL, DACL, owner, group: the order Windows writes a self-relative descriptor in."""
    parts, offsets, at = [], {}, 20
    for name, blob in (("sacl", sacl and acl(sacl)), ("dacl", acl(dacl)), ("owner", owner), ("group", group)):
        if blob is not None:
            offsets[name] = at
            parts.append(blob)
            at += len(blob)
    control |= SE_SELF_RELATIVE | SE_DACL_PRESENT | (SE_SACL_PRESENT if sacl else 0)
    header = struct.pack("<BBHIIII", 1, 0, control, offsets["owner"], offsets["group"], offsets.get("sacl", 0), offsets["dacl"])
    return header + b"".join(parts)


A = ACCESS_ALLOWED
# What Windows puts on system files and directories, on ProgramData and on user files.
SYSTEM_FILE = descriptor(TI, TI, [(A, 0, FULL, TI), (A, 0, READ_EXECUTE, BA), (A, 0, READ_EXECUTE, SY),
                                  (A, 0, READ_EXECUTE, BU), (A, 0, READ_EXECUTE, AC), (A, 0, READ_EXECUTE, RAC)],
                         SE_DACL_PROTECTED | SE_DACL_AUTO_INHERITED)
SYSTEM_DIR = descriptor(TI, TI, [(A, 0, FULL, TI), (A, CI | IO, GENERIC_ALL, TI), (A, 0, MODIFY, SY),
                                 (A, OI | CI | IO, GENERIC_ALL, SY), (A, 0, MODIFY, BA), (A, OI | CI | IO, GENERIC_ALL, BA),
                                 (A, 0, READ_EXECUTE, BU), (A, OI | CI | IO, GENERIC_READ_EXECUTE, BU),
                                 (A, OI | CI | IO, GENERIC_ALL, CO), (A, 0, READ_EXECUTE, AC),
                                 (A, OI | CI | IO, GENERIC_READ_EXECUTE, AC)],
                        SE_DACL_PROTECTED | SE_DACL_AUTO_INHERITED)
INHERITED = descriptor(SY, SY, [(A, ID, FULL, SY), (A, ID, FULL, BA), (A, ID, READ_EXECUTE, BU)], SE_DACL_AUTO_INHERITED)
USER_FILE = descriptor(BA, DOMAIN_USERS, [(A, ID, FULL, SY), (A, ID, FULL, BA), (A, ID, READ_EXECUTE, BU)],
                       SE_DACL_AUTO_INHERITED)
LOW_INTEGRITY = descriptor(SY, SY, [(A, ID | OI | CI, FULL, SY), (A, ID | OI | CI, FULL, BA), (A, ID | OI | CI, MODIFY, BU)],
                           SE_DACL_AUTO_INHERITED | SE_SACL_AUTO_INHERITED,
                           sacl=[(SYSTEM_MANDATORY_LABEL, OI | CI, 0x1, LOW_LABEL)])
KEY_DEFAULT = descriptor(BA, SY, [(A, CI, KEY_ALL, SY), (A, CI, KEY_ALL, BA), (A, CI, KEY_READ, BU)], SE_DACL_PROTECTED)
KEY_PRIVATE = descriptor(SY, SY, [(A, CI, KEY_ALL, SY)], SE_DACL_PROTECTED)

# ---------------------------------------------------------------------------------------------
# Registry hives (regf 1.5): base block, 4 KiB hive bins, nk/vk/sk/lh cells, value lists, data.

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 0, 1, 2, 3, 4, 7, 11
MERGE, TOMBSTONE, SUPERSEDE_LOCAL, SUPERSEDE_TREE = 0, 1, 2, 3
NO_CELL = 0xFFFFFFFF


def sz(text):
    return text.encode("utf-16-le") + b"\0\0"


def multi_sz(items):
    return b"".join(sz(s) for s in items) + b"\0\0"


class Key:
    def __init__(self, name, layer=MERGE, security=None):
        self.name, self.layer, self.security = name, layer, security
        self.values, self.subkeys = [], []  # values: (name, type, data, tombstone)

    def key(self, path, layer=MERGE, security=None):
        """The subkey at a backslash path, created (merge semantics) where missing."""
        key = self
        names = path.split("\\")
        for i, name in enumerate(names):
            found = next((k for k in key.subkeys if k.name.upper() == name.upper()), None)
            if found is None:
                found = Key(name, layer if i == len(names) - 1 else MERGE, security if i == len(names) - 1 else None)
                key.subkeys.append(found)
            key = found
        return key

    def set(self, name, kind, data):
        self.values.append((name, kind, data, False))
        return self

    def delete_value(self, name):
        self.values.append((name, 0, b"", True))
        return self


def upper_units(name):
    return [ord(c.upper()) if c.isascii() else ord(c) for c in name]


def name_bytes(name):
    """Latin-1 ("compressed") when every character fits a byte, as Windows stores names."""
    try:
        return name.encode("latin-1"), True
    except UnicodeEncodeError:
        return name.encode("utf-16-le"), False


class Bins:
    """Cells packed into 4 KiB hive bins; a cell never crosses a bin's end."""

    def __init__(self):
        self.data = bytearray()
        self.bin_start = 0

    def _new_bin(self, need):
        size = max(4096, (need + 32 + 4095) // 4096 * 4096)
        self.bin_start = len(self.data)
        self.data += b"hbin" + struct.pack("<II", self.bin_start, size) + bytes(size - 12)
        self.free_at = self.bin_start + 32

    def alloc(self, payload):
        size = (len(payload) + 4 + 7) // 8 * 8
        if not self.data or self.free_at + size > len(self.data):
            if self.data:
                self._close_bin()
            self._new_bin(size)
        at = self.free_at
        self.data[at:at + size] = struct.pack("<i", -size) + payload + bytes(size - 4 - len(payload))
        self.free_at += size
        return at

    def _close_bin(self):
        rest = len(self.data) - self.free_at
        if rest:
            self.data[self.free_at:self.free_at + 4] = struct.pack("<i", rest)

    def patch(self, cell, offset, fmt, *values):
        struct.pack_into(fmt, self.data, cell + 4 + offset, *values)

    def finish(self):
        self._close_bin()
        return bytes(self.data)


def hive(root, stamp, delta=False):
    """The hive file of a key tree: format 1.5, sequence numbers equal (clean), flag 0x2 for a
    differencing hive, XOR checksum."""
    bins = Bins()
    security = {}  # descriptor bytes -> [cell, references]

    def write(key, parent, depth, inherited):
        name, compressed = name_bytes(key.name)
        flags = (0x20 if compressed else 0) | (0x2C if depth == 0 else 0)
        nk = bins.alloc(b"nk" + bytes(74) + name)
        sd = key.security or inherited
        if sd not in security:
            security[sd] = [bins.alloc(b"sk" + bytes(18) + sd), 0]
        security[sd][1] += 1
        value_cells = []
        for vname, kind, data, tomb in key.values:
            raw, vcompressed = name_bytes(vname)
            vflags = (1 if vcompressed and vname else 0) | (2 if tomb else 0)
            if tomb:
                size, where = 0, NO_CELL
            elif len(data) <= 4:
                size, where = 0x80000000 | len(data), int.from_bytes(data.ljust(4, b"\0"), "little")
            else:
                size, where = len(data), bins.alloc(data)
            value_cells.append(bins.alloc(b"vk" + struct.pack("<HIIIHH", len(raw), size, where, kind, vflags, 0) + raw))
        value_list = bins.alloc(b"".join(struct.pack("<I", c) for c in value_cells)) if value_cells else NO_CELL
        children = sorted(key.subkeys, key=lambda k: upper_units(k.name))
        entries = []
        for child in children:
            hash_ = 0
            for unit in upper_units(child.name):
                hash_ = (hash_ * 37 + unit) & 0xFFFFFFFF
            entries.append(struct.pack("<II", write(child, nk, depth + 1, sd), hash_))
        subkey_list = bins.alloc(b"lh" + struct.pack("<H", len(entries)) + b"".join(entries)) if entries else NO_CELL
        max_subkey = max((len(k.name) * 2 for k in key.subkeys), default=0)
        max_value_name = max((len(v[0]) * 2 for v in key.values), default=0)
        max_value_data = max((len(v[2]) for v in key.values), default=0)
        bins.patch(nk, 0, "<2sHQBBH" + "I" * 14 + "HH", b"nk", flags, stamp, 0, key.layer, 0,
                   NO_CELL if depth == 0 else parent, len(children), 0, subkey_list, NO_CELL,
                   len(key.values), value_list, security[sd][0], NO_CELL, max_subkey, 0,
                   max_value_name, max_value_data, 0, len(name), 0)
        return nk

    root_cell = write(root, NO_CELL, 0, KEY_DEFAULT)
    cells = list(security.values())
    for i, (cell, references) in enumerate(cells):
        flink, blink = cells[(i + 1) % len(cells)][0], cells[i - 1][0]
        sd = next(d for d, c in security.items() if c[0] == cell)
        bins.patch(cell, 0, "<2sHIIII", b"sk", 0, flink, blink, references, len(sd))
    data = bins.finish()
    block = bytearray(4096)
    struct.pack_into("<4sIIQIIIIIII", block, 0, b"regf", 1, 1, stamp, 1, 5, 0, 1, root_cell, len(data), 1)
    struct.pack_into("<I", block, 144, 0x2 if delta else 0)
    block[164:168] = b"rmtm"
    checksum = 0
    for at in range(0, 508, 4):
        checksum ^= struct.unpack_from("<I", block, at)[0]
    checksum = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(checksum, checksum)
    struct.pack_into("<I", block, 508, checksum)
    return bytes(block) + data


# The root key names Windows gives its system hives (CMI-CreateHive{…}); a delta shares its base's.
HIVE_ROOTS = {
    "DEFAULT": "CMI-CreateHive{6A1C4018-979D-4291-A7DC-7AED1C75B67C}",
    "SAM": "CMI-CreateHive{899121E8-11D8-44B6-ACEB-301713D5ED8C}",
    "SECURITY": "CMI-CreateHive{B76A9F9C-B2B1-4C4C-A6C7-8F6D8E8C6D0E}",
    "SOFTWARE": "CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}",
    "SYSTEM": "CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}",
}
DELTA_NAMES = {"DEFAULT": "DefaultUser_Delta", "SAM": "Sam_Delta", "SECURITY": "Security_Delta",
               "SOFTWARE": "Software_Delta", "SYSTEM": "System_Delta"}


def base_hives(rng, stamp):
    """The five config hives of a base layer, with what a Server Core image has at these keys."""
    trees = {name: Key(root) for name, root in HIVE_ROOTS.items()}
    d = trees["DEFAULT"]
    d.key("Environment").set("TEMP", REG_EXPAND_SZ, sz("%USERPROFILE%\\AppData\\Local\\Temp")).set(
        "TMP", REG_EXPAND_SZ, sz("%USERPROFILE%\\AppData\\Local\\Temp"))
    d.key("Control Panel\\International").set("LocaleName", REG_SZ, sz("en-US")).set("sShortDate", REG_SZ, sz("M/d/yyyy"))
    sam = trees["SAM"]
    sam.key("SAM", security=KEY_PRIVATE).key("Domains\\Account").set("F", REG_BINARY, rng.randbytes(80))
    sam.key("SAM\\Domains\\Account\\Users\\000001F4").set("F", REG_BINARY, rng.randbytes(80))
    sec = trees["SECURITY"]
    sec.key("Policy", security=KEY_PRIVATE).set("", REG_NONE, b"")
    sec.key("Policy\\PolAdtEv").set("", REG_BINARY, rng.randbytes(138))
    sw = trees["SOFTWARE"]
    cv = sw.key("Microsoft\\Windows NT\\CurrentVersion")
    for name, kind, data in [("CurrentBuild", REG_SZ, sz("20348")), ("CurrentBuildNumber", REG_SZ, sz("20348")),
                             ("CurrentMajorVersionNumber", REG_DWORD, struct.pack("<I", 10)),
                             ("EditionID", REG_SZ, sz("ServerDatacenter")), ("InstallationType", REG_SZ, sz("Server Core")),
                             ("InstallDate", REG_DWORD, struct.pack("<I", 1620000000)),
                             ("InstallTime", REG_QWORD, struct.pack("<Q", 132650208000000000)),
                             ("ProductName", REG_SZ, sz("Windows Server 2022 Datacenter")),
                             ("UBR", REG_DWORD, struct.pack("<I", 2527))]:
        cv.set(name, kind, data)
    wcv = sw.key("Microsoft\\Windows\\CurrentVersion")
    wcv.set("ProgramFilesDir", REG_SZ, sz("C:\\Program Files")).set("CommonFilesDir", REG_SZ, sz("C:\\Program Files\\Common Files"))
    sw.key("Microsoft\\Windows\\CurrentVersion\\Run")
    sw.key("Microsoft\\Windows\\CurrentVersion\\Uninstall\\Legacy").set("DisplayName", REG_SZ, sz("Legacy component"))
    sw.key("Classes\\.txt").set("", REG_SZ, sz("txtfile")).set("Content Type", REG_SZ, sz("text/plain"))
    update = sw.key("Policies\\Microsoft\\Windows\\WindowsUpdate").set("WUServer", REG_SZ, sz("http://wsus.example"))
    update.key("AU").set("NoAutoUpdate", REG_DWORD, struct.pack("<I", 0))
    for _ in range(120):  # enough class IDs that the subkey index is a real sorted list
        guid = "{%08X-%04X-%04X-%04X-%012X}" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                                                 rng.getrandbits(16), rng.getrandbits(48))
        sw.key(f"Classes\\CLSID\\{guid}\\InprocServer32").set("", REG_EXPAND_SZ, sz(f"%SystemRoot%\\System32\\{guid[1:9].lower()}.dll"))
    sy = trees["SYSTEM"]
    sy.key("Select").set("Current", REG_DWORD, struct.pack("<I", 1)).set("Default", REG_DWORD, struct.pack("<I", 1)).set(
        "LastKnownGood", REG_DWORD, struct.pack("<I", 1))
    sy.key("ControlSet001\\Control\\ComputerName\\ComputerName").set("ComputerName", REG_SZ, sz("MINWINPC"))
    for service, start in [("Dnscache", 2), ("EventLog", 2), ("W32Time", 3), ("WinRM", 3)]:
        sy.key(f"ControlSet001\\Services\\{service}").set("Start", REG_DWORD, struct.pack("<I", start)).set(
            "ImagePath", REG_EXPAND_SZ, sz("%SystemRoot%\\System32\\svchost.exe -k netsvcs"))
    return {name: hive(tree, stamp) for name, tree in trees.items()}



def delta_hives(seed, stamp):
    """An app layer's differencing hives: new keys and values, a changed and a deleted value, a
    deleted key, a key superseded alone and one superseded with its subtree in SOFTWARE; a new service in SYSTEM; an environment
    variable in DEFAULT; SAM and SECURITY unchanged (root only), as most layers leave them."""
    trees = {name: Key(root) for name, root in HIVE_ROOTS.items()}
    sw = trees["SOFTWARE"]
    sw.key(f"Vendor\\App{seed}").set("Version", REG_DWORD, struct.pack("<I", seed)).set(
        "InstallPath", REG_SZ, sz(f"C:\\Program Files\\App{seed}")).set("Features", REG_MULTI_SZ, multi_sz(["core", "cli"]))
    sw.key("Microsoft\\Windows NT\\CurrentVersion").set("UBR", REG_DWORD, struct.pack("<I", 2527 + seed)).delete_value("InstallDate")
    sw.key("Microsoft\\Windows\\CurrentVersion\\Uninstall\\Legacy", layer=TOMBSTONE)
    sw.key("Classes\\.txt", layer=SUPERSEDE_LOCAL).set("", REG_SZ, sz(f"app{seed}.txtfile"))
    sw.key("Policies\\Microsoft\\Windows\\WindowsUpdate", layer=SUPERSEDE_TREE).set(
        "DisableWindowsUpdateAccess", REG_DWORD, struct.pack("<I", 1))
    sy = trees["SYSTEM"]
    sy.key(f"ControlSet001\\Services\\AppSvc{seed}").set("Start", REG_DWORD, struct.pack("<I", 2)).set(
        "Type", REG_DWORD, struct.pack("<I", 0x10)).set("ImagePath", REG_EXPAND_SZ, sz(f"C:\\Program Files\\App{seed}\\svc.exe"))
    trees["DEFAULT"].key("Environment").set("APP_HOME", REG_SZ, sz(f"C:\\Program Files\\App{seed}"))
    return {DELTA_NAMES[name]: hive(tree, stamp, delta=True) for name, tree in trees.items()}


def bcd_hive(stamp):
    """The utility VM's boot configuration store (a registry hive): the boot manager object."""
    root = Key("NewStoreRoot")
    root.key("Description").set("KeyName", REG_SZ, sz("BCD00000000")).set("System", REG_DWORD, struct.pack("<I", 1)).set(
        "TreatAsSystem", REG_DWORD, struct.pack("<I", 1))
    manager = root.key("Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}")
    manager.key("Description").set("Type", REG_DWORD, struct.pack("<I", 0x10100002))
    manager.key("Elements\\12000004").set("Element", REG_SZ, sz("Windows Boot Manager"))
    manager.key("Elements\\16000048").set("Element", REG_BINARY, b"\x01")
    return hive(root, stamp)


# ---------------------------------------------------------------------------------------------
# The tar.

EPOCH_AS_FILETIME = 116444736000000000


class WindowsTarInfo(tarfile.TarInfo):
    """Directory names without the trailing '/' Python adds (go-winio writes none)."""

    def get_info(self):
        info = super().get_info()
        if info["type"] == tarfile.DIRTYPE:
            info["name"] = info["name"].rstrip("/")
        return info


def pax_time(ticks):
    """A FILETIME as PAX seconds since 1970 with up to seven fractional digits."""
    secs, frac = divmod(ticks - EPOCH_AS_FILETIME, 10_000_000)
    return f"{secs}.{frac:07d}".rstrip("0").rstrip(".")


class Writer:
    def __init__(self, out, rng):
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, tarinfo=WindowsTarInfo)
        self.rng = rng
        self.objects = {}  # path -> (mtime, PAX records) for hard links to repeat

    def times(self):
        """Creation, then last write, access and change, each at or after the one before."""
        created = EPOCH_AS_FILETIME + (1_620_000_000 + self.rng.randrange(60_000_000)) * 10_000_000 + self.rng.randrange(10_000_000)
        written = created + self.rng.randrange(30 * 86400 * 10_000_000)
        return created, written, written + self.rng.randrange(86400 * 10_000_000), written + self.rng.randrange(10_000_000)

    def _header(self, path, kind, attributes, security, size=0, link="", eas=()):
        created, written, accessed, changed = self.times()
        info = WindowsTarInfo(path)
        info.type, info.size, info.linkname = kind, size, link
        info.mode = 0o755 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644
        info.mtime = (written - EPOCH_AS_FILETIME) // 10_000_000
        info.pax_headers = {"MSWINDOWS.fileattr": str(attributes),
                            "MSWINDOWS.rawsd": base64.b64encode(security).decode(),
                            "LIBARCHIVE.creationtime": pax_time(created), "mtime": pax_time(written),
                            "atime": pax_time(accessed), "ctime": pax_time(changed)}
        for name, value in eas:
            info.pax_headers["MSWINDOWS.xattr." + name] = base64.b64encode(value).decode()
        return info

    def dir(self, path, attributes=DIRECTORY, security=SYSTEM_DIR):
        self.tar.addfile(self._header(path, tarfile.DIRTYPE, attributes, security))

    def file(self, path, data, attributes=ARCHIVE, security=SYSTEM_FILE, eas=()):
        info = self._header(path, tarfile.REGTYPE, attributes, security, len(data), eas=eas)
        self.objects[path] = (info.mtime, dict(info.pax_headers))
        self.tar.addfile(info, io.BytesIO(data))

    def stream(self, owner, name, data):
        """An alternate data stream: go-winio gives it the owner's times and no Windows records."""
        mtime, records = self.objects[owner]
        info = WindowsTarInfo(f"{owner}:{name}")
        info.size, info.mode, info.mtime = len(data), 0o644, mtime
        info.pax_headers = {k: records[k] for k in ("mtime", "atime", "ctime")}
        self.tar.addfile(info, io.BytesIO(data))

    def hardlink(self, path, target):
        """Another name of `target`: the same file, so the same metadata."""
        info = WindowsTarInfo(path)
        info.type, info.linkname, info.mode = tarfile.LNKTYPE, target, 0o644
        info.mtime, records = self.objects[target]
        info.pax_headers = dict(records)
        self.tar.addfile(info)

    def link(self, path, target, attributes, junction=False):
        info = self._header(path, tarfile.SYMTYPE, attributes | REPARSE_POINT, SYSTEM_DIR, link=target)
        if junction:
            info.pax_headers["MSWINDOWS.mountpoint"] = "1"
        self.tar.addfile(info)

    def whiteout(self, path):
        parent, leaf = path.rsplit("/", 1)
        info = WindowsTarInfo(f"{parent}/.wh.{leaf}")
        info.mode = 0
        self.tar.addfile(info, io.BytesIO(b""))

    def close(self):
        self.tar.close()


# Directories and files every layer of these profiles has; app layers delete some of the files.
SKELETON = ["Files/Windows", "Files/Windows/System32", "Files/Windows/System32/drivers",
            "Files/Windows/System32/drivers/etc", "Files/Windows/SysWOW64", "Files/Windows/WinSxS",
            "Files/Windows/Logs", "Files/Windows/Temp", "Files/Program Files", "Files/Program Files/Common Files",
            "Files/ProgramData", "Files/Users", "Files/Users/Public", "Files/Users/Default"]
WELL_KNOWN = ["Files/Windows/Logs/dism.log", "Files/Windows/Logs/cbs.log", "Files/Windows/Temp/setup.etl",
              "Files/Windows/System32/drivers/etc/lmhosts.sam", "Files/Windows/System32/drivers/etc/networks",
              "Files/ProgramData/install.log"]
WORDS = ["kernel", "shell", "net", "crypt", "user", "gdi", "ole", "rpc", "msv", "api", "core", "svc", "host",
         "setup", "print", "media", "audio", "wmi", "dism", "cbs", "drv", "font", "cert", "ntds", "wow"]
EXTENSIONS = [".dll", ".dll", ".dll", ".exe", ".mui", ".sys", ".xml", ".manifest", ".cat", ".txt", ".ini"]
DIR_WORDS = ["en-US", "de-DE", "Microsoft.NET", "Framework64", "assembly", "Fonts", "servicing", "Packages",
             "catroot", "Tasks", "Speech", "WindowsPowerShell", "Modules", "Resources", "Common Files", "INF"]


def tree(rng, files):
    """About one directory per eight files under the skeleton, at most seven levels deep."""
    dirs = list(SKELETON)
    while len(dirs) < len(SKELETON) + files // 8:
        parent = rng.choice(dirs)
        if parent.count("/") < 7 and not parent.startswith("Files/Users/"):
            dirs.append(f"{parent}/{rng.choice(DIR_WORDS)}.{len(dirs)}")
    names = [f"{rng.choice(dirs)}/{rng.choice(WORDS)}{rng.choice(WORDS)}{i}{rng.choice(EXTENSIONS)}" for i in range(files)]
    return dirs, names


def sizes(rng, count, total):
    """Log-normal around 8 KiB (as files on a Windows system drive are), scaled to `total`."""
    raw = [rng.lognormvariate(math.log(8192), 1.6) for _ in range(count)]
    scale = total / sum(raw) if raw else 0
    return [int(s * scale) for s in raw]


FILLER = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00This program cannot be run in DOS mode.\r\r\n$"
          + b"\x00" * 40 + b".text\x00\x00\x00.rdata\x00\x00.data\x00\x00\x00.pdata\x00\x00.rsrc\x00\x00\x00.reloc\x00\x00")


def content(rng, size, earlier):
    """About 2:1 compressible like Windows binaries; one file in eight repeats an earlier one."""
    if earlier and rng.random() < 0.125:
        same = [d for d in earlier if len(d) == size] or earlier
        return rng.choice(same)
    half = size // 2
    data = rng.randbytes(half) + (FILLER * (1 + (size - half) // len(FILLER)))[: size - half]
    if len(earlier) < 128 and size < 256 * 1024:
        earlier.append(data)
    return data


def generate(args, out):
    rng = random.Random(args.seed)
    w = Writer(out, rng)
    base = args.profile in ("base", "small")
    stamp = EPOCH_AS_FILETIME + 1_620_000_000 * 10_000_000
    dirs, names = tree(rng, args.files)
    if base:
        dirs.append("Files/Windows/System32/config")
    w.dir("Files")
    for d in sorted(set(dirs)):
        hidden = HIDDEN if d == "Files/ProgramData" else 0
        w.dir(d, DIRECTORY | hidden, INHERITED if d.startswith(("Files/ProgramData", "Files/Users")) else SYSTEM_DIR)
    earlier, written = [], []
    for name, size in zip(names, sizes(rng, len(names), args.mib << 20)):
        attributes = ARCHIVE | (SYSTEM if name.endswith(".sys") else 0) | (READONLY if rng.random() < 0.03 else 0)
        eas = [("$KERNEL.PURGE.ESBCACHE", rng.randbytes(52))] if rng.random() < 0.01 else ()
        w.file(name, content(rng, size, earlier), attributes, SYSTEM_FILE, eas)
        written.append(name)
        if rng.random() < 0.02:
            w.stream(name, "Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
    # Files whose names need PAX records: non-ASCII and longer than ustar's 100 bytes.
    w.file("Files/Users/Public/r\u00e9sum\u00e9 \u6587\u4ef6.txt", b"caf\xc3\xa9\r\n", ARCHIVE, USER_FILE)
    w.file("Files/Users/Default/" + "LongName_" * 12 + ".dat", b"", ARCHIVE | HIDDEN, LOW_INTEGRITY)
    w.stream("Files/Users/Default/" + "LongName_" * 12 + ".dat", "SummaryInformation", rng.randbytes(300))
    if base:
        for name in WELL_KNOWN:
            w.file(name, content(rng, 1 + rng.randrange(20000), earlier), ARCHIVE, INHERITED)
        for name, data in base_hives(rng, stamp).items():
            w.file(f"Files/Windows/System32/config/{name}", data, ARCHIVE, SYSTEM_FILE)
    # WinSxS keeps the component store; the system's copies are hard links to it.
    if written:
        for i, target in enumerate(sorted(rng.sample(written, max(1, len(written) // 20)))):
            component = f"Files/Windows/WinSxS/amd64_component{i}_31bf3856ad364e35_10.0.20348.{rng.randrange(3000)}_none"
            w.dir(component)
            w.hardlink(f"{component}/{target.rsplit('/', 1)[1]}", target)
    w.link("Files/Users/All Users", "C:\\ProgramData", DIRECTORY | HIDDEN | SYSTEM)
    w.link("Files/Documents and Settings", "C:\\Users", DIRECTORY | HIDDEN | SYSTEM, junction=True)
    w.link("Files/Windows/System32/drivers/etc/hosts.lnk", "C:\\Windows\\System32\\drivers\\etc\\hosts", ARCHIVE)
    if args.profile == "base":
        for d in ["UtilityVM", "UtilityVM/Files", "UtilityVM/Files/EFI", "UtilityVM/Files/EFI/Microsoft",
                  "UtilityVM/Files/EFI/Microsoft/Boot", "UtilityVM/Files/Windows", "UtilityVM/Files/Windows/System32"]:
            w.dir(d)
        w.file("UtilityVM/Files/EFI/Microsoft/Boot/BCD", bcd_hive(stamp), ARCHIVE | HIDDEN | SYSTEM, SYSTEM_FILE)
        w.file("UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi", content(rng, 1_500_000, earlier), ARCHIVE, SYSTEM_FILE)
        for i, target in enumerate(written[: max(1, len(written) // 10)]):
            w.hardlink(f"UtilityVM/Files/Windows/System32/uvm{i}_{target.rsplit('/', 1)[1]}", target)
    if not base:
        w.dir("Hives")
        for name, data in delta_hives(args.seed, stamp).items():
            w.file(f"Hives/{name}", data, ARCHIVE, SYSTEM_FILE)
        for victim in sorted(rng.sample(WELL_KNOWN, 3)):
            w.whiteout(victim)
    w.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=["small", "base", "app"], default="small")
    p.add_argument("--files", type=int, help="files in the tree (default: 300 small, 20000 base, 2000 app)")
    p.add_argument("--mib", type=int, help="their total size in MiB, about (default: 4 small, 400 base, 50 app)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gzip", action="store_true", help="gzip the tar (no name, time 0)")
    p.add_argument("-o", "--output", required=True, help="the tar to write, or - for standard output")
    args = p.parse_args()
    files, mib = {"small": (300, 4), "base": (20000, 400), "app": (2000, 50)}[args.profile]
    args.files = files if args.files is None else args.files
    args.mib = mib if args.mib is None else args.mib
    if args.files < 0 or args.mib < 0:
        p.error("--files and --mib must not be negative")
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    with out:
        if args.gzip:
            with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
                generate(args, gz)
        else:
            generate(args, out)


if __name__ == "__main__":
    main()
