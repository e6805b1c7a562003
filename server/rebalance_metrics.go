package server

import (
	"context"
	"time"

	"github.com/ecrae/ecrae/rebalance"
	"github.com/prometheus/client_golang/prometheus"
)

// countingMigrator counts the live migrations plans make, by result, and
// how many are in flight and how long they take.
type countingMigrator struct {
	rebalance.Migrator
	n        *prometheus.CounterVec
	inFlight prometheus.Gauge
	seconds  *prometheus.HistogramVec
}

// CountMigrations wraps m so that its live migrations are counted on reg:
// ecrae_rebalance_migrations_total{result} (done, failed),
// ecrae_rebalance_migrations_in_flight, and
// ecrae_rebalance_migration_seconds{result}.
func CountMigrations(m rebalance.Migrator, reg prometheus.Registerer) rebalance.Migrator {
	n := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecrae_rebalance_migrations_total", Help: "Live migrations made by rebalance plans, by result (done, failed).",
	}, []string{"result"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ecrae_rebalance_migrations_in_flight", Help: "Live migrations of rebalance plans in flight now.",
	})
	// From a small instance over a fast network to a large one whose pages
	// the guest keeps dirtying, up to the step timeout.
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ecrae_rebalance_migration_seconds", Help: "Time a live migration of a rebalance plan took, by result (done, failed).",
		Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
	}, []string{"result"})
	for _, r := range []string{"done", "failed"} {
		n.WithLabelValues(r)
		seconds.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(n, inFlight, seconds)
	}
	return &countingMigrator{Migrator: m, n: n, inFlight: inFlight, seconds: seconds}
}

func (c *countingMigrator) LiveMigrate(ctx context.Context, id, target string) error {
	c.inFlight.Inc()
	start := time.Now()
	err := c.Migrator.LiveMigrate(ctx, id, target)
	c.inFlight.Dec()
	result := "done"
	if err != nil {
		result = "failed"
	}
	c.n.WithLabelValues(result).Inc()
	c.seconds.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return err
}

// Settle passes through: a takeover waits for Nova as the migrator can.
func (c *countingMigrator) Settle(ctx context.Context, id string) (string, error) {
	return rebalance.Settle(ctx, c.Migrator, id)
}
