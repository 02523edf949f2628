#!/usr/bin/env bash
# `winlayer serve` as containerd 2.x's snapshotter *and* differ, end to end with real parts:
#   1. a Windows image (layers from scripts/gen-layer.py, a config with os windows and
#      os.version, laid out by scripts/oci-image.py) pushed by skopeo to Debian's distribution
#      registry (docker-registry) on 127.0.0.1;
#   2. containerd 2.x (the newest release and the oldest 2.0.x, scripts/containerd2.sh) with
#      `winlayer serve --print-config`; `ctr image pull --platform windows/amd64 --snapshotter
#      winlayer` unpacks every layer through winlayer's diff service;
#   3. cimfs mode: the top snapshot's CIM chain (`winlayer cim extract`) holds exactly the
#      layers applied in order (checked by Python's tarfile against the image's own layer
#      tars) and equals what `winlayer import --format cim` writes from the same tars;
#      linux mode: an overlay mount of the snapshots (bind, then overlay upper) shows the same;
#   4. a second pull applies nothing; an image `winlayer image append` builds on that image
#      (pushed to the same registry) pulls with one more Apply, its top CIM chain holding the
#      base's view plus the appended directory; `ctr image rm --sync` leaves no snapshot, no
#      CIM, no snapshot directory behind;
#   5. cimfs mode, containerd >= 2.1: the image converted by `winlayer image convert --to cimfs`
#      pulls through winlayer's fast path (layer_types), its top layer exporting the same bytes
#      and its merged view the same paths as the source image's unpack;
#   6. blockcim mode (newest containerd only): the pull is refused, since writing block CIM
#      layers needs Windows' cimwriter.dll: winlayer's Apply answers NotImplemented, saying so,
#      and no layer is left;
#   7. before the daemons: tests/go/differ, containerd's own diff/snapshots proxy clients and
#      content server (a local store) against winlayer serve in both modes.
# Needs root (containerd, overlay mounts), Go >= 1.26.6 (`go` on PATH, or $CONTAINERD2_GO),
# docker-registry and skopeo; skips visibly without root or Go, or off Linux.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "differ suite: SKIPPED: needs root on Linux (a containerd daemon and overlay mounts)"
  exit 0
fi
for tool in docker-registry skopeo python3; do
  command -v $tool >/dev/null || { echo "differ suite: $tool is missing (scripts/deps/apt-differ.txt)"; exit 1; }
done
go=${CONTAINERD2_GO:-go}
if ! command -v $go >/dev/null; then
  echo "differ suite: SKIPPED: containerd 2.x and the Go harness need Go >= 1.26.6 ($go is missing)"
  exit 0
fi
source scripts/containerd2.sh
source scripts/lib/registry-and-containerd.sh
declare -A bins
for version in "${containerd2_versions[@]}"; do bins[$version]=$(containerd2_build $version); done
cargo build -q --locked -p winlayer
winlayer=$repo/target/debug/winlayer

work=$(mktemp -d /tmp/wld.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

passes=0
ok() { passes=$((passes + 1)); echo "  ok   $*"; }
die() { echo "  FAIL $*" >&2; exit 1; }

echo "-- a Windows image in a registry on 127.0.0.1"
python3 scripts/gen-layer.py --profile base --files 400 --mib 8 --gzip -o $work/base.tar.gz
python3 scripts/gen-layer.py --profile app --files 100 --mib 2 --seed 2 --gzip -o $work/app.tar.gz
python3 scripts/oci-image.py --tag 1 --os-version 10.0.20348.2227 $work/layout $work/base.tar.gz $work/app.tar.gz > $work/image.json
start_registry $work/registry
ref=$registry/winlayer/sample:1
skopeo copy -q --dest-tls-verify=false oci:$work/layout:1 docker://$ref
ok "skopeo pushed the image to docker-registry at $registry"

# The merged view the image's layers give when applied in order, by Python's tarfile: every
# path with its kind and, for files, its bytes' digest (whiteouts delete what is below).
view_of_layers() {
  python3 - "$@" <<'PY'
import hashlib, posixpath, sys, tarfile
view = {}
for layer in sys.argv[1:]:
    with tarfile.open(layer) as t:
        for m in t:
            name = m.name.rstrip("/")
            if not name.startswith("Files/") or ":" in name:
                continue
            head, base = posixpath.split(name)
            if base.startswith(".wh."):
                gone = posixpath.join(head, base[4:])
                view = {p: v for p, v in view.items() if p != gone and not p.startswith(gone + "/")}
                continue
            if m.isdir():
                view[name] = "dir"
            elif m.issym():
                view[name] = "link"
            elif m.islnk():
                view[name] = view.get(m.linkname.rstrip("/"), "file?")
            else:
                view[name] = "file " + hashlib.sha256(t.extractfile(m).read()).hexdigest()
for p in sorted(view):
    print(p, view[p])
PY
}

# The same listing of a directory tree (an extracted CIM or a mounted overlay).
view_of_tree() {
  python3 - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
for dirpath, dirs, files in os.walk(os.path.join(root, "Files")):
    for name in sorted(dirs + files):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        if os.path.islink(path):
            kind = "link"
        elif os.path.isdir(path):
            kind = "dir"
        else:
            with open(path, "rb") as f:
                kind = "file " + hashlib.sha256(f.read()).hexdigest()
        print(rel, kind)
PY
}
view_of_layers $work/base.tar.gz $work/app.tar.gz | sort > $work/expected.view

# winlayer image append: a small directory (its tree becomes Files/…) onto the pushed image;
# the merged view it must give is the base's plus the directory's.
mkdir -p $work/extra/Files/winlayer-app/bin
echo "appended by winlayer image append" > $work/extra/Files/winlayer-app/readme.txt
head -c 300000 /dev/urandom > $work/extra/Files/winlayer-app/bin/app.exe
appended=$registry/winlayer/appended:1
$winlayer image append --base $ref --layer $work/extra/Files -t $appended --insecure --json > $work/append.json
{ cat $work/expected.view; view_of_tree $work/extra; } | sort > $work/appended.view
ok "winlayer image append built $appended on $ref and pushed it to docker-registry"
converted=$registry/winlayer/sample-cimfs:1
$winlayer image convert $ref --to cimfs -t $converted --insecure --json > $work/convert.json
ok "winlayer image convert pushed $converted: $ref with pre-converted CIM layers"

# nothing_left MODE ROOT: no snapshot in containerd, nothing in winlayer's root.
nothing_left() {
  local left stray
  left=$($ctr snapshots --snapshotter winlayer ls | awk 'NR > 1' | wc -l)
  [ "$left" = 0 ] || die "$1: $left snapshots left after image rm + GC"
  stray=$(find $2/snapshots -mindepth 1 -not -path "$2/snapshots/cim-layers" | head -5)
  [ -z "$stray" ] || die "$1: left behind: $stray"
}

# takes_layer_types VERSION: whether containerd VERSION's transfer service reads unpack_config
# layer_types (2.1 and later).
takes_layer_types() {
  [ "$(printf '%s\n' v2.1.0 "$1" | sort -V | head -1)" = v2.1.0 ]
}

# run_mode MODE VERSION: a fresh winlayer serve and containerd VERSION, the pull, its checks,
# the removal.
run_mode() {
  local mode=$1 version=$2 dir=$work/$1-$2
  containerd_bin=${bins[$version]}
  mkdir -p $dir
  local sock=$dir/winlayer.sock csock=$dir/containerd.sock root=$dir/root
  echo "-- $mode mode: containerd $version with winlayer as snapshotter and differ"
  $winlayer serve --mode $mode --root $root --address $sock --containerd-address $csock --log-level info \
    > $dir/serve.log 2>&1 &
  local serve=$!
  pids+=($serve)
  for _ in $(seq 100); do [ -S $sock ] && break; sleep 0.05; done
  containerd_config $dir $winlayer --mode $mode --root $root --address $sock < /dev/null
  start_containerd $dir
  $ctr plugins ls > $dir/plugins.txt
  grep -q 'io.containerd.differ.v1 *winlayer-diff .*ok' $dir/plugins.txt || die "containerd has no winlayer-diff differ"
  ok "$mode: containerd loaded winlayer (snapshot) and winlayer-diff (diff) from --print-config"

  $ctr image pull --plain-http --platform windows/amd64 --snapshotter winlayer $ref > $dir/pull.log 2>&1 ||
    { cat $dir/pull.log $dir/serve.log; die "$mode: ctr image pull"; }
  local applies
  applies=$(grep -c 'applied' $dir/serve.log || true)
  [ "$applies" = 2 ] || { cat $dir/serve.log; die "$mode: $applies Apply calls for 2 layers"; }
  local committed
  committed=$($ctr snapshots --snapshotter winlayer ls | awk 'NR > 1 && $NF == "Committed"' | wc -l)
  [ "$committed" = 2 ] || die "$mode: $committed committed snapshots for 2 layers"
  ok "$mode: ctr image pull unpacked both layers through winlayer's Apply (diffIDs accepted by containerd)"

  if [ $mode = cimfs ]; then
    local top
    top=$(ls $root/snapshots/cim-layers/*.cim | sort -V | tail -1)
    $winlayer cim extract $top $dir/top > /dev/null 2>&1
    view_of_tree $dir/top | sort > $dir/got.view
    diff -u $work/expected.view $dir/got.view > $dir/view.diff || { head -40 $dir/view.diff; die "cimfs: merged view"; }
    ok "cimfs: the top snapshot's CIM chain holds the layers applied in order ($(wc -l < $dir/got.view) paths, checked by tarfile)"
    mkdir -p $dir/cli/cims
    $winlayer import -i $work/base.tar.gz $dir/cli/1 --cim $dir/cli/cims/1.cim > /dev/null
    $winlayer import -i $work/app.tar.gz $dir/cli/2 --cim $dir/cli/cims/2.cim --layer $dir/cli/1 --parent-cim $dir/cli/cims/1.cim > /dev/null
    $winlayer export $dir/cli/2 --cim $dir/cli/cims/2.cim -o $dir/cli.tar 2> /dev/null
    $winlayer export $root/snapshots/$(basename $top .cim) --cim $top -o $dir/top.tar 2> /dev/null
    cmp $dir/cli.tar $dir/top.tar || die "cimfs: the differ's top layer differs from winlayer import's"
    $winlayer cim extract $dir/cli/cims/2.cim $dir/cli-view > /dev/null 2>&1
    diff -r --no-dereference $dir/top $dir/cli-view > /dev/null || die "cimfs: merged views differ from winlayer import's"
    ok "cimfs: top layer export byte-identical, merged view identical, to winlayer import --format cim of the same tars"
  else
    local l1 l2
    read -r l1 l2 < <(ls -d $root/snapshots/[0-9]* | sort -V | xargs)
    [ -n "$l2" ] || die "linux: two snapshot directories expected"
    mkdir $dir/merged
    mount -t overlay overlay -o "ro,lowerdir=$l2/fs:$l1/fs" $dir/merged
    view_of_tree $dir/merged | sort > $dir/got.view
    umount $dir/merged
    diff -u $work/expected.view $dir/got.view > $dir/view.diff || { head -40 $dir/view.diff; die "linux: merged view"; }
    ok "linux: the overlay of the two snapshots (bind, then overlay upper) is the layers applied in order ($(wc -l < $dir/got.view) paths)"
    python3 -c "import os,sys; os.getxattr(sys.argv[1], 'user.windows.security')" "$(find $l1/fs/Files -type f | head -1)" ||
      die "linux: no user.windows.security on the view's files"
    ok "linux: Windows metadata kept as user.windows.* xattrs"
  fi

  $ctr image pull --plain-http --platform windows/amd64 --snapshotter winlayer $ref > $dir/pull2.log 2>&1 || die "$mode: second pull"
  [ "$(grep -c 'applied' $dir/serve.log)" = 2 ] || die "$mode: the second pull applied layers again"
  ok "$mode: a second pull unpacks nothing"

  if [ $mode = cimfs ]; then
    $ctr image pull --plain-http --platform windows/amd64 --snapshotter winlayer $appended > $dir/pull3.log 2>&1 ||
      { cat $dir/pull3.log $dir/serve.log; die "cimfs: ctr image pull of winlayer image append's image"; }
    [ "$(grep -c 'applied' $dir/serve.log)" = 3 ] || { cat $dir/serve.log; die "cimfs: the appended image did not apply exactly its one new layer"; }
    local top3
    top3=$(ls $root/snapshots/cim-layers/*.cim | sort -V | tail -1)
    $winlayer cim extract $top3 $dir/top3 > /dev/null 2>&1
    view_of_tree $dir/top3 | sort > $dir/got3.view
    diff -u $work/appended.view $dir/got3.view > $dir/view3.diff || { head -40 $dir/view3.diff; die "cimfs: the appended image's merged view"; }
    ok "cimfs: containerd pulled winlayer image append's image (base snapshots reused, one Apply); its top CIM chain is the base's view plus the appended files ($(wc -l < $dir/got3.view) paths)"
    $ctr image rm --sync $appended > /dev/null
  fi

  $ctr image rm --sync $ref > /dev/null
  nothing_left $mode $root
  ok "$mode: ctr image rm --sync (garbage collection) leaves no snapshot, CIM or directory behind"

  # The converted image: containerd >= 2.1 hands its layers to winlayer (unpack_config
  # layer_types), which writes them as they are.
  if [ $mode = cimfs ] && takes_layer_types $version; then
    $ctr image pull --plain-http --platform windows/amd64 --snapshotter winlayer $converted > $dir/pull4.log 2>&1 ||
      { cat $dir/pull4.log $dir/serve.log; die "cimfs: ctr image pull of the converted image"; }
    [ "$(grep -c 'converted layer' $dir/serve.log)" = 2 ] || { cat $dir/serve.log; die "cimfs: the converted image's 2 layers were not applied as converted layers"; }
    local top4
    top4=$(ls $root/snapshots/cim-layers/*.cim | sort -V | tail -1)
    $winlayer export $root/snapshots/$(basename $top4 .cim) --cim $top4 -o $dir/top4.tar 2> /dev/null
    cmp $dir/top.tar $dir/top4.tar || die "cimfs: the converted image's top layer exports other bytes than the source's"
    $winlayer cim extract $top4 $dir/top4 > /dev/null 2>&1
    view_of_tree $dir/top4 | sort > $dir/got4.view
    diff -u $work/expected.view $dir/got4.view > $dir/view4.diff || { head -40 $dir/view4.diff; die "cimfs: the converted image's merged view"; }
    ok "cimfs: containerd $version pulled the converted image through winlayer's fast path (no tar parsed): diffIDs accepted, top layer export byte-identical and merged view identical to the source image's unpack"
    $ctr image rm --sync $converted > /dev/null
    nothing_left $mode $root
  elif [ $mode = cimfs ]; then
    echo "  skip cimfs: the converted image through containerd $version (its transfer service reads unpack_config layer_types from 2.1 on)"
  fi

  if grep -E ' (WARN|ERROR) ' $dir/serve.log; then die "$mode: serve logged failures"; fi
  kill $ctrd $serve
  wait $ctrd $serve 2>/dev/null || true
  grep -q 'stopped' $dir/serve.log || die "$mode: serve did not stop cleanly on SIGTERM"
}

# blockcim_refused VERSION: blockcim mode on Linux: containerd's pull reaches winlayer's Apply,
# which refuses the BlockCIM extraction (NotImplemented: block CIMs need Windows) before reading
# the blob; the pull fails and no block CIM is left.
blockcim_refused() {
  local version=$1 dir=$work/blockcim-$1
  containerd_bin=${bins[$version]}
  mkdir -p $dir
  local sock=$dir/winlayer.sock csock=$dir/containerd.sock root=$dir/root
  echo "-- blockcim mode: containerd $version with winlayer as snapshotter and differ (no cimwriter.dll here)"
  $winlayer serve --mode blockcim --root $root --address $sock --containerd-address $csock --log-level info \
    > $dir/serve.log 2>&1 &
  local serve=$!
  pids+=($serve)
  for _ in $(seq 100); do [ -S $sock ] && break; sleep 0.05; done
  containerd_config $dir $winlayer --mode blockcim --root $root --address $sock < /dev/null
  start_containerd $dir
  if $ctr image pull --plain-http --platform windows/amd64 --snapshotter winlayer $ref > $dir/pull.log 2>&1; then
    cat $dir/pull.log $dir/serve.log
    die "blockcim: ctr image pull succeeded without cimwriter.dll"
  fi
  grep 'block CIMs need Windows' $dir/serve.log | grep 'method="Apply"' | grep -q 'code=Unimplemented' ||
    { cat $dir/pull.log $dir/serve.log; die "blockcim: winlayer's Apply did not refuse with the reason"; }
  [ -z "$(find $root/snapshots -name layer.vhd)" ] || die "blockcim: a layer.vhd was left: $(find $root/snapshots -name layer.vhd)"
  ok "blockcim: containerd $version's pull reached winlayer's Apply, which refused it (NotImplemented: block CIMs need Windows); no layer left"
  kill $ctrd $serve
  wait $ctrd $serve 2>/dev/null || true
}

echo "-- containerd's diff and snapshots proxy clients and content server against winlayer serve (tests/go/differ)"
harness=$repo/target/differ-harness.test
(cd tests/go && GOTOOLCHAIN=local GOPATH=${GOPATH:-$repo/target/go} GOCACHE=${GOCACHE:-$repo/target/go-cache} \
  nice -n 10 $go test -c -o $harness ./differ)
WINLAYER=$winlayer WINLAYER_BASE_LAYER=$work/base.tar.gz WINLAYER_APP_LAYER=$work/app.tar.gz \
  $harness -test.v > $work/harness.log 2>&1 || { grep -v ' WARN ' $work/harness.log; die "go harness"; }
grep -q -- '--- PASS: TestDiffService/cimfs' $work/harness.log && grep -q -- '--- PASS: TestDiffService/linux' $work/harness.log ||
  { cat $work/harness.log; die "go harness: a mode did not run"; }
ok "go harness: Apply through core/diff/proxy (diffIDs, NotImplemented, DataLoss for short and corrupted blobs, snapshot left empty), Compare into containerd's content store (labels, archive/tar, re-Apply), linux view through core/mount"

for version in "${containerd2_versions[@]}"; do
  run_mode cimfs $version
  run_mode linux $version
done
blockcim_refused ${containerd2_versions[0]}
echo "differ suite: $passes checks passed"
