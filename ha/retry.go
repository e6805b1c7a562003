package ha

import (
	"context"
	"log/slog"
	"time"
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
