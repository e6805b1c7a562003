package ha

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/testnet"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/power"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"github.com/ecrae/ecrae/server"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// replicaKB is a small knowledge base: one x86 architecture.
const replicaKB = `
schema_version: 1
architectures:
  - {name: old, isa: x86_64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,
     power_watts: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200], source: test}
tags:
  - name: default
    mode: hint
    candidates:
      - {architecture: old, performance_factor: 1.0}
`

// replica is one service replica in-process, as `ecrae serve --cluster`
// wires it: its own plan file and KB on a real clustered NATS member, the
// lease (advertising its gRPC address), the replicated plans, the
// RebalanceService and PowerService behind the forwarding interceptor on
// a real TCP listener. Nova and the node agents cannot run in a Go test:
// the migrator and Nova's services API are test doubles, named per test.
type replica struct {
	name  string
	addr  string
	store *planstore.Store
	lease *Lease
	plans *Plans
	rb    *server.Rebalancer
	mig   rebalance.Migrator // the executor's (nil: none)
	power *power.Manager
	// powerLog replicates power's history (nil without a power manager).
	powerLog *PowerLog
	view     *hostview.View
	client   *grpc.ClientConn
	cancel   context.CancelFunc
	done     chan struct{}
}

// replicaOptions are what a test plugs in.
type replicaOptions struct {
	migrator func(r *replica, js jetstream.JetStream) rebalance.Migrator // nil: none
	// power builds the replica's power manager on hist, which replicates
	// through the cluster's power stream (as serve does).
	power func(l *Lease, view *hostview.View, hist *power.History) *power.Manager
	view  func(v *hostview.View)
	ttl   time.Duration
}

func startReplicas(t *testing.T, n int, o replicaOptions) []*replica {
	t.Helper()
	if o.ttl == 0 {
		o.ttl = 3 * time.Second
	}
	_, jss := startCluster(t, n)
	logBuf := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica logs:\n%s", logBuf.String())
		}
	})
	var rs []*replica
	for i, js := range jss {
		rs = append(rs, startReplica(t, i, js, n, o, logBuf))
	}
	return rs
}

func startReplica(t *testing.T, i int, js jetstream.JetStream, n int, o replicaOptions, logBuf *syncBuf) *replica {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	name := fmt.Sprintf("r%d", i)
	log := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
	kbs, err := kbstore.Open(filepath.Join(dir, "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kbs.Close() })
	kb, err := kbstore.ParseYAML("replicaKB", []byte(replicaKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := kbs.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	st, err := planstore.Open(filepath.Join(dir, "plans.db"), planstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, addr: lis.Addr().String(), store: st, done: make(chan struct{})}
	r.lease = NewLease(js, Replicas(n), name, o.ttl, log)
	r.lease.Advertise(r.addr)
	r.plans = NewPlans(js, Replicas(n), st, r.lease, log)
	r.view = hostview.New(hostview.Options{StaleAfter: time.Hour})
	if o.view != nil {
		o.view(r.view)
	}
	srv, err := server.New(server.Config{Live: r.view}, kbs, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := server.RebalanceConfig{Plans: st, ViewGrace: time.Second, StepTimeout: 30 * time.Second}
	if o.migrator != nil {
		r.mig = o.migrator(r, js)
		rc.Migrator = r.mig
	}
	r.rb = server.NewRebalancer(srv, rc)
	fw := server.NewForwarder(r.lease, insecure.NewCredentials(), log)
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(fw.Unary()))
	r.rb.Register(g)
	if o.power != nil {
		hist, err := power.OpenHistory(filepath.Join(dir, "power.db"), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hist.Close() })
		r.powerLog = NewPowerLog(js, Replicas(n), hist, log)
		r.power = o.power(r.lease, r.view, hist)
		r.powerLog.OnCaughtUp(func() { // as serve's followPower
			if r.lease.IsLeader() {
				return
			}
			if err := r.power.Reload(); err != nil {
				log.Error("power reload", "err", err)
			}
		})
		server.NewPowerService(r.power).Register(g)
	}
	go g.Serve(lis)
	r.client, err = grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	// As serve: a replica that stops records no "interrupted" (its
	// executor stops with it), the next leader takes the plan over.
	r.plans.StopWith(rctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = r.rb.Run(rctx) }()
	go func() { defer wg.Done(); _ = r.plans.Run(rctx) }()
	if r.powerLog != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.powerLog.Run(rctx) }()
	}
	go func() {
		defer wg.Done()
		_ = r.lease.Run(rctx, func(lctx context.Context) {
			if r.powerLog != nil {
				// As serve's power manager at the start of a term.
				if err := r.powerLog.Takeover(lctx, r.power.Reload); err != nil {
					log.Error("power takeover", "err", err)
				}
			}
			r.plans.Lead(lctx, time.Second, r.rb.Resume)
		})
	}()
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.client.Close()
		g.Stop()
		fw.Close()
		r.stop()
	})
	return r
}

// stop ends the replica's lease, plan replication and executions (as a
// kill would: its lease first, so it publishes nothing more).
func (r *replica) stop() {
	r.cancel()
	<-r.done
	r.rb.Close()
}

func (r *replica) rebalance() ecraev1.RebalanceServiceClient {
	return ecraev1.NewRebalanceServiceClient(r.client)
}

func (r *replica) powerClient() ecraev1.PowerServiceClient {
	return ecraev1.NewPowerServiceClient(r.client)
}

// leaderAndFollower waits for one replica to lead, the others to know its
// address, and the plans bucket to be open everywhere.
func leaderAndFollower(t *testing.T, rs []*replica) (leader *replica, followers []*replica) {
	t.Helper()
	eventually(t, "a leader known to all", func() bool {
		leader, followers = nil, nil
		for _, r := range rs {
			if r.lease.IsLeader() {
				if leader != nil {
					return false
				}
				leader = r
			} else {
				followers = append(followers, r)
			}
		}
		if leader == nil {
			return false
		}
		for _, r := range rs {
			if r.plans.kv.Load() == nil || (r.powerLog != nil && !r.powerLog.l.ready.Load()) {
				return false
			}
		}
		for _, f := range followers {
			if name, addr := f.lease.LeaderEndpoint(); name != leader.name || addr != leader.addr {
				return false
			}
		}
		return true
	})
	return leader, followers
}

// startFakeBMC runs pyghmi's fakebmc (Debian python3-pyghmi; user admin,
// password "password"): a real RMCP+ peer, powered on (a compute host is
// on), on a free loopback UDP port, stopped with the test.
func startFakeBMC(t *testing.T) int {
	t.Helper()
	path, err := exec.LookPath("fakebmc")
	if err != nil {
		t.Skip("fakebmc not installed (scripts/install-test-deps.sh installs python3-pyghmi)")
	}
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed")
	}
	port := testnet.FreeUDPPort(t)
	cmd := exec.Command(path, "--port", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, "fakebmc answering", func() bool {
		_, err := ipmitool(port, "power", "on")
		return err == nil
	})
	return port
}

// ipmitool asks the BMC with Debian's ipmitool: an independent client.
func ipmitool(port int, args ...string) (string, error) {
	all := append([]string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "admin", "-P", "password", "-N", "1", "-R", "2"}, args...)
	out, err := exec.Command("ipmitool", all...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ipmitool %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
