package server

import (
	"context"
	"fmt"
	"github.com/ecrae/ecrae/catalog"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
)

// KBStore is what the server needs of the knowledge base.
type KBStore interface {
	Revision() uint64
	Snapshot(ctx context.Context) (*kbstore.KB, error)
	Import(ctx context.Context, kb *kbstore.KB, replace bool) error
	History(ctx context.Context) ([]kbstore.Revisioned, uint64, error)
	AtRevision(ctx context.Context, rev uint64) (*kbstore.KB, error)
	Rollback(ctx context.Context, rev uint64) error

	ListTags(ctx context.Context) ([]kbstore.Tag, error)
	GetTag(ctx context.Context, name string) (kbstore.Tag, error)
	CreateTag(ctx context.Context, t kbstore.Tag) error
	UpdateTag(ctx context.Context, t kbstore.Tag) error
	DeleteTag(ctx context.Context, name string) error

	ListArchitectures(ctx context.Context) ([]kbstore.Architecture, error)
	GetArchitecture(ctx context.Context, name string) (kbstore.Architecture, error)
	CreateArchitecture(ctx context.Context, a kbstore.Architecture) error
	UpdateArchitecture(ctx context.Context, a kbstore.Architecture) error
	DeleteArchitecture(ctx context.Context, name string) error

	ListFlavors(ctx context.Context) ([]kbstore.Flavor, error)
	GetFlavor(ctx context.Context, name string) (kbstore.Flavor, error)
	CreateFlavor(ctx context.Context, f kbstore.Flavor) error
	UpdateFlavor(ctx context.Context, f kbstore.Flavor) error
	DeleteFlavor(ctx context.Context, name string) error

	ListHosts(ctx context.Context) ([]kbstore.Host, error)
	GetHost(ctx context.Context, name string) (kbstore.Host, error)
	CreateHost(ctx context.Context, h kbstore.Host) error
	UpdateHost(ctx context.Context, h kbstore.Host) error
	DeleteHost(ctx context.Context, name string) error
}

var _ KBStore = (*kbstore.Store)(nil)

// DefaultGCPercent is the garbage collector target `ecrae serve` runs with
// (GOGC). The live heap is small (the KB, the host view, the state cache),
// while every Nova pass allocates its hosts afresh, and a pass that meets a
// collection is what a pass's p99 is made of: collecting at 16× the live
// heap instead of 1× makes that rare. DefaultMemoryLimit caps what this
// costs when the live heap is large.
const DefaultGCPercent = 1600

// DefaultMemoryLimit is the soft memory limit `ecrae serve` runs with
// (GOMEMLIMIT): past it the collector runs more often, whatever
// DefaultGCPercent says.
const DefaultMemoryLimit = 1 << 30

// Config holds the service's placement settings.
type Config struct {
	// DefaultTag is the profile for requests that carry no tag.
	DefaultTag string
	// Weights per scorer, over optimizer.DefaultWeights().
	Weights map[string]float64
	// MaxHosts bounds the hosts of one call (protects the service from a
	// runaway client); 0 means 100000.
	MaxHosts int
	// StateCacheSize bounds the host states remembered for clients that
	// send references to them; 0 means DefaultStateCacheSize.
	StateCacheSize int
	// Live is the live host view: scoring uses its measured utilisation
	// and power and the instances it knows, WhatIf places on its hosts.
	// nil = each request's own data, and the KB's hosts for WhatIf.
	Live LiveView
	// LiveSources says what feeds Live (for ecrae hosts).
	LiveSources string
	// NoRoom, when set, is called (it must not block) after a FilterHosts
	// pass that passed no host: the power manager wakes a host.
	NoRoom func()
}

// Server implements the ECRAE gRPC services.
type Server struct {
	ecraev1.UnimplementedPlacementServiceServer
	ecraev1.UnimplementedKnowledgeBaseServiceServer
	ecraev1.UnimplementedHostViewServiceServer

	cfg   Config
	kb    KBStore
	log   *slog.Logger
	stats *Metrics

	mu  sync.Mutex // serialises catalog rebuilds
	cat atomic.Pointer[catalog.Catalog]

	states *stateCache
	// hostBufs recycles the converted hosts of Nova's passes: at a
	// thousand hosts they are 180 KB a call, and such garbage sets the
	// collector's pace, whose cycles make a pass's tail latency.
	hostBufs sync.Pool
	// scratches recycles the optimizer's per-host working memory of the
	// shim's passes (optimizer.Scratch), for the same reason.
	scratches sync.Pool
	// baseline runs the placement path as before issue 15, for
	// BenchmarkPlacementScale to compare against in the same run: the live
	// view applied to every host on every call, references resolved under
	// the state cache's exclusive lock.
	baseline bool
}

// New checks the configuration and returns a server reading kb.
func New(cfg Config, kb KBStore, log *slog.Logger, stats *Metrics) (*Server, error) {
	if cfg.DefaultTag == "" {
		cfg.DefaultTag = "default"
	}
	weights := optimizer.DefaultWeights()
	for k, v := range cfg.Weights {
		weights[k] = v
	}
	cfg.Weights = weights
	if err := optimizer.ValidateWeights(cfg.Weights); err != nil {
		return nil, fmt.Errorf("scorer weights: %w", err)
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = 100000
	}
	if cfg.StateCacheSize <= 0 {
		cfg.StateCacheSize = DefaultStateCacheSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stats == nil {
		stats = NewMetrics(nil)
	}
	return &Server{cfg: cfg, kb: kb, log: log, stats: stats, states: newStateCache(cfg.StateCacheSize)}, nil
}

// Register adds the placement, KB and host view services to g.
func (s *Server) Register(g *grpc.Server) {
	ecraev1.RegisterPlacementServiceServer(g, s)
	ecraev1.RegisterKnowledgeBaseServiceServer(g, s)
	ecraev1.RegisterHostViewServiceServer(g, s)
}

// catalog returns the KB view for the store's current revision, rebuilding
// it after a write.
func (s *Server) catalog(ctx context.Context) (*catalog.Catalog, error) {
	rev := s.kb.Revision()
	if c := s.cat.Load(); c != nil && c.Revision() == rev {
		return c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rev = s.kb.Revision()
	if c := s.cat.Load(); c != nil && c.Revision() == rev {
		return c, nil
	}
	kb, err := s.kb.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read knowledge base: %w", err)
	}
	c, err := catalog.New(rev, kb)
	if err != nil {
		return nil, fmt.Errorf("knowledge base: %w", err)
	}
	s.cat.Store(c)
	return c, nil
}
