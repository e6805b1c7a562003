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

// Watts is one architecture's (ISA's) power at one instant.
type Watts struct {
	// Model is the KB model's estimate summed over every host of the ISA.
	Model float64 `json:"model_watts"`
	// Measured is the node agents' readings summed over the hosts that have
	// a fresh one; ModelOfMeasured is the model's estimate for those same
	// hosts, the fair comparison.
	Measured        float64 `json:"measured_watts"`
	ModelOfMeasured float64 `json:"model_of_measured_watts"`
	Hosts           int     `json:"hosts"`
	MeasuredHosts   int     `json:"measured_hosts"`
}

// Sample is the fleet at one instant, by ISA.
type Sample struct {
	At    time.Time        `json:"at"`
	ByISA map[string]Watts `json:"by_isa"`
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
	isas  map[string]bool // the ISAs the gauges hold series for
}

// NewFleet keeps up to size samples (at least 2); reg receives
// ecrae_fleet_watts and ecrae_fleet_hosts (nil: not registered).
func NewFleet(size int, reg prometheus.Registerer) *Fleet {
	if size < 2 {
		size = 2
	}
	f := &Fleet{
		ring: make([]Sample, size),
		isas: map[string]bool{},
		watts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecrae_fleet_watts",
			Help: "Fleet power by ISA: source=model (the KB's estimate, every host), measured (node agents' readings, hosts with a fresh one), model_of_measured (the estimate for those same hosts).",
		}, []string{"isa", "source"}),
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecrae_fleet_hosts", Help: "Hosts of the live view by ISA, and how many have a fresh power reading (measured=true).",
		}, []string{"isa", "measured"}),
	}
	if reg != nil {
		reg.MustRegister(f.watts, f.hosts)
	}
	return f
}

// Summarise turns the live hosts into one sample: hosts without an ISA
// count under "unknown".
func Summarise(at time.Time, hosts []*ecraev1.LiveHost) Sample {
	s := Sample{At: at, ByISA: map[string]Watts{}}
	for _, h := range hosts {
		isa := h.GetIsa()
		if isa == "" {
			isa = "unknown"
		}
		w := s.ByISA[isa]
		w.Hosts++
		w.Model += h.GetModelWatts()
		if h.GetWattsMeasured() {
			w.MeasuredHosts++
			w.Measured += h.GetWatts()
			w.ModelOfMeasured += h.GetModelWatts()
		}
		s.ByISA[isa] = w
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
	// An ISA no host has any more loses its series; the others are
	// overwritten in place, so a scrape never sees them missing.
	for isa := range f.isas {
		if _, ok := s.ByISA[isa]; !ok {
			f.watts.DeletePartialMatch(prometheus.Labels{"isa": isa})
			f.hosts.DeletePartialMatch(prometheus.Labels{"isa": isa})
			delete(f.isas, isa)
		}
	}
	for isa, w := range s.ByISA {
		f.isas[isa] = true
		f.watts.WithLabelValues(isa, "model").Set(w.Model)
		f.watts.WithLabelValues(isa, "measured").Set(w.Measured)
		f.watts.WithLabelValues(isa, "model_of_measured").Set(w.ModelOfMeasured)
		f.hosts.WithLabelValues(isa, "true").Set(float64(w.MeasuredHosts))
		f.hosts.WithLabelValues(isa, "false").Set(float64(w.Hosts - w.MeasuredHosts))
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

// ISAs lists the ISAs seen in samples, sorted.
func ISAs(samples []Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		for isa := range s.ByISA {
			seen[isa] = true
		}
	}
	out := make([]string, 0, len(seen))
	for isa := range seen {
		out = append(out, isa)
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
	for _, w := range s.ByISA {
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
