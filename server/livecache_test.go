package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/proto"
)

// TestLiveEnrichmentCachedPerRevision: a service that keeps each held
// state's enrichment per view snapshot and KB revision answers exactly as one
// that applies the view to every host on every call, while references
// replace full states, the clock makes hosts stale and events change the view.
func TestLiveEnrichmentCachedPerRevision(t *testing.T) {
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.SeedDefault(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0
	view := hostview.New(hostview.Options{StaleAfter: time.Minute, Now: func() time.Time { return now }})
	const n = 40
	full := benchHosts(n)
	refs := make([]*ecraev1.HostState, n)
	inv := hostview.Inventory{At: t0}
	for i, h := range full {
		h.StateDigest = uint64(i + 1)
		refs[i] = &ecraev1.HostState{Host: h.GetHost(), Nodename: h.GetNodename(), StateRef: h.GetStateDigest()}
		if i%4 == 3 {
			continue // a host the view does not know
		}
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h.GetHost(), Nodename: h.GetNodename(), ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 64, CPURatio: 4, MemoryMB: 262144, RAMRatio: 1, DiskGB: 2000, DiskRatio: 1}})
		for k := range i % 5 {
			inv.Instances = append(inv.Instances, hostview.Instance{UUID: h.GetHost() + "-" + string(rune('a'+k)), Host: h.GetHost(), Node: h.GetNodename(),
				State: "active", PowerState: "running", Tag: []string{"", "web-frontend"}[k%2], Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: 2048}})
		}
	}
	view.Reconcile(inv)
	for i := 0; i < n; i += 3 {
		view.Apply(0, power(full[i].GetHost(), t0, 150+float64(i), 0.3))
	}
	servers := make([]*Server, 2)
	for k := range servers {
		if servers[k], err = New(Config{Live: view}, store, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	servers[0].baseline = true
	inst := &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "f", Vcpus: 2, MemoryMb: 4096, RootGb: 20}}
	same := func(step string, hosts []*ecraev1.HostState) {
		t.Helper()
		for _, req := range []*ecraev1.WeighHostsRequest{
			{Instance: inst, Hosts: hosts, ScoresOnly: true},
			{Instance: inst, Hosts: hosts}, // with explanations: the notes come from the view too
			{Instance: inst, Hosts: hosts, ScoresOnly: true},
		} {
			var got [2]*ecraev1.WeighHostsResponse
			for k, s := range servers {
				if got[k], err = s.WeighHosts(ctx, req); err != nil {
					t.Fatalf("%s: %v", step, err)
				}
			}
			if !proto.Equal(got[0], got[1]) {
				t.Fatalf("%s (scores_only=%v): cached enrichment answers\n%v\nper call\n%v", step, req.GetScoresOnly(), got[1], got[0])
			}
		}
		for k, s := range servers {
			f, err := s.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: inst, Hosts: hosts, PassedOnly: true})
			if err != nil || len(f.GetPassed()) != n {
				t.Fatalf("%s: filter on server %d: %v, %d answers", step, k, err, len(f.GetPassed()))
			}
		}
	}
	same("full states", full)
	same("references", refs)
	now = t0.Add(30 * time.Second)
	same("references, 30 s later", refs)
	now = t0.Add(time.Minute) // the samples' last fresh instant
	same("references, at the staleness deadline", refs)
	now = t0.Add(time.Minute + time.Nanosecond)
	same("references, just past the deadline", refs)
	now = t0.Add(10 * time.Second) // a clock set back: fresh again
	same("references, clock set back", refs)
	now = t0.Add(2 * time.Minute) // past StaleAfter: the samples no longer count
	same("references, stale", refs)
	view.Apply(0, power(full[0].GetHost(), now, 400, 0.9))
	view.Apply(0, power(full[1].GetHost(), now, 90, 0.1))
	same("references, new samples", refs)
	// Fresh before and after: only the snapshot tells the watts changed.
	view.Apply(0, power(full[0].GetHost(), now.Add(time.Second), 200, 0.5))
	same("references, newer sample", refs)
	view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Timestamp: now, Instance: hostview.InstanceChange{HasFlavor: true,
		Instance: hostview.Instance{UUID: "new", Host: full[2].GetHost(), Tag: "web-frontend", State: "active", Flavor: hostview.Flavor{VCPUs: 8, MemoryMB: 4096}}}})
	same("references, new instance", refs)
}
