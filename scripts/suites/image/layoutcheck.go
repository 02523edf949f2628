// Reads one image of an OCI image layout with Go's standard library only (archive/tar,
// compress/gzip, encoding/json: what containerd's and hcsshim's readers build on) and checks
// it: every blob's digest and size, each layer's diff_id against its uncompressed tar, and
// every tar entry readable. Prints one JSON line per layer: entries, entries with
// MSWINDOWS.rawsd and MSWINDOWS.fileattr, and the names below Hives/.
//
// usage: go run layoutcheck.go LAYOUT
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	URLs      []string `json:"urls"`
}

func blobPath(layout, digest string) string {
	alg, hexpart, _ := strings.Cut(digest, ":")
	return filepath.Join(layout, "blobs", alg, hexpart)
}

func readBlob(layout string, d descriptor) []byte {
	b, err := os.ReadFile(blobPath(layout, d.Digest))
	must(err)
	check(b, d)
	return b
}

func check(b []byte, d descriptor) {
	sum := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(sum[:]) != d.Digest || int64(len(b)) != d.Size {
		fail("blob %s: digest or size mismatch", d.Digest)
	}
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "layoutcheck: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	layout := os.Args[1]
	var index struct{ Manifests []descriptor }
	raw, err := os.ReadFile(filepath.Join(layout, "index.json"))
	must(err)
	must(json.Unmarshal(raw, &index))
	if len(index.Manifests) != 1 {
		fail("want one image in index.json, found %d", len(index.Manifests))
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	must(json.Unmarshal(readBlob(layout, index.Manifests[0]), &manifest))
	var config struct {
		OS     string `json:"os"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	must(json.Unmarshal(readBlob(layout, manifest.Config), &config))
	if config.OS != "windows" || len(config.RootFS.DiffIDs) != len(manifest.Layers) {
		fail("config: os %q, %d diff_ids for %d layers", config.OS, len(config.RootFS.DiffIDs), len(manifest.Layers))
	}
	for i, l := range manifest.Layers {
		if strings.Contains(l.MediaType, "foreign") || strings.Contains(l.MediaType, "nondistributable") {
			fmt.Printf("{\"layer\":%d,\"foreign\":true}\n", i)
			continue
		}
		f, err := os.Open(blobPath(layout, l.Digest))
		must(err)
		blobSum := sha256.New()
		zr, err := gzip.NewReader(io.TeeReader(f, blobSum))
		must(err)
		tarSum := sha256.New()
		tr := tar.NewReader(io.TeeReader(zr, tarSum))
		entries, rawsd, attrs := 0, 0, 0
		hives := []string{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(err)
			_, err = io.Copy(io.Discard, tr)
			must(err)
			entries++
			if _, ok := h.PAXRecords["MSWINDOWS.rawsd"]; ok {
				rawsd++
			}
			if _, ok := h.PAXRecords["MSWINDOWS.fileattr"]; ok {
				attrs++
			}
			if strings.HasPrefix(h.Name, "Hives/") {
				hives = append(hives, strings.TrimPrefix(h.Name, "Hives/"))
			}
		}
		_, err = io.Copy(io.Discard, zr)
		must(err)
		_, err = io.Copy(io.Discard, f)
		must(err)
		if got := "sha256:" + hex.EncodeToString(blobSum.Sum(nil)); got != l.Digest {
			fail("layer %d: blob digest %s, manifest says %s", i, got, l.Digest)
		}
		if got := "sha256:" + hex.EncodeToString(tarSum.Sum(nil)); got != config.RootFS.DiffIDs[i] {
			fail("layer %d: diff_id %s, config says %s", i, got, config.RootFS.DiffIDs[i])
		}
		line, _ := json.Marshal(map[string]any{"layer": i, "entries": entries, "rawsd": rawsd, "fileattr": attrs, "hives": hives})
		fmt.Println(string(line))
	}
}
