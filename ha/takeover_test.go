package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/planstore"
	"github.com/ecrae/ecrae/rebalance"
)

// fakeNova stands in for Nova's compute API, which cannot run inside a Go
// test (the Nova harness proves the real Migrator elsewhere). Like Nova, a
// migration it accepted goes on when its caller dies; it holds the move of
// any instance in hold until released.
type fakeNova struct {
	mu       sync.Mutex
	at       map[string]string
	moving   map[string]bool
	calls    map[string]int // live migrations asked, per instance
	hold     map[string]chan struct{}
	settledC chan struct{}
}

func (n *fakeNova) Locate(_ context.Context, id string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.at[id], nil
}

func (n *fakeNova) LiveMigrate(ctx context.Context, id, target string) error {
	n.mu.Lock()
	n.calls[id]++
	n.moving[id] = true
	gate := n.hold[id]
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { // Nova's side: finishes whatever the caller does
		if gate != nil {
			<-gate
		}
		n.mu.Lock()
		n.at[id], n.moving[id] = target, false
		n.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Settle waits until no migration is in progress on id.
func (n *fakeNova) Settle(ctx context.Context, id string) (string, error) {
	for {
		n.mu.Lock()
		moving, at := n.moving[id], n.at[id]
		n.mu.Unlock()
		if !moving {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (n *fakeNova) migrating(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.moving[id]
}

// TestLeaderKilledDuringPlanTakeover: three replicas (real clustered NATS,
// real plan files, real executors); the leader is stopped while the first
// wave's migration is in flight (its lease stops first, as in a kill -9
// it writes nothing more). Another replica takes over within the lease's
// TTL, confirms the in-flight step from Nova instead of migrating again,
// runs the second wave, and the plan succeeds: each instance migrated once.
func TestLeaderKilledDuringPlanTakeover(t *testing.T) {
	_, jss := startCluster(t, 3)
	nova := &fakeNova{
		at:     map[string]string{"a": "h1", "b": "h1"},
		moving: map[string]bool{}, calls: map[string]int{},
		hold: map[string]chan struct{}{"a": make(chan struct{})},
	}
	type replica struct {
		store  *planstore.Store
		lease  *Lease
		exec   *rebalance.Executor
		cancel context.CancelFunc
		done   chan struct{}
	}
	var rs []*replica
	logBuf := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica logs:\n%s", logBuf.String())
		}
	})
	for i, js := range jss {
		rlog := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", i)
		st, err := planstore.Open(fmt.Sprintf("%s/plans%d.db", t.TempDir(), i), planstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		lease := NewLease(js, 3, fmt.Sprintf("r%d", i), 3*time.Second, rlog)
		plans := NewPlans(js, 3, st, lease, rlog)
		ex := rebalance.NewExecutor(rebalance.Config{Plans: st, Migrator: Fence(nova, lease), StepTimeout: 30 * time.Second, Log: rlog})
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{store: st, lease: lease, exec: ex, cancel: cancel, done: make(chan struct{})}
		rs = append(rs, r)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); plans.Run(ctx) }()
		go func() {
			defer wg.Done()
			lease.Run(ctx, func(lctx context.Context) { plans.Lead(lctx, time.Second, ex.Resume) })
		}()
		go func() { wg.Wait(); close(r.done) }()
		t.Cleanup(func() { cancel(); <-r.done; ex.Close() })
	}
	var leader *replica
	eventually(t, "a leader", func() bool {
		for _, r := range rs {
			if r.lease.IsLeader() {
				leader = r
				return true
			}
		}
		return false
	})
	ctx := context.Background()
	// Followers write no plan (the fence), and still list them: expiring
	// is left to the leader.
	for _, r := range rs {
		if r == leader {
			continue
		}
		if _, err := r.store.Create(ctx, &planstore.Plan{Status: planstore.StatusPlanned}); !errors.Is(err, planstore.ErrReadOnly) {
			t.Errorf("plan created on a follower: err = %v, want ErrReadOnly", err)
		}
		if _, err := r.store.Expire(ctx, time.Now()); err != nil {
			t.Errorf("Expire on a follower: %v", err)
		}
	}
	var id string
	eventually(t, "plan stored through the bucket", func() bool {
		var err error
		id, err = leader.store.Create(ctx, &planstore.Plan{Status: planstore.StatusPlanned, Steps: []planstore.Step{
			{Wave: 0, InstanceID: "a", From: "h1", To: "h2", Status: planstore.StepPending},
			{Wave: 1, InstanceID: "b", From: "h1", To: "h3", Status: planstore.StepPending},
		}, Waves: 2})
		return err == nil
	})
	if _, err := leader.exec.Start(ctx, id, "test", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first migration in flight", func() bool { return nova.migrating("a") })

	// The leader dies: its lease stops (nothing more is published), then
	// its executor.
	leader.cancel()
	<-leader.done
	leader.exec.Close()
	close(nova.hold["a"]) // Nova finishes the migration the dead leader started

	var winner *replica
	eventually(t, "plan finished on another replica", func() bool {
		for _, r := range rs {
			if r == leader {
				continue
			}
			p, err := r.store.Get(ctx, id)
			if err == nil && planstore.Terminal(p.Status) && p.Status != planstore.StatusInterrupted {
				winner = r
				return true
			}
		}
		return false
	})
	p, _ := winner.store.Get(ctx, id)
	if p.Status != planstore.StatusSucceeded {
		t.Fatalf("plan %s: %s (%s), want succeeded", id, p.Status, p.Message)
	}
	if p.Steps[0].Status != planstore.StepDone || p.Steps[0].ConfirmedBy == "" {
		t.Errorf("in-flight step: %+v, want done, confirmed after takeover", p.Steps[0])
	}
	nova.mu.Lock()
	defer nova.mu.Unlock()
	if nova.calls["a"] != 1 || nova.calls["b"] != 1 {
		t.Errorf("live migrations asked: %v, want each instance once", nova.calls)
	}
	if nova.at["a"] != "h2" || nova.at["b"] != "h3" {
		t.Errorf("instances at %v, want a on h2, b on h3", nova.at)
	}
}

// syncBuf is a log sink shared by goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
