package hostview

import (
	"testing"
	"time"
)

func ctrReport(host string, at time.Time, ids ...string) *Event {
	r := ContainerReport{Host: host, At: at, Arch: "x86_64"}
	for _, id := range ids {
		r.Instances = append(r.Instances, Instance{UUID: id, Name: "c-" + id, Kind: KindContainer, State: "active", PowerState: "running",
			Flavor: Flavor{VCPUs: 2, MemoryMB: 256}, Tag: "web-frontend"})
	}
	return &Event{Kind: KindContainers, Type: "ecrae.containers", Timestamp: at, Containers: r}
}

// TestContainers: a report replaces the host's containers; a stopped one
// disappears; a moved one follows the newer report; an older report is
// stale; Nova instances are left alone.
func TestContainers(t *testing.T) {
	v := New(Options{})
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if out := v.Apply(0, ctrReport("a", t0, "c1", "c2")); out != Applied {
		t.Fatal(out)
	}
	host := func(name string) Host {
		h, ok := v.Snapshot().Lookup(name, "")
		if !ok {
			t.Fatalf("no host %s", name)
		}
		return *h
	}
	usage := func(h string) Usage { return host(h).Usage }
	// 2 containers × (2 vCPUs, 256 MB) = 4 vCPUs, 512 MB.
	if u := usage("a"); u.VCPUs != 4 || u.MemoryMB != 512 || host("a").ISA != "x86_64" {
		t.Fatalf("a: %+v", host("a"))
	}
	// c2 stopped: the next report lacks it.
	v.Apply(0, ctrReport("a", t0.Add(time.Second), "c1"))
	if u := usage("a"); u.VCPUs != 2 || len(v.Instances("a")) != 1 {
		t.Fatalf("a after c2 stopped: %+v", u)
	}
	// c1 moves to b: b reports it first, then a's older report still
	// listing it changes nothing, and a's newer one without it neither.
	v.Apply(0, ctrReport("b", t0.Add(3*time.Second), "c1"))
	v.Apply(0, ctrReport("a", t0.Add(2*time.Second), "c1"))
	v.Apply(0, ctrReport("a", t0.Add(4*time.Second)))
	if ins := v.Instances("b"); len(ins) != 1 || ins[0].Kind != KindContainer || usage("a").VCPUs != 0 || usage("b").VCPUs != 2 {
		t.Fatalf("after the move: a %+v, b %+v", usage("a"), ins)
	}
	if out := v.Apply(0, ctrReport("b", t0.Add(time.Second))); out != Stale {
		t.Fatalf("older report: %v", out)
	}
	// A resync with Nova, which knows no containers, leaves them.
	v.Reconcile(Inventory{At: t0.Add(time.Hour)})
	if ins := v.Instances("b"); len(ins) != 1 {
		t.Fatalf("after a resync: %+v", ins)
	}
}
