#!/usr/bin/env bash
# End-to-end checks of `winlayer cim`: a generated base layer and an app layer forked on it
# go tar -> cim -> tar (equal to the canonical input), are listed, inspected, extracted and
# mounted with FUSE (the mount must read exactly like the extraction).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --locked -p winlayer
winlayer=${CARGO_TARGET_DIR:-$PWD/target}/debug/winlayer
python=${WINLAYER_PYTHON:-python3}
gen=$PWD/scripts/gen-layer.py
work=$(mktemp -d)
mnt=$work/mnt
cleanup() { mountpoint -q "$mnt" 2>/dev/null && "$winlayer" cim umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT
step() { echo "-- $*"; }

"$python" "$gen" --profile base --files 400 --mib 4 --seed 21 -o "$work/base.tar"
"$python" "$gen" --profile app --files 150 --mib 1 --seed 22 -o "$work/app.tar"
mkdir "$work/cims"

step "cim create: base layer, then an app layer forked from it"
"$winlayer" cim create --from "$work/base.tar" "$work/cims/base.cim" 2>/dev/null
"$winlayer" cim create --json --from "$work/app.tar" --parent "$work/cims/base.cim" "$work/cims/app.cim" 2>/dev/null >"$work/summary.json"
"$python" -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['records'] > 0 and s['region_set'], s" "$work/summary.json"

step "cim export of the base equals tar normalize of its input, byte for byte"
"$winlayer" tar normalize "$work/base.tar" -o "$work/base.canonical.tar" 2>/dev/null
"$winlayer" cim export "$work/cims/base.cim" -o "$work/base.export.tar"
cmp "$work/base.canonical.tar" "$work/base.export.tar"

step "cim export of the fork is a valid layer holding both layers' files"
"$winlayer" cim export "$work/cims/app.cim" -o "$work/app.export.tar"
"$winlayer" tar verify "$work/app.export.tar" >/dev/null
for f in Files/Windows/System32/config/SYSTEM Hives/Software_Delta; do
  "$winlayer" cim cat "$work/cims/app.cim" "$f" | cmp - <(tar --warning=no-unknown-keyword -xOf "$work/$( [ "${f%%/*}" = Hives ] && echo app || echo base).tar" "$f")
done

step "cim info, ls -R --json and stat agree on the tree"
names=$("$winlayer" cim info --json "$work/cims/app.cim" | "$python" -c "import json,sys; i=json.load(sys.stdin); assert len(i['region_sets']) == 2; print(i['counts']['names'])")
listed=$("$winlayer" cim ls -R --json "$work/cims/app.cim" | "$python" -c "import json,sys; print(len(json.load(sys.stdin)))")
[ "$names" = "$listed" ] || { echo "info counts $names names, ls -R lists $listed" >&2; exit 1; }
"$winlayer" cim stat "$work/cims/app.cim" 'files\USERS\all users' | grep -q '(symlink)'
"$winlayer" cim stat "$work/cims/app.cim" 'files\DOCUMENTS AND SETTINGS' | grep -q '(junction)'

step "cim extract, then a FUSE mount that reads exactly like the extraction"
"$winlayer" cim extract "$work/cims/app.cim" "$work/x" 2>/dev/null
if [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
  mkdir "$mnt"
  "$winlayer" cim mount "$work/cims/app.cim" "$mnt"
  diff -r --no-dereference "$work/x" "$mnt"
  inodes() { find "$1" -type f -printf '%i\n' | sort -u | wc -l; }
  names=$(find "$mnt" -type f | wc -l)
  [ "$(inodes "$mnt")" = "$(inodes "$work/x")" ] && [ "$(inodes "$mnt")" -lt "$names" ] ||
    { echo "hard links are not one inode each in the mount" >&2; exit 1; }
  "$winlayer" cim umount "$mnt"
  ! mountpoint -q "$mnt"

  step "cim mount returns at once through a pipe, and its server holds none of the caller's descriptors"
  # The caller's standard error is a pipe and it has a descriptor 3 of its own: the mount must
  # not keep either (before, \`2>&1 | cat\` waited until the unmount).
  timeout 20 bash -c '"$0" cim mount "$1" "$2" 2>&1 3>"$3" | cat' "$winlayer" "$work/cims/app.cim" "$mnt" "$work/fd3" ||
    { echo "cim mount 2>&1 | cat did not return" >&2; exit 1; }
  mountpoint -q "$mnt"
  server=$(pgrep -f -x "$winlayer cim mount --detached $work/cims/app.cim $mnt" | head -n 1)
  held=$(for fd in /proc/"$server"/fd/*; do readlink "$fd"; done | grep -v -e '^/dev/null$' -e '^/dev/fuse$' -e "^$work/cims/" || true)
  [ -z "$held" ] || { echo "the mount's server holds the caller's descriptors: $held" >&2; exit 1; }
  "$winlayer" cim umount "$mnt"
  "$winlayer" cim mount "$work/cims/app.cim" "$work/nonexistent" 2>"$work/err" && exit 1
  [ "$(wc -l <"$work/err")" = 1 ] && grep -q "nonexistent" "$work/err" ||
    { echo "a failed mount should say why in one line:" >&2; cat "$work/err" >&2; exit 1; }
else
  echo "   SKIPPED: the FUSE mount needs /dev/fuse and root on this machine"
fi
echo "cimfs suite: all checks passed"
