package rebalance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
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
		check     []int        // the steps still to start
		running   map[int]bool // the steps in flight
		want      []string     // substrings, one per problem, in order
	}{
		{"holds", map[string]string{"x": "a", "y": "a", "z": "b"}, false, nil, []int{0, 1}, nil, nil},
		{"deleted", map[string]string{"x": "a", "z": "b"}, false, nil, []int{0, 1}, nil, []string{"step 2: y is gone"}},
		{"moved", map[string]string{"x": "a", "y": "c"}, false, nil, []int{0, 1}, nil, []string{"step 2: y is on c, not on a"}},
		{"resized", map[string]string{"x": "a", "y": "a"}, false, map[string]int64{"x": 4096}, []int{0, 1}, nil,
			[]string{"step 1: x was resized (4096 MB, planned 2048 MB)"}},
		{"destination disabled", map[string]string{"x": "a", "y": "a"}, true, nil, []int{0, 1}, nil, []string{"step 1: destination c is disabled"}},
		// Once the first step ended only the second is checked: c being disabled no longer
		// matters, x already left (the view may lag: still on a is fine).
		{"disabled, first step ended", map[string]string{"x": "a", "y": "a"}, true, nil, []int{1}, nil, nil},
		{"boot on freed host", map[string]string{"x": "a", "y": "a", "new": "a"}, false, nil, []int{0, 1}, nil,
			[]string{"host a to be freed now holds new"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewExecutor(Config{Live: view(t, c.at, c.disabledC, c.mem)})
			got := e.stale(plan, c.check, c.running)
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

// TestStaleInFlight: an instance whose first move is in flight is not
// checked against its second move's source: the view still shows it
// where it leaves.
func TestStaleInFlight(t *testing.T) {
	plan := &planstore.Plan{ID: "p2", Steps: []planstore.Step{
		{Wave: 0, InstanceID: "x", From: "a", To: "b", MemoryMB: 2048},
		{Wave: 1, InstanceID: "x", From: "b", To: "c", MemoryMB: 2048},
	}}
	e := NewExecutor(Config{Live: view(t, map[string]string{"x": "a"}, false, nil)})
	if got := e.stale(plan, []int{1}, map[int]bool{0: true}); len(got) != 0 {
		t.Errorf("first move in flight: stale = %q, want nothing", got)
	}
	if got := e.stale(plan, []int{1}, nil); len(got) != 1 || !strings.Contains(got[0], "step 2: x is on a, not on b") {
		t.Errorf("first move ended, x still on a: stale = %q, want step 2 out of date", got)
	}
}

// TestStartable: the steps that may start are those the gate lets start,
// in plan order, as many as the limit leaves room for, and the gate counts
// them as started.
func TestStartable(t *testing.T) {
	// Four moves on disjoint pairs of hosts, one wave each (a plan made
	// with MaxParallel 1), then one back out of b to a, and one more to d;
	// one migration per host.
	steps := []planstore.Step{{Wave: 0, From: "a", To: "b", InstanceID: "i0"}, {Wave: 1, From: "c", To: "d", InstanceID: "i1"},
		{Wave: 2, From: "e", To: "f", InstanceID: "i2"}, {Wave: 3, From: "g", To: "h", InstanceID: "i3"},
		{Wave: 4, From: "b", To: "a", InstanceID: "i4"}, {Wave: 5, From: "x", To: "d", InstanceID: "i5"}}
	newGate := func() *optimizer.Gate[string, string] {
		return optimizer.NewGate(len(steps), 1, func(i int) optimizer.GateMove[string, string] {
			return optimizer.GateMove[string, string]{From: steps[i].From, To: steps[i].To, Wave: steps[i].Wave, Instance: steps[i].InstanceID}
		})
	}
	all := []int{0, 1, 2, 3, 4, 5}
	for _, c := range []struct {
		pending         []int
		inFlight, limit int
		want            []int
	}{
		{all, 0, 1, []int{0}},          // the limit: one at a time
		{all[1:], 1, 1, nil},           // one in flight: none more
		{all, 0, 8, []int{0, 1, 2, 3}}, // 4 waits for 0 (out of a), 5 for a slot on d (1 has it)
		{all[1:], 1, 3, []int{1, 2}},   // 1 in flight + 2 = 3
	} {
		if got := startable(newGate(), c.pending, c.inFlight, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("pending %v, %d in flight, limit %d: %v, want %v", c.pending, c.inFlight, c.limit, got, c.want)
		}
	}
	gate := newGate()
	startable(gate, all, 0, 8)
	if got := startable(gate, []int{4, 5}, 4, 8); got != nil {
		t.Errorf("with 0 and 1 in flight: %v, want none", got)
	}
	gate.End(0)
	gate.End(1)
	if got := startable(gate, []int{4, 5}, 2, 8); !slices.Equal(got, []int{4, 5}) {
		t.Errorf("after steps 0 and 1 ended: %v, want [4 5]", got)
	}
}
