package ha

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeAgents stand in for the node agents of hosts h1 and h2: LXC and CRIU
// cannot run in every Go test (agent/container's tests move real
// containers). They answer the real migrate requests over NATS, as an
// agent does; like one, they finish a move whoever asked for it, report
// every container they move as migrating until it is done, and report
// their containers every 100 ms. A report goes straight into each
// replica's view (the events consumer's part, proven in events/).
type fakeAgents struct {
	mu        sync.Mutex
	at        map[string]string // container → host
	migrating map[string]bool
	calls     map[string]int // migrate requests, per container
	hold      map[string]chan struct{}
	views     []*hostview.View
	clock     time.Time // report times: each report later than the last
}

func (a *fakeAgents) report() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range []string{"h1", "h2"} {
		a.clock = a.clock.Add(time.Millisecond)
		rep := hostview.ContainerReport{Host: h, At: a.clock, Arch: "x86_64"}
		for id, at := range a.at {
			if at != h {
				continue
			}
			in := hostview.Instance{UUID: id, Name: id, Kind: hostview.KindContainer, State: "active", PowerState: "running",
				Flavor: hostview.Flavor{Name: "container", VCPUs: 1, MemoryMB: 512}}
			if a.migrating[id] {
				in.TaskState = container.TaskMigrating
			}
			rep.Instances = append(rep.Instances, in)
		}
		for _, v := range a.views {
			v.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: a.clock, Containers: rep})
		}
	}
}

func (a *fakeAgents) handle(msg *nats.Msg) {
	var req container.MigrateRequest
	_ = json.Unmarshal(msg.Data, &req)
	a.mu.Lock()
	from := a.at[req.Container]
	a.calls[req.Container]++
	a.migrating[req.Container] = true
	gate := a.hold[req.Container]
	a.mu.Unlock()
	a.report()
	go func() {
		if gate != nil {
			<-gate
		}
		a.mu.Lock()
		a.at[req.Container], a.migrating[req.Container] = req.To, false
		a.mu.Unlock()
		a.report()
		b, _ := json.Marshal(container.MigrateReply{OK: "migrated", Container: req.Container, From: from, To: req.To})
		_ = msg.Respond(b) // nobody may wait any more: the agent finishes anyway
	}()
}

func (a *fakeAgents) callsOf(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

// TestContainerMoveFencedAndSettledAtTakeover: three replicas execute
// plans through the executor's Migrator as serve builds it (rebalance.Route
// to container.Client, fenced whole by the lease). The leader dies while
// its agent moves a container; the replica that takes over confirms that
// move from the agents' reports (never asking again), then moves the next
// container, and the plan succeeds with each container moved once. Then
// an operator's move (MigrateContainer) through the replica that does not
// lead is forwarded to the leader and made once. Then the new leader's
// lease is taken in the bucket: its next container move, a plan's or an
// operator's, is refused by the fence and no agent is asked.
func TestContainerMoveFencedAndSettledAtTakeover(t *testing.T) {
	agents := &fakeAgents{at: map[string]string{"ctr-1": "h1", "ctr-2": "h1", "ctr-3": "h2"}, migrating: map[string]bool{},
		calls: map[string]int{}, hold: map[string]chan struct{}{"ctr-1": make(chan struct{})}, clock: time.Now()}
	var agentNC *nats.Conn
	rs := startReplicas(t, 3, replicaOptions{
		view: func(v *hostview.View) {
			inv := hostview.Inventory{At: time.Now()}
			for _, h := range []string{"h1", "h2"} {
				inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h, Nodename: h, ISA: "x86_64", State: "up",
					Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
			}
			v.Reconcile(inv)
			agents.views = append(agents.views, v)
		},
		migrator: func(r *replica, js jetstream.JetStream) rebalance.Migrator {
			agentNC = js.Conn()
			c := &container.Client{NC: js.Conn(), View: r.view}
			route := rebalance.Route{Agents: c, Kind: func(id string) string { in, _ := r.view.Instance(id); return in.Kind }}
			return Fence(route, r.lease)
		},
	})
	for _, h := range []string{"h1", "h2"} {
		sub, err := agentNC.Subscribe(container.MigrateSubject(h), agents.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if err := agentNC.Flush(); err != nil {
		t.Fatal(err)
	}
	stopReports := make(chan struct{})
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		for {
			agents.report()
			select {
			case <-stopReports:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stopReports); <-reportsDone })

	leader, followers := leaderAndFollower(t, rs)
	ctx := context.Background()
	var id string
	eventually(t, "plan stored", func() bool {
		var err error
		id, err = leader.store.Create(ctx, &planstore.Plan{Status: planstore.StatusPlanned, Waves: 2, Steps: []planstore.Step{
			{Wave: 0, InstanceID: "ctr-1", From: "h1", To: "h2", Status: planstore.StepPending},
			{Wave: 1, InstanceID: "ctr-2", From: "h1", To: "h2", Status: planstore.StepPending},
		}})
		return err == nil
	})
	eventually(t, "plan on the followers", func() bool {
		for _, f := range followers {
			if _, err := f.store.Get(ctx, id); err != nil {
				return false
			}
		}
		return true
	})
	// Executed through a follower: forwarded to the leader.
	if _, err := followers[0].rebalance().ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true}); err != nil {
		t.Fatalf("execute through a follower: %v", err)
	}
	eventually(t, "ctr-1 in flight", func() bool { return agents.callsOf("ctr-1") == 1 })

	leader.stop() // its lease first: it records nothing more
	// The agent finishes the move only once another replica has taken the
	// plan over: the takeover must wait for the agents to settle it (a
	// look at the view now would find it still on h1, migrating).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, r := range followers {
			p, err := r.store.Get(ctx, id)
			if err != nil {
				t.Logf("%s: plan %s: %v", r.name, id, err)
				continue
			}
			t.Logf("%s: leader %t, executing %q, plan %s, steps %s/%s, bucket revision seen %d", r.name, r.lease.IsLeader(), r.rb.Executing(),
				p.Status, p.Steps[0].Status, p.Steps[1].Status, r.plans.seen.Load())
		}
	})
	eventually(t, "takeover started", func() bool {
		for _, r := range followers {
			if r.rb.Executing() == id {
				return true
			}
		}
		return false
	})
	close(agents.hold["ctr-1"])

	var winner *replica // the replica leading now: it took the plan over
	eventually(t, "plan finished on the new leader", func() bool {
		for _, r := range followers {
			if !r.lease.IsLeader() {
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
	if p.Steps[0].Status != planstore.StepDone || !strings.Contains(p.Steps[0].ConfirmedBy, "takeover") {
		t.Errorf("in-flight container step: %+v, want done, confirmed after takeover", p.Steps[0])
	}
	if !strings.Contains(p.ExecutedBy, "forwarded by "+followers[0].name) {
		t.Errorf("executed by %q, want the forwarding replica named", p.ExecutedBy)
	}
	if c1, c2 := agents.callsOf("ctr-1"), agents.callsOf("ctr-2"); c1 != 1 || c2 != 1 {
		t.Errorf("migrate requests: ctr-1 %d, ctr-2 %d; want each once", c1, c2)
	}

	// An operator's move (`ecrae migrate`) through the replica that does
	// not lead: forwarded to the leader, judged there, moved through its
	// fenced mover.
	var other *replica
	for _, r := range followers {
		if r != winner {
			other = r
		}
	}
	rep, err := other.rebalance().MigrateContainer(ctx, &ecraev1.MigrateContainerRequest{Container: "ctr-3", To: "h1"})
	if err != nil || rep.GetTo() != "h1" || rep.GetFrom() != "h2" {
		t.Fatalf("MigrateContainer through a follower: %v, %v; want ctr-3 h2 → h1", rep, err)
	}
	if n := agents.callsOf("ctr-3"); n != 1 {
		t.Fatalf("the agent was asked to move ctr-3 %d time(s), want 1", n)
	}
	eventually(t, "ctr-3 on h1 in the leader's view", func() bool { in, ok := winner.view.Instance("ctr-3"); return ok && in.Host == "h1" })

	// The new leader is deposed in the bucket: its next container move is
	// fenced before any agent hears of it, a plan's or an operator's.
	kv := *winner.lease.kv.Load()
	e, err := kv.Get(ctx, LeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, LeaseKey, []byte("intruder"), e.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := winner.mig.LiveMigrate(ctx, "ctr-3", "h1"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("container move by a deposed leader: %v, want ErrNotLeader", err)
	}
	if _, err := winner.mig.(rebalance.ContainerMover).MigrateContainer(ctx, "ctr-3", "h2", ""); !errors.Is(err, ErrNotLeader) {
		t.Errorf("operator's container move by a deposed leader: %v, want ErrNotLeader", err)
	}
	if n := agents.callsOf("ctr-3"); n != 1 {
		t.Errorf("the agent was asked to move ctr-3 %d time(s) in all, want once (none by a deposed leader)", n)
	}
}
