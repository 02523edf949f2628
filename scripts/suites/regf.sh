#!/usr/bin/env bash
# Registry hives end to end through the CLI, checked with hivex's own command-line tools
# (hivexsh, hivexget, hivexml from Debian libhivex-bin), which share no code with winlayer:
# the empty base-layer hives, a hive built from JSON, a layer chain merged, and a hive written
# by hivexsh read back by winlayer.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in hivexsh hivexget hivexml; do
  command -v "$tool" >/dev/null || { echo "regf suite: $tool is missing (Debian package libhivex-bin)"; exit 1; }
done
cargo build --locked -q -p winlayer
winlayer=$PWD/target/debug/winlayer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
check() { echo "  ok: $*"; }
fail() { echo "  FAILED: $*"; exit 1; }
must() {  # what, command...
  local what=$1; shift
  "$@" || fail "$what"
  check "$what"
}
expect() {  # what, wanted, got
  [ "$2" = "$3" ] || fail "$1: wanted '$2', got '$3'"
  check "$1 = $2"
}

echo "empty base-layer hives, read by hivexml:"
for h in DEFAULT SAM SECURITY SOFTWARE SYSTEM; do
  "$winlayer" hive create "$h" --root-name "$h"
  xml=$(hivexml "$h")
  must "$h: $(stat -c %s "$h") bytes, root key $h" grep -q "<node name=\"$h\" root=\"1\">" <<<"$xml"
done
"$winlayer" hive create DEFAULT2 --root-name DEFAULT
must "the same name gives the same bytes" cmp -s DEFAULT DEFAULT2

echo "a hive from JSON, read by hivexget:"
cat > spec.json <<'EOF'
{"root": "SOFTWARE", "keys": [
  {"path": "\\Vendor\\App", "values": [
    {"name": "Version", "type": "REG_DWORD", "data": 3},
    {"name": "Name", "type": "REG_SZ", "data": "winlayer"},
    {"name": "Paths", "type": "REG_MULTI_SZ", "data": ["C:\\a", "C:\\b"]}]},
  {"path": "\\Vendor\\Old", "values": [{"name": "Gone", "type": "REG_DWORD", "data": 1}]}
]}
EOF
SOURCE_DATE_EPOCH=1700000000 "$winlayer" hive create base --from spec.json
expect 'hivexget \Vendor\App Version' 3 "$(hivexget base '\Vendor\App' Version)"
expect 'hivexget \Vendor\App Name' winlayer "$(hivexget base '\Vendor\App' Name)"
"$winlayer" hive dump --json base > dump.json
"$winlayer" hive create again --from dump.json
must "dump --json | create gives the same bytes" cmp -s base again

echo "a layer chain merged (base + delta1 + delta2), read by hivexget:"
cat > d1.json <<'EOF'
{"keys": [{"path": "\\Vendor\\App", "values": [{"name": "Version", "type": "REG_DWORD", "data": 4},
                                              {"name": "Name", "tombstone": true}]},
          {"path": "\\Vendor\\Old", "layer": "tombstone"}]}
EOF
cat > d2.json <<'EOF'
{"keys": [{"path": "\\Vendor\\Added", "values": [{"name": "By", "type": "REG_SZ", "data": "layer 2"}]}]}
EOF
"$winlayer" hive create d1 --delta --from d1.json
"$winlayer" hive create d2 --delta --from d2.json
"$winlayer" hive merge base d1 d2 -o merged
expect 'Version after delta1' 4 "$(hivexget merged '\Vendor\App' Version)"
xml=$(hivexml merged)
expect 'values named Name after delta1' 0 "$(grep -c 'key="Name"' <<<"$xml" || true)"
expect 'keys named Old after delta1' 0 "$(grep -c '<node name="Old">' <<<"$xml" || true)"
expect 'added by delta2' "layer 2" "$(hivexget merged '\Vendor\Added' By)"
expect 'untouched REG_MULTI_SZ' "$(hivexget base '\Vendor\App' Paths | tr '\n' ' ')" \
  "$(hivexget merged '\Vendor\App' Paths | tr '\n' ' ')"

echo "a hive changed by hivexsh, read by winlayer:"
printf 'cd Vendor\nadd ByHivex\ncd ByHivex\nsetval 2\nText\nstring:from hivexsh\nNumber\ndword:0x2a\ncommit\n' | hivexsh -w merged
"$winlayer" hive dump merged > dump.txt
must 'winlayer reads "Text" written by hivexsh' grep -q '"Text" = REG_SZ "from hivexsh"' dump.txt
must 'winlayer reads "Number" written by hivexsh' grep -q '"Number" = REG_DWORD 0x2a (42)' dump.txt
echo "regf suite passed"
