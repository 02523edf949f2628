#!/usr/bin/env bash
# `winlayer image convert --to cimfs` and `image verify-conversion` against parts winlayer did
# not write: Debian's docker-registry (distribution 2.8, no referrers API) on 127.0.0.1,
# skopeo (Debian) and crane (go-containerregistry). A small two-layer image is converted and
# attached to itself: the registry has no referrers API, so the referrers tag schema is used,
# and skopeo reads the `sha256-<hex>` tag as an image index listing the converted manifest;
# crane shows that manifest's subject, config and converted layers. The same image converted
# in other work directories (to another repository, to a layout) gives the same digests;
# verify-conversion passes on the untouched conversion, and fails (exit status 1, the layer
# named) on one whose blob has one byte changed and whose manifest was fixed up to match,
# re-pushed by skopeo.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
skip() { echo "convert suite: SKIPPED: $*"; exit 0; }
for tool in docker-registry skopeo go python3; do
  command -v "$tool" >/dev/null || skip "$tool is missing (scripts/install-deps.sh installs it)"
done
source scripts/lib/crane.sh
source scripts/lib/registry-and-containerd.sh
cargo build -q --locked -p winlayer
winlayer=$root/target/debug/winlayer
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
step() { echo "-- $*"; }
fail() { echo "convert suite: $*" >&2; exit 1; }
export SOURCE_DATE_EPOCH=1700000000
W() { "$winlayer" image "$@" --insecure; }
# json FILE EXPR: prints the Python expression EXPR over the JSON document `d` in FILE.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

step "Debian's docker-registry on 127.0.0.1"
start_registry "$work/registry"
curl -sf "http://$registry/v2/" >/dev/null || fail "the registry did not start: $(cat "$work/registry/registry.log")"
R=$registry

step "a small two-layer Windows image (the project's generated base and app layers) pushed by winlayer"
python3 "$root/scripts/gen-layer.py" --profile small --files 40 --mib 1 --gzip -o base.tar.gz
python3 "$root/scripts/gen-layer.py" --profile app --files 40 --mib 1 --seed 3 -o app.tar
W from-scratch base.tar.gz --platform windows/amd64:10.0.20348.1 -t "$R/conv/base:1" >/dev/null
W append --base "$R/conv/base:1" --layer app.tar -t "$R/conv/app:1" >/dev/null
src=$("$crane" digest --insecure "$R/conv/app:1")

step "convert --attach: on a registry without the referrers API, through the referrers tag schema"
mkdir w1 w2 w3
W convert "$R/conv/app:1" --to cimfs --attach --work-dir w1 --json > c1.json
python3 - c1.json "$src" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["source_manifest"] == sys.argv[2], r
assert r["artifact_type"] == "application/vnd.winlayer.cimfs.image.v1", r
assert len(r["layers"]) == 2, r
for l in r["layers"]:
    assert l["size"] > 0 and l["source_size"] > 0 and l["digest"].startswith("sha256:"), l
    assert l["host_files"] > 0 and l["cim_files"] > 0, l
[d] = r["destinations"]
assert d["how"] == "referrer, through the referrers tag schema (index updated)", d
PY
conv=$(json c1.json 'd["manifest"]')
[ -z "$(ls -A w1)" ] || fail "convert left work behind in its work directory: $(ls -A w1)"

step "skopeo reads the tag sha256-<hex of the source digest>: an image index listing the converted manifest"
tag=sha256-${src#sha256:}
skopeo inspect --raw --tls-verify=false "docker://$R/conv/app:$tag" > referrers.json
python3 - referrers.json "$conv" "$src" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
assert i["schemaVersion"] == 2 and i["mediaType"] == "application/vnd.oci.image.index.v1+json", i
[m] = i["manifests"]
assert m["digest"] == sys.argv[2] and m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", m
assert m["artifactType"] == "application/vnd.winlayer.cimfs.image.v1", m
assert m["annotations"]["io.winlayer.cimfs.source.manifest"] == sys.argv[3], m
PY

step "crane manifest of the converted image: the source as subject, the source's config, converted layers"
"$crane" manifest --insecure "$R/conv/app@$conv" > converted.json
"$crane" manifest --insecure "$R/conv/app:1" > source.json
python3 - converted.json source.json "$src" c1.json <<'PY'
import json, sys
m, s, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), json.load(open(sys.argv[4]))
assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", m
assert m["artifactType"] == "application/vnd.winlayer.cimfs.image.v1", m
assert m["subject"]["digest"] == sys.argv[3] and m["subject"]["mediaType"] == s["mediaType"], m["subject"]
assert m["config"] == s["config"], "the config descriptor is not the source's"
assert len(m["layers"]) == len(s["layers"]) == 2
for c, o, l in zip(m["layers"], s["layers"], r["layers"]):
    assert c["mediaType"] == "application/vnd.winlayer.cimfs.layer.v1.tar+zstd", c
    a = c["annotations"]
    assert a["io.winlayer.cimfs.source.digest"] == o["digest"], a
    assert a["io.winlayer.cimfs.source.size"] == str(l["source_size"]), (a, l)
    assert c["digest"] == l["digest"] and c["size"] == l["size"], (c, l)
PY
# Each converted blob as the registry serves it: a zstd frame (magic 28 b5 2f fd) of the
# size the manifest gives.
for d in $(json converted.json '" ".join(l["digest"] for l in d["layers"])'); do
  "$crane" blob --insecure "$R/conv/app@$d" > blob
  [ "$(head -c 4 blob | od -An -tx1 | tr -d ' \n')" = 28b52ffd ] || fail "$d is not zstd"
done

step "winlayer image inspect: the source lists its conversion; the converted image names its sources"
W inspect "$R/conv/app:1" --json > inspect-src.json
python3 - inspect-src.json "$conv" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
[c] = f["conversions"]
assert c["digest"] == sys.argv[2] and c["converted_layers"] == c["layers"] == 2, c
PY
W inspect "$R/conv/app@$conv" --json > inspect-conv.json
python3 - inspect-conv.json source.json "$src" <<'PY'
import json, sys
f, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert f["converted_from"] == sys.argv[3], f
assert [l["source"]["digest"] for l in f["layers"]] == [l["digest"] for l in s["layers"]], f["layers"]
PY

step "converted again in other work directories (with -t and --attach, and to a layout): the same digests"
W convert "$R/conv/app:1" --to cimfs --attach -t "$R/conv/cimfs:attached" --work-dir w2 --json > c2.json
W convert "$R/conv/app:1" --to cimfs -t oci:layout:cimfs --work-dir "$work/w3" --json > c3.json
python3 - c1.json c2.json c3.json <<'PY'
import json, sys
one, two, three = (json.load(open(p)) for p in sys.argv[1:])
assert one["manifest"] == two["manifest"], (one["manifest"], two["manifest"])
assert [l["digest"] for l in one["layers"]] == [l["digest"] for l in two["layers"]] == [l["digest"] for l in three["layers"]]
assert [d["how"] for d in two["destinations"]] == ["tagged", "referrer, through the referrers tag schema (index listed it already)"], two
# Without --attach there is no subject, so another manifest, with the same layers.
assert three["manifest"] != one["manifest"], three
PY
[ "$("$crane" digest --insecure "$R/conv/cimfs:attached")" = "$conv" ] || fail "-t with --attach pushed another manifest"
skopeo inspect --raw --tls-verify=false "docker://$R/conv/app:$tag" | cmp -s - referrers.json \
  || fail "converting again changed the referrers index"

step "verify-conversion passes on the untouched conversions (found by subject; by annotation with --source)"
W verify-conversion "$R/conv/app@$conv" --work-dir w1 --json > v1.json
json v1.json 'd["ok"] and all(l["ok"] for l in d["layers"]) and d["derived_manifest"] == d["manifest"]' | grep -qx True \
  || fail "verification of the attached conversion failed: $(cat v1.json)"
W push oci:layout:cimfs "$R/conv/cimfs:plain" >/dev/null
W verify-conversion "$R/conv/cimfs:plain" --source "$R/conv/app" --work-dir w1 > v2.txt \
  || fail "verification of the unattached conversion failed: $(cat v2.txt)"
grep -q "is the conversion of $R/conv/app@$src" v2.txt || fail "unexpected: $(cat v2.txt)"

step "one changed byte in a converted blob, the manifest fixed up to match, re-pushed by skopeo: verification fails"
skopeo copy -q --src-tls-verify=false "docker://$R/conv/app@$conv" oci:tampered:t
python3 - tampered <<'PY'
import hashlib, json, os, sys
lay = sys.argv[1]
def path(d):
    a, h = d.split(":")
    return os.path.join(lay, "blobs", a, h)
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(path(d), "wb").write(b)
    return d
idx = json.load(open(os.path.join(lay, "index.json")))
m = json.load(open(path(idx["manifests"][0]["digest"])))
blob = bytearray(open(path(m["layers"][1]["digest"]), "rb").read())
blob[len(blob) // 2] ^= 1
m["layers"][1]["digest"] = put(bytes(blob))
mb = json.dumps(m).encode()
idx["manifests"][0].update(digest=put(mb), size=len(mb))
json.dump(idx, open(os.path.join(lay, "index.json"), "w"))
PY
skopeo copy -q --dest-tls-verify=false oci:tampered:t "docker://$R/conv/tampered:1"
status=0
W verify-conversion "$R/conv/tampered:1" --source "$R/conv/app" --work-dir w1 --json > v3.json || status=$?
[ "$status" = 1 ] || fail "verification of the tampered conversion exited $status: $(cat v3.json)"
python3 - v3.json c1.json <<'PY'
import json, sys
v, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert not v["ok"] and [l["ok"] for l in v["layers"]] == [True, False], v
assert v["layers"][1]["derived"] == r["layers"][1]["digest"] != v["layers"][1]["listed"], v
assert v["derived_manifest"] == r["manifest"] != v["manifest"], v
PY
W verify-conversion "$R/conv/tampered:1" --source "$R/conv/app" --work-dir w1 > v3.txt || true
grep -q "layer 1 MISMATCH" v3.txt || fail "unexpected: $(cat v3.txt)"

step "an image that is not a conversion, and a registry that is not there"
status=0
W verify-conversion "$R/conv/app:1" --work-dir w1 2> err.txt || status=$?
[ "$status" = 2 ] && grep -q "not a converted image" err.txt || fail "unexpected ($status): $(cat err.txt)"
if W convert 127.0.0.1:1/none/img:1 --to cimfs -t oci:nothing 2> err.txt; then fail "converted from nowhere"; fi
grep -q "127.0.0.1:1/none/img:1" err.txt || fail "unexpected: $(cat err.txt)"
[ -z "$(ls -A w1)" ] || fail "work left behind in w1: $(ls -A w1)"
echo "convert suite: all checks passed"
