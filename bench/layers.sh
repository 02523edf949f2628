#!/usr/bin/env bash
# Whole-process benchmark of `winlayer makebaselayer --from`, `import --format cim` and
# `export` against peers in the same run, on a generated base-like layer (20k files, ~400 MiB)
# and an app layer (2k files, ~50 MiB) with differencing hives on top of it:
#   * makebaselayer --from vs `winlayer tar normalize` (the same read, sort and write, without
#     the base-layer rules) and GNU tar -x;
#   * import vs `winlayer cim create` of the same tar (the CIM writer alone: what the hive
#     processing and the layer directory add) and GNU tar -x (an importer that writes files);
#   * export vs `winlayer cim export` (the merged view, no comparison with the parent) and
#     GNU tar -c of the extracted layer.
# Reports wall time, CPU time, peak memory (/usr/bin/time) and ratios. Output in bench/out/.
# Needs: python3, GNU tar, /usr/bin/time. BENCH_SCALE=0.1 shrinks the layers.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 tar /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/layers.sh: $tool is missing" >&2; exit 1; }
done
gen=$PWD/scripts/gen-layer.py
export TAR_OPTIONS=--warning=no-unknown-keyword
cargo build --release --locked -q -p winlayer
winlayer=$PWD/target/release/winlayer
scale=${BENCH_SCALE:-1}
out=$PWD/bench/out/layers
rm -rf "$out" && mkdir -p "$out"
cd "$out"

# Runs a command under /usr/bin/time; prints "wall_seconds cpu_seconds peak_kib".
measure() {
  /usr/bin/time -f "%e %U %S %M" -o time.txt "$@" >/dev/null 2>stderr.txt || { cat stderr.txt >&2; exit 1; }
  read -r wall user sys kib < time.txt
  echo "$wall $(python3 -c "print(f'{$user + $sys:.2f}')") $kib"
}
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'n/a')" "$1" "$2"; }
row() { printf '  %-28s %7s s wall %7s s CPU %6s MiB peak\n' "$1" "$2" "$3" "$(( $4 / 1024 ))"; }
scaled() { python3 -c "print(max($2, int($1 * $scale)))"; }

# The generator writes valid config hives and differencing hives that change them.
python3 "$gen" --profile base --files "$(scaled 20000 200)" --mib "$(scaled 400 2)" --seed 1 -o generated-base.tar
python3 "$gen" --profile app --files "$(scaled 2000 50)" --mib "$(scaled 50 1)" --seed 2 -o app.tar
echo "== base layer: $(tar -tf generated-base.tar | wc -l) entries, $(( $(stat -c %s generated-base.tar) / 1048576 )) MiB tar"
sync

read -r mk_s mk_c mk_k < <(measure "$winlayer" makebaselayer --from generated-base.tar -o base.tar)
read -r nm_s nm_c nm_k < <(measure "$winlayer" tar normalize generated-base.tar -o normalized.tar)
mkdir x && read -r tx_s tx_c tx_k < <(measure tar -xf base.tar -C x)
row "makebaselayer --from" "$mk_s" "$mk_c" "$mk_k"
row "tar normalize" "$nm_s" "$nm_c" "$nm_k"
row "GNU tar -x" "$tx_s" "$tx_c" "$tx_k"
echo "  makebaselayer/normalize: wall $(ratio "$mk_s" "$nm_s"), CPU $(ratio "$mk_c" "$nm_c"), memory $(ratio "$mk_k" "$nm_k")"

mkdir plain cims
read -r cc_s cc_c cc_k < <(measure "$winlayer" cim create --from base.tar plain/base.cim)
read -r ib_s ib_c ib_k < <(measure "$winlayer" import -i base.tar layers-base --cim cims/base.cim)
row "cim create (base)" "$cc_s" "$cc_c" "$cc_k"
row "import (base)" "$ib_s" "$ib_c" "$ib_k"
echo "  import/cim create: wall $(ratio "$ib_s" "$cc_s"), CPU $(ratio "$ib_c" "$cc_c"), memory $(ratio "$ib_k" "$cc_k");" \
  "import/GNU tar -x: wall $(ratio "$ib_s" "$tx_s"), CPU $(ratio "$ib_c" "$tx_c")"

read -r ca_s ca_c ca_k < <(measure "$winlayer" cim create --from app.tar --parent plain/base.cim plain/app.cim)
read -r ia_s ia_c ia_k < <(measure "$winlayer" import -i app.tar layers-app --cim cims/app.cim --layer layers-base --parent-cim cims/base.cim)
row "cim create --parent (app)" "$ca_s" "$ca_c" "$ca_k"
row "import (app, 3 hives merged)" "$ia_s" "$ia_c" "$ia_k"
echo "  import/cim create: wall $(ratio "$ia_s" "$ca_s"), CPU $(ratio "$ia_c" "$ca_c"), memory $(ratio "$ia_k" "$ca_k")"

read -r eb_s eb_c eb_k < <(measure "$winlayer" export layers-base --cim cims/base.cim -o base.out.tar)
read -r ce_s ce_c ce_k < <(measure "$winlayer" cim export plain/base.cim -o plain.out.tar)
read -r tc_s tc_c tc_k < <(measure tar -cf gnu.tar -C x .)
read -r ea_s ea_c ea_k < <(measure "$winlayer" export layers-app --cim cims/app.cim -o app.out.tar)
cmp base.out.tar <("$winlayer" tar normalize base.tar -o - 2>/dev/null) || { echo "base export differs from its input" >&2; exit 1; }
row "export (base)" "$eb_s" "$eb_c" "$eb_k"
row "cim export (base)" "$ce_s" "$ce_c" "$ce_k"
row "GNU tar -c" "$tc_s" "$tc_c" "$tc_k"
row "export (app: its changes)" "$ea_s" "$ea_c" "$ea_k"
echo "  export/cim export: wall $(ratio "$eb_s" "$ce_s"), CPU $(ratio "$eb_c" "$ce_c"), memory $(ratio "$eb_k" "$ce_k");" \
  "export/GNU tar -c: wall $(ratio "$eb_s" "$tc_s"), CPU $(ratio "$eb_c" "$tc_c")"
