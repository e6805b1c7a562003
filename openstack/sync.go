package openstack

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/hypervisors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/placement/v1/resourceproviders"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// tagExtraSpec carries an instance's workload tag (as the shim reads it).
const tagExtraSpec = "ecrae:tag"

// Read reads every compute host and server. The inventory's At is taken
// before the first request: an event the view applies with a later time is
// newer than anything read here.
func (c *Client) Read(ctx context.Context) (hostview.Inventory, error) {
	inv := hostview.Inventory{At: time.Now().UTC()}
	hvPages, err := hypervisors.List(c.Compute, hypervisors.ListOpts{}).AllPages(ctx)
	if err != nil {
		return inv, fmt.Errorf("list hypervisors: %w", err)
	}
	hvs, err := hypervisors.ExtractHypervisors(hvPages)
	if err != nil {
		return inv, fmt.Errorf("list hypervisors: %w", err)
	}
	byUUID := make(map[string]*hypervisors.Hypervisor, len(hvs))
	for i := range hvs {
		byUUID[hvs[i].ID] = &hvs[i]
	}

	rpPages, err := resourceproviders.List(c.Placement, nil).AllPages(ctx)
	if err != nil {
		return inv, fmt.Errorf("list resource providers: %w", err)
	}
	rps, err := resourceproviders.ExtractResourceProviders(rpPages)
	if err != nil {
		return inv, fmt.Errorf("list resource providers: %w", err)
	}
	// Two requests per provider: a few at a time.
	var mu sync.Mutex
	seen := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, rp := range rps {
		if rp.ParentProviderUUID != "" && rp.ParentProviderUUID != rp.UUID {
			continue // nested (NUMA, GPU): the root provider is the compute node
		}
		g.Go(func() error {
			invs, err := resourceproviders.GetInventories(gctx, c.Placement, rp.UUID).Extract()
			if err != nil {
				return fmt.Errorf("inventories of %s (%s): %w", rp.Name, rp.UUID, err)
			}
			if _, ok := invs.Inventories["VCPU"]; !ok {
				return nil // a sharing provider (storage pool), not a compute node
			}
			use, err := resourceproviders.GetUsages(gctx, c.Placement, rp.UUID).Extract()
			if err != nil {
				return fmt.Errorf("usages of %s (%s): %w", rp.Name, rp.UUID, err)
			}
			h := hostview.HostInventory{Name: rp.Name, Nodename: rp.Name, UUID: rp.UUID,
				Capacity: capacity(invs.Inventories),
				Usage: hostview.Usage{VCPUs: use.Usages["VCPU"], MemoryMB: int64(use.Usages["MEMORY_MB"]),
					DiskGB: int64(use.Usages["DISK_GB"])}}
			if hv := byUUID[rp.UUID]; hv != nil {
				fromHypervisor(&h, hv)
			}
			mu.Lock()
			inv.Hosts = append(inv.Hosts, h)
			seen[rp.UUID] = true
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return inv, err
	}
	// A hypervisor Placement does not know (its compute never reported):
	// listed without capacity, so that its state and instances are known.
	for i := range hvs {
		if !seen[hvs[i].ID] {
			h := hostview.HostInventory{Nodename: hvs[i].HypervisorHostname}
			fromHypervisor(&h, &hvs[i])
			inv.Hosts = append(inv.Hosts, h)
		}
	}

	srvPages, err := servers.List(c.Compute, servers.ListOpts{AllTenants: true}).AllPages(ctx)
	if err != nil {
		return inv, fmt.Errorf("list servers of all projects: %w", err)
	}
	srvs, err := servers.ExtractServers(srvPages)
	if err != nil {
		return inv, fmt.Errorf("list servers of all projects: %w", err)
	}
	for i := range srvs {
		inv.Instances = append(inv.Instances, instance(&srvs[i]))
	}
	return inv, nil
}

func fromHypervisor(h *hostview.HostInventory, hv *hypervisors.Hypervisor) {
	if hv.Service.Host != "" {
		h.Name = hv.Service.Host
	}
	h.ISA = hv.CPUInfo.Arch
	h.HypervisorType = hv.HypervisorType
	h.State = hv.State
	h.Disabled = hv.Status == "disabled"
	h.DisabledReason = hv.Service.DisabledReason
}

func capacity(inv map[string]resourceproviders.Inventory) hostview.Capacity {
	ratio := func(r float32) float64 {
		// float32 on the wire: 16.0 stays 16, 1.5 stays 1.5; round away
		// float32 noise (0.1 → 0.10000000149).
		return math.Round(float64(r)*1e6) / 1e6
	}
	v, m, d := inv["VCPU"], inv["MEMORY_MB"], inv["DISK_GB"]
	return hostview.Capacity{
		VCPUs: v.Total, VCPUsReserved: v.Reserved, CPURatio: ratio(v.AllocationRatio),
		MemoryMB: int64(m.Total), MemoryMBReserved: int64(m.Reserved), RAMRatio: ratio(m.AllocationRatio),
		DiskGB: int64(d.Total), DiskGBReserved: int64(d.Reserved), DiskRatio: ratio(d.AllocationRatio),
	}
}

// powerStates are Nova's power_state codes as its notifications spell them.
var powerStates = map[servers.PowerState]string{
	servers.NOSTATE: "pending", servers.RUNNING: "running", servers.PAUSED: "paused",
	servers.SHUTDOWN: "shutdown", servers.CRASHED: "crashed", servers.SUSPENDED: "suspended",
}

func instance(s *servers.Server) hostview.Instance {
	i := hostview.Instance{
		UUID: s.ID, Name: s.Name, Host: s.Host, Node: s.HypervisorHostname, Project: s.TenantID,
		State: s.VmState, PowerState: powerStates[s.PowerState], TaskState: s.TaskState,
	}
	// From compute 2.47 the flavor is embedded: sizes and extra specs.
	f := s.Flavor
	i.Flavor = hostview.Flavor{
		Name: str(f["original_name"]), VCPUs: int(num(f["vcpus"])), MemoryMB: num(f["ram"]),
		RootGB: num(f["disk"]), EphemeralGB: num(f["ephemeral"]), SwapMB: num(f["swap"]),
	}
	if es, ok := f["extra_specs"].(map[string]any); ok {
		i.Tag = str(es[tagExtraSpec])
	}
	return i
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads a JSON number; Nova's swap is "" when 0 in older microversions.
func num(v any) int64 {
	switch t := v.(type) {
	case float64:
		return int64(t)
	case string:
		n, _ := strconv.ParseInt(t, 10, 64)
		return n
	}
	return 0
}

// Reader reads a full inventory.
type Reader interface {
	Read(ctx context.Context) (hostview.Inventory, error)
}

// Reconciler is what the syncer needs of the view.
type Reconciler interface {
	Reconcile(inv hostview.Inventory) hostview.Drift
}

var (
	_ Reader     = (*Client)(nil)
	_ Reconciler = (*hostview.View)(nil)
)

// Metrics of the resync.
type Metrics struct {
	runs     *prometheus.CounterVec
	drift    *prometheus.CounterVec
	duration prometheus.Gauge
	last     prometheus.Gauge
}

// NewMetrics registers the collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_resync_total", Help: "Resyncs of the host view with Nova and Placement, by result (ok, error).",
		}, []string{"result"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_resync_drift_total",
			Help: "Differences a resync found between the host view and Nova/Placement, by kind (host_added, instance_moved, usage_mismatch, ...).",
		}, []string{"kind"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ecrae_resync_duration_seconds", Help: "How long the last resync took.",
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ecrae_resync_last_success_timestamp_seconds", Help: "When the last successful resync ended (Unix time).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.drift, m.duration, m.last)
	}
	return m
}

// Syncer bootstraps the view and resyncs it periodically.
type Syncer struct {
	r        Reader
	v        Reconciler
	interval time.Duration
	log      *slog.Logger
	m        *Metrics
	retry    time.Duration // first wait after a failed sync, doubling to 5m
	// booted is set by the first successful sync: the bootstrap fills the
	// view, which is not drift (neither counted nor warned about).
	booted bool
}

// NewSyncer returns a syncer; interval ≤ 0 means bootstrap only.
func NewSyncer(r Reader, v Reconciler, interval time.Duration, log *slog.Logger, m *Metrics) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Syncer{r: r, v: v, interval: interval, log: log, m: m, retry: 5 * time.Second}
}

// SyncOnce reads Nova and Placement and reconciles the view. What the
// first successful one changes is the bootstrap, not drift.
func (s *Syncer) SyncOnce(ctx context.Context) (hostview.Drift, error) {
	start := time.Now()
	inv, err := s.r.Read(ctx)
	if err != nil {
		s.m.runs.WithLabelValues("error").Inc()
		return hostview.Drift{}, err
	}
	d := s.v.Reconcile(inv)
	took := time.Since(start)
	s.m.runs.WithLabelValues("ok").Inc()
	s.m.duration.Set(took.Seconds())
	s.m.last.Set(float64(time.Now().Unix()))
	if !s.booted {
		s.booted = true
		s.log.Info("bootstrap: host view read from Nova and Placement", "hosts", len(inv.Hosts), "instances", len(inv.Instances),
			"took", took.Round(time.Millisecond), "filled", d.Total())
		return d, nil
	}
	attrs := []any{"hosts", len(inv.Hosts), "instances", len(inv.Instances), "took", took.Round(time.Millisecond), "drift", d.Total()}
	for k, n := range d.ByKind() {
		s.m.drift.WithLabelValues(k).Add(float64(n))
		if n > 0 {
			attrs = append(attrs, k, n)
		}
	}
	if d.Total() > 0 {
		s.log.Warn("resync corrected the host view", attrs...)
	} else {
		s.log.Info("resync", attrs...)
	}
	return d, nil
}

// Run syncs at once, then every interval, until ctx ends. A failed sync is
// logged and retried (sooner than the interval, backing off); it never
// stops the service.
func (s *Syncer) Run(ctx context.Context) error {
	retry := s.retry
	for {
		wait := s.interval
		if _, err := s.SyncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("resync with Nova and Placement failed", "err", err, "retry_in", retry)
			wait = retry
			if s.interval > 0 {
				wait = min(retry, s.interval)
			}
			retry = min(2*retry, 5*time.Minute)
		} else {
			retry = s.retry
			if s.interval <= 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
