#!/usr/bin/env bash
# `winlayer serve` against containerd 2.x, built from the Go module proxy (scripts/containerd2.sh:
# the newest 2.x release and the oldest 2.0.x):
#   1. containerd 2.x's snapshotter conformance suite (core/snapshots/testsuite, the Go harness
#      in tests/go/snapshots) through containerd's snapshots proxy client (linux mode: every
#      test; windows, cimfs and blockcim modes: the mount-free tests);
#   2. for each containerd version, a daemon (config version 3) with one proxy_plugins entry
#      per mode: the same suite through it, and its garbage collector over snapshots whose
#      labels exceed one gRPC message (`ctr snapshots rm`, then a forced collection).
# Needs root (real mounts, containerd) on Linux and Go >= 1.26.6 (`go` on PATH, or
# $CONTAINERD2_GO); without root it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "containerd2 suite: SKIPPED: needs root on Linux (mounts and a containerd daemon)"
  exit 0
fi
go=${CONTAINERD2_GO:-go}
command -v $go >/dev/null ||
  { echo "containerd2 suite: Go is missing: containerd 2.x and the harness need Go >= 1.26.6 ($go)"; exit 1; }
source scripts/containerd2.sh

started=$(date +%s)
cargo build -q --locked -p winlayer
winlayer=$repo/target/debug/winlayer
declare -A bins
for version in "${containerd2_versions[@]}"; do bins[$version]=$(containerd2_build $version); done

echo "-- building the conformance harness (tests/go, containerd $(sed -n 's#^[[:space:]]*github.com/containerd/containerd/v2 \(v[^ ]*\).*#\1#p' tests/go/go.mod), $($go env GOVERSION))"
suite=$repo/target/containerd2-snapshots.test
(cd tests/go && GOTOOLCHAIN=local GOPATH=${GOPATH:-$repo/target/go} GOCACHE=${GOCACHE:-$repo/target/go-cache} \
  $go test -c -o $suite ./snapshots)

source scripts/lib/snapshot-suites.sh

echo "-- conformance suite through containerd 2.x's snapshots proxy client (one winlayer serve per test)"
run_suite "linux mode, direct" 21 '^TestProxySnapshotter$' WINLAYER_BIN=$winlayer WINLAYER_MODE=linux
for mode in windows cimfs blockcim; do
  run_suite "$mode mode, direct, mount-free tests" 5 "^TestProxySnapshotter$mountfree" \
    WINLAYER_BIN=$winlayer WINLAYER_MODE=$mode WINLAYER_EXTRACTION_KEYS=1
done

for version in "${containerd2_versions[@]}"; do
  bin=${bins[$version]}
  d=$work/$version
  mkdir -p $d
  for mode in linux windows cimfs blockcim; do
    $winlayer serve --mode $mode --root $d/$mode --address $d/$mode.sock 2>>$d/$mode.log &
    pids+=($!)
  done
  containerd_config 3 $d $d io.containerd.grpc.v1.cri io.containerd.cri.v1.images io.containerd.cri.v1.runtime \
    io.containerd.nri.v1.nri
  for mode in linux windows cimfs blockcim; do
    for _ in $(seq 200); do [ -S $d/$mode.sock ] && break; sleep 0.05; done
    [ -S $d/$mode.sock ] || die "winlayer serve --mode $mode did not start: $(cat $d/$mode.log)"
  done
  $bin/containerd --config $d/config.toml >$d/containerd.log 2>&1 &
  pids+=($!)
  ctrd=$d/ctrd.sock
  # ctr 2.2+ warns on every call that cgroup v1 is deprecated: noise here.
  ctr() { "$bin/ctr" --address $ctrd "$@" 2> >(grep -v 'support for cgroup v1 is deprecated' >&2); }
  for _ in $(seq 200); do ctr version >/dev/null 2>&1 && break; sleep 0.05; done
  echo "-- containerd $($bin/containerd --version | awk '{print $3}') (config version 3) with proxy_plugins winlayer-linux, winlayer-windows, winlayer-cimfs, winlayer-blockcim"
  plugins=$(ctr plugins ls)
  for mode in linux windows cimfs blockcim; do
    grep -qE "io.containerd.snapshotter.v1 +winlayer-$mode +[^ ]+ +ok" <<<"$plugins" ||
      die "plugin winlayer-$mode not loaded: $(grep winlayer <<<"$plugins")"
  done
  ok "containerd $version loaded the four proxy snapshotters"

  run_suite "$version: linux mode, through containerd" 21 '^TestThroughContainerd$' \
    CONTAINERD_ADDRESS=$ctrd CONTAINERD_SNAPSHOTTER=winlayer-linux WINLAYER_MODE=linux
  for mode in windows cimfs blockcim; do
    run_suite "$version: $mode mode, through containerd, mount-free tests" 5 "^TestThroughContainerd$mountfree" \
      CONTAINERD_ADDRESS=$ctrd CONTAINERD_SNAPSHOTTER=winlayer-$mode WINLAYER_MODE=$mode WINLAYER_EXTRACTION_KEYS=1
  done

  S="ctr snapshots --snapshotter winlayer-linux"
  big_labels $S
  # big: how many of them the plugin's List (read as containerd reads it) returns.
  big() {
    local names
    names=$(WINLAYER_SOCKET=$d/linux.sock $suite -test.run '^TestList$' 2>&1) || die "$version: the plugin's List failed: $names"
    grep -c '^default/.*/big-' <<<"$names" || true
  }
  expect=$(big)
  [ "$expect" = 6 ] || die "$version: the plugin holds $expect of the six labelled snapshots"
  $S rm big-0 big-1 big-2 big-3 big-4 big-5
  collect_garbage ctr
  left=$(big)
  [ "$left" = 0 ] || die "$version: after rm and a forced garbage collection winlayer still holds $left: $(grep -m1 'garbage collection failed' $d/containerd.log)"
  ! grep -q 'garbage collection failed' $d/containerd.log ||
    die "$version: $(grep -m1 'garbage collection failed' $d/containerd.log)"
  ok "$version: labels of 21 MB over six snapshots; after ctr snapshots rm and a forced garbage collection winlayer holds none"

  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
done

echo "containerd2 suite took $(($(date +%s) - started)) s"
echo "containerd2: $passes passed, 0 failed"
