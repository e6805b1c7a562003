package main

import (
	"sync/atomic"

	"google.golang.org/grpc"
)

// countInflightStream counts the streaming calls being handled (`ecrae
// hosts`), so shutdown waits for them as for unary calls: each ends on its
// own once its messages are sent.
func countInflightStream(n *atomic.Int64) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		n.Add(1)
		defer n.Add(-1)
		return handler(srv, ss)
	}
}
