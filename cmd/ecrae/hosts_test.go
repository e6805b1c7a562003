package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/nats-io/nats.go"
)

// noCloud clears the OpenStack variables a developer's shell may carry.
func noCloud(t *testing.T) {
	for _, v := range []string{"OS_CLOUD", "OS_AUTH_URL", "OS_AUTH_TYPE", "OS_CLIENT_CONFIG_FILE"} {
		t.Setenv(v, "")
	}
}

// publishFixtures sends the notifications captured from a real Nova (see
// integration/fixtures) to the service's NATS, as the shim's driver does.
func publishFixtures(t *testing.T, natsAddr string, upTo string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "integration", "fixtures", "nova_notifications.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fs []struct {
		Subject string          `json:"subject"`
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	n := 0
	for _, f := range fs {
		if err := nc.Publish(f.Subject, f.Message); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.HasSuffix(f.Subject, upTo) {
			break
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return n
}

// listHosts polls `ecrae hosts --json` until cond holds.
func listHosts(t *testing.T, srv string, cond func(*ecraev1.ListLiveHostsResponse) bool) *ecraev1.ListLiveHostsResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := cli(t, "hosts", "--json", "--instances", srv)
		if err != nil {
			t.Fatalf("hosts --json: %v\n%s", err, out)
		}
		var resp ecraev1.ListLiveHostsResponse
		if err := unmarshalCLIJSON([]byte(out), &resp); err != nil {
			t.Fatalf("hosts --json output: %v\n%s", err, out)
		}
		if cond(&resp) {
			return &resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("live view never got there:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostNamed(resp *ecraev1.ListLiveHostsResponse, name string) *ecraev1.LiveHost {
	for _, h := range resp.GetHosts() {
		if h.GetHost() == name {
			return h
		}
	}
	return nil
}

func TestHostsShowsTheLiveView(t *testing.T) {
	noCloud(t)
	dir := t.TempDir()
	c, stop := startServe(t, dir)
	srv := "--server=" + c.grpcAddr

	// Nova boots an instance on host1 (the first create.end of the
	// captured scenario); a node agent reports host1's power.
	publishFixtures(t, c.natsAddr, "instance.create.end")
	nc, err := nats.Connect("nats://" + c.natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	sample := `{"host": "host1", "timestamp": "` + time.Now().UTC().Format(time.RFC3339Nano) + `", "watts": 212.5, "cpu_utilization": 0.25}`
	if err := nc.Publish("ecrae.metrics.host1", []byte(sample)); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	resp := listHosts(t, srv, func(r *ecraev1.ListLiveHostsResponse) bool {
		h := hostNamed(r, "host1")
		return h != nil && h.GetInstances() == 1 && h.GetWattsMeasured()
	})
	h1 := hostNamed(resp, "host1")
	if h1.GetWatts() != 212.5 || h1.GetUtilization() != 0.25 || h1.GetUtilizationSource() != "node agent" || h1.GetStale() ||
		h1.GetVcpusUsed() != 1 || len(h1.GetInstanceList()) != 1 || h1.GetInstanceList()[0].GetTag() != "web" {
		t.Errorf("host1 %v", h1)
	}
	// Events alone: the KB does not know "host1", Placement is not read.
	if h1.GetCapacitySource() != "unknown" || !strings.Contains(resp.GetSources(), "nova.versioned_notifications.>") {
		t.Errorf("capacity %q, sources %q", h1.GetCapacitySource(), resp.GetSources())
	}
	// The scenario's start also named host2 and host3 (service.create); the
	// conductor and scheduler are no hosts.
	if hostNamed(resp, "host3") == nil || hostNamed(resp, "conductor") != nil {
		t.Errorf("hosts %v", resp.GetHosts())
	}

	out, err := cli(t, "hosts", srv)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HOST", "ARCHITECTURE", "host1", "212.5 measured", "25% (agent)", "1/?", "up", "fed by events"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// Prometheus: events by type and outcome, lag, view gauges.
	r, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		`ecrae_events_total{outcome="applied",type="instance.create.end"} 1`,
		`ecrae_events_total{outcome="ignored",type="flavor.create"}`,
		`ecrae_events_total{outcome="applied",type="ecrae.metrics"} 1`,
		"ecrae_event_lag_seconds_count", `ecrae_hostview_hosts{state="up"} 3`, "ecrae_hostview_hosts_stale", "ecrae_hostview_instances 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Restart: the view comes back from its checkpoint and the stream, and
	// what was published while the service was down is applied.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	c2, _ := startServeOn(t, c)
	publishFixtures(t, c2.natsAddr, "instance.live_migration_post_dest.end") // replays the start (duplicates) and moves the instance
	resp = listHosts(t, "--server="+c2.grpcAddr, func(r *ecraev1.ListLiveHostsResponse) bool {
		h := hostNamed(r, "host2")
		return h != nil && h.GetInstances() == 1
	})
	if h1 := hostNamed(resp, "host1"); h1.GetInstances() != 0 || !h1.GetWattsMeasured() {
		t.Errorf("host1 after the restart and the move: %v", h1)
	}
}

// startServeOn starts serve again with the same configuration (ports, data
// directory) as c.
func startServeOn(t *testing.T, c serveConfig) (serveConfig, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, nil, slog.New(slog.DiscardHandler)) }()
	waitHealthy(t, c, done)
	stop := func() error { cancel(); return <-done }
	t.Cleanup(func() { stop() })
	return c, stop
}

func waitHealthy(t *testing.T, c serveConfig, done chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + c.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve not healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeWithoutCredentialsSaysSo(t *testing.T) {
	noCloud(t)
	dir := t.TempDir()
	a := freeAddrs(t, 3)
	c := serveConfig{grpcAddr: a[0], httpAddr: a[1], natsURL: "embedded", natsAddr: a[2],
		dbPath: filepath.Join(dir, "ecrae.db"), defaultTag: "default", shutdownGrace: time.Second}
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, nil, slog.New(slog.NewTextHandler(&logs, nil))) }()
	waitHealthy(t, c, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "no OpenStack credentials: running on events alone") {
		t.Errorf("log:\n%s", logs.String())
	}

	// A clouds.yaml cloud without Keystone whose endpoints do not answer:
	// the service still serves, on events, and says why.
	cfg := filepath.Join(dir, "clouds.yaml")
	writeFile(t, cfg, "clouds:\n  down:\n    auth_type: none\n    compute_endpoint_override: http://127.0.0.1:1/v2.1\n    placement_endpoint_override: http://127.0.0.1:1\n")
	t.Setenv("OS_CLIENT_CONFIG_FILE", cfg)
	c.osCloud, c.resyncInterval = "down", time.Hour
	var logs2 lockedBuffer
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- serve(ctx, c, nil, slog.New(slog.NewTextHandler(&logs2, nil))) }()
	waitHealthy(t, c, done)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs2.String(), "resync with Nova and Placement failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs2.String(), "resync with Nova and Placement failed") || !strings.Contains(logs2.String(), "OpenStack credentials found") {
		t.Errorf("log:\n%s", logs2.String())
	}

}

// TestHostsTableShowsDemand: a host asked for more CPU than it has says so
// next to its utilisation; one within its CPUs, or without a demand, does
// not.
func TestHostsTableShowsDemand(t *testing.T) {
	over, within := 1.5, 0.7
	resp := &ecraev1.ListLiveHostsResponse{Hosts: []*ecraev1.LiveHost{
		{Host: "busy", Utilization: 1, UtilizationSource: "node agent", CpuDemand: &over},
		{Host: "calm", Utilization: 0.6, UtilizationSource: "node agent", CpuDemand: &within},
		{Host: "plain", Utilization: 0.5, UtilizationSource: "node agent"},
	}}
	var b bytes.Buffer
	if err := printHosts(&b, resp, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	for _, c := range []struct {
		host string
		want bool
	}{{"busy", true}, {"calm", false}, {"plain", false}} {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, c.host+" ") })
		if i < 0 {
			t.Fatalf("no line for %s:\n%s", c.host, b.String())
		}
		if got := strings.Contains(lines[i], "asked 150%"); got != c.want || (c.host != "busy" && strings.Contains(lines[i], "asked")) {
			t.Errorf("%s: %q; want asked 150%% %v", c.host, lines[i], c.want)
		}
	}
}
