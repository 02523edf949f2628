#!/usr/bin/env bash
# Scratch disk work, whole processes, winlayer against its peers in the same run:
#   create   N x `winlayer vhdx create --size 10GiB`        vs `qemu-img create -f vhdx -o block_size=1M 10G`
#   copy     N x `winlayer vhdx copy blank.vhdx dest`       vs `cp blank.vhdx dest`
#   grow     N x `winlayer vhdx copy ... --size 20GiB`      (no peer: qemu-img cannot open differencing disks)
#   template `winlayer vhdx scratch-template` (GPT + mkntfs + from-raw)
#                                                         vs truncate + mkntfs + `qemu-img convert -O vhdx`
#   to-raw   `winlayer vhdx to-raw blank-base.vhdx`         vs `qemu-img convert -O raw`
# Prints seconds, the ratio winlayer/peer (below 1: winlayer is faster) and peak memory
# (maximum resident set, /usr/bin/time -v). N defaults to 200.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p winlayer
winlayer=$PWD/target/release/winlayer
n=${N:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
peak() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2 " KiB"}'; }
report() { # name ours peer ours_peak peer_peak
  printf '%-9s winlayer %7.3fs  peer %7.3fs  ratio %5.2f  peak %s vs %s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { print a / b }')" "$4" "$5"
}

mkdir ours theirs
t0=$(now); for i in $(seq "$n"); do "$winlayer" vhdx create --size 10GiB "ours/$i.vhdx"; done; t1=$(now)
for i in $(seq "$n"); do qemu-img create -q -f vhdx -o block_size=1M "theirs/$i.vhdx" 10G; done; t2=$(now)
report "create" "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" \
  "$(peak "$winlayer" vhdx create --size 10GiB p1.vhdx)" "$(peak qemu-img create -q -f vhdx -o block_size=1M p2.vhdx 10G)"
rm -rf ours theirs p1.vhdx p2.vhdx

mkdir root ours theirs
t0=$(now); "$winlayer" vhdx scratch-template root >/dev/null; t1=$(now)
truncate -s 10G ntfs.raw && /usr/sbin/mkntfs -q -f -F ntfs.raw >/dev/null 2>&1 && qemu-img convert -O vhdx -o block_size=1M ntfs.raw peer.vhdx; t2=$(now)
rm -rf root2; mkdir root2
report "template" "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" \
  "$(peak "$winlayer" vhdx scratch-template root2)" "$(peak qemu-img convert -O vhdx -o block_size=1M ntfs.raw peer2.vhdx)"
echo "          (winlayer: $(du -k root/blank-base.vhdx | cut -f1) KiB base + $(du -k root/blank.vhdx | cut -f1) KiB diff on disk;" \
     "peer: $(du -k peer.vhdx | cut -f1) KiB, no partition table, no differencing disk)"

t0=$(now); for i in $(seq "$n"); do "$winlayer" vhdx copy root/blank.vhdx "ours/$i.vhdx"; done; t1=$(now)
for i in $(seq "$n"); do cp root/blank.vhdx "theirs/$i.vhdx"; done; t2=$(now)
report "copy" "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" \
  "$(peak "$winlayer" vhdx copy root/blank.vhdx p1.vhdx)" "$(peak cp root/blank.vhdx p2.vhdx)"
rm -rf ours/*
t0=$(now); for i in $(seq "$n"); do "$winlayer" vhdx copy --size 20GiB root/blank.vhdx "ours/$i.vhdx"; done; t1=$(now)
printf '%-9s winlayer %7.3fs  (copy and grow to 20 GiB; peak %s)\n' "grow" "$(seconds "$t0" "$t1")" \
  "$(peak "$winlayer" vhdx copy --size 20GiB root/blank.vhdx p3.vhdx)"

t0=$(now); "$winlayer" vhdx to-raw root/blank-base.vhdx ours.raw; t1=$(now)
qemu-img convert -O raw root/blank-base.vhdx theirs.raw; t2=$(now)
cmp ours.raw theirs.raw
report "to-raw" "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" \
  "$(peak "$winlayer" vhdx to-raw root/blank-base.vhdx p.raw)" "$(peak qemu-img convert -O raw root/blank-base.vhdx q.raw)"
