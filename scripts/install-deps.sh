#!/usr/bin/env bash
# Installs what the test suite needs, when it is missing: Debian packages listed in
# scripts/deps/apt-*.txt, Python packages listed in scripts/deps/pip-*.txt (into a virtual
# environment under target/venv), and the cargo tools in scripts/deps/cargo-*.txt.
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

lists() { { cat "$@" 2>/dev/null || true; } | sed -e 's/#.*//' -e '/^[[:space:]]*$/d' | sort -u; }

missing=()
for pkg in $(lists scripts/deps/apt-*.txt); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=target/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
pip_reqs=$(lists scripts/deps/pip-*.txt)
if [ -n "$pip_reqs" ]; then
  stamp="$venv/.installed"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pip_reqs" ]; then
    echo "install-deps: pip install $(echo $pip_reqs)"
    "$venv/bin/pip" install -q --disable-pip-version-check $pip_reqs
    echo "$pip_reqs" > "$stamp"
  fi
fi

for tool in $(lists scripts/deps/cargo-*.txt); do
  command -v "$tool" >/dev/null 2>&1 || cargo install --locked "$tool"
done
