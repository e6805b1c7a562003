package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/rebalance"
	"github.com/ecrae/ecrae/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
)

// migrateService serves the RebalanceService (rebalanceKB, a live view
// with hosts node-a and node-b, x86_64, and the containers of replies on
// node-a) on a real gRPC listener, moving containers through the executor's
// mover over real NATS. The source agent is stood in for by a NATS
// responder answering with replies[container] (the CRIU migrations behind
// such replies are proven with real containers in agent/container). It
// returns the service's address.
func migrateService(t *testing.T, replies map[string]container.MigrateReply) string {
	t.Helper()
	ctx := context.Background()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.Subscribe(container.MigrateSubject("node-a"), func(m *nats.Msg) {
		var req container.MigrateRequest
		_ = json.Unmarshal(m.Data, &req)
		b, _ := json.Marshal(replies[req.Container])
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for _, h := range []string{"node-a", "node-b"} {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h, Nodename: h, ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	view.Reconcile(inv)
	rep := hostview.ContainerReport{Host: "node-a", At: time.Now(), Arch: "x86_64"}
	for name := range replies {
		rep.Instances = append(rep.Instances, hostview.Instance{UUID: "uuid-" + name, Name: name, Kind: hostview.KindContainer,
			State: "active", PowerState: "running", Flavor: hostview.Flavor{Name: "container", VCPUs: 1, MemoryMB: 512}})
	}
	view.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: rep.At, Containers: rep})

	store, err := kbstore.Open(filepath.Join(t.TempDir(), "ecrae.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("kb", []byte(rebalanceKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Live: view, DefaultTag: "default"}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	agents := containerAgents(nc, view)
	rb := server.NewRebalancer(srv, server.RebalanceConfig{Migrator: rebalance.Route{Agents: agents,
		Kind: func(id string) string { in, _ := view.Instance(id); return in.Kind }}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(server.Codec{}))
	rb.Register(g)
	go g.Serve(l)
	t.Cleanup(func() { g.Stop(); rb.Close(); store.Close() })
	return l.Addr().String()
}

// TestMigrateJSONGolden: `ecrae migrate --json` is one document in the
// CLI's JSON style (seconds, every field present), for a move that worked
// and one the agent refused (exit 1, the document still printed), through
// the service's MigrateContainer.
func TestMigrateJSONGolden(t *testing.T) {
	addr := migrateService(t, map[string]container.MigrateReply{
		// 1,234.5 ms → 1.2345 s; 80 ms frozen → 0.08 s; 2,500 ms of pages → 2.5 s.
		"ctr": {OK: "migrated", Container: "ctr", From: "node-a", To: "node-b", Mode: container.ModePostcopy,
			ModeNote: "auto: userfaultfd works", TotalMS: 1234.5, FrozenMS: 80, PagesDoneMS: 2500, BytesSent: 210_000_000},
		// One pre-dump round frozen 1,500 µs → 0.0015 s.
		"pre": {OK: "migrated", Container: "pre", From: "node-a", To: "node-b", Mode: container.ModePrecopy,
			TotalMS: 3000, FrozenMS: 400, BytesSent: 5_000_000, RoundsNote: "dirty set under 16 MB",
			Rounds: []container.DumpStats{{FrozenUS: 1500, PagesScanned: 100, PagesSkipped: 10, PagesWritten: 90}}},
		"bad": {Error: `destination "node-b" is down`, Container: "bad", From: "node-a", To: "node-b"},
	})
	for _, tc := range []struct {
		name, ctr string
		code      int
	}{
		{"migrate", "ctr", exitOK},
		{"migrate-precopy", "pre", exitOK},
		{"migrate-failed", "bad", exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, "migrate", tc.ctr, "--to", "node-b", "--from", "node-a", "--server", addr, "--json")
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			jsonGolden(t, tc.name, out)
		})
	}
}
