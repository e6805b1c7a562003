package server

import (
	"context"
	"time"

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
}

// NewMetrics registers the collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_grpc_requests_total", Help: "gRPC requests by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ecrae_grpc_request_duration_seconds", Help: "gRPC request handling time.",
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
	}
	if reg != nil {
		reg.MustRegister(m.rpcs, m.latency, m.hostsSeen, m.hostsPass, m.stateRefs)
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
		return resp, err
	}
}
