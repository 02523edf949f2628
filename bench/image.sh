#!/usr/bin/env bash
# Whole-process benchmark of `winlayer image` against peers in the same run, with Debian's
# docker-registry on 127.0.0.1:
#   * `image append` of a 20k-file, ~400 MiB directory onto a base, pushed to the registry,
#     vs `crane append` of the same content (crane takes a tar: GNU tar of the directory,
#     not timed) — and winlayer given that tar too;
#   * `image pull` of a 3-layer image into an OCI layout vs `skopeo copy docker:// oci:`, and
#     `image push` of that layout to a new repository vs `skopeo copy oci: docker://`.
# Medians of BENCH_RUNS runs (default 3) of wall time and peak memory (/usr/bin/time), and
# ratios winlayer/peer. Output in bench/out/image. BENCH_SCALE=0.1 shrinks the data.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for tool in python3 tar /usr/bin/time docker-registry skopeo go curl; do
  command -v "$tool" >/dev/null || { echo "bench/image.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
export GOCACHE=${GOCACHE:-$root/target/go-cache} GOPATH=${GOPATH:-$root/target/go} GOTOOLCHAIN=local
crane_version=v0.15.2
crane=$root/target/tools/crane-$crane_version
if [ ! -x "$crane" ]; then
  mkdir -p "$root/target/tools/bin"
  GOBIN=$root/target/tools/bin go install "github.com/google/go-containerregistry/cmd/crane@$crane_version"
  mv "$root/target/tools/bin/crane" "$crane"
fi
cargo build --release --locked -q -p winlayer
winlayer=$root/target/release/winlayer
runs=${BENCH_RUNS:-3}
scale=${BENCH_SCALE:-1}
scaled() { python3 -c "print(max($2, int($1 * $scale)))"; }
out=$root/bench/out/image
rm -rf "$out" && mkdir -p "$out"
cd "$out"
export SOURCE_DATE_EPOCH=1700000000

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: 127.0.0.1:%s}\n' "$out" "$port" > registry.yml
docker-registry serve registry.yml >registry.log 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
R=127.0.0.1:$port

# Median over $runs runs of "wall_seconds peak_kib min max": `prepare` (a shell snippet) runs
# before each run, then the command, whose words are expanded then (so $n may differ per run).
n=0
measure() {
  local prepare=$1; shift
  for _ in $(seq "$runs"); do
    eval "$prepare"
    local words=()
    for w in "$@"; do words+=("$(eval "echo \"$w\"")"); done
    /usr/bin/time -f "%e %M" -o time.txt "${words[@]}" >/dev/null 2>stderr.txt || { cat stderr.txt >&2; exit 1; }
    cat time.txt
  done | python3 -c "
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
w = sorted(r[0] for r in rows); m = sorted(r[1] for r in rows)
print(f'{statistics.median(w):.2f} {int(statistics.median(m))} {w[0]:.2f} {w[-1]:.2f}')"
}
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'n/a')" "$1" "$2"; }
row() { printf '  %-40s %7s s wall (%s-%s) %6s MiB peak\n' "$1" "$2" "$4" "$5" "$(( $3 / 1024 ))"; }

echo "== data"
python3 "$root/scripts/gen-layer.py" --profile small --files 300 --mib 8 -o base.tar
"$winlayer" image from-scratch base.tar --platform windows/amd64:10.0.20348.1 -t "$R/bench/base:1" --insecure >/dev/null
python3 "$root/scripts/gen-layer.py" --profile base --files "$(scaled 20000 200)" --mib "$(scaled 400 4)" --seed 3 -o tree.tar
mkdir tree && tar -xf tree.tar -C tree --warning=no-unknown-keyword Files
rm tree.tar
tar -C tree/Files -cf app.tar .
echo "  directory: $(find tree/Files -type f | wc -l) files, $(( $(du -sk tree/Files | cut -f1) / 1024 )) MiB"

echo "== image append onto a base, pushed to the registry ($runs runs)"
read -r wd_s wd_k wd_lo wd_hi < <(measure "" "$winlayer" image append --base "$R/bench/base:1" --layer tree/Files -t "$R/bench/wl-dir:1" --insecure)
read -r wt_s wt_k wt_lo wt_hi < <(measure "" "$winlayer" image append --base "$R/bench/base:1" --layer app.tar -t "$R/bench/wl-tar:1" --insecure)
read -r cr_s cr_k cr_lo cr_hi < <(measure "" "$crane" append --insecure -b "$R/bench/base:1" -f app.tar -t "$R/bench/crane:1")
row "winlayer image append --layer DIR" "$wd_s" "$wd_k" "$wd_lo" "$wd_hi"
row "winlayer image append --layer TAR" "$wt_s" "$wt_k" "$wt_lo" "$wt_hi"
row "crane append -f TAR" "$cr_s" "$cr_k" "$cr_lo" "$cr_hi"
echo "  winlayer (dir)/crane: wall $(ratio "$wd_s" "$cr_s"), memory $(ratio "$wd_k" "$cr_k"); winlayer (tar)/crane: wall $(ratio "$wt_s" "$cr_s"), memory $(ratio "$wt_k" "$cr_k")"

echo "== pull and push of a 3-layer image ($runs runs)"
python3 "$root/scripts/gen-layer.py" --profile app --files "$(scaled 2000 50)" --mib "$(scaled 50 2)" --seed 4 -o app2.tar
"$winlayer" image append --base "$R/bench/wl-dir:1" --layer app2.tar -t "$R/bench/three:1" --insecure >/dev/null
read -r pl_s pl_k pl_lo pl_hi < <(measure "rm -rf wl-layout" "$winlayer" image pull "$R/bench/three:1" -o wl-layout --insecure)
read -r sp_s sp_k sp_lo sp_hi < <(measure "rm -rf sk-layout" skopeo copy -q --src-tls-verify=false "docker://$R/bench/three:1" oci:sk-layout:1)
read -r ps_s ps_k ps_lo ps_hi < <(measure 'n=$((n+1))' "$winlayer" image push wl-layout "$R/bench/push-wl-\$n:1" --insecure)
read -r ss_s ss_k ss_lo ss_hi < <(measure 'n=$((n+1))' skopeo copy -q --dest-tls-verify=false oci:sk-layout:1 "docker://$R/bench/push-sk-\$n:1")
row "winlayer image pull" "$pl_s" "$pl_k" "$pl_lo" "$pl_hi"
row "skopeo copy docker:// oci:" "$sp_s" "$sp_k" "$sp_lo" "$sp_hi"
row "winlayer image push" "$ps_s" "$ps_k" "$ps_lo" "$ps_hi"
row "skopeo copy oci: docker://" "$ss_s" "$ss_k" "$ss_lo" "$ss_hi"
echo "  pull winlayer/skopeo: wall $(ratio "$pl_s" "$sp_s"), memory $(ratio "$pl_k" "$sp_k"); push winlayer/skopeo: wall $(ratio "$ps_s" "$ss_s"), memory $(ratio "$ps_k" "$ss_k")"
