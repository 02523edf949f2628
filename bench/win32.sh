#!/usr/bin/env bash
# Composing Windows command lines in bulk: `winlayer cmdline compose --escape-all --batch`
# against Python's subprocess.list2cmdline (the same C-runtime escaping rules; the outputs
# must be byte-identical), on the same generated argument vectors, whole process each.
# Reports wall time, the ratio, and peak memory (/usr/bin/time -v).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-300000}"
python="${WINLAYER_PYTHON:-python3}"
out=bench/out/win32
mkdir -p "$out"
cargo build --release --locked -q -p winlayer
winlayer=target/release/winlayer

"$python" - "$count" > "$out/argv.jsonl" <<'PY'
import json, random, sys
rng = random.Random(7)
alphabet = ['\\', '"', ' ', '\t', 'a', 'b', 'c', 'ü', '/', '-', '=', 'x', 'y', 'z', '.', ':']
for _ in range(int(sys.argv[1])):
    argv = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))) for _ in range(rng.randrange(1, 8))]
    print(json.dumps(argv))
PY
cat > "$out/peer.py" <<'PY'
import json, subprocess, sys
write = sys.stdout.write
for line in sys.stdin:
    write(json.dumps(subprocess.list2cmdline(json.loads(line)), ensure_ascii=False) + "\n")
PY

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" < "$out/argv.jsonl" > "$out/$name.out" 2> "$out/$name.time"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/$name.time")
  echo "$name $wall $rss"
}
echo "$count argument vectors, $(du -h "$out/argv.jsonl" | cut -f1) of JSON lines"
w=$(measure winlayer "$winlayer" cmdline compose --escape-all --batch)
p=$(measure list2cmdline "$python" "$out/peer.py")
if ! cmp "$out/winlayer.out" "$out/list2cmdline.out"; then
  echo "win32 bench: the outputs differ"
  exit 1
fi
echo "outputs identical ($(wc -l < "$out/winlayer.out") lines)"
"$python" - "$w" "$p" <<'PY'
import sys
def secs(t):
    parts = [float(x) for x in t.split(":")]
    return sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
rows = [a.split() for a in sys.argv[1:]]
for name, wall, rss in rows:
    print(f"  {name:13} {secs(wall):7.2f} s  peak {int(rss) / 1024:7.1f} MiB")
(_, w, wr), (_, p, pr) = rows
print(f"  time ratio winlayer/list2cmdline {secs(w) / secs(p):.2f}, memory ratio {int(wr) / int(pr):.2f}")
PY
