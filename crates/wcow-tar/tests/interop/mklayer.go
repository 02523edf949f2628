// Writes a Windows layer tar the way hcsshim's exporter does (Go's archive/tar in PAX format,
// go-winio's records), so the test suite can check that winlayer reads Go-written layers.
package main

import (
	"archive/tar"
	"encoding/base64"
	"os"
	"strings"
	"time"
)

// ko's BUILTIN\Users owner/group descriptor.
const usersSD = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA=="

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	w := tar.NewWriter(f)
	base := time.Unix(1600000000, 123456700)
	add := func(h *tar.Header, data string) {
		h.Format = tar.FormatPAX
		h.ModTime = base
		h.AccessTime = base.Add(time.Second)
		h.ChangeTime = base.Add(2 * time.Second)
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["LIBARCHIVE.creationtime"] = "1500000000.5"
		h.Size = int64(len(data))
		if err := w.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := w.Write([]byte(data)); err != nil {
			panic(err)
		}
	}
	dir := func(name string) {
		add(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 040000, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "16", "MSWINDOWS.rawsd": usersSD}}, "")
	}
	dir("Files")
	dir("Files/Windows")
	add(&tar.Header{Name: "Files/Windows/app.exe", Typeflag: tar.TypeReg, Mode: 0100000, PAXRecords: map[string]string{
		"MSWINDOWS.fileattr": "33", "MSWINDOWS.rawsd": usersSD,
		"MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE": base64.StdEncoding.EncodeToString([]byte{1, 2, 3}),
	}}, "MZ program")
	// An alternate data stream: a plain entry named owner:stream right after its owner.
	if err := w.WriteHeader(&tar.Header{Name: "Files/Windows/app.exe:Zone.Identifier", Typeflag: tar.TypeReg, Mode: 0100000, Size: 9, ModTime: base, Format: tar.FormatPAX}); err != nil {
		panic(err)
	}
	w.Write([]byte("ZoneId=3\n"))
	add(&tar.Header{Name: "Files/Windows/second-name.exe", Typeflag: tar.TypeLink, Linkname: "Files/Windows/app.exe", Mode: 0644, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "33"}}, "")
	add(&tar.Header{Name: "Files/Windows/link", Typeflag: tar.TypeSymlink, Linkname: "C:\\Windows\\app.exe", Mode: 0120000, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "1056"}}, "")
	add(&tar.Header{Name: "Files/Users", Typeflag: tar.TypeSymlink, Linkname: "C:\\ProgramData", Mode: 0160000, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "1040", "MSWINDOWS.mountpoint": "1"}}, "")
	long := "Files/Windows/" + strings.Repeat("long-directory-name-", 6)
	dir(long)
	add(&tar.Header{Name: long + "/ünïcödé файл.txt", Typeflag: tar.TypeReg, Mode: 0100000, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "32"}}, "text")
	dir("Hives")
	add(&tar.Header{Name: "Hives/Software_Delta", Typeflag: tar.TypeReg, Mode: 0100000, PAXRecords: map[string]string{"MSWINDOWS.fileattr": "32"}}, "regf...")
	// Whiteouts: plain USTAR headers, no PAX, time 0.
	if err := w.WriteHeader(&tar.Header{Name: "Files/Windows/.wh.removed.dll", Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	f.Close()
}
