package conformance

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/containerd/filters"
	"github.com/containerd/containerd/snapshots"
)

// TestFilterOracle checks winlayer's filter parser against containerd's own (filters
// package): for every file of the fuzz corpus (WINLAYER_FILTER_CORPUS; one filter a line), the
// plugin's List over a fixed set of snapshots must return exactly the snapshots containerd's
// parser matches, and must refuse exactly the filters containerd refuses.
func TestFilterOracle(t *testing.T) {
	ctx, sn, done := dial(t)
	defer done()
	gcRoot := snapshots.WithLabels(map[string]string{"l": "1", "a.b": "v", "containerd.io/snapshot.ref": "sha256:ab"})
	mustDo := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := sn.Prepare(ctx, "p-active", "")
	mustDo(err)
	mustDo(sn.Commit(ctx, "p", "p-active", gcRoot))
	_, err = sn.Prepare(ctx, "n", "p", gcRoot)
	mustDo(err)
	_, err = sn.View(ctx, "v", "p")
	mustDo(err)
	all := walkAll(ctx, t, sn)

	files, err := filepath.Glob(filepath.Join(env(t, "WINLAYER_FILTER_CORPUS"), "*"))
	mustDo(err)
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		mustDo(err)
		fs := strings.Split(strings.ToValidUTF8(string(data), "\uFFFD"), "\n")
		want, parseErr := filters.ParseAll(fs...)
		var got []string
		err = sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { got = append(got, i.Name); return nil }, fs...)
		if parseErr != nil {
			if err == nil {
				t.Errorf("%s: containerd refuses %q (%v), winlayer accepts it", file, fs, parseErr)
			}
			checked++
			continue
		}
		if err != nil {
			t.Errorf("%s: containerd accepts %q, winlayer refuses it: %v", file, fs, err)
			continue
		}
		var expected []string
		for _, i := range all {
			if want.Match(adapt(i)) {
				expected = append(expected, i.Name)
			}
		}
		sort.Strings(got)
		sort.Strings(expected)
		if strings.Join(got, ",") != strings.Join(expected, ",") {
			t.Errorf("%s: filters %q: containerd matches %v, winlayer %v", file, fs, expected, got)
		}
		checked++
	}
	t.Logf("%d corpus files agree with containerd's filter parser", checked)
}
