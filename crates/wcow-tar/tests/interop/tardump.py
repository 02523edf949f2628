#!/usr/bin/env python3
"""Dumps a tar archive as JSON with Python's tarfile: one object per entry, every PAX record."""
import hashlib, json, sys, tarfile

TYPES = {tarfile.REGTYPE: "0", tarfile.AREGTYPE: "0", tarfile.LNKTYPE: "1", tarfile.SYMTYPE: "2",
         tarfile.DIRTYPE: "5", tarfile.CONTTYPE: "7"}

out = []
with tarfile.open(sys.argv[1], mode="r:*") as tar:
    for m in tar:
        data = tar.extractfile(m).read() if m.isreg() else b""
        out.append({
            "name": m.name,
            "typeflag": TYPES.get(m.type, m.type.decode("latin-1")),
            "linkname": m.linkname,
            "size": m.size,
            "mtime": str(m.pax_headers.get("mtime", int(m.mtime))),
            "pax": dict(m.pax_headers),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
json.dump(out, sys.stdout)
