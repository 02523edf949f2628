#!/usr/bin/env bash
# containerd 2.x for the test suites, built from the Go module proxy at pinned versions into
# target/containerd2/VERSION/ (a finished build is reused, so reruns are instant). What
#   go install github.com/containerd/containerd/v2/cmd/{containerd,ctr}@VERSION
# does, done by hand: `go install pkg@version` refuses a module whose go.mod has exclude
# directives (2.0.x has), so the release's module is fetched from the proxy and its commands
# built inside it, with exactly the release's go.mod and go.sum.
#
#   scripts/containerd2.sh [VERSION...]    builds VERSION (default: every pinned one) and
#                                          prints each build's directory, one a line
#   source scripts/containerd2.sh          defines containerd2_versions and containerd2_build
#
# Needs Go >= the version containerd's go.mod names (the newest pinned release wants 1.26):
# `go` on PATH, or $CONTAINERD2_GO. Honours GOPATH/GOCACHE (scripts/test.sh puts them under
# target/); without them the module and build caches go under target/ too.

# The newest 2.x release the module proxy serves, and the oldest 2.0.x it serves (2.0 brought
# the CimFS snapshotter and proxy differs).
containerd2_versions=(v2.4.2 v2.0.13)

# containerd2_build VERSION: builds containerd and ctr VERSION unless already built; prints the
# directory holding them.
containerd2_build() {
  local version=$1 repo
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local dir=$repo/target/containerd2/$version
  if [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ] && [ "$(cat "$dir/.built" 2>/dev/null)" = "$version" ]; then
    echo "$dir"
    return
  fi
  local go=${CONTAINERD2_GO:-go}
  command -v "$go" >/dev/null || { echo "containerd2: Go is missing (need $go on PATH)" >&2; return 1; }
  mkdir -p "$dir"
  local started=$SECONDS
  echo "containerd2: building containerd and ctr $version with $("$go" env GOVERSION) (once; cached in $dir)" >&2
  # The module cache is read-only: the release's go.mod is used as it is (-mod=readonly, also
  # past the partial vendor/ the module zip carries). Static
  # binaries without cgo; btrfs needs cgo and its headers, and no suite uses it.
  if ! (
    set -e
    export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
    export GOPATH=${GOPATH:-$repo/target/go} GOCACHE=${GOCACHE:-$repo/target/go-cache}
    src=$("$go" mod download -json "github.com/containerd/containerd/v2@$version" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    cd "$src"
    nice -n 10 "$go" build -trimpath -tags no_btrfs -o "$dir/" ./cmd/containerd ./cmd/ctr
  ) >&2; then
    echo "containerd2: building containerd $version failed" >&2
    return 1
  fi
  echo "$version" >"$dir/.built"
  echo "containerd2: built containerd $version in $((SECONDS - started)) s" >&2
  echo "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -gt 0 ] || set -- "${containerd2_versions[@]}"
  for version in "$@"; do containerd2_build "$version"; done
fi
