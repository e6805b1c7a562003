package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ecrae/ecrae/power"
	"github.com/ecrae/ecrae/server"
	"github.com/ecrae/ecrae/server/console"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// consoleServe is the web console on serve's HTTP address (issue 16).
type consoleServe struct {
	off     bool
	every   time.Duration
	samples int
}

func (cs *consoleServe) register(fs *flag.FlagSet) {
	fs.BoolVar(&cs.off, "console-off", false, "do not serve the web console at / on --http-addr")
	fs.DurationVar(&cs.every, "console-sample-interval", 10*time.Second, "how often the console samples fleet power (measured and model) from the live view")
	fs.IntVar(&cs.samples, "console-samples", 360, "fleet power samples kept in memory for the console's chart (the oldest dropped first)")
}

// start mounts the console on mux and returns the fleet sampler for serve's
// errgroup (which owns it until ctx ends). State-changing pages go through
// the same authorization and audit as gRPC (server.HTTPGate), and in
// cluster mode through forward to the leader, as gRPC calls are.
func (cs *consoleServe) start(ctx context.Context, mux *http.ServeMux, srv *server.Server, rb *server.Rebalancer, pm *power.Manager, sec *securityRuntime, forward grpc.UnaryServerInterceptor, reg prometheus.Registerer, log *slog.Logger) func() error {
	if cs.off {
		return func() error { return nil }
	}
	// Zero values (a config built without the flags) take the defaults.
	if cs.every == 0 {
		cs.every = 10 * time.Second
	}
	if cs.samples == 0 {
		cs.samples = 360
	}
	if cs.every < 0 || cs.samples < 2 {
		return func() error {
			return fmt.Errorf("%w: --console-sample-interval must be positive and --console-samples at least 2", errUsage)
		}
	}
	fleet := console.NewFleet(cs.samples, reg)
	gate := server.HTTPGate{Authz: sec.authz, Audit: sec.audit, Forward: forward}
	cfg := console.Config{Service: srv, Fleet: fleet, Log: log, Gate: gate, Registerer: reg}
	if rb != nil {
		cfg.Plans = rb
	}
	if pm != nil {
		cfg.Power = server.NewConsolePower(pm)
	}
	con, err := console.New(cfg)
	if err != nil {
		return func() error { return err }
	}
	mux.Handle("/", con)
	return func() error { return fleet.Run(ctx, srv, cs.every, log) }
}
