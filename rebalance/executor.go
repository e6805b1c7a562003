// Package rebalance executes stored rebalance plans through Nova, one
// wave of live migrations at a time, and runs the periodic mode that plans
// and executes on its own. Planning itself (the optimizer on a cluster the
// catalog builds) and the gRPC surface are the server's.
package rebalance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/planstore"
)

// Migrator moves instances by live migration (openstack.Migrator).
type Migrator interface {
	// Locate returns the host an instance runs on, as Nova says.
	Locate(ctx context.Context, id string) (string, error)
	// LiveMigrate moves it to target and returns once Nova shows it there,
	// or an error saying why not; ctx's deadline is the step's timeout.
	LiveMigrate(ctx context.Context, id, target string) error
}

// PlanStore keeps plans (planstore.Store).
type PlanStore interface {
	Get(ctx context.Context, id string) (*planstore.Plan, error)
	Update(ctx context.Context, id string, fn func(*planstore.Plan) error) error
}

var _ PlanStore = (*planstore.Store)(nil)

// LiveView is what execution reads of the live host view.
type LiveView interface {
	// Snapshot is the current hosts; shared, never modified.
	Snapshot() *hostview.Snapshot
	// Instances lists the instances of one host ("" = all).
	Instances(host string) []hostview.Instance
}

// Config wires an Executor.
type Config struct {
	Plans PlanStore
	// Migrator executes plans; nil = dry runs only.
	Migrator Migrator
	// Live is the live host view; nil = none.
	Live LiveView
	// StepTimeout of a migration; 0 = 10 min. ViewGrace: how long a done
	// step waits for the live view to see the move; 0 = 10s.
	StepTimeout time.Duration
	ViewGrace   time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Errors of Start.
var (
	// ErrBusy: another plan is executing.
	ErrBusy = errors.New("busy")
	// ErrNotPlanned: the plan is not in the planned state.
	ErrNotPlanned = errors.New("not planned")
)

// Executor runs one plan at a time in the background.
type Executor struct {
	cfg Config
	log *slog.Logger

	base   context.Context // executions run under it; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active string // the plan executing, "" = none
}

// NewExecutor returns an executor; Close stops it.
func NewExecutor(cfg Config) *Executor {
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 10 * time.Minute
	}
	if cfg.ViewGrace <= 0 {
		cfg.ViewGrace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Executor{cfg: cfg, log: cfg.Log, base: ctx, cancel: cancel}
}

// Close stops executions (each marks its plan interrupted) and waits for
// them.
func (r *Executor) Close() {
	r.cancel()
	r.wg.Wait()
}

// Executing returns the id of the plan executing, "" when none.
func (r *Executor) Executing() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// CanExecute says whether a Migrator is configured.
func (r *Executor) CanExecute() bool { return r.cfg.Migrator != nil }

// StepTimeout is the configured time a migration may take.
func (r *Executor) StepTimeout() time.Duration { return r.cfg.StepTimeout }

// Start marks a plan executing and runs it in the background.
func (r *Executor) Start(ctx context.Context, id string, timeout time.Duration) (*planstore.Plan, error) {
	r.mu.Lock()
	if r.active != "" {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: plan %s is executing: one plan at a time", ErrBusy, r.active)
	}
	r.active = id
	r.mu.Unlock()
	var started *planstore.Plan
	err := r.cfg.Plans.Update(ctx, id, func(p *planstore.Plan) error {
		if p.Status != planstore.StatusPlanned {
			return fmt.Errorf("%w: plan %s is %s, not planned: plan again", ErrNotPlanned, p.ID, p.Status)
		}
		p.Status, p.StartedAt, p.Message = planstore.StatusExecuting, r.cfg.Now(), "executing"
		for i := range p.Steps {
			p.Steps[i].Status = planstore.StepPending
		}
		started = p
		return nil
	})
	if err != nil {
		r.mu.Lock()
		r.active = ""
		r.mu.Unlock()
		return nil, err
	}
	r.log.Info("rebalance executing", "plan", id, "steps", len(started.Steps), "waves", started.Waves, "step_timeout", timeout)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			r.active = ""
			r.mu.Unlock()
		}()
		r.execute(r.base, started, timeout)
	}()
	return started, nil
}

// execute runs the plan's waves in order; the steps of a wave run
// together. The first failure stops the plan after its wave: the steps
// after it are skipped, nothing is retried. Cancelling ctx (the service
// stopping) interrupts it.
func (r *Executor) execute(ctx context.Context, p *planstore.Plan, timeout time.Duration) {
	id := p.ID
	// Store writes must land even while ctx is being cancelled.
	wctx := context.WithoutCancel(ctx)
	update := func(fn func(*planstore.Plan)) {
		err := r.cfg.Plans.Update(wctx, id, func(p *planstore.Plan) error { fn(p); return nil })
		if err != nil {
			r.log.Error("rebalance: cannot record progress", "plan", id, "err", err)
		}
	}
	// Waves in order of their numbers (steps are stored wave by wave).
	var waves [][]int
	for i, st := range p.Steps {
		if len(waves) == 0 || p.Steps[waves[len(waves)-1][0]].Wave != st.Wave {
			waves = append(waves, nil)
		}
		waves[len(waves)-1] = append(waves[len(waves)-1], i)
	}
	var failed []string
	for _, wave := range waves {
		if ctx.Err() != nil {
			break
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, i := range wave {
			st := p.Steps[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				update(func(p *planstore.Plan) {
					p.Steps[i].Status, p.Steps[i].StartedAt = planstore.StepRunning, r.cfg.Now()
				})
				confirmed, err := r.step(ctx, st, timeout)
				if ctx.Err() != nil && err != nil {
					return // interrupted: recorded below as unknown
				}
				update(func(p *planstore.Plan) {
					s := &p.Steps[i]
					s.FinishedAt = r.cfg.Now()
					if err != nil {
						s.Status, s.Error = planstore.StepFailed, err.Error()
						return
					}
					s.Status, s.ConfirmedBy = planstore.StepDone, confirmed
				})
				if err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("step %d (%s %s → %s): %v", i, name(st), st.From, st.To, err))
					mu.Unlock()
					r.log.Error("rebalance step failed", "plan", id, "step", i, "instance", st.InstanceID, "from", st.From, "to", st.To, "err", err)
				} else {
					r.log.Info("rebalance step done", "plan", id, "step", i, "instance", st.InstanceID, "to", st.To, "confirmed_by", confirmed)
				}
			}()
		}
		wg.Wait()
		if len(failed) > 0 {
			break
		}
	}
	now := r.cfg.Now()
	switch {
	case ctx.Err() != nil && len(failed) == 0:
		update(func(p *planstore.Plan) { planstore.Interrupt(p, now) })
		r.log.Warn("rebalance interrupted", "plan", id)
	case len(failed) > 0:
		slices.Sort(failed)
		update(func(p *planstore.Plan) {
			p.Status, p.FinishedAt = planstore.StatusFailed, now
			for i := range p.Steps {
				if p.Steps[i].Status == planstore.StepPending {
					p.Steps[i].Status = planstore.StepSkipped
				}
			}
			p.Message = fmt.Sprintf("stopped: %s; %s; nothing was retried", strings.Join(failed, "; "), planstore.Summary(p))
		})
	default:
		update(func(p *planstore.Plan) {
			p.Status, p.FinishedAt = planstore.StatusSucceeded, now
			p.Message = fmt.Sprintf("all %d steps done", len(p.Steps))
			if len(p.HostsFreed) > 0 {
				p.Message += "; hosts freed: " + strings.Join(p.HostsFreed, ", ")
			}
		})
		r.log.Info("rebalance succeeded", "plan", id)
	}
}

// name labels a step's instance: its name and uuid, or the uuid alone.
func name(st planstore.Step) string {
	if st.InstanceName != "" && st.InstanceName != st.InstanceID {
		return st.InstanceName + " " + st.InstanceID
	}
	return st.InstanceID
}

// step makes one migration: check that the instance is where the plan
// expects it, migrate, then wait (a little) for the live view to see it.
func (r *Executor) step(ctx context.Context, st planstore.Step, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	where, err := r.cfg.Migrator.Locate(ctx, st.InstanceID)
	if err != nil {
		return "", err
	}
	if where != st.From {
		return "", fmt.Errorf("the instance is on %s, not on %s as planned: the plan is out of date", where, st.From)
	}
	if err := r.cfg.Migrator.LiveMigrate(ctx, st.InstanceID, st.To); err != nil {
		return "", err
	}
	lv := r.cfg.Live
	if lv == nil {
		return "nova (server and migration records)", nil
	}
	deadline := r.cfg.Now().Add(r.cfg.ViewGrace)
	for {
		if slices.ContainsFunc(lv.Instances(st.To), func(i hostview.Instance) bool { return i.UUID == st.InstanceID }) {
			return "nova (server and migration records) and the live view", nil
		}
		if !r.cfg.Now().Before(deadline) || ctx.Err() != nil {
			return fmt.Sprintf("nova (server and migration records); the live view had not seen the move after %s", r.cfg.ViewGrace), nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Check is a dry run: is every instance where the plan's first move of it
// expects it, and is every destination still a host that may receive?
func (r *Executor) Check(ctx context.Context, p *planstore.Plan) []string {
	var problems []string
	if p.Status != planstore.StatusPlanned {
		problems = append(problems, fmt.Sprintf("plan %s is %s, not planned: it cannot run again", p.ID, p.Status))
	}
	if len(p.Steps) == 0 {
		problems = append(problems, "the plan has no moves")
	}
	where := map[string]string{}
	hostState := map[string]hostview.ServiceState{}
	lv := r.cfg.Live
	if lv != nil {
		for _, in := range lv.Instances("") {
			where[in.UUID] = in.Host
		}
		snap := lv.Snapshot()
		for i := range snap.Hosts {
			hostState[snap.Hosts[i].Name] = snap.Hosts[i].Service
		}
	}
	seen := map[string]bool{}
	for i, st := range p.Steps {
		if seen[st.InstanceID] {
			continue
		}
		seen[st.InstanceID] = true
		var at string
		switch {
		case lv != nil:
			h, ok := where[st.InstanceID]
			if !ok {
				problems = append(problems, fmt.Sprintf("step %d: %s is not in the live view (deleted?)", i, name(st)))
				continue
			}
			at = h
		case r.cfg.Migrator != nil:
			h, err := r.cfg.Migrator.Locate(ctx, st.InstanceID)
			if err != nil {
				problems = append(problems, fmt.Sprintf("step %d: %v", i, err))
				continue
			}
			at = h
		default:
			continue
		}
		if at != st.From {
			problems = append(problems, fmt.Sprintf("step %d: %s is on %s, not on %s as planned", i, name(st), at, st.From))
		}
	}
	if lv != nil {
		for i, st := range p.Steps {
			if s, ok := hostState[st.To]; ok && !s.Placeable() {
				problems = append(problems, fmt.Sprintf("step %d: destination %s is %s", i, st.To, s))
			}
		}
	}
	if r.cfg.Migrator == nil {
		problems = append(problems, "no Nova connection: the plan can be checked, not executed")
	}
	return problems
}
