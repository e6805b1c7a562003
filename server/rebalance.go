package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The RebalanceService (issue 5): plans on the live view or a snapshot,
// stores them, and executes them through a Migrator, one wave at a time.

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
	Create(ctx context.Context, p *planstore.Plan) (string, error)
	Get(ctx context.Context, id string) (*planstore.Plan, error)
	Update(ctx context.Context, id string, fn func(*planstore.Plan) error) error
}

var _ PlanStore = (*planstore.Store)(nil)

// GroupsFunc lists Nova's server groups: each group's rule and members.
type GroupsFunc func(ctx context.Context) ([]optimizer.ServerGroup, map[string]string, error)

// RebalanceConfig wires the RebalanceService.
type RebalanceConfig struct {
	Plans PlanStore
	// Migrator executes plans; nil = dry runs only.
	Migrator Migrator
	// Groups gives the server groups of the live view (the view does not
	// follow them); nil = none known, and Nova's filters refuse a move that
	// breaks one, which stops the plan at that step.
	Groups GroupsFunc
	// DefaultTimeLimit of a search; 0 = 1s. StepTimeout of a migration; 0 =
	// 10 min. ViewGrace: how long a done step waits for the live view to
	// see the move; 0 = 10s.
	DefaultTimeLimit time.Duration
	StepTimeout      time.Duration
	ViewGrace        time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Limits of a request.
const (
	maxTimeLimit    = time.Minute
	maxSnapshotInst = 200_000
)

// Sources of a plan.
const (
	SourceLive     = "live view"
	SourceSnapshot = "request snapshot"
	SourcePeriodic = "periodic (live view)"
)

// Rebalancer implements ecraev1.RebalanceServiceServer.
type Rebalancer struct {
	ecraev1.UnimplementedRebalanceServiceServer

	srv *Server
	cfg RebalanceConfig
	log *slog.Logger

	base   context.Context // executions run under it; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active string // the plan executing, "" = none
}

// NewRebalancer returns the service on srv's knowledge base and live view.
func NewRebalancer(srv *Server, cfg RebalanceConfig) *Rebalancer {
	if cfg.DefaultTimeLimit <= 0 {
		cfg.DefaultTimeLimit = time.Second
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 10 * time.Minute
	}
	if cfg.ViewGrace <= 0 {
		cfg.ViewGrace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Rebalancer{srv: srv, cfg: cfg, log: srv.log, base: ctx, cancel: cancel}
}

// Register adds the service to g.
func (r *Rebalancer) Register(g *grpc.Server) { ecraev1.RegisterRebalanceServiceServer(g, r) }

// Close stops executions (each marks its plan interrupted) and waits for
// them.
func (r *Rebalancer) Close() {
	r.cancel()
	r.wg.Wait()
}

// Executing returns the id of the plan executing, "" when none.
func (r *Rebalancer) Executing() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// ErrNoLiveView says that a plan was asked of the live view and the
// service has none.
var ErrNoLiveView = errors.New("no live view")

func (r *Rebalancer) plans() (PlanStore, error) {
	if r.cfg.Plans == nil {
		return nil, status.Error(codes.FailedPrecondition, "rebalancing is not configured: no plan store")
	}
	return r.cfg.Plans, nil
}

// PlanRebalance plans, stores and returns a plan.
func (r *Rebalancer) PlanRebalance(ctx context.Context, req *ecraev1.PlanRebalanceRequest) (*ecraev1.PlanRebalanceResponse, error) {
	source := SourceLive
	if req.GetSnapshot() != nil {
		source = SourceSnapshot
	}
	p, err := r.plan(ctx, req, source)
	if err != nil {
		return nil, err
	}
	return &ecraev1.PlanRebalanceResponse{Plan: planToProto(p)}, nil
}

// plan computes and stores a plan.
func (r *Rebalancer) plan(ctx context.Context, req *ecraev1.PlanRebalanceRequest, source string) (*planstore.Plan, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	opts, limit, err := r.options(req)
	if err != nil {
		return nil, err
	}
	c, err := r.srv.catalog(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	var cl optimizer.Cluster
	if req.GetSnapshot() != nil {
		if cl, err = c.snapshotCluster(req.GetSnapshot(), r.srv.cfg.DefaultTag, r.srv.cfg.MaxHosts); err != nil {
			return nil, err
		}
	} else {
		if cl, err = r.liveCluster(ctx, c); err != nil {
			return nil, err
		}
	}
	start := r.cfg.Now()
	// Cancel: the caller's cancellation or deadline stops every phase.
	opts.Budget = optimizer.Budget{Now: r.cfg.Now, Deadline: start.Add(limit), Cancel: ctx.Done()}
	plan, err := optimizer.Consolidate(cl, opts)
	switch {
	case errors.Is(err, optimizer.ErrUnknownAlgorithm):
		return nil, invalid("algorithm", "%v", err)
	case errors.Is(err, optimizer.ErrBadSnapshot):
		return nil, invalid("snapshot", "%v", err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "plan: %v", err)
	}
	sp := storedPlan(cl, plan, source, r.cfg.Now(), r.cfg.Now().Sub(start))
	sp.MaxPerHost, sp.MaxParallel = opts.MaxPerHost, opts.MaxParallel
	if sp.MaxPerHost == 0 {
		sp.MaxPerHost = optimizer.DefaultMaxPerHost
	}
	if sp.MaxParallel == 0 {
		sp.MaxParallel = optimizer.DefaultMaxParallel
	}
	if _, err := store.Create(ctx, sp); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	r.log.Info("rebalance planned", "plan", sp.ID, "source", source, "algorithm", sp.Algorithm,
		"moves", len(sp.Steps), "waves", sp.Waves, "power_before_w", round1(sp.PowerBeforeW),
		"power_after_w", round1(sp.PowerAfterW), "hosts_freed", len(sp.HostsFreed), "seconds", round3(sp.Seconds))
	return sp, nil
}

// options validates a request's tuning and returns the search's time limit.
func (r *Rebalancer) options(req *ecraev1.PlanRebalanceRequest) (optimizer.ConsolidateOptions, time.Duration, error) {
	var o optimizer.ConsolidateOptions
	limit := r.cfg.DefaultTimeLimit
	if d := req.GetTimeLimit(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 || d.AsDuration() > maxTimeLimit {
			return o, 0, invalid("time_limit", "must be positive and at most %s", maxTimeLimit)
		}
		limit = d.AsDuration()
	}
	for _, f := range []struct {
		name string
		v    int32
	}{{"max_migrations", req.GetMaxMigrations()}, {"max_per_host", req.GetMaxPerHost()}, {"max_parallel", req.GetMaxParallel()}} {
		if f.v < 0 {
			return o, 0, invalid(f.name, "must not be negative, got %d", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"migration_joules_per_mb", req.GetMigrationJoulesPerMb()}, {"migration_joules", req.GetMigrationJoules()}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return o, 0, invalid(f.name, "must be a finite number >= 0, got %v", f.v)
		}
	}
	if h := req.GetHorizon(); h != nil {
		if err := h.CheckValid(); err != nil || h.AsDuration() < 0 {
			return o, 0, invalid("horizon", "must be a valid positive duration")
		}
		o.Horizon = h.AsDuration()
	}
	if req.GetAlgorithm() != "" && !slices.Contains(optimizer.Algorithms(), req.GetAlgorithm()) {
		return o, 0, invalid("algorithm", "unknown algorithm %q (known: %s)", req.GetAlgorithm(), strings.Join(optimizer.Algorithms(), ", "))
	}
	o.Algorithm, o.Seed = req.GetAlgorithm(), req.GetSeed()
	o.MaxMigrations, o.MaxPerHost, o.MaxParallel = int(req.GetMaxMigrations()), int(req.GetMaxPerHost()), int(req.GetMaxParallel())
	o.MigrationJoulesPerMB, o.MigrationJoules = req.GetMigrationJoulesPerMb(), req.GetMigrationJoules()
	return o, limit, nil
}

// GetPlan returns a stored plan.
func (r *Rebalancer) GetPlan(ctx context.Context, req *ecraev1.GetPlanRequest) (*ecraev1.GetPlanResponse, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	p, err := store.Get(ctx, req.GetPlanId())
	if err != nil {
		return nil, storeError(err)
	}
	return &ecraev1.GetPlanResponse{Plan: planToProto(p)}, nil
}

func storeError(err error) error {
	if errors.Is(err, planstore.ErrNotFound) {
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// ExecutePlan dry-runs or starts a plan.
func (r *Rebalancer) ExecutePlan(ctx context.Context, req *ecraev1.ExecutePlanRequest) (*ecraev1.ExecutePlanResponse, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	timeout := r.cfg.StepTimeout
	if d := req.GetStepTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, invalid("step_timeout", "must be a positive duration")
		}
		timeout = d.AsDuration()
	}
	p, err := store.Get(ctx, req.GetPlanId())
	if err != nil {
		return nil, storeError(err)
	}
	if !req.GetExecute() {
		return &ecraev1.ExecutePlanResponse{Plan: planToProto(p), DryRun: true, Problems: r.check(ctx, p)}, nil
	}
	if p.Status != planstore.StatusPlanned {
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s is %s, not planned: plan again", p.ID, p.Status)
	}
	if r.cfg.Migrator == nil {
		return nil, status.Error(codes.FailedPrecondition, "no Nova connection to migrate with: start ecrae serve with OpenStack credentials (--os-cloud or OS_* variables)")
	}
	if len(p.Steps) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s has no moves: %s", p.ID, p.Note)
	}
	p, err = r.start(ctx, p.ID, timeout)
	if err != nil {
		return nil, err
	}
	return &ecraev1.ExecutePlanResponse{Plan: planToProto(p)}, nil
}

// start marks a plan executing and runs it in the background.
func (r *Rebalancer) start(ctx context.Context, id string, timeout time.Duration) (*planstore.Plan, error) {
	r.mu.Lock()
	if r.active != "" {
		r.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s is executing: one plan at a time", r.active)
	}
	r.active = id
	r.mu.Unlock()
	var started *planstore.Plan
	err := r.cfg.Plans.Update(ctx, id, func(p *planstore.Plan) error {
		if p.Status != planstore.StatusPlanned {
			return status.Errorf(codes.FailedPrecondition, "plan %s is %s, not planned: plan again", p.ID, p.Status)
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
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, storeError(err)
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
func (r *Rebalancer) execute(ctx context.Context, p *planstore.Plan, timeout time.Duration) {
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
func (r *Rebalancer) step(ctx context.Context, st planstore.Step, timeout time.Duration) (string, error) {
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
	lv := r.srv.cfg.Live
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

// check is a dry run: is every instance where the plan's first move of it
// expects it, and is every destination still a host that may receive?
func (r *Rebalancer) check(ctx context.Context, p *planstore.Plan) []string {
	var problems []string
	if p.Status != planstore.StatusPlanned {
		problems = append(problems, fmt.Sprintf("plan %s is %s, not planned: it cannot run again", p.ID, p.Status))
	}
	if len(p.Steps) == 0 {
		problems = append(problems, "the plan has no moves")
	}
	where := map[string]string{}
	hostState := map[string]hostview.ServiceState{}
	lv := r.srv.cfg.Live
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

// snapshotCluster turns a request snapshot into the optimizer's input,
// resolving models and tags from the knowledge base.
func (c *catalog) snapshotCluster(s *ecraev1.ClusterSnapshot, defaultTag string, maxHosts int) (optimizer.Cluster, error) {
	var cl optimizer.Cluster
	if len(s.GetHosts()) == 0 {
		return cl, invalid("snapshot.hosts", "at least one host is required")
	}
	if len(s.GetHosts()) > maxHosts {
		return cl, invalid("snapshot.hosts", "%d hosts exceed the limit of %d", len(s.GetHosts()), maxHosts)
	}
	if len(s.GetInstances()) > maxSnapshotInst {
		return cl, invalid("snapshot.instances", "%d instances exceed the limit of %d", len(s.GetInstances()), maxSnapshotInst)
	}
	for i, h := range s.GetHosts() {
		f := func(n string) string { return fmt.Sprintf("snapshot.hosts[%d].%s", i, n) }
		switch {
		case h.GetName() == "":
			return cl, invalid(f("name"), "required")
		case h.GetVcpus() < 0 || h.GetMemoryMb() < 0 || h.GetDiskGb() < 0 ||
			h.GetReservedVcpus() < 0 || h.GetReservedMemoryMb() < 0 || h.GetReservedDiskGb() < 0:
			return cl, invalid(f("vcpus"), "capacities must not be negative")
		}
		for _, r := range []float64{h.GetCpuAllocationRatio(), h.GetRamAllocationRatio(), h.GetDiskAllocationRatio()} {
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				return cl, invalid(f("cpu_allocation_ratio"), "allocation ratios must be finite and >= 0")
			}
		}
		var m *optimizer.Model
		if a := h.GetArchitecture(); a != "" {
			if m = c.archModels[a]; m == nil {
				return cl, invalid(f("architecture"), "unknown architecture %q", a)
			}
		} else {
			m = c.modelFor(h.GetName(), h.GetName(), optimizer.NormalizeISA(h.GetIsa()), int(h.GetVcpus()-h.GetReservedVcpus()))
		}
		if pw := h.GetPowerWatts(); len(pw) > 0 {
			if len(pw) != optimizer.CurvePoints {
				return cl, invalid(f("power_watts"), "want %d points (idle, 10 %% … 100 %%), got %d", optimizer.CurvePoints, len(pw))
			}
			cp := *m // a private copy: the catalog's models are shared
			for k, w := range pw {
				if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
					return cl, invalid(f("power_watts"), "point %d must be finite and >= 0, got %v", k, w)
				}
				cp.Curve[k] = w
			}
			m = &cp
		}
		cl.Hosts = append(cl.Hosts, optimizer.ClusterHost{
			Name: h.GetName(), ISA: h.GetIsa(), Model: m,
			VCPUs: int(h.GetVcpus()), MemoryMB: h.GetMemoryMb(), DiskGB: h.GetDiskGb(),
			ReservedVCPUs: int(h.GetReservedVcpus()), ReservedMemoryMB: h.GetReservedMemoryMb(), ReservedDiskGB: h.GetReservedDiskGb(),
			CPURatio: h.GetCpuAllocationRatio(), RAMRatio: h.GetRamAllocationRatio(), DiskRatio: h.GetDiskAllocationRatio(),
			State: hostState(h.GetState()), NoTarget: h.GetExclude(),
		})
	}
	for i, in := range s.GetInstances() {
		f := func(n string) string { return fmt.Sprintf("snapshot.instances[%d].%s", i, n) }
		if in.GetId() == "" {
			return cl, invalid(f("id"), "required")
		}
		if in.GetVcpus() < 0 || in.GetMemoryMb() < 0 || in.GetDiskGb() < 0 {
			return cl, invalid(f("vcpus"), "sizes must not be negative")
		}
		ci := optimizer.ClusterInstance{
			ID: in.GetId(), Name: in.GetName(), Host: in.GetHost(),
			VCPUs: int(in.GetVcpus()), MemoryMB: in.GetMemoryMb(), DiskGB: in.GetDiskGb(),
			ISA: in.GetIsa(), Group: in.GetServerGroup(), Pinned: in.GetPinned(),
		}
		if in.CpuUtilization != nil {
			u := in.GetCpuUtilization()
			if math.IsNaN(u) || u < 0 || u > 1 {
				return cl, invalid(f("cpu_utilization"), "must be in [0, 1], got %v", u)
			}
			ci.CPUUtil, ci.CPUUtilKnown = u, true
		}
		prof, err := c.profile(in.GetTag(), defaultTag)
		if err != nil {
			return cl, invalid(f("tag"), "%v", err)
		}
		ci.Profile = prof
		cl.Instances = append(cl.Instances, ci)
	}
	for i, g := range s.GetServerGroups() {
		if g.GetName() == "" {
			return cl, invalid(fmt.Sprintf("snapshot.server_groups[%d].name", i), "required")
		}
		cl.Groups = append(cl.Groups, optimizer.ServerGroup{Name: g.GetName(), Policy: groupPolicy(g.GetPolicy())})
	}
	return cl, nil
}

// profile resolves an instance's tag ("" = the default).
func (c *catalog) profile(tag, defaultTag string) (optimizer.Profile, error) {
	if tag == "" {
		if p, ok := c.profiles[defaultTag]; ok {
			return p, nil
		}
		return optimizer.Profile{Tag: defaultTag}, nil
	}
	p, ok := c.profiles[tag]
	if !ok {
		return p, fmt.Errorf("unknown tag %q", tag)
	}
	return p, nil
}

func hostState(s ecraev1.SnapshotHostState) optimizer.HostState {
	switch s {
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_DISABLED:
		return optimizer.HostDisabled
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_STALE:
		return optimizer.HostStale
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_DOWN:
		return optimizer.HostDown
	}
	return optimizer.HostUp
}

func groupPolicy(p ecraev1.ServerGroupPolicy) optimizer.GroupPolicy {
	switch p {
	case ecraev1.ServerGroupPolicy_SERVER_GROUP_POLICY_AFFINITY:
		return optimizer.PolicyAffinity
	case ecraev1.ServerGroupPolicy_SERVER_GROUP_POLICY_ANTI_AFFINITY:
		return optimizer.PolicyAntiAffinity
	}
	return optimizer.PolicyNone
}

// liveCluster builds the optimizer's input from the live host view: hosts
// sized by Placement (or their KB architecture), every instance that holds
// resources, each instance's CPU share from its host's measured utilisation
// when fresh (split by the tags' expected loads), and the server groups.
func (r *Rebalancer) liveCluster(ctx context.Context, c *catalog) (optimizer.Cluster, error) {
	var cl optimizer.Cluster
	lv := r.srv.cfg.Live
	if lv == nil {
		return cl, status.Errorf(codes.FailedPrecondition, "%v: this service runs without a live host view; pass a snapshot in the request", ErrNoLiveView)
	}
	snap := lv.Snapshot()
	now := lv.Now()
	load := c.load(r.srv.cfg.DefaultTag)
	byHost := map[string][]hostview.Instance{}
	for _, in := range lv.Instances("") {
		if in.Host == "" || in.State == "deleted" || in.State == "shelved_offloaded" {
			continue
		}
		byHost[in.Host] = append(byHost[in.Host], in)
	}
	var groups map[string]string
	if r.cfg.Groups != nil {
		gs, members, err := r.cfg.Groups(ctx)
		if err != nil {
			return cl, status.Errorf(codes.Unavailable, "server groups: %v", err)
		}
		cl.Groups, groups = gs, members
	}
	listed := map[string]bool{}
	for i := range snap.Hosts {
		h := &snap.Hosts[i]
		if !h.Compute && len(byHost[h.Name]) == 0 {
			continue // a node agent's samples only
		}
		listed[h.Name] = true
		m := c.modelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved)
		sized := h.Capacity.Known() || c.hostModels[h.Name] != nil || c.hostModels[h.Nodename] != nil
		oh := hostview.Base(h, m)
		fr := lv.Freshness(h, now)
		ch := optimizer.ClusterHost{
			Name: h.Name, ISA: h.ISA, Model: m,
			VCPUs: oh.VCPUsTotal, MemoryMB: oh.TotalRAMMB, DiskGB: oh.TotalDiskGB,
			CPURatio: oh.CPURatio, RAMRatio: oh.RAMRatio, DiskRatio: oh.DiskRatio,
		}
		switch {
		case !sized || fr.Stale:
			ch.State = optimizer.HostStale
		case h.Service == hostview.StateDisabled:
			ch.State = optimizer.HostDisabled
		case h.Service == hostview.StateDown || h.Service == hostview.StateDeleted:
			ch.State = optimizer.HostDown
		}
		// Measured utilisation, split among the instances by their tags'
		// expected loads: the best per-instance estimate the view allows.
		scale := 0.0
		if util, ok := measuredUtil(h, fr); ok {
			expected := 0.0
			for _, in := range byHost[h.Name] {
				if running(in) {
					expected += float64(in.Flavor.VCPUs) * share01(load(in.Tag))
				}
			}
			if expected > 0 {
				scale = util * ch.Cores() / expected
			}
		}
		cl.Hosts = append(cl.Hosts, ch)
		for _, in := range byHost[h.Name] {
			cl.Instances = append(cl.Instances, r.liveInstance(c, in, scale, load, groups))
		}
	}
	// Instances on hosts the view lists as no compute: keep them, fixed, on
	// an unsized stand-in host, so that capacity is never double counted.
	for host, ins := range byHost {
		if listed[host] {
			continue
		}
		cl.Hosts = append(cl.Hosts, optimizer.ClusterHost{Name: host, Model: c.modelFor(host, host, "", 1), State: optimizer.HostStale})
		for _, in := range ins {
			cl.Instances = append(cl.Instances, r.liveInstance(c, in, 0, load, groups))
		}
	}
	return cl, nil
}

func (r *Rebalancer) liveInstance(c *catalog, in hostview.Instance, scale float64, load hostview.LoadFunc, groups map[string]string) optimizer.ClusterInstance {
	prof, err := c.profile(in.Tag, r.srv.cfg.DefaultTag)
	if err != nil {
		prof = optimizer.Profile{Tag: in.Tag} // a tag the KB lost: no constraints from it
	}
	ci := optimizer.ClusterInstance{
		ID: in.UUID, Name: in.Name, Host: in.Host,
		VCPUs: in.Flavor.VCPUs, MemoryMB: in.Flavor.MemoryMB, DiskGB: in.Flavor.DiskGB(),
		Profile: prof, Group: groups[in.UUID],
	}
	switch {
	case in.State != "active" && in.State != "":
		ci.Pinned = true // Nova live-migrates active instances only
	case in.TaskState != "":
		ci.Pinned = true // busy with another operation
	}
	if scale > 0 && running(in) {
		ci.CPUUtil, ci.CPUUtilKnown = math.Min(1, share01(load(in.Tag))*scale), true
	} else if !running(in) {
		ci.CPUUtil, ci.CPUUtilKnown = 0, true
	}
	return ci
}

func running(in hostview.Instance) bool {
	if in.PowerState != "" {
		return in.PowerState == "running"
	}
	return in.State == "active" || in.State == ""
}

func share01(x float64) float64 {
	if x > 0 && x < 1 {
		return x
	}
	return 1
}

// measuredUtil is a host's fresh measured utilisation, if any.
func measuredUtil(h *hostview.Host, fr hostview.Freshness) (float64, bool) {
	switch {
	case fr.Utilization:
		return math.Max(0, math.Min(1, h.Utilization.Value)), true
	case fr.CPU:
		return math.Max(0, math.Min(1, h.CPU.Value)), true
	}
	return 0, false
}

// storedPlan turns the optimizer's plan into the stored form.
func storedPlan(cl optimizer.Cluster, p *optimizer.Plan, source string, now time.Time, took time.Duration) *planstore.Plan {
	host := func(i int) string { return cl.Hosts[i].Name }
	sp := &planstore.Plan{
		Status: planstore.StatusPlanned, Source: source, CreatedAt: now,
		Algorithm: p.Algorithm, Seed: p.Seed, Seconds: took.Seconds(), Stopped: p.Stopped, Iterations: int64(p.Iterations),
		Waves: p.Waves, PowerBeforeW: p.PowerBeforeW, PowerAfterW: p.PowerAfterW,
		MigrationMB: p.MigrationMB, MigrationW: p.MigrationW, Note: p.Note,
		Bounds: planstore.Bounds{Hosts: p.Bounds.Bins, Continuous: p.Bounds.Continuous, L2: p.Bounds.L2,
			Conflicts: p.Bounds.Conflicts, Watts: p.Bounds.Watts},
	}
	for _, mv := range p.Moves {
		in := &cl.Instances[mv.Instance]
		sp.Steps = append(sp.Steps, planstore.Step{Wave: mv.Wave, InstanceID: in.ID, InstanceName: in.Name,
			From: host(mv.From), To: host(mv.To), MemoryMB: mv.MemoryMB, Detour: mv.Detour, Status: planstore.StepPending})
	}
	for _, b := range p.HostsFreed {
		sp.HostsFreed = append(sp.HostsFreed, host(b))
	}
	used := map[string]bool{}
	for _, in := range cl.Instances {
		used[in.Host] = true
	}
	sp.HostsBefore = len(used)
	clear(used)
	for _, b := range p.Placement {
		used[host(b)] = true
	}
	sp.HostsAfter = len(used)
	for _, b := range p.PowerDown {
		if cl.Hosts[b].State == optimizer.HostUp || cl.Hosts[b].State == optimizer.HostDisabled {
			sp.PowerDown = append(sp.PowerDown, host(b))
		}
	}
	for _, u := range p.Unreachable {
		sp.Unreachable = append(sp.Unreachable, planstore.Unreachable{InstanceID: cl.Instances[u.Instance].ID, Target: host(u.Target), Reason: u.Reason})
	}
	fixed := make([]int, 0, len(p.Fixed))
	for i := range p.Fixed {
		fixed = append(fixed, i)
	}
	slices.Sort(fixed)
	for _, i := range fixed {
		sp.Fixed = append(sp.Fixed, planstore.Fixed{InstanceID: cl.Instances[i].ID, Reason: p.Fixed[i]})
	}
	storeRepair(cl, p, sp)
	return sp
}

var planStatus = map[string]ecraev1.PlanStatus{
	planstore.StatusPlanned:     ecraev1.PlanStatus_PLAN_STATUS_PLANNED,
	planstore.StatusExecuting:   ecraev1.PlanStatus_PLAN_STATUS_EXECUTING,
	planstore.StatusSucceeded:   ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED,
	planstore.StatusFailed:      ecraev1.PlanStatus_PLAN_STATUS_FAILED,
	planstore.StatusInterrupted: ecraev1.PlanStatus_PLAN_STATUS_INTERRUPTED,
}

var stepStatus = map[string]ecraev1.StepStatus{
	planstore.StepPending: ecraev1.StepStatus_STEP_STATUS_PENDING,
	planstore.StepRunning: ecraev1.StepStatus_STEP_STATUS_RUNNING,
	planstore.StepDone:    ecraev1.StepStatus_STEP_STATUS_DONE,
	planstore.StepFailed:  ecraev1.StepStatus_STEP_STATUS_FAILED,
	planstore.StepSkipped: ecraev1.StepStatus_STEP_STATUS_SKIPPED,
	planstore.StepUnknown: ecraev1.StepStatus_STEP_STATUS_UNKNOWN,
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func planToProto(p *planstore.Plan) *ecraev1.Plan {
	out := &ecraev1.Plan{
		Id: p.ID, Status: planStatus[p.Status], Source: p.Source, CreatedAt: ts(p.CreatedAt),
		Algorithm: p.Algorithm, Seed: p.Seed, Seconds: p.Seconds, Stopped: p.Stopped, Iterations: p.Iterations,
		Waves: int32(p.Waves), PowerBeforeWatts: p.PowerBeforeW, PowerAfterWatts: p.PowerAfterW,
		MigrationMb: p.MigrationMB, MigrationWatts: p.MigrationW,
		HostsFreed: p.HostsFreed, PowerDownCandidates: p.PowerDown,
		HostsUsedBefore: int32(p.HostsBefore), HostsUsedAfter: int32(p.HostsAfter),
		LowerBounds: &ecraev1.LowerBounds{Hosts: int32(p.Bounds.Hosts), Continuous: int32(p.Bounds.Continuous),
			L2: int32(p.Bounds.L2), Conflicts: int32(p.Bounds.Conflicts), Watts: p.Bounds.Watts},
		Note: p.Note, MaxPerHost: int32(p.MaxPerHost), MaxParallel: int32(p.MaxParallel),
		Message: p.Message, StartedAt: ts(p.StartedAt), FinishedAt: ts(p.FinishedAt),
	}
	for i, st := range p.Steps {
		out.Steps = append(out.Steps, &ecraev1.PlanStep{
			Index: int32(i), Wave: int32(st.Wave), InstanceId: st.InstanceID, InstanceName: st.InstanceName,
			FromHost: st.From, ToHost: st.To, MemoryMb: st.MemoryMB, Detour: st.Detour,
			Status: stepStatus[st.Status], Error: st.Error, ConfirmedBy: st.ConfirmedBy,
			StartedAt: ts(st.StartedAt), FinishedAt: ts(st.FinishedAt),
		})
	}
	for _, u := range p.Unreachable {
		out.Unreachable = append(out.Unreachable, &ecraev1.UnreachableMove{InstanceId: u.InstanceID, TargetHost: u.Target, Reason: u.Reason})
	}
	for _, f := range p.Fixed {
		out.Fixed = append(out.Fixed, &ecraev1.FixedInstance{InstanceId: f.InstanceID, Reason: f.Reason})
	}
	out.RepairedHosts, out.OverloadedHosts, out.InfeasibleReason = p.Repaired, p.Overloaded, p.InfeasibleReason
	return out
}

// PeriodicConfig drives RunPeriodic.
type PeriodicConfig struct {
	Interval time.Duration
	// MinSavingW: execute only when the predicted saving (power before −
	// after − migration energy over the horizon) exceeds it.
	MinSavingW float64
	// Execute: run qualifying plans; otherwise only plan and log them.
	Execute bool
	Request *ecraev1.PlanRebalanceRequest
}

// RunPeriodic plans on the live view every interval and executes the plan
// when the saving exceeds the threshold, until ctx ends. A tick is skipped
// while a plan executes.
func (r *Rebalancer) RunPeriodic(ctx context.Context, pc PeriodicConfig) error {
	if pc.Interval <= 0 {
		return nil
	}
	req := pc.Request
	if req == nil {
		req = &ecraev1.PlanRebalanceRequest{}
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
		p, err := r.plan(ctx, req, SourcePeriodic)
		if err != nil {
			r.log.Warn("periodic rebalance: no plan", "err", err)
			continue
		}
		saving := p.PowerBeforeW - p.PowerAfterW - p.MigrationW
		switch {
		case len(p.Steps) == 0:
			r.log.Info("periodic rebalance: nothing to move", "plan", p.ID, "note", p.Note)
		case saving <= pc.MinSavingW:
			r.log.Info("periodic rebalance: saving below the threshold", "plan", p.ID, "saving_w", round1(saving), "threshold_w", pc.MinSavingW)
		case !pc.Execute:
			r.log.Info("periodic rebalance: planned, not executed (execution disabled)", "plan", p.ID, "saving_w", round1(saving))
		case r.cfg.Migrator == nil:
			r.log.Warn("periodic rebalance: no Nova connection to execute with", "plan", p.ID)
		default:
			if _, err := r.start(ctx, p.ID, r.cfg.StepTimeout); err != nil {
				r.log.Warn("periodic rebalance: not started", "plan", p.ID, "err", err)
			}
		}
	}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
