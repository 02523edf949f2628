#!/usr/bin/env bash
# winlayer's main job with its embedded defaults:
#   1. builds a sample Windows layer from a small directory tree (a program, its configuration,
#      a hard link and a symlink), checks it and lists it with every piece of Windows metadata;
#   2. starts the containerd snapshotter, `winlayer serve`, with its embedded store under a
#      local root (target/winlayer-root), shows a short containerd interaction through it when
#      containerd is installed and we are root, prints how to connect containerd, and keeps
#      serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# Cargo's own progress shows: the first build takes minutes.
echo "== cargo build --release -p winlayer"
cargo build --release --locked -p winlayer
winlayer=$PWD/target/release/winlayer

work=$(mktemp -d /tmp/winlayer-run.XXXXXX)
pids=()
finish() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap finish EXIT
tree="$work/app"
mkdir -p "$tree/app/bin" "$tree/app/config"
printf 'MZ sample program\n' > "$tree/app/bin/hello.exe"
printf 'greeting=hello\n' > "$tree/app/config/settings.ini"
ln "$tree/app/bin/hello.exe" "$tree/app/bin/hi.exe"
ln -s ../config/settings.ini "$tree/app/bin/settings.ini"
export SOURCE_DATE_EPOCH=1700000000

echo "== winlayer tar from-dir $tree -o layer.tar"
"$winlayer" tar from-dir "$tree" -o "$work/layer.tar"
echo "== winlayer tar verify layer.tar"
"$winlayer" tar verify "$work/layer.tar"
echo "== winlayer tar ls layer.tar"
"$winlayer" tar ls "$work/layer.tar"

root=$PWD/target/winlayer-root
socket=$work/winlayer.sock
echo
echo "== winlayer serve --mode linux --root $root --address $socket"
"$winlayer" serve --mode linux --root "$root" --address "$socket" &
serve=$!
pids+=($serve)
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done

if command -v containerd >/dev/null && command -v ctr >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== a private containerd with winlayer as its proxy snapshotter"
  cat > "$work/containerd.toml" <<CONFIG
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[proxy_plugins.winlayer]
  type = "snapshot"
  address = "$socket"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/containerd/opt"
CONFIG
  containerd --config "$work/containerd.toml" > "$work/containerd.log" 2>&1 &
  ctrd=$!
  pids+=($ctrd)
  snapshots="ctr --address $work/containerd.sock snapshots --snapshotter winlayer"
  for _ in $(seq 200); do ctr --address "$work/containerd.sock" version > /dev/null 2>&1 && break; sleep 0.05; done
  key=demo-$(date +%s)
  for step in "prepare --mounts $key-base-active" "commit $key-base $key-base-active" \
    "prepare --mounts $key-container $key-base" "ls" "usage" "tree" "rm $key-container $key-base"; do
    echo "\$ ctr snapshots --snapshotter winlayer $step"
    $snapshots $step
  done
  sleep 1 # containerd's garbage collector removes them from winlayer right after `rm`
  kill -TERM $ctrd
  wait $ctrd || true
fi

cat <<HELP

winlayer serve is running (pid $serve): metadata in $root/metadata.redb, snapshots in $root/snapshots.
To use it from containerd, add to its config.toml and restart containerd:

  [proxy_plugins.winlayer]
    type = "snapshot"
    address = "$socket"

then e.g. 'ctr snapshots --snapshotter winlayer ls'. Press Ctrl-C to stop.
HELP
wait $serve || true
