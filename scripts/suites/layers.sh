#!/usr/bin/env bash
# End-to-end checks of `winlayer makebaselayer`, `import` and `export`: a plain Linux tree
# becomes a base layer tar, is imported as a CIM container layer, two non-base layers with
# differencing hives (made with `winlayer hive create --delta`), a whiteout and a cross-layer
# hard link go on top; the layer directories hold exactly what hcsshim's importer writes,
# hivex reads every hive (the merged ones included), export gives back each layer's canonical
# tar byte for byte, and refused input leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --locked -p winlayer
winlayer=$PWD/target/debug/winlayer
python=${WINLAYER_PYTHON:-python3}
for tool in hivexml hivexget tar; do
  command -v "$tool" >/dev/null || { echo "layers suite: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { echo "-- $*"; }
fail() { echo "layers suite: $*" >&2; exit 1; }
export SOURCE_DATE_EPOCH=1700000000

step "makebaselayer --from a plain Linux tree: the same tree gives the same bytes, a valid layer with five hives"
mkdir -p tree/app/bin
printf 'MZ tool' > tree/app/bin/tool.exe
ln tree/app/bin/tool.exe tree/app/alias.exe
head -c 5000 /dev/zero | tr '\0' r > tree/app/readme.txt
ln -s bin/tool.exe tree/app/current
"$winlayer" makebaselayer --from tree -o base.tar 2>/dev/null
"$winlayer" makebaselayer --from tree -o again.tar 2>/dev/null
cmp base.tar again.tar
"$winlayer" tar verify base.tar >/dev/null
mkdir gnu && tar -xf base.tar -C gnu --warning=no-unknown-keyword
for h in DEFAULT SAM SECURITY SOFTWARE SYSTEM; do hivexml "gnu/Files/Windows/System32/config/$h" >/dev/null; done

step "makebaselayer DIR: hives created where missing, kept where present, a link in the way refused with nothing written"
mkdir -p dir/Files/Windows/System32/config
printf 'own hive' > dir/Files/Windows/System32/config/SAM
"$winlayer" makebaselayer --json dir > made.json
"$python" -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['kept'] == ['Files/Windows/System32/config/SAM'] and len(r['created']) == 4, r" made.json
[ "$(cat dir/Files/Windows/System32/config/SAM)" = "own hive" ] || fail "an existing hive was replaced"
hivexml dir/Files/Windows/System32/config/SYSTEM >/dev/null
mkdir -p hostile/Files/Windows && ln -s /etc hostile/Files/Windows/System32
if "$winlayer" makebaselayer hostile 2>err.txt; then fail "a linked config path was accepted"; fi
grep -q "links are refused" err.txt || fail "unexpected message: $(cat err.txt)"
[ ! -e /etc/config ] && [ "$(find hostile | wc -l)" = 4 ] || fail "makebaselayer wrote despite refusing"

step "import the base layer: the layer directory holds exactly what hcsshim's importer writes"
mkdir cims layers
"$winlayer" import --format cim -i base.tar layers/base --cim cims/base.cim >/dev/null
(cd layers/base && find . -mindepth 1 | sort) > got.txt
cat > want.txt <<'EOF'
./Files
./Files/Windows
./Files/Windows/System32
./Files/Windows/System32/config
./Files/Windows/System32/config/DEFAULT
./Files/Windows/System32/config/SAM
./Files/Windows/System32/config/SECURITY
./Files/Windows/System32/config/SOFTWARE
./Files/Windows/System32/config/SYSTEM
./Hives
./Hives/DEFAULTUSER_BASE
./Hives/SAM_BASE
./Hives/SECURITY_BASE
./Hives/SOFTWARE_BASE
./Hives/SYSTEM_BASE
./layout
EOF
diff want.txt got.txt
[ "$(stat -c %i layers/base/Hives/DEFAULTUSER_BASE)" = "$(stat -c %i layers/base/Files/Windows/System32/config/DEFAULT)" ] ||
  fail "Hives/DEFAULTUSER_BASE is not a hard link to config/DEFAULT"
[ "$(cat layers/base/layout)" = "vhd-with-hives" ] || fail "layout"
"$winlayer" cim ls --json cims/base.cim Hives > hives.json
"$winlayer" cim ls --json cims/base.cim Files/Windows/System32/config > config.json
"$python" - hives.json config.json <<'EOF'
import json, sys
hives, config = (json.load(open(f)) for f in sys.argv[1:])
names = sorted(e["path"].split("\\")[-1] for e in hives)
assert names == ["DEFAULTUSER_BASE", "SAM_BASE", "SECURITY_BASE", "SOFTWARE_BASE", "SYSTEM_BASE"], names
assert sorted(e["id"] for e in hives) == sorted(e["id"] for e in config), "Hives/*_BASE are not the config hives in the CIM"
EOF
"$winlayer" cim cat cims/base.cim layout | cmp - layers/base/layout

step "export of the base layer equals tar normalize of its input, byte for byte"
"$winlayer" export layers/base --cim cims/base.cim -o base.out.tar 2>/dev/null
"$winlayer" tar normalize base.tar -o base.canonical.tar 2>/dev/null
cmp base.out.tar base.canonical.tar

step "layer 2: differencing hives, a new file, a whiteout, a cross-layer hard link"
cat > system2.json <<'EOF'
{"root": "ROOT", "keys": [{"path": "\\ControlSet001\\Services\\App", "values": [{"name": "Start", "type": "REG_DWORD", "data": 2}]}]}
EOF
cat > user2.json <<'EOF'
{"root": "ROOT", "keys": [{"path": "\\Software\\App", "values": [{"name": "Theme", "type": "REG_SZ", "data": "dark"}]}]}
EOF
"$winlayer" hive create --delta --from system2.json system2.hive
"$winlayer" hive create --delta --from user2.json user2.hive
# A layer tar as Windows exports one, written with Python's tarfile; the hard link copies its
# target's records from the base layer, as Windows' exporter does.
"$python" - base.tar app.tar <<'EOF'
import io, sys, tarfile
base = tarfile.open(sys.argv[1])
target = base.getmember("Files/app/alias.exe")
out = tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
def entry(name, kind, data=b"", attrs=0x20, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.linkname, ti.mtime = kind, len(data), link, 1700000100
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.pax_headers = {"MSWINDOWS.fileattr": str(attrs), "MSWINDOWS.rawsd": target.pax_headers["MSWINDOWS.rawsd"],
                      "LIBARCHIVE.creationtime": "1700000100", "atime": "1700000100", "ctime": "1700000100"}
    out.addfile(ti, io.BytesIO(data))
entry("Files", tarfile.DIRTYPE, attrs=0x10)
entry("Files/app", tarfile.DIRTYPE, attrs=0x10)
out.addfile(tarfile.TarInfo("Files/app/.wh.readme.txt"))
entry("Files/app/settings.ini", tarfile.REGTYPE, b"[app]\r\n")
link = tarfile.TarInfo("Files/app/tool2.exe")
link.type, link.linkname, link.mtime, link.mode = tarfile.LNKTYPE, target.name, target.mtime, 0o644
link.pax_headers = {k: v for k, v in target.pax_headers.items() if k != "MSWINDOWS.rawsd"}
out.addfile(link)
entry("Hives", tarfile.DIRTYPE, attrs=0x10)
entry("Hives/DefaultUser_Delta", tarfile.REGTYPE, open("user2.hive", "rb").read())
entry("Hives/System_Delta", tarfile.REGTYPE, open("system2.hive", "rb").read())
out.close()
EOF
"$winlayer" import -i app.tar layers/app --cim cims/app.cim --layer layers/base --parent-cim cims/base.cim >/dev/null 2>&1
(cd layers/app && find . -mindepth 1 | sort | tr '\n' ' ') > got.txt
[ "$(cat got.txt)" = "./Hives ./Hives/DEFAULTUSER_BASE ./Hives/DefaultUser_Delta ./Hives/SYSTEM_BASE ./Hives/System_Delta " ] ||
  fail "layer 2 directory: $(cat got.txt)"
[ "$(hivexget layers/app/Hives/SYSTEM_BASE '\ControlSet001\Services\App' Start)" = 2 ] || fail "merged SYSTEM_BASE"
[ "$(hivexget layers/app/Hives/DEFAULTUSER_BASE '\Software\App' Theme)" = dark ] || fail "merged DEFAULTUSER_BASE"
"$winlayer" export layers/app --cim cims/app.cim -o app.out.tar 2>/dev/null
"$winlayer" tar normalize app.tar -o app.canonical.tar 2>/dev/null
cmp app.out.tar app.canonical.tar

step "layer 3: a SOFTWARE delta over a parent without SOFTWARE_BASE merges onto the base layer's"
cat > software3.json <<'EOF'
{"root": "ROOT", "keys": [{"path": "\\Vendor\\Product", "values": [{"name": "Version", "type": "REG_SZ", "data": "3.0"}]}]}
EOF
mkdir -p l3/Files/app l3/Hives && printf three > l3/Files/app/v3.txt
"$winlayer" hive create --delta --from software3.json l3/Hives/Software_Delta
"$winlayer" tar from-dir l3 -o l3.tar
"$winlayer" import -i l3.tar layers/l3 --cim cims/l3.cim --layer layers/app --parent-cim cims/app.cim \
  --layer layers/base --parent-cim cims/base.cim >/dev/null
[ "$(hivexget layers/l3/Hives/SOFTWARE_BASE '\Vendor\Product' Version)" = 3.0 ] || fail "merged SOFTWARE_BASE"
for h in layers/*/Hives/* layers/base/Files/Windows/System32/config/*; do hivexml "$h" >/dev/null || fail "hivexml on $h"; done
"$winlayer" export layers/l3 --cim cims/l3.cim -o l3.out.tar 2>/dev/null
"$winlayer" tar normalize l3.tar -o l3.canonical.tar 2>/dev/null
cmp l3.out.tar l3.canonical.tar

step "refused imports leave nothing behind"
before=$(find cims layers | sort)
if "$winlayer" import -i app.tar layers/app --cim cims/again.cim --layer layers/base --parent-cim cims/base.cim 2>err.txt; then
  fail "an existing layer directory was accepted"
fi
grep -q "exists; a layer is imported into a new or empty directory" err.txt || fail "unexpected message: $(cat err.txt)"
if "$winlayer" import -i app.tar layers/new --cim cims/new.cim 2>err.txt; then fail "a base layer with whiteouts was accepted"; fi
grep -q "a base layer" err.txt || fail "unexpected message: $(cat err.txt)"
if "$winlayer" import -i l3.tar layers/new --cim cims/new.cim --layer layers/base --parent-cim cims/app.cim 2>err.txt; then
  fail "mismatched parents were accepted"
fi
[ "$(find cims layers | sort)" = "$before" ] || fail "a refused import left files behind"
echo "layers suite: all checks passed"
