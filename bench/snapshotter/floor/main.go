// Command floor is the cheapest proxy snapshotter there can be: every snapshot a map entry,
// no disk, no checks beyond what the API needs, served with containerd's own snapshot service
// (contrib/snapshotservice) and grpc-go. bench/snapshotter.sh runs it beside winlayer in the
// same daemon, so what containerd's proxy path itself costs (its metadata layer, the gRPC hop,
// a Stat per snapshot in every Walk) is measured, apart from any snapshotter's own work.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/snapshots"
	"google.golang.org/grpc"
)

type memory struct {
	mu    sync.Mutex
	infos map[string]snapshots.Info
}

func (m *memory) Stat(_ context.Context, key string) (snapshots.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, ok := m.infos[key]
	if !ok {
		return snapshots.Info{}, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return info, nil
}

func (m *memory) Update(_ context.Context, info snapshots.Info, _ ...string) (snapshots.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.infos[info.Name]
	if !ok {
		return snapshots.Info{}, fmt.Errorf("snapshot %s: %w", info.Name, errdefs.ErrNotFound)
	}
	old.Labels = info.Labels
	m.infos[info.Name] = old
	return old, nil
}

func (m *memory) Usage(context.Context, string) (snapshots.Usage, error) { return snapshots.Usage{}, nil }

func (m *memory) Mounts(_ context.Context, key string) ([]mount.Mount, error) {
	return []mount.Mount{{Type: "bind", Source: "/nonexistent/" + key, Options: []string{"rbind"}}}, nil
}

func (m *memory) add(key, parent string, kind snapshots.Kind, opts []snapshots.Opt) ([]mount.Mount, error) {
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.infos[key]; ok {
		return nil, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrAlreadyExists)
	}
	now := time.Now()
	m.infos[key] = snapshots.Info{Kind: kind, Name: key, Parent: parent, Labels: info.Labels, Created: now, Updated: now}
	return m.Mounts(context.Background(), key)
}

func (m *memory) Prepare(_ context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return m.add(key, parent, snapshots.KindActive, opts)
}

func (m *memory) View(_ context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return m.add(key, parent, snapshots.KindView, opts)
}

func (m *memory) Commit(_ context.Context, name, key string, opts ...snapshots.Opt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, ok := m.infos[key]
	if !ok || info.Kind != snapshots.KindActive {
		return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	if _, ok := m.infos[name]; ok {
		return fmt.Errorf("snapshot %s: %w", name, errdefs.ErrAlreadyExists)
	}
	delete(m.infos, key)
	info.Name, info.Kind = name, snapshots.KindCommitted
	m.infos[name] = info
	return nil
}

func (m *memory) Remove(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.infos[key]; !ok {
		return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	delete(m.infos, key)
	return nil
}

func (m *memory) Walk(_ context.Context, fn snapshots.WalkFunc, _ ...string) error {
	m.mu.Lock()
	infos := make([]snapshots.Info, 0, len(m.infos))
	for _, info := range m.infos {
		infos = append(infos, info)
	}
	m.mu.Unlock()
	for _, info := range infos {
		if err := fn(context.Background(), info); err != nil {
			return err
		}
	}
	return nil
}

func (m *memory) Close() error { return nil }

func main() {
	address := flag.String("address", "", "socket to serve on")
	flag.Parse()
	listener, err := net.Listen("unix", *address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(&memory{infos: map[string]snapshots.Info{}}))
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
