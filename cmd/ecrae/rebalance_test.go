package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc"
)

const rebalanceKB = `
schema_version: 1
architectures:
  - {name: old, isa: x86_64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,
     power_watts: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200], source: test}
tags:
  - name: default
    mode: hint
    candidates: [{isa: x86_64, performance_factor: 1}]
`

// snapshotYAML: four hosts, two 2-vCPU instances on each; two hosts can
// hold them all.
func snapshotYAML() string {
	var b strings.Builder
	b.WriteString("hosts:\n")
	for j := range 4 {
		fmt.Fprintf(&b, "  - {name: h%d, architecture: old, vcpus: 10, memory_mb: 16384, disk_gb: 500}\n", j)
	}
	b.WriteString("instances:\n")
	for i := range 8 {
		fmt.Fprintf(&b, "  - {id: i%d, name: vm%d, host: h%d, vcpus: 2, memory_mb: 2048, disk_gb: 10, cpu_utilization: 0.5}\n", i, i, i%4)
	}
	return b.String()
}

// kbServer is a Server on rebalanceKB, with a gRPC server and a listener
// the caller registers services on and then serves.
func kbServer(t *testing.T, dir string) (*server.Server, *grpc.Server, net.Listener) {
	t.Helper()
	store, err := kbstore.Open(filepath.Join(dir, "ecrae.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("kb", []byte(rebalanceKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(server.Codec{}))
	t.Cleanup(func() { g.Stop(); store.Close() })
	return srv, g, l
}

// TestRebalanceServeHook: the serve hook opens plans.db beside the KB,
// registers the service, and closes the store when serve's context ends.
func TestRebalanceServeHook(t *testing.T) {
	dir := t.TempDir()
	srv, g, l := kbServer(t, dir)
	var rs rebalanceServe
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	rs.register(fs)
	if err := fs.Parse([]string{"--rebalance-time-limit", "500ms"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run, stop, err := rs.start(g, srv, nil, filepath.Join(dir, "ecrae.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- run(ctx) }() // serve's errgroup, here the test, owns it
	go g.Serve(l)
	addr := "--server=" + l.Addr().String()
	snap := filepath.Join(dir, "snap.yaml")
	writeFile(t, snap, snapshotYAML())

	out, err := cli(t, "rebalance", "plan", "--snapshot", snap, addr)
	for _, want := range []string{"plan p1 (planned), from request snapshot", "power 480.0 W → 280.0 W", "hosts used 4 → 2",
		"hosts freed:", "4 migrations in", "STEP", "vm"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("rebalance plan: %v; output lacks %q:\n%s", err, want, out)
		}
	}
	out, err = cli(t, "rebalance", "show", "p1", addr, "--json")
	var shown struct {
		ID    string `json:"id"`
		Steps []any  `json:"steps"`
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != "p1" || len(shown.Steps) != 4 {
		t.Fatalf("rebalance show --json: %v\n%s", err, out)
	}
	out, err = cli(t, "rebalance", "execute", addr)
	if !errors.Is(err, errPlanStale) || exitCode(err) != exitPartial || !strings.Contains(out, "dry run of plan p1") || !strings.Contains(out, "no Nova connection") {
		t.Fatalf("dry run: %v (want exit 3: done, with a problem)\n%s", err, out)
	}
	// The same plan with --relieve (nothing in this snapshot is past a
	// ceiling, so the same moves), which the plan says it was made with.
	if out, err := cli(t, "rebalance", "plan", "--snapshot", snap, "--relieve", "0.95", addr); err != nil ||
		!strings.Contains(out, "relieve 0.95: hosts busy past a ceiling but within 95 % of their cores kept their instances") {
		t.Fatalf("rebalance plan --relieve 0.95: %v\n%s", err, out)
	}
	out, err = cli(t, "rebalance", "list", addr)
	for _, want := range []string{"PLAN", "p2", "p1", "planned", "request snapshot", "4 → 2"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("rebalance list: %v; output lacks %q:\n%s", err, want, out)
		}
	}
	if out, err = cli(t, "rebalance", "cancel", "p2", addr); err != nil || !strings.Contains(out, "plan p2 cancelled") {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	out, err = cli(t, "rebalance", "list", "--json", "--limit", "1", addr)
	var listed struct {
		Plans []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"plans"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Plans) != 1 || listed.Plans[0].ID != "p2" ||
		listed.Plans[0].Status != "cancelled" {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if _, err := cli(t, "rebalance", "abort", "p1", addr); err == nil || !strings.Contains(err.Error(), "not executing") {
		t.Errorf("abort of a planned plan: %v", err)
	}
	if _, err := cli(t, "rebalance", "cancel", addr); !errors.Is(err, errUsage) {
		t.Errorf("cancel without PLAN: %v", err)
	}
	out, err = cli(t, "rebalance", "execute", "p1", "--yes", addr)
	if err == nil || !strings.Contains(err.Error(), "no Nova connection") {
		t.Fatalf("execute without Nova: %v\n%s", err, out)
	}
	if _, err := cli(t, "rebalance", "nope"); !errors.Is(err, errUsage) {
		t.Errorf("unknown subcommand: %v", err)
	}

	// serve's context ends: run returns and the store is closed, so it
	// opens again.
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("run: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := planstore.Open(filepath.Join(dir, "plans.db"), planstore.Options{Timeout: 50 * time.Millisecond})
		if err == nil {
			if p, err := s.Get(context.Background(), "p1"); err != nil || p.Status != planstore.StatusPlanned {
				t.Errorf("p1 after restart: %v, %v", p, err)
			}
			s.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plans.db still locked after serve stopped: %v", err)
		}
	}
}

// cliMigrator moves instances at once, or fails its call number fail
// (from 1; 0 = none).
type cliMigrator struct {
	mu    sync.Mutex
	at    map[string]string
	fail  int
	calls int
}

func (m *cliMigrator) Locate(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.at[id], nil
}

func (m *cliMigrator) LiveMigrate(_ context.Context, id, to string) error {
	time.Sleep(20 * time.Millisecond)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls++; m.calls == m.fail {
		return errors.New("migration refused by the destination's filters")
	}
	m.at[id] = to
	return nil
}

// TestRebalanceExecuteShowsProgress: execute --yes follows the plan to its
// end, one line per step, and fails when the plan does.
func TestRebalanceExecuteShowsProgress(t *testing.T) {
	for _, fail := range []int{0, 2} {
		dir := t.TempDir()
		srv, g, l := kbServer(t, dir)
		plans, err := planstore.Open(filepath.Join(dir, "plans.db"), planstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := &cliMigrator{at: map[string]string{}, fail: fail}
		for i := range 8 {
			m.at[fmt.Sprintf("i%d", i)] = fmt.Sprintf("h%d", i%4)
		}
		rb := server.NewRebalancer(srv, server.RebalanceConfig{Plans: plans, Migrator: m})
		rb.Register(g)
		go g.Serve(l)
		addr := "--server=" + l.Addr().String()
		snap := filepath.Join(dir, "snap.yaml")
		writeFile(t, snap, snapshotYAML())
		if out, err := cli(t, "rebalance", "plan", "--snapshot", snap, "--max-parallel", "1", addr); err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		out, err := cli(t, "rebalance", "execute", "--yes", "--poll", "10ms", addr)
		if fail == 0 {
			if err != nil || strings.Count(out, ": done (confirmed by nova") != 4 || !strings.Contains(out, "plan p1 succeeded: all 4 steps done") {
				t.Errorf("execute: %v\n%s", err, out)
			}
		} else {
			if !errors.Is(err, errPlanFailed) || !strings.Contains(out, "failed — migration refused") || !strings.Contains(out, "plan p1 failed: stopped:") {
				t.Errorf("execute with a failure: %v\n%s", err, out)
			}
		}
		rb.Close()
		plans.Close()
	}
}
