package events

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fixture is one notification captured from a real Nova by
// integration/fixtures/capture_notifications.py, as it travelled on NATS.
type fixture struct {
	Subject string          `json:"subject"`
	Message json.RawMessage `json:"message"`
}

func (f fixture) eventType(t testing.TB) string {
	t.Helper()
	var m message
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatal(err)
	}
	if m.OsloMessage != nil {
		if err := json.Unmarshal([]byte(*m.OsloMessage), &m); err != nil {
			t.Fatal(err)
		}
	}
	return m.EventType
}

const (
	plainFixtures = "nova_notifications.json"
	v2Fixtures    = "nova_notifications_messagingv2.json"
)

func loadFixtures(t testing.TB, name string) []fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "integration", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) == 0 {
		t.Fatalf("%s: no fixtures", name)
	}
	return fs
}

// startNATS runs an embedded NATS server with JetStream stored in dir.
func startNATS(t testing.TB, dir string) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t testing.TB, s *natsserver.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// running is a Consumer started in the background.
type running struct {
	c      *Consumer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startConsumer(t testing.TB, nc *nats.Conn, v View, cfg Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(nc, v, cfg, nil, NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case err := <-r.done:
		t.Fatalf("consumer stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("consumer not ready")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	})
}

// count reads ecrae_events_total{type, outcome}.
func (r *running) count(t testing.TB, typ, outcome string) float64 {
	t.Helper()
	return counter(t, r.reg, "ecrae_events_total", map[string]string{"type": typ, "outcome": outcome})
}

// total sums ecrae_events_total over every label with the given outcome
// ("" = all).
func (r *running) total(t testing.TB, outcome string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "ecrae_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if outcome == "" || label(m, "outcome") == outcome {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func counter(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if label(m, k) != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// publish stores one message in the stream and returns its sequence.
func publish(t testing.TB, js jetstream.JetStream, subject string, data []byte) uint64 {
	t.Helper()
	ack, err := js.Publish(context.Background(), subject, data)
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// waitSeq waits until the view has dealt with stream sequence seq.
func waitSeq(t testing.TB, v interface{ AppliedSeq() uint64 }, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for v.AppliedSeq() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("view at sequence %d, want %d", v.AppliedSeq(), seq)
		}
		time.Sleep(time.Millisecond)
	}
}

// ensureStream creates the stream the consumer would, so that messages can
// be published before a consumer runs.
func ensureStream(t testing.TB, nc *nats.Conn, cfg Config) {
	t.Helper()
	c, err := New(nc, hostview.New(hostview.Options{}), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Right after a stream is deleted the server may still be removing its
	// store ("error creating store for stream", seen under load): retry
	// until a generous deadline.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.EnsureStream(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reference applies fixtures straight to a fresh view, without NATS: what
// any correct ingestion must end with.
func reference(t testing.TB, fs []fixture, opts hostview.Options) *hostview.View {
	t.Helper()
	v := hostview.New(opts)
	for i, f := range fs {
		ev, _, err := DecodeNotification(f.Message)
		if err != nil {
			t.Fatalf("fixture %d: %v", i, err)
		}
		v.Apply(uint64(i+1), ev)
	}
	return v
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitCounted waits until the consumer has counted n messages in all
// (each message is counted once, under one outcome). A view's AppliedSeq
// moves when Apply returns, a moment before the consumer counts the
// message: a test that reads a counter after waitSeq waits for this too.
func waitCounted(t testing.TB, m *Metrics, n float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ch := make(chan prometheus.Metric, 64)
		go func() { m.events.Collect(ch); close(ch) }()
		sum := 0.0
		for pm := range ch {
			var d dto.Metric
			if err := pm.Write(&d); err != nil {
				t.Fatal(err)
			}
			sum += d.GetCounter().GetValue()
		}
		if sum >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v messages counted, want %v", sum, n)
		}
		time.Sleep(time.Millisecond)
	}
}
