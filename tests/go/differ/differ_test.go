// Package differ drives `winlayer serve`'s diff service with containerd's own Go clients: the
// diff proxy (core/diff/proxy) and snapshots proxy (core/snapshots/proxy) as containerd's
// daemon uses them, and containerd's local content store served by containerd's own content
// server (plugins/services/content/contentserver) as the content service winlayer reads
// blobs from and writes diffs to. Layers are checked with Go's archive/tar, digests with
// go-digest, the linux-mode view through containerd's mount package.
//
// Environment: WINLAYER (the winlayer binary), WINLAYER_BASE_LAYER and WINLAYER_APP_LAYER
// (gzip'd layer tars from scripts/gen-layer.py, base and app profiles); the test skips without
// them. Linux-mode mounts need root.
package differ

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	diffproxy "github.com/containerd/containerd/v2/core/diff/proxy"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	snapshotsproxy "github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/services/content/contentserver"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

type differ interface {
	diff.Applier
	diff.Comparer
}

// contentService serves a local store as containerd does, recording the namespaces it is asked in.
type contentService struct {
	store      content.Store
	address    string
	mu         sync.Mutex
	namespaces []string
}

// labels keeps content labels in memory (containerd keeps them in its metadata database).
type labels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (l *labels) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[d], nil
}

func (l *labels) Set(d digest.Digest, m map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = m
	return nil
}

func (l *labels) Update(d digest.Digest, m map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[d] == nil {
		l.m[d] = map[string]string{}
	}
	for k, v := range m {
		if v == "" {
			delete(l.m[d], k)
		} else {
			l.m[d][k] = v
		}
	}
	return l.m[d], nil
}

func startContent(t *testing.T, dir string) *contentService {
	store, err := local.NewLabeledStore(filepath.Join(dir, "content"), &labels{m: map[digest.Digest]map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	c := &contentService{store: store, address: filepath.Join(dir, "containerd.sock")}
	listener, err := net.Listen("unix", c.address)
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		c.mu.Lock()
		c.namespaces = append(c.namespaces, strings.Join(md.Get(namespaces.GRPCHeader), ","))
		c.mu.Unlock()
	}
	server := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		record(ss.Context())
		return h(srv, ss)
	}))
	contentapi.RegisterContentServer(server, contentserver.New(store))
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return c
}

// startWinlayer runs `winlayer serve` in mode and returns containerd's proxy clients for it.
func startWinlayer(t *testing.T, bin, mode, dir, contentAddress string) (snapshots.Snapshotter, differ) {
	sock := filepath.Join(dir, "winlayer.sock")
	cmd := exec.Command(bin, "serve", "--mode", mode, "--root", filepath.Join(dir, "root"), "--address", sock,
		"--containerd-address", contentAddress, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sn := snapshotsproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "winlayer")
	return sn, diffproxy.NewDiffApplier(diffapi.NewDiffClient(conn)).(differ)
}

// ingest stores a blob in the content store and returns its descriptor.
func ingest(t *testing.T, ctx context.Context, cs content.Store, blob []byte, mediaType string) ocispec.Descriptor {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(ctx, cs, "ingest-"+desc.Digest.Encoded(), bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

func gunzip(t *testing.T, blob []byte) []byte {
	r, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// layerEntries reads a layer tar with Go's archive/tar: regular files by name with their bytes, and
// the paths whiteouts delete.
func layerEntries(t *testing.T, layer []byte) (files map[string][]byte, deleted []string) {
	files = map[string][]byte{}
	r := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		dir, base := path.Split(h.Name)
		if strings.HasPrefix(base, ".wh.") && base != ".wh..wh..opq" {
			deleted = append(deleted, dir+strings.TrimPrefix(base, ".wh."))
		} else if h.Typeflag == tar.TypeReg && !strings.Contains(h.Name, ":") {
			data, _ := io.ReadAll(r)
			files[h.Name] = data
		}
	}
}

func env(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set (scripts/suites/differ.sh sets it)", name)
	}
	return v
}

func read(t *testing.T, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDiffService(t *testing.T) {
	bin := env(t, "WINLAYER")
	baseBlob, appBlob := read(t, env(t, "WINLAYER_BASE_LAYER")), read(t, env(t, "WINLAYER_APP_LAYER"))
	baseTar, appTar := gunzip(t, baseBlob), gunzip(t, appBlob)
	for _, mode := range []string{"cimfs", "linux"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "linux" && os.Geteuid() != 0 {
				t.Skip("linux mode mounts overlays: needs root")
			}
			dir, err := os.MkdirTemp("", "wlg")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			cs := startContent(t, dir)
			sn, differ := startWinlayer(t, bin, mode, dir, cs.address)
			ctx := namespaces.WithNamespace(context.Background(), "harness")
			baseDesc := ingest(t, ctx, cs.store, baseBlob, ocispec.MediaTypeImageLayerGzip)
			appDesc := ingest(t, ctx, cs.store, appBlob, ocispec.MediaTypeImageLayerGzip)

			// Apply both layers as containerd's unpacker does: extraction snapshot, Apply, Commit.
			apply := func(key, parent string, desc ocispec.Descriptor, want []byte) []mount.Mount {
				mounts, err := sn.Prepare(ctx, key, parent)
				if err != nil {
					t.Fatal(err)
				}
				applied, err := differ.Apply(ctx, desc, mounts)
				if err != nil {
					t.Fatalf("Apply %s: %v", key, err)
				}
				if applied.Digest != digest.FromBytes(want) || applied.Size != int64(len(want)) {
					t.Fatalf("Apply %s returned %s (%d bytes), the diffID is %s (%d bytes)", key, applied.Digest, applied.Size, digest.FromBytes(want), len(want))
				}
				if applied.MediaType != ocispec.MediaTypeImageLayer {
					t.Fatalf("Apply %s: media type %s", key, applied.MediaType)
				}
				return mounts
			}
			apply("extract-1 base", "", baseDesc, baseTar)
			if err := sn.Commit(ctx, "base", "extract-1 base"); err != nil {
				t.Fatal(err)
			}

			// Bad blobs first, on the app's extraction snapshot: each refused with its class,
			// the snapshot left empty.
			mounts, err := sn.Prepare(ctx, "extract-2 app", "base")
			if err != nil {
				t.Fatal(err)
			}
			target := mounts[0].Source
			if mode == "linux" {
				for _, o := range mounts[0].Options {
					if strings.HasPrefix(o, "upperdir=") {
						target = strings.TrimPrefix(o, "upperdir=")
					}
				}
			}
			empty := func(what string) {
				items, err := os.ReadDir(target)
				if err != nil || len(items) != 0 {
					t.Fatalf("%s: %s holds %d items after a failed Apply (%v)", what, target, len(items), err)
				}
			}
			unknown := appDesc
			unknown.MediaType = "application/vnd.example.not-a-layer"
			if _, err := differ.Apply(ctx, unknown, mounts); !errdefs.IsNotImplemented(err) {
				t.Fatalf("unknown media type: %v, want NotImplemented", err)
			}
			empty("unknown media type")
			short := appDesc
			short.Size++
			if _, err := differ.Apply(ctx, short, mounts); !errdefs.IsDataLoss(err) {
				t.Fatalf("size larger than the blob: %v, want DataLoss", err)
			}
			empty("short blob")
			corrupt := append([]byte(nil), appBlob...)
			corrupt[len(corrupt)/2] ^= 0xff
			corruptDesc := ingest(t, ctx, cs.store, corrupt, ocispec.MediaTypeImageLayerGzip)
			// The store's file for the corrupt blob now holds the app layer's bytes: a blob not
			// matching its digest, as a damaged content store would serve it.
			blobPath := filepath.Join(dir, "content", "blobs", "sha256", corruptDesc.Digest.Encoded())
			if err := os.WriteFile(blobPath, appBlob, 0o644); err != nil {
				t.Fatal(err)
			}
			corruptDesc.Size = int64(len(appBlob))
			if _, err := differ.Apply(ctx, corruptDesc, mounts); !errdefs.IsDataLoss(err) {
				t.Fatalf("blob not matching its digest: %v, want DataLoss", err)
			}
			empty("digest mismatch")

			if applied, err := differ.Apply(ctx, appDesc, mounts); err != nil || applied.Digest != digest.FromBytes(appTar) {
				t.Fatalf("Apply app after the refusals: %v, %v", applied, err)
			}
			if err := sn.Commit(ctx, "app", "extract-2 app"); err != nil {
				t.Fatal(err)
			}
			cs.mu.Lock()
			for _, ns := range cs.namespaces {
				if ns != "harness" {
					t.Fatalf("winlayer asked the content service in namespace %q, not the caller's", ns)
				}
			}
			cs.mu.Unlock()

			files, deleted := layerEntries(t, appTar)
			if len(files) == 0 || len(deleted) == 0 {
				t.Fatalf("the app layer has %d files and %d whiteouts; the test needs both", len(files), len(deleted))
			}
			if mode == "linux" {
				checkLinuxView(t, ctx, sn, files, deleted)
				return
			}

			// Compare the app layer against the base: a layer in the content store, labelled
			// with its uncompressed digest, holding the app layer's files and deletions.
			lower, err := sn.View(ctx, "v-base", "base")
			if err != nil {
				t.Fatal(err)
			}
			upper, err := sn.View(ctx, "v-app", "app")
			if err != nil {
				t.Fatal(err)
			}
			desc, err := differ.Compare(ctx, lower, upper, diff.WithMediaType(ocispec.MediaTypeImageLayerGzip), diff.WithReference("harness-diff"))
			if err != nil {
				t.Fatalf("Compare: %v", err)
			}
			info, err := cs.store.Info(ctx, desc.Digest)
			if err != nil {
				t.Fatalf("the diff is not in the content store: %v", err)
			}
			blob, err := content.ReadBlob(ctx, cs.store, desc)
			if err != nil {
				t.Fatal(err)
			}
			diffTar := gunzip(t, blob)
			if got := info.Labels["containerd.io/uncompressed"]; got != digest.FromBytes(diffTar).String() {
				t.Fatalf("containerd.io/uncompressed = %q, want %s", got, digest.FromBytes(diffTar))
			}
			gotFiles, gotDeleted := layerEntries(t, diffTar)
			for name, data := range files {
				if !bytes.Equal(gotFiles[name], data) {
					t.Fatalf("the diff lacks %s as the app layer has it", name)
				}
			}
			if strings.Join(gotDeleted, "\n") != strings.Join(deleted, "\n") {
				t.Fatalf("the diff deletes %v, the app layer %v", gotDeleted, deleted)
			}
			// And the diff applies back onto the base with the same diffID again.
			apply("extract-3 again", "base", ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, diffTar)
		})
	}
}

// checkLinuxView mounts the app snapshot's view with containerd's mount package and checks the
// app layer's files are there and what it deletes is gone.
func checkLinuxView(t *testing.T, ctx context.Context, sn snapshots.Snapshotter, files map[string][]byte, deleted []string) {
	mounts, err := sn.View(ctx, "v-app", "app")
	if err != nil {
		t.Fatal(err)
	}
	base, err := sn.View(ctx, "v-base", "base")
	if err != nil {
		t.Fatal(err)
	}
	target, baseTarget := t.TempDir(), t.TempDir()
	if err := mount.All(mounts, target); err != nil {
		t.Fatalf("mounting the view: %v", err)
	}
	defer mount.UnmountAll(target, 0)
	if err := mount.All(base, baseTarget); err != nil {
		t.Fatalf("mounting the base view: %v", err)
	}
	defer mount.UnmountAll(baseTarget, 0)
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(target, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s in the view: %v", name, err)
		}
	}
	for _, name := range deleted {
		if _, err := os.Lstat(filepath.Join(baseTarget, name)); err != nil {
			t.Fatalf("%s is not in the base view: the whiteout deletes nothing (%v)", name, err)
		}
		if _, err := os.Lstat(filepath.Join(target, name)); !os.IsNotExist(err) {
			t.Fatalf("%s is still in the view (%v)", name, err)
		}
	}
}
