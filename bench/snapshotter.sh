#!/usr/bin/env bash
# winlayer serve (linux mode, as a proxy plugin) against containerd's built-in `native`
# snapshotter and a map-backed Go proxy snapshotter (the floor of any proxy plugin), all three
# in one containerd 1.6.20 daemon, all driven through containerd's client
# (metadata layer included): Prepare->Commit->Remove cycles, then N committed snapshots, Stat
# of each and full Walks. Prints p50/p99 per operation and winlayer/native ratios (below 1:
# winlayer faster), and peak memory of `winlayer serve` and of containerd.
#
#   bench/snapshotter.sh [N] [CYCLES]      defaults: 10000 2000
#   BENCH_CONTAINERD=v2.4.2 bench/snapshotter.sh ...   the same through containerd 2.x, built
#                                          by scripts/containerd2.sh (needs Go >= 1.26.6)
# Needs root (containerd) and scripts/deps/apt-snapshotter.txt. Results: bench/out/snapshotter.*
# The client is containerd 1.6.20's either way (the snapshots API is the same on the wire): what
# differs is the daemon, its metadata layer and its proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
n=${1:-10000}
cycles=${2:-2000}
[ "$(id -u)" = 0 ] || { echo "bench/snapshotter.sh: needs root (it runs containerd)"; exit 1; }
# Debian's Go, named explicitly: containerd 1.6.20's sources build in GOPATH mode with it.
debian_go=/usr/lib/go/bin/go
for tool in containerd $debian_go /usr/bin/time; do
  command -v $tool >/dev/null || { echo "bench/snapshotter.sh: $tool is missing"; exit 1; }
done

cargo build -q --release --locked -p winlayer
# The daemon: Debian's 1.6.20 (config version 2), or a 2.x release (config version 3).
containerd=containerd config_version=2 disabled='"io.containerd.grpc.v1.cri"'
if [ -n "${BENCH_CONTAINERD:-}" ]; then
  containerd=$(scripts/containerd2.sh "$BENCH_CONTAINERD")/containerd config_version=3
  disabled+=', "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri"'
fi
gopath=$repo/target/snapshotter-go
mkdir -p $gopath/src bench/out
ln -sfn $repo/bench/snapshotter $gopath/src/snapshotbench
(cd $gopath/src/snapshotbench &&
  GO111MODULE=off GOFLAGS= GOPATH=$gopath:/usr/share/gocode GOCACHE=${GOCACHE:-$repo/target/go-cache} \
    $debian_go build -o $repo/target/snapshotbench . &&
    cd floor && GO111MODULE=off GOFLAGS= GOPATH=$gopath:/usr/share/gocode GOCACHE=${GOCACHE:-$repo/target/go-cache} \
    $debian_go build -o $repo/target/snapshotfloor .)

work=$(mktemp -d /tmp/wlb.XXXXXX)
pids=()
finish() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for timer in "${timers[@]}"; do wait "$timer" 2>/dev/null || true; done
  rm -rf "$work"
}
trap finish EXIT

# measured DAEMON ARGS...: runs DAEMON under /usr/bin/time -v (peak memory in $work/NAME.time);
# its own PID (not time's) goes to pids, so signals reach it and time reports on exit.
measured() {
  local name=$1
  shift
  /usr/bin/time -v -o $work/$name.time "$@" >$work/$name.log 2>&1 &
  local timer=$!
  for _ in $(seq 100); do pgrep -P $timer >/dev/null && break; sleep 0.01; done
  pids+=($(pgrep -P $timer))
  timers+=($timer)
}
timers=()
measured serve target/release/winlayer serve --mode linux --root $work/winlayer --address $work/winlayer.sock
# The floor: a map-backed proxy snapshotter on containerd's own snapshot service.
target/snapshotfloor -address $work/floor.sock > $work/floor.log 2>&1 &
pids+=($!)
cat >$work/config.toml <<CONFIG
version = $config_version
root = "$work/ctrd/root"
state = "$work/ctrd/state"
disabled_plugins = [$disabled]
[grpc]
  address = "$work/ctrd.sock"
[ttrpc]
  address = "$work/ctrd.sock.ttrpc"
[proxy_plugins.winlayer]
  type = "snapshot"
  address = "$work/winlayer.sock"
[proxy_plugins.floor]
  type = "snapshot"
  address = "$work/floor.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/ctrd/opt"
CONFIG
measured containerd $containerd --config $work/config.toml
for _ in $(seq 200); do [ -S $work/winlayer.sock ] && ctr --address $work/ctrd.sock version >/dev/null 2>&1 && break; sleep 0.05; done

echo "bench: $cycles Prepare->Commit->Remove cycles, $n committed snapshots, Stat x $n, 5 Walks; through containerd $($containerd --version | awk '{print $3}')"
results=bench/out/snapshotter.jsonl
: >$results
for snapshotter in native winlayer floor; do
  target/snapshotbench -address $work/ctrd.sock -snapshotter $snapshotter -n $n -cycles $cycles >>$results
done
# Stop both so /usr/bin/time reports their peaks.
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for timer in "${timers[@]}"; do wait "$timer" 2>/dev/null || true; done
pids=()
peak() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MiB", $2 / 1024}' $1; }

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["snapshotter"], r["op"]): r for r in rows}
ops = [r["op"] for r in rows if r["snapshotter"] == "native"]
print(f"{'operation':24} {'native p50/p99 us':>20} {'winlayer p50/p99 us':>21} {'ratio p50':>9} {'ratio p99':>9} {'ratio total':>11}"
      f" {'floor p50/p99 us':>18} {'winlayer/floor total':>20}")
for op in ops:
    a, b, f = by[("native", op)], by[("winlayer", op)], by[("floor", op)]
    print(f"{op:24} {a['p50_us']:>9.0f}/{a['p99_us']:<10.0f} {b['p50_us']:>9.0f}/{b['p99_us']:<11.0f}"
          f" {b['p50_us'] / max(a['p50_us'], 1):>9.2f} {b['p99_us'] / max(a['p99_us'], 1):>9.2f}"
          f" {b['total_ms'] / max(a['total_ms'], 1e-3):>11.2f}"
          f" {f['p50_us']:>8.0f}/{f['p99_us']:<9.0f} {b['total_ms'] / max(f['total_ms'], 1e-3):>20.2f}")
PY
echo "peak memory: winlayer serve $(peak $work/serve.time); containerd (incl. native) $(peak $work/containerd.time)"
cp $work/serve.time bench/out/snapshotter-serve.time
