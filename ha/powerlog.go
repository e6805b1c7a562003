package ha

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ecrae/ecrae/power"
	"github.com/nats-io/nats.go/jetstream"
)

// PowerStream is the power manager's history in cluster mode: one message
// per event, the newest History.Limit kept. It is how a new leader learns
// which hosts the previous one powered off (to wake them when room runs
// short) and which it woke (to enable their nova-compute once they
// report), and it keeps `ecrae power history` whole across a takeover.
const (
	PowerStream  = "ECRAE_POWER"
	powerSubject = "ecrae.power.history"
)

// PowerLog replicates a replica's power history through PowerStream: the
// history publishes each event before storing it (PublishEvent), and every
// replica applies the stream, its own events included, under the stream's
// sequence numbers (Run).
//
// Publishing is not fenced, unlike plans: an event records what a BMC or
// Nova already did (the action itself was fenced), and a leader that lost
// the lease meanwhile must still say so.
type PowerLog struct {
	l streamLog
}

// OnCaughtUp sets f, run each time the events applied bring this replica
// level with the stream: a follower's power manager reloads the hosts
// that are off (its console shows them), without a reload per event when
// it catches up on many.
func (p *PowerLog) OnCaughtUp(f func()) { p.l.caught.Store(&f) }

// NewPowerLog makes hist publish through the stream from now on.
func NewPowerLog(js jetstream.JetStream, replicas int, hist *power.History, log *slog.Logger) *PowerLog {
	p := &PowerLog{l: streamLog{
		js: js, what: "replicated power history", apply: hist.ApplyReplicated, skip: power.ErrMalformedEvent, log: log,
		cfg: jetstream.StreamConfig{
			Name: PowerStream, Description: "ECRAE power manager history (power off, on, refusals)",
			Subjects: []string{powerSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
			MaxMsgs: int64(hist.Limit()), Discard: jetstream.DiscardOld,
		},
	}}
	p.l.seen.Store(hist.ReplicatedSeq())
	hist.SetPublisher(p)
	return p
}

// PublishEvent implements power.Publisher.
func (p *PowerLog) PublishEvent(ctx context.Context, event []byte) (uint64, error) {
	return p.l.publish(ctx, event)
}

// Run creates the stream (retrying until JetStream answers) and applies
// its events from the next one this replica lacks, until ctx ends.
func (p *PowerLog) Run(ctx context.Context) error { return p.l.run(ctx) }

// CaughtUp waits until this replica has applied every event the stream
// held when it was called: a new leader reloads the hosts that are off
// from a whole history.
func (p *PowerLog) CaughtUp(ctx context.Context) error { return p.l.caughtUp(ctx) }

// Takeover, at the start of a leadership term, waits until the history
// holds every event published (CaughtUp) and then has the manager reload
// from it: the hosts the previous leader powered off are this one's to
// wake, and those it woke are this one's to enable once they report.
func (p *PowerLog) Takeover(ctx context.Context, reload func() error) error {
	if err := p.CaughtUp(ctx); err != nil {
		return fmt.Errorf("replicated power history not caught up: %w", err)
	}
	return reload()
}
