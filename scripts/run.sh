#!/usr/bin/env bash
# winlayer's main job with its embedded defaults: builds a sample Windows layer from a small
# directory tree (a program, its configuration, a hard link and a symlink), checks it and
# lists it with every piece of Windows metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p winlayer
winlayer=target/release/winlayer

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/app"
mkdir -p "$tree/app/bin" "$tree/app/config"
printf 'MZ sample program\n' > "$tree/app/bin/hello.exe"
printf 'greeting=hello\n' > "$tree/app/config/settings.ini"
ln "$tree/app/bin/hello.exe" "$tree/app/bin/hi.exe"
ln -s ../config/settings.ini "$tree/app/bin/settings.ini"
export SOURCE_DATE_EPOCH=1700000000

echo "== winlayer tar from-dir $tree -o layer.tar"
"$winlayer" tar from-dir "$tree" -o "$work/layer.tar"
echo "== winlayer tar verify layer.tar"
"$winlayer" tar verify "$work/layer.tar"
echo "== winlayer tar ls layer.tar"
"$winlayer" tar ls "$work/layer.tar"
