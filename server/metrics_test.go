package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFailOpenCounted: every answer that makes the shim fail open is
// counted by reason; good answers and other methods are not.
func TestFailOpenCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	ic := m.UnaryInterceptor()
	call := func(ctx context.Context, method string, err error) {
		_, _ = ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return nil, err })
	}
	const filter, weigh = "/ecrae.v1.PlacementService/FilterHosts", "/ecrae.v1.PlacementService/WeighHosts"
	bg := context.Background()
	call(bg, filter, nil)
	call(bg, filter, status.Error(codes.InvalidArgument, "instance.tag: unknown tag"))
	call(bg, filter, status.Error(codes.InvalidArgument, "instance.tag: unknown tag"))
	call(bg, weigh, status.Error(codes.Unavailable, "kb"))
	call(bg, "/ecrae.v1.PlacementService/WhatIf", status.Error(codes.InvalidArgument, "x"))
	late, cancel := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	call(late, weigh, nil)
	want := `
# HELP ecrae_placement_fail_open_total Nova filter/weigher calls the shim could not use, so Nova placed without ECRAE (fail open), by method and reason: the gRPC code answered, or client_deadline (answered after the shim gave up). A shim that cannot reach the service at all is not counted here.
# TYPE ecrae_placement_fail_open_total counter
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/FilterHosts",reason="InvalidArgument"} 2
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/WeighHosts",reason="Unavailable"} 1
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/WeighHosts",reason="client_deadline"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecrae_placement_fail_open_total"); err != nil {
		t.Error(err)
	}
}
