# Used by scripts/suites/differ.sh (sourced, not run): a distribution registry on 127.0.0.1,
# and a containerd 2.x daemon configured around what `winlayer serve --print-config` prints.
# Callers set `work`, `containerd_bin` (a scripts/containerd2.sh build) and a `pids` array
# (killed by their cleanup).

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
