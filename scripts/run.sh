#!/usr/bin/env bash
# winlayer's main job with its embedded defaults:
#   1. builds a sample Windows layer from a small directory tree (a program, its configuration,
#      a hard link and a symlink), checks it and lists it with every piece of Windows metadata;
#   2. starts the containerd snapshotter, `winlayer serve`, with its embedded store under a
#      local root (target/winlayer-root), shows a short containerd interaction through it when
#      containerd is installed and we are root, prints how to connect containerd, and keeps
#      serving until Ctrl-C;
#   3. before that, as root with docker-registry and a containerd 2.x at hand: a Windows image
#      built here, pushed to a private registry and pulled into winlayer's CimFS snapshots;
#      with containerd 2.1 or later, the same image converted to CIM layers and pulled again.
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

# A Windows image through containerd 2.x, when one is at hand (on PATH, or built by
# scripts/containerd2.sh) with Debian's docker-registry: built here, pushed to a private
# registry, pulled with winlayer as containerd's snapshotter and differ (cimfs mode).
containerd2=
for dir in $(ls -d target/containerd2/v2.* 2>/dev/null | sort -rV) $(dirname "$(command -v containerd || echo /none/x)"); do
  [ -x "$dir/ctr" ] && "$dir/containerd" --version 2>/dev/null | grep -Eq ' v?2\.' && { containerd2=$dir; break; }
done
if [ -n "$containerd2" ] && command -v docker-registry >/dev/null && [ "$(id -u)" = 0 ]; then
  source scripts/lib/registry-and-containerd.sh
  echo
  echo "== a Windows image pulled through containerd $("$containerd2/containerd" --version | awk '{print $3}') into winlayer's CimFS snapshots"
  start_registry "$work/registry"
  image=$registry/sample/app:1
  echo "\$ winlayer image from-scratch $tree --platform windows/amd64:10.0.20348.1 -t $registry/sample/base:1"
  "$winlayer" image from-scratch "$tree" --platform windows/amd64:10.0.20348.1 -t "$registry/sample/base:1" --insecure
  echo "\$ winlayer image append --base $registry/sample/base:1 --layer layer.tar --cmd 'C:\\app\\bin\\hello.exe' -t $image"
  "$winlayer" image append --base "$registry/sample/base:1" --layer "$work/layer.tar" --cmd 'C:\app\bin\hello.exe' \
    -t "$image" --insecure
  cimfs_root=$work/cimfs-root
  mkdir -p "$work/c2"
  "$winlayer" serve --mode cimfs --root "$cimfs_root" --address "$work/cimfs.sock" \
    --containerd-address "$work/c2/containerd.sock" --log-level info > "$work/cimfs-serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$work/cimfs.sock" ] && break; sleep 0.05; done
  containerd_config "$work/c2" "$winlayer" --mode cimfs --root "$cimfs_root" --address "$work/cimfs.sock" < /dev/null
  containerd_bin=$containerd2
  start_containerd "$work/c2"
  # ctr 2.x warns about cgroup v1 hosts on every call; nothing to do with this demo.
  ctr2() { $ctr "$@" 2> >(grep -v 'DEPRECATION' >&2); }
  echo "\$ ctr image pull --platform windows/amd64 --snapshotter winlayer $image"
  ctr2 image pull --plain-http --platform windows/amd64 --snapshotter winlayer "$image" | tail -3
  echo "\$ ctr snapshots --snapshotter winlayer ls"
  ctr2 snapshots --snapshotter winlayer ls
  top=$(ls "$cimfs_root"/snapshots/cim-layers/*.cim | sort -V | tail -1)
  echo "\$ winlayer cim ls $top Files/app/bin   (the top layer's merged view)"
  "$winlayer" cim ls "$top" Files/app/bin
  echo "(winlayer's differ applied each layer:)"
  grep -o 'applied .*' "$work/cimfs-serve.log" | sed 's/^/  /'
  # containerd 2.1 and later hand pre-converted CIM layers to winlayer (unpack_config layer_types).
  version=$("$containerd2/containerd" --version | awk '{print $3}' | sed 's/^v//; s/+.*//')
  if [ "$(printf '%s\n' 2.1.0 "$version" | sort -V | head -1)" = 2.1.0 ]; then
    converted=$registry/sample/app:1-cimfs
    echo "\$ winlayer image convert $image --to cimfs -t $converted   (the layers shipped as CIMs)"
    "$winlayer" image convert "$image" --to cimfs -t "$converted" --insecure
    echo "\$ ctr image rm --sync $image && ctr image pull --platform windows/amd64 --snapshotter winlayer $converted"
    ctr2 image rm --sync "$image" > /dev/null
    ctr2 image pull --plain-http --platform windows/amd64 --snapshotter winlayer "$converted" | tail -1
    echo "(the same snapshots again, written as shipped: no tar read, no CIM built:)"
    grep -o 'applied .*converted layer.*' "$work/cimfs-serve.log" | sed 's/^/  /'
  fi
else
  echo
  echo "(To see a Windows image built here and pulled through containerd 2.x into winlayer's snapshots, run"
  echo " this as root with Debian's docker-registry installed and containerd 2.x built: scripts/containerd2.sh.)"
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
