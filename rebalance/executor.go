// Package rebalance executes stored rebalance plans through Nova, each
// live migration as soon as the plan's waves allow on its two hosts, and
// runs the periodic mode that plans and executes on its own. Planning
// itself (the optimizer on a cluster the catalog builds) and the gRPC
// surface are the server's.
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
	"github.com/ecrae/ecrae/optimizer"
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

// PlanStore keeps plans and their status (planstore.Store).
type PlanStore interface {
	Get(ctx context.Context, id string) (*planstore.Plan, error)
	Update(ctx context.Context, id string, fn func(*planstore.Plan) error) error
	Start(ctx context.Context, id, who string, now time.Time) (*planstore.Plan, error)
	Finish(ctx context.Context, id, to string, now time.Time, fn func(*planstore.Plan)) (*planstore.Plan, error)
}

var _ PlanStore = (*planstore.Store)(nil)

// LiveView is what execution reads of the live host view.
type LiveView interface {
	// Snapshot is the current hosts; shared, never modified.
	Snapshot() *hostview.Snapshot
	// Instances lists the instances of one host ("" = all).
	Instances(host string) []hostview.Instance
	// SetDraining and ClearDraining mark the hosts a running plan empties.
	SetDraining(planID string, hosts []string)
	ClearDraining(planID string)
}

var _ LiveView = (*hostview.View)(nil)

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
	// Freed, when set, is told of the hosts a plan empties (the power
	// manager powers them off): with a live view, each as soon as the rest
	// of the plan no longer touches it and the view shows it empty; the
	// others once the plan succeeded.
	Freed FreedHosts
}

// FreedHosts receives the hosts a plan emptied.
type FreedHosts interface {
	FreedHosts(ctx context.Context, hosts []string)
}

// Errors of Start.
var (
	// ErrBusy: another plan is executing.
	ErrBusy = errors.New("busy")
	// ErrNotPlanned: the plan is not in the planned state.
	ErrNotPlanned = errors.New("not planned")
	// ErrClosed: the executor is stopping.
	ErrClosed = errors.New("the service is stopping: no plan starts")
)

// Executor runs one plan at a time in the background.
type Executor struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	base   context.Context // executions run under it: Run's once it runs; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	active string // the plan executing, "" = none
	closed bool   // Close was called: nothing starts any more
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

// Run makes the executions started from now on run under ctx (the
// owner's, e.g. serve's errgroup), and when ctx ends, stops them all
// (Close).
func (r *Executor) Run(ctx context.Context) error {
	r.mu.Lock()
	old := r.cancel
	r.base, r.cancel = context.WithCancel(ctx)
	r.mu.Unlock()
	<-ctx.Done()
	old() // executions started before Run stop too
	r.Close()
	return nil
}

// Close stops executions (each marks its plan interrupted) and waits for
// them.
func (r *Executor) Close() {
	r.mu.Lock()
	cancel := r.cancel
	r.closed = true
	r.mu.Unlock()
	cancel()
	r.wg.Wait()
}

// Executing returns the id of the plan executing, "" when none.
func (r *Executor) Executing() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// StepTimeout is the configured time a migration may take.
func (r *Executor) StepTimeout() time.Duration { return r.cfg.StepTimeout }

// Start marks a plan executing, started by who, and runs it in the
// background. The hosts it frees are marked draining in the live view
// until it ends, so that placement does not fill them meanwhile.
func (r *Executor) Start(ctx context.Context, id, who string, timeout time.Duration) (*planstore.Plan, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if r.active != "" {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: plan %s is executing: one plan at a time", ErrBusy, r.active)
	}
	r.active = id
	base := r.base
	r.mu.Unlock()
	started, err := r.cfg.Plans.Start(ctx, id, who, r.cfg.Now())
	if err != nil {
		r.mu.Lock()
		r.active = ""
		r.mu.Unlock()
		if errors.Is(err, planstore.ErrTransition) {
			return nil, fmt.Errorf("%w: %w", ErrNotPlanned, err)
		}
		return nil, err
	}
	if r.cfg.Live != nil {
		r.cfg.Live.SetDraining(id, started.HostsFreed)
	}
	r.log.Info("rebalance executing", "plan", id, "by", who, "steps", len(started.Steps), "waves", started.Waves, "step_timeout", timeout)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.execute(base, started, timeout)
	}()
	return started, nil
}

// release undoes Start's marks: called before the plan's end is recorded,
// so that whoever sees the end sees the hosts placeable and may start
// another plan.
func (r *Executor) release(id string) {
	if r.cfg.Live != nil {
		r.cfg.Live.ClearDraining(id)
	}
	r.mu.Lock()
	r.active = ""
	r.mu.Unlock()
}

// execute runs the plan's steps, each as soon as optimizer.Gate lets it
// (its instance's earlier step and the earlier waves' steps out of its
// destination have ended, and its hosts have fewer than the plan's
// MaxPerHost in flight) and fewer than the plan's MaxParallel are in
// flight: a host never waits for the slowest migration of a wave
// elsewhere, a destination takes its next arrival as soon as one ends, and
// every host still holds at each start part of what the plan checked.
// Before steps start, the plan is checked against the live view (and the
// store, for an abort): a stale plan stops there with the reason. The
// first failure stops the plan: the steps in flight finish, no other
// starts, nothing is retried. Cancelling ctx (the service stopping)
// interrupts it.
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
	finish := func(to string, fn func(*planstore.Plan)) {
		if _, err := r.cfg.Plans.Finish(wctx, id, to, r.cfg.Now(), fn); err != nil {
			r.log.Error("rebalance: cannot record the end", "plan", id, "status", to, "err", err)
		}
	}
	skipRest := func(p *planstore.Plan) {
		for i := range p.Steps {
			if p.Steps[i].Status == planstore.StepPending {
				p.Steps[i].Status = planstore.StepSkipped
			}
		}
	}
	perHost := p.MaxPerHost
	if perHost <= 0 {
		perHost = optimizer.DefaultMaxPerHost // a plan stored before its bound was
	}
	gate := optimizer.NewGate(len(p.Steps), perHost, func(i int) optimizer.GateMove[string, string] {
		st := &p.Steps[i]
		return optimizer.GateMove[string, string]{From: st.From, To: st.To, Wave: st.Wave, Instance: st.InstanceID}
	})
	// A plan taken over from another leader (Resume) has steps done
	// already: only pending steps run.
	var pending []int
	for i, st := range p.Steps {
		if st.Status == planstore.StepPending {
			pending = append(pending, i)
		} else {
			gate.End(i)
		}
	}
	limit := p.MaxParallel
	if limit <= 0 {
		// A plan stored before its bound was: its largest wave.
		size := map[int]int{}
		for _, st := range p.Steps {
			size[st.Wave]++
			limit = max(limit, size[st.Wave])
		}
	}
	type outcome struct {
		step int
		err  error // nil: done
	}
	ended := make(chan outcome, len(p.Steps))
	running := map[int]bool{}
	told := map[string]bool{} // freed hosts the power manager heard of
	var failed, stale []string
	aborted, stop := false, false
	for {
		var ready []int
		if !stop && ctx.Err() == nil {
			ready = startable(gate, pending, len(running), limit)
		}
		if len(ready) > 0 {
			cur, err := r.cfg.Plans.Get(wctx, id)
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("cannot read the plan before step %d: %v", ready[0]+1, err))
			case cur.AbortRequested:
				aborted = true
			default:
				stale = r.stale(p, pending, running)
			}
			if stop = len(failed) > 0 || aborted || len(stale) > 0; stop {
				ready = nil
			}
		}
		for _, i := range ready {
			running[i] = true
			pending = slices.DeleteFunc(pending, func(k int) bool { return k == i })
			st := p.Steps[i]
			go func() {
				update(func(p *planstore.Plan) {
					p.Steps[i].Status, p.Steps[i].StartedAt = planstore.StepRunning, r.cfg.Now()
				})
				confirmed, err := r.step(ctx, st, timeout)
				if ctx.Err() != nil && err != nil {
					ended <- outcome{step: i} // interrupted: recorded below as unknown
					return
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
					r.log.Error("rebalance step failed", "plan", id, "step", i+1, "instance", st.InstanceID, "from", st.From, "to", st.To, "err", err)
				} else {
					r.log.Info("rebalance step done", "plan", id, "step", i+1, "wave", st.Wave+1, "instance", st.InstanceID, "to", st.To, "confirmed_by", confirmed)
				}
				ended <- outcome{step: i, err: err}
			}()
		}
		if len(running) == 0 {
			break
		}
		o := <-ended
		delete(running, o.step)
		gate.End(o.step)
		if o.err != nil {
			st := p.Steps[o.step]
			failed = append(failed, fmt.Sprintf("step %d (%s %s → %s): %v", o.step+1, name(st), st.From, st.To, o.err))
			stop = true
		}
		if !stop {
			r.tellFreed(wctx, p, pending, running, told)
		}
	}
	if ctx.Err() == nil && len(failed) == 0 && !aborted && len(stale) == 0 {
		// Every step done: a host is reported freed only if the live view
		// shows it empty (a boot may have landed after the last check).
		stale = r.notFreed(p)
	}
	r.release(id)
	switch {
	case ctx.Err() != nil && len(failed) == 0:
		finish(planstore.StatusInterrupted, func(p *planstore.Plan) { planstore.Interrupt(p, p.FinishedAt) })
		r.log.Warn("rebalance interrupted", "plan", id)
	case len(failed) > 0:
		slices.Sort(failed)
		finish(planstore.StatusFailed, func(p *planstore.Plan) {
			skipRest(p)
			p.Message = fmt.Sprintf("stopped: %s; %s; nothing was retried", strings.Join(failed, "; "), planstore.Summary(p))
		})
	case aborted:
		finish(planstore.StatusAborted, func(p *planstore.Plan) {
			skipRest(p)
			p.Message = fmt.Sprintf("aborted: the steps in flight finished, no more started; %s", planstore.Summary(p))
		})
		r.log.Warn("rebalance aborted", "plan", id)
	case len(stale) > 0:
		finish(planstore.StatusFailed, func(p *planstore.Plan) {
			skipRest(p)
			p.Message = fmt.Sprintf("stopped, the plan is out of date: %s; %s; plan again", strings.Join(stale, "; "), planstore.Summary(p))
		})
		r.log.Warn("rebalance stopped: plan out of date", "plan", id, "reasons", stale)
	default:
		finish(planstore.StatusSucceeded, func(p *planstore.Plan) {
			p.Message = fmt.Sprintf("all %d steps done", len(p.Steps))
			if len(p.HostsFreed) > 0 {
				p.Message += "; hosts freed: " + strings.Join(p.HostsFreed, ", ")
			}
		})
		r.log.Info("rebalance succeeded", "plan", id)
		rest := slices.DeleteFunc(slices.Clone(p.HostsFreed), func(h string) bool { return told[h] })
		if r.cfg.Freed != nil && len(rest) > 0 {
			r.cfg.Freed.FreedHosts(wctx, rest)
		}
	}
}

// startable lists the pending steps (in plan order) that may start now,
// and marks them started in the gate: the gate lets them, and with them
// at most limit steps are in flight. A step listed that then does not run
// (the plan stops first) leaves the gate counting it, which no longer
// matters: nothing starts after a stop.
func startable(gate *optimizer.Gate[string, string], pending []int, inFlight, limit int) []int {
	var ready []int
	for _, i := range pending {
		if inFlight+len(ready) >= limit {
			break
		}
		if gate.Ready(i) {
			gate.Start(i)
			ready = append(ready, i)
		}
	}
	return ready
}

// tellFreed tells the power manager, as steps end, of the hosts the plan
// frees that no step still to start (pending) or in flight (running)
// touches and that the live view shows empty: plans empty hosts one after
// another, and each may go off while the others drain. Without a live view
// nothing is told before the plan succeeds (a boot could have landed on
// the host).
func (r *Executor) tellFreed(ctx context.Context, p *planstore.Plan, pending []int, running map[int]bool, told map[string]bool) {
	if r.cfg.Freed == nil || r.cfg.Live == nil {
		return
	}
	busy := map[string]bool{}
	for _, i := range pending {
		busy[p.Steps[i].From], busy[p.Steps[i].To] = true, true
	}
	for i := range running {
		busy[p.Steps[i].From], busy[p.Steps[i].To] = true, true
	}
	var now []string
	for _, h := range p.HostsFreed {
		if told[h] || busy[h] || len(r.holds(h)) > 0 {
			continue
		}
		told[h] = true
		now = append(now, h)
	}
	if len(now) > 0 {
		r.log.Info("rebalance: hosts freed while the plan goes on", "plan", p.ID, "hosts", now)
		r.cfg.Freed.FreedHosts(ctx, now)
	}
}

// stale checks the steps still to start (check, in plan order) against
// the live view: each instance still exists, at its planned size, where
// its next move expects it (unless a step in flight, running, moves it
// now); each destination still takes instances; and each host to be freed
// holds only instances the plan moves away. It returns what is wrong (nil:
// the plan still holds, or there is no live view to check with).
func (r *Executor) stale(p *planstore.Plan, check []int, running map[int]bool) []string {
	lv := r.cfg.Live
	if lv == nil {
		return nil
	}
	at := map[string]hostview.Instance{}
	for _, in := range lv.Instances("") {
		at[in.UUID] = in
	}
	state := map[string]hostview.ServiceState{}
	snap := lv.Snapshot()
	for i := range snap.Hosts {
		state[snap.Hosts[i].Name] = snap.Hosts[i].Service
	}
	var why []string
	seen := map[string]bool{}
	// host → instances the plan moves off it. All steps, done ones too: the
	// view may not have seen a done move yet.
	leaving := map[string]map[string]bool{}
	for _, st := range p.Steps {
		if leaving[st.From] == nil {
			leaving[st.From] = map[string]bool{}
		}
		leaving[st.From][st.InstanceID] = true
	}
	for i := range running {
		seen[p.Steps[i].InstanceID] = true // on its way: where it is now proves nothing
	}
	for _, i := range check {
		st := p.Steps[i]
		if s, ok := state[st.To]; ok && !s.Placeable() {
			why = append(why, fmt.Sprintf("step %d: destination %s is %s", i+1, st.To, s))
		}
		if seen[st.InstanceID] {
			continue
		}
		seen[st.InstanceID] = true
		in, ok := at[st.InstanceID]
		switch {
		case !ok || in.State == "deleted":
			why = append(why, fmt.Sprintf("step %d: %s is gone (deleted)", i+1, name(st)))
		case in.Host != st.From:
			why = append(why, fmt.Sprintf("step %d: %s is on %s, not on %s as planned", i+1, name(st), in.Host, st.From))
		case st.MemoryMB > 0 && in.Flavor.MemoryMB > 0 && in.Flavor.MemoryMB != st.MemoryMB:
			why = append(why, fmt.Sprintf("step %d: %s was resized (%d MB, planned %d MB)", i+1, name(st), in.Flavor.MemoryMB, st.MemoryMB))
		}
	}
	for _, h := range p.HostsFreed {
		for _, in := range lv.Instances(h) {
			if in.State != "deleted" && !leaving[h][in.UUID] {
				why = append(why, fmt.Sprintf("host %s to be freed now holds %s, which the plan does not move", h, label(in)))
			}
		}
	}
	return why
}

// notFreed lists the hosts the plan frees that the live view does not
// show empty.
func (r *Executor) notFreed(p *planstore.Plan) []string {
	if r.cfg.Live == nil {
		return nil
	}
	var why []string
	for _, h := range p.HostsFreed {
		if names := r.holds(h); len(names) > 0 {
			why = append(why, fmt.Sprintf("host %s is not freed: it holds %s", h, strings.Join(names, ", ")))
		}
	}
	return why
}

// holds labels the instances the live view shows on host h.
func (r *Executor) holds(h string) []string {
	var names []string
	for _, in := range r.cfg.Live.Instances(h) {
		if in.State != "deleted" {
			names = append(names, label(in))
		}
	}
	return names
}

func label(in hostview.Instance) string {
	if in.Name != "" && in.Name != in.UUID {
		return in.Name + " " + in.UUID
	}
	return in.UUID
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
// expects it, at its planned size, is every destination still a host that
// may receive, and does every host to be freed hold only what the plan
// moves (stale; without a live view, Nova is asked where instances are)?
func (r *Executor) Check(ctx context.Context, p *planstore.Plan) []string {
	var problems []string
	if p.Status != planstore.StatusPlanned {
		problems = append(problems, fmt.Sprintf("plan %s is %s, not planned: it cannot run again", p.ID, p.Status))
	}
	if p.Status == planstore.StatusPlanned && !p.ExpiresAt.IsZero() && !r.cfg.Now().Before(p.ExpiresAt) {
		problems = append(problems, fmt.Sprintf("plan %s expired at %s: plan again", p.ID, p.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if len(p.Steps) == 0 {
		problems = append(problems, "the plan has no moves")
	}
	if r.cfg.Live != nil {
		all := make([]int, len(p.Steps))
		for i := range all {
			all[i] = i
		}
		problems = append(problems, r.stale(p, all, nil)...)
	} else if r.cfg.Migrator != nil {
		seen := map[string]bool{}
		for i, st := range p.Steps {
			if seen[st.InstanceID] {
				continue
			}
			seen[st.InstanceID] = true
			at, err := r.cfg.Migrator.Locate(ctx, st.InstanceID)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("step %d: %v", i+1, err))
			case at != st.From:
				problems = append(problems, fmt.Sprintf("step %d: %s is on %s, not on %s as planned", i+1, name(st), at, st.From))
			}
		}
	}
	if r.cfg.Migrator == nil {
		problems = append(problems, "no Nova connection: the plan can be checked, not executed")
	}
	return problems
}

// Settler is a Migrator that can wait for Nova to finish what an instance
// is doing (a live migration started by a replica that died) and say
// where it then runs; openstack.Migrator is one.
type Settler interface {
	Settle(ctx context.Context, id string) (string, error)
}

// Settle settles id through m when m is a Settler, else asks where it is
// now; a Migrator that wraps another passes Settle on with it.
func Settle(ctx context.Context, m Migrator, id string) (string, error) {
	if s, ok := m.(Settler); ok {
		return s.Settle(ctx, id)
	}
	return m.Locate(ctx, id)
}

// Resume takes over a plan another replica was executing when it lost the
// lead (cluster mode): each step it had marked running is confirmed from
// Nova (waiting for Nova to finish it), never started again; if every one
// reached its destination, the remaining steps run as Start would run
// them, re-checked against the live view first; otherwise the plan fails,
// saying where each instance is.
func (r *Executor) Resume(ctx context.Context, id string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.active == id {
		r.mu.Unlock()
		return nil // this replica runs it already (it led before, and leads again)
	}
	if r.active != "" {
		r.mu.Unlock()
		return fmt.Errorf("%w: plan %s is executing: one plan at a time", ErrBusy, r.active)
	}
	r.active = id
	base := r.base
	r.mu.Unlock()
	p, err := r.cfg.Plans.Get(ctx, id)
	if err == nil && p.Status != planstore.StatusExecuting {
		err = fmt.Errorf("%w: plan %s is %s, not executing", ErrNotPlanned, id, p.Status)
	}
	if err == nil && r.cfg.Migrator == nil {
		err = errors.New("no executor (no OpenStack credentials): the plan cannot be taken over")
	}
	if err != nil {
		r.release(id)
		return err
	}
	var failed []string
	for i := range p.Steps {
		st := &p.Steps[i]
		if st.Status != planstore.StepRunning {
			continue
		}
		where, err := r.settle(ctx, st.InstanceID)
		st.FinishedAt = r.cfg.Now()
		switch {
		case err != nil:
			st.Status, st.Error = planstore.StepUnknown, "in flight when the previous leader stopped; Nova could not say where it is: "+err.Error()
		case where == st.To:
			st.Status, st.ConfirmedBy = planstore.StepDone, "after takeover (started by the previous leader): settled by Nova, or for a container by its agents' reports"
		default:
			st.Status, st.Error = planstore.StepFailed, fmt.Sprintf("in flight when the previous leader stopped; Nova shows it on %s; not retried", where)
		}
		if st.Status != planstore.StepDone {
			failed = append(failed, fmt.Sprintf("step %d (%s): %s", i+1, name(*st), st.Error))
		}
		r.log.Info("rebalance takeover: in-flight step confirmed from Nova", "plan", id, "step", i+1, "instance", st.InstanceID, "status", st.Status, "host", where)
	}
	wctx := context.WithoutCancel(ctx)
	if err := r.cfg.Plans.Update(wctx, id, func(q *planstore.Plan) error { q.Steps = p.Steps; return nil }); err != nil {
		r.release(id)
		return fmt.Errorf("record the takeover of plan %s: %w", id, err)
	}
	if len(failed) > 0 {
		r.release(id)
		_, err := r.cfg.Plans.Finish(wctx, id, planstore.StatusFailed, r.cfg.Now(), func(q *planstore.Plan) {
			for i := range q.Steps {
				if q.Steps[i].Status == planstore.StepPending {
					q.Steps[i].Status = planstore.StepSkipped
				}
			}
			q.Message = fmt.Sprintf("stopped at takeover: %s; %s; nothing was retried", strings.Join(failed, "; "), planstore.Summary(q))
		})
		return err
	}
	if r.cfg.Live != nil {
		r.cfg.Live.SetDraining(id, p.HostsFreed)
	}
	r.log.Warn("rebalance: took over a plan the previous leader was executing", "plan", id, "summary", planstore.Summary(p))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.execute(base, p, r.cfg.StepTimeout)
	}()
	return nil
}

// settle asks Nova where an instance is once nothing is in progress on it.
func (r *Executor) settle(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	return Settle(ctx, r.cfg.Migrator, id)
}
