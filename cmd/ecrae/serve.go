package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/events"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/openstack"
	"github.com/ecrae/ecrae/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

type serveConfig struct {
	grpcAddr, httpAddr string
	natsURL, natsAddr  string
	dbPath             string
	defaultTag         string
	weights            string
	logFormat          string
	logLevel           string
	shutdownGrace      time.Duration
	// The live host view (issue 4).
	osCloud        string        // clouds.yaml entry; "" = $OS_CLOUD, then OS_* variables
	resyncInterval time.Duration // 0 = bootstrap only
	staleAfter     time.Duration // 0 = hostview's default
	subjectPrefix  string        // Nova's notifications: <prefix>.versioned_notifications.>
	// Consolidation plans and the optional periodic mode (issue 5).
	rebalance  rebalanceServe
	events     eventsServe // ingestion limits and checkpoints (issue 11)
	power      powerServe
	gcPercent  int
	memLimit   string
	stateCache int
	limits     serveLimits
	// TLS, roles, exposure (issue 13) and NATS security.
	security securityServe
	natsSec  natsSecurity
	console  consoleServe // the web console (issue 16)
	cluster  clusterServe // several replicas on one JetStream cluster (issue 14)
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:9180", "HTTP listen address for /healthz, /metrics and the web console at /")
	fs.StringVar(&c.natsURL, "nats", "embedded", `"embedded" for an in-process NATS server, or a nats:// URL`)
	fs.StringVar(&c.natsAddr, "nats-addr", "127.0.0.1:4222", "listen address of the embedded NATS server")
	fs.StringVar(&c.dbPath, "db", "./var/ecrae.db", "knowledge base file (bbolt); created and seeded with the default KB on first start")
	fs.StringVar(&c.defaultTag, "default-tag", "default", "profile for requests that carry no tag")
	fs.StringVar(&c.weights, "weights", "", `scorer weights, e.g. "energy=1,consolidation=0.5" (0 disables a scorer)`)
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight calls may finish on SIGTERM")
	fs.StringVar(&c.osCloud, "os-cloud", "", "clouds.yaml cloud to read Nova and Placement from (default $OS_CLOUD, then the OS_* variables; none: events alone)")
	fs.DurationVar(&c.resyncInterval, "resync-interval", 10*time.Minute, "how often the host view is reconciled with Nova and Placement (0: at start only)")
	fs.DurationVar(&c.staleAfter, "stale-after", hostview.DefaultStaleAfter, "a host not heard from for this long is stale: its measurements fall back to the model's estimate")
	fs.StringVar(&c.subjectPrefix, "subject-prefix", "nova", "NATS subject prefix of Nova's notifications (<prefix>.versioned_notifications.<priority>.<event_type>)")
	c.rebalance.register(fs)
	c.limits.register(fs)
	c.security.register(fs)
	c.natsSec.register(fs)
	c.events.register(fs)
	c.power.register(fs)
	c.console.register(fs)
	c.cluster.register(fs)
	fs.IntVar(&c.stateCache, "state-cache", server.DefaultStateCacheSize, "host states remembered for the shim's references to unchanged hosts (the 8 most recently used per node)")
	fs.IntVar(&c.gcPercent, "gc-percent", server.DefaultGCPercent, "garbage collector target (GOGC): higher trades memory for fewer collections on the placement path; the GOGC variable, when set, wins")
	fs.StringVar(&c.memLimit, "memory-limit", "auto", `soft memory limit (GOMEMLIMIT): "auto" (max(1GiB, 4×live heap), followed), or e.g. "512MiB", "2GiB"; past it the collector runs more often; "0" for none; the GOMEMLIMIT variable, when set, wins`)
	applyConfigFile := registerConfig(fs)
	if err := applyConfigFile(args); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %s", errUsage, quote.Value(fs.Arg(0)))
	}
	if err := c.events.check(); err != nil {
		return err
	}
	if err := c.cluster.check(c.natsURL); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	if err := applyMemoryLimit(c.memLimit); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set && c.gcPercent != 0 {
		debug.SetGCPercent(c.gcPercent)
	}
	weights, err := parseWeights(c.weights)
	if err != nil {
		return fmt.Errorf("%w: --weights: %v", errUsage, err)
	}
	if err := c.limits.parse(); err != nil {
		return err
	}
	return serve(ctx, c, weights, log)
}

func serve(ctx context.Context, c serveConfig, weights map[string]float64, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stats := server.NewMetrics(reg)
	if err := preflight(c); err != nil {
		return err
	}
	// Security flags are checked before anything is opened or started.
	sec, err := c.security.setup(&c, reg, log)
	if err != nil {
		return err
	}
	defer sec.close()
	store, err := kbstore.Open(c.dbPath, kbstore.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := sec.openAudit(c.dbPath); err != nil {
		return err
	}
	seeded, err := store.SeedDefault(ctx)
	if err != nil {
		return fmt.Errorf("seed knowledge base: %w", err)
	}
	log.Info("knowledge base open", "path", c.dbPath, "seeded_default", seeded)

	nc, natsURL, shutdownNATS, err := startNATS(c, log)
	if err != nil {
		return err
	}
	defer shutdownNATS()
	defer nc.Close()
	runCluster, err := c.cluster.start(nc, store, reg, log)
	if err != nil {
		return err
	}
	c.rebalance.leader = &c.cluster
	c.power.fence = c.cluster.powerFence()
	c.power.replicate, c.power.takeover = c.cluster.powerHistory(log)
	c.cluster.replicateAudit(sec.store, reg, log)

	// The live host view: Nova's notifications and node samples from
	// JetStream, reconciled with Nova and Placement when credentials exist.
	view := hostview.New(hostview.Options{StaleAfter: c.staleAfter})
	events.RegisterViewMetrics(reg, view)
	consumer, err := events.New(nc, view, c.events.config(events.Config{
		SubjectPrefix: c.subjectPrefix,
		StateFile:     filepath.Join(filepath.Dir(c.dbPath), "hostview.json"),
		Replicas:      c.cluster.streamReplicas(),
	}), log, events.NewMetrics(reg))
	if err != nil {
		return fmt.Errorf("%w: --subject-prefix: %v", errUsage, err)
	}
	cloud, err := openstack.Connect(ctx, openstack.Options{Cloud: c.osCloud})
	retryConnect := err != nil && !errors.Is(err, openstack.ErrNoCredentials)
	sources := fmt.Sprintf("events (%s)", strings.Join(consumer.Subjects(), ", "))
	switch {
	case errors.Is(err, openstack.ErrNoCredentials):
		log.Info("no OpenStack credentials: running on events alone")
		cloud = nil
	case err != nil:
		// The placement service must not go down with Keystone: run on
		// events, and keep trying (below).
		log.Error("OpenStack unreachable: running on events alone until it answers", "err", err)
		cloud = nil
		sources += " (resync failed to connect, retrying: " + oneLine(err) + ")"
	default:
		log.Info("OpenStack credentials found", "source", cloud.Source, "resync_interval", c.resyncInterval)
		sources += fmt.Sprintf(" + resync with Nova and Placement every %s (%s)", c.resyncInterval, cloud.Source)
	}
	if err := c.power.open(store, view, cloud, c.dbPath, reg, log); err != nil {
		return err
	}
	defer c.power.close(log)
	c.cluster.followPower(c.power.m.Reload, log)
	srv, err := server.New(server.Config{DefaultTag: c.defaultTag, Weights: weights, Live: view, LiveSources: sources, StateCacheSize: c.stateCache, NoRoom: c.power.noRoom()}, store, log, stats)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	consumer.SetMaxWatts(srv.ModelMaxWatts) // samples are bounded by the KB's model of their host

	var inflight atomic.Int64
	creds, authUnary, authStream := sec.serverOptions()
	forward, err := c.cluster.forwarding(c.grpcAddr, sec.tls, c.limits.max, log) // after authorization: a refused caller is not forwarded
	if err != nil {
		return err
	}
	authUnary = append(authUnary, forward...)
	g := grpc.NewServer(append(append(append(creds, c.limits.options()...), server.NewCodec().ServerOptions()...),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{countInflight(&inflight), stats.UnaryInterceptor(), server.NewInvalidLog(log, time.Minute, nil).Unary()}, authUnary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{countInflightStream(&inflight), stats.StreamInterceptor()}, authStream...)...))...)
	srv.Register(g)
	sec.audit.Register(g)
	c.rebalance.freed = c.power.m
	c.rebalance.reg = reg
	c.rebalance.agents = containerAgents(nc, view) // containers move through their node agents
	runRebalance, stopRebalance, err := c.rebalance.start(g, srv, cloud, c.dbPath, log)
	if err != nil {
		return err
	}
	defer stopRebalance()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	managePower, reloadPower, err := c.power.start(g, hs, nc, c.subjectPrefix, log)
	if err != nil {
		return err
	}
	reflection.Register(g)

	gl, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return fmt.Errorf("gRPC listen on %s: %w", c.grpcAddr, err)
	}
	hl, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("HTTP listen on %s: %w", c.httpAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		resp, err := hs.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
		c.cluster.healthDetail(w)
	})
	mux.HandleFunc("/cluster", c.cluster.handler(view.AppliedSeq))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: sec.httpTLS()}

	// The stream exists before the service says it is serving, so nothing
	// published from then on can be missed (Run ensures it again); the
	// saved view is loaded, so no answer comes from an empty one.
	consumer.Restore()
	if _, err := consumer.EnsureStream(ctx); err != nil {
		log.Error("host view: JetStream stream unavailable", "err", err)
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(c.console.start(ctx, mux, srv, c.rebalance.rb, c.power.m, sec, c.cluster.consoleForward(), reg, log))
	eg.Go(func() error {
		// A broken stream (an external NATS without JetStream) costs the
		// live view, not the placement service.
		if err := c.cluster.retry(ctx, log, consumer.Run); err != nil {
			log.Error("host view: NATS ingestion stopped", "err", err)
		}
		return nil
	})
	syncMetrics := openstack.NewMetrics(reg)
	switch {
	case cloud != nil:
		syncer := openstack.NewSyncer(cloud, view, c.resyncInterval, log, syncMetrics)
		eg.Go(func() error { return syncer.Run(ctx) })
	case retryConnect:
		eg.Go(func() error {
			every := c.resyncInterval
			if every <= 0 || every > time.Minute {
				every = time.Minute
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
				cl, err := openstack.Connect(ctx, openstack.Options{Cloud: c.osCloud})
				if err != nil {
					log.Warn("OpenStack still unreachable", "err", err, "retry_in", every)
					continue
				}
				log.Info("OpenStack reachable: bootstrap and resync start", "source", cl.Source)
				return openstack.NewSyncer(cl, view, c.resyncInterval, log, syncMetrics).Run(ctx)
			}
		})
	}
	eg.Go(func() error { return runRebalance(ctx) })
	eg.Go(func() error { return followMemoryLimit(ctx, c.memLimit, log) })
	// The power policy acts on one replica: the leader (cluster mode).
	eg.Go(func() error { return c.cluster.whileLeader(ctx, managePower) })
	eg.Go(func() error { return reloadPower(ctx) })
	eg.Go(func() error { return runCluster(ctx) })
	eg.Go(func() error {
		if err := g.Serve(gl); err != nil {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	eg.Go(func() error { return sec.run(ctx) })
	eg.Go(func() error {
		serveHTTP := hsrv.Serve
		if hsrv.TLSConfig != nil {
			serveHTTP = func(l net.Listener) error { return hsrv.ServeTLS(l, "", "") }
		}
		if err := serveHTTP(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		<-ctx.Done()
		log.Info("shutting down", "grace", c.shutdownGrace)
		hs.Shutdown() // NOT_SERVING first, so balancers and the shim's health checks move away
		// GracefulStop alone waits for every client to hang up, and
		// nova-scheduler keeps its channel open for good: wait for the calls
		// in flight instead, then close the idle connections.
		eg.Go(func() error { g.GracefulStop(); return nil }) // returns at g.Stop() below at the latest
		deadline := time.Now().Add(c.shutdownGrace)
		for inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		g.Stop()
		sctx, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
		defer cancel()
		return hsrv.Shutdown(sctx)
	})
	log.Info("ecrae serving", "grpc", gl.Addr().String(), "http", hl.Addr().String(), "nats", natsURL, "default_tag", c.defaultTag)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range []string{"ecrae.v1.PlacementService", "ecrae.v1.KnowledgeBaseService", "ecrae.v1.HostViewService", "ecrae.v1.RebalanceService"} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	err = eg.Wait()
	log.Info("stopped")
	return err
}

// countInflight counts the unary calls being handled, so shutdown knows
// when the last one has answered.
func countInflight(n *atomic.Int64) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		n.Add(1)
		defer n.Add(-1)
		return handler(ctx, req)
	}
}

// startNATS runs the embedded server (with JetStream, stored beside the KB)
// or checks that an external one answers, and returns a connection to it.
func startNATS(c serveConfig, log *slog.Logger) (*nats.Conn, string, func(), error) {
	if c.natsURL != "embedded" {
		auth, err := c.natsSec.externalOptions()
		if err != nil {
			return nil, "", nil, err
		}
		shown := redactURLs(c.natsURL) // a nats://user:password@ URL must not reach the log
		nc, err := nats.Connect(c.natsURL, append(auth, nats.Name("ecrae"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return nil, "", nil, fmt.Errorf("NATS %s: %w", shown, err)
		}
		log.Info("using external NATS", "url", shown)
		return nc, shown, func() {}, nil
	}
	host, portStr, err := net.SplitHostPort(c.natsAddr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: --nats-addr %s: %v", errUsage, quote.Value(c.natsAddr), err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: --nats-addr %s: port: %v", errUsage, quote.Value(c.natsAddr), err)
	}
	if port == 0 {
		// NATS reads port 0 as its default, 4222; here it means any free
		// port, as for --grpc-addr and --http-addr.
		port = natsserver.RANDOM_PORT
	}
	storeDir := filepath.Join(filepath.Dir(c.dbPath), "nats")
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, "", nil, fmt.Errorf("NATS store %s: %w", storeDir, err)
	}
	opts := &natsserver.Options{
		ServerName: "ecrae", Host: host, Port: port, JetStream: true, StoreDir: storeDir,
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
	}
	if err := c.cluster.applyNATS(opts); err != nil {
		return nil, "", nil, err
	}
	self, err := c.natsSec.embeddedOptions(opts, c.subjectPrefix)
	if err != nil {
		return nil, "", nil, err
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, "", nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	c.cluster.started(ns)
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", nil, fmt.Errorf("embedded NATS did not start on %s (is the port taken?)", c.natsAddr)
	}
	nc, err := nats.Connect("", append(self, nats.InProcessServer(ns), nats.Name("ecrae"))...)
	if err != nil {
		ns.Shutdown()
		return nil, "", nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	log.Info("embedded NATS started", "addr", ns.ClientURL(), "jetstream_store", storeDir)
	return nc, ns.ClientURL(), func() { ns.Shutdown(); ns.WaitForShutdown() }, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %s: want debug, info, warn or error", errUsage, quote.Value(level))
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %s: want text or json", errUsage, quote.Value(format))
}

// parseWeights reads "name=value,..."; empty means the defaults.
// parseBytes reads a size: bytes, or a number with a KiB, MiB or GiB
// suffix.
func parseBytes(s string) (int64, error) {
	n, unit := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(n, u.suffix) {
			n, unit = strings.TrimSpace(strings.TrimSuffix(n, u.suffix)), u.size
			break
		}
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/unit {
		return 0, fmt.Errorf("%s is not a size (bytes, or a whole number of KiB, MiB or GiB)", quote.Value(s))
	}
	return v * unit, nil
}

func parseWeights(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%s is not name=value", quote.Value(kv))
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s is not a number", k, quote.Value(v))
		}
		out[k] = f
	}
	return out, nil
}
