package main

import (
	"errors"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
)

// TestCountInflightStream: a stream counts as in flight (so shutdown waits
// for it) while its handler runs, and no longer once it returned, also
// with an error.
func TestCountInflightStream(t *testing.T) {
	var n atomic.Int64
	in := countInflightStream(&n)
	var during int64
	boom := errors.New("boom")
	err := in(nil, nil, &grpc.StreamServerInfo{FullMethod: "/ecrae.v1.HostViewService/StreamLiveHosts"}, func(any, grpc.ServerStream) error {
		during = n.Load()
		return boom
	})
	if !errors.Is(err, boom) || during != 1 || n.Load() != 0 {
		t.Errorf("err %v, in flight during %d, after %d; want boom, 1, 0", err, during, n.Load())
	}
}
