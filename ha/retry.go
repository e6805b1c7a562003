package ha

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// runUntilDone runs fn again a second after each time it returns, until
// ctx ends: JetStream answers only once a cluster's members have met and
// elected their leaders, and a watch ends when its stream's leader moves.
func runUntilDone(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn(what+": retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// awaitApplied waits until seen (the last sequence a replica's watch or
// consumer applied) reaches the last one stream held when it was called.
func awaitApplied(ctx context.Context, js jetstream.JetStream, stream string, seen *atomic.Uint64) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	return pollUntil(ctx, 20*time.Millisecond, func() bool { return seen.Load() >= last })
}

// pollUntil checks cond every interval until it holds (nil) or ctx ends
// (its error).
func pollUntil(ctx context.Context, every time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}
