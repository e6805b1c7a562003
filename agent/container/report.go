package container

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// ReportSubject is where a host's agent publishes its containers; the
// schema is events.ContainerReport (events/README.md).
func ReportSubject(host string) string { return "ecrae.containers." + host }

// Report is one message on ReportSubject.
type Report struct {
	Host       string      `json:"host"`
	Timestamp  string      `json:"timestamp"`
	Arch       string      `json:"arch"`
	Runtime    string      `json:"runtime"`
	Containers []Container `json:"containers"`
}

// Publisher sends one message (agent.NATSPublisher).
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// Reporter publishes the node's running containers every interval, and at
// once when woken (a migration moved one in or out).
type Reporter struct {
	Host     string
	RT       Runtime
	Pub      Publisher
	Interval time.Duration
	Log      *slog.Logger
	// Migrating, when set, says whether a container is being migrated
	// (Migrator.Migrating); it is reported with the container.
	Migrating func(name string) bool
	wake      chan struct{}
}

// Wake asks for a report now.
func (r *Reporter) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Build lists the containers and encodes the report.
func (r *Reporter) Build(ctx context.Context, now time.Time) ([]byte, int, error) {
	cs, err := r.RT.List(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("listing containers: %w", err)
	}
	if cs == nil {
		cs = []Container{}
	}
	if r.Migrating != nil {
		for i := range cs {
			cs[i].Migrating = r.Migrating(cs[i].Name)
		}
	}
	b, err := json.Marshal(Report{Host: r.Host, Timestamp: now.UTC().Format(time.RFC3339Nano), Arch: r.RT.NodeArch(), Runtime: r.RT.Kind(), Containers: cs})
	return b, len(cs), err
}

// Run publishes until ctx ends. NewReporter must have made it.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		b, n, err := r.Build(ctx, time.Now())
		if err == nil {
			err = r.Pub.Publish(ctx, ReportSubject(r.Host), b)
		}
		if err != nil && ctx.Err() == nil {
			r.Log.Warn("container report", "err", err)
		} else {
			r.Log.Debug("container report", "containers", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// NewReporter returns a Reporter.
func NewReporter(host string, rt Runtime, pub Publisher, interval time.Duration, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{Host: host, RT: rt, Pub: pub, Interval: interval, Log: log, wake: make(chan struct{}, 1)}
}
