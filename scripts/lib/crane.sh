# Used by scripts/suites/image.sh and convert.sh (sourced, not run): crane, from
# go-containerregistry, built from the Go module proxy into target/tools once. Callers set
# `root` (the checkout) and a `skip` function; sets `crane` to the binary.
export GOCACHE=${GOCACHE:-$root/target/go-cache} GOPATH=${GOPATH:-$root/target/go} GOTOOLCHAIN=local
crane_version=v0.15.2 # the newest go-containerregistry that Debian's Go 1.19 builds
crane=$root/target/tools/crane-$crane_version
if [ ! -x "$crane" ]; then
  mkdir -p "$root/target/tools/bin"
  GOBIN=$root/target/tools/bin go install "github.com/google/go-containerregistry/cmd/crane@$crane_version" \
    || skip "crane $crane_version could not be built (is the Go module proxy reachable?)"
  mv "$root/target/tools/bin/crane" "$crane"
fi
