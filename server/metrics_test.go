package server

import (
	"context"
	"strings"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
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
	report := func(ctx context.Context, method string, req any, err error) {
		_, _ = ic(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return nil, err })
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
	// What the shim reports it failed open on its own counts once, with
	// the answer that reaches it: a failed or late answer leaves the
	// report to its next call.
	report(bg, filter, &ecraev1.FilterHostsRequest{ShimFailOpens: &ecraev1.ShimFailOpens{Unreachable: 3, Shim: 1}}, nil)
	report(bg, filter, &ecraev1.FilterHostsRequest{ShimFailOpens: &ecraev1.ShimFailOpens{Unreachable: 9}}, status.Error(codes.Unavailable, "stopping"))
	report(late, weigh, &ecraev1.WeighHostsRequest{ShimFailOpens: &ecraev1.ShimFailOpens{Unreachable: 9}}, nil)
	report(bg, weigh, &ecraev1.WeighHostsRequest{ShimFailOpens: &ecraev1.ShimFailOpens{Unreachable: 2}}, nil)
	// Unavailable: 1 filter and 1 weigher answer; client_deadline: the 2
	// late weigher calls; unreachable: filter 3, weigher 2; shim: filter 1;
	// the reports of the failed filter call (9) and of the late weigher
	// call (9) add nothing.
	want := `
# HELP ecrae_placement_fail_open_total Nova filter/weigher calls the shim could not use, so Nova placed without ECRAE (fail open), by method and reason: the gRPC code answered, client_deadline (answered after the shim gave up), or as the shim reports them with its next call: unreachable (no replica answered) and shim (it could not build the request or use the answer).
# TYPE ecrae_placement_fail_open_total counter
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/FilterHosts",reason="InvalidArgument"} 2
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/FilterHosts",reason="Unavailable"} 1
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/FilterHosts",reason="shim"} 1
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/FilterHosts",reason="unreachable"} 3
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/WeighHosts",reason="Unavailable"} 1
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/WeighHosts",reason="client_deadline"} 2
ecrae_placement_fail_open_total{method="/ecrae.v1.PlacementService/WeighHosts",reason="unreachable"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecrae_placement_fail_open_total"); err != nil {
		t.Error(err)
	}
}
