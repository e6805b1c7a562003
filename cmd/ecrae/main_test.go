package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/internal/testnet"
	"github.com/ecrae/ecrae/kbstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// freeAddrs are n distinct free loopback addresses (testnet.FreeAddrs).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	return testnet.FreeAddrs(t, n)
}

// startServe runs `ecrae serve` in-process on free ports and a temp DB, and
// waits until /healthz answers. The returned stop cancels it as SIGTERM does
// and reports what serve returned.
func startServe(t *testing.T, dir string, opts ...func(*serveConfig)) (c serveConfig, stop func() error) {
	t.Helper()
	a := freeAddrs(t, 3)
	c = serveConfig{grpcAddr: a[0], httpAddr: a[1], natsURL: "embedded", natsAddr: a[2],
		dbPath: filepath.Join(dir, "ecrae.db"), defaultTag: "default", shutdownGrace: 5 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, nil, slog.New(slog.DiscardHandler)) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + c.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("serve did not become healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var stopped bool
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return c, stop
}

func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), err
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	c, stop := startServe(t, dir)
	srv := "--server=" + c.grpcAddr

	// First start seeded the default KB.
	out, err := cli(t, "kb", "show", srv)
	if err != nil || !strings.Contains(out, "TAG") || !strings.Contains(out, "aarch64") {
		t.Fatalf("kb show: %v\n%s", err, out)
	}

	// Standard health and reflection services answer.
	conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "ecrae.v1.PlacementService"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", hr, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rc.Recv()
	if err != nil || !strings.Contains(rr.String(), "ecrae.v1.PlacementService") {
		t.Errorf("reflection: %v %v", rr, err)
	}

	// Import hosts, then a what-if over them from a YAML batch.
	kbFile := filepath.Join(dir, "hosts.yaml")
	writeFile(t, kbFile, labHostsYAML(t, c))
	if out, err := cli(t, "kb", "import", kbFile, srv); err != nil {
		t.Fatalf("kb import: %v\n%s", err, out)
	}
	batch := filepath.Join(dir, "batch.yaml")
	writeFile(t, batch, "instances:\n  - name: web\n    tag: web-frontend\n    flavor: {vcpus: 2, memory_mb: 4096, root_gb: 20}\n  - name: db\n    tag: database\n    flavor: {vcpus: 4, memory_mb: 8192, root_gb: 40}\n")
	out, err = cli(t, "place", batch, srv)
	if err != nil || !strings.Contains(out, "web") || !strings.Contains(out, "total predicted marginal power") || strings.Contains(out, "unplaced: 1") {
		t.Fatalf("place: %v\n%s", err, out)
	}
	out, err = cli(t, "place", batch, srv, "--json")
	if err != nil || !strings.Contains(out, `"total_marginal_watts"`) {
		t.Fatalf("place --json: %v\n%s", err, out)
	}
	out, err = cli(t, "score", "--vcpus=2", "--ram-mb=2048", srv)
	if err != nil || !strings.Contains(out, "lab-1") {
		t.Fatalf("score: %v\n%s", err, out)
	}

	// Prometheus metrics count the calls.
	resp, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `ecrae_grpc_requests_total{code="OK",method="/ecrae.v1.PlacementService/WhatIf"}`) {
		t.Errorf("metrics lack the WhatIf counter:\n%.2000s", body)
	}

	// A second service on the same KB file gets a clear lock error.
	c2 := c
	a := freeAddrs(t, 3)
	c2.grpcAddr, c2.httpAddr, c2.natsAddr = a[0], a[1], a[2]
	err = serve(context.Background(), c2, nil, slog.New(slog.DiscardHandler))
	if !errors.Is(err, kbstore.ErrLocked) || !strings.Contains(err.Error(), "ecrae.db") {
		t.Errorf("second serve on the same DB: %v", err)
	}

	// SIGTERM's path: health goes NOT_SERVING and serve returns cleanly.
	if err := stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	// The KB survives a restart (no re-seed over the imported hosts).
	c3, _ := startServe(t, dir)
	out, err = cli(t, "kb", "show", "--server="+c3.grpcAddr)
	if err != nil || !strings.Contains(out, "lab-1") {
		t.Errorf("after restart: %v\n%s", err, out)
	}
}

// labHostsYAML maps three hosts to the first architectures of the default KB.
func labHostsYAML(t *testing.T, c serveConfig) string {
	kb, err := kbstore.Default()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("hosts:\n")
	for i, a := range kb.Architectures[:3] {
		fmt.Fprintf(&b, "  - {name: lab-%d, architecture: %s}\n", i+1, a.Name)
	}
	return b.String()
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCLIErrorsAreOneReadableLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "architectures:\n  - name: x\n    isa: sparc\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "no command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"kb", "validate", bad}, "bad.yaml:3"},
		{[]string{"kb", "validate", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"place", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"score", "--vcpus=1", "--ram-mb=1", "--server=127.0.0.1:1", "--timeout=2s"}, "127.0.0.1:1"},
		{[]string{"serve", "--weights=energy"}, "--weights"},
		{[]string{"serve", "--memory-limit=lots"}, `--memory-limit: "lots" is not a size`},
		{[]string{"serve", "--grpc-max-message=512"}, `--grpc-max-message: "512" is out of range`},
		{[]string{"hosts", "--max-message=lots", "--server=127.0.0.1:1"}, `--max-message: "lots" is not a size`},
		{[]string{"serve", "--clock-skew=0s"}, "--clock-skew 0s: want a duration > 0"},
		{[]string{"serve", "--view-checkpoint=-1s"}, "--view-checkpoint -1s: want a duration > 0"},
	}
	for _, c := range cases {
		_, err := cli(t, c.args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		line := oneLine(err)
		if strings.Contains(line, "\n") || !strings.Contains(line, c.want) {
			t.Errorf("%v: %q, want one line containing %q", c.args, line, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64 // -1: an error
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"512MiB", 512 << 20}, // 512 × 2^20
		{"1 GiB", 1 << 30},
		{"64KiB", 64 << 10},
		{"1.5GiB", -1}, // whole numbers only
		{"-1MiB", -1},
		{"8589934592GiB", -1}, // 2^33 GiB = 2^63 bytes: overflows int64
		{"lots", -1},
		{"", -1},
	} {
		got, err := parseBytes(c.in)
		if (err != nil) != (c.want < 0) || (err == nil && got != c.want) {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// Port 0 means any free port, for the embedded NATS server as for the
// others (NATS itself would read it as 4222).
func TestEmbeddedNATSOnPortZero(t *testing.T) {
	c := serveConfig{natsURL: "embedded", natsAddr: "127.0.0.1:0", dbPath: filepath.Join(t.TempDir(), "ecrae.db")}
	nc, url, stop, err := startNATS(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer nc.Close()
	if strings.HasSuffix(url, ":4222") || strings.HasSuffix(url, ":0") {
		t.Errorf("embedded NATS on %s, want a free port", url)
	}
}
