package server

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// migrateAgents stand in for the node agents of h-old, h1 and h2 over a
// real embedded NATS server: LXC and CRIU cannot run in every Go test
// (agent/container's tests move real containers). Each answers the real
// migrate request on its host's subject with the agent's reply, records
// it, and refuses containers named "refuse-*" as an agent would refuse a
// dump that failed.
type migrateAgents struct {
	mu    sync.Mutex
	calls []container.MigrateRequest
}

func (a *migrateAgents) requests() []container.MigrateRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]container.MigrateRequest(nil), a.calls...)
}

// startMigrateAgents serves the agents of hosts on a fresh NATS server
// and returns the service's connection to it.
func startMigrateAgents(t *testing.T, hosts ...string) (*nats.Conn, *migrateAgents) {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	agentNC, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agentNC.Close)
	a := &migrateAgents{}
	for _, h := range hosts {
		if _, err := agentNC.Subscribe(container.MigrateSubject(h), func(m *nats.Msg) {
			var req container.MigrateRequest
			_ = json.Unmarshal(m.Data, &req)
			a.mu.Lock()
			a.calls = append(a.calls, req)
			a.mu.Unlock()
			rep := container.MigrateReply{OK: "migrated", Container: req.Container, From: h, To: req.To, Mode: req.Mode,
				TotalMS: 1500, FrozenMS: 80, BytesSent: 42_000_000}
			if strings.HasPrefix(req.Container, "refuse-") {
				rep = container.MigrateReply{Error: "criu dump failed", Container: req.Container, From: h, To: req.To, Mode: req.Mode}
			}
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := agentNC.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, a
}

// migrateView: h-old (architecture old in testKB), h1 and h2 (x86_64,
// 10 vCPUs each) up; containers ctr-a (default tag) and g-a on h1, g-b on
// h2, exact-old (tag pinned-old: architecture old only) and refuse-me on
// h-old.
func migrateView() *hostview.View {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for _, h := range []string{"h-old", "h1", "h2"} {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h, Nodename: h, ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	view.Reconcile(inv)
	now := time.Now()
	for host, ctrs := range map[string][]string{"h1": {"ctr-a", "g-a"}, "h2": {"g-b"}, "h-old": {"exact-old", "refuse-me"}} {
		rep := hostview.ContainerReport{Host: host, At: now, Arch: "x86_64"}
		for _, id := range ctrs {
			in := hostview.Instance{UUID: "uuid-" + id, Name: id, Kind: hostview.KindContainer, State: "active", PowerState: "running",
				Flavor: hostview.Flavor{Name: "container", VCPUs: 1, MemoryMB: 512}}
			if id == "exact-old" {
				in.Tag = "pinned-old"
			}
			rep.Instances = append(rep.Instances, in)
		}
		view.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: now, Containers: rep})
	}
	return view
}

// TestMigrateContainer: `ecrae migrate` through the RebalanceService. A
// move the rules allow reaches the source agent (by uuid or name) and its
// reply comes back; a move the rules refuse (anti-affinity group, an exact
// tag whose candidates exclude the destination, a host that is down)
// fails FailedPrecondition naming the rule and sends nothing to the
// agents; bad fields are InvalidArgument naming the field, an unknown
// container NotFound; an agent's failure is Aborted with its reply in the
// details. Nova's server groups are given by a Groups func (Nova cannot run
// in a Go test).
func TestMigrateContainer(t *testing.T) {
	view := migrateView()
	nc, agents := startMigrateAgents(t, "h-old", "h1", "h2")
	client := &container.Client{NC: nc, View: view}
	mover := rebalance.Route{Agents: client, Kind: func(id string) string { in, _ := view.Instance(id); return in.Kind }}
	h := newRBWith(t, view, mover, func(c *RebalanceConfig) {
		c.Groups = func(context.Context) ([]optimizer.ServerGroup, map[string]string, error) {
			return []optimizer.ServerGroup{{Name: "grp", Policy: optimizer.PolicyAntiAffinity}},
				map[string]string{"uuid-g-a": "grp", "uuid-g-b": "grp"}, nil
		}
	})
	ctx := context.Background()

	resp, err := h.client.MigrateContainer(ctx, &ecraev1.MigrateContainerRequest{Container: "ctr-a", To: "h2", Mode: "precopy"})
	if err != nil {
		t.Fatalf("allowed move: %v", err)
	}
	// 1,500 ms → 1.5 s in all; 80 ms frozen.
	if resp.GetFrom() != "h1" || resp.GetTo() != "h2" || resp.GetMode() != "precopy" || resp.GetTotal().AsDuration() != 1500*time.Millisecond ||
		resp.GetFrozen().AsDuration() != 80*time.Millisecond || resp.GetBytesSent() != 42_000_000 {
		t.Errorf("reply %v, want h1 → h2 by precopy, 1.5 s, 80 ms frozen, 42 MB", resp)
	}
	if got := agents.requests(); len(got) != 1 || got[0] != (container.MigrateRequest{Container: "ctr-a", To: "h2", Mode: "precopy"}) {
		t.Fatalf("agents got %+v, want one request for ctr-a to h2", got)
	}

	for _, tc := range []struct {
		name string
		req  *ecraev1.MigrateContainerRequest
		code codes.Code
		want string // in the message
	}{
		{"anti-affinity", &ecraev1.MigrateContainerRequest{Container: "uuid-g-a", To: "h2"}, codes.FailedPrecondition, "group"},
		{"exact tag", &ecraev1.MigrateContainerRequest{Container: "exact-old", To: "h1"}, codes.FailedPrecondition, "candidates"},
		{"same host", &ecraev1.MigrateContainerRequest{Container: "ctr-a", To: "h1", From: "h1"}, codes.FailedPrecondition, "already runs on h1"},
		{"wrong from", &ecraev1.MigrateContainerRequest{Container: "g-b", To: "h1", From: "h-old"}, codes.FailedPrecondition, "from: container g-b runs on h2"},
		{"unknown container", &ecraev1.MigrateContainerRequest{Container: "nope", To: "h2"}, codes.NotFound, `container "nope"`},
		{"unknown host", &ecraev1.MigrateContainerRequest{Container: "g-b", To: "h9"}, codes.NotFound, `to: host "h9"`},
		{"no container", &ecraev1.MigrateContainerRequest{To: "h2"}, codes.InvalidArgument, "container"},
		{"no to", &ecraev1.MigrateContainerRequest{Container: "g-b"}, codes.InvalidArgument, "to"},
		{"bad mode", &ecraev1.MigrateContainerRequest{Container: "g-b", To: "h1", Mode: "teleport"}, codes.InvalidArgument, `mode: want auto, postcopy, precopy or stopcopy, got "teleport"`},
		{"long name", &ecraev1.MigrateContainerRequest{Container: strings.Repeat("x", 300), To: "h1"}, codes.InvalidArgument, "container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.MigrateContainer(ctx, tc.req)
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.want)
			}
			t.Log(st.Message())
			if len(st.Message()) > 400 {
				t.Errorf("message of %d bytes quotes too much", len(st.Message()))
			}
		})
	}
	if got := agents.requests(); len(got) != 1 {
		t.Fatalf("refused moves reached the agents: %+v", got[1:])
	}

	// A host that went down receives nothing, as in a plan.
	view.Reconcile(hostview.Inventory{At: time.Now(), Hosts: []hostview.HostInventory{
		{Name: "h-old", Nodename: "h-old", ISA: "x86_64", State: "up", Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}},
		{Name: "h1", Nodename: "h1", ISA: "x86_64", State: "up", Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}},
		{Name: "h2", Nodename: "h2", ISA: "x86_64", State: "down", Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}},
	}})
	_, err = h.client.MigrateContainer(ctx, &ecraev1.MigrateContainerRequest{Container: "uuid-ctr-a", To: "h2"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "host state") {
		t.Fatalf("move to a down host: %v, want FailedPrecondition naming host state", err)
	}
	if got := agents.requests(); len(got) != 1 {
		t.Fatalf("a move to a down host reached the agents: %+v", got[1:])
	}

	// The agent fails the move: Aborted, its reply in the details.
	_, err = h.client.MigrateContainer(ctx, &ecraev1.MigrateContainerRequest{Container: "refuse-me", To: "h1"})
	st := status.Convert(err)
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "criu dump failed") {
		t.Fatalf("agent failure: %v, want Aborted with the agent's error", err)
	}
	var detail *ecraev1.MigrateContainerResponse
	for _, d := range st.Details() {
		if r, ok := d.(*ecraev1.MigrateContainerResponse); ok {
			detail = r
		}
	}
	if detail == nil || detail.GetError() != "criu dump failed" || detail.GetFrom() != "h-old" || detail.GetMode() != "auto" {
		t.Errorf("details %v, want the agent's reply (from h-old, mode auto)", st.Details())
	}
}

// TestMigrateContainerNoMover: a service that moves no containers (no
// agents: its Migrator is Nova's alone, or none) says so.
func TestMigrateContainerNoMover(t *testing.T) {
	h := newRB(t, migrateView(), nil)
	_, err := h.client.MigrateContainer(context.Background(), &ecraev1.MigrateContainerRequest{Container: "ctr-a", To: "h2"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "no container mover") {
		t.Fatalf("got %v, want FailedPrecondition: no container mover", err)
	}
}

// TestMigrateContainerAccess: the move is an operator's (a scheduler,
// which may read plans, may not), audited as every operator call, and
// a follower forwards it to the leader, whose mover is the fenced one.
func TestMigrateContainerAccess(t *testing.T) {
	const m = "/ecrae.v1.RebalanceService/MigrateContainer"
	for role, want := range map[Role]bool{RoleOperator: true, RoleScheduler: false, RoleAgent: false} {
		if got := Allowed(role, m); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", role, got, want)
		}
	}
	if methodAccess(m) != operator {
		t.Errorf("%s is not operator-only: the Auditor would not record it", m)
	}
	if !LeaderOnly(m) {
		t.Errorf("%s is not leader-only: a follower would move with an unfenced mover", m)
	}
}

// TestMigrateContainerToAnEmptyContainerNode: a node Nova does not know,
// whose agent reports containers but has none yet, is a destination (it
// used to be left out of the live cluster, so `ecrae migrate --to` said
// NotFound and plans never used it). h-old has a KB model (testKB); h1 is
// Nova's compute with ctr-a.
func TestMigrateContainerToAnEmptyContainerNode(t *testing.T) {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	now := time.Now()
	view.Reconcile(hostview.Inventory{At: now, Hosts: []hostview.HostInventory{{Name: "h1", Nodename: "h1", ISA: "x86_64", State: "up",
		Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}}}})
	for host, ctrs := range map[string][]string{"h1": {"ctr-a"}, "h-old": nil} {
		rep := hostview.ContainerReport{Host: host, At: now, Arch: "x86_64"}
		for _, id := range ctrs {
			rep.Instances = append(rep.Instances, hostview.Instance{UUID: "uuid-" + id, Name: id, Kind: hostview.KindContainer, State: "active",
				PowerState: "running", Flavor: hostview.Flavor{Name: "container", VCPUs: 1, MemoryMB: 512}})
		}
		view.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: now, Containers: rep})
	}
	nc, agents := startMigrateAgents(t, "h1", "h-old")
	client := &container.Client{NC: nc, View: view}
	mover := rebalance.Route{Agents: client, Kind: func(id string) string { in, _ := view.Instance(id); return in.Kind }}
	h := newRBWith(t, view, mover, nil)
	if _, err := h.client.MigrateContainer(context.Background(), &ecraev1.MigrateContainerRequest{Container: "ctr-a", To: "h-old", Mode: "stopcopy"}); err != nil {
		t.Fatalf("move to the empty container node: %v", err)
	}
	if got := agents.requests(); len(got) != 1 || got[0].To != "h-old" {
		t.Fatalf("agents got %+v, want one request to h-old", got)
	}
}
