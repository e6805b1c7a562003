package planstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// open opens path and, at cleanup, checks bbolt's integrity, then closes.
func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		err := s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("integrity: %v", err)
			}
			return nil
		})
		if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			t.Errorf("check: %v", err)
		}
		_ = s.Close()
	})
	return s
}

func samplePlan() *Plan {
	return &Plan{
		Status: StatusPlanned, Source: "request snapshot", CreatedAt: t0, Algorithm: "bfd-l2-avg+ls", Seed: 3,
		Steps: []Step{
			{Wave: 0, InstanceID: "a", From: "h1", To: "h2", MemoryMB: 1024, Status: StepPending},
			{Wave: 0, InstanceID: "b", From: "h3", To: "h2", MemoryMB: 2048, Status: StepPending},
			{Wave: 1, InstanceID: "c", From: "h3", To: "h1", MemoryMB: 512, Status: StepPending},
		},
		Waves: 2, PowerBeforeW: 300, PowerAfterW: 200, HostsFreed: []string{"h3"},
	}
}

func TestCreateGetUpdateList(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "plans.db"))
	if _, err := s.Get(ctx, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get latest of empty store: %v, want ErrNotFound", err)
	}
	id1, err := s.Create(ctx, samplePlan())
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Create(ctx, samplePlan())
	if err != nil {
		t.Fatal(err)
	}
	if id1 != "p1" || id2 != "p2" {
		t.Fatalf("ids %s %s, want p1 p2", id1, id2)
	}
	latest, err := s.Get(ctx, "")
	if err != nil || latest.ID != "p2" {
		t.Fatalf("latest = %v, %v; want p2", latest, err)
	}
	if _, err := s.Start(ctx, "p1", "tester", t0); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, "p1", func(p *Plan) error {
		p.Steps[0].Status = StepDone
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	want := samplePlan()
	want.ID, want.Status, want.Steps[0].Status = "p1", StatusExecuting, StepDone
	want.StartedAt, want.ExecutedBy, want.Message = t0, "tester", "executing"
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("p1 (-want +got):\n%s", d)
	}
	boom := errors.New("boom")
	if err := s.Update(ctx, "p1", func(p *Plan) error { p.Status = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	if got, _ := s.Get(ctx, "p1"); got.Status != StatusExecuting {
		t.Errorf("aborted update was written: status %q", got.Status)
	}
	ids, err := s.List(ctx, 0)
	if err != nil || !cmp.Equal(ids, []string{"p2", "p1"}) {
		t.Errorf("List = %v, %v", ids, err)
	}
	for _, bad := range []string{"p0", "x1", "p", "p99"} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", bad, err)
		}
	}
}

// TestInterruptedAfterRestart: a plan executing when the process stopped is
// visible after reopening, marked interrupted, with the in-flight step
// unknown and the rest skipped.
func TestInterruptedAfterRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plans.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Create(ctx, samplePlan())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, id, "tester", t0); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, id, func(p *Plan) error {
		p.Steps[0].Status = StepDone
		p.Steps[1].Status = StepRunning
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The process dies: no clean shutdown of the execution.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	if got := s2.Recovered(); !cmp.Equal(got, []string{id}) {
		t.Errorf("Recovered = %v, want [%s]", got, id)
	}
	p, err := s2.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != StatusInterrupted || !p.FinishedAt.Equal(t0) {
		t.Errorf("status %q finished %v, want interrupted at %v", p.Status, p.FinishedAt, t0)
	}
	var st []string
	for _, x := range p.Steps {
		st = append(st, x.Status)
	}
	if want := []string{StepDone, StepUnknown, StepSkipped}; !cmp.Equal(st, want) {
		t.Errorf("step statuses %v, want %v", st, want)
	}
	if want := "1 done, 1 unknown, 1 skipped; execution interrupted (the service stopped); in flight, outcome unknown: b"; p.Message != want {
		t.Errorf("message %q\nwant    %q", p.Message, want)
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.db")
	open(t, path)
	_, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(bucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte(keyVersion), []byte("99"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("Open of a newer schema succeeded")
	}
}

// TestStatusTransitions: the legal changes pass, every other is refused
// and leaves the plan as it was; Update cannot change a status.
func TestStatusTransitions(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "plans.db"))
	mk := func() string {
		id, err := s.Create(ctx, samplePlan())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := mk()
	if _, err := s.Finish(ctx, a, StatusSucceeded, t0, nil); !errors.Is(err, ErrTransition) {
		t.Errorf("planned → succeeded: %v, want ErrTransition", err)
	}
	if err := s.Update(ctx, a, func(p *Plan) error { p.Status = StatusSucceeded; return nil }); !errors.Is(err, ErrTransition) {
		t.Errorf("status through Update: %v, want ErrTransition", err)
	}
	if _, err := s.Start(ctx, a, "x", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, a, "x", t0); !errors.Is(err, ErrTransition) {
		t.Errorf("executing → cancelled: %v, want ErrTransition", err)
	}
	if _, err := s.Start(ctx, a, "x", t0); !errors.Is(err, ErrTransition) {
		t.Errorf("executing → executing: %v, want ErrTransition", err)
	}
	if _, err := s.RequestAbort(ctx, a); err != nil {
		t.Fatal(err)
	}
	p, err := s.Finish(ctx, a, StatusAborted, t0, func(p *Plan) { p.Message = "aborted" })
	if err != nil || p.Status != StatusAborted || !p.AbortRequested {
		t.Fatalf("finish aborted: %+v, %v", p, err)
	}
	for _, to := range []string{StatusExecuting, StatusSucceeded, StatusPlanned} {
		if _, err := s.change(ctx, a, to, nil); !errors.Is(err, ErrTransition) {
			t.Errorf("aborted → %s: %v, want ErrTransition", to, err)
		}
	}
	b := mk()
	if _, err := s.RequestAbort(ctx, b); !errors.Is(err, ErrTransition) {
		t.Errorf("abort of a planned plan: %v, want ErrTransition", err)
	}
	if p, err := s.Cancel(ctx, b, "alice", t0); err != nil || p.Status != StatusCancelled || p.Message != "cancelled by alice" {
		t.Errorf("cancel: %+v, %v", p, err)
	}
	if _, err := s.Start(ctx, b, "x", t0); !errors.Is(err, ErrTransition) {
		t.Errorf("cancelled → executing: %v, want ErrTransition", err)
	}
}

// TestExpiry: a planned plan past its ExpiresAt cannot start and is
// marked expired; one before it starts.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "plans.db"))
	old := samplePlan()
	old.ExpiresAt = t0.Add(15 * time.Minute)
	a, err := s.Create(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	fresh := samplePlan()
	fresh.ExpiresAt = t0.Add(30 * time.Minute)
	b, err := s.Create(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(20 * time.Minute) // past a's expiry, before b's
	if _, err := s.Start(ctx, a, "x", at); !errors.Is(err, ErrExpired) {
		t.Fatalf("start of an expired plan: %v, want ErrExpired", err)
	}
	if p, _ := s.Get(ctx, a); p.Status != StatusExpired || !strings.Contains(p.Message, "expired") {
		t.Errorf("plan %s: %s %q", a, p.Status, p.Message)
	}
	if ids, err := s.Expire(ctx, at); err != nil || len(ids) != 0 {
		t.Errorf("Expire again: %v, %v; want nothing", ids, err)
	}
	if _, err := s.Start(ctx, b, "x", at); err != nil {
		t.Errorf("start before expiry: %v", err)
	}
}

// TestPruneKeepsNewest: 7 plans, keep 3 → the 4 oldest go, except one
// still executing.
func TestPruneKeepsNewest(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "plans.db"))
	for range 7 {
		if _, err := s.Create(ctx, samplePlan()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Start(ctx, "p2", "x", t0); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := s.List(ctx, 0)
	// p7, p6, p5 kept (newest 3); p4, p3, p1 deleted; p2 kept (executing).
	if n != 3 || !cmp.Equal(ids, []string{"p7", "p6", "p5", "p2"}) {
		t.Errorf("pruned %d, left %v", n, ids)
	}
	if _, err := s.Prune(ctx, 0); err == nil {
		t.Error("Prune(0) accepted")
	}
}

// FuzzParseID: a plan id from a request never panics the parser; what it
// accepts is exactly "p" and the decimal of a positive number.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"p1", "p18446744073709551615", "p0", "p", "x1", "p-1", "p+1", "p01", "", "p1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		n, err := parseID(id)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("parseID(%q): %v, want ErrNotFound", id, err)
			}
			return
		}
		if n == 0 || !strings.HasPrefix(id, "p") {
			t.Fatalf("parseID(%q) = %d accepted", id, n)
		}
		if back, err := parseID(fmt.Sprintf("p%d", n)); err != nil || back != n {
			t.Fatalf("p%d does not parse back: %d, %v", n, back, err)
		}
	})
}
