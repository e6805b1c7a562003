package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ecrae/ecrae/audit"
	"github.com/ecrae/ecrae/ha"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/power"
	"github.com/ecrae/ecrae/rebalance"
	"github.com/ecrae/ecrae/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// clusterServe is serve's cluster mode (issue 14): several replicas on one
// NATS JetStream cluster, the KB replicated through a KV bucket, one
// leader acting at a time. Without --cluster nothing here runs.
type clusterServe struct {
	name, node, addr, routes string
	replicas                 int
	leaseTTL                 time.Duration
	advertise                string        // --grpc-advertise (serve_forward.go)
	st                       *clusterState // shared by the copies of serveConfig; nil: flags never registered
}

// clusterState is what cluster mode holds while serving.
type clusterState struct {
	ns    *natsserver.Server // embedded member; nil with an external cluster
	js    jetstream.JetStream
	kb    *ha.KB
	lease *ha.Lease
	plans *ha.Plans      // set by attachPlans; nil until then
	power *ha.PowerLog   // set by powerHistory's replicate; nil until then
	audit *ha.AuditTrail // set by replicateAudit; nil until then
	// forwarder sends leader-only calls to the leader (set by forwarding;
	// closed when run ends).
	forwarder *server.Forwarder
	takeover  func(ctx context.Context) // run each time this replica becomes leader
	replicas  int

	mu      sync.Mutex
	leading context.Context // the current leadership's context; nil when not leader
	changed chan struct{}   // closed and replaced when leading changes
}

func (c *clusterServe) register(fs *flag.FlagSet) {
	c.st = &clusterState{changed: make(chan struct{})}
	host, _ := os.Hostname()
	fs.StringVar(&c.name, "cluster", "", "cluster mode: name of the NATS JetStream cluster the replicas share (none: one replica, as before)")
	fs.StringVar(&c.node, "node-name", host, "cluster mode: this replica's name, unique in the cluster (NATS server name and leader lease holder)")
	fs.StringVar(&c.addr, "nats-cluster-addr", "", "cluster mode, embedded NATS: HOST:PORT of this member's route listener")
	fs.StringVar(&c.routes, "nats-routes", "", "cluster mode, embedded NATS: nats://HOST:PORT of every member's route listener, comma-separated")
	fs.IntVar(&c.replicas, "cluster-replicas", 0, "cluster mode: copies of the replicated streams and buckets (0: min(3, members); with an external --nats: 3)")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", 10*time.Second, "cluster mode: the leader lease's time to live; another replica acts within about this long after the leader dies")
	fs.StringVar(&c.advertise, "grpc-advertise", "", "cluster mode: HOST:PORT the other replicas reach this one's gRPC at, to forward leader-only calls (default: --grpc-addr, with the hostname when it listens everywhere)")
}

func (c *clusterServe) on() bool { return c.st != nil && c.name != "" }

// check refuses flag combinations that cannot work, before anything starts.
func (c *clusterServe) check(natsURL string) error {
	if !c.on() {
		if c.addr != "" || c.routes != "" {
			return fmt.Errorf("%w: --nats-cluster-addr and --nats-routes need --cluster", errUsage)
		}
		if c.advertise != "" {
			return fmt.Errorf("%w: --grpc-advertise needs --cluster", errUsage)
		}
		return nil
	}
	if c.leaseTTL < 300*time.Millisecond {
		return fmt.Errorf("%w: --lease-ttl %s: want at least 300ms", errUsage, c.leaseTTL)
	}
	if c.replicas < 0 {
		return fmt.Errorf("%w: --cluster-replicas %d: want 0 or more", errUsage, c.replicas)
	}
	if c.advertise != "" {
		if _, err := advertised(c.advertise, ""); err != nil {
			return err
		}
	}
	if natsURL != "embedded" {
		if c.addr != "" || c.routes != "" {
			return fmt.Errorf("%w: --nats-cluster-addr and --nats-routes are for the embedded NATS server, not with --nats %s", errUsage, redactURLs(natsURL))
		}
		if c.replicas == 0 {
			c.st.replicas = 3
		} else {
			c.st.replicas = c.replicas
		}
		return nil
	}
	if c.addr == "" || c.routes == "" {
		return fmt.Errorf("%w: --cluster with the embedded NATS server needs --nats-cluster-addr and --nats-routes", errUsage)
	}
	routes, err := ha.ParseRoutes(c.routes)
	if err != nil {
		return fmt.Errorf("%w: --nats-routes: %v", errUsage, err)
	}
	cl := ha.Cluster{Name: c.name, Node: c.node, Addr: c.addr, Routes: routes}
	if err := cl.Apply(&natsserver.Options{}); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c.st.replicas = c.replicas
	if c.replicas == 0 {
		c.st.replicas = ha.Replicas(cl.Size())
	}
	return nil
}

// applyNATS makes the embedded server a cluster member (called by
// startNATS; a no-op outside cluster mode).
func (c *clusterServe) applyNATS(o *natsserver.Options) error {
	if !c.on() {
		return nil
	}
	routes, err := ha.ParseRoutes(c.routes)
	if err != nil {
		return fmt.Errorf("%w: --nats-routes: %v", errUsage, err)
	}
	if err := (ha.Cluster{Name: c.name, Node: c.node, Addr: c.addr, Routes: routes}).Apply(o); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func (c *clusterServe) started(ns *natsserver.Server) {
	if c.on() {
		c.st.ns = ns
	}
}

// streamReplicas is the copies the event stream keeps (0 outside cluster
// mode: the stream as before).
func (c *clusterServe) streamReplicas() int {
	if !c.on() {
		return 0
	}
	return c.st.replicas
}

// start makes the KB replicated and prepares the lease; run (serve's
// errgroup owns it) keeps both going. Outside cluster mode run returns at
// once.
func (c *clusterServe) start(nc *nats.Conn, store *kbstore.Store, reg prometheus.Registerer, log *slog.Logger) (run func(ctx context.Context) error, err error) {
	if !c.on() {
		return func(context.Context) error { return nil }, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	st := c.st
	st.js = js
	st.kb = ha.NewKB(js, st.replicas, store, log.With("part", "kb-replication"))
	st.lease = ha.NewLease(js, st.replicas, c.node, c.leaseTTL, log.With("part", "leader-lease"))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ecrae_kb_replicated_revision", Help: "Revision of the replicated KB bucket this replica serves."},
			func() float64 { return float64(st.kb.Revision()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ecrae_leader", Help: "1 while this replica holds the leader lease."},
			func() float64 {
				if st.lease.IsLeader() {
					return 1
				}
				return 0
			}),
	)
	log.Info("cluster mode", "cluster", c.name, "node", c.node, "replicas", st.replicas, "lease_ttl", c.leaseTTL)
	return func(ctx context.Context) error {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = st.kb.Run(ctx) }()
		if st.plans != nil {
			st.plans.StopWith(ctx)
			wg.Add(1)
			go func() { defer wg.Done(); _ = st.plans.Run(ctx) }()
		}
		if st.power != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = st.power.Run(ctx) }()
		}
		if st.audit != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = st.audit.Run(ctx) }()
		}
		if st.forwarder != nil {
			defer st.forwarder.Close()
		}
		err := st.lease.Run(ctx, func(lctx context.Context) {
			st.setLeading(lctx)
			if st.takeover != nil {
				st.takeover(lctx)
			}
			<-lctx.Done()
			st.setLeading(nil)
		})
		wg.Wait()
		return err
	}, nil
}

func (st *clusterState) setLeading(ctx context.Context) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.leading = ctx
	close(st.changed)
	st.changed = make(chan struct{})
}

// whileLeader runs fn outside cluster mode; in cluster mode, each time
// this replica leads, under the leadership's context, until ctx ends.
func (c *clusterServe) whileLeader(ctx context.Context, fn func(ctx context.Context) error) error {
	if !c.on() {
		return fn(ctx)
	}
	for {
		c.st.mu.Lock()
		lctx, changed := c.st.leading, c.st.changed
		c.st.mu.Unlock()
		if lctx != nil && lctx.Err() == nil {
			if err := fn(lctx); err != nil && ctx.Err() == nil && lctx.Err() == nil {
				return err
			}
			// fn is done for this term (e.g. the periodic mode is off):
			// not again before the next one.
			<-lctx.Done()
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// fence wraps m so that every migration first checks the lease's fencing
// revision (outside cluster mode m is returned as is).
func (c *clusterServe) fence(m rebalance.Migrator) rebalance.Migrator {
	if !c.on() || m == nil {
		return m
	}
	return ha.Fence(m, c.st.lease)
}

// ClusterStatus is one replica's answer on /cluster (`ecrae cluster
// status` reads it from every replica).
type ClusterStatus struct {
	Cluster    string     `json:"cluster"`
	Node       string     `json:"node"`
	Leader     string     `json:"leader"`
	IsLeader   bool       `json:"is_leader"`
	KBRevision uint64     `json:"kb_revision"`
	ViewSeq    uint64     `json:"view_seq"`
	NATS       NATSStatus `json:"nats"`
}

// NATSStatus is the JetStream cluster as this replica's NATS member sees
// it (embedded only).
type NATSStatus struct {
	Embedded   bool         `json:"embedded"`
	Routes     int          `json:"routes"`
	MetaLeader string       `json:"meta_leader,omitempty"`
	Peers      []NATSMember `json:"peers,omitempty"`
}

// NATSMember is one JetStream peer.
type NATSMember struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
}

// handler serves /cluster (404 outside cluster mode).
func (c *clusterServe) handler(viewSeq func() uint64) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if !c.on() || c.st.kb == nil {
			http.Error(w, "not in cluster mode", http.StatusNotFound)
			return
		}
		st := c.st
		out := ClusterStatus{Cluster: c.name, Node: c.node, Leader: st.lease.Leader(), IsLeader: st.lease.IsLeader(),
			KBRevision: st.kb.Revision(), ViewSeq: viewSeq()}
		if st.ns != nil {
			out.NATS.Embedded = true
			out.NATS.Routes = st.ns.NumRoutes()
			if jsz, err := st.ns.Jsz(nil); err == nil && jsz.Meta != nil {
				out.NATS.MetaLeader = jsz.Meta.Leader
				out.NATS.Peers = append(out.NATS.Peers, NATSMember{Name: st.ns.Name(), Current: true})
				for _, p := range jsz.Meta.Replicas {
					out.NATS.Peers = append(out.NATS.Peers, NATSMember{Name: p.Name, Current: p.Current, Offline: p.Offline})
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
}

// healthDetail adds the replica's KB revision and role to /healthz in
// cluster mode.
func (c *clusterServe) healthDetail(w io.Writer) {
	if !c.on() || c.st.kb == nil {
		return
	}
	fmt.Fprintf(w, "kb_revision %d\nleader %t\n", c.st.kb.Revision(), c.st.lease.IsLeader())
}

// retry runs fn once outside cluster mode; in cluster mode again after
// each failure (JetStream answers only once the members have met and
// elected their leaders), until ctx ends.
func (c *clusterServe) retry(ctx context.Context, log *slog.Logger, fn func(ctx context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || !c.on() {
			return err
		}
		log.Warn("cluster mode: retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// powerHistory returns, in cluster mode, what makes the power history the
// cluster's (replicate, before the manager reads it) and what reloads the
// manager from it at the start of each leadership term (takeover: once it
// holds every event published, waiting out a JetStream election); nil
// outside cluster mode.
func (c *clusterServe) powerHistory(log *slog.Logger) (replicate func(*power.History), takeover func(context.Context, func() error) error) {
	if !c.on() || c.st.lease == nil {
		return nil, nil
	}
	st := c.st
	replicate = func(h *power.History) {
		st.power = ha.NewPowerLog(st.js, st.replicas, h, log.With("part", "power-replication"))
	}
	takeover = func(ctx context.Context, reload func() error) error {
		err := c.retry(ctx, log, func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return st.power.Takeover(cctx, reload)
		})
		if err == nil && ctx.Err() != nil {
			return ctx.Err() // the term ended while waiting
		}
		return err
	}
	return replicate, takeover
}

// replicateAudit makes the audit trail the cluster's (a no-op outside
// cluster mode): each replica's records go through the ECRAE_AUDIT stream
// and every replica lists them all; a record made without quorum waits in
// this replica's outbox (ecrae_audit_pending_records) until the stream
// takes it.
func (c *clusterServe) replicateAudit(store *audit.Store, reg prometheus.Registerer, log *slog.Logger) {
	if !c.on() || c.st.js == nil {
		return
	}
	c.st.audit = ha.NewAuditTrail(c.st.js, c.st.replicas, store, c.node, log.With("part", "audit-replication"))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ecrae_audit_pending_records",
		Help: "Audit records this replica keeps until the replicated trail takes them (made while the cluster had no quorum)."},
		func() float64 { return float64(store.Pending()) }))
}

// followPower has a follower's power manager reload the hosts that are
// off each time this replica has applied the replicated history's latest
// events (a no-op outside cluster mode): its console shows them. The
// leader's manager made those events itself, and reloaded at takeover.
func (c *clusterServe) followPower(reload func() error, log *slog.Logger) {
	if !c.on() || c.st.power == nil {
		return
	}
	lease := c.st.lease
	c.st.power.OnCaughtUp(func() {
		if lease.IsLeader() {
			return
		}
		if err := reload(); err != nil {
			log.Error("power: reload from the replicated history", "err", err)
		}
	})
}

// attachPlans replicates the plan store through the plans bucket and, each
// time this replica becomes leader, takes over the plans the previous
// leader left executing (a no-op outside cluster mode).
func (c *clusterServe) attachPlans(store *planstore.Store, resume func(ctx context.Context, id string) error, log *slog.Logger) {
	if !c.on() || c.st.lease == nil {
		return
	}
	st := c.st
	st.plans = ha.NewPlans(st.js, st.replicas, store, st.lease, log.With("part", "plan-replication"))
	st.takeover = func(ctx context.Context) { st.plans.Lead(ctx, c.leaseTTL, resume) }
}
