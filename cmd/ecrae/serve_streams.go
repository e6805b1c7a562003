package main

import (
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
)

// countInflightStream counts ECRAE's own streaming calls being handled
// (`ecrae hosts`), so shutdown waits for them as for unary calls: each ends
// on its own once its messages are sent. A health Watch or a reflection
// session lasts as long as its client wants: waiting for it would hold
// every shutdown for the whole grace.
func countInflightStream(n *atomic.Int64) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, "/ecrae.v1.") {
			return handler(srv, ss)
		}
		n.Add(1)
		defer n.Add(-1)
		return handler(srv, ss)
	}
}
