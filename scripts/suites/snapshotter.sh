#!/usr/bin/env bash
# `winlayer serve` against containerd itself (Debian's containerd 1.6.20 and its Go sources):
#   1. containerd's snapshotter conformance suite through containerd's snapshots proxy client
#      (linux mode: every test 1.6.20 runs; windows, cimfs and blockcim modes: the mount-free tests);
#   2. a containerd daemon with one proxy_plugins entry per mode: the same suite through it,
#      and `ctr snapshots` scenarios (prepare, view, commit, ls, info, label, usage, mounts,
#      tree, rm, extraction keys, garbage collection then Cleanup, each mode's mount options,
#      garbage collection over snapshots whose labels exceed one gRPC message);
#   3. restarts: state survives a clean restart; a daemon killed with SIGKILL in the middle of
#      commits and removes comes back consistent and Cleanup leaves no orphan.
# Needs root (real mounts, containerd) on Linux; elsewhere it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "snapshotter suite: SKIPPED: needs root on Linux (mounts and a containerd daemon)"
  exit 0
fi
gosrc=/usr/share/gocode/src/github.com/containerd/containerd
# Debian's Go (golang-go), named explicitly: containerd 1.6.20's sources build in GOPATH mode
# with it, and `go` on PATH may be a newer one.
debian_go=/usr/lib/go/bin/go
[ -x $debian_go ] || { echo "snapshotter suite: Debian's Go ($debian_go) is missing (scripts/deps/apt-snapshotter.txt)"; exit 1; }
for tool in containerd ctr mkntfs; do
  PATH=$PATH:/usr/sbin:/sbin command -v $tool >/dev/null ||
    { echo "snapshotter suite: $tool is missing (scripts/deps/apt-snapshotter.txt)"; exit 1; }
done
[ -d $gosrc/snapshots/testsuite ] ||
  { echo "snapshotter suite: golang-github-containerd-containerd-dev is missing (scripts/deps/apt-snapshotter.txt)"; exit 1; }

started=$(date +%s)
cargo build -q --locked -p winlayer
winlayer=$repo/target/debug/winlayer

source scripts/lib/snapshot-suites.sh

echo "-- building containerd's conformance suite (Go $($debian_go env GOVERSION), GOPATH mode)"
gopath=$repo/target/snapshotter-go
mkdir -p $gopath/src
ln -sfn $repo/crates/winlayer-snapshotter/conformance $gopath/src/conformance
suite=$repo/target/snapshotter-conformance.test
(cd $gopath/src/conformance &&
  GO111MODULE=off GOFLAGS= GOPATH=$gopath:/usr/share/gocode GOCACHE=${GOCACHE:-$repo/target/go-cache} \
    $debian_go test -c -o $suite .)


echo "-- conformance suite through containerd's snapshots proxy client (one winlayer serve per test; 1.6.20 always skips Rename)"
run_suite "linux mode, direct" 20 '^TestProxySnapshotter$' WINLAYER_BIN=$winlayer WINLAYER_MODE=linux
for mode in windows cimfs blockcim; do
  run_suite "$mode mode, direct, mount-free tests" 5 "^TestProxySnapshotter$mountfree" \
    WINLAYER_BIN=$winlayer WINLAYER_MODE=$mode WINLAYER_EXTRACTION_KEYS=1
done

# serve [NAME-]MODE: starts `winlayer serve` for MODE on $work/NAME-MODE.sock, root $work/NAME-MODE.
declare -A serve_pid
serve() {
  rm -f $work/$1.sock
  $winlayer serve --mode ${1#*-} --root $work/$1 --address $work/$1.sock 2>>$work/$1.log &
  serve_pid[$1]=$!
  pids+=($!)
  for _ in $(seq 200); do [ -S $work/$1.sock ] && return; sleep 0.05; done
  die "winlayer serve --mode $1 did not start: $(cat $work/$1.log)"
}
# stop MODE SIGNAL: stops it; on SIGTERM it must exit 0 and remove its socket.
stop() {
  local pid=${serve_pid[$1]} status=0
  kill -$2 $pid
  wait $pid || status=$?
  if [ $2 = TERM ]; then
    [ $status = 0 ] || die "winlayer serve --mode $1 exited with $status on SIGTERM"
    [ ! -e $work/$1.sock ] || die "winlayer serve --mode $1 left its socket behind"
  fi
}

echo "-- a root other users can write is refused at start"
mkdir -m 0777 $work/open-root
if out=$($winlayer serve --mode linux --root $work/open-root --address $work/open.sock 2>&1); then
  die "serve started on a root anyone can write"
fi
grep -q "writable by other users (mode 0777)" <<<"$out" && ok "refused with the reason: $out" || die "refusal without the reason: $out"
[ -z "$(ls -A $work/open-root)" ] && ok "nothing was written into it" || die "serve wrote into the refused root"

echo "-- List filters against containerd's own filter parser (the fuzz corpus, fuzz/corpus/snapshot_filter)"
serve oracle-linux
out=$(WINLAYER_SOCKET=$work/oracle-linux.sock WINLAYER_FILTER_CORPUS=$repo/fuzz/corpus/snapshot_filter \
  $suite -test.v -test.run '^TestFilterOracle$' 2>&1) || die "filters disagree with containerd's: $(grep -v level=error <<<"$out")"
ok "$(grep -oE '[0-9]+ corpus files agree.*' <<<"$out")"
stop oracle-linux TERM

for mode in linux windows cimfs blockcim; do serve $mode; done

mkdir -p $work/ctrd
containerd_config 2 $work/ctrd $work io.containerd.grpc.v1.cri
containerd --config $work/ctrd/config.toml >$work/ctrd/containerd.log 2>&1 &
pids+=($!)
ctrd=$work/ctrd/ctrd.sock
for _ in $(seq 200); do ctr --address $ctrd version >/dev/null 2>&1 && break; sleep 0.05; done
echo "-- containerd $(containerd --version | awk '{print $3}') with proxy_plugins winlayer-linux, winlayer-windows, winlayer-cimfs, winlayer-blockcim"
plugins=$(ctr --address $ctrd plugins ls)
for mode in linux windows cimfs blockcim; do
  grep -qE "io.containerd.snapshotter.v1 +winlayer-$mode +- +ok" <<<"$plugins" || die "plugin winlayer-$mode not loaded"
done
ok "containerd loaded the four proxy snapshotters"

# `json EXPR` evaluates a Python expression over standard input's JSON (as `d`); `plugin MODE`
# dumps what the plugin itself stores (its List, Usage, Mounts), one JSON object a line.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
plugin() { WINLAYER_SOCKET=$work/$1.sock $suite -test.run '^TestDump$' | grep '^{' || true; }
expect_eq() { [ "$2" == "$3" ] && ok "$1" || die "$1: expected [$3], got [$2]"; }
expect_fail() {
  local what=$1 pattern=$2 out
  shift 2
  if out=$("$@" 2>&1); then die "$what: succeeded: $out"; fi
  grep -qE -- "$pattern" <<<"$out" && ok "$what" || die "$what: expected /$pattern/ in: $out"
}
# gc_then_cleanup MODE KEYS...: removes KEYS through containerd, whose garbage collector must
# then remove them from the plugin (children first) and call Cleanup, which deletes an orphan
# planted beforehand. (Snapshots the conformance suite leaves behind carry containerd.io/gc.root
# in its own namespace and stay.)
gc_then_cleanup() {
  local mode=$1 snapshots=$work/$1/snapshots
  shift
  mkdir -p $snapshots/new-999999/fs
  $S rm "$@"
  for _ in $(seq 100); do
    [ "$(count $mode default/)" = 0 ] && [ ! -e $snapshots/new-999999 ] && break
    sleep 0.1
  done
  expect_eq "$mode: garbage collection removed them from the plugin" "$(count $mode default/)" 0
  expect_eq "$mode: Cleanup after GC left one directory per snapshot, no orphan" \
    "$(ls $snapshots | grep -vc '^cim-layers$' || true)" "$(count $mode)"
}
# view_kept KEY PARENT: `ctr snapshots view --mounts`, labelled containerd.io/gc.root at once.
# ctr 1.6 creates views without that label (prepare sets it), so a garbage collection still
# running from earlier removals may take the view before the label lands: it is made again.
view_kept() {
  local out
  for _ in 1 2 3 4 5; do
    out=$($S view --mounts "$1" "$2") &&
      $S label "$1" containerd.io/gc.root=snapshotter-suite >/dev/null 2>&1 && { echo "$out"; return; }
    $S rm "$1" >/dev/null 2>&1 || true
  done
  die "view $1 on $2: garbage collection took it five times over"
}
# count MODE [PREFIX]: how many snapshots (whose backend key starts with PREFIX) the plugin has.
count() { plugin $1 | grep -c "\"name\":\"${2:-}" || true; }

echo "-- ctr snapshots scenarios, linux mode (real mounts)"
S="ctr --address $ctrd snapshots --snapshotter winlayer-linux"
mnt=$work/mnt
mkdir -p $mnt
out=$($S prepare --mounts base-active)
base_fs=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "prepare: bind mount of the snapshot's fs/" "$(json 'd[0]["Type"], d[0]["Options"]' <<<"$out")" "bind ['rw', 'rbind']"
[[ $base_fs == $work/linux/snapshots/*/fs ]] && ok "prepare: source under the root: $base_fs" || die "source $base_fs"
$S mounts $mnt base-active | sh
echo base >$mnt/base.txt
umount $mnt
$S commit base base-active
out=$($S prepare --mounts layer2-active base)
expect_eq "prepare on a parent: overlay with lowerdir = parent" \
  "$(json 'd[0]["Type"], [o.split("=")[0] for o in d[0]["Options"] if "=" in o], d[0]["Options"][-1]' <<<"$out")" \
  "overlay ['workdir', 'upperdir', 'lowerdir'] lowerdir=$base_fs"
$S mounts $mnt layer2-active | sh
expect_eq "the child sees its parent's files" "$(cat $mnt/base.txt)" "base"
echo layer2 >$mnt/layer2.txt
umount $mnt
$S commit layer2 layer2-active
out=$(view_kept ro1 layer2)
expect_eq "view on two layers: read-only overlay, immediate parent first" \
  "$(json 'd[0]["Type"], len(d[0]["Options"][-1].split(":")), d[0]["Options"][-1].endswith(":" + "'$base_fs'")' <<<"$out")" \
  "overlay 2 True"
$S mounts $mnt ro1 | sh
expect_eq "the view shows both layers" "$(cat $mnt/base.txt $mnt/layer2.txt | tr '\n' ' ')" "base layer2 "
if touch $mnt/new 2>/dev/null; then die "a view is writable"; else ok "a view refuses writes"; fi
umount $mnt
$S prepare ctr1 layer2 >/dev/null
expect_eq "ls: kinds and parents" "$($S ls | awk 'NR>1 {print $1 "<" $2 ":" $NF}' | sort | tr '\n' ' ')" \
  "base<Committed:Committed ctr1<layer2:Active layer2<base:Committed ro1<layer2:View "
expect_eq "info: an active snapshot" "$($S info ctr1 | json 'd["Kind"], d["Parent"]')" "Active layer2"
$S label layer2 containerd.io/snapshot/keep=1 team=winlayer >/dev/null
expect_eq "label: containerd keeps every label" \
  "$($S info layer2 | json 'd["Labels"].get("containerd.io/snapshot/keep"), d["Labels"].get("team")')" "1 winlayer"
expect_eq "label: the plugin stores the inherited one only" \
  "$(plugin linux | grep -c '"containerd.io/snapshot/keep":"1"') $(plugin linux | grep -c team || true)" "1 0"
usage=$($S usage layer2 | awk 'NR==2 {print $NF}')
[ "$usage" -ge 2 ] && ok "usage: layer2 has $usage inodes" || die "usage of layer2: $usage inodes"
expect_eq "usage: a view uses nothing" "$($S usage ro1 | awk 'NR==2 {print $2 $3, $4}')" "0.0B 0"
expect_eq "tree" "$($S tree | tr -s ' \n' ' ')" " base \\_ layer2 \\_ ctr1 \\_ ro1 "
expect_fail "prepare on a missing parent" "not found" $S prepare x missing
expect_fail "prepare an existing key" "already exists" $S prepare ctr1 layer2
expect_fail "commit a view" "not active: failed precondition" $S commit x ro1
expect_fail "remove a parent" "cannot remove snapshot with child" $S rm base
$S prepare "extract-1 sha256:l3" layer2 >/dev/null
$S commit sha256:l3 "extract-1 sha256:l3"
expect_eq "an extraction key reaches the plugin as containerd's backend key" \
  "$(plugin linux | grep -cE '"name":"default/[0-9]+/sha256:l3"')" "1"
gc_then_cleanup linux ctr1 ro1 sha256:l3 layer2 base

echo "-- large labels: containerd's garbage collector lists them (List replies bounded by size)"
big_labels $S
expect_eq "the plugin holds six snapshots of 900 labels each" \
  "$(plugin linux | python3 -c 'import json,sys; print(sorted(len(json.loads(l)["labels"]) for l in sys.stdin if "/big-" in l))')" \
  "[900, 900, 900, 900, 900, 900]"
$S rm big-0 big-1 big-2 big-3 big-4 big-5
collect_garbage ctr --address $ctrd
expect_eq "after ctr snapshots rm and a forced garbage collection winlayer holds none of them" "$(count linux default/)" 0
if grep -q 'garbage collection failed' $work/ctrd/containerd.log; then
  die "containerd's garbage collection failed: $(grep 'garbage collection failed' $work/ctrd/containerd.log | head -1)"
fi
ok "containerd logged no failed garbage collection"

echo "-- ctr snapshots scenarios, windows mode"
S="ctr --address $ctrd snapshots --snapshotter winlayer-windows"
out=$($S prepare --mounts base-active)
base_dir=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "prepare without parent: a new base layer, windows-layer rw" \
  "$(json 'd[0]["Type"], d[0]["Options"]' <<<"$out")" "windows-layer ['rw']"
[ -d $base_dir/Files ] && ok "a new base layer has Files/" || die "no $base_dir/Files"
$S commit base base-active
out=$($S prepare --mounts "extract-1 sha256:l2" base)
expect_eq "extraction on a parent: parentLayerPaths" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['rw', 'parentLayerPaths=[\"$base_dir\"]']"
l2_dir=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "an extraction target is an empty directory" "$(ls -A $l2_dir)" ""
$S commit sha256:l2 "extract-1 sha256:l2"
out=$(view_kept "extract-2 inspect" sha256:l2)
expect_eq "view: ro, parents immediate first" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['ro', 'parentLayerPaths=[\"$l2_dir\",\"$base_dir\"]']"
expect_eq "mounts returns the same" "$($S mounts /x "extract-2 inspect")" \
  "mount -t windows-layer $(json 'd[0]["Source"]' <<<"$out") /x -o ro,parentLayerPaths=[\"$l2_dir\",\"$base_dir\"]"
expect_fail "a container scratch needs the base layer's blank.vhdx" "has no blank.vhdx" $S prepare ctr1 sha256:l2
# What Windows' base layer import leaves in a base layer: the blank.vhdx pair.
$winlayer vhdx scratch-template $base_dir >/dev/null
out=$($S prepare --mounts ctr1 sha256:l2)
ctr1_dir=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "a container scratch: rw, parents immediate first" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['rw', 'parentLayerPaths=[\"$l2_dir\",\"$base_dir\"]']"
$winlayer vhdx check $ctr1_dir/sandbox.vhdx >/dev/null &&
  ok "its sandbox.vhdx is a whole VHDX over the base layer's blank-base.vhdx (winlayer vhdx check)" ||
  die "sandbox.vhdx: $($winlayer vhdx check $ctr1_dir/sandbox.vhdx)"
expect_eq "ls" "$($S ls | awk 'NR>1 {print $NF}' | sort | tr '\n' ' ')" "Active Committed Committed View "
$S label sha256:l2 containerd.io/snapshot/x=y >/dev/null
expect_eq "label reaches the plugin" "$(plugin windows | grep -c '"containerd.io/snapshot/x":"y"')" "1"
expect_eq "tree" "$($S tree | tr -s ' \n' ' ')" " base \\_ sha256:l2 \\_ ctr1 \\_ extract-2 inspect "
gc_then_cleanup windows ctr1 "extract-2 inspect" sha256:l2 base

# cim_mode_start MODE: what the cimfs and blockcim modes share before any layer: the scratch
# templates made at start, and a scratch without parent refused (as containerd's snapshot does).
cim_mode_start() {
  $winlayer vhdx check $work/$1/blank.vhdx >/dev/null &&
    ok "$1: the scratch templates were made at start (winlayer vhdx check of blank.vhdx over blank-base.vhdx)" ||
    die "$1 mode started without its templates: $(ls $work/$1)"
  expect_fail "$1: a scratch without parent is refused (as containerd's $1 does)" "without any parent.*invalid argument" \
    $S prepare base-active
}
echo "-- ctr snapshots scenarios, cimfs mode"
S="ctr --address $ctrd snapshots --snapshotter winlayer-cimfs"
cims=$work/cimfs/snapshots/cim-layers
cim_mode_start cimfs
out=$($S prepare --mounts "extract-1 sha256:b")
b_dir=$(json 'd[0]["Source"]' <<<"$out")
b_id=$(basename $b_dir)
expect_eq "extraction: CimFS with cimpath" "$(json 'd[0]["Type"], d[0]["Options"]' <<<"$out")" \
  "CimFS ['rw', 'cimpath=$cims/$b_id.cim']"
$S commit sha256:b "extract-1 sha256:b"
out=$($S prepare --mounts "extract-2 sha256:c" sha256:b)
c_id=$(basename $(json 'd[0]["Source"]' <<<"$out"))
expect_eq "extraction on a parent: parentLayerPaths and parentCimPaths" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['rw', 'cimpath=$cims/$c_id.cim', 'parentLayerPaths=[\"$b_dir\"]', 'parentCimPaths=[\"$cims/$b_id.cim\"]']"
$S commit sha256:c "extract-2 sha256:c"
out=$($S prepare --mounts ctr1 sha256:c)
ctr1_dir=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "a container scratch: rw, its own cimpath, both parent lists" \
  "$(json 'd[0]["Options"][0], d[0]["Options"][2].count(","), d[0]["Options"][3].count(",")' <<<"$out")" "rw 1 1"
$winlayer vhdx check $ctr1_dir/sandbox.vhdx >/dev/null &&
  [ -f $work/cimfs/blank-base.vhdx ] && [ -f $work/cimfs/blank.vhdx ] &&
  ok "its sandbox.vhdx is a whole copy of the root's blank.vhdx over blank-base.vhdx (winlayer vhdx check)" ||
  die "cimfs scratch: $(ls $work/cimfs) $($winlayer vhdx check $ctr1_dir/sandbox.vhdx)"
expect_fail "a container scratch cannot be committed (as containerd's cimfs)" "not supported.*not implemented" \
  $S commit layer ctr1
out=$(view_kept "extract-3 inspect" sha256:c)
expect_eq "view: ro and two parents of each kind" \
  "$(json 'd[0]["Options"][0], d[0]["Options"][2].count(","), d[0]["Options"][3].count(",")' <<<"$out")" "ro 1 1"
expect_eq "ls" "$($S ls | awk 'NR>1 {print $NF}' | sort | tr '\n' ' ')" "Active Committed Committed View "
expect_eq "usage of a committed layer" "$($S usage sha256:b | awk 'NR==2 {print $NF}')" "1"
gc_then_cleanup cimfs ctr1 "extract-3 inspect" sha256:c sha256:b

echo "-- ctr snapshots scenarios, blockcim mode (layers, merged CIMs: Windows' cimfs.dll, not run here)"
S="ctr --address $ctrd snapshots --snapshotter winlayer-blockcim"
snaps=$work/blockcim/snapshots
cim_mode_start blockcim
out=$($S prepare --mounts "extract-1 sha256:b")
b_cim=$(json 'd[0]["Source"]' <<<"$out")
b_id=$(basename $(dirname $(dirname $b_cim)))
expect_eq "extraction: BlockCIM, no ro/rw, its source the layer's CIM inside layer.vhd" \
  "$(json 'd[0]["Type"], d[0]["Source"], d[0]["Options"]' <<<"$out")" \
  "BlockCIM $snaps/$b_id/layer.vhd/layer.cim ['parentCimPaths=[]', 'blockCIMType=file']"
expect_eq "an extraction target is an empty directory (the differ writes layer.vhd)" "$(ls -A $snaps/$b_id)" ""
$S commit sha256:b "extract-1 sha256:b"
out=$($S prepare --mounts "extract-2 sha256:c" sha256:b)
c_id=$(basename $(dirname $(dirname $(json 'd[0]["Source"]' <<<"$out"))))
expect_eq "extraction on a parent: parentCimPaths" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['parentCimPaths=[\"$b_cim\"]', 'blockCIMType=file']"
$S commit sha256:c "extract-2 sha256:c"
out=$($S prepare --mounts ctr1 sha256:b)
ctr1_dir=$(json 'd[0]["Source"]' <<<"$out")
expect_eq "a container scratch over one layer: its directory, no merged CIM" \
  "$(dirname $ctr1_dir) $(json 'd[0]["Options"]' <<<"$out")" \
  "$snaps ['parentCimPaths=[\"$b_cim\"]', 'blockCIMType=file']"
$winlayer vhdx check $ctr1_dir/sandbox.vhdx >/dev/null &&
  ok "its sandbox.vhdx is a whole copy of the root's blank.vhdx over blank-base.vhdx (winlayer vhdx check)" ||
  die "blockcim scratch: $($winlayer vhdx check $ctr1_dir/sandbox.vhdx)"
expect_fail "a scratch over two layers needs their merged CIM, which only Windows' cimfs.dll builds" \
  "need Windows.*not implemented" $S prepare ctr2 sha256:c
expect_eq "the refused Prepare left no snapshot and no merged CIM" \
  "$(plugin blockcim | grep -c '/ctr2"' || true) $(ls -A $snaps/$c_id | tr '\n' ' ')$(ls $snaps | wc -l)" "0 3"
expect_fail "a container scratch cannot be committed (as containerd's blockcim)" "not supported.*not implemented" \
  $S commit layer ctr1
out=$(view_kept "extract-3 inspect" sha256:b)
expect_eq "view: a scratch too (sandbox.vhdx), no ro" "$(json 'd[0]["Options"]' <<<"$out")" \
  "['parentCimPaths=[\"$b_cim\"]', 'blockCIMType=file']"
expect_eq "ls" "$($S ls | awk 'NR>1 {print $NF}' | sort | tr '\n' ' ')" "Active Committed Committed View "
gc_then_cleanup blockcim ctr1 "extract-3 inspect" sha256:c sha256:b

echo "-- conformance suite through the containerd daemon (metadata layer, proxy, winlayer)"
run_suite "linux mode, through containerd" 20 '^TestThroughContainerd$' \
  CONTAINERD_ADDRESS=$ctrd CONTAINERD_SNAPSHOTTER=winlayer-linux
for mode in windows cimfs blockcim; do
  run_suite "$mode mode, through containerd, mount-free tests" 5 "^TestThroughContainerd$mountfree" \
    CONTAINERD_ADDRESS=$ctrd CONTAINERD_SNAPSHOTTER=winlayer-$mode WINLAYER_EXTRACTION_KEYS=1
done

echo "-- restart: state survives"
S="ctr --address $ctrd snapshots --snapshotter winlayer-linux"
$S prepare base-active >/dev/null
$S mounts $mnt base-active | sh
echo kept >$mnt/kept.txt
umount $mnt
$S commit base base-active
$S prepare ctr1 base >/dev/null
$S label ctr1 containerd.io/snapshot/l=1 >/dev/null
view_kept ro1 base >/dev/null
# The suite's own snapshots may still be under garbage collection: compare this namespace's.
mine() { plugin linux | grep '"name":"default/' || true; }
before=$(mine)
ls_before=$($S ls)
stop linux TERM
ok "SIGTERM: exit status 0, socket removed"
serve linux
for _ in $(seq 100); do $S info ctr1 >/dev/null 2>&1 && break; sleep 0.1; done
expect_eq "the plugin's snapshots, labels, usage and mounts are unchanged" "$(mine)" "$before"
expect_eq "ctr snapshots ls is unchanged" "$($S ls)" "$ls_before"
$S mounts $mnt ctr1 | sh
expect_eq "content survives" "$(cat $mnt/kept.txt)" "kept"
umount $mnt
gc_then_cleanup linux ctr1 ro1 base

echo "-- crash: SIGKILL in the middle of prepares, commits and removes"
churn_root=$work/churn
serve_churn() {
  rm -f $work/churn.sock
  $winlayer serve --mode linux --root $churn_root --address $work/churn.sock 2>>$work/churn.log &
  churn_pid=$!
  pids+=($!)
  for _ in $(seq 200); do [ -S $work/churn.sock ] && return; sleep 0.05; done
  die "winlayer serve did not start: $(cat $work/churn.log)"
}
for round in 1 2 3 4 5; do
  serve_churn
  WINLAYER_SOCKET=$work/churn.sock $suite -test.run '^TestChurn$' >/dev/null 2>&1 &
  churn_client=$!
  sleep 0.$((3 + round))
  kill -KILL $churn_pid
  wait $churn_client 2>/dev/null || true
  wait $churn_pid 2>/dev/null || true
  left=$(ls $churn_root/snapshots | grep -cE '^(new|rm)-' || true)
  echo "  round $round: killed with $(ls $churn_root/snapshots | wc -l) directories, $left of them new-* or rm-*"
done
serve_churn
out=$(WINLAYER_SOCKET=$work/churn.sock WINLAYER_SNAPSHOTS_DIR=$churn_root/snapshots $suite -test.run '^TestConsistent$' 2>&1) ||
  die "inconsistent after SIGKILL: $out"
ok "after 5 kills every snapshot is whole and Cleanup left no orphan ($(grep '^consistent' <<<"$out"))"
kill -TERM $churn_pid
wait $churn_pid

for mode in linux windows cimfs blockcim; do stop $mode TERM; done
ok "every winlayer serve stopped cleanly on SIGTERM"
echo "snapshotter suite took $(($(date +%s) - started)) s"
echo "snapshotter: $passes passed, 0 failed"
