package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/novafake"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/power"
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
	// With power: the manager, its BMCs and Nova's services.
	pm   *power.Manager
	bmc  *redfishBMC
	nova *novafake.Services
}

// options of a harness.
type options struct {
	// gate builds the console's gate (nil: authorization off).
	gate func(*server.Server) console.Gate
	// power wires a real power.Manager (policy off, so it acts only when
	// asked) and adds h4, an empty host: every host's BMC is a Redfish
	// stand-in, Nova's compute services API a recording fake.
	power bool
}

// newHarness serves the console over a real server.Server and Rebalancer:
// the KB and the plans in bbolt files under t.TempDir(), a real host view
// of four half-empty x86_64 hosts (a rebalance frees two), and node power
// samples on two of them.
func newHarness(t *testing.T, gate func(*server.Server) console.Gate) *harness {
	t.Helper()
	return newHarnessWith(t, options{gate: gate})
}

func newHarnessWith(t *testing.T, o options) *harness {
	t.Helper()
	gate := o.gate
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
	nhosts := 4
	if o.power {
		nhosts = 5
	}
	for j := range nhosts {
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
	h := &harness{view: view, mig: mig, fleet: fleet, srv: srv, rb: rb, reg: reg}
	if o.power {
		h.wirePower(t, dir, nhosts)
		cfg.Power = server.NewConsolePower(h.pm)
	}
	if gate != nil {
		cfg.Gate = gate(srv)
	}
	con, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.ts = httptest.NewServer(con)
	t.Cleanup(h.ts.Close)
	return h
}

// wirePower builds a real power manager over the harness's view, with its
// history in a bbolt file and every host's BMC at the Redfish stand-in.
func (h *harness) wirePower(t *testing.T, dir string, nhosts int) {
	t.Helper()
	h.bmc = &redfishBMC{state: map[string]string{}}
	bmcSrv := httptest.NewServer(h.bmc)
	t.Cleanup(bmcSrv.Close)
	var entries []power.HostEntry
	for j := range nhosts {
		name := fmt.Sprintf("h%d", j)
		h.bmc.state[name] = "On"
		entries = append(entries, power.HostEntry{Name: name, Architecture: "old",
			Power: "redfish+http://" + strings.TrimPrefix(bmcSrv.URL, "http://") + "/Systems/" + name})
	}
	hist, err := power.OpenHistory(filepath.Join(dir, "power.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hist.Close() })
	h.nova = &novafake.Services{}
	h.pm, err = power.NewManager(power.Config{Policy: power.PolicyOff, View: h.view, History: hist, Nova: h.nova,
		Credentials: &power.CredentialFile{Default: &power.Credentials{Username: "root", Password: "calvin"}},
		Hosts:       func(context.Context) ([]power.HostEntry, error) { return entries, nil }})
	if err != nil {
		t.Fatal(err)
	}
}

// redfishBMC stands in for the hosts' BMCs (Debian has no Redfish
// emulator, and a BMC cannot run in a test): DMTF's ComputerSystem with
// its PowerState and the #ComputerSystem.Reset action, behind basic auth,
// as power's own Redfish test serves it.
type redfishBMC struct {
	mu    sync.Mutex
	state map[string]string // system id → PowerState
}

func (b *redfishBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "root" || p != "calvin" {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/redfish/v1/Systems/")
	id, action, _ := strings.Cut(rest, "/")
	if _, known := b.state[id]; !ok || !known {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && action == "":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"@odata.id": "/redfish/v1/Systems/" + id, "Id": id, "PowerState": b.state[id],
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            "/redfish/v1/Systems/" + id + "/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown"}}},
		})
	case r.Method == http.MethodPost && action == "Actions/ComputerSystem.Reset":
		var body struct{ ResetType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch body.ResetType {
		case "On":
			b.state[id] = "On"
		case "ForceOff":
			b.state[id] = "Off"
		default:
			http.Error(w, "bad ResetType", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (b *redfishBMC) power(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state[id]
}
