#!/usr/bin/env bash
# Whole-process benchmark of `winlayer cim` against peers in the same run, on two generated
# layers (scripts/gen-layer.py: a base layer of 20k files / ~400 MiB and a 100k-file layer).
# Every row runs peer and winlayer in alternating pairs (A B A B ...: this machine is shared and
# noisy, so both sides see the same noise) and reports, for wall time and for CPU time (user +
# system: on a machine whose cores are busy, wall time mostly measures the wait for a core), the
# medians and their ratio, with the range (min–max) of the per-pair ratios beside it. Both sides stop the clock with their output on
# disk: `cim create` is the default, durable one (it syncs its files); peers' output files are
# synced with `sync FILE` (fsync) and GNU tar's tree with `sync -f` (the file system: a global
# `sync` would also wait for whatever else the machine is writing).
#   cim create vs GNU tar -x + sync        per-file import, what Windows nodes do
#   cim create vs tar2sqfs -c lz4 -j 2 + sync (squashfs-tools-ng): the best read-only image builder here
#   cim create vs cp + sync of the tar      the I/O limit
#   cim export + sync vs cp + sync of the tar  the I/O limit
#   find + read every file of the FUSE mount vs of the directory GNU tar extracted (page cache warm)
#   cim create of the 100k-file layer vs cp + sync (per-file overhead)
# Peak memory (/usr/bin/time) of cim create is compared with tar2sqfs's. Output: bench/out/.
# Needs: python3, GNU tar, tar2sqfs, /usr/bin/time; /dev/fuse and root for the mount row.
# BENCH_SCALE=0.1 shrinks both layers (a quick run); BENCH_PAIRS (default 3) sets the pairs;
# BENCH_WINLAYER=path benchmarks that binary (e.g. an earlier build) instead of building this one.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 tar tar2sqfs /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/cimfs.sh: $tool is missing (scripts/deps/apt-cimfs.txt)" >&2; exit 1; }
done
gen=$PWD/scripts/gen-layer.py
winlayer=${BENCH_WINLAYER:-}
if [ -z "$winlayer" ]; then
  cargo build --release --locked -q -p winlayer
  winlayer=$PWD/target/release/winlayer
fi
scale=${BENCH_SCALE:-1}
pairs=${BENCH_PAIRS:-3}
out=$PWD/bench/out/cimfs
rm -rf "$out" && mkdir -p "$out"

# timed CMD: runs the shell command CMD under /usr/bin/time; prints "wall_seconds peak_kib
# cpu_seconds" (CPU = user + system, of the command and what it waited for).
timed() {
  /usr/bin/time -f "%e %M %U %S" -o "$out/time" sh -c "$1" >/dev/null 2>"$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
  read -r wall kib user sys < "$out/time"
  echo "$wall $kib $(python3 -c "print($user + $sys)")"
}

# pair NAME PEER_SETUP PEER WINLAYER_SETUP WINLAYER: $pairs alternating runs of the shell
# commands PEER and WINLAYER, each after its setup snippet (which clears its output) and a
# sync (so neither starts with the other's writes pending).
# Prints the row and leaves the medians in $peer_s $ours_s $peer_k $ours_k.
pair() {
  local name=$1 peer_setup=$2 peer=$3 ours_setup=$4 ours=$5 a=() b=()
  for _ in $(seq "$pairs"); do
    eval "$peer_setup"; sync; a+=("$(timed "$peer")")
    eval "$ours_setup"; sync; b+=("$(timed "$ours")")
  done
  read -r peer_s ours_s peer_k ours_k < <(python3 - "$name" "${a[@]}" -- "${b[@]}" <<'EOF'
import statistics, sys
name, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--")
runs = lambda xs: [tuple(float(v) for v in x.split()) for x in xs]
a, b = runs(rest[:cut]), runs(rest[cut + 1:])
med = lambda xs, i: statistics.median(x[i] for x in xs)
def ratio(i):
    per_pair = [y[i] / x[i] for x, y in zip(a, b) if x[i] > 0]
    r = med(b, i) / med(a, i) if med(a, i) > 0 else float("nan")
    return f"{r:5.2f}x ({min(per_pair):.2f}–{max(per_pair):.2f})" if per_pair else "  n/a"
print(f"  {name:<44} {med(a, 0):6.2f} s {med(b, 0):6.2f} s {ratio(0):<19} {med(a, 2):6.2f} s {med(b, 2):6.2f} s {ratio(2)}",
      file=sys.stderr)
print(med(a, 0), med(b, 0), int(med(a, 1)), int(med(b, 1)))
EOF
  )
}

layer() {
  local name=$1 files=$2 mib=$3 dir=$out/$1
  files=$(python3 -c "print(max(100, int($files * $scale)))")
  mib=$(python3 -c "print(max(1, int($mib * $scale)))")
  mkdir -p "$dir"
  python3 "$gen" --profile base --files "$files" --mib "$mib" --seed 41 -o "$dir/layer.tar"
  echo "== $name: $files files, $(( $(stat -c %s "$dir/layer.tar") / 1048576 )) MiB tar"
  printf '  %-44s %8s %8s %-19s %8s %8s %s\n' "winlayer vs peer ($pairs pairs)" "wall:" "" "ratio (min–max)" "CPU:" "" "ratio (min–max)"
}

# The setup and command of a durable cim create of $d/layer.tar, in $mk and $create.
cim_create() {
  mk="rm -rf '$d/cim' && mkdir '$d/cim'"
  create="'$winlayer' cim create --from '$d/layer.tar' '$d/cim/layer.cim'"
}

layer base-20k 20000 400
d=$out/base-20k
cim_create
pair "cim create vs GNU tar -x + sync" "rm -rf '$d/x' && mkdir '$d/x'" "tar -xf '$d/layer.tar' -C '$d/x' && sync -f '$d/x'" \
  "$mk" "$create"
pair "cim create vs tar2sqfs -c lz4 -j 2 + sync" "rm -f '$d/layer.sqfs'" \
  "tar2sqfs -q -f -c lz4 -j 2 '$d/layer.sqfs' < '$d/layer.tar' && sync '$d/layer.sqfs'" "$mk" "$create"
echo "  peak memory: cim create $((ours_k / 1024)) MiB, tar2sqfs $((peer_k / 1024)) MiB ($(python3 -c "print(f'{$ours_k / $peer_k:.2f}x')"))"
pair "cim create vs cp + sync" "rm -f '$d/copy.tar'" "cp '$d/layer.tar' '$d/copy.tar' && sync '$d/copy.tar'" \
  "$mk" "$create"
pair "cim export + sync vs cp + sync" "rm -f '$d/copy.tar'" "cp '$d/layer.tar' '$d/copy.tar' && sync '$d/copy.tar'" \
  "rm -f '$d/export.tar'" "'$winlayer' cim export '$d/cim/layer.cim' -o '$d/export.tar' && sync '$d/export.tar'"
rm -f "$d/copy.tar" "$d/export.tar" "$d/layer.sqfs"
if [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
  mkdir "$d/mnt"
  "$winlayer" cim mount "$d/cim/layer.cim" "$d/mnt"
  readall='find "$0" -type f -print0 | xargs -0 cat > /dev/null'
  sh -c "$readall" "$d/x/Files" # warm both page caches once
  sh -c "$readall" "$d/mnt/Files"
  pair "find+read: FUSE mount vs extracted directory" : "sh -c '$readall' '$d/x/Files'" : "sh -c '$readall' '$d/mnt/Files'"
  "$winlayer" cim umount "$d/mnt"
else
  echo "  (FUSE read skipped: needs /dev/fuse and root)"
fi
rm -rf "$d/x" "$d/cim"

layer files-100k 100000 200
d=$out/files-100k
cim_create
pair "cim create vs cp + sync" "rm -f '$d/copy.tar'" "cp '$d/layer.tar' '$d/copy.tar' && sync '$d/copy.tar'" \
  "$mk" "$create"
rm -rf "$d/cim" "$d/copy.tar"
