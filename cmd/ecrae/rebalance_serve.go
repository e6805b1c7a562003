package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/openstack"
	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"github.com/ecrae/ecrae/server"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

// rebalanceServe is the rebalancing part of `ecrae serve` (issue 5): its
// flags, the plan store beside the knowledge base (plans.db), the Nova
// executor when OpenStack credentials exist, and the optional periodic
// mode (off by default).
type rebalanceServe struct {
	interval      time.Duration
	minSavingW    float64
	execute       bool
	algorithm     string
	timeLimit     time.Duration
	maxMigrations int
	maxPerHost    int
	maxParallel   int
	relieve       float64
	stepTimeout   time.Duration
	planTTL       time.Duration
	keep          int
	freed         rebalance.FreedHosts // told of the hosts a plan freed (the power manager)
	// rb is the service start built (the web console calls it in-process).
	rb *server.Rebalancer
	// reg receives ecrae_rebalance_migrations_total (nil: not registered).
	reg prometheus.Registerer
	// agents moves containers (serve_containers.go); nil = none.
	agents *container.Client
	// leader, in cluster mode, runs the periodic mode on the leader only
	// and fences every migration (nil: one replica, as before).
	leader *clusterServe
}

func (r *rebalanceServe) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.interval, "rebalance-interval", 0, "plan a rebalance on the live view this often (0: never; plans on demand only)")
	fs.Float64Var(&r.minSavingW, "rebalance-min-saving", 50, "periodic mode: execute only when the predicted saving exceeds this many watts (migration energy deducted)")
	fs.BoolVar(&r.execute, "rebalance-execute", false, "periodic mode: execute the plans that pass the threshold (default: plan and log only)")
	fs.StringVar(&r.algorithm, "rebalance-algorithm", "", "periodic mode: algorithm (default "+optimizer.DefaultAlgorithm+")")
	fs.DurationVar(&r.timeLimit, "rebalance-time-limit", time.Second, "time budget of a plan's search when the request names none")
	fs.IntVar(&r.maxMigrations, "rebalance-max-migrations", 0, "periodic mode: cap on the migrations of a plan (0: none)")
	fs.IntVar(&r.maxPerHost, "rebalance-max-per-host", optimizer.DefaultMaxPerHost, "periodic mode: migrations in flight at once touching one host")
	fs.IntVar(&r.maxParallel, "rebalance-max-parallel", optimizer.DefaultMaxParallel, "periodic mode: migrations in flight at once in all")
	fs.Float64Var(&r.relieve, "rebalance-relieve", 0, "periodic mode: share of a host's cores its instances may keep busy past their ceiling before some move away (0: the ceiling; at most 1)")
	fs.DurationVar(&r.stepTimeout, "rebalance-step-timeout", 10*time.Minute, "time a live migration may take before its plan stops")
	fs.DurationVar(&r.planTTL, "rebalance-plan-ttl", server.DefaultPlanTTL, "a plan not executed within this long expires (the cluster has moved on)")
	fs.IntVar(&r.keep, "rebalance-keep", server.DefaultKeep, "plans kept in plans.db: the newest; older ones are deleted (never a running one)")
}

// start opens <db dir>/plans.db (marking any execution a previous process
// left running as interrupted) and registers the RebalanceService on g.
// The returned run executes plans and the periodic mode under ctx (serve's
// errgroup owns it); when ctx ends, executions are marked interrupted and
// the plan store is closed. stop closes the store if run never ran (serve
// failing before its errgroup starts); it is safe to call after run.
func (r *rebalanceServe) start(g *grpc.Server, srv *server.Server, cloud *openstack.Client, dbPath string, log *slog.Logger) (run func(ctx context.Context) error, stop func(), err error) {
	// Zero values (a config built without the flags) take the flags' defaults.
	if r.timeLimit == 0 {
		r.timeLimit = time.Second
	}
	if r.stepTimeout == 0 {
		r.stepTimeout = 10 * time.Minute
	}
	if r.planTTL == 0 {
		r.planTTL = server.DefaultPlanTTL
	}
	if r.keep == 0 {
		r.keep = server.DefaultKeep
	}
	if r.interval < 0 || r.timeLimit < 0 || r.stepTimeout < 0 || r.maxMigrations < 0 || r.maxPerHost < 0 || r.maxParallel < 0 {
		return nil, nil, fmt.Errorf("%w: --rebalance-*: durations and limits must not be negative", errUsage)
	}
	if r.planTTL < 0 {
		return nil, nil, fmt.Errorf("%w: --rebalance-plan-ttl must be positive, got %s", errUsage, r.planTTL)
	}
	if math.IsNaN(r.relieve) || r.relieve < 0 || r.relieve > 1 {
		return nil, nil, fmt.Errorf("%w: --rebalance-relieve %v: want 0 (the ceiling) or a share in (0, 1]", errUsage, r.relieve)
	}
	if r.keep < 0 {
		return nil, nil, fmt.Errorf("%w: --rebalance-keep must be positive, got %d", errUsage, r.keep)
	}
	path := filepath.Join(filepath.Dir(dbPath), "plans.db")
	store, err := planstore.Open(path, planstore.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, err
	}
	if ids := store.Recovered(); len(ids) > 0 {
		log.Warn("rebalance: executions cut short by the last stop, marked interrupted", "plans", ids)
	}
	cfg := server.RebalanceConfig{Plans: store, DefaultTimeLimit: r.timeLimit, StepTimeout: r.stepTimeout, PlanTTL: r.planTTL, Keep: r.keep, Freed: r.freed}
	if cloud != nil && cloud.Compute != nil {
		m := openstack.NewMigrator(cloud.Compute, 0)
		cfg.Migrator = server.CountMigrations(m, r.reg)
		cfg.Groups = groupsOf(m)
	}
	cfg.Migrator = r.route(cfg.Migrator)
	if r.leader != nil {
		// Fenced whole: container moves to the agents like Nova's.
		cfg.Migrator = r.leader.fence(cfg.Migrator)
	}
	rb := server.NewRebalancer(srv, cfg)
	rb.Register(g)
	r.rb = rb
	if r.leader != nil {
		r.leader.attachPlans(store, rb.Resume, log)
	}
	log.Info("rebalance service ready", "plans", path, "executor", cfg.Migrator != nil, "periodic", r.interval,
		"plan_ttl", r.planTTL, "keep", r.keep)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			rb.Close()
			if err := store.Close(); err != nil {
				log.Error("rebalance: close plan store", "err", err)
			}
		})
	}
	run = func(ctx context.Context) error {
		defer stop()
		eg, ctx := errgroup.WithContext(ctx)
		eg.Go(func() error { return rb.Run(ctx) })
		periodic := rb.RunPeriodic
		eg.Go(func() error {
			err := r.whileLeader(ctx, func(ctx context.Context) error {
				return periodic(ctx, server.PeriodicConfig{
					Interval: r.interval, MinSavingW: r.minSavingW, Execute: r.execute,
					Request: &ecraev1.PlanRebalanceRequest{
						Algorithm: r.algorithm, TimeLimit: durationpb.New(r.timeLimit), MaxMigrations: int32(r.maxMigrations),
						MaxPerHost: int32(r.maxPerHost), MaxParallel: int32(r.maxParallel), Relieve: r.relieve,
					},
				})
			})
			if err != nil {
				log.Error("periodic rebalance stopped", "err", err)
			}
			return nil // the service keeps serving without the periodic mode
		})
		return eg.Wait()
	}
	return run, stop, nil
}

// groupsOf reads Nova's server groups for the live view's plans.
func groupsOf(m *openstack.Migrator) server.GroupsFunc {
	return func(ctx context.Context) ([]optimizer.ServerGroup, map[string]string, error) {
		gs, err := m.ServerGroups(ctx)
		if err != nil {
			return nil, nil, err
		}
		var out []optimizer.ServerGroup
		members := map[string]string{}
		for _, g := range gs {
			p := optimizer.PolicyNone
			switch g.Policy {
			case "affinity":
				p = optimizer.PolicyAffinity
			case "anti-affinity":
				p = optimizer.PolicyAntiAffinity
			}
			// Names may repeat across projects: the id is the key.
			out = append(out, optimizer.ServerGroup{Name: g.ID, Policy: p})
			for _, id := range g.Members {
				members[id] = g.ID
			}
		}
		return out, members, nil
	}
}

// whileLeader runs fn when this replica may act: always with one replica,
// on the leader only in cluster mode.
func (r *rebalanceServe) whileLeader(ctx context.Context, fn func(ctx context.Context) error) error {
	if r.leader == nil {
		return fn(ctx)
	}
	return r.leader.whileLeader(ctx, fn)
}
