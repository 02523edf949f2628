#!/usr/bin/env bash
# Benchmarks `winlayer tar ls` and `winlayer tar normalize` against GNU tar in the same run, on a
# generated base-like layer (default 20,000 files, ~400 MiB), and reports ratios (winlayer / GNU
# tar; below 1 means winlayer is faster) with peak memory. Also checks that memory does not grow
# with bytes: the same file count with a tenth of the bytes should need the same memory.
#
#   bench/tar.sh [FILES] [MIB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-20000}; mib=${2:-400}; runs=${3:-3}
command -v /usr/bin/time >/dev/null || { echo "bench/tar.sh needs /usr/bin/time (Debian package 'time')"; exit 1; }
cargo build --release --locked -q -p winlayer
winlayer=$PWD/target/release/winlayer
out=bench/out; mkdir -p "$out"
layer=$out/base-$files-$mib.tar
small=$out/base-$files-$((mib / 10)).tar
[ -f "$layer" ] || python3 scripts/gen-layer.py --profile base --files "$files" --mib "$mib" -o "$layer"
[ -f "$small" ] || python3 scripts/gen-layer.py --profile base --files "$files" --mib "$((mib / 10))" -o "$small"
rm -rf "$out/tree" && mkdir "$out/tree" && tar --warning=none -xf "$layer" -C "$out/tree"

# Median wall seconds and median peak RSS (KiB) of RUNS runs of a command.
measure() {
  local times=() mems=()
  for _ in $(seq "$runs"); do
    sync
    local line
    /usr/bin/time -o "$out/time.txt" -f "%e %M" "$@" >/dev/null 2>&1
    line=$(tail -n1 "$out/time.txt")
    times+=("${line% *}"); mems+=("${line#* }")
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" \
                   "$(printf '%s\n' "${mems[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"
}

report() {  # name, winlayer measurement, peer measurement
  read -r wt wm <<<"$2"; read -r pt pm <<<"$3"
  printf '%-38s winlayer %6.2fs %7d KiB | GNU tar %6.2fs %7d KiB | time ratio %.2f, memory ratio %.2f\n' \
    "$1" "$wt" "$wm" "$pt" "$pm" "$(echo "$wt / $pt" | bc -l)" "$(echo "$wm / $pm" | bc -l)"
}

echo "layer: $layer ($(du -h "$layer" | cut -f1), $files files), $runs runs each, medians"
report "ls vs tar -tvf" "$(measure "$winlayer" tar ls "$layer")" "$(measure tar --warning=none -tvf "$layer")"
report "ls --json vs tar -tvf" "$(measure "$winlayer" tar ls --json "$layer")" "$(measure tar --warning=none -tvf "$layer")"
report "normalize vs tar -cf (re-archive)" \
  "$(measure "$winlayer" tar normalize "$layer" -o "$out/normalized.tar")" \
  "$(measure tar -cf "$out/rearchived.tar" -C "$out/tree" .)"
report "normalize from stdin vs tar -cf" \
  "$(measure sh -c "exec \"$winlayer\" tar normalize - -o \"$out/normalized.tar\" < \"$layer\"")" \
  "$(measure tar -cf "$out/rearchived.tar" -C "$out/tree" .)"
read -r _ big_mem <<<"$(measure "$winlayer" tar normalize "$layer" -o "$out/normalized.tar")"
read -r _ small_mem <<<"$(measure "$winlayer" tar normalize "$small" -o "$out/normalized-small.tar")"
printf 'normalize peak memory, %d files: %d KiB at %d MiB, %d KiB at %d MiB (ratio %.2f)\n' \
  "$files" "$big_mem" "$mib" "$small_mem" "$((mib / 10))" "$(echo "$big_mem / $small_mem" | bc -l)"
