package console_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/server"
	"github.com/ecrae/ecrae/server/console"
	"github.com/prometheus/client_golang/prometheus"
)

const testKB = `
schema_version: 1
architectures:
  - {name: old, isa: x86_64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,
     power_watts: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200], source: test}
tags:
  - name: default
    mode: hint
    candidates: [{isa: x86_64, performance_factor: 1}]
hosts:
  - {name: h0, architecture: old}
  - {name: h1, architecture: old}
  - {name: h2, architecture: old}
  - {name: h3, architecture: old}
`

// migrator stands in for Nova's live migration, which cannot run in a Go
// test (integration/ proves the real one inside Nova's harness): a move
// waits until the test releases it, then is notified to the real host view
// as Nova's notification would be.
type migrator struct {
	mu      sync.Mutex
	at      map[string]string
	view    *hostview.View
	release chan struct{}
	seq     int
}

func (m *migrator) Locate(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.at[id]
	if !ok {
		return "", fmt.Errorf("server %s not found", id)
	}
	return h, nil
}

func (m *migrator) LiveMigrate(ctx context.Context, id, target string) error {
	select {
	case <-m.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at[id] = target
	m.seq++
	m.view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Type: "instance.live_migration_post_dest.end",
		MessageID: fmt.Sprintf("m%d", m.seq), Timestamp: time.Now(), Publisher: target,
		Instance: hostview.InstanceChange{Instance: hostview.Instance{UUID: id, Host: target, Node: target, State: "active", PowerState: "running"}}})
	return nil
}

type harness struct {
	ts    *httptest.Server
	view  *hostview.View
	mig   *migrator
	fleet *console.Fleet
	srv   *server.Server
	rb    *server.Rebalancer
	reg   *prometheus.Registry
}

// newHarness serves the console over a real server.Server and Rebalancer:
// the KB and the plans in bbolt files under t.TempDir(), a real host view
// of four half-empty x86_64 hosts (a rebalance frees two), and node power
// samples on two of them.
func newHarness(t *testing.T, gate func(*server.Server) console.Gate) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := kbstore.Open(filepath.Join(dir, "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	at := map[string]string{}
	for j := range 4 {
		h := fmt.Sprintf("h%d", j)
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h, Nodename: h, ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	for i := range 8 {
		h := fmt.Sprintf("h%d", i%4)
		id := fmt.Sprintf("i%d", i)
		at[id] = h
		inv.Instances = append(inv.Instances, hostview.Instance{UUID: id, Name: fmt.Sprintf("vm%d", i), Host: h, Node: h,
			State: "active", PowerState: "running", Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: 2048, RootGB: 10}})
	}
	view.Reconcile(inv)
	sample := func(host string, w float64) {
		view.Apply(0, &hostview.Event{Kind: hostview.KindPower, MessageID: fmt.Sprintf("p-%s-%g", host, w), Timestamp: time.Now(),
			Power: hostview.PowerSample{Host: host, At: time.Now(), Watts: w, HasWatts: true, Utilization: 0.4, HasUtil: true}})
	}
	sample("h1", 137)
	srv, err := server.New(server.Config{Live: view}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := planstore.Open(filepath.Join(dir, "plans.db"), planstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mig := &migrator{at: at, view: view, release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	rb := server.NewRebalancer(srv, server.RebalanceConfig{Plans: plans, Migrator: server.CountMigrations(mig, reg), ViewGrace: 10 * time.Second})
	t.Cleanup(func() {
		rb.Close() // executions stop before their store closes
		plans.Close()
	})
	fleet := console.NewFleet(100, reg)
	// Three samples while h0's agent reads 111, 121, then 131 W.
	for _, w := range []float64{111, 121, 131} {
		sample("h0", w)
		fleet.SampleOnce(ctx, srv, nil)
	}
	cfg := console.Config{Service: srv, Plans: rb, Fleet: fleet, Registerer: reg}
	if gate != nil {
		cfg.Gate = gate(srv)
	}
	con, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(con)
	t.Cleanup(ts.Close)
	return &harness{ts: ts, view: view, mig: mig, fleet: fleet, srv: srv, rb: rb, reg: reg}
}
