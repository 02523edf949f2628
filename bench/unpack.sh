#!/usr/bin/env bash
# Unpacking one Windows image through one containerd 2.x daemon build, three ways, from content
# already in containerd's store (so the wall time is the unpack, plus `sync`):
#   native     containerd's own `walking` differ into its `native` snapshotter;
#   winlayer   winlayer serve --mode cimfs as snapshotter and differ (tar read, CIM written);
#   converted  the same daemons, the image converted by `winlayer image convert --to cimfs`
#              (archives written as they are, no tar parsed, no CIM built).
# Also: serve's peak memory during each unpack; the registry bytes of the converted blobs
# against the source's .tar.gz blobs; `winlayer image convert` against `winlayer cim create`
# of the same layers. Medians of RUNS runs (interleaved), ratios below 1: faster/smaller.
#
#   bench/unpack.sh [BASE_FILES BASE_MIB APP_FILES APP_MIB]   defaults: 20000 400 2000 50
#   RUNS=3 BENCH_CONTAINERD=v2.4.2 (>= 2.1: its transfer service reads unpack_config layer_types)
# Needs root (containerd), Go for scripts/containerd2.sh, docker-registry and skopeo
# (scripts/deps/apt-differ.txt). Layers are cached under target/bench-unpack/. Results: bench/out/unpack.txt
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base_files=${1:-20000} base_mib=${2:-400} app_files=${3:-2000} app_mib=${4:-50}
runs=${RUNS:-3} version=${BENCH_CONTAINERD:-v2.4.2}
[ "$(id -u)" = 0 ] || { echo "bench/unpack.sh: needs root (it runs containerd)"; exit 1; }
for tool in docker-registry skopeo python3 /usr/bin/time; do
  command -v $tool >/dev/null || { echo "bench/unpack.sh: $tool is missing (scripts/deps/apt-differ.txt)"; exit 1; }
done
export GOCACHE=${GOCACHE:-$repo/target/go-cache} GOPATH=${GOPATH:-$repo/target/go} GOTOOLCHAIN=local
containerd_bin=$(scripts/containerd2.sh $version)
cargo build -q --release --locked -p winlayer
winlayer=$repo/target/release/winlayer
source scripts/lib/registry-and-containerd.sh

layers=$repo/target/bench-unpack/$base_files-$base_mib-$app_files-$app_mib
mkdir -p $layers bench/out
[ -f $layers/base.tar.gz ] ||
  python3 scripts/gen-layer.py --profile base --files $base_files --mib $base_mib --gzip -o $layers/base.tar.gz
for n in 1 2; do
  [ -f $layers/app$n.tar.gz ] ||
    python3 scripts/gen-layer.py --profile app --files $app_files --mib $app_mib --seed $((n + 1)) --gzip -o $layers/app$n.tar.gz
done

work=$(mktemp -d /tmp/wlu.XXXXXX)
pids=()
finish() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap finish EXIT

python3 scripts/oci-image.py --tag 1 --os-version 10.0.20348.2227 $work/layout \
  $layers/base.tar.gz $layers/app1.tar.gz $layers/app2.tar.gz > /dev/null
start_registry $work/registry
ref=$registry/bench/source:1 converted=$registry/bench/converted:1
skopeo copy -q --dest-tls-verify=false oci:$work/layout:1 docker://$ref

# The conversion, timed against cim create of the same three layers.
elapsed() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' $1; }
/usr/bin/time -v -o $work/convert.time $winlayer image convert $ref --to cimfs -t $converted --insecure --json > $work/convert.json
mkdir -p $work/cims
/usr/bin/time -v -o $work/create.time sh -c "
  $winlayer cim create --from $layers/base.tar.gz $work/cims/1.cim &&
  $winlayer cim create --from $layers/app1.tar.gz --parent $work/cims/1.cim $work/cims/2.cim &&
  $winlayer cim create --from $layers/app2.tar.gz --parent $work/cims/2.cim $work/cims/3.cim" > /dev/null 2>&1
source_bytes=$(stat -c %s $layers/base.tar.gz $layers/app1.tar.gz $layers/app2.tar.gz | awk '{ s += $1 } END { print s }')
converted_bytes=$(python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
print(sum(l["size"] for l in report["layers"]))' $work/convert.json)

# unpack KIND RUN: fresh daemons, content fetched, then the timed pull (unpack) and sync.
unpack() {
  local kind=$1 run=$2 dir=$work/$1-$2 image=$ref snapshotter=winlayer
  mkdir -p $dir
  local serve=
  if [ $kind = native ]; then
    snapshotter=native
    {
      echo 'version = 3'
      echo "[[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]"
      echo '  platform = "windows/amd64"'
      echo '  snapshotter = "native"'
      echo '  differ = "walking"'
    } > $dir/unpack.toml
  else
    [ $kind = converted ] && image=$converted
    $winlayer serve --mode cimfs --root $dir/wl --address $dir/wl.sock --containerd-address $dir/containerd.sock \
      > $dir/serve.log 2>&1 &
    serve=$!
    pids+=($serve)
    for _ in $(seq 100); do [ -S $dir/wl.sock ] && break; sleep 0.05; done
    $winlayer serve --mode cimfs --root $dir/wl --address $dir/wl.sock --print-config > $dir/unpack.toml
  fi
  {
    echo "root = \"$dir/containerd/root\""
    echo "state = \"$dir/containerd/state\""
    echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    cat $dir/unpack.toml
    echo "[grpc]"
    echo "  address = \"$dir/containerd.sock\""
  } > $dir/containerd.toml
  start_containerd $dir
  $ctr content fetch --plain-http --platform windows/amd64 $image > /dev/null
  sync
  local start end
  start=$(date +%s.%N)
  $ctr image pull --plain-http --platform windows/amd64 --snapshotter $snapshotter $image > $dir/pull.log 2>&1 ||
    { cat $dir/pull.log; [ -n "$serve" ] && cat $dir/serve.log; echo "bench/unpack.sh: $kind pull failed"; exit 1; }
  sync
  end=$(date +%s.%N)
  local committed
  committed=$($ctr snapshots --snapshotter $snapshotter ls | awk 'NR > 1 && $NF == "Committed"' | wc -l)
  [ "$committed" = 3 ] || { echo "bench/unpack.sh: $kind: $committed committed snapshots for 3 layers"; exit 1; }
  local peak=0
  if [ -n "$serve" ]; then
    peak=$(awk '/VmHWM/ { print $2 }' /proc/$serve/status)
    [ $kind = converted ] && { grep -q 'converted layer' $dir/serve.log || { echo "bench/unpack.sh: no converted Apply"; exit 1; }; }
    kill $serve
  fi
  kill $ctrd
  wait $ctrd ${serve:-} 2>/dev/null || true
  echo "$kind $(awk -v a=$start -v b=$end 'BEGIN { print b - a }') $peak" >> $work/results
  rm -rf $dir
}

echo "bench: unpack of a $base_files-file ${base_mib} MiB base + 2 x $app_files-file ${app_mib} MiB app layers through containerd $version, $runs runs"
for run in $(seq $runs); do
  for kind in native winlayer converted; do unpack $kind $run; done
done

python3 - $work/results "$(elapsed $work/convert.time)" "$(elapsed $work/create.time)" $source_bytes $converted_bytes <<'PY' | tee bench/out/unpack.txt
import statistics, sys
results, convert_s, create_s, source_bytes, converted_bytes = sys.argv[1:]
times, peaks = {}, {}
for line in open(results):
    kind, seconds, peak = line.split()
    times.setdefault(kind, []).append(float(seconds))
    peaks.setdefault(kind, []).append(int(peak) / 1024)
med = {k: statistics.median(v) for k, v in times.items()}
for kind in ("native", "winlayer", "converted"):
    t = times[kind]
    peak = f"  serve peak {max(peaks[kind]):.1f} MiB" if max(peaks[kind]) else ""
    print(f"{kind:10} unpack median {med[kind]:7.2f} s  (min {min(t):.2f}, max {max(t):.2f}){peak}")
print(f"winlayer / native unpack:    {med['winlayer'] / med['native']:.2f}  (goal <= 0.25)")
print(f"converted / winlayer unpack: {med['converted'] / med['winlayer']:.2f}  (goal <= 0.2)")
print(f"converted / native unpack:   {med['converted'] / med['native']:.2f}")
print(f"registry bytes converted (zstd) / source (.tar.gz): {int(converted_bytes) / int(source_bytes):.2f}  "
      f"({int(converted_bytes) / 2**20:.1f} / {int(source_bytes) / 2**20:.1f} MiB; goal <= 1.1)")
print(f"image convert / cim create of the same layers: {float(convert_s) / float(create_s):.2f}  "
      f"({float(convert_s):.2f} / {float(create_s):.2f} s; goal <= 1.2)")
PY
