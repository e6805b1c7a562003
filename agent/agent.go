package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecrae/ecrae/events"
)

// checkHost refuses a host name that cannot be part of a NATS subject
// (a dotted name is fine: the sample's body names the host).
func checkHost(h string) error {
	if h == "" {
		return errors.New("agent: no host name")
	}
	if strings.ContainsAny(h, "*> \t\r\n") || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return fmt.Errorf("agent: host name %.100q cannot be in a NATS subject (no spaces, '*', '>' or empty dot-separated parts)", h)
	}
	return nil
}

// Subject is the NATS subject of a host's samples.
func Subject(host string) string { return "ecrae.metrics." + host }

// Publisher sends one message; *nats.Conn satisfies it through NATSPublisher.
type Publisher interface {
	// Connected reports whether a publish may reach the server now.
	Connected() bool
	// Publish sends data and returns once the server has it.
	Publish(ctx context.Context, subject string, data []byte) error
}

// Config of an Agent.
type Config struct {
	Host string
	// Watts are the watts sources in order of preference; the first that
	// gives a reading wins each sample.
	Watts []WattsSource
	// ProcStat is the /proc/stat path, "" = no utilisation.
	ProcStat string
	// UtilOnly allows samples without watts ("proc" in --sources).
	UtilOnly bool
	// Buffer is how many samples are kept while NATS is away (oldest
	// dropped first). 0 = 360 (an hour at 10 s).
	Buffer int
	// LogEvery limits the "NATS away, samples dropped" log to one line per
	// this long. 0 = a minute.
	LogEvery time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// Agent samples a node and publishes its samples.
type Agent struct {
	cfg  Config
	proc *procSource

	mu      sync.Mutex
	queue   [][]byte // oldest first, at most cfg.Buffer
	dropped uint64   // samples dropped since start
	lastLog time.Time
	logged  uint64 // dropped count at the last log
	source  string // the source of the last sample, to log a change
}

// New returns an agent.
func New(cfg Config) (*Agent, error) {
	if err := checkHost(cfg.Host); err != nil {
		return nil, err
	}
	if len(cfg.Watts) == 0 && !cfg.UtilOnly {
		return nil, errors.New("agent: no source")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 360
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg}
	if cfg.ProcStat != "" {
		a.proc = newProcSource(cfg.ProcStat)
	}
	return a, nil
}

// Collect takes one sample. Sources that need two readings for a rate
// return ErrPriming the first time: Collect then returns ErrPriming too,
// and the next call has a sample.
func (a *Agent) Collect(ctx context.Context) (events.Sample, error) {
	s := newSample(a.cfg.Host, a.cfg.Now())
	var utilErr error
	if a.proc != nil {
		r, err := a.proc.read()
		if err == nil {
			s.CPUUtilization = &r.Util
			if r.HasDemand {
				s.CPUDemand = &r.Demand
			}
		}
		utilErr = err
	}
	var errs []error
	priming := errors.Is(utilErr, ErrPriming)
	for _, src := range a.cfg.Watts {
		w, err := src.Watts(ctx)
		if errors.Is(err, ErrPriming) {
			priming = true
			break // it works: wait for its rate rather than fall through
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Watts, s.Source, s.WattsSource = &w, src.Name(), events.WattsMeasured
		break
	}
	if priming {
		return events.Sample{}, ErrPriming
	}
	if s.Watts == nil {
		if !a.cfg.UtilOnly || s.CPUUtilization == nil {
			return events.Sample{}, fmt.Errorf("agent: no source gave a reading: %w", errors.Join(append(errs, utilErr)...))
		}
		s.Source, s.WattsSource = SourceProc, events.WattsModel
	}
	a.mu.Lock()
	changed := s.Source != a.source
	a.source = s.Source
	a.mu.Unlock()
	if changed {
		// Once per change, not per sample: which source feeds the samples
		// is what an operator checks first.
		attrs := []any{"source", s.Source, "watts", s.WattsSource}
		if len(errs) > 0 {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = e.Error()
			}
			attrs = append(attrs, "sources_failed", strings.Join(msgs, "; "))
		}
		a.cfg.Log.Info("sample source", attrs...)
	}
	return s, nil
}

// Prime takes the first readings of the rate sources.
func (a *Agent) Prime(ctx context.Context) {
	if _, err := a.Collect(ctx); err != nil && !errors.Is(err, ErrPriming) {
		a.cfg.Log.Warn("first reading", "err", err)
	}
}

// enqueue adds a sample, dropping the oldest past the bound.
func (a *Agent) enqueue(b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) >= a.cfg.Buffer {
		n := len(a.queue) - a.cfg.Buffer + 1
		a.queue = slices.Delete(a.queue, 0, n)
		a.dropped += uint64(n)
	}
	a.queue = append(a.queue, b)
}

// Dropped is how many samples were dropped since start.
func (a *Agent) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Queued is how many samples wait for NATS.
func (a *Agent) Queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// flush publishes the queued samples oldest first while the server takes
// them; a sample leaves the queue only once published.
func (a *Agent) flush(ctx context.Context, pub Publisher) {
	subject := Subject(a.cfg.Host)
	for pub.Connected() {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.mu.Unlock()
			return
		}
		head := a.queue[0]
		a.mu.Unlock()
		if err := pub.Publish(ctx, subject, head); err != nil {
			a.cfg.Log.Debug("publish", "err", err)
			break
		}
		// enqueue runs on the same goroutine (Run's): the head is still
		// the one published.
		a.mu.Lock()
		a.queue = a.queue[1:]
		a.mu.Unlock()
	}
	a.logAway()
}

// logAway logs, at most once per LogEvery, that NATS is away.
func (a *Agent) logAway() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	if len(a.queue) == 0 || now.Sub(a.lastLog) < a.cfg.LogEvery {
		return
	}
	a.cfg.Log.Warn("NATS is away: samples are buffered", "queued", len(a.queue),
		"buffer", a.cfg.Buffer, "dropped_since_last_log", a.dropped-a.logged, "dropped_total", a.dropped)
	a.lastLog, a.logged = now, a.dropped
}

// Run samples every interval and publishes through pub until ctx ends.
// wake, when not nil, asks for a flush at once (NATS reconnected).
func (a *Agent) Run(ctx context.Context, pub Publisher, interval time.Duration, wake <-chan struct{}) error {
	a.Prime(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			a.flush(ctx, pub)
		case <-t.C:
			s, err := a.Collect(ctx)
			if errors.Is(err, ErrPriming) {
				continue
			}
			if err != nil {
				a.cfg.Log.Warn("sample", "err", err)
				continue
			}
			b, err := json.Marshal(s)
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			a.enqueue(b)
			a.flush(ctx, pub)
		}
	}
}
