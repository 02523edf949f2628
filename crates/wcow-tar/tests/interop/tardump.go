// Dumps a tar archive as JSON with Go's archive/tar (the reader containerd and hcsshim use):
// one object per entry, every PAX record.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strconv"
)

type entry struct {
	Name     string            `json:"name"`
	Typeflag string            `json:"typeflag"`
	Linkname string            `json:"linkname"`
	Size     int64             `json:"size"`
	Mtime    string            `json:"mtime"`
	Format   string            `json:"format"`
	Pax      map[string]string `json:"pax"`
	Sha256   string            `json:"sha256"`
}

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	r := tar.NewReader(f)
	out := []entry{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, r); err != nil {
			panic(err)
		}
		flag := string([]byte{h.Typeflag})
		if h.Typeflag == '\x00' {
			flag = "0"
		}
		pax := h.PAXRecords
		if pax == nil {
			pax = map[string]string{}
		}
		mtime := strconv.FormatInt(h.ModTime.Unix(), 10)
		if v, ok := pax["mtime"]; ok {
			mtime = v
		}
		out = append(out, entry{h.Name, flag, h.Linkname, h.Size, mtime, h.Format.String(), pax, hex.EncodeToString(sum.Sum(nil))})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
