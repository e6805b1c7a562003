package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InvalidLog logs the placement calls (Nova's, through the shim) that the
// service refuses with InvalidArgument: at most once per interval for each
// reason, with how many were held back, so an unknown flavor tag is seen
// without a line per boot. The shim then fails open; the counter is
// ecrae_grpc_requests_total{code="InvalidArgument"}.
type InvalidLog struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	seen map[string]*invalidReason
}

type invalidReason struct {
	last time.Time
	held int
}

// maxInvalidReasons bounds the reasons remembered: hostile requests with
// ever-new values must not grow the map without end.
const maxInvalidReasons = 1024

// NewInvalidLog logs to log at most once per interval per reason; now is
// the clock (nil: time.Now).
func NewInvalidLog(log *slog.Logger, interval time.Duration, now func() time.Time) *InvalidLog {
	if now == nil {
		now = time.Now
	}
	return &InvalidLog{log: log, interval: interval, now: now, seen: map[string]*invalidReason{}}
}

// Unary is the interceptor; it sees PlacementService calls only.
func (l *InvalidLog) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil && strings.HasPrefix(info.FullMethod, "/ecrae.v1.PlacementService/") {
			if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
				l.note(info.FullMethod, s.Message())
			}
		}
		return resp, err
	}
}

func (l *InvalidLog) note(method, reason string) {
	now := l.now()
	l.mu.Lock()
	r, ok := l.seen[reason]
	if ok && now.Sub(r.last) < l.interval {
		r.held++
		l.mu.Unlock()
		return
	}
	if !ok {
		if len(l.seen) >= maxInvalidReasons {
			for k, v := range l.seen { // forget the reasons past their interval
				if now.Sub(v.last) >= l.interval {
					delete(l.seen, k)
				}
			}
		}
		r = &invalidReason{}
		if len(l.seen) < maxInvalidReasons {
			l.seen[reason] = r
		}
	}
	held := r.held
	r.last, r.held = now, 0
	l.mu.Unlock()
	l.log.Warn("refused a placement request as invalid (Nova fails open for it)", "method", method[strings.LastIndex(method, "/")+1:],
		"reason", reason, "held_back", held, "per", l.interval)
}
