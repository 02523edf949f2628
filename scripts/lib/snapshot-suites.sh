# Shared by scripts/suites/snapshotter.sh (containerd 1.6.20) and scripts/suites/containerd2.sh
# (containerd 2.x), sourced after `set -euo pipefail`: the scratch directory, result lines,
# the conformance-suite runner and the large-label scenario. The suites set $suite (the
# compiled conformance harness) before calling run_suite.

# Short paths: unix socket paths are limited to 107 bytes and the suite nests its own.
work=$(mktemp -d /tmp/wls.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

passes=0
ok() { passes=$((passes + 1)); echo "  ok   $*"; }
die() { echo "  FAIL $*" >&2; exit 1; }

# run_suite LABEL EXPECTED_PASSES PATTERN [VAR=value...]: runs the tests matching PATTERN with
# the environment given; fails unless every test run passes and exactly EXPECTED_PASSES passed.
run_suite() {
  local label=$1 expected=$2 pattern=$3 log=$work/suite-$RANDOM.log
  shift 3
  mkdir -p $work/tmp
  if ! env TMPDIR=$work/tmp "$@" $suite -test.v -test.run "$pattern" >$log 2>&1; then
    grep -E -- '--- FAIL|\.go:[0-9]+:' $log | head -40 >&2
    die "$label: conformance suite failed (above)"
  fi
  local passed skipped
  passed=$(grep -cE -- '^ +--- PASS' $log || true)
  skipped=$(grep -E -- '^ +--- SKIP' $log | sed -E 's/.*SKIP: [^/]+\/([^ ]+).*/\1/' | tr '\n' ' ' || true)
  [ "$passed" = "$expected" ] || die "$label: $passed tests passed, expected $expected"
  ok "$label: $passed passed, skipped: ${skipped:-none}"
}
# The suite's tests that mount nothing (all the Windows modes can run on Linux).
mountfree='/^(Update|Remove|Walk|StatInWalk|CloseTwice)$'

# big_labels CTR...: through `CTR snapshots --snapshotter …`, six snapshots big-0…big-5 of 900
# inherited labels of ~3.9 KB each (within containerd's 4096-byte limit per label): 21 MB in
# all, more than the 16 MiB containerd's proxy client receives in one message. (ctr label takes
# them 150 at a time: a command line holds 2 MiB.)
big_labels() {
  local value i chunk l
  value=$(head -c 3860 /dev/zero | tr '\0' v)
  for i in 0 1 2 3 4 5; do
    "$@" prepare big-$i >/dev/null
    for chunk in 0 1 2 3 4 5; do
      "$@" label big-$i $(for l in $(seq $((chunk * 150)) $((chunk * 150 + 149))); do
        printf 'containerd.io/snapshot/big-%03d=%s ' $l "$value"
      done) >/dev/null
    done
  done
}

# collect_garbage CTR...: a forced, synchronous garbage collection (deleting a lease with --sync
# runs one).
collect_garbage() {
  "$@" leases create --id force-gc >/dev/null
  "$@" leases rm --sync force-gc >/dev/null
}

# containerd_config VERSION DIR SOCKETS DISABLED_PLUGIN...: writes DIR/config.toml, a containerd
# config (format VERSION: 2 for 1.x, 3 for 2.x) with its state and socket (DIR/ctrd.sock) under
# DIR, the given plugins disabled, and one proxy snapshotter winlayer-MODE per mode on
# SOCKETS/MODE.sock. The opt plugin is kept under DIR too: it makes /opt/containerd otherwise.
containerd_config() {
  local version=$1 dir=$2 sockets=$3 mode
  shift 3
  {
    echo "version = $version"
    echo "root = \"$dir/root\""
    echo "state = \"$dir/state\""
    echo "disabled_plugins = [$(printf '"%s", ' "$@" | sed 's/, $//')]"
    echo "[grpc]"
    echo "  address = \"$dir/ctrd.sock\""
    echo "[ttrpc]"
    echo "  address = \"$dir/ctrd.sock.ttrpc\""
    for mode in linux windows cimfs blockcim; do
      echo "[proxy_plugins.winlayer-$mode]"
      echo "  type = \"snapshot\""
      echo "  address = \"$sockets/$mode.sock\""
    done
    echo "[plugins.\"io.containerd.internal.v1.opt\"]"
    echo "  path = \"$dir/opt\""
  } >$dir/config.toml
}
