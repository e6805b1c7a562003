package optimizer

import (
	"context"
	"time"
)

// Budget bounds a search. The optimizer never reads the clock itself: a
// caller that wants a time limit passes its clock.
//
// The same seed gives the same result whenever the search ends by its
// iteration budget, by reaching the lower bound, or by finding nothing more
// to try; a search cut by the deadline reports Stopped "time" and may differ
// from run to run, since how far it got depends on the machine.
type Budget struct {
	// Now reads the caller's clock; nil means no deadline.
	Now      func() time.Time
	Deadline time.Time
	// MaxIterations bounds the search steps (local-search moves, swarm
	// decodes); 0 means DefaultIterations.
	MaxIterations int
	// Cancel ends the work when it closes (a context's Done); nil = never.
	// Every phase checks it, construction and sequencing included.
	Cancel <-chan struct{}
}

// WithContext returns b cut by ctx: its deadline when earlier than b's, and
// its cancellation.
func (b Budget) WithContext(ctx context.Context) Budget {
	if d, ok := ctx.Deadline(); ok && (b.Now == nil || d.Before(b.Deadline)) {
		if b.Now == nil {
			b.Now = time.Now
		}
		b.Deadline = d
	}
	b.Cancel = ctx.Done()
	return b
}

// DefaultIterations is the iteration budget of a search that names none.
// It is large enough that a typical run ends by stalling, not by it.
const DefaultIterations = 100_000_000

// Why a search stopped.
const (
	StoppedOptimal    = "optimal"    // reached the lower bound
	StoppedStalled    = "stalled"    // nothing left to try
	StoppedIterations = "iterations" // the iteration budget ran out
	StoppedTime       = "time"       // the deadline passed
	StoppedConstruct  = "construct"  // a single-pass heuristic, no search
	StoppedCancelled  = "cancelled"  // Budget.Cancel closed
)

// meter counts a search's steps against its Budget.
type meter struct {
	b       Budget
	max     int
	iter    int
	stopped string
}

func newMeter(b Budget) *meter {
	m := &meter{b: b, max: b.MaxIterations}
	if m.max <= 0 {
		m.max = DefaultIterations
	}
	return m
}

// step counts n steps and reports whether the search must stop. The clock
// is read every 64 steps: often enough for a 10 ms granularity, rarely
// enough to cost nothing.
func (m *meter) step(n int) bool {
	if m.stopped != "" {
		return true
	}
	before := m.iter
	m.iter += n
	if m.iter >= m.max {
		m.stopped = StoppedIterations
		return true
	}
	if m.iter>>6 != before>>6 {
		return m.out()
	}
	return false
}

// tick counts one costly step (a whole neighbourhood scan) and reads the
// clock every time: such a step takes long enough that the read is free.
func (m *meter) tick(n int) bool {
	if m.stopped != "" {
		return true
	}
	m.iter += n
	if m.iter >= m.max {
		m.stopped = StoppedIterations
		return true
	}
	return m.out()
}

// share returns a meter for a stage that may use frac of what is left of
// the time and iterations; fold its count back with absorb.
func (m *meter) share(frac float64) *meter {
	c := &meter{b: m.b, max: m.iter + int(float64(m.max-m.iter)*frac), iter: m.iter}
	if m.b.Now != nil {
		now := m.b.Now()
		c.b.Deadline = now.Add(time.Duration(float64(m.b.Deadline.Sub(now)) * frac))
	}
	return c
}

// shareTime returns a meter for a stage that may use frac of what is left
// of the time, and all the iterations left (the stages after it, such as
// sequencing, count none); fold its count back with absorb.
func (m *meter) shareTime(frac float64) *meter {
	c := m.share(frac)
	c.max = m.max
	return c
}

// absorb takes over the count of a stage's meter.
func (m *meter) absorb(c *meter) {
	m.iter = c.iter
	if c.stopped == StoppedCancelled {
		m.stopped = StoppedCancelled
	}
	if c.stopped == StoppedTime && m.b.Now != nil && !m.b.Now().Before(m.b.Deadline) {
		m.stopped = StoppedTime
	}
}

// every is a cheap budget check for loops whose steps are not search
// iterations (construction, sequencing): it reads the clock once every 64
// calls and reports whether the budget is spent.
type every struct {
	m *meter
	n int
}

func (e *every) out() bool {
	e.n++
	if e.n&63 != 0 {
		return e.m.stopped != ""
	}
	return e.m.out()
}

// out reports whether the budget is spent, without counting a step.
func (m *meter) out() bool {
	if m.stopped != "" {
		return true
	}
	if m.b.Cancel != nil {
		select {
		case <-m.b.Cancel:
			m.stopped = StoppedCancelled
			return true
		default:
		}
	}
	if m.b.Now != nil && !m.b.Now().Before(m.b.Deadline) {
		m.stopped = StoppedTime
		return true
	}
	return false
}

// elapsed is the time since start on the caller's clock, 0 without one.
func (m *meter) elapsed(start time.Time) time.Duration {
	if m.b.Now == nil {
		return 0
	}
	return m.b.Now().Sub(start)
}

func (m *meter) now() time.Time {
	if m.b.Now == nil {
		return time.Time{}
	}
	return m.b.Now()
}
