// Package conformance runs containerd's own snapshotter conformance suite
// (github.com/containerd/containerd/snapshots/testsuite, from Debian's
// golang-github-containerd-containerd-dev) against `winlayer serve`, in two ways:
//
//   - TestProxySnapshotter starts one `winlayer serve` per test and talks to it through
//     containerd's snapshots proxy client, exactly as containerd's proxy_plugins loader does;
//   - TestThroughContainerd drives a running containerd daemon whose proxy_plugins entry points
//     at `winlayer serve`, through containerd's client (metadata layer, proxy, winlayer).
//
// Built in GOPATH mode (GO111MODULE=off) by scripts/suites/snapshotter.sh.
package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

func env(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (scripts/suites/snapshotter.sh sets it)", name)
	}
	return v
}

// startServe starts `winlayer serve` on a socket under dir and waits until it accepts.
func startServe(bin, mode, dir string) (*exec.Cmd, string, *bytes.Buffer, error) {
	sock := filepath.Join(dir, "winlayer.sock")
	log := &bytes.Buffer{}
	cmd := exec.Command(bin, "serve", "--mode", mode, "--root", filepath.Join(dir, "data"), "--address", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, "", log, err
	}
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			return cmd, sock, log, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, "", log, fmt.Errorf("winlayer serve did not create %s: %s", sock, log)
}

func TestProxySnapshotter(t *testing.T) {
	bin, mode := env(t, "WINLAYER_BIN"), env(t, "WINLAYER_MODE")
	testsuite.SnapshotterSuite(t, "winlayer-"+mode, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		cmd, sock, log, err := startServe(bin, mode, root)
		if err != nil {
			return nil, nil, err
		}
		dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := grpc.DialContext(dialCtx, dialer.DialAddress(sock), grpc.WithInsecure(),
			grpc.WithContextDialer(dialer.ContextDialer), grpc.WithBlock())
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, nil, fmt.Errorf("dialing %s: %w", sock, err)
		}
		sn := maybeExtractionKeys(proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "winlayer"))
		cleanup := func() error {
			conn.Close()
			// A clean shutdown is part of the contract: SIGTERM, exit status 0, socket gone.
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("winlayer serve did not stop cleanly: %v\n%s", err, log)
			}
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				return fmt.Errorf("socket %s left behind after shutdown", sock)
			}
			return nil
		}
		return sn, cleanup, nil
	})
}

func TestThroughContainerd(t *testing.T) {
	address, name := env(t, "CONTAINERD_ADDRESS"), env(t, "CONTAINERD_SNAPSHOTTER")
	testsuite.SnapshotterSuite(t, name, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		client, err := containerd.New(address)
		if err != nil {
			return nil, nil, err
		}
		return maybeExtractionKeys(client.SnapshotService(name)), client.Close, nil
	})
}
