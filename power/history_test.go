package power

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ecrae/ecrae/hostview"
)

// numberingLog stands in for the cluster's replicated log (ha.PowerLog,
// exercised on a real JetStream cluster by ha's
// TestPowerStateFollowsTheLeader): it numbers what is published, starting
// after next, or fails.
type numberingLog struct {
	next uint64
	fail error
	got  [][]byte
}

func (l *numberingLog) PublishEvent(_ context.Context, event []byte) (uint64, error) {
	if l.fail != nil {
		return 0, l.fail
	}
	l.next++
	l.got = append(l.got, event)
	return l.next, nil
}

func seqs(t *testing.T, h *History) []uint64 {
	t.Helper()
	evs, err := h.List("", 0)
	noErr(t, err)
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestHistoryReplicated(t *testing.T) {
	ctx := context.Background()
	h, err := OpenHistory(filepath.Join(t.TempDir(), "power.db"), 3)
	noErr(t, err)
	defer h.Close()
	// Two events of this replica before cluster mode.
	noErr(t, h.Append(ctx, &Event{Host: "old1", Action: ActOff, By: "cli"}))
	noErr(t, h.Append(ctx, &Event{Host: "old2", Action: ActOff, By: "cli"}))

	log := &numberingLog{next: 40} // the cluster's log holds 40 events already
	h.SetPublisher(log)
	if got := seqs(t, h); len(got) != 0 {
		t.Fatalf("replicated history before any event: %v, want none (the local events are not the cluster's)", got)
	}
	e := Event{Host: "c1", Action: ActOff, By: "cli"}
	noErr(t, h.Append(ctx, &e))
	if e.Seq != 41 || len(log.got) != 1 || h.ReplicatedSeq() != 41 {
		t.Fatalf("appended as %d (published %d, replicated seq %d), want 41, 1, 41", e.Seq, len(log.got), h.ReplicatedSeq())
	}
	// Another replica's events arrive from the log; a duplicate and an
	// event already past the limit change nothing.
	noErr(t, h.ApplyReplicated(42, []byte(`{"at":"2026-12-05T06:00:00Z","host":"c2","action":"on","by":"policy"}`)))
	noErr(t, h.ApplyReplicated(42, []byte(`{"at":"2026-12-05T06:00:00Z","host":"c2","action":"on","by":"policy"}`)))
	noErr(t, h.ApplyReplicated(43, []byte(`{"host":"c3","action":"refused","by":"cli"}`)))
	noErr(t, h.ApplyReplicated(44, []byte(`{"host":"c4","action":"off","by":"plan"}`)))
	// Limit 3, highest 44: 42, 43, 44 kept; 41 dropped; 40 (44-3-1) skipped.
	noErr(t, h.ApplyReplicated(40, []byte(`{"host":"c0","action":"off","by":"cli"}`)))
	if got := fmt.Sprint(seqs(t, h)); got != "[44 43 42]" {
		t.Errorf("replicated history %s, want [44 43 42]", got)
	}
	if err := h.ApplyReplicated(45, []byte(`{"host": 7}`)); !errors.Is(err, ErrMalformedEvent) {
		t.Errorf("malformed event: %v, want ErrMalformedEvent", err)
	}
	// Publishing fails: nothing is stored, the error says so.
	log.fail = errors.New("no quorum")
	if err := h.Append(ctx, &Event{Host: "c5", Action: ActOff, By: "cli"}); err == nil || h.ReplicatedSeq() != 44 {
		t.Errorf("append without a quorum: %v, replicated seq %d; want an error and 44", err, h.ReplicatedSeq())
	}
}

// TestReloadTakesTheReplicatedStateOver: a manager that reloads from the
// replicated history knows the hosts another replica powered off or woke;
// a host with an action in progress keeps what this replica holds.
func TestReloadTakesTheReplicatedStateOver(t *testing.T) {
	h, err := OpenHistory(filepath.Join(t.TempDir(), "power.db"), 0)
	noErr(t, err)
	defer h.Close()
	h.SetPublisher(&numberingLog{})
	m, err := NewManager(Config{View: hostview.New(hostview.Options{}), Hosts: inv(), History: h})
	noErr(t, err)
	if m.HostsOff() != 0 {
		t.Fatalf("%d hosts off before any event", m.HostsOff())
	}
	// The previous leader's events, oldest first: c1 off; c2 off, then
	// on (waking); c3 off, on, enabled (back); c4 off; c5 back, then
	// powered on by an operator though ECRAE had not powered it off (its
	// service is the operator's: not a wake to finish).
	for i, ev := range []string{
		`{"at":"2026-12-05T06:01:00Z","host":"c1","action":"off","by":"policy"}`,
		`{"at":"2026-12-05T06:02:00Z","host":"c2","action":"off","by":"policy"}`,
		`{"at":"2026-12-05T06:03:00Z","host":"c2","action":"on","by":"no-room"}`,
		`{"at":"2026-12-05T06:04:00Z","host":"c3","action":"off","by":"cli"}`,
		`{"at":"2026-12-05T06:05:00Z","host":"c3","action":"on","by":"cli"}`,
		`{"at":"2026-12-05T06:06:00Z","host":"c3","action":"enabled","by":"policy"}`,
		`{"at":"2026-12-05T06:07:00Z","host":"c4","action":"off","by":"cli"}`,
		`{"at":"2026-12-05T06:08:00Z","host":"c5","action":"enabled","by":"policy"}`,
		`{"at":"2026-12-05T06:09:00Z","host":"c5","action":"on","by":"cli"}`,
	} {
		noErr(t, h.ApplyReplicated(uint64(i+1), []byte(ev)))
	}
	// c4 has an action of this replica in progress (say a power on whose
	// event is not recorded yet): what this replica holds of it stays.
	if !m.claim("c4") {
		t.Fatal("claim c4")
	}
	noErr(t, m.Reload())
	m.release("c4")
	if m.IsOff("c5") || m.woken("c5") {
		t.Error("c5, powered on while not off by ECRAE, counted as off or waking")
	}
	if !m.IsOff("c1") || m.IsOff("c2") || !m.woken("c2") || m.IsOff("c3") || m.woken("c3") || m.IsOff("c4") {
		t.Errorf("after reload: c1 off %t, c2 off %t woken %t, c3 off %t woken %t, c4 off %t; want true, false true, false false, false",
			m.IsOff("c1"), m.IsOff("c2"), m.woken("c2"), m.IsOff("c3"), m.woken("c3"), m.IsOff("c4"))
	}
	// c1 off: 1 host.
	if m.HostsOff() != 1 {
		t.Errorf("hosts off %d, want 1", m.HostsOff())
	}
	noErr(t, m.Reload())
	if !m.IsOff("c4") || m.HostsOff() != 2 {
		t.Errorf("after the action ended and a reload: c4 off %t, hosts off %d; want true, 2", m.IsOff("c4"), m.HostsOff())
	}
}
