#!/usr/bin/env bash
# VHDX end to end through the winlayer CLI, judged by tools winlayer did not write: qemu-img
# and qemu-io (dynamic disks), libvhdi and dissect.hypervisor (differencing disks), sfdisk and
# ntfsinfo (scratch templates). Needs scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -q -p winlayer
winlayer=$PWD/target/debug/winlayer
python=${WINLAYER_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
checks=0
ok() { checks=$((checks + 1)); echo "  ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
json() { "$python" -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

echo "== winlayer vhdx create: qemu-img info/check accept the disks with the asked sizes"
for block in 1MiB 32MiB; do
  "$winlayer" vhdx create --size 10GiB --block-size $block d.vhdx
  [ "$(qemu-img info --output=json d.vhdx | json "['virtual-size']")" = 10737418240 ] || fail "virtual size ($block)"
  [ "$(qemu-img info --output=json d.vhdx | json "['cluster-size']")" = $(( ${block%MiB} << 20 )) ] || fail "cluster size"
  qemu-img check -q d.vhdx || fail "qemu-img check ($block)"
  ok "10GiB dynamic disk with $block blocks"
done

echo "== from-raw / to-raw against qemu-img convert, holes kept"
truncate -s 64M disk.raw
printf 'hello from a raw image' | dd of=disk.raw bs=1 seek=$((5 << 20)) conv=notrunc status=none
head -c 3000000 /dev/urandom | dd of=disk.raw bs=1M seek=40 conv=notrunc status=none
"$winlayer" vhdx from-raw disk.raw fromraw.vhdx
qemu-img check -q fromraw.vhdx || fail "qemu-img check of from-raw output"
qemu-img convert -O raw fromraw.vhdx qemu.raw
cmp disk.raw qemu.raw || fail "qemu reads other data from our from-raw disk"
ok "qemu-img convert of our from-raw disk equals the raw image"
[ "$(du -k fromraw.vhdx | cut -f1)" -lt 12000 ] || fail "zero blocks were allocated"
ok "zero blocks stay unallocated ($(du -k fromraw.vhdx | cut -f1) KiB on disk for 64 MiB)"
qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off q.vhdx 48M
qemu-io -c 'write -P 0xab 1M 64k' -c 'write -P 0x11 7000k 3M' -c 'write -P 0x22 47M 512' q.vhdx >/dev/null
"$winlayer" vhdx to-raw q.vhdx ours.raw
qemu-img convert -O raw q.vhdx theirs.raw
cmp ours.raw theirs.raw || fail "to-raw differs from qemu-img convert"
ok "winlayer vhdx to-raw of a qemu disk equals qemu-img convert"

echo "== resize grows, qemu sees it"
"$winlayer" vhdx resize q.vhdx 600GiB
[ "$(qemu-img info --output=json q.vhdx | json "['virtual-size']")" = $((600 << 30)) ] || fail "resize"
qemu-img check -q q.vhdx || fail "qemu-img check after resize (BAT moved)"
if "$winlayer" vhdx resize q.vhdx 1GiB 2>/dev/null; then fail "shrinking accepted"; fi
ok "grown to 600 GiB (BAT moved), shrinking refused"

echo "== differencing disks: libvhdi and dissect read the parent through the child"
mkdir kids
"$winlayer" vhdx create --parent fromraw.vhdx kids/child.vhdx
"$winlayer" vhdx check kids/child.vhdx >/dev/null || fail "check of a fresh child"
"$python" - fromraw.vhdx kids/child.vhdx <<'PY' || fail "libvhdi/dissect"
import sys, pyvhdi
from pathlib import Path
from dissect.hypervisor.disk.vhdx import VHDX
parent, child = sys.argv[1:]
want = open("disk.raw", "rb").read()
f = pyvhdi.file(); f.open(child); p = pyvhdi.file(); p.open(parent); f.set_parent(p)
assert f.read_buffer(f.media_size) == want, "libvhdi"
v = VHDX(Path(child))
assert v.read(v.size) == want, "dissect"
PY
ok "libvhdi and dissect.hypervisor read the parent's data through winlayer's child"
"$winlayer" vhdx resize fromraw.vhdx 128MiB
if "$winlayer" vhdx check kids/child.vhdx > check.txt; then fail "a changed parent accepted"; fi
grep -q "is not its parent" check.txt || fail "unclear message: $(cat check.txt)"
ok "a parent changed after the child was made is refused: $(grep -o 'the parent linkage[^(]*' check.txt | head -1)"
printf 'junk' | dd of=kids/child.vhdx bs=1 seek=65600 conv=notrunc status=none
printf 'junk' | dd of=kids/child.vhdx bs=1 seek=131136 conv=notrunc status=none
set +e; "$winlayer" vhdx check kids/child.vhdx >/dev/null; status=$?; set -e
[ $status = 1 ] || fail "check of a damaged disk exited $status"
ok "check exits 1 on a disk with both headers damaged"

echo "== scratch templates: GPT and NTFS read by sfdisk and ntfsinfo; copies grow"
mkdir root
"$winlayer" vhdx scratch-template root
grep -q kept <<<"$("$winlayer" vhdx scratch-template root)" || fail "a sound pair was recreated"
qemu-img convert -O raw root/blank-base.vhdx base.raw
sfdisk --dump base.raw | grep -q 'type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7' || fail "no basic data partition"
ok "sfdisk reads the template's GPT: $(sfdisk --dump base.raw | grep -c '^base.raw') partitions"
start=$(sfdisk --json base.raw | json "['partitiontable']['partitions'][1]['start']")
size=$(sfdisk --json base.raw | json "['partitiontable']['partitions'][1]['size']")
qemu-img convert -O raw --image-opts \
  "driver=raw,offset=$((start * 512)),size=$((size * 512)),file.driver=vhdx,file.file.filename=root/blank-base.vhdx" part.raw
info=$(ntfsinfo -m part.raw)
grep -q 'Cluster Size: 4096' <<<"$info" || fail "ntfsinfo: $info"
ok "ntfsinfo reads the template's NTFS"
mkdir -p snapshots/3
"$winlayer" vhdx copy root/blank.vhdx snapshots/3/sandbox.vhdx --size 20GiB
[ "$("$winlayer" vhdx info --json snapshots/3/sandbox.vhdx | json "['virtual_size']")" = $((20 << 30)) ] || fail "copy --size"
"$winlayer" vhdx check snapshots/3/sandbox.vhdx >/dev/null || fail "check of the copy (parent by absolute path)"
ok "a container's copy grows to 20 GiB and still finds its base"
echo "vhdx suite: $checks passed, 0 failed"
