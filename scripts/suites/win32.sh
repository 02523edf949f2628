#!/usr/bin/env bash
# The Windows side, from Linux:
#  1. the bindings' tests against the test double under valgrind (use-after-free or overruns
#     in argument marshalling show up here, not in plain test runs);
#  2. a cross build for x86_64-pc-windows-gnu (rustup target, Debian's mingw-w64);
#  3. winlayer.exe's manifest and imports, read by pefile;
#  4. under wine 8: winlayer.exe's version report (the manifest in effect), and the win32,
#     wincmdline and winlayer tests: the double as a DLL, the command-line table through
#     wine's CommandLineToArgvW and msvcrt, the named pipe and its ACL, the block CIM commands
#     refusing cleanly without cimfs.dll, the snapshotter's blockcim merges against the double.
# Steps 2-4 are skipped, visibly, when the Windows target cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

python="${WINLAYER_PYTHON:-python3}"
target=x86_64-pc-windows-gnu
work="$PWD/target/win32-suite"
mkdir -p "$work"
started=$SECONDS
step() { echo "-- win32: $* (at $((SECONDS - started)) s)"; }

step "bindings against the test double, under valgrind memcheck"
cargo test -q --locked -p win32 --no-run --message-format=json 2>/dev/null |
  "$python" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"]:
        print(m["executable"])' > "$work/tests.txt"
[ -s "$work/tests.txt" ] || { echo "win32: no test binaries found"; exit 1; }
while read -r test; do
  valgrind -q --error-exitcode=99 --leak-check=no "$test" -q --test-threads=2 > "$work/valgrind.out" 2>&1 ||
    { cat "$work/valgrind.out"; echo "win32: valgrind found errors in $test"; exit 1; }
done < "$work/tests.txt"
echo "   $(wc -l < "$work/tests.txt") test binaries clean"

step "Windows target"
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if ! rustup target add "$target" > "$work/rustup.log" 2>&1; then
    cat "$work/rustup.log"
    echo "SKIPPED: the $target target cannot be installed here, so nothing was built or run for Windows"
    exit 0
  fi
fi
for tool in x86_64-w64-mingw32-gcc wine64; do
  command -v "$tool" > /dev/null || [ -x "/usr/lib/wine/$tool" ] ||
    { echo "win32: $tool is missing (scripts/deps/apt-win32.txt; run scripts/install-deps.sh)"; exit 1; }
done
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)

# Lean cross build: dependencies unoptimised and no debug info (the Windows side runs only
# tests and a version report), only the crates that matter.
lean=(--config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.debug=0')
step "cross build: winlayer.exe and the win32, wincmdline and winlayer tests"
cargo build -q --locked --target "$target" -p winlayer "${lean[@]}"
cargo test -q --locked --no-run --tests --target "$target" -p win32 -p wincmdline "${lean[@]}"
# Of winlayer's own tests only the command-line ones concern Windows; the rest drive Linux tools.
cargo test -q --locked --no-run --target "$target" -p winlayer --test cmdline_cli --test block_cli "${lean[@]}"
# Of the snapshotter's, the blockcim mode's merges through the double (the rest is the Linux suites').
cargo test -q --locked --no-run --target "$target" -p winlayer-snapshotter --test blockcim "${lean[@]}"
exe="target/$target/debug/winlayer.exe"

step "manifest and imports of winlayer.exe (pefile)"
"$python" scripts/win32/pe_check.py "$exe"

step "wine prefix with the bcryptprimitives shim"
x86_64-w64-mingw32-gcc -O2 -shared -o "$work/bcryptprimitives.dll" scripts/win32/bcryptprimitives.c -ladvapi32
x86_64-w64-mingw32-gcc -O2 -municode -o "$work/argv-echo.exe" scripts/win32/argv-echo.c
export WINEPREFIX="$work/wine-prefix" WINEDEBUG=-all
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  "$wine" wineboot -u > "$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log"; exit 1; }
  "$wine" winecfg -v win10 > /dev/null 2>&1
fi
cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

step "winlayer.exe version under wine: the manifest makes GetVersionEx tell the truth"
"$wine" "$exe" version --json > "$work/version.json"
"$python" - "$work/version.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["windows"]
print(f"   RtlGetVersion {v['version']}, GetVersionExW {v['reported_to_process']}")
assert v["major"] == 10, "wine prefix is not Windows 10"
assert v["reported_to_process"] == f"{v['major']}.{v['minor']}.{v['build']}", "GetVersionExW does not see Windows 10: manifest not in effect"
for b in v["backends"]:
    print(f"   {b['name']}: {b['unavailable'] or 'available'}")
    assert b["unavailable"], "wine has no container APIs; a backend reported available"
PY

step "Windows tests under wine"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine" WINLAYER_ARGV_ECHO="$work/argv-echo.exe"
cargo test -q --locked --tests --target "$target" -p win32 -p wincmdline "${lean[@]}" 2>&1 | grep -v '^$'
# block_cli: winlayer.exe's block CIM commands reach cimfs.dll, which wine lacks, and write nothing.
cargo test -q --locked --target "$target" -p winlayer --test cmdline_cli --test block_cli "${lean[@]}" 2>&1 | grep -v '^$'
cargo test -q --locked --target "$target" -p winlayer-snapshotter --test blockcim "${lean[@]}" 2>&1 | grep -v '^$'
step "done"
