#!/usr/bin/env bash
# `winlayer image` against parts it did not write: Debian's docker-registry (distribution 2.8)
# on 127.0.0.1, skopeo (Debian), crane (go-containerregistry, built from the Go module proxy
# into target/tools) and Go's archive/tar. crane and skopeo pull what winlayer pushes and
# winlayer pulls what they push; every layer pulled is read by `winlayer tar verify` and by a
# Go program on the standard library alone (digests, diff_ids, every entry); the same build
# twice gives the same digest; crane appends onto winlayer's base and winlayer reads crane's
# layer; squash gives crane flatten's files with merged hives hivex reads; containerd 1.6
# fetches the image for windows/amd64; a multi-platform index is resolved by os.version as
# containerd resolves it; blobs between repositories are mounted, not sent.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
skip() { echo "image suite: SKIPPED: $*"; exit 0; }
for tool in docker-registry skopeo go python3 hivexml; do
  command -v "$tool" >/dev/null || skip "$tool is missing (scripts/install-deps.sh installs it)"
done
source scripts/lib/crane.sh
cargo build -q --locked -p winlayer
winlayer=$root/target/debug/winlayer
work=$(mktemp -d)
registry_pid= containerd_pid=
cleanup() {
  for pid in $registry_pid $containerd_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
step() { echo "-- $*"; }
fail() { echo "image suite: $*" >&2; exit 1; }
export SOURCE_DATE_EPOCH=1700000000

step "Debian's docker-registry on 127.0.0.1 (its config in a temporary directory)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > registry.yml <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve registry.yml >registry.log 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || fail "the registry did not start: $(cat registry.log)"
R=127.0.0.1:$port
W() { "$winlayer" image "$@" --insecure; }

# Go's reading of a layout: digests, diff_ids, every tar entry.
gocheck() { (cd "$root/scripts/suites/image" && go run layoutcheck.go "$work/$1"); }
# winlayer's strict reading of every layer blob of a layout.
verify_layers() {
  python3 - "$1" <<'PY' | while read -r blob; do "$winlayer" tar verify "$blob" >/dev/null || fail "tar verify refused $blob"; done
import json, sys, os
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
d = idx["manifests"][0]["digest"].split(":")
m = json.load(open(os.path.join(lay, "blobs", d[0], d[1])))
for l in m["layers"]:
    a, h = l["digest"].split(":")
    print(os.path.join(lay, "blobs", a, h))
PY
}

step "image from-scratch: a base image from the project's generated base layer; crane validates it"
python3 "$root/scripts/gen-layer.py" --profile small --gzip -o base.tar.gz
python3 "$root/scripts/gen-layer.py" --profile app --files 200 --mib 2 --seed 2 -o app.tar
W from-scratch base.tar.gz --platform windows/amd64:10.0.20348.1 -t "$R/mine/base:ltsc2022" >/dev/null
"$crane" validate --insecure --remote "$R/mine/base:ltsc2022" >/dev/null
W pull "$R/mine/base:ltsc2022" -o base-layout --json > pulled.json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert [b['outcome'] for b in r['blobs']] == ['copied','copied'], r" pulled.json
gocheck base-layout >/dev/null
verify_layers base-layout
W pull "$R/mine/base:ltsc2022" -o base-layout --json > again.json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert [b['outcome'] for b in r['blobs']] == ['exists','exists'], r" again.json

step "crane appends a plain tar onto winlayer's base (crane's Windows mode); winlayer pulls it, tar verify and Go read it"
mkdir -p plain/app && printf 'from crane' > plain/app/crane.txt
tar -C plain -cf crane-app.tar app
"$crane" append --insecure -b "$R/mine/base:ltsc2022" -f crane-app.tar -t "$R/peer/app:crane" >/dev/null 2>&1
W pull "$R/peer/app:crane" -o crane-app-layout >/dev/null
gocheck crane-app-layout >/dev/null
verify_layers crane-app-layout

step "image append: a layer tar (normalized) and a directory onto the base, pushed; the same build twice, the same digest"
mkdir -p app/bin && printf 'MZ app' > app/bin/app.exe && printf '[app]\n' > app/app.ini
build() {
  W append --base oci:base-layout --layer app.tar --layer app --entrypoint '["C:\\app\\bin\\app.exe","--name","a b"]' \
    --env APP_MODE=prod --workdir 'C:\app' --user ContainerUser -t "$1" --json
}
build "$R/mine/app:1" > append1.json
build "$R/mine/app:2" > append2.json
d1=$("$crane" digest --insecure "$R/mine/app:1"); d2=$("$crane" digest --insecure "$R/mine/app:2")
[ "$d1" = "$d2" ] || fail "two builds gave $d1 and $d2"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['manifest']==sys.argv[2] and r['command_line']=='C:\\\\app\\\\bin\\\\app.exe --name \"a b\"', r" append1.json "$d1"
build oci:app-layout > append3.json
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['manifest']==sys.argv[2]" append3.json "$d1" || fail "the layout build differs from the pushed one"

step "crane validates winlayer's image in the registry (every layer's digest and diff_id) and reads its config"
"$crane" validate --insecure --remote "$R/mine/app:1" >/dev/null
"$crane" config --insecure "$R/mine/app:1" > config.json
python3 - config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["os"] == "windows" and c["os.version"] == "10.0.20348.1", c
assert c["config"]["Entrypoint"] == ["C:\\app\\bin\\app.exe", "--name", "a b"] and "ArgsEscaped" not in c["config"], c
assert c["config"]["User"] == "ContainerUser" and c["config"]["Env"] == ["APP_MODE=prod"], c
assert len(c["rootfs"]["diff_ids"]) == 3 and c["created"] == "2023-11-14T22:13:20Z", c
PY

step "skopeo copies winlayer's image to a layout; Go's archive/tar and winlayer tar verify read every layer"
skopeo copy -q --src-tls-verify=false "docker://$R/mine/app:1" oci:skopeo-layout:app
gocheck skopeo-layout > go.txt
python3 - go.txt <<'PY'
import json, sys
layers = [json.loads(l) for l in open(sys.argv[1])]
assert len(layers) == 3, layers
# Streams and whiteouts carry no records; every object of the directory layer does.
assert all(l["rawsd"] > 0 and l["fileattr"] > 0 for l in layers), layers
assert layers[2]["rawsd"] == layers[2]["fileattr"] == layers[2]["entries"], layers[2]
assert any(h.endswith("_Delta") for h in layers[1]["hives"]), layers[1]
PY
verify_layers skopeo-layout

step "winlayer pushes skopeo's layout; crane reads the same manifest back; image inspect reads it"
W push oci:skopeo-layout:app "$R/fromskopeo/app:1" > /dev/null
[ "$("$crane" digest --insecure "$R/fromskopeo/app:1")" = "$d1" ] || fail "the digest changed through skopeo and winlayer"
W inspect "$R/fromskopeo/app:1" --json > inspect.json
python3 - inspect.json <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
base, app, mine = f["layers"]
assert base["base"] and base["config_hives"] == ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"], base
assert not app["base"] and app["delta_hives"] and app["whiteouts"] > 0, app
assert mine["files"] == 2 and mine["whiteouts"] == 0, mine
assert f["platform"]["os.version"] == "10.0.20348.1", f
PY

step "copy between repositories of one registry mounts every blob; crane pulls winlayer's copy"
W copy "$R/mine/app:1" "$R/other/app:1" --json > copy.json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert {b['outcome'] for b in r['blobs']} == {'mounted'}, r" copy.json
"$crane" pull --insecure --format oci "$R/other/app:1" crane-layout
gocheck crane-layout >/dev/null

step "an index of three Windows builds: each host gets the newest build it can run"
for v in 10.0.17763.5458 10.0.20348.2113 10.0.26100.1742; do
  W from-scratch plain --platform "windows/amd64:$v" -t "$R/multi/img:$v" >/dev/null
done
"$crane" index append --insecure -t "$R/multi/img:all" -m "$R/multi/img:10.0.17763.5458" \
  -m "$R/multi/img:10.0.20348.2113" -m "$R/multi/img:10.0.26100.1742" >/dev/null 2>&1
chosen() { W pull "$R/multi/img:all" -o "oci:multi:$1" --platform "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['platform']['os.version'])"; }
[ "$(chosen windows/amd64:10.0.26100.2000)" = 10.0.26100.1742 ] || fail "a 2025 host should get the 26100 build"
[ "$(chosen windows/amd64:10.0.22631.1)" = 10.0.20348.2113 ] || fail "a 22631 host should get ltsc2022"
[ "$(chosen windows/amd64:10.0.17763.1)" = 10.0.17763.5458 ] || fail "a 2019 host should get its own build"
if W pull "$R/multi/img:all" -o multi-old --platform windows/amd64:10.0.14393.1 2>err.txt; then fail "a 2016 host got an image"; fi
grep -q "has no manifest for windows/amd64:10.0.14393.1 (it offers windows/amd64:10.0.17763.5458" err.txt || fail "unexpected: $(cat err.txt)"
[ ! -e multi-old/index.json ] || fail "a refused pull wrote index.json"

step "image squash: the chain as one base layer; its files are crane flatten's, its merged hives read by hivex"
W squash "$R/mine/app:1" -t "$R/mine/flat:1" --json > squash.json
"$crane" flatten --insecure "$R/mine/app:1" -t "$R/peer/flat:1" >/dev/null 2>&1
W pull "$R/mine/flat:1" -o flat-wl >/dev/null
W pull "$R/peer/flat:1" -o flat-crane >/dev/null
gocheck flat-wl >/dev/null
verify_layers flat-wl
python3 - flat-wl flat-crane hives <<'PY'
import hashlib, json, os, sys, tarfile
def top_layer(lay):
    idx = json.load(open(os.path.join(lay, "index.json")))
    a, h = idx["manifests"][0]["digest"].split(":")
    m = json.load(open(os.path.join(lay, "blobs", a, h)))
    assert len(m["layers"]) == 1, m
    a, h = m["layers"][0]["digest"].split(":")
    return os.path.join(lay, "blobs", a, h)
def files(path, keep=None):
    out = {}
    with tarfile.open(path) as t:
        for e in t:
            if e.isfile() and not e.name.startswith("Hives/") and ":" not in e.name:
                data = t.extractfile(e).read()
                if e.name.lower().startswith("files/windows/system32/config/"):
                    if keep:
                        open(os.path.join(keep, os.path.basename(e.name)), "wb").write(data)
                    continue
                out[e.name.lower()] = hashlib.sha256(data).hexdigest()
    return out
os.makedirs(sys.argv[3], exist_ok=True)
ours, theirs = files(top_layer(sys.argv[1]), sys.argv[3]), files(top_layer(sys.argv[2]))
missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
assert not missing and not extra, (missing[:5], extra[:5])
differ = [p for p in ours if ours[p] != theirs[p]]
assert not differ, differ[:5]
print(f"   {len(ours)} files the same as crane flatten's")
PY
for h in DEFAULT SAM SECURITY SOFTWARE SYSTEM; do hivexml "hives/$h" >/dev/null || fail "hivexml cannot read the merged $h"; done
python3 - base.tar.gz hives <<'PY' || fail "the app layer's deltas changed no hive"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    base = {e.name.rsplit("/", 1)[1]: t.extractfile(e).read() for e in t if e.isfile() and "/config/" in e.name.lower()}
changed = [h for h, b in base.items() if open(f"{sys.argv[2]}/{h}", "rb").read() != b]
assert changed, "every merged hive equals the base's"
PY

if [ "$(id -u)" = 0 ] && command -v containerd >/dev/null && command -v ctr >/dev/null; then
  step "containerd 1.6 (Debian) fetches winlayer's image for windows/amd64: manifest, config and every layer"
  mkdir ctrd
  cat > ctrd/config.toml <<CONFIG
version = 2
root = "$work/ctrd/root"
state = "$work/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctrd/ctrd.sock"
[ttrpc]
  address = "$work/ctrd/ctrd.sock.ttrpc"
CONFIG
  containerd --config ctrd/config.toml >ctrd/containerd.log 2>&1 &
  containerd_pid=$!
  for _ in $(seq 200); do ctr --address ctrd/ctrd.sock version >/dev/null 2>&1 && break; sleep 0.05; done
  ctr --address ctrd/ctrd.sock content fetch --plain-http --platform windows/amd64 "$R/mine/app:1" >/dev/null
  ctr --address ctrd/ctrd.sock content ls -q > ctrd-content.txt
  python3 - append1.json ctrd-content.txt <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
have = set(open(sys.argv[2]).read().split())
want = {r["manifest"]} | {l["digest"] for l in r["layers"]}
assert want <= have, (want - have)
PY
  kill "$containerd_pid"; wait "$containerd_pid" 2>/dev/null || true; containerd_pid=
else
  echo "-- SKIPPED: containerd 1.6 fetch (needs root, containerd and ctr)"
fi

step "a registry that is not there, and a layout that is not one"
if "$winlayer" image pull "127.0.0.1:1/none/img:1" -o nothing --insecure 2>err.txt; then fail "pulled from nowhere"; fi
grep -q "127.0.0.1:1/none/img:1: manifest" err.txt || fail "unexpected: $(cat err.txt)"
mkdir notalayout
if W push ./notalayout "$R/x/y:1" 2>err.txt; then fail "pushed a non-layout"; fi
grep -q "oci-layout" err.txt || fail "unexpected: $(cat err.txt)"
echo "image suite: all checks passed"
