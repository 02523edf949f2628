#!/usr/bin/env bash
# Benchmarks winlayer's registry hive commands against hivex (the C library, through its own
# tools and its Python binding) in the same run, on a generated SOFTWARE-like hive (default
# 100,000 keys with 3 values each), and reports ratios (winlayer / hivex; below 1 means winlayer
# is faster) with peak memory:
#   read:  `winlayer hive dump --json` vs `hivexml` (both read every key and value and print them)
#   write: `winlayer hive create --from JSON` vs python3-hivex adding the same keys and values
#          to an empty hive and committing it
#   merge: `winlayer hive merge` of a delta touching every tenth key; no peer runs on Linux
#          (offreg.dll's ORMergeHives is Windows-only), so it is reported next to the read of
#          the same base by hivexml.
#
#   bench/regf.sh [KEYS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}; runs=${2:-3}
for tool in /usr/bin/time hivexml bc; do
  command -v "$tool" >/dev/null || { echo "bench/regf.sh needs $tool (Debian packages time, libhivex-bin, bc)"; exit 1; }
done
/usr/bin/python3 -c 'import hivex' 2>/dev/null || { echo "bench/regf.sh needs python3-hivex (Debian)"; exit 1; }
cargo build --release --locked -q -p winlayer
winlayer=$PWD/target/release/winlayer
out=bench/out/regf; mkdir -p "$out"

# The tree as JSON for winlayer and as a flat list for hivex: keys Software\Vendor{v}\Product{p}\
# Key{k} with a string, a dword and a 200-byte binary value each.
/usr/bin/python3 - "$keys" "$out" <<'EOF'
import json, sys
keys, out = int(sys.argv[1]), sys.argv[2]
spec, delta = [], []
for i in range(keys):
    path = "\\Software\\Vendor%d\\Product%d\\Key%d" % (i % 97, i % 1009, i)
    values = [{"name": "Name", "type": "REG_SZ", "data": "value number %d" % i},
              {"name": "Count", "type": "REG_DWORD", "data": i},
              {"name": "Blob", "type": "REG_BINARY", "hex": ("%02x" % (i % 256)) * 200}]
    spec.append({"path": path, "values": values})
    if i % 10 == 0:
        delta.append({"path": path, "values": [{"name": "Count", "type": "REG_DWORD", "data": i + 1},
                                               {"name": "Name", "tombstone": True}]})
json.dump({"root": "SOFTWARE", "keys": spec}, open(out + "/spec.json", "w"))
json.dump({"keys": delta}, open(out + "/delta.json", "w"))
EOF
cat > "$out/hivex-write.py" <<'EOF'
import json, sys, hivex
spec, empty, target = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
h = hivex.Hivex(empty, write=True)
nodes = {"": h.root()}
def node(path):
    if path not in nodes:
        parent, _, name = path.rpartition("\\")
        nodes[path] = h.node_add_child(node(parent), name)
    return nodes[path]
for k in spec["keys"]:
    values = []
    for v in k["values"]:
        if v["type"] == "REG_SZ":
            values.append({"key": v["name"], "t": 1, "value": (v["data"] + "\0").encode("utf-16-le")})
        elif v["type"] == "REG_DWORD":
            values.append({"key": v["name"], "t": 4, "value": v["data"].to_bytes(4, "little")})
        else:
            values.append({"key": v["name"], "t": 3, "value": bytes.fromhex(v["hex"])})
    h.node_set_values(node(k["path"].rstrip("\\")), values)
h.commit(target)
EOF

# Median wall seconds and median peak RSS (KiB) of RUNS runs of a command.
measure() {
  local times=() mems=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$out/time.txt" -f "%e %M" "$@" >/dev/null 2>&1
    local line; line=$(tail -n1 "$out/time.txt")
    times+=("${line% *}"); mems+=("${line#* }")
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" \
                   "$(printf '%s\n' "${mems[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"
}
report() {  # name, winlayer measurement, peer name, peer measurement
  read -r wt wm <<<"$2"; read -r pt pm <<<"$4"
  printf '%-34s winlayer %6.2fs %8d KiB | %-13s %6.2fs %8d KiB | time ratio %.2f, memory ratio %.2f\n' \
    "$1" "$wt" "$wm" "$3" "$pt" "$pm" "$(echo "$wt / $pt" | bc -l)" "$(echo "$wm / $pm" | bc -l)"
}

"$winlayer" hive create "$out/empty" --root-name SOFTWARE
"$winlayer" hive create "$out/base" --from "$out/spec.json"
"$winlayer" hive create "$out/delta" --delta --from "$out/delta.json"
echo "hive: $keys keys, $((keys * 3)) values, $(du -h "$out/base" | cut -f1); $runs runs each, medians"
report "read: dump --json vs hivexml" "$(measure "$winlayer" hive dump --json "$out/base")" \
  hivexml "$(measure hivexml "$out/base")"
report "write: create --from JSON" "$(measure "$winlayer" hive create "$out/w.hive" --from "$out/spec.json")" \
  python3-hivex "$(measure /usr/bin/python3 "$out/hivex-write.py" "$out/spec.json" "$out/empty" "$out/h.hive")"
report "merge (no Linux peer) vs read" "$(measure "$winlayer" hive merge "$out/base" "$out/delta" -o "$out/m.hive")" \
  hivexml "$(measure hivexml "$out/base")"
printf 'sizes: winlayer-written %s, hivex-written %s\n' "$(du -h "$out/w.hive" | cut -f1)" "$(du -h "$out/h.hive" | cut -f1)"
