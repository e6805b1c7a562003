package ha

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/audit"
)

// TestAuditTrailSurvivesNoQuorum: three replicas on a real three-member
// JetStream cluster share one audit trail. Each replica's records are
// listed by all, in the stream's order, naming their replica. With two
// members down (no quorum) a replica's records are kept in its outbox,
// listed there as pending; once the members are back they are published,
// in order, and every replica lists each once.
func TestAuditTrailSurvivesNoQuorum(t *testing.T) {
	servers, jss, opts := startMembers(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	stores := make([]*audit.Store, 3)
	for i, js := range jss {
		st, err := audit.Open(filepath.Join(t.TempDir(), "audit.db"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores[i] = st
		trail := NewAuditTrail(js, 3, st, fmt.Sprintf("r%d", i), quietLog())
		wg.Add(1)
		go func() { defer wg.Done(); _ = trail.Run(ctx) }()
	}
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	record := func(r int, target string, minute int) {
		t.Helper()
		err := stores[r].Append(ctx, audit.Record{Time: t0.Add(time.Duration(minute) * time.Minute), Who: "cert:ops", Role: "operator",
			Method: "/ecrae.v1.PowerService/PowerOff", Target: target, Code: "OK"})
		if err != nil {
			t.Fatalf("append on r%d: %v", r, err)
		}
	}
	listed := func(r int) string {
		recs, err := stores[r].List(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatalf("list on r%d: %v", r, err)
		}
		var parts []string
		for _, x := range recs {
			p := x.Target + "@" + x.Replica
			if x.Pending {
				p += "(pending)"
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, " ")
	}
	everywhere := func(want string) {
		t.Helper()
		for r := range 3 {
			eventually(t, fmt.Sprintf("r%d to list %q (has %q)", r, want, listed(r)), func() bool { return listed(r) == want })
		}
	}
	// The stream exists once JetStream has elected its leaders; a record
	// made before that waits in the outbox, so the first one is polled.
	start := time.Now()
	record(0, "host=a", 0)
	everywhere("host=a@r0")
	record(1, "host=b", 1)
	everywhere("host=a@r0 host=b@r1")

	t.Logf("%s: two records everywhere", time.Since(start))
	// Two of three members down: no quorum.
	for _, s := range servers[1:] {
		s.Shutdown()
		s.WaitForShutdown()
	}
	record(0, "host=c", 2)
	record(0, "host=d", 3)
	if got, want := listed(0), "host=a@r0 host=b@r1 host=c@r0(pending) host=d@r0(pending)"; got != want || stores[0].Pending() != 2 {
		t.Fatalf("r0 without quorum lists %q with %d pending, want %q and 2", got, stores[0].Pending(), want)
	}

	t.Logf("%s: two pending", time.Since(start))
	for _, o := range opts[1:] {
		restartMember(t, o)
	}
	t.Logf("%s: members back", time.Since(start))
	everywhere("host=a@r0 host=b@r1 host=c@r0 host=d@r0")
	t.Logf("%s: four everywhere", time.Since(start))
	if n := stores[0].Pending(); n != 0 {
		t.Errorf("r0 still has %d pending after the flush", n)
	}
	// Every record under the same number on every replica.
	for r := 1; r < 3; r++ {
		a, _ := stores[0].List(ctx, time.Time{}, 0)
		b, _ := stores[r].List(ctx, time.Time{}, 0)
		for k := range a {
			if a[k].Seq != b[k].Seq || a[k].ID != b[k].ID {
				t.Errorf("record %d: r0 has #%d %s, r%d #%d %s", k, a[k].Seq, a[k].ID, r, b[k].Seq, b[k].ID)
			}
		}
	}
}
