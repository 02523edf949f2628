# Shared by scripts/suites/differ.sh and bench/differ.sh (sourced, not run): Go for containerd
# 2.x, containerd and ctr built from the Go module proxy, a distribution registry on 127.0.0.1,
# and a containerd 2.x configuration around what `winlayer serve --print-config` prints.
# Callers set `repo`, `work` and a `pids` array (killed by their cleanup).

containerd_version=${CONTAINERD_VERSION:-v2.4.2}
containerd_bin=$repo/target/containerd-$containerd_version/bin

# find_go: sets `go` to a Go >= 1.23 (containerd 2.x's minimum; Debian's golang-go 1.19, kept
# for the 1.6.20 suite, is too old), from /usr/local/go or PATH; empty when there is none.
find_go() {
  go=
  local candidate minor
  for candidate in /usr/local/go/bin/go "$(command -v go || true)"; do
    [ -x "$candidate" ] || continue
    minor=$("$candidate" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
    if [ "${minor:-0}" -ge 23 ]; then go=$candidate; return; fi
  done
}

# build_containerd: containerd and ctr at $containerd_version into $containerd_bin, once.
build_containerd() {
  [ -x $containerd_bin/containerd ] && [ -x $containerd_bin/ctr ] && return
  echo "-- building containerd and ctr $containerd_version from the Go module proxy"
  GOBIN=$containerd_bin GOFLAGS=-mod=mod nice -n 10 $go install \
    github.com/containerd/containerd/v2/cmd/containerd@$containerd_version \
    github.com/containerd/containerd/v2/cmd/ctr@$containerd_version
}

# start_registry DIR: Debian's docker-registry on a free port of 127.0.0.1, storing in DIR;
# sets `registry` to HOST:PORT.
start_registry() {
  local dir=$1 port=$((20000 + RANDOM % 20000))
  mkdir -p $dir
  cat > $dir/registry.yml <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve $dir/registry.yml > $dir/registry.log 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
    sleep 0.1
  done
  registry=127.0.0.1:$port
}

# containerd_config DIR WINLAYER SERVE_ARGS...: writes DIR/containerd.toml: state under DIR,
# its socket DIR/containerd.sock, CRI off, and the proxy plugins, diff order and unpack
# configuration `winlayer serve SERVE_ARGS --print-config` prints; extra tables may follow
# on stdin.
containerd_config() {
  local dir=$1 winlayer=$2
  shift 2
  {
    echo "root = \"$dir/containerd/root\""
    echo "state = \"$dir/containerd/state\""
    echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    $winlayer serve "$@" --print-config
    echo "[grpc]"
    echo "  address = \"$dir/containerd.sock\""
    cat
  } > $dir/containerd.toml
}

# start_containerd DIR: runs containerd on DIR/containerd.toml until it answers; sets `ctr`.
start_containerd() {
  local dir=$1
  $containerd_bin/containerd --config $dir/containerd.toml > $dir/containerd.log 2>&1 &
  pids+=($!)
  ctrd=$!
  ctr="$containerd_bin/ctr --address $dir/containerd.sock"
  for _ in $(seq 200); do $ctr version > /dev/null 2>&1 && return; sleep 0.05; done
  cat $dir/containerd.log >&2
  return 1
}
