#!/usr/bin/env bash
# Whole-process benchmark of `winlayer cim create` against peers in the same run, on two
# generated layers (a base-like layer of 20k files / ~400 MiB and a 100k-file layer):
#   cp of the tar (the I/O limit), GNU tar -x, tar2sqfs (squashfs-tools-ng, lz4): none of them
#   syncs, so they are compared with `cim create --no-sync`; the default, durable `cim create`
#   (files synced before the .cim is committed) is compared with a synced copy (dd conv=fsync).
# Reports wall time, peak memory (/usr/bin/time) and ratios; then find+read of the FUSE mount
# against the same on the directory GNU tar extracted. Output lands in bench/out/.
# Needs: python3, GNU tar, tar2sqfs (squashfs-tools-ng), /usr/bin/time, /dev/fuse as root.
# BENCH_SCALE=0.1 shrinks both layers (for a quick run); BENCH_RUNS (default 5) sets the runs
# per command, whose medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 tar tar2sqfs /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/cimfs.sh: $tool is missing (scripts/deps/apt-cimfs.txt)" >&2; exit 1; }
done
gen=$PWD/scripts/gen-layer.py
cargo build --release --locked -q -p winlayer
winlayer=$PWD/target/release/winlayer
scale=${BENCH_SCALE:-1}
out=bench/out/cimfs
rm -rf "$out" && mkdir -p "$out"

runs=${BENCH_RUNS:-5}

# measure SETUP CMD...: RUNS times, runs the shell snippet SETUP (it clears CMD's output) and
# then CMD under /usr/bin/time; prints the medians "wall_seconds cpu_seconds peak_kib" (CPU =
# user + system: on a shared machine it is steadier than wall time).
measure() {
  local setup=$1 walls=() cpus=() kibs=()
  shift
  for _ in $(seq "$runs"); do
    eval "$setup"
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$out/time" "$@" >/dev/null 2>"$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
    read -r wall user sys kib < "$out/time"
    walls+=("$wall"); cpus+=("$(python3 -c "print(f'{$user + $sys:.2f}')")"); kibs+=("$kib")
  done
  echo "$(median "${walls[@]}") $(median "${cpus[@]}") $(median "${kibs[@]}")"
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'n/a')" "$1" "$2"; }
row() { printf '  %-22s %7s s wall %7s s CPU %6s MiB peak\n' "$1" "$2" "$3" "$(( $4 / 1024 ))"; }

bench_layer() {
  local name=$1 files=$2 mib=$3
  files=$(python3 -c "print(max(100, int($files * $scale)))")
  mib=$(python3 -c "print(max(1, int($mib * $scale)))")
  local dir=$out/$name
  mkdir -p "$dir"
  python3 "$gen" --profile base --files "$files" --mib "$mib" --seed 1 -o "$dir/layer.tar"
  echo "== $name: $files files, $(( $(stat -c %s "$dir/layer.tar") / 1048576 )) MiB tar"
  read -r cp_s cp_c cp_k < <(measure "rm -f '$dir/copy.tar'" cp "$dir/layer.tar" "$dir/copy.tar")
  read -r dd_s dd_c dd_k < <(measure "rm -f '$dir/copy.tar'" dd if="$dir/layer.tar" of="$dir/copy.tar" bs=1M conv=fsync)
  rm -f "$dir/copy.tar"
  read -r tar_s tar_c tar_k < <(measure "rm -rf '$dir/x'; mkdir '$dir/x'" tar -xf "$dir/layer.tar" -C "$dir/x")
  read -r sq_s sq_c sq_k < <(measure "rm -f '$dir/layer.sqfs'" sh -c "tar2sqfs -q -f -c lz4 '$dir/layer.sqfs' < '$dir/layer.tar'")
  read -r fast_s fast_c fast_k < <(measure "rm -rf '$dir/fast'; mkdir '$dir/fast'" \
    "$winlayer" cim create --no-sync --from "$dir/layer.tar" "$dir/fast/layer.cim")
  rm -rf "$dir/fast"
  read -r cim_s cim_c cim_k < <(measure "rm -rf '$dir/cim'; mkdir '$dir/cim'" \
    "$winlayer" cim create --from "$dir/layer.tar" "$dir/cim/layer.cim")
  row "cp (I/O limit)" "$cp_s" "$cp_c" "$cp_k"
  row "dd conv=fsync" "$dd_s" "$dd_c" "$dd_k"
  row "GNU tar -x" "$tar_s" "$tar_c" "$tar_k"
  row "tar2sqfs -c lz4" "$sq_s" "$sq_c" "$sq_k"
  row "cim create --no-sync" "$fast_s" "$fast_c" "$fast_k"
  row "cim create (durable)" "$cim_s" "$cim_c" "$cim_k"
  echo "  wall ratio --no-sync/tar2sqfs $(ratio "$fast_s" "$sq_s")  --no-sync/cp $(ratio "$fast_s" "$cp_s")  --no-sync/tar-x $(ratio "$fast_s" "$tar_s")  durable/dd-fsync $(ratio "$cim_s" "$dd_s")"
  echo "  CPU ratio  --no-sync/tar2sqfs $(ratio "$fast_c" "$sq_c")  --no-sync/cp $(ratio "$fast_c" "$cp_c")  --no-sync/tar-x $(ratio "$fast_c" "$tar_c")"
  echo "  memory ratio cim/tar2sqfs $(ratio "$cim_k" "$sq_k")"
  echo "  sizes: tar $(du -sm "$dir/layer.tar" | cut -f1) MiB, cim $(du -sm "$dir/cim" | cut -f1) MiB, sqfs $(du -sm "$dir/layer.sqfs" | cut -f1) MiB"
  if [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
    mkdir "$dir/mnt"
    "$winlayer" cim mount "$dir/cim/layer.cim" "$dir/mnt"
    local readall='find "$0" -type f -print0 | xargs -0 cat > /dev/null'
    sh -c "$readall" "$dir/x/Files" # warm both page caches once
    sh -c "$readall" "$dir/mnt/Files"
    read -r dx_s dx_c dx_k < <(measure : sh -c "$readall" "$dir/x/Files")
    read -r mn_s mn_c mn_k < <(measure : sh -c "$readall" "$dir/mnt/Files")
    "$winlayer" cim umount "$dir/mnt"
    row "find+read extracted" "$dx_s" "$dx_c" "$dx_k"
    row "find+read FUSE mount" "$mn_s" "$mn_c" "$mn_k"
    echo "  read ratio mount/extracted $(ratio "$mn_s" "$dx_s")"
  else
    echo "  (FUSE read skipped: needs /dev/fuse and root)"
  fi
  rm -rf "$dir/x" "$dir/cim" "$dir/layer.sqfs"
}

echo "winlayer cim create vs peers (medians of $runs runs each; $(nproc) CPUs; tar2sqfs uses its default job count)"
bench_layer base-20k 20000 400
bench_layer files-100k 100000 200
