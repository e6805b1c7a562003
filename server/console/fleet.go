package console

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// Watts is one architecture's (KB host model's) power at one instant.
type Watts struct {
	// Model is the KB model's estimate summed over every host of the architecture.
	Model float64 `json:"model_watts"`
	// Measured is the node agents' readings summed over the hosts that have
	// a fresh one; ModelOfMeasured is the model's estimate for those same
	// hosts, the fair comparison.
	Measured        float64 `json:"measured_watts"`
	ModelOfMeasured float64 `json:"model_of_measured_watts"`
	Hosts           int     `json:"hosts"`
	MeasuredHosts   int     `json:"measured_hosts"`
}

// Sample is the fleet at one instant, by architecture.
type Sample struct {
	At     time.Time        `json:"at"`
	ByArch map[string]Watts `json:"by_architecture"`
}

// Fleet keeps the last samples of fleet power in a ring: the console's
// chart reads them, and ecrae_fleet_watts shows the newest.
type Fleet struct {
	mu    sync.Mutex
	ring  []Sample
	next  int
	full  bool
	watts *prometheus.GaugeVec
	hosts *prometheus.GaugeVec
	archs map[string]bool // the architectures the gauges hold series for
}

// NewFleet keeps up to size samples (at least 2); reg receives
// ecrae_fleet_watts and ecrae_fleet_hosts (nil: not registered).
func NewFleet(size int, reg prometheus.Registerer) *Fleet {
	if size < 2 {
		size = 2
	}
	f := &Fleet{
		ring:  make([]Sample, size),
		archs: map[string]bool{},
		watts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecrae_fleet_watts",
			Help: "Fleet power by architecture (KB host model): source=model (the KB's estimate, every host), measured (node agents' readings, hosts with a fresh one), model_of_measured (the estimate for those same hosts).",
		}, []string{"architecture", "source"}),
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecrae_fleet_hosts", Help: "Hosts of the live view by architecture, and how many have a fresh power reading (measured=true).",
		}, []string{"architecture", "measured"}),
	}
	if reg != nil {
		reg.MustRegister(f.watts, f.hosts)
	}
	return f
}

// Summarise turns the live hosts into one sample: hosts neither Placement
// nor the KB sizes (no architecture) count under "unknown".
func Summarise(at time.Time, hosts []*ecraev1.LiveHost) Sample {
	s := Sample{At: at, ByArch: map[string]Watts{}}
	for _, h := range hosts {
		arch := h.GetArchitecture()
		if arch == "" {
			arch = "unknown"
		}
		w := s.ByArch[arch]
		w.Hosts++
		w.Model += h.GetModelWatts()
		if h.GetWattsMeasured() {
			w.MeasuredHosts++
			w.Measured += h.GetWatts()
			w.ModelOfMeasured += h.GetModelWatts()
		}
		s.ByArch[arch] = w
	}
	return s
}

// Add records a sample, dropping the oldest when the ring is full.
func (f *Fleet) Add(s Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring[f.next] = s
	f.next = (f.next + 1) % len(f.ring)
	if f.next == 0 {
		f.full = true
	}
	// An architecture no host has any more loses its series; the others are
	// overwritten in place, so a scrape never sees them missing.
	for arch := range f.archs {
		if _, ok := s.ByArch[arch]; !ok {
			f.watts.DeletePartialMatch(prometheus.Labels{"architecture": arch})
			f.hosts.DeletePartialMatch(prometheus.Labels{"architecture": arch})
			delete(f.archs, arch)
		}
	}
	for arch, w := range s.ByArch {
		f.archs[arch] = true
		f.watts.WithLabelValues(arch, "model").Set(w.Model)
		f.watts.WithLabelValues(arch, "measured").Set(w.Measured)
		f.watts.WithLabelValues(arch, "model_of_measured").Set(w.ModelOfMeasured)
		f.hosts.WithLabelValues(arch, "true").Set(float64(w.MeasuredHosts))
		f.hosts.WithLabelValues(arch, "false").Set(float64(w.Hosts - w.MeasuredHosts))
	}
}

// Samples returns the samples kept, oldest first.
func (f *Fleet) Samples() []Sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.full {
		return append([]Sample(nil), f.ring[:f.next]...)
	}
	return append(append([]Sample(nil), f.ring[f.next:]...), f.ring[:f.next]...)
}

// Architectures lists the architectures seen in samples, sorted.
func Architectures(samples []Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		for arch := range s.ByArch {
			seen[arch] = true
		}
	}
	out := make([]string, 0, len(seen))
	for arch := range seen {
		out = append(out, arch)
	}
	sort.Strings(out)
	return out
}

// HostLister is what the sampler reads: server.Server.
type HostLister interface {
	ListLiveHosts(ctx context.Context, req *ecraev1.ListLiveHostsRequest) (*ecraev1.ListLiveHostsResponse, error)
}

// Run takes a sample now and then every interval until ctx ends; its owner
// is serve's errgroup. A failed read is logged and skipped.
func (f *Fleet) Run(ctx context.Context, hosts HostLister, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f.SampleOnce(ctx, hosts, log)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SampleOnce reads the live view and adds one sample.
func (f *Fleet) SampleOnce(ctx context.Context, hosts HostLister, log *slog.Logger) {
	resp, err := hosts.ListLiveHosts(ctx, &ecraev1.ListLiveHostsRequest{})
	if err != nil {
		if ctx.Err() == nil && log != nil {
			log.Warn("console: fleet power sample skipped", "err", err)
		}
		return
	}
	at := time.Now()
	if resp.GetAsOf() != nil {
		at = resp.GetAsOf().AsTime()
	}
	f.Add(Summarise(at, resp.GetHosts()))
}

// Total is the fleet's power in a sample: measured where a host has a
// fresh reading, the model's estimate elsewhere.
func (s Sample) Total() float64 {
	t := 0.0
	for _, w := range s.ByArch {
		t += w.Measured + w.Model - w.ModelOfMeasured
	}
	return t
}

// Realised is how much less the fleet drew after end than before start:
// the last sample at or before start against the first at or after end.
// It counts every cause (load changes too), so it is a check on a plan's
// prediction, not a measure of the plan alone. false when the ring does
// not hold both samples.
func (f *Fleet) Realised(start, end time.Time) (float64, bool) {
	var before, after *Sample
	samples := f.Samples()
	for i := range samples {
		s := &samples[i]
		if !s.At.After(start) {
			before = s
		}
		if after == nil && !s.At.Before(end) {
			after = s
		}
	}
	if before == nil || after == nil {
		return 0, false
	}
	return before.Total() - after.Total(), true
}
