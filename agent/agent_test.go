package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/events"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// counterWatts stands in for the node's power hardware: like RAPL it
// primes on the first call, then returns 1, 2, 3 ... W, or an error once
// stopped.
type counterWatts struct {
	mu      sync.Mutex
	primed  bool
	n       uint64
	stopped bool
}

func (c *counterWatts) Name() string { return "counter" }

func (c *counterWatts) Watts(context.Context) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return 0, errors.New("stopped")
	case !c.primed:
		c.primed = true
		return 0, ErrPriming
	}
	c.n++
	return float64(c.n), nil
}

// stop makes every later reading fail and returns how many succeeded.
func (c *counterWatts) stop() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return c.n
}

func (c *counterWatts) count() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// gate is a TCP dialer that refuses until opened: it decides when the
// agent's retries may reach the (real) server, so that a test can
// subscribe first.
type gate struct {
	mu   sync.Mutex
	open bool
}

func (g *gate) Dial(network, address string) (net.Conn, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		return nil, errors.New("gate closed")
	}
	return net.Dial(network, address)
}

func (g *gate) Open() { g.mu.Lock(); g.open = true; g.mu.Unlock() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAgentNATSAway runs the agent before any NATS server exists: samples
// queue up to the bound, the oldest are dropped and counted; then a real
// embedded server starts on the address the agent dials, and the queued
// samples arrive in order, each one what the service's decoder accepts.
func TestAgentNATSAway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	src := &counterWatts{}
	var logs lockedBuffer
	a, err := New(Config{Host: "compute-1", Watts: []WattsSource{src}, Buffer: 3,
		LogEvery: time.Hour, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{}
	nc, wake, err := Connect("nats://127.0.0.1:"+strconv.Itoa(port), "test agent", slog.New(slog.DiscardHandler), nats.SetCustomDialer(g))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, &NATSPublisher{NC: nc}, 2*time.Millisecond, wake) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "samples dropped", func() bool { return a.Dropped() >= 2 })
	produced := src.stop()
	waitFor(t, "the last sample queued", func() bool { return a.Dropped()+uint64(a.Queued()) == produced })
	if q := a.Queued(); q != 3 {
		t.Fatalf("queued %d, want the bound 3", q)
	}
	// Many samples went by without NATS: one log line (the limit is an hour).
	if n := strings.Count(logs.String(), "NATS is away"); n != 1 {
		t.Errorf("%d 'NATS is away' lines, want 1:\n%s", n, logs.String())
	}

	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	sub, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.SubscribeSync("ecrae.metrics.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	g.Open()

	// The three newest samples, oldest first: produced-2, -1, produced W.
	for i := range 3 {
		m, err := msgs.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if m.Subject != "ecrae.metrics.compute-1" {
			t.Errorf("subject %q", m.Subject)
		}
		ev, err := events.DecodeSample("compute-1", m.Data)
		if err != nil {
			t.Fatalf("the service rejects %s: %v", m.Data, err)
		}
		if want := float64(produced - 2 + uint64(i)); ev.Power.Watts != want || !ev.Power.HasWatts {
			t.Errorf("sample %d: %v W, want %v", i, ev.Power.Watts, want)
		}
		var smp events.Sample
		if err := json.Unmarshal(m.Data, &smp); err != nil || smp.Source != "counter" || smp.WattsSource != events.WattsMeasured {
			t.Errorf("sample %d: %s", i, m.Data)
		}
	}
	waitFor(t, "the queue to empty", func() bool { return a.Queued() == 0 })
}

func TestAgentCollect(t *testing.T) {
	ctx := context.Background()
	failing := &counterWatts{}
	failing.stop()
	// No watts source works and proc is allowed: a utilisation-only sample
	// that says the model stands in.
	stat := filepath.Join(t.TempDir(), "stat")
	writeFile(t, stat, "cpu 100 0 0 900 0 0 0 0\n")
	a, _ := New(Config{Host: "h", Watts: []WattsSource{failing}, ProcStat: stat, UtilOnly: true})
	if _, err := a.Collect(ctx); !errors.Is(err, ErrPriming) {
		t.Fatalf("first: %v", err)
	}
	writeFile(t, stat, "cpu 120 0 0 980 0 0 0 0\n") // 20 busy of 100 ticks
	s, err := a.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Watts != nil || s.CPUUtilization == nil || *s.CPUUtilization != 0.2 || s.Source != SourceProc || s.WattsSource != events.WattsModel {
		t.Errorf("util-only sample: %+v", s)
	}
	b, _ := json.Marshal(s)
	ev, err := events.DecodeSample("", b)
	if err != nil || ev.Power.HasWatts || !ev.Power.HasUtil {
		t.Errorf("service decodes %s as %+v, %v", b, ev, err)
	}

	// Without proc in --sources, no watts is an error that says why.
	b2, _ := New(Config{Host: "h", Watts: []WattsSource{failing}})
	if _, err := b2.Collect(ctx); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("no source: %v", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (g *gate) Close() { g.mu.Lock(); g.open = false; g.mu.Unlock() }

func startNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	return s
}

// TestAgentNATSRestart stops the server under a running agent and starts
// it again: what was sampled meanwhile arrives, in order, after it.
func TestAgentNATSRestart(t *testing.T) {
	s := startNATS(t, -1)
	port := s.Addr().(*net.TCPAddr).Port
	src := &counterWatts{}
	a, err := New(Config{Host: "compute-2", Watts: []WattsSource{src}, Buffer: 1000})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{open: true}
	nc, wake, err := Connect(s.ClientURL(), "test agent", slog.New(slog.DiscardHandler), nats.SetCustomDialer(g))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, &NATSPublisher{NC: nc}, 2*time.Millisecond, wake) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "samples published", func() bool { return src.count() >= 5 && a.Queued() == 0 })
	// The server goes away; the gate keeps the agent from reaching the
	// next one until the test listens there.
	g.Close()
	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, "samples queued", func() bool { return a.Queued() >= 5 })
	produced := src.stop()
	waitFor(t, "the last sample queued", func() bool { return lastQueued(a) == produced })
	queued := uint64(a.Queued())
	if a.Dropped() != 0 {
		t.Fatalf("%d dropped with room for 1000", a.Dropped())
	}

	s2 := startNATS(t, port)
	defer s2.Shutdown()
	sub, err := nats.Connect(s2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.SubscribeSync(Subject("compute-2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	g.Open()
	for v := produced - queued + 1; v <= produced; v++ {
		m, err := msgs.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("sample %d W: %v", v, err)
		}
		var smp events.Sample
		if err := json.Unmarshal(m.Data, &smp); err != nil || smp.Watts == nil || *smp.Watts != float64(v) {
			t.Fatalf("got %s, want %d W", m.Data, v)
		}
	}
	waitFor(t, "the queue to empty", func() bool { return a.Queued() == 0 })
}

// lastQueued is the watts of the newest queued sample, 0 when none.
func lastQueued(a *Agent) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return 0
	}
	var s events.Sample
	if json.Unmarshal(a.queue[len(a.queue)-1], &s) != nil || s.Watts == nil {
		return 0
	}
	return uint64(*s.Watts)
}
