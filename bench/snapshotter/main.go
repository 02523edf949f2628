// Command snapshotbench drives one snapshotter through a containerd daemon with containerd's
// own client and prints per-operation latencies as JSON: Prepare->Commit->Remove cycles, then
// N committed snapshots, Stat of each, and full Walks (`ctr snapshots ls`) over them.
// bench/snapshotter.sh runs it against winlayer (proxy plugin) and containerd's native
// snapshotter in the same daemon.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
)

type stats struct {
	Op          string  `json:"op"`
	Snapshotter string  `json:"snapshotter"`
	Count       int     `json:"count"`
	TotalMs     float64 `json:"total_ms"`
	P50Us       float64 `json:"p50_us"`
	P99Us       float64 `json:"p99_us"`
}

func summarize(op, name string, d []time.Duration) stats {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	var total time.Duration
	for _, x := range d {
		total += x
	}
	pct := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	return stats{op, name, len(d), float64(total.Microseconds()) / 1000, pct(0.50), pct(0.99)}
}

func timed(d *[]time.Duration, f func() error) {
	start := time.Now()
	if err := f(); err != nil {
		fmt.Fprintln(os.Stderr, "snapshotbench:", err)
		os.Exit(1)
	}
	*d = append(*d, time.Since(start))
}

func main() {
	address := flag.String("address", "", "containerd socket")
	name := flag.String("snapshotter", "", "snapshotter name")
	n := flag.Int("n", 10000, "committed snapshots for Stat and Walk")
	cycles := flag.Int("cycles", 2000, "Prepare->Commit->Remove cycles")
	walks := flag.Int("walks", 5, "full Walks over the n snapshots")
	flag.Parse()

	client, err := containerd.New(*address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), fmt.Sprintf("bench-%d", time.Now().UnixNano()))
	// A lease keeps everything made here from garbage collection, as the unpacker's lease
	// does. It is not released: containerd would then collect all N snapshots, in the
	// background, while the next snapshotter is measured (the daemon is thrown away after).
	ctx, _, err = client.WithLease(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sn := client.SnapshotService(*name)

	var prepare, commit, remove, stat, walk []time.Duration
	for i := 0; i < *cycles; i++ {
		key, committed := fmt.Sprintf("cycle-%d-active", i), fmt.Sprintf("cycle-%d", i)
		timed(&prepare, func() error { _, err := sn.Prepare(ctx, key, ""); return err })
		timed(&commit, func() error { return sn.Commit(ctx, committed, key) })
		timed(&remove, func() error { return sn.Remove(ctx, committed) })
	}
	var fill []time.Duration
	for i := 0; i < *n; i++ {
		key := fmt.Sprintf("layer-%d", i)
		timed(&fill, func() error {
			if _, err := sn.Prepare(ctx, key+"-active", ""); err != nil {
				return err
			}
			return sn.Commit(ctx, key, key+"-active")
		})
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < *n; i++ {
		key := fmt.Sprintf("layer-%d", rng.Intn(*n))
		timed(&stat, func() error {
			info, err := sn.Stat(ctx, key)
			if err == nil && info.Kind != snapshots.KindCommitted {
				err = fmt.Errorf("%s: kind %v", key, info.Kind)
			}
			return err
		})
	}
	for i := 0; i < *walks; i++ {
		timed(&walk, func() error {
			count := 0
			err := sn.Walk(ctx, func(context.Context, snapshots.Info) error { count++; return nil })
			if err == nil && count != *n {
				err = fmt.Errorf("walk saw %d snapshots, want %d", count, *n)
			}
			return err
		})
	}
	out := json.NewEncoder(os.Stdout)
	for _, s := range []stats{
		summarize("prepare", *name, prepare), summarize("commit", *name, commit), summarize("remove", *name, remove),
		summarize("prepare+commit (fill)", *name, fill), summarize("stat", *name, stat),
		summarize(fmt.Sprintf("walk %d", *n), *name, walk),
	} {
		out.Encode(s)
	}
}
