package rebalance

import (
	"context"
	"math"
	"time"

	"github.com/ecrae/ecrae/planstore"
)

// PeriodicConfig drives RunPeriodic.
type PeriodicConfig struct {
	Interval time.Duration
	// MinSavingW: execute only when the predicted saving (power before −
	// after − migration energy over the horizon) exceeds it.
	MinSavingW float64
	// Execute: run qualifying plans; otherwise only plan and log them.
	Execute bool
}

// SourcePeriodic is the source of the plans of the periodic mode.
const SourcePeriodic = "periodic (live view)"

// ExecutedByPeriodic is who executes the plans the periodic mode starts.
const ExecutedByPeriodic = "periodic"

// PlanFunc plans on the live view and stores the plan.
type PlanFunc func(ctx context.Context) (*planstore.Plan, error)

// RunPeriodic plans on the live view every interval and executes the plan
// when the saving exceeds the threshold, or when it repairs an overloaded
// host (repair comes before saving: such a plan may cost power), until ctx
// ends. A tick is skipped while a plan executes.
func (r *Executor) RunPeriodic(ctx context.Context, pc PeriodicConfig, plan PlanFunc) error {
	if pc.Interval <= 0 {
		return nil
	}
	t := time.NewTicker(pc.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if id := r.Executing(); id != "" {
			r.log.Info("periodic rebalance: skipped, a plan is executing", "plan", id)
			continue
		}
		p, err := plan(ctx)
		if err != nil {
			r.log.Warn("periodic rebalance: no plan", "err", err)
			continue
		}
		saving := p.PowerBeforeW - p.PowerAfterW - p.MigrationW
		switch {
		case len(p.Steps) == 0:
			r.log.Info("periodic rebalance: nothing to move", "note", p.Note)
		case saving <= pc.MinSavingW && len(p.Repaired) == 0:
			r.log.Info("periodic rebalance: saving below the threshold", "plan", p.ID, "saving_w", round1(saving), "threshold_w", pc.MinSavingW)
		case !pc.Execute:
			r.log.Info("periodic rebalance: planned, not executed (execution disabled)", "plan", p.ID, "saving_w", round1(saving))
		case r.cfg.Migrator == nil:
			r.log.Warn("periodic rebalance: no Nova connection to execute with", "plan", p.ID)
		default:
			if _, err := r.Start(ctx, p.ID, ExecutedByPeriodic, r.cfg.StepTimeout); err != nil {
				r.log.Warn("periodic rebalance: not started", "plan", p.ID, "err", err)
			}
		}
	}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
