package rebalance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/planstore"
)

// view is a real live view of hosts a, b, c (c disabled when disabledC)
// holding the given instances (uuid → host), each 2 vCPUs, 2048 MB.
func view(t *testing.T, at map[string]string, disabledC bool, mem map[string]int64) *hostview.View {
	t.Helper()
	v := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for _, n := range []string{"a", "b", "c"} {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: n, Nodename: n, State: "up", Disabled: n == "c" && disabledC,
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 100, DiskRatio: 1}})
	}
	for id, h := range at {
		m := int64(2048)
		if mem[id] != 0 {
			m = mem[id]
		}
		inv.Instances = append(inv.Instances, hostview.Instance{UUID: id, Name: id, Host: h, Node: h, State: "active",
			PowerState: "running", Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: m, RootGB: 10}})
	}
	v.Reconcile(inv)
	return v
}

// TestStale: each way a plan goes out of date is found, with the step or
// host it concerns; a plan that still holds finds nothing.
func TestStale(t *testing.T) {
	// The plan: wave 0 moves x a → c, wave 1 moves y a → b; it frees a.
	plan := &planstore.Plan{ID: "p1", HostsFreed: []string{"a"}, Steps: []planstore.Step{
		{Wave: 0, InstanceID: "x", From: "a", To: "c", MemoryMB: 2048},
		{Wave: 1, InstanceID: "y", From: "a", To: "b", MemoryMB: 2048},
	}}
	cases := []struct {
		name      string
		at        map[string]string
		disabledC bool
		mem       map[string]int64
		from      int
		want      []string // substrings, one per problem, in order
	}{
		{"holds", map[string]string{"x": "a", "y": "a", "z": "b"}, false, nil, 0, nil},
		{"deleted", map[string]string{"x": "a", "z": "b"}, false, nil, 0, []string{"step 2: y is gone"}},
		{"moved", map[string]string{"x": "a", "y": "c"}, false, nil, 0, []string{"step 2: y is on c, not on a"}},
		{"resized", map[string]string{"x": "a", "y": "a"}, false, map[string]int64{"x": 4096}, 0,
			[]string{"step 1: x was resized (4096 MB, planned 2048 MB)"}},
		{"destination disabled", map[string]string{"x": "a", "y": "a"}, true, nil, 0, []string{"step 1: destination c is disabled"}},
		// After wave 0 only the second step is checked: c being disabled no longer
		// matters, x already left (the view may lag: still on a is fine).
		{"disabled, wave 1", map[string]string{"x": "a", "y": "a"}, true, nil, 1, nil},
		{"boot on freed host", map[string]string{"x": "a", "y": "a", "new": "a"}, false, nil, 0,
			[]string{"host a to be freed now holds new"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewExecutor(Config{Live: view(t, c.at, c.disabledC, c.mem)})
			got := e.stale(plan, c.from)
			if len(got) != len(c.want) {
				t.Fatalf("stale = %q, want %d problems like %q", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to say %q", i, got[i], w)
				}
			}
		})
	}
}

// TestWavesOf: steps stored wave by wave group in order.
func TestWavesOf(t *testing.T) {
	steps := []planstore.Step{{Wave: 0}, {Wave: 0}, {Wave: 1}, {Wave: 2}, {Wave: 2}}
	got := wavesOf(steps)
	want := [][]int{{0, 1}, {2}, {3, 4}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("wavesOf = %v, want %v", got, want)
	}
}
