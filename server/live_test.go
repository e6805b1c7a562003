package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

type liveHarness struct {
	place ecraev1.PlacementServiceClient
	hv    ecraev1.HostViewServiceClient
	view  *hostview.View
	now   *time.Time
}

// newLiveHarness serves testKB with a live view whose clock the test sets.
func newLiveHarness(t *testing.T) *liveHarness {
	t.Helper()
	return newLiveHarnessKB(t, testKB)
}

// newLiveHarnessKB is newLiveHarness on another knowledge base.
func newLiveHarnessKB(t *testing.T, testKB string) *liveHarness {
	t.Helper()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	now := t0
	view := hostview.New(hostview.Options{StaleAfter: time.Minute, Now: func() time.Time { return now }})
	srv, err := New(Config{Live: view, LiveSources: "test"}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer(grpc.ForceServerCodecV2(Codec{}))
	srv.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); store.Close() })
	return &liveHarness{place: ecraev1.NewPlacementServiceClient(conn), hv: ecraev1.NewHostViewServiceClient(conn), view: view, now: &now}
}

func power(host string, at time.Time, watts, util float64) *hostview.Event {
	return &hostview.Event{Kind: hostview.KindPower, Type: "ecrae.metrics", Timestamp: at,
		Power: hostview.PowerSample{Host: host, At: at, Watts: watts, HasWatts: true, Utilization: util, HasUtil: true}}
}

func TestWeighHostsUsesMeasuredPowerAndSaysWhenStale(t *testing.T) {
	h := newLiveHarness(t)
	// h-old draws 300 W at 50 % where its model (testKB "old") says 150 W:
	// its curve is doubled, so one vCPU (+10 %) costs 2 × 10 = 20 W.
	// Nova knows the host (a sample alone does not make one).
	h.view.Apply(0, &hostview.Event{Kind: hostview.KindMetrics, Type: "metrics.update", Timestamp: t0, Metrics: hostview.MetricsSample{Host: "h-old"}})
	h.view.Apply(1, power("h-old", t0, 300, 0.5))
	hosts := []*ecraev1.HostState{novaHost("h-old", "x86_64", 5, 5), novaHost("h-arm", "aarch64", 5, 5)}
	resp, err := h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{Instance: small(""), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	old := resp.GetScores()[0]
	if !near(old.GetMarginalWatts(), 20) {
		t.Errorf("h-old marginal %v W, want 20 (calibrated)", old.GetMarginalWatts())
	}
	if e := old.GetBreakdown()[0].GetExplanation(); !strings.Contains(e, "live view: 300.0 W measured vs 150.0 W modelled") || !strings.Contains(e, "utilisation 50% measured") {
		t.Errorf("explanation %q", e)
	}
	if e := resp.GetScores()[1].GetBreakdown()[0].GetExplanation(); strings.Contains(e, "live view") {
		t.Errorf("h-arm is not in the view, yet: %q", e)
	}

	// Two minutes later (limit one): stale, back to the model.
	*h.now = t0.Add(2 * time.Minute)
	resp, err = h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{Instance: small(""), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	old = resp.GetScores()[0]
	if !near(old.GetMarginalWatts(), 10) {
		t.Errorf("stale h-old marginal %v W, want the model's 10", old.GetMarginalWatts())
	}
	if e := old.GetBreakdown()[0].GetExplanation(); !strings.Contains(e, "live view: stale, last heard 2m0s ago (limit 1m0s): model estimate") {
		t.Errorf("stale explanation %q", e)
	}
	// The shim asks without explanations: same scores, no text.
	quiet, err := h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{Instance: small(""), Hosts: hosts, OmitExplanations: true})
	if err != nil {
		t.Fatal(err)
	}
	if quiet.GetScores()[0].GetScore() != old.GetScore() {
		t.Errorf("quiet score %v, explained %v", quiet.GetScores()[0].GetScore(), old.GetScore())
	}
}

func TestWhatIfPlacesOnLiveHosts(t *testing.T) {
	h := newLiveHarness(t)
	// The KB sizes h-old and h-arm (10 threads, 64 GB); Placement says
	// h-big has 4 usable vCPUs and 8 GB; h-lost is known to nobody.
	h.view.Reconcile(hostview.Inventory{At: t0, Hosts: []hostview.HostInventory{
		{Name: "h-big", State: "up", ISA: "x86_64", Capacity: hostview.Capacity{VCPUs: 4, CPURatio: 1, MemoryMB: 8192, RAMRatio: 1, DiskGB: 100, DiskRatio: 1}},
		{Name: "h-old", State: "up"}, {Name: "h-arm", State: "up", ISA: "aarch64"}, {Name: "h-lost", State: "up"},
		{Name: "h-off", State: "up", Disabled: true, Capacity: hostview.Capacity{VCPUs: 64, MemoryMB: 1 << 20, DiskGB: 1000}},
	}})
	resp, err := h.place.WhatIf(context.Background(), &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{small("")}})
	if err != nil {
		t.Fatal(err)
	}
	want := "live view (3 hosts: 1 sized by Placement, 2 by their KB architecture; 0 stale; 1 left out, neither in Placement nor in the KB)"
	if resp.GetHostSource() != want {
		t.Errorf("source %q\nwant   %q", resp.GetHostSource(), want)
	}
	// An empty arm host wakes for 20 W idle + 5 W: the cheapest.
	if p := resp.GetPlacements()[0]; p.GetHost() != "h-arm" {
		t.Errorf("placed on %s, want h-arm", p.GetHost())
	}

	// ecrae hosts lists all five, the disabled and the unsized included.
	list, err := h.hv.ListLiveHosts(context.Background(), &ecraev1.ListLiveHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetHosts()) != 5 {
		t.Fatalf("%d live hosts", len(list.GetHosts()))
	}
}

func TestListLiveHosts(t *testing.T) {
	h := newLiveHarness(t)
	h.view.Reconcile(hostview.Inventory{At: t0,
		Hosts: []hostview.HostInventory{{Name: "h-old", Nodename: "h-old.example", UUID: "rp-1", State: "up", ISA: "x86_64",
			Capacity: hostview.Capacity{VCPUs: 12, VCPUsReserved: 2, CPURatio: 2, MemoryMB: 65536, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}}},
		Instances: []hostview.Instance{{UUID: "i1", Host: "h-old", Flavor: hostview.Flavor{Name: "m", VCPUs: 5, MemoryMB: 4096, RootGB: 10}, State: "active", PowerState: "running"}},
	})
	h.view.Apply(1, power("h-old", t0, 170, 0.7))
	resp, err := h.hv.ListLiveHosts(context.Background(), &ecraev1.ListLiveHostsRequest{IncludeInstances: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetHosts()) != 1 || resp.GetInstances() != 1 || resp.GetSources() != "test" || resp.GetStaleAfter().AsDuration() != time.Minute {
		t.Fatalf("%+v", resp)
	}
	lh := resp.GetHosts()[0]
	// Measured: 70 % utilisation, 170 W (the model says 170 W at 70 % too).
	if lh.GetArchitecture() != "old" || lh.GetCapacitySource() != "placement" || lh.GetVcpusTotal() != 10 || lh.GetVcpusUsed() != 5 ||
		lh.GetUtilization() != 0.7 || lh.GetUtilizationSource() != "node agent" || !lh.GetWattsMeasured() || lh.GetWatts() != 170 ||
		!near(lh.GetModelWatts(), 170) || lh.GetStale() || lh.GetServiceState() != "up" || len(lh.GetInstanceList()) != 1 || lh.CpuDemand != nil {
		t.Errorf("%+v", lh)
	}
	// The agent reports a demand past the host's CPUs: shown, utilisation
	// still at most 1.
	d := hostview.PowerSample{Host: "h-old", At: t0.Add(time.Second), Utilization: 1, HasUtil: true, Demand: 1.4, HasDemand: true}
	h.view.Apply(2, &hostview.Event{Kind: hostview.KindPower, Type: "ecrae.metrics", Timestamp: d.At, Power: d})
	resp, err = h.hv.ListLiveHosts(context.Background(), &ecraev1.ListLiveHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if lh := resp.GetHosts()[0]; lh.GetUtilization() != 1 || lh.CpuDemand == nil || lh.GetCpuDemand() != 1.4 {
		t.Errorf("demand: utilisation %v, cpu_demand %v; want 1 and 1.4", lh.GetUtilization(), lh.CpuDemand)
	}
	*h.now = t0.Add(time.Hour)
	resp, err = h.hv.ListLiveHosts(context.Background(), &ecraev1.ListLiveHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Stale: the estimate, 5 running vCPUs of 10 → 50 %, 150 W.
	lh = resp.GetHosts()[0]
	if !lh.GetStale() || lh.GetWattsMeasured() || lh.GetUtilizationSource() != "estimate" || lh.GetUtilization() != 0.5 || !near(lh.GetWatts(), 150) ||
		!strings.Contains(lh.GetNote(), "stale") || lh.CpuDemand != nil {
		t.Errorf("stale: %+v", lh)
	}
}

// BenchmarkLive measures what the live view adds to one weigher pass over
// 1000 hosts, all in the view with instances of two tags and fresh samples
// (the enrichment alone; BenchmarkPlacementCalls has the rest of the call).
func BenchmarkLive(b *testing.B) {
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(b.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.SeedDefault(ctx); err != nil {
		b.Fatal(err)
	}
	view := hostview.New(hostview.Options{Now: func() time.Time { return t0 }})
	srv, err := New(Config{Live: view}, store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := srv.catalog(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pristine, err := convertHosts(c, benchHosts(1000), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i, h := range pristine {
		for k := range 10 {
			tag := []string{"web-frontend", "database"}[k%2]
			view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Timestamp: t0, Instance: hostview.InstanceChange{HasFlavor: true,
				Instance: hostview.Instance{UUID: fmt.Sprint(i, "-", k), Host: h.Name, Tag: tag, State: "active",
					Flavor: hostview.Flavor{VCPUs: 2, MemoryMB: 4096}}}})
		}
		view.Apply(0, power(h.Name, t0, 300, 0.4))
	}
	work := make([]optimizer.Host, len(pristine))
	for _, explain := range []bool{false, true} {
		b.Run(fmt.Sprint("explain=", explain), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				copy(work, pristine)
				srv.live(c, work, nil, explain)
			}
		})
	}
}
