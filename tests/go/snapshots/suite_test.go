// Package snapshots runs containerd 2.x's snapshotter conformance suite
// (github.com/containerd/containerd/v2/core/snapshots/testsuite) against `winlayer serve`:
//
//   - TestProxySnapshotter starts one `winlayer serve` per test and talks to it through
//     containerd's snapshots proxy client, dialled as containerd's proxy_plugins loader dials;
//   - TestThroughContainerd drives a containerd 2.x daemon whose proxy_plugins entry points at
//     `winlayer serve`, through containerd's client (metadata layer, proxy, winlayer).
//
// Built and run by scripts/suites/containerd2.sh.
package snapshots

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

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/dialer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func env(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (scripts/suites/containerd2.sh sets it)", name)
	}
	return v
}

// suiteName is the name the suite knows the snapshotter by. The suite leaves out what
// overlayfs cannot do (renaming a directory of a lower layer) for "overlayfs" only, and linux
// mode's mounts are containerd's overlay snapshotter's.
func suiteName(mode string) string {
	if mode == "linux" {
		return "overlayfs"
	}
	return "winlayer-" + mode
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

// dial connects to a proxy plugin with the options containerd 2.x's proxy_plugins loader
// uses (cmd/containerd/server: insecure, containerd's dialer, 16 MiB each way).
func dial(sock string) (*grpc.ClientConn, error) {
	return grpc.NewClient(dialer.DialAddress(sock),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer.ContextDialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize)),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)))
}

func TestProxySnapshotter(t *testing.T) {
	bin, mode := env(t, "WINLAYER_BIN"), env(t, "WINLAYER_MODE")
	testsuite.SnapshotterSuite(t, suiteName(mode), func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		cmd, sock, log, err := startServe(bin, mode, root)
		if err != nil {
			return nil, nil, err
		}
		conn, err := dial(sock)
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
	address, name, mode := env(t, "CONTAINERD_ADDRESS"), env(t, "CONTAINERD_SNAPSHOTTER"), env(t, "WINLAYER_MODE")
	testsuite.SnapshotterSuite(t, suiteName(mode), func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		c, err := client.New(address)
		if err != nil {
			return nil, nil, err
		}
		return maybeExtractionKeys(c.SnapshotService(name)), c.Close, nil
	})
}

// TestList prints the name of every snapshot the plugin at WINLAYER_SOCKET stores (its List,
// read as containerd reads it), one a line.
func TestList(t *testing.T) {
	sock := env(t, "WINLAYER_SOCKET")
	conn, err := dial(sock)
	if err != nil {
		t.Fatalf("dialing %s: %v", sock, err)
	}
	defer conn.Close()
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "winlayer")
	if err := sn.Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		fmt.Println(info.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
