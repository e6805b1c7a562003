package server

import (
	"context"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// calHarness serves kbYAML (a real bbolt file) with a live view.
func calHarness(t *testing.T, kbYAML string) (ecraev1.KnowledgeBaseServiceClient, *hostview.View, *kbstore.Store) {
	t.Helper()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("kb", []byte(kbYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	view := hostview.New(hostview.Options{Now: func() time.Time { return t0 }})
	srv, err := New(Config{Live: view, LiveSources: "test"}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); store.Close() })
	return ecraev1.NewKnowledgeBaseServiceClient(conn), view, store
}

// feed applies 3 samples at each 10 % step on watts(u).
func feed(view *hostview.View, host string, watts func(u float64) float64) {
	at := t0
	// Nova knows the host (a sample alone does not make one).
	view.Apply(0, &hostview.Event{Kind: hostview.KindMetrics, Type: "metrics.update", Timestamp: t0, Metrics: hostview.MetricsSample{Host: host}})
	for k := 0; k <= 10; k++ {
		for range 3 {
			at = at.Add(10 * time.Second)
			u := float64(k) / 10
			view.Apply(0, power(host, at, watts(u), u))
		}
	}
}

func TestCalibrateHosts(t *testing.T) {
	long := "h-" + strings.Repeat("x", 248) // 250 characters: the KB allows 255, "calibrated-" makes 261
	kb := testKB + "  - {name: " + long + ", architecture: old}\n"
	client, view, store := calHarness(t, kb)
	ctx := context.Background()
	// h-old measures 1.5× its model "old" (100 + 100u W): 150 + 150u.
	feed(view, "h-old", func(u float64) float64 { return 1.5 * (100 + 100*u) })
	feed(view, "h-unknown", func(u float64) float64 { return 100 })

	resp, err := client.CalibrateHosts(ctx, &ecraev1.CalibrateHostsRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetHosts()) != 2 || resp.GetWritten() {
		t.Fatalf("response %v", resp)
	}
	c := resp.GetHosts()[0]
	// 33 samples on 1.5× the model: the fit is that curve, 150, 165, ...,
	// 300 W, with no error left; the model was off by 50 % (RMS over the
	// samples: sqrt(mean((0.5·(100+100u))²)) > 50 W).
	if c.GetHost() != "h-old" || c.GetSkipped() != "" || c.GetSamples() != 33 || c.GetArchitecture() != "old" {
		t.Fatalf("h-old: %v", c)
	}
	for k, w := range c.GetFittedWatts() {
		if want := 150 + 15*float64(k); math.Abs(w-want) > 1e-6 {
			t.Errorf("point %d: %v W, want %v", k, w, want)
		}
	}
	if c.GetRmsFittedWatts() > 1e-3 || c.GetRmsModelWatts() < 50 || math.Abs(c.GetScale()-1.5) > 1e-9 {
		t.Errorf("rms model %v fit %v scale %v", c.GetRmsModelWatts(), c.GetRmsFittedWatts(), c.GetScale())
	}
	if u := resp.GetHosts()[1]; u.GetHost() != "h-unknown" || !strings.Contains(u.GetSkipped(), "not in the KB") {
		t.Errorf("h-unknown: %v", u)
	}
	// Without write nothing changed.
	if h, _ := store.GetHost(ctx, "h-old"); h.Architecture != "old" {
		t.Fatalf("written without write: %+v", h)
	}

	// Named hosts: one without samples, one with too few for min_samples.
	resp, err = client.CalibrateHosts(ctx, &ecraev1.CalibrateHostsRequest{Hosts: []string{"h-arm", "h-old"}, MinSamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.GetHosts()[0].GetSkipped(); !strings.Contains(s, "no measured whole-node samples") {
		t.Errorf("h-arm: %q", s)
	}
	if s := resp.GetHosts()[1].GetSkipped(); !strings.Contains(s, "too few samples") {
		t.Errorf("h-old with min 100: %q", s)
	}

	// Write, all or none: the long host's architecture name would be too
	// long, so h-old's fit is not written either.
	feed(view, long, func(u float64) float64 { return 120 + 100*u })
	_, err = client.CalibrateHosts(ctx, &ecraev1.CalibrateHostsRequest{Hosts: []string{"h-old", long}, Write: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("too long a name: %v, want InvalidArgument", err)
	}
	if h, _ := store.GetHost(ctx, "h-old"); h.Architecture != "old" {
		t.Fatalf("a failed write changed h-old: %+v", h)
	}

	resp, err = client.CalibrateHosts(ctx, &ecraev1.CalibrateHostsRequest{Hosts: []string{"h-old"}, Write: true})
	if err != nil || !resp.GetWritten() || resp.GetHosts()[0].GetWrittenArchitecture() != "calibrated-h-old" {
		t.Fatalf("write: %v, %v", resp, err)
	}
	h, err := store.GetHost(ctx, "h-old")
	if err != nil || h.Architecture != "calibrated-h-old" {
		t.Fatalf("h-old: %+v, %v", h, err)
	}
	a, err := store.GetArchitecture(ctx, "calibrated-h-old")
	if err != nil || a.ISA != "x86_64" || a.Estimate || a.PowerWatts[0] != 150 || math.Abs(a.PowerWatts[10]-300) > 1e-6 {
		t.Fatalf("calibrated architecture %+v, %v", a, err)
	}
	if old, _ := store.GetArchitecture(ctx, "old"); old.PowerWatts[10] != 200 {
		t.Errorf("the published model changed: %v", old.PowerWatts)
	}
}

func TestCalibrateHostsErrors(t *testing.T) {
	client, _, _ := calHarness(t, testKB)
	ctx := context.Background()
	for _, req := range []*ecraev1.CalibrateHostsRequest{
		{},
		{All: true, Hosts: []string{"h-old"}},
		{Hosts: []string{""}},
		{All: true, MinSamples: -1},
	} {
		if _, err := client.CalibrateHosts(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want InvalidArgument", req, err)
		}
	}
	h := newHarness(t, testKB) // no live view
	if _, err := h.kb.CalibrateHosts(ctx, &ecraev1.CalibrateHostsRequest{All: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("no view: %v, want FailedPrecondition", err)
	}
}
