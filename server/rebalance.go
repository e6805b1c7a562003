package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ecrae/ecrae/catalog"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The RebalanceService (issue 5): plans on the live view or a snapshot,
// stores them, and executes them through a Migrator (rebalance.Executor:
// each step once optimizer.Gate lets it).

// GroupsFunc lists Nova's server groups: each group's rule and members.
type GroupsFunc func(ctx context.Context) ([]optimizer.ServerGroup, map[string]string, error)

// RebalanceConfig wires the RebalanceService.
type RebalanceConfig struct {
	Plans PlanStore
	// Migrator executes plans; nil = dry runs only.
	Migrator rebalance.Migrator
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
	// PlanTTL: a plan not started within it expires; 0 = 15 min.
	// Keep: how many plans the store keeps (the newest); 0 = 100.
	PlanTTL time.Duration
	Keep    int
	// Identity names the caller of an RPC for the plan's executed_by; nil
	// = Caller (the authenticated subject, else the peer's address).
	Identity func(ctx context.Context) string
	// Freed, when set, is told of the hosts a plan emptied once it
	// succeeded (the power manager).
	Freed rebalance.FreedHosts
}

// Defaults of RebalanceConfig.
const (
	DefaultPlanTTL = 15 * time.Minute
	DefaultKeep    = 100
)

// maxTimeLimit of a search a request may ask.
const maxTimeLimit = time.Minute

// Sources of a plan (the periodic mode's is rebalance.SourcePeriodic).
const (
	SourceLive     = "live view"
	SourceSnapshot = "request snapshot"
)

// PlanStore keeps plans (planstore.Store).
type PlanStore interface {
	rebalance.PlanStore
	Create(ctx context.Context, p *planstore.Plan) (string, error)
	Plans(ctx context.Context, limit int) ([]*planstore.Plan, error)
	Cancel(ctx context.Context, id, who string, now time.Time) (*planstore.Plan, error)
	RequestAbort(ctx context.Context, id string) (*planstore.Plan, error)
	Expire(ctx context.Context, now time.Time) ([]string, error)
	Prune(ctx context.Context, keep int) (int, error)
}

var _ PlanStore = (*planstore.Store)(nil)

// Rebalancer implements ecraev1.RebalanceServiceServer.
type Rebalancer struct {
	ecraev1.UnimplementedRebalanceServiceServer

	srv  *Server
	cfg  RebalanceConfig
	log  *slog.Logger
	exec *rebalance.Executor
}

// NewRebalancer returns the service on srv's knowledge base and live view.
func NewRebalancer(srv *Server, cfg RebalanceConfig) *Rebalancer {
	if cfg.DefaultTimeLimit <= 0 {
		cfg.DefaultTimeLimit = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PlanTTL <= 0 {
		cfg.PlanTTL = DefaultPlanTTL
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Identity == nil {
		cfg.Identity = Caller
	}
	ec := rebalance.Config{Plans: cfg.Plans, Migrator: cfg.Migrator, StepTimeout: cfg.StepTimeout,
		ViewGrace: cfg.ViewGrace, Now: cfg.Now, Log: srv.log, Freed: cfg.Freed}
	// The executor also marks draining hosts: hostview.View does; a view
	// that cannot is not used to re-check plans either, and says so.
	if lv, ok := srv.cfg.Live.(rebalance.LiveView); ok {
		ec.Live = lv
	} else if srv.cfg.Live != nil {
		srv.log.Warn("rebalance: the live view cannot mark draining hosts: plans are executed without re-checks against it")
	}
	return &Rebalancer{srv: srv, cfg: cfg, log: srv.log, exec: rebalance.NewExecutor(ec)}
}

// Register adds the service to g.
func (r *Rebalancer) Register(g *grpc.Server) { ecraev1.RegisterRebalanceServiceServer(g, r) }

// Close stops executions (each marks its plan interrupted) and waits for
// them.
func (r *Rebalancer) Close() { r.exec.Close() }

// Run runs executions under ctx until it ends, then stops them
// (rebalance.Executor.Run): its owner is serve's errgroup.
func (r *Rebalancer) Run(ctx context.Context) error { return r.exec.Run(ctx) }

// Resume takes over a plan another replica was executing (cluster mode;
// rebalance.Executor.Resume).
func (r *Rebalancer) Resume(ctx context.Context, id string) error { return r.exec.Resume(ctx, id) }

// Executing returns the id of the plan executing, "" when none.
func (r *Rebalancer) Executing() string { return r.exec.Executing() }

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
		if cl, err = c.SnapshotCluster(req.GetSnapshot(), r.srv.cfg.DefaultTag, r.srv.cfg.MaxHosts); err != nil {
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
	sp := rebalance.NewPlan(cl, plan, source, r.cfg.Now(), r.cfg.Now().Sub(start))
	sp.MaxPerHost, sp.MaxParallel, sp.Relieve = opts.MaxPerHost, opts.MaxParallel, opts.Relieve
	if sp.MaxPerHost == 0 {
		sp.MaxPerHost = optimizer.DefaultMaxPerHost
	}
	if sp.MaxParallel == 0 {
		sp.MaxParallel = optimizer.DefaultMaxParallel
	}
	if len(sp.Steps) == 0 {
		// Nothing to execute: returned to the caller, never stored, so a
		// periodic loop on a packed cluster does not fill the plan file
		// nor bury the plans that matter under empty ones.
		r.log.Info("rebalance planned: nothing to move, not stored", "source", source, "note", sp.Note)
		return sp, nil
	}
	sp.ExpiresAt = sp.CreatedAt.Add(r.cfg.PlanTTL)
	if _, err := store.Create(ctx, sp); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	if n, err := store.Prune(ctx, r.cfg.Keep); err != nil {
		r.log.Warn("rebalance: cannot prune old plans", "err", err)
	} else if n > 0 {
		r.log.Info("rebalance: old plans pruned", "deleted", n, "keep", r.cfg.Keep)
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
	if v := req.GetRelieve(); math.IsNaN(v) || v < 0 || v > 1 {
		return o, 0, invalid("relieve", "must be 0 (the ceiling) or a share of a host's cores in (0, 1], got %v", v)
	}
	o.Relieve = req.GetRelieve()
	if req.GetAlgorithm() != "" && !slices.Contains(optimizer.Algorithms(), req.GetAlgorithm()) {
		return o, 0, invalid("algorithm", "unknown algorithm %s (known: %s)", quote.Value(req.GetAlgorithm()), strings.Join(optimizer.Algorithms(), ", "))
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
	timeout := r.exec.StepTimeout()
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
		return &ecraev1.ExecutePlanResponse{Plan: planToProto(p), DryRun: true, Problems: r.exec.Check(ctx, p)}, nil
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
	p, err = r.exec.Start(ctx, p.ID, r.cfg.Identity(ctx), timeout)
	if err != nil {
		return nil, startError(err)
	}
	return &ecraev1.ExecutePlanResponse{Plan: planToProto(p)}, nil
}

func startError(err error) error {
	switch {
	case errors.Is(err, rebalance.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, rebalance.ErrBusy), errors.Is(err, rebalance.ErrNotPlanned), errors.Is(err, planstore.ErrExpired),
		errors.Is(err, planstore.ErrTransition):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return storeError(err)
}

// ListPlans returns the stored plans, newest first, without their steps;
// the plans past their expiry are marked expired first.
func (r *Rebalancer) ListPlans(ctx context.Context, req *ecraev1.ListPlansRequest) (*ecraev1.ListPlansResponse, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 {
		return nil, invalid("limit", "must not be negative, got %d", req.GetLimit())
	}
	if _, err := store.Expire(ctx, r.cfg.Now()); err != nil {
		return nil, storeError(err)
	}
	ps, err := store.Plans(ctx, int(req.GetLimit()))
	if err != nil {
		return nil, storeError(err)
	}
	out := &ecraev1.ListPlansResponse{}
	for _, p := range ps {
		pp := planToProto(p)
		pp.Steps = nil
		out.Plans = append(out.Plans, pp)
	}
	return out, nil
}

// CancelPlan withdraws a planned plan.
func (r *Rebalancer) CancelPlan(ctx context.Context, req *ecraev1.CancelPlanRequest) (*ecraev1.CancelPlanResponse, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	if req.GetPlanId() == "" {
		return nil, invalid("plan_id", "required")
	}
	p, err := store.Cancel(ctx, req.GetPlanId(), r.cfg.Identity(ctx), r.cfg.Now())
	if err != nil {
		return nil, startError(err)
	}
	r.log.Info("rebalance plan cancelled", "plan", p.ID, "by", r.cfg.Identity(ctx))
	return &ecraev1.CancelPlanResponse{Plan: planToProto(p)}, nil
}

// AbortPlan asks an executing plan to stop after its steps in flight.
func (r *Rebalancer) AbortPlan(ctx context.Context, req *ecraev1.AbortPlanRequest) (*ecraev1.AbortPlanResponse, error) {
	store, err := r.plans()
	if err != nil {
		return nil, err
	}
	if req.GetPlanId() == "" {
		return nil, invalid("plan_id", "required")
	}
	p, err := store.RequestAbort(ctx, req.GetPlanId())
	if err != nil {
		return nil, startError(err)
	}
	r.log.Warn("rebalance abort requested", "plan", p.ID, "by", r.cfg.Identity(ctx))
	return &ecraev1.AbortPlanResponse{Plan: planToProto(p)}, nil
}

var planStatus = map[string]ecraev1.PlanStatus{
	planstore.StatusPlanned:     ecraev1.PlanStatus_PLAN_STATUS_PLANNED,
	planstore.StatusExecuting:   ecraev1.PlanStatus_PLAN_STATUS_EXECUTING,
	planstore.StatusSucceeded:   ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED,
	planstore.StatusFailed:      ecraev1.PlanStatus_PLAN_STATUS_FAILED,
	planstore.StatusInterrupted: ecraev1.PlanStatus_PLAN_STATUS_INTERRUPTED,
	planstore.StatusAborted:     ecraev1.PlanStatus_PLAN_STATUS_ABORTED,
	planstore.StatusCancelled:   ecraev1.PlanStatus_PLAN_STATUS_CANCELLED,
	planstore.StatusExpired:     ecraev1.PlanStatus_PLAN_STATUS_EXPIRED,
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
		ExecutedBy: p.ExecutedBy, ExpiresAt: ts(p.ExpiresAt), AbortRequested: p.AbortRequested,
		RepairedHosts: p.Repaired, OverloadedHosts: p.Overloaded, InfeasibleReason: p.InfeasibleReason,
		Relieve: p.Relieve,
	}
	for _, g := range p.FixedGroups {
		out.FixedGroups = append(out.FixedGroups, &ecraev1.FixedGroup{Reason: g.Reason, Count: int32(g.Count), ExampleInstanceIds: g.Examples})
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
	return out
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// liveCluster builds the optimizer's input from the live host view and
// Nova's server groups.
func (r *Rebalancer) liveCluster(ctx context.Context, c *catalog.Catalog) (optimizer.Cluster, error) {
	lv := r.srv.cfg.Live
	if lv == nil {
		return optimizer.Cluster{}, status.Errorf(codes.FailedPrecondition, "%v: this service runs without a live host view; pass a snapshot in the request", ErrNoLiveView)
	}
	var gs []optimizer.ServerGroup
	var members map[string]string
	if r.cfg.Groups != nil {
		var err error
		if gs, members, err = r.cfg.Groups(ctx); err != nil {
			return optimizer.Cluster{}, status.Errorf(codes.Unavailable, "server groups: %v", err)
		}
	}
	return c.LiveCluster(lv, r.srv.cfg.DefaultTag, gs, members), nil
}

// PeriodicConfig drives RunPeriodic.
type PeriodicConfig struct {
	Interval   time.Duration
	MinSavingW float64
	Execute    bool
	// Request tunes each plan; nil = the defaults.
	Request *ecraev1.PlanRebalanceRequest
}

// RunPeriodic plans on the live view every interval and executes the plan
// when the saving exceeds the threshold, until ctx ends
// (rebalance.Executor.RunPeriodic).
func (r *Rebalancer) RunPeriodic(ctx context.Context, pc PeriodicConfig) error {
	req := pc.Request
	if req == nil {
		req = &ecraev1.PlanRebalanceRequest{}
	}
	pc2 := rebalance.PeriodicConfig{Interval: pc.Interval, MinSavingW: pc.MinSavingW, Execute: pc.Execute}
	return r.exec.RunPeriodic(ctx, pc2, func(ctx context.Context) (*planstore.Plan, error) {
		return r.plan(ctx, req, rebalance.SourcePeriodic)
	})
}
