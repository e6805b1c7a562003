package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestMigrateJSONGolden: `ecrae migrate --json` is one document in the
// CLI's JSON style (seconds, every field present), for a move that worked
// and one the agent refused (exit 1, the document still printed). The
// source agent is stood in for by a NATS responder with the agent's reply
// (real NATS; the CRIU migrations behind such replies are proven with real
// containers in agent/container, which this shape test need not repeat).
func TestMigrateJSONGolden(t *testing.T) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	replies := map[string]container.MigrateReply{
		// 1,234.5 ms → 1.2345 s; 80 ms frozen → 0.08 s; 2,500 ms of pages → 2.5 s.
		"ctr": {OK: "migrated", Container: "ctr", From: "node-a", To: "node-b", Mode: container.ModePostcopy,
			ModeNote: "auto: userfaultfd works", TotalMS: 1234.5, FrozenMS: 80, PagesDoneMS: 2500, BytesSent: 210_000_000},
		// One pre-dump round frozen 1,500 µs → 0.0015 s.
		"pre": {OK: "migrated", Container: "pre", From: "node-a", To: "node-b", Mode: container.ModePrecopy,
			TotalMS: 3000, FrozenMS: 400, BytesSent: 5_000_000, RoundsNote: "dirty set under 16 MB",
			Rounds: []container.DumpStats{{FrozenUS: 1500, PagesScanned: 100, PagesSkipped: 10, PagesWritten: 90}}},
		"bad": {Error: `destination "node-b" is down`, Container: "bad", From: "node-a", To: "node-b"},
	}
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
	for _, tc := range []struct {
		name, ctr string
		code      int
	}{
		{"migrate", "ctr", exitOK},
		{"migrate-precopy", "pre", exitOK},
		{"migrate-failed", "bad", exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, "migrate", tc.ctr, "--to", "node-b", "--from", "node-a", "--nats", s.ClientURL(), "--json")
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			jsonGolden(t, tc.name, out)
		})
	}
}
