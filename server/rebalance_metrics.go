package server

import (
	"context"

	"github.com/ecrae/ecrae/rebalance"
	"github.com/prometheus/client_golang/prometheus"
)

// countingMigrator counts the live migrations plans make, by result.
type countingMigrator struct {
	rebalance.Migrator
	n *prometheus.CounterVec
}

// CountMigrations wraps m so that ecrae_rebalance_migrations_total{result}
// (done, failed) counts its live migrations on reg.
func CountMigrations(m rebalance.Migrator, reg prometheus.Registerer) rebalance.Migrator {
	n := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecrae_rebalance_migrations_total", Help: "Live migrations made by rebalance plans, by result (done, failed).",
	}, []string{"result"})
	n.WithLabelValues("done")
	n.WithLabelValues("failed")
	if reg != nil {
		reg.MustRegister(n)
	}
	return &countingMigrator{Migrator: m, n: n}
}

func (c *countingMigrator) LiveMigrate(ctx context.Context, id, target string) error {
	err := c.Migrator.LiveMigrate(ctx, id, target)
	if err != nil {
		c.n.WithLabelValues("failed").Inc()
	} else {
		c.n.WithLabelValues("done").Inc()
	}
	return err
}

// Settle passes through: a takeover waits for Nova as the migrator can.
func (c *countingMigrator) Settle(ctx context.Context, id string) (string, error) {
	return rebalance.Settle(ctx, c.Migrator, id)
}
