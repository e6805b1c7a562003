package server

import (
	"context"
	"errors"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics are the service's Prometheus collectors, on a registry the caller
// owns (no global registry: tests build as many servers as they like).
type Metrics struct {
	rpcs      *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	hostsSeen *prometheus.CounterVec
	hostsPass *prometheus.CounterVec
	stateRefs *prometheus.CounterVec
	failOpen  *prometheus.CounterVec
}

// NewMetrics registers the collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_grpc_requests_total", Help: "gRPC requests (unary and streaming) by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ecrae_grpc_request_duration_seconds", Help: "gRPC request handling time (a stream's: from its start to its end).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"method"}),
		hostsSeen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_filter_hosts_total", Help: "Hosts seen by FilterHosts, by tag.",
		}, []string{"tag"}),
		hostsPass: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_filter_hosts_passed_total", Help: "Hosts that passed FilterHosts, by tag.",
		}, []string{"tag"}),
		stateRefs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_host_state_refs_total", Help: "Host state references (state_ref) by result: resolved, or unknown (the client sent full states again).",
		}, []string{"result"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_placement_fail_open_total",
			Help: "Nova filter/weigher calls the shim could not use, so Nova placed without ECRAE (fail open), by method and reason: the gRPC code answered, client_deadline (answered after the shim gave up), or as the shim reports them with its next call: unreachable (no replica answered) and shim (it could not build the request or use the answer).",
		}, []string{"method", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.rpcs, m.latency, m.hostsSeen, m.hostsPass, m.stateRefs, m.failOpen)
	}
	return m
}

func (m *Metrics) filtered(tag string, seen, passed int) {
	m.hostsSeen.WithLabelValues(tag).Add(float64(seen))
	m.hostsPass.WithLabelValues(tag).Add(float64(passed))
}

func (m *Metrics) referenced(resolved int, unknown bool) {
	if resolved > 0 {
		m.stateRefs.WithLabelValues("resolved").Add(float64(resolved))
	}
	if unknown {
		m.stateRefs.WithLabelValues("unknown").Inc()
	}
}

// UnaryInterceptor counts and times every unary call.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		m.rpcs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		m.countFailOpen(ctx, info.FullMethod, err)
		if err == nil && ctx.Err() == nil {
			// Counted once: the shim reports them again until a call of
			// the method succeeds for it.
			m.countShimFailOpens(info.FullMethod, req)
		}
		return resp, err
	}
}

// StreamInterceptor counts and times every streaming call (`ecrae hosts`,
// reflection, health watches) as UnaryInterceptor does a unary one: its
// code when it ends, and how long it ran.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		m.rpcs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		return err
	}
}

// countFailOpen counts the shim's calls that make it fail open: any error
// answer to FilterHosts or WeighHosts, or an answer that came after the
// caller's deadline (the shim's [ecrae] timeout).
func (m *Metrics) countFailOpen(ctx context.Context, method string, err error) {
	if method != "/ecrae.v1.PlacementService/FilterHosts" && method != "/ecrae.v1.PlacementService/WeighHosts" {
		return
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		m.failOpen.WithLabelValues(method, "client_deadline").Inc()
	case err != nil:
		m.failOpen.WithLabelValues(method, status.Code(err).String()).Inc()
	}
}

// countShimFailOpens adds the passes the shim reports it failed open on
// its own (ShimFailOpens) since its last call of the method that the
// service answered.
func (m *Metrics) countShimFailOpens(method string, req any) {
	var r *ecraev1.ShimFailOpens
	switch q := req.(type) {
	case *ecraev1.FilterHostsRequest:
		r = q.GetShimFailOpens()
	case *ecraev1.WeighHostsRequest:
		r = q.GetShimFailOpens()
	}
	if n := r.GetUnreachable(); n > 0 {
		m.failOpen.WithLabelValues(method, "unreachable").Add(float64(n))
	}
	if n := r.GetShim(); n > 0 {
		m.failOpen.WithLabelValues(method, "shim").Add(float64(n))
	}
}
