package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

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
	js       jetstream.JetStream
	replicas int
	hist     *power.History
	log      *slog.Logger

	ready  atomic.Bool   // the stream exists
	seen   atomic.Uint64 // last stream sequence applied
	caught atomic.Pointer[func()]
}

// OnCaughtUp sets f, run each time the events applied bring this replica
// level with the stream: a follower's power manager reloads the hosts
// that are off (its console shows them), without a reload per event when
// it catches up on many.
func (p *PowerLog) OnCaughtUp(f func()) { p.caught.Store(&f) }

// NewPowerLog makes hist publish through the stream from now on.
func NewPowerLog(js jetstream.JetStream, replicas int, hist *power.History, log *slog.Logger) *PowerLog {
	p := &PowerLog{js: js, replicas: replicas, hist: hist, log: log}
	p.seen.Store(hist.ReplicatedSeq())
	hist.SetPublisher(p)
	return p
}

// PublishEvent implements power.Publisher.
func (p *PowerLog) PublishEvent(ctx context.Context, event []byte) (uint64, error) {
	if err := p.awaitReady(ctx); err != nil {
		return 0, fmt.Errorf("stream %s not reachable yet: %w", PowerStream, err)
	}
	// Retried while no stream leader answers (an election in progress).
	ack, err := p.js.Publish(ctx, powerSubject, event, jetstream.WithExpectStream(PowerStream),
		jetstream.WithRetryAttempts(20), jetstream.WithRetryWait(250*time.Millisecond))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", PowerStream, err)
	}
	return ack.Sequence, nil
}

// Run creates the stream (retrying until JetStream answers) and applies
// its events from the next one this replica lacks, until ctx ends.
func (p *PowerLog) Run(ctx context.Context) error {
	return runUntilDone(ctx, p.log, "replicated power history", p.follow)
}

func (p *PowerLog) follow(ctx context.Context) error {
	if !p.ready.Load() {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.js.CreateOrUpdateStream(octx, jetstream.StreamConfig{
			Name: PowerStream, Description: "ECRAE power manager history (power off, on, refusals)",
			Subjects: []string{powerSubject}, Storage: jetstream.FileStorage, Replicas: p.replicas,
			MaxMsgs: int64(p.hist.Limit()), Discard: jetstream.DiscardOld,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("stream %s (replicas %d): %w", PowerStream, p.replicas, err)
		}
		p.ready.Store(true)
	}
	from := p.seen.Load() + 1
	oc, err := p.js.OrderedConsumer(ctx, PowerStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s from %d: %w", PowerStream, from, err)
	}
	failed := make(chan error, 1)
	broken := false // the callback runs one message at a time
	cc, err := oc.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil || broken {
			return // after a failure, nothing past it: the next round starts there
		}
		seq := md.Sequence.Stream
		if err := p.hist.ApplyReplicated(seq, msg.Data()); err != nil {
			// A malformed event is skipped (and said); the file failing is
			// retried from this event on.
			p.log.Error("replicated power history: event not applied", "seq", seq, "err", err)
			if !errors.Is(err, power.ErrMalformedEvent) {
				broken = true
				select {
				case failed <- err:
				default:
				}
				return
			}
		}
		p.seen.Store(seq)
		if f := p.caught.Load(); f != nil && md.NumPending == 0 {
			(*f)()
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			p.log.Warn("replicated power history: consumer", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", PowerStream, from, err)
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-failed:
		return err
	}
}

// CaughtUp waits until this replica has applied every event the stream
// held when it was called: a new leader reloads the hosts that are off
// from a whole history.
func (p *PowerLog) CaughtUp(ctx context.Context) error {
	if err := p.awaitReady(ctx); err != nil {
		return err
	}
	return awaitApplied(ctx, p.js, PowerStream, &p.seen)
}

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

// awaitReady waits until Run has created the stream (a replica that has
// just started), while ctx lasts.
func (p *PowerLog) awaitReady(ctx context.Context) error {
	return pollUntil(ctx, 50*time.Millisecond, p.ready.Load)
}
