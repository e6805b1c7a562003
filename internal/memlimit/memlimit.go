// Package memlimit keeps Go's soft memory limit a multiple of the live heap.
//
// A fixed limit (1 GiB) with a high GC target (GOGC=1600) is fine while the
// live heap is small; once the host view and the state cache of a large cloud
// bring the live heap near the limit, every few MB of allocation triggers a
// collection and the collector runs continuously. Deriving the limit from the
// live heap keeps the room between collections proportional to what a
// collection has to mark, so the collector's share of CPU stays bounded.
package memlimit

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of `ecrae serve --memory-limit auto`.
const (
	// DefaultFloor is the limit while the live heap is small: the fixed
	// limit the service ran with before.
	DefaultFloor = 1 << 30
	// DefaultFactor: the limit is this many times the live heap, so a
	// collection happens at most every (factor-1)×live bytes allocated.
	DefaultFactor = 4
	// DefaultInterval is how often the live heap is read.
	DefaultInterval = 5 * time.Second
)

// Limit is the soft memory limit for a live heap of live bytes:
// max(floor, factor×live), saturating at math.MaxInt64.
func Limit(live uint64, floor int64, factor float64) int64 {
	want := factor * float64(live)
	if want >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(floor, int64(want))
}

// LiveHeap is the heap marked live by the last completed collection
// (runtime/metrics /gc/heap/live:bytes).
func LiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Controller sets the process's soft memory limit from its live heap.
type Controller struct {
	Floor    int64
	Factor   float64
	Interval time.Duration
	Log      *slog.Logger
}

// Apply sets the limit once from the current live heap and returns it.
func (c *Controller) Apply() int64 {
	limit := Limit(LiveHeap(), c.Floor, c.Factor)
	debug.SetMemoryLimit(limit)
	return limit
}

// Run applies the limit every Interval until ctx ends. A change of more than
// an eighth is logged, not every tick.
func (c *Controller) Run(ctx context.Context) error {
	every := c.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := c.Apply()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		limit := c.Apply()
		if c.Log != nil && (limit > last+last/8 || limit < last-last/8) {
			c.Log.Info("memory limit follows the live heap", "limit_mib", limit>>20, "previous_mib", last>>20)
			last = limit
		}
	}
}
