#!/usr/bin/env bash
# The repository stands alone: its tracked files, copied into a new directory with nothing
# beside or above it from this checkout's surroundings, pass the tests that use the layer
# generator (scripts/gen-layer.py) and the Windows-made hive fixture, and the cimfs suite.
# The copy builds into this checkout's target directory (CARGO_TARGET_DIR), so only the
# workspace's own crates are compiled again.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1 || {
  echo "fresh-copy suite: skipped, not a git checkout (it copies the tracked files)"
  exit 0
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy=$work/winlayer
mkdir "$copy"
# The tests once looked for their generator and fixture in a `shared` directory beside or above
# the checkout; nothing may be found that way now.
d=$(realpath "$work")
while :; do
  [ ! -e "$d/shared" ] || { echo "fresh-copy suite: $d/shared exists, so the copy is not alone" >&2; exit 1; }
  [ "$d" != / ] || break
  d=$(dirname "$d")
done
# Extracted with fresh times (-m): the shared target keys the copy's crates by their
# workspace-relative paths, so with the checkout's times cargo would take the test binaries
# of an earlier copy as fresh, and they would read that copy's (deleted) files.
git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -m -xf - -C "$copy"
echo "-- $(git ls-files | wc -l) tracked files copied to $copy"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
# The workspace's own crates have the copy's paths compiled in (CARGO_MANIFEST_DIR), so they
# must not share artifacts with the checkout's: with identical sources and settings cargo would
# reuse the checkout's (testing nothing) or leave its own for the checkout. A codegen-units
# setting for each of them (a profile override per package) gives them artifacts of their own;
# dependencies keep their settings and are reused.
mkdir "$copy/.cargo"
for manifest in "$copy"/crates/*/Cargo.toml; do
  printf '[profile.dev.package.%s]\ncodegen-units = 255\n' "$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)"
done >"$copy/.cargo/config.toml"
[ -n "${WINLAYER_PYTHON:-}" ] || [ ! -x "$repo/target/venv/bin/python" ] || export WINLAYER_PYTHON=$repo/target/venv/bin/python
cd "$copy"
echo "-- the tests that use the generator and the hive fixture, run in the copy"
if ! cargo test --locked \
  -p cimfs --test forks --test roundtrip \
  -p wcow-tar --test interop \
  -p regf --test interop --test merge \
  -p winlayer --test hive --test gen_layer \
  -p winlayer-layers --test cim_layers >"$work/test.log" 2>&1; then
  tail -n 60 "$work/test.log"
  echo "fresh-copy suite: the tests failed in the copy" >&2
  exit 1
fi
grep -E '^test result' "$work/test.log"
echo "-- the cimfs suite, run in the copy"
bash scripts/suites/cimfs.sh
echo "fresh-copy suite: all checks passed"
