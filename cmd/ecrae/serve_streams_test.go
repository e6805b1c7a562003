package main

import (
	"errors"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
)

// TestCountInflightStream: ECRAE's stream counts as in flight (so shutdown
// waits for it) while its handler runs, and no longer once it returned,
// also with an error; a health Watch, held open by its client, does not.
func TestCountInflightStream(t *testing.T) {
	var n atomic.Int64
	in := countInflightStream(&n)
	boom := errors.New("boom")
	for _, c := range []struct {
		method string
		during int64
	}{
		{"/ecrae.v1.HostViewService/StreamLiveHosts", 1},
		{"/grpc.health.v1.Health/Watch", 0},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", 0},
	} {
		var during int64
		err := in(nil, nil, &grpc.StreamServerInfo{FullMethod: c.method}, func(any, grpc.ServerStream) error {
			during = n.Load()
			return boom
		})
		if !errors.Is(err, boom) || during != c.during || n.Load() != 0 {
			t.Errorf("%s: err %v, in flight during %d, after %d; want boom, %d, 0", c.method, err, during, n.Load(), c.during)
		}
	}
}
