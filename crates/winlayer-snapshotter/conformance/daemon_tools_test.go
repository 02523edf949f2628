package conformance

// Helpers scripts/suites/snapshotter.sh runs against one `winlayer serve` socket
// (WINLAYER_SOCKET), outside containerd: a dump of what the plugin itself stores, a churn of
// Prepare/Commit/Remove to kill the daemon in the middle of, and a consistency check after a
// restart.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"google.golang.org/grpc"
)

func dial(t *testing.T) (context.Context, snapshots.Snapshotter, func()) {
	sock := env(t, "WINLAYER_SOCKET")
	ctx := namespaces.WithNamespace(context.Background(), "default")
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dialCtx, dialer.DialAddress(sock), grpc.WithInsecure(),
		grpc.WithContextDialer(dialer.ContextDialer), grpc.WithBlock())
	if err != nil {
		t.Fatalf("dialing %s: %v", sock, err)
	}
	return ctx, proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "winlayer"), func() { conn.Close() }
}

// walkAll lists every snapshot (the plugin's List).
func walkAll(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, filters ...string) []snapshots.Info {
	var infos []snapshots.Info
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		infos = append(infos, info)
		return nil
	}, filters...); err != nil {
		t.Fatal(err)
	}
	return infos
}

// TestDump prints every snapshot the plugin stores (its List), one JSON object per line,
// with its usage and, for active and view snapshots, its mounts.
func TestDump(t *testing.T) {
	ctx, sn, done := dial(t)
	defer done()
	infos := walkAll(ctx, t, sn)
	for _, info := range infos {
		usage, err := sn.Usage(ctx, info.Name)
		if err != nil {
			t.Fatalf("usage %q: %v", info.Name, err)
		}
		var mounts []mount.Mount
		if info.Kind != snapshots.KindCommitted {
			if mounts, err = sn.Mounts(ctx, info.Name); err != nil {
				t.Fatalf("mounts %q: %v", info.Name, err)
			}
		}
		line, _ := json.Marshal(map[string]interface{}{
			"name": info.Name, "parent": info.Parent, "kind": info.Kind.String(), "labels": info.Labels,
			"size": usage.Size, "inodes": usage.Inodes, "mounts": mounts,
		})
		fmt.Println(string(line))
	}
}

// TestCleanup calls the plugin's Cleanup.
func TestCleanup(t *testing.T) {
	ctx, sn, done := dial(t)
	defer done()
	if err := sn.(snapshots.Cleaner).Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
}

// upper is the directory a linux-mode active snapshot's writes land in.
func upper(mounts []mount.Mount) string {
	for _, o := range mounts[0].Options {
		if strings.HasPrefix(o, "upperdir=") {
			return strings.TrimPrefix(o, "upperdir=")
		}
	}
	return mounts[0].Source
}

// TestChurn runs Prepare (writing a file into the new layer), Commit and Remove from several
// clients until the daemon goes away (the script kills it), for 20 seconds at most.
func TestChurn(t *testing.T) {
	ctx, sn, done := dial(t)
	defer done()
	deadline := time.Now().Add(20 * time.Second)
	run := time.Now().UnixNano() // keys differ from one run (one kill) to the next
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			var committed []string
			for i := 0; time.Now().Before(deadline); i++ {
				parent := ""
				if len(committed) > 0 && rng.Intn(2) == 0 {
					parent = committed[rng.Intn(len(committed))]
				}
				key := fmt.Sprintf("churn-%d-%d-%d", run, w, i)
				mounts, err := sn.Prepare(ctx, key, parent)
				if err != nil {
					return // the daemon is gone
				}
				os.WriteFile(upper(mounts)+"/file", []byte(strings.Repeat(key, 1000)), 0o644)
				name := key + "-committed"
				if err := sn.Commit(ctx, name, key); err != nil {
					return
				}
				committed = append(committed, name)
				if len(committed) > 4 {
					victim := committed[0]
					// Children make this fail with FailedPrecondition; that is fine.
					if err := sn.Remove(ctx, victim); err == nil {
						committed = committed[1:]
					}
				}
			}
		}(w)
	}
	wg.Wait()
}

// TestConsistent checks, after a restart, that every snapshot the plugin lists is whole: a
// committed one can be viewed and its view shows the file written before commit; an active
// one's directories exist; the on-disk directories are exactly the live snapshots' after
// Cleanup (WINLAYER_SNAPSHOTS_DIR).
func TestConsistent(t *testing.T) {
	ctx, sn, done := dial(t)
	defer done()
	infos := walkAll(ctx, t, sn)
	for _, info := range infos {
		if info.Parent != "" {
			if p, err := sn.Stat(ctx, info.Parent); err != nil || p.Kind != snapshots.KindCommitted {
				t.Errorf("%q: parent %q: %v %v", info.Name, info.Parent, p.Kind, err)
			}
		}
		switch info.Kind {
		case snapshots.KindCommitted:
			view := "check-" + info.Name
			mounts, err := sn.View(ctx, view, info.Name)
			if err != nil {
				t.Errorf("view of %q: %v", info.Name, err)
				continue
			}
			if err := mount.WithTempMount(ctx, mounts, func(root string) error {
				_, err := os.Stat(root + "/file")
				return err
			}); err != nil {
				t.Errorf("committed %q lost its content: %v", info.Name, err)
			}
			if err := sn.Remove(ctx, view); err != nil {
				t.Errorf("removing view %q: %v", view, err)
			}
		case snapshots.KindActive:
			mounts, err := sn.Mounts(ctx, info.Name)
			if err != nil {
				t.Errorf("mounts of %q: %v", info.Name, err)
			} else if _, err := os.Stat(upper(mounts)); err != nil {
				t.Errorf("active %q lost its directory: %v", info.Name, err)
			}
		}
	}
	if err := sn.(snapshots.Cleaner).Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(env(t, "WINLAYER_SNAPSHOTS_DIR"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "new-") || strings.HasPrefix(e.Name(), "rm-") {
			t.Errorf("orphan %s left after Cleanup", e.Name())
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != len(infos) {
		t.Errorf("%d directories %v for %d snapshots", len(names), names, len(infos))
	}
	fmt.Printf("consistent: %d snapshots, %d directories\n", len(infos), len(names))
}
