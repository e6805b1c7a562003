package server

import (
	"context"
	"testing"

	"github.com/ecrae/ecrae/rebalance"
	"github.com/prometheus/client_golang/prometheus"
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
