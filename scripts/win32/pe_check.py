"""Checks winlayer.exe with pefile (an independent PE parser): the application manifest is an
RT_MANIFEST resource declaring Windows 10/11/Server support and long-path awareness, and the
binary imports none of the DLLs winlayer loads at run time (so it starts where they are missing).
"""
import sys
import xml.etree.ElementTree as ET

import pefile

RT_MANIFEST = 24
WIN10 = "{8e0f7a12-bfb3-4fe8-b9a5-48fd50a15a9a}"
RUNTIME_ONLY = {"cimfs.dll", "cimwriter.dll", "virtdisk.dll", "computestorage.dll", "vmcompute.dll", "offreg.dll"}
NS = {
    "asm1": "urn:schemas-microsoft-com:asm.v1",
    "compat": "urn:schemas-microsoft-com:compatibility.v1",
    "ws2016": "http://schemas.microsoft.com/SMI/2016/WindowsSettings",
}


def manifest(pe):
    for entry in pe.DIRECTORY_ENTRY_RESOURCE.entries:
        if entry.id == RT_MANIFEST:
            for name in entry.directory.entries:
                for lang in name.directory.entries:
                    data = lang.data.struct
                    return name.id, lang.id, pe.get_data(data.OffsetToData, data.Size)
    sys.exit("no RT_MANIFEST resource")


def main(path):
    pe = pefile.PE(path)
    res_id, lang, xml = manifest(pe)
    print(f"  RT_MANIFEST id {res_id}, language {lang}, {len(xml)} bytes")
    if res_id != 1:
        sys.exit(f"manifest resource id {res_id}, an .exe needs 1 (CREATEPROCESS_MANIFEST_RESOURCE_ID)")
    root = ET.fromstring(xml)
    ids = [e.get("Id") for e in root.iterfind(".//compat:supportedOS", NS)]
    print(f"  supportedOS: {ids}")
    if WIN10 not in ids:
        sys.exit(f"supportedOS lacks Windows 10/11/Server {WIN10}")
    long_paths = [e.text for e in root.iter() if e.tag.endswith("}longPathAware")]
    print(f"  longPathAware: {long_paths}")
    if long_paths != ["true"]:
        sys.exit("longPathAware is not true")
    imports = sorted({e.dll.decode().lower() for e in pe.DIRECTORY_ENTRY_IMPORT})
    print(f"  imports: {', '.join(imports)}")
    linked = RUNTIME_ONLY.intersection(imports)
    if linked:
        sys.exit(f"imports {sorted(linked)}, which winlayer must load at run time")


if __name__ == "__main__":
    main(sys.argv[1])
