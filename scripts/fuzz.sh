#!/usr/bin/env bash
# A fuzzing campaign: scripts/fuzz.sh TARGET MINUTES (TARGET "all" runs every target in turn,
# MINUTES each). libFuzzer (cargo-fuzz, nightly, AddressSanitizer with leak detection on) runs
# the target seeded with its checked-in corpus fuzz/corpus/TARGET and the campaign's own
# working corpus (target/fuzz-work/TARGET, kept between campaigns), with the dictionary
# fuzz/dict/TARGET.dict of the format's magic values. Afterwards the working corpus is
# minimised (cargo fuzz cmin) and the inputs of it that reach code (edges) the checked-in corpus
# does not are merged into fuzz/corpus/TARGET as found-<sha1>: the checked-in corpus is replayed
# by `cargo test` (stable), so every input kept there is a regression test.
# Crashes, leaks, timeouts and out-of-memory inputs land in fuzz/artifacts/TARGET.
# Installs the nightly toolchain and cargo-fuzz when missing (CI does not fuzz, so they are
# not in scripts/deps). Runs under nice: the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/fuzz.sh TARGET|all MINUTES" >&2; exit 2; }
target=$1 minutes=$2
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^winlayer-fuzz$')
if [ "$target" = all ]; then
  for t in $targets; do "$0" "$t" "$minutes"; done
  exit 0
fi
echo "$targets" | grep -qx "$target" || { echo "scripts/fuzz.sh: no target $target (targets: $(echo $targets))" >&2; exit 2; }
[ -f "fuzz/dict/$target.dict" ] || { echo "scripts/fuzz.sh: fuzz/dict/$target.dict is missing (every target has a dictionary)" >&2; exit 2; }

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

work=$PWD/target/fuzz-work/$target
log=$PWD/target/fuzz-work/$target.log
mkdir -p "$work"
cd fuzz
# In-memory spool files (the tar reader spools compressed entries' data) stay off the disk.
export TMPDIR=${TMPDIR:-/dev/shm}
nice -n 10 cargo +nightly fuzz build "$target"
echo "== $target: $minutes min, corpus fuzz/corpus/$target ($(ls "corpus/$target" | wc -l) inputs) + $(ls "$work" | wc -l) working inputs"
status=0
# -timeout: any input slower than 10 s is a hang; -malloc_limit_mb: a single allocation of
# more than 1 GiB is a finding (the parsers cap what they allocate far below that).
nice -n 10 cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
  -max_total_time=$((minutes * 60)) -dict="dict/$target.dict" -timeout=10 -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -print_final_stats=1 \
  2> "$log" || status=$?
grep -E '^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "$log" | tail -4 || true
if [ "$status" != 0 ]; then
  echo "== $target: libFuzzer stopped with status $status (a finding): see $log and fuzz/artifacts/$target" >&2
  grep -E '^==[0-9]+==ERROR|^SUMMARY|panicked at|Test unit written to' "$log" | head -8 >&2 || true
  exit "$status"
fi

nice -n 10 cargo +nightly fuzz cmin "$target" "$work" >> "$log" 2>&1
before=$(mktemp)
ls "corpus/$target" | sort > "$before"
# -use_counters=0: an input counts when it reaches a new edge, not when it only runs a known
# edge a different number of times (that would keep most of the working corpus).
nice -n 10 cargo +nightly fuzz run "$target" "corpus/$target" "$work" -- -merge=1 -use_counters=0 >> "$log" 2>&1
added=0
for f in $(ls "corpus/$target" | sort | comm -13 "$before" -); do
  mv "corpus/$target/$f" "corpus/$target/found-${f:0:12}"
  added=$((added + 1))
done
rm -f "$before"
echo "== $target: no finding; working corpus $(ls "$work" | wc -l) inputs after cmin; $added inputs reaching new edges merged into fuzz/corpus/$target; log $log"
