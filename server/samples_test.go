package server

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
)

func TestModelMaxWatts(t *testing.T) {
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		host hostview.Host
		want float64
		ok   bool
	}{
		// testKB: h-old is "old", whose curve tops at 200 W at 100 %.
		{"KB host", hostview.Host{Name: "h-old"}, 200, true},
		{"KB host by node name", hostview.Host{Name: "x", Nodename: "h-arm"}, 70, true},
		// Not in the KB, sized by Placement: the x86_64 default per thread
		// is the mean of "old" (its only x86_64 architecture) per thread:
		// 200 W / 10 threads = 20 W, times 4 vCPUs = 80 W.
		{"Placement-sized default", hostview.Host{Name: "n1", ISA: "x86_64", Capacity: hostview.Capacity{VCPUs: 4, MemoryMB: 1024}}, 80, true},
		// Neither the KB nor Placement sizes it: no bound.
		{"unsized", hostview.Host{Name: "n2"}, 0, false},
	} {
		got, ok := srv.ModelMaxWatts(context.Background(), &c.host)
		if ok != c.ok || !near(got, c.want) {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
