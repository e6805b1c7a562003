package hostview

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrae/ecrae/optimizer"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) set(t time.Time)  { c.t.Store(t.UnixNano()) }

func small() Flavor { return Flavor{Name: "small", VCPUs: 2, MemoryMB: 2048, RootGB: 10} }

func create(id, uuid, host string, at time.Time, f Flavor, tag string) *Event {
	return &Event{Kind: KindInstance, Type: "instance.create.end", MessageID: id, Timestamp: at, Publisher: host,
		Instance: InstanceChange{Op: OpUpsert, HasFlavor: true, Instance: Instance{
			UUID: uuid, Host: host, Node: host, Flavor: f, Tag: tag, State: "active", PowerState: "running"}}}
}

func moveTo(id, uuid, host string, at time.Time) *Event {
	return &Event{Kind: KindInstance, Type: "instance.live_migration_post_dest.end", MessageID: id, Timestamp: at, Publisher: host,
		Instance: InstanceChange{Op: OpUpsert, Instance: Instance{UUID: uuid, Host: host, Node: host, State: "active", PowerState: "running"}}}
}

func del(id, uuid string, at time.Time) *Event {
	return &Event{Kind: KindInstance, Type: "instance.delete.end", MessageID: id, Timestamp: at,
		Instance: InstanceChange{Op: OpDelete, Instance: Instance{UUID: uuid}}}
}

func hostOf(t *testing.T, v *View, name string) Host {
	t.Helper()
	h, ok := v.Snapshot().Lookup(name, "")
	if !ok {
		t.Fatalf("host %s not in the snapshot", name)
	}
	return *h
}

func TestApplyAccountsInstances(t *testing.T) {
	v := New(Options{})
	v.Apply(1, create("m1", "i1", "h1", t0, small(), "web"))
	v.Apply(2, create("m2", "i2", "h1", t0.Add(time.Second), Flavor{VCPUs: 4, MemoryMB: 4096, SwapMB: 1}, ""))
	h := hostOf(t, v, "h1")
	// 2+4 vCPUs, 2048+4096 MB, 10 GB + 1 GB (1 MB of swap rounds up).
	want := Usage{VCPUs: 6, MemoryMB: 6144, DiskGB: 11}
	if diff := cmp.Diff(want, h.Usage); diff != "" {
		t.Errorf("usage (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff([]TagVCPUs{{"", 4}, {"web", 2}}, h.Busy); diff != "" {
		t.Errorf("busy (-want,+got):\n%s", diff)
	}
	if h.Instances != 2 || !h.Compute || h.LastSeen != t0.Add(time.Second) {
		t.Errorf("host %+v", h)
	}
	v.Apply(3, moveTo("m3", "i1", "h2", t0.Add(2*time.Second)))
	if h := hostOf(t, v, "h1"); h.Usage.VCPUs != 4 || h.Instances != 1 {
		t.Errorf("h1 after the move: %+v", h.Usage)
	}
	// The move carried no flavor: the one the view had is kept.
	if h := hostOf(t, v, "h2"); h.Usage.VCPUs != 2 || h.Busy[0].Tag != "web" {
		t.Errorf("h2 after the move: %+v %+v", h.Usage, h.Busy)
	}
	v.Apply(4, del("m4", "i1", t0.Add(3*time.Second)))
	if h := hostOf(t, v, "h2"); h.Usage != (Usage{}) || h.Instances != 0 || h.Busy != nil {
		t.Errorf("h2 after the delete: %+v", h)
	}
	if v.AppliedSeq() != 4 {
		t.Errorf("AppliedSeq %d, want 4", v.AppliedSeq())
	}
}

func TestDuplicatesAndReordering(t *testing.T) {
	v := New(Options{})
	ev := create("m1", "i1", "h1", t0, small(), "")
	for i, want := range []Outcome{Applied, Duplicate, Duplicate} {
		if got := v.Apply(uint64(i+1), ev); got != want {
			t.Fatalf("apply #%d: %v, want %v", i, got, want)
		}
	}
	// Moved at t0+2s; the t0+1s move arrives late and must not win.
	if got := v.Apply(4, moveTo("m3", "i1", "h3", t0.Add(2*time.Second))); got != Applied {
		t.Fatal(got)
	}
	if got := v.Apply(5, moveTo("m2", "i1", "h2", t0.Add(time.Second))); got != Stale {
		t.Fatalf("late move: %v, want stale", got)
	}
	if i, _ := v.Instance("i1"); i.Host != "h3" {
		t.Fatalf("instance on %s, want h3", i.Host)
	}
	// A delete, then the create replayed with a new message id (a second
	// publisher): the tombstone keeps it deleted.
	if got := v.Apply(6, del("m4", "i1", t0.Add(3*time.Second))); got != Applied {
		t.Fatal(got)
	}
	if got := v.Apply(7, create("m5", "i1", "h1", t0, small(), "")); got != Stale {
		t.Fatalf("create after delete: %v, want stale", got)
	}
	if _, ok := v.Instance("i1"); ok {
		t.Fatal("deleted instance came back")
	}
	for _, h := range v.Snapshot().Hosts {
		if h.Usage != (Usage{}) {
			t.Errorf("%s still holds %+v", h.Name, h.Usage)
		}
	}
}

func TestDedupeWindowIsBounded(t *testing.T) {
	v := New(Options{DedupeWindow: 2})
	for i := range 3 {
		v.Apply(0, create(fmt.Sprint("m", i), fmt.Sprint("i", i), "h1", t0, small(), ""))
	}
	// m0 was pushed out of the window: its event is no longer a duplicate,
	// but it is not newer than what the view has, so nothing changes.
	if got := v.Apply(0, create("m0", "i0", "h1", t0, small(), "")); got != Applied {
		t.Fatalf("m0 after eviction: %v", got)
	}
	if got := v.Apply(0, create("m2", "i2", "h1", t0, small(), "")); got != Duplicate {
		t.Fatalf("m2: %v", got)
	}
	if h := hostOf(t, v, "h1"); h.Instances != 3 || h.Usage.VCPUs != 6 {
		t.Errorf("h1 %+v", h.Usage)
	}
}

func TestServiceStatesAndOrdering(t *testing.T) {
	v := New(Options{})
	svc := func(id string, at time.Time, c ServiceChange) *Event {
		c.Host = "h1"
		if c.Binary == "" {
			c.Binary = "nova-compute"
		}
		return &Event{Kind: KindService, Type: "service.update", MessageID: id, Timestamp: at, Service: c}
	}
	steps := []struct {
		ev    *Event
		out   Outcome
		state ServiceState
	}{
		{svc("a", t0, ServiceChange{}), Applied, StateUp},
		{svc("b", t0.Add(2*time.Second), ServiceChange{Disabled: true, DisabledReason: "maint"}), Applied, StateDisabled},
		{svc("c", t0.Add(time.Second), ServiceChange{}), Stale, StateDisabled},
		{svc("d", t0.Add(3*time.Second), ServiceChange{ForcedDown: true, Disabled: true}), Applied, StateDown},
		{svc("e", t0.Add(4*time.Second), ServiceChange{Binary: "nova-scheduler"}), Ignored, StateDown},
		{svc("f", t0.Add(5*time.Second), ServiceChange{}), Applied, StateUp},
	}
	for i, s := range steps {
		if got := v.Apply(0, s.ev); got != s.out {
			t.Fatalf("step %d: %v, want %v", i, got, s.out)
		}
		if got := hostOf(t, v, "h1").Service; got != s.state {
			t.Fatalf("step %d: state %q, want %q", i, got, s.state)
		}
	}
	v.Apply(0, svc("g", t0.Add(6*time.Second), ServiceChange{Deleted: true}))
	if _, ok := v.Snapshot().Lookup("h1", ""); ok {
		t.Fatal("deleted compute without instances is still listed")
	}
}

func TestStalenessAndMeasurements(t *testing.T) {
	clk := newClock(t0)
	v := New(Options{StaleAfter: time.Minute, Now: clk.now})
	v.Apply(0, create("m1", "i1", "h1", t0, small(), ""))
	v.Apply(0, &Event{Kind: KindPower, Type: "ecrae.metrics", Timestamp: t0.Add(10 * time.Second),
		Power: PowerSample{Host: "h1", At: t0.Add(10 * time.Second), Watts: 150, HasWatts: true, Utilization: 0.4, HasUtil: true}})
	clk.set(t0.Add(30 * time.Second))
	h := hostOf(t, v, "h1")
	fr := v.Freshness(&h, clk.now())
	if fr.Stale || !fr.Watts || !fr.Utilization || fr.Since != 20*time.Second {
		t.Fatalf("fresh: %+v", fr)
	}
	// An older sample arriving late changes nothing.
	if got := v.Apply(0, &Event{Kind: KindPower, Timestamp: t0, Power: PowerSample{Host: "h1", At: t0, Watts: 999, HasWatts: true}}); got != Stale {
		t.Fatalf("late sample: %v", got)
	}
	clk.set(t0.Add(71 * time.Second))
	fr = v.Freshness(&h, clk.now())
	if !fr.Stale || fr.Watts || fr.Utilization || !fr.Heard {
		t.Fatalf("after the limit: %+v", fr)
	}
	if n := v.StaleHosts(); n != 1 {
		t.Fatalf("StaleHosts %d", n)
	}
	// A host known only from an instance an API service created, never
	// heard from itself, is stale.
	v.Apply(0, &Event{Kind: KindInstance, Timestamp: t0, Instance: InstanceChange{Instance: Instance{UUID: "i9", Host: "h9", State: "active"}}})
	h9 := hostOf(t, v, "h9")
	if fr := v.Freshness(&h9, clk.now()); !fr.Stale || fr.Heard {
		t.Fatalf("never heard: %+v", fr)
	}
}

func testModel() *optimizer.Model {
	// 100 W idle, +10 W per 10 % load: Watts(u) = 100 + 100u.
	return &optimizer.Model{Name: "m", ISA: "x86_64", Cores: 10, MemoryMB: 65536,
		Curve: optimizer.PowerCurve{100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200}}
}

func TestBaseAndEnrich(t *testing.T) {
	clk := newClock(t0)
	v := New(Options{StaleAfter: time.Minute, Now: clk.now})
	v.Apply(0, create("m1", "i1", "h1", t0, Flavor{VCPUs: 4, MemoryMB: 4096, RootGB: 20}, "batch"))
	v.Apply(0, create("m2", "i2", "h1", t0, Flavor{VCPUs: 4, MemoryMB: 4096, RootGB: 20}, "web"))
	load := func(tag string) float64 { return map[string]float64{"batch": 1, "web": 0.25}[tag] }

	// Events alone: sized by the model.
	h := hostOf(t, v, "h1")
	oh := Base(&h, testModel())
	if oh.VCPUsTotal != 10 || oh.VCPUsUsed != 8 || oh.TotalRAMMB != 65536 || oh.FreeRAMMB != 65536-8192 || oh.TotalDiskGB != unknownDiskGB {
		t.Fatalf("base from model: %+v", oh)
	}
	n := Enrich(&oh, &h, v.Freshness(&h, clk.now()), load)
	// (4×1 + 4×0.25) / 8 busy share.
	if oh.UsedCPULoad != 0.625 || oh.UtilizationMeasured || oh.Stale || n.String() != "" {
		t.Fatalf("enrich without samples: load %v measured %v stale %v note %q", oh.UsedCPULoad, oh.UtilizationMeasured, oh.Stale, n)
	}

	// A resync gives Placement's capacity; a sample gives power: at the
	// estimated utilisation 8×0.625/10 = 0.5 the model says 150 W, the
	// node 180 W, so the curve is scaled by 1.2.
	v.Reconcile(Inventory{At: t0, Hosts: []HostInventory{{Name: "h1", State: "up",
		Capacity: Capacity{VCPUs: 12, VCPUsReserved: 2, CPURatio: 4, MemoryMB: 65536, MemoryMBReserved: 512, RAMRatio: 1, DiskGB: 1000, DiskRatio: 1},
		Usage:    Usage{VCPUs: 8, MemoryMB: 8192, DiskGB: 40}}},
		Instances: v.Instances("")})
	v.Apply(0, &Event{Kind: KindPower, Timestamp: t0, Power: PowerSample{Host: "h1", At: t0, Watts: 180, HasWatts: true}})
	h = hostOf(t, v, "h1")
	m := testModel()
	oh = Base(&h, m)
	if oh.VCPUsTotal != 10 || oh.CPURatio != 4 || oh.TotalRAMMB != 65024 || oh.FreeRAMMB != 65024-8192 || oh.FreeDiskMB != 960*1024 {
		t.Fatalf("base from placement: %+v", oh)
	}
	n = Enrich(&oh, &h, v.Freshness(&h, clk.now()), load)
	if oh.MeasuredWatts != 180 || n.Scale != 1.2 || oh.Model == m || oh.Model.Curve[0] != 120 || m.Curve[0] != 100 {
		t.Fatalf("calibration: watts %v scale %v curve %v (shared model %v)", oh.MeasuredWatts, n.Scale, oh.Model.Curve, m.Curve)
	}
	if got, want := n.String(), "live view: 180.0 W measured vs 150.0 W modelled at this load: curve scaled x1.20"; got != want {
		t.Errorf("note %q, want %q", got, want)
	}

	// Past the limit: stale, the measurement is dropped and the note says so.
	clk.set(t0.Add(2 * time.Minute))
	oh = Base(&h, m)
	n = Enrich(&oh, &h, v.Freshness(&h, clk.now()), load)
	if !oh.Stale || oh.MeasuredWatts != 0 || oh.Model != m {
		t.Fatalf("stale: %+v", oh)
	}
	if got, want := n.String(), "live view: stale, last heard 2m0s ago (limit 1m0s): model estimate"; got != want {
		t.Errorf("note %q, want %q", got, want)
	}
}

func TestAllStoppedIsNotUnknown(t *testing.T) {
	v := New(Options{})
	ev := create("m1", "i1", "h1", t0, small(), "")
	ev.Instance.Instance.PowerState, ev.Instance.Instance.State = "shutdown", "stopped"
	v.Apply(0, ev)
	h := hostOf(t, v, "h1")
	oh := Base(&h, testModel())
	Enrich(&oh, &h, Freshness{}, func(string) float64 { return 1 })
	if u, _ := oh.CurrentUtilization(); u > 0.001 {
		t.Fatalf("a host of stopped instances is estimated at %v", u)
	}
}

// TestEnrichCarriesHostRules: what the view knows of a host's service
// state and of a plan draining it reaches the filter chain, whatever Nova's
// call says.
func TestEnrichCarriesHostRules(t *testing.T) {
	tests := []struct {
		service  ServiceState
		draining string
		disabled bool
	}{
		{StateUp, "", false},
		{StateUnknown, "", false}, // known from events only: Nova decides
		{StateDisabled, "", true},
		{StateDown, "", true},
		{StateDeleted, "", true},
		{StateUp, "plan-7", false},
	}
	for _, tc := range tests {
		h := Host{Name: "h1", Service: tc.service, Draining: tc.draining}
		oh := Base(&h, testModel())
		Enrich(&oh, &h, Freshness{}, nil)
		if oh.Disabled != tc.disabled || oh.Draining != tc.draining {
			t.Errorf("service %q draining %q: Disabled %v Draining %q", tc.service, tc.draining, oh.Disabled, oh.Draining)
		}
	}
}

func TestReconcileDrift(t *testing.T) {
	v := New(Options{})
	v.Apply(0, create("m1", "keep", "h1", t0, small(), ""))
	v.Apply(0, create("m2", "moved", "h1", t0, small(), ""))
	v.Apply(0, create("m3", "gone", "h1", t0, small(), ""))
	v.Apply(0, create("m4", "late", "h2", t0.Add(time.Hour), small(), "")) // after the inventory read began
	at := t0.Add(time.Minute)
	inv := Inventory{At: at,
		Hosts: []HostInventory{
			{Name: "h1", State: "up", Capacity: Capacity{VCPUs: 8, MemoryMB: 8192, DiskGB: 100}, Usage: Usage{VCPUs: 2, MemoryMB: 2048, DiskGB: 10}},
			{Name: "h2", State: "up", Disabled: true, DisabledReason: "maint", Capacity: Capacity{VCPUs: 8, MemoryMB: 8192, DiskGB: 100}, Usage: Usage{VCPUs: 4, MemoryMB: 4096, DiskGB: 20}},
		},
		Instances: []Instance{
			{UUID: "keep", Host: "h1", Flavor: small(), State: "active", PowerState: "running"},
			{UUID: "moved", Host: "h2", Flavor: small(), State: "active", PowerState: "running"},
			{UUID: "new", Host: "h2", Flavor: small(), State: "active", PowerState: "running"},
		},
	}
	d := v.Reconcile(inv)
	want := Drift{HostsAdded: 0, InstancesAdded: 1, InstancesRemoved: 1, InstancesMoved: 1}
	// h2 has "late" too (2 vCPUs Placement does not count yet): a mismatch.
	want.UsageMismatch = 1
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("drift (-want,+got):\n%s", diff)
	}
	if i, ok := v.Instance("late"); !ok || i.Host != "h2" {
		t.Error("an event newer than the inventory was undone")
	}
	if h := hostOf(t, v, "h2"); h.Service != StateDisabled || h.Capacity.VCPUs != 8 || h.LastSeen.Before(at) {
		t.Errorf("h2 %+v", h)
	}
	// The same inventory again: nothing left to correct.
	if d := v.Reconcile(inv); d.Total() != 0 {
		t.Errorf("second reconcile: %+v", d)
	}
	// A host Nova no longer lists, without instances, goes.
	v.Apply(0, del("m5", "keep", at.Add(time.Second)))
	d = v.Reconcile(Inventory{At: t0.Add(2 * time.Hour), Hosts: inv.Hosts[1:], Instances: []Instance{
		{UUID: "moved", Host: "h2", Flavor: small(), State: "active"}, {UUID: "new", Host: "h2", Flavor: small(), State: "active"},
		{UUID: "late", Host: "h2", Flavor: small(), State: "active"}}})
	if d.HostsRemoved != 1 {
		t.Errorf("drift %+v, want h1 removed", d)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	v := New(Options{})
	v.Apply(7, create("m1", "i1", "h1", t0, small(), "web"))
	v.Apply(8, create("m2", "i2", "h2", t0, small(), ""))
	v.Apply(9, del("m3", "i2", t0.Add(time.Second)))
	v.Apply(10, &Event{Kind: KindPower, Timestamp: t0, Power: PowerSample{Host: "h1", At: t0, Watts: 99, HasWatts: true}})
	path := filepath.Join(t.TempDir(), "view.json")
	if err := v.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	// What a save cut short by kill -9 leaves: cleared by the next load.
	if err := os.WriteFile(path+".tmp123", []byte(`{"version": 1, "hos`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := New(Options{})
	if found, err := w.LoadFile(path); err != nil || !found {
		t.Fatal(found, err)
	}
	if left, _ := filepath.Glob(path + ".tmp*"); len(left) != 0 {
		t.Errorf("left over: %v", left)
	}
	if diff := cmp.Diff(v.Snapshot().Hosts, w.Snapshot().Hosts); diff != "" {
		t.Errorf("hosts (-saved,+loaded):\n%s", diff)
	}
	if w.AppliedSeq() != 10 {
		t.Errorf("AppliedSeq %d", w.AppliedSeq())
	}
	// Dedupe ids and tombstones came along.
	if got := w.Apply(11, create("m1", "i1", "h1", t0, small(), "web")); got != Duplicate {
		t.Errorf("replayed m1: %v", got)
	}
	if got := w.Apply(12, create("mx", "i2", "h2", t0, small(), "")); got != Stale {
		t.Errorf("create of a deleted instance: %v", got)
	}
	var buf bytes.Buffer
	if err := w.Save(&buf); err != nil {
		t.Fatal(err)
	}
	if found, err := New(Options{}).LoadFile(filepath.Join(t.TempDir(), "missing")); found || err != nil {
		t.Errorf("missing file: %v %v", found, err)
	}
}

// TestSnapshotUnderConcurrency runs writers and readers together (go test
// -race): every snapshot must be internally consistent.
func TestSnapshotUnderConcurrency(t *testing.T) {
	v := New(Options{})
	const hosts, n = 8, 4000
	whileApplying(n, func(r int) bool {
		for _, h := range v.Snapshot().Hosts {
			if h.Usage.VCPUs != 2*h.Instances {
				t.Errorf("reader %d: %s has %d vCPUs for %d instances", r, h.Name, h.Usage.VCPUs, h.Instances)
				return false
			}
		}
		return true
	}, func(i int) {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		uuid := fmt.Sprint("i", i%500)
		if i%3 == 2 {
			v.Apply(uint64(i), del(fmt.Sprint("m", i), uuid, at))
		} else {
			v.Apply(uint64(i), create(fmt.Sprint("m", i), uuid, fmt.Sprint("h", i%hosts), at, small(), ""))
		}
	})
	total := 0
	for _, h := range v.Snapshot().Hosts {
		total += h.Instances
	}
	if total != len(v.Instances("")) {
		t.Errorf("hosts count %d instances, the view holds %d", total, len(v.Instances("")))
	}
}

// TestSnapshotWithInstancesAgree: while events create, move and delete
// instances, every host's instance count in SnapshotWithInstances matches
// the instances it lists there. Read as Snapshot then Instances, the two
// could straddle an event (ListLiveHosts once showed a deleted instance
// still counted on its host next to a list without it, in Nova's harness).
func TestSnapshotWithInstancesAgree(t *testing.T) {
	v := New(Options{})
	const hosts, n = 8, 4000
	whileApplying(n, func(r int) bool {
		s, insts := v.SnapshotWithInstances()
		listed := map[string]int{}
		for _, i := range insts {
			listed[i.Host]++
		}
		for _, h := range s.Hosts {
			if h.Instances != listed[h.Name] {
				t.Errorf("reader %d: %s counts %d instances and lists %d", r, h.Name, h.Instances, listed[h.Name])
				return false
			}
		}
		return true
	}, func(i int) {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		uuid := fmt.Sprint("i", i%500)
		switch i % 3 {
		case 0:
			v.Apply(uint64(i), create(fmt.Sprint("m", i), uuid, fmt.Sprint("h", i%hosts), at, small(), ""))
		case 1:
			v.Apply(uint64(i), moveTo(fmt.Sprint("m", i), uuid, fmt.Sprint("h", (i+1)%hosts), at))
		default:
			v.Apply(uint64(i), del(fmt.Sprint("m", i), uuid, at))
		}
	})
}

// whileApplying calls apply(0..n-1) while two readers call check (with
// their number) over and over; a reader stops at the first false.
func whileApplying(n int, check func(reader int) bool, apply func(i int)) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !check(r) {
					return
				}
			}
		}()
	}
	for i := range n {
		apply(i)
	}
	close(stop)
	wg.Wait()
}

// TestDraining: a plan's hosts are marked, the snapshot shows it, and
// clearing one plan leaves another's marks alone.
func TestDraining(t *testing.T) {
	v := New(Options{})
	inv := Inventory{At: time.Now()}
	for _, n := range []string{"a", "b", "c"} {
		inv.Hosts = append(inv.Hosts, HostInventory{Name: n, Nodename: n, State: "up"})
	}
	v.Reconcile(inv)
	v.SetDraining("p1", []string{"a", "b", "nope"})
	v.SetDraining("p2", []string{"c"})
	got := func() map[string]string {
		m := map[string]string{}
		s := v.Snapshot()
		for _, h := range s.Hosts {
			m[h.Name] = h.Draining
		}
		return m
	}
	if m := got(); m["a"] != "p1" || m["b"] != "p1" || m["c"] != "p2" || len(m) != 3 {
		t.Fatalf("after SetDraining: %v", m)
	}
	v.ClearDraining("p1")
	if m := got(); m["a"] != "" || m["b"] != "" || m["c"] != "p2" {
		t.Fatalf("after ClearDraining(p1): %v", m)
	}
}

// TestDrainingNotSaved: a saved view comes back without draining marks
// (the plan that set them did not survive the restart).
func TestDrainingNotSaved(t *testing.T) {
	v := New(Options{})
	v.Apply(1, create("m1", "i1", "h1", t0, small(), "web"))
	v.SetDraining("p1", []string{"h1"})
	path := filepath.Join(t.TempDir(), "view.json")
	if err := v.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	w := New(Options{})
	if found, err := w.LoadFile(path); err != nil || !found {
		t.Fatal(found, err)
	}
	if h, ok := w.Snapshot().Lookup("h1", ""); !ok || h.Draining != "" {
		t.Errorf("loaded h1: %+v (found %v), want not draining", h, ok)
	}
}

// TestSampleForUnknownHostCreatesNothing: a node agent's sample does not
// make a host; once Nova names the host, the same sample applies.
func TestSampleForUnknownHostCreatesNothing(t *testing.T) {
	v := New(Options{})
	sample := &Event{Kind: KindPower, Type: "ecrae.metrics", Timestamp: t0, Power: PowerSample{Host: "ghost", At: t0, Watts: 100, HasWatts: true}}
	ver := v.Snapshot().Version
	if got := v.Apply(1, sample); got != UnknownHost {
		t.Fatalf("unknown host: %v, want %v", got, UnknownHost)
	}
	if s := v.Snapshot(); len(s.Hosts) != 0 || s.Version != ver || v.AppliedSeq() != 1 {
		t.Fatalf("a sample created %d hosts (version %d → %d, seq %d)", len(s.Hosts), ver, s.Version, v.AppliedSeq())
	}
	if _, ok := v.Host("ghost"); ok {
		t.Fatal("Host finds a host that is not there")
	}
	v.Apply(2, create("m1", "i1", "ghost", t0, small(), ""))
	if got := v.Apply(3, sample); got != Applied {
		t.Fatalf("known host: %v", got)
	}
	if h, ok := v.Host("ghost"); !ok || h.Watts.Value != 100 {
		t.Fatalf("Host: %+v %v", h, ok)
	}
	v.SetAppliedSeq(0) // the consumer follows a younger stream
	if v.AppliedSeq() != 0 {
		t.Fatal("SetAppliedSeq did not move the position back")
	}
}
