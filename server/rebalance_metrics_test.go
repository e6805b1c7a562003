package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/rebalance"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// settler can wait for Nova: Settle and Locate answer differently.
type settler struct{}

func (settler) Locate(context.Context, string) (string, error)    { return "source", nil }
func (settler) LiveMigrate(context.Context, string, string) error { return nil }
func (settler) Settle(context.Context, string) (string, error)    { return "destination", nil }

// The counting wrapper keeps the Settle of what it wraps: without it a
// takeover located an instance still migrating on its source and failed
// the plan (seen in Nova's harness, test_cluster_rebalance_in_nova.py).
func TestCountMigrationsKeepsSettle(t *testing.T) {
	m := CountMigrations(settler{}, prometheus.NewRegistry())
	if _, ok := m.(rebalance.Settler); !ok {
		t.Fatal("CountMigrations hides rebalance.Settler")
	}
	got, err := rebalance.Settle(context.Background(), m, "vm1")
	if err != nil || got != "destination" {
		t.Errorf("Settle = %q, %v; want destination (Settle), not Locate's source", got, err)
	}
}

// gated migrates once released, and fails instances named "bad".
type gated struct {
	settler
	release chan struct{}
}

func (g gated) LiveMigrate(_ context.Context, id, _ string) error {
	<-g.release
	if id == "bad" {
		return errors.New("migration failed")
	}
	return nil
}

// TestMigrationMetrics: a migration counts as in flight while it runs,
// then once in the total and the duration histogram of its result.
func TestMigrationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := gated{release: make(chan struct{})}
	m := CountMigrations(g, reg)
	errs := make(chan error, 2)
	go func() { errs <- m.LiveMigrate(context.Background(), "vm1", "h2") }()
	go func() { errs <- m.LiveMigrate(context.Background(), "bad", "h2") }()
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, reg, "ecrae_rebalance_migrations_in_flight") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("two migrations running, the gauge never showed 2 in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(g.release)
	if err1, err2 := <-errs, <-errs; (err1 == nil) == (err2 == nil) {
		t.Fatalf("results %v, %v: want one done, one failed", err1, err2)
	}
	if n := gaugeValue(t, reg, "ecrae_rebalance_migrations_in_flight"); n != 0 {
		t.Errorf("in flight after both ended: %g, want 0", n)
	}
	for _, r := range []string{"done", "failed"} {
		if n := histogramCount(t, reg, "ecrae_rebalance_migration_seconds", r); n != 1 {
			t.Errorf("migration_seconds{result=%s}: %d observations, want 1", r, n)
		}
	}
	const want = `
# HELP ecrae_rebalance_migrations_total Live migrations made by rebalance plans, by result (done, failed).
# TYPE ecrae_rebalance_migrations_total counter
ecrae_rebalance_migrations_total{result="done"} 1
ecrae_rebalance_migrations_total{result="failed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecrae_rebalance_migrations_total"); err != nil {
		t.Error(err)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name, result string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == result {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	t.Fatalf("no %s{result=%s}", name, result)
	return 0
}
