#!/usr/bin/env bash
# The whole test suite: installs what it needs, runs every Rust test (unit, property,
# fuzz-corpus and interop tests against GNU tar, Python tarfile and Go archive/tar), then the
# suites in scripts/suites/ (each prints what it checks and skips visibly when its platform
# is unavailable).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

export WINLAYER_PYTHON="$PWD/target/venv/bin/python"
export GOCACHE="$PWD/target/go-cache" GOPATH="$PWD/target/go" GOFLAGS=-mod=mod GOTOOLCHAIN=local
# A cold build gains nothing from incremental state, which would take gigabytes of disk.
export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

cargo test --workspace --locked
for suite in scripts/suites/*.sh; do
  [ -e "$suite" ] || continue
  echo "== $suite"
  bash "$suite"
done
echo "all tests passed"
