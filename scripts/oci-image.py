#!/usr/bin/env python3
"""Writes an OCI image layout holding one Windows image made of the given gzip'd layer tars.

The image config is what a Windows image carries: os "windows", os.version, architecture
"amd64", rootfs.diff_ids (the digests of the uncompressed layers, computed here) and a history
entry per layer. Push the layout with e.g. `skopeo copy oci:LAYOUT:TAG docker://HOST/NAME:TAG`.

  oci-image.py --os-version 10.0.20348.2227 --tag 1 LAYOUT base.tar.gz app.tar.gz

Same arguments, same bytes. Python 3 standard library only.
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil


def put_blob(layout, data=None, path=None):
    """Stores bytes (or a file) under blobs/sha256/ and returns (digest, size)."""
    h = hashlib.sha256()
    if data is not None:
        h.update(data)
        size = len(data)
    else:
        size = 0
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    digest = "sha256:" + h.hexdigest()
    dest = os.path.join(layout, "blobs", "sha256", h.hexdigest())
    if data is not None:
        with open(dest, "wb") as f:
            f.write(data)
    else:
        shutil.copyfile(path, dest)
    return digest, size


def diff_id(path):
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layout", help="the directory to write (created)")
    p.add_argument("layers", nargs="+", help="gzip'd layer tars, base layer first")
    p.add_argument("--tag", default="latest")
    p.add_argument("--os-version", default="10.0.20348.2227")
    p.add_argument("--created", default="2024-01-01T00:00:00Z")
    a = p.parse_args()
    os.makedirs(os.path.join(a.layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    layers, diff_ids = [], []
    for path in a.layers:
        digest, size = put_blob(a.layout, path=path)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
        diff_ids.append(diff_id(path))
    config = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": a.os_version,
        "created": a.created,
        "config": {"Cmd": ["cmd", "/S", "/C", "echo hello"], "WorkingDir": "C:\\"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": a.created, "created_by": os.path.basename(l)} for l in a.layers],
    }
    config_digest, config_size = put_blob(a.layout, data=canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    manifest_digest, manifest_size = put_blob(a.layout, data=canonical(manifest))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "windows", "os.version": a.os_version},
                "annotations": {"org.opencontainers.image.ref.name": a.tag},
            }
        ],
    }
    with open(os.path.join(a.layout, "index.json"), "wb") as f:
        f.write(canonical(index))
    print(json.dumps({"manifest": manifest_digest, "config": config_digest, "diff_ids": diff_ids}))


if __name__ == "__main__":
    main()
