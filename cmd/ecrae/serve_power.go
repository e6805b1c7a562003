package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/openstack"
	"github.com/ecrae/ecrae/power"
	"github.com/ecrae/ecrae/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// powerServe is the host power part of `ecrae serve` (issue 12): its
// flags, the manager with its history (<db dir>/power.db), the
// PowerService, SIGHUP reloading the credentials.
type powerServe struct {
	policy      string
	headroom    string
	credentials string
	interval    time.Duration
	timeout     time.Duration

	// fence, in cluster mode, is checked before every power action.
	fence power.Fence
	// replicate, in cluster mode, makes the history the cluster's
	// (ha.PowerLog) before the manager reads it; takeover, at the start
	// of each leadership term, reloads the manager from it once it holds
	// every event published.
	replicate func(*power.History)
	takeover  func(ctx context.Context, reload func() error) error

	m         *power.Manager
	hist      *power.History
	closeOnce *sync.Once // a pointer: serveConfig is passed by value
}

// close closes the history once: when the manager stops, or when serve
// returns (also on an error before start).
func (p *powerServe) close(log *slog.Logger) {
	if p.closeOnce == nil {
		return // never opened
	}
	p.closeOnce.Do(func() {
		// bbolt waits for a transaction in progress; later ones fail cleanly.
		if err := p.hist.Close(); err != nil {
			log.Error("power: close history", "err", err)
		}
	})
}

func (p *powerServe) register(fs *flag.FlagSet) {
	fs.StringVar(&p.policy, "power-policy", "advise", "what the power manager does on its own: off, advise (record what it would do) or act")
	fs.StringVar(&p.headroom, "power-headroom", power.DefaultHeadroom, `spare powered-on capacity kept per architecture, e.g. "hosts=2,vcpus=10%"`)
	fs.StringVar(&p.credentials, "power-credentials", "", "YAML file of BMC credentials {default: {username, password}, hosts: {NAME: {...}}}; read at start and on SIGHUP")
	fs.DurationVar(&p.interval, "power-interval", 10*time.Second, "how often woken hosts and the headroom are checked")
	fs.DurationVar(&p.timeout, "power-timeout", 5*time.Second, "time a BMC has to answer one exchange")
}

// open builds the manager; serve calls it before server.New so that a
// FilterHosts pass without room can wake a host.
func (p *powerServe) open(store *kbstore.Store, view *hostview.View, cloud *openstack.Client, dbPath string, reg prometheus.Registerer, log *slog.Logger) error {
	if p.policy == "" { // a config built without the flags
		p.policy, p.interval, p.timeout = "advise", 10*time.Second, 5*time.Second
	}
	policy, err := power.ParsePolicy(p.policy)
	if err != nil {
		return fmt.Errorf("%w: --power-policy %v", errUsage, err)
	}
	headroom, err := power.ParseHeadroom(p.headroom)
	if err != nil {
		return fmt.Errorf("%w: --power-headroom: %v", errUsage, err)
	}
	if p.interval <= 0 || p.timeout <= 0 {
		return fmt.Errorf("%w: --power-interval and --power-timeout must be positive", errUsage)
	}
	var creds *power.CredentialFile
	if p.credentials != "" {
		if creds, err = power.LoadCredentials(p.credentials); err != nil {
			return err
		}
	}
	p.hist, err = power.OpenHistory(filepath.Join(filepath.Dir(dbPath), "power.db"), 0)
	if err != nil {
		return err
	}
	p.closeOnce = &sync.Once{}
	if p.replicate != nil {
		p.replicate(p.hist)
	}
	cfg := power.Config{Policy: policy, Headroom: headroom, Credentials: creds, View: view, History: p.hist,
		Metrics: power.NewMetrics(reg), Log: log, Interval: p.interval,
		Backends: power.Backends{Timeout: p.timeout}, Fence: p.fence,
		Hosts: func(ctx context.Context) ([]power.HostEntry, error) {
			hs, err := store.ListHosts(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]power.HostEntry, len(hs))
			for i, h := range hs {
				out[i] = power.HostEntry{Name: h.Name, Architecture: h.Architecture, Power: h.Power}
			}
			return out, nil
		}}
	if cloud != nil && cloud.Compute != nil {
		cfg.Nova = openstack.NewServices(cloud.Compute)
		cfg.Backends.Baremetal = cloud.Baremetal
	}
	if p.m, err = power.NewManager(cfg); err != nil {
		p.hist.Close()
		return err
	}
	log.Info("power manager ready", "policy", policy, "headroom", headroom.String(), "nova", cfg.Nova != nil, "credentials", p.credentials)
	return nil
}

// noRoom is the FilterHosts hook.
func (p *powerServe) noRoom() func() { return p.m.NoRoom }

// start registers the PowerService and subscribes to Nova's "no valid
// host" (so nothing published from serving on is missed); the functions it
// returns run the manager and reload the credentials on SIGHUP until their
// context ends, each under serve's errgroup. serve closes the history.
func (p *powerServe) start(g *grpc.Server, hs *health.Server, nc *nats.Conn, subjectPrefix string, log *slog.Logger) (manage, reload func(context.Context) error, err error) {
	server.NewPowerService(p.m).Register(g)
	// Nova's "no valid host": Placement had no room, so no filter (nor
	// FilterHosts) ran; the failed task's notification is the signal. A
	// plain subscription: a missed one costs a wake-up's promptness only,
	// the headroom check still runs.
	if subjectPrefix == "" {
		subjectPrefix = "nova" // as events.Config reads an empty prefix
	}
	subject := subjectPrefix + ".versioned_notifications.error.compute_task.>"
	sub, err := nc.Subscribe(subject, func(msg *nats.Msg) {
		if id, ok := power.NoValidHost(msg.Data); ok {
			log.Info("power: Nova found no valid host: waking a host", "instance", id)
			p.m.NoRoom()
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("power: subscribe to %s: %w", subject, err)
	}
	const svc = "ecrae.v1.PowerService"
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	p.m.SetOnPause(func(paused bool) {
		st := healthpb.HealthCheckResponse_SERVING
		if paused {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus(svc, st)
	})
	// Subscribed before serving: a SIGHUP never meets the default action.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// manage may run once per leadership term in cluster mode (serve
	// gates it): it owns nothing that outlives a term.
	manage = func(ctx context.Context) error {
		if p.takeover != nil {
			// A new leader: the hosts the previous one powered off or woke
			// are in the replicated history; they are this one's now.
			if err := p.takeover(ctx, p.m.Reload); err != nil {
				if ctx.Err() == nil {
					log.Error("power: the manager does not run this term", "err", err)
				}
				return nil
			}
			log.Info("power manager leading", "hosts_off", p.m.HostsOff())
		}
		if err := p.m.Run(ctx); err != nil {
			log.Error("power manager stopped", "err", err)
		}
		return nil
	}
	reload = func(ctx context.Context) error {
		defer signal.Stop(hup)
		defer sub.Unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				if p.credentials == "" {
					continue
				}
				c, err := power.LoadCredentials(p.credentials)
				if err != nil {
					log.Error("power: credentials not reloaded, the previous ones stay", "err", err)
					continue
				}
				p.m.SetCredentials(c)
				log.Info("power: credentials reloaded", "file", p.credentials)
			}
		}
	}
	return manage, reload, nil
}

// The power manager's Nova side is openstack's compute services client.
var _ power.Nova = (*openstack.Services)(nil)
