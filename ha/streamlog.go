package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamLog is a replicated log on a JetStream stream that every replica
// applies, its own entries included, under the stream's sequence numbers
// into its own file: the power history (PowerLog) and the audit trail
// (AuditTrail).
type streamLog struct {
	js     jetstream.JetStream
	cfg    jetstream.StreamConfig // Name, Subjects, MaxMsgs, ...
	what   string                 // for logs: "replicated power history"
	apply  func(seq uint64, data []byte) error
	skip   error // an entry apply refuses with this is skipped (malformed)
	log    *slog.Logger
	ready  atomic.Bool   // the stream exists
	seen   atomic.Uint64 // last stream sequence applied
	caught atomic.Pointer[func()]
}

// publish appends data to the stream, retried while no stream leader
// answers (an election in progress).
func (l *streamLog) publish(ctx context.Context, data []byte, opts ...jetstream.PublishOpt) (uint64, error) {
	if err := l.awaitReady(ctx); err != nil {
		return 0, fmt.Errorf("stream %s not reachable yet: %w", l.cfg.Name, err)
	}
	opts = append([]jetstream.PublishOpt{jetstream.WithExpectStream(l.cfg.Name),
		jetstream.WithRetryAttempts(20), jetstream.WithRetryWait(250 * time.Millisecond)}, opts...)
	ack, err := l.js.Publish(ctx, l.cfg.Subjects[0], data, opts...)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", l.cfg.Name, err)
	}
	return ack.Sequence, nil
}

// run creates the stream (retrying until JetStream answers) and applies
// its entries from the next one this replica lacks, until ctx ends.
func (l *streamLog) run(ctx context.Context) error {
	return runUntilDone(ctx, l.log, l.what, l.follow)
}

func (l *streamLog) follow(ctx context.Context) error {
	if !l.ready.Load() {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := l.js.CreateOrUpdateStream(octx, l.cfg)
		cancel()
		if err != nil {
			return fmt.Errorf("stream %s (replicas %d): %w", l.cfg.Name, l.cfg.Replicas, err)
		}
		l.ready.Store(true)
	}
	from := l.seen.Load() + 1
	oc, err := l.js.OrderedConsumer(ctx, l.cfg.Name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s from %d: %w", l.cfg.Name, from, err)
	}
	failed := make(chan error, 1)
	broken := false // the callback runs one message at a time
	cc, err := oc.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil || broken {
			return // after a failure, nothing past it: the next round starts there
		}
		seq := md.Sequence.Stream
		if err := l.apply(seq, msg.Data()); err != nil {
			// A malformed entry is skipped (and said); the file failing is
			// retried from this entry on.
			l.log.Error(l.what+": entry not applied", "seq", seq, "err", err)
			if !errors.Is(err, l.skip) {
				broken = true
				select {
				case failed <- err:
				default:
				}
				return
			}
		}
		l.seen.Store(seq)
		if f := l.caught.Load(); f != nil && md.NumPending == 0 {
			(*f)()
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			l.log.Warn(l.what+": consumer", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", l.cfg.Name, from, err)
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-failed:
		return err
	}
}

// caughtUp waits until this replica has applied every entry the stream
// held when it was called.
func (l *streamLog) caughtUp(ctx context.Context) error {
	if err := l.awaitReady(ctx); err != nil {
		return err
	}
	return awaitApplied(ctx, l.js, l.cfg.Name, &l.seen)
}

// awaitReady waits until run has created the stream (a replica that has
// just started), while ctx lasts.
func (l *streamLog) awaitReady(ctx context.Context) error {
	return pollUntil(ctx, 50*time.Millisecond, l.ready.Load)
}
