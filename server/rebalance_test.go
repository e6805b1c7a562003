package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fakeMigrator is Nova as the executor sees it: where each instance is, and
// live migrations that succeed, fail, or hang until released.
type fakeMigrator struct {
	mu      sync.Mutex
	at      map[string]string
	fail    map[string]string // instance → error
	hang    chan struct{}     // non-nil: migrations wait for it (or ctx)
	free    int               // with hang: the first free migrations do not wait
	calls   []string
	started chan string
	view    *hostview.View // non-nil: a done move is notified to it
	seq     uint64
	// stepwise: each migration waits until the test releases its
	// instance (release).
	stepwise bool
	released map[string]chan struct{}
}

// release lets instance id's migration end (stepwise).
func (f *fakeMigrator) release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.gateOf(id))
}

func (f *fakeMigrator) gateOf(id string) chan struct{} {
	if f.released == nil {
		f.released = map[string]chan struct{}{}
	}
	if f.released[id] == nil {
		f.released[id] = make(chan struct{})
	}
	return f.released[id]
}

func newFakeMigrator(at map[string]string) *fakeMigrator {
	return &fakeMigrator{at: at, fail: map[string]string{}, started: make(chan string, 100)}
}

func (f *fakeMigrator) Locate(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.at[id]
	if !ok {
		return "", fmt.Errorf("server %s not found", id)
	}
	return h, nil
}

func (f *fakeMigrator) LiveMigrate(ctx context.Context, id, target string) error {
	f.mu.Lock()
	f.calls = append(f.calls, id+"→"+target)
	hang, why := f.hang, f.fail[id]
	if len(f.calls) <= f.free {
		hang = nil
	}
	if f.stepwise {
		hang = f.gateOf(id)
	}
	f.mu.Unlock()
	f.started <- id
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if why != "" {
		return errors.New(why)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at[id] = target
	if f.view != nil {
		f.seq++
		f.view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Type: "instance.live_migration_post_dest.end",
			MessageID: fmt.Sprintf("m%d", f.seq), Timestamp: time.Now(), Publisher: target,
			Instance: hostview.InstanceChange{Instance: hostview.Instance{UUID: id, Host: target, Node: target, State: "active", PowerState: "running"}}})
	}
	return nil
}

func (f *fakeMigrator) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type rbHarness struct {
	client ecraev1.RebalanceServiceClient
	rb     *Rebalancer
	plans  *planstore.Store
	view   *hostview.View
	freed  *freedRecorder
}

// freedRecorder is the power manager as the rebalancer sees it.
type freedRecorder struct {
	mu    sync.Mutex
	hosts [][]string
}

func (f *freedRecorder) FreedHosts(_ context.Context, hosts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = append(f.hosts, slices.Clone(hosts))
}

func (f *freedRecorder) got() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hosts)
}

// await polls, for up to 10 s, until the power manager was told n times
// (the executor tells it after its status writes), and returns what it
// was told by then.
func (f *freedRecorder) await(n int) [][]string {
	for deadline := time.Now().Add(10 * time.Second); len(f.got()) < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return f.got()
}

// newRB serves the RebalanceService over bufconn on testKB, a plan store in
// a temporary directory (integrity-checked at the end), an optional live
// view and an optional migrator.
func newRB(t *testing.T, view *hostview.View, m rebalance.Migrator) *rbHarness {
	t.Helper()
	return newRBWith(t, view, m, nil)
}

// newRBWith is newRB with tune changing the RebalanceConfig first.
func newRBWith(t *testing.T, view *hostview.View, m rebalance.Migrator, tune func(*RebalanceConfig)) *rbHarness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	kbs, err := kbstore.Open(filepath.Join(dir, "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := kbs.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	plans, err := planstore.Open(filepath.Join(dir, "plans.db"), planstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	if view != nil {
		cfg.Live = view
	}
	srv, err := New(cfg, kbs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	freed := &freedRecorder{}
	rcfg := RebalanceConfig{Plans: plans, Migrator: m, ViewGrace: time.Second, Freed: freed}
	if tune != nil {
		tune(&rcfg)
	}
	rb := NewRebalancer(srv, rcfg)
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer(grpc.ForceServerCodecV2(Codec{}))
	rb.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		rb.Close()
		if err := plans.Close(); err != nil {
			t.Errorf("close plans: %v", err)
		}
		kbs.Close()
	})
	return &rbHarness{client: ecraev1.NewRebalanceServiceClient(conn), rb: rb, plans: plans, view: view, freed: freed}
}

// spread is a snapshot of four "old" hosts (10 threads, 100 → 200 W), two
// 2-vCPU instances on each: everything fits on two hosts.
func spread() *ecraev1.ClusterSnapshot {
	s := &ecraev1.ClusterSnapshot{}
	for j := range 4 {
		s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: fmt.Sprintf("h%d", j), Architecture: "old",
			Vcpus: 10, MemoryMb: 16384, DiskGb: 500})
	}
	for i := range 8 {
		u := 0.5
		s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("vm%d", i),
			Host: fmt.Sprintf("h%d", i%4), Vcpus: 2, MemoryMb: 2048, DiskGb: 10, CpuUtilization: &u})
	}
	return s
}

func placement(s *ecraev1.ClusterSnapshot) map[string]string {
	at := map[string]string{}
	for _, in := range s.GetInstances() {
		at[in.GetId()] = in.GetHost()
	}
	return at
}

// wait polls GetPlan until the plan is no longer executing.
func (h *rbHarness) wait(t *testing.T, id string) *ecraev1.Plan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := h.client.GetPlan(context.Background(), &ecraev1.GetPlanRequest{PlanId: id})
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetPlan(); p.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_EXECUTING {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("plan %s still executing", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPlanOnSnapshotIsStored(t *testing.T) {
	h := newRB(t, nil, nil)
	ctx := context.Background()
	resp, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Seed: 1, MaxParallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPlan()
	// Four hosts at 20 % (2×2×0.5 of 10 threads) → two at 40 %:
	// 4 × 120 W = 480 W → 2 × 140 W = 280 W.
	if p.GetId() != "p1" || p.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_PLANNED || p.GetSource() != SourceSnapshot ||
		len(p.GetHostsFreed()) != 2 || p.GetHostsUsedAfter() != 2 || !near(p.GetPowerBeforeWatts(), 480) || !near(p.GetPowerAfterWatts(), 280) {
		t.Fatalf("plan %v", p)
	}
	if p.GetLowerBounds().GetHosts() != 2 || p.GetAlgorithm() == "" || p.GetMaxParallel() != 2 || len(p.GetSteps()) != 4 {
		t.Errorf("plan %v", p)
	}
	for _, st := range p.GetSteps() {
		if st.GetStatus() != ecraev1.StepStatus_STEP_STATUS_PENDING || st.GetMemoryMb() != 2048 {
			t.Errorf("step %v", st)
		}
	}
	got, err := h.client.GetPlan(ctx, &ecraev1.GetPlanRequest{})
	if err != nil || got.GetPlan().GetId() != "p1" || len(got.GetPlan().GetSteps()) != 4 {
		t.Fatalf("latest plan: %v, %v", got, err)
	}
	if _, err := h.client.GetPlan(ctx, &ecraev1.GetPlanRequest{PlanId: "p9"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetPlan(p9) = %v, want NotFound", err)
	}
}

func TestPlanRequestErrors(t *testing.T) {
	h := newRB(t, nil, nil)
	ctx := context.Background()
	bad := spread()
	bad.Hosts[1].Architecture = "nope"
	unknownTag := spread()
	unknownTag.Instances[0].Tag = "nope"
	badUtil := spread()
	u := 1.5
	badUtil.Instances[2].CpuUtilization = &u
	lostHost := spread()
	lostHost.Instances[3].Host = "h9"
	cases := []struct {
		name string
		req  *ecraev1.PlanRebalanceRequest
		code codes.Code
		want string
	}{
		{"no live view", &ecraev1.PlanRebalanceRequest{}, codes.FailedPrecondition, "no live view"},
		{"architecture", &ecraev1.PlanRebalanceRequest{Snapshot: bad}, codes.InvalidArgument, "snapshot.hosts[1].architecture"},
		{"tag", &ecraev1.PlanRebalanceRequest{Snapshot: unknownTag}, codes.InvalidArgument, "snapshot.instances[0].tag"},
		{"utilization", &ecraev1.PlanRebalanceRequest{Snapshot: badUtil}, codes.InvalidArgument, "snapshot.instances[2].cpu_utilization"},
		{"host", &ecraev1.PlanRebalanceRequest{Snapshot: lostHost}, codes.InvalidArgument, "h9"},
		{"algorithm", &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Algorithm: "magic"}, codes.InvalidArgument, "unknown algorithm"},
		{"time limit", &ecraev1.PlanRebalanceRequest{Snapshot: spread(), TimeLimit: durationpb.New(time.Hour)}, codes.InvalidArgument, "time_limit"},
		{"cap", &ecraev1.PlanRebalanceRequest{Snapshot: spread(), MaxMigrations: -1}, codes.InvalidArgument, "max_migrations"},
		{"relieve", &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Relieve: 1.5}, codes.InvalidArgument, "relieve: must be 0"},
		{"relieve NaN", &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Relieve: math.NaN()}, codes.InvalidArgument, "relieve: must be 0"},
	}
	for _, c := range cases {
		_, err := h.client.PlanRebalance(ctx, c.req)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %s saying %q", c.name, err, c.code, c.want)
		}
	}
}

func TestExecuteDryRunThenForReal(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	h := newRB(t, nil, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := p.GetPlan().GetId()

	// Dry run by default: nothing moves.
	dry, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.GetDryRun() || len(dry.GetProblems()) != 0 || m.callCount() != 0 || dry.GetPlan().GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_PLANNED {
		t.Fatalf("dry run: %v (problems %v), %d migrations", dry.GetPlan().GetStatus(), dry.GetProblems(), m.callCount())
	}

	resp, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDryRun() || resp.GetPlan().GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_EXECUTING {
		t.Fatalf("execute: %v", resp)
	}
	done := h.wait(t, id)
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED || !strings.Contains(done.GetMessage(), "all 4 steps done") {
		t.Fatalf("plan %v: %s", done.GetStatus(), done.GetMessage())
	}
	for _, st := range done.GetSteps() {
		if st.GetStatus() != ecraev1.StepStatus_STEP_STATUS_DONE || m.at[st.GetInstanceId()] != st.GetToHost() ||
			st.GetStartedAt() == nil || st.GetFinishedAt() == nil || !strings.Contains(st.GetConfirmedBy(), "nova") {
			t.Errorf("step %v; the instance is on %s", st, m.at[st.GetInstanceId()])
		}
	}
	// The final placement uses exactly the hosts the plan keeps.
	used := map[string]bool{}
	for _, h := range m.at {
		used[h] = true
	}
	for _, f := range done.GetHostsFreed() {
		if used[f] {
			t.Errorf("freed host %s still holds an instance", f)
		}
	}
	// The power manager hears of the freed hosts once, after the plan
	// succeeded (the call follows the status write: poll for it).
	if len(done.GetHostsFreed()) == 0 {
		t.Fatal("the plan freed no host")
	}
	if got := h.freed.await(1); len(got) != 1 || !slices.Equal(got[0], done.GetHostsFreed()) {
		t.Errorf("freed hosts told %v, want [%v]", got, done.GetHostsFreed())
	}
	// A finished plan does not run again.
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second execution: %v, want FailedPrecondition", err)
	}
}

// TestFailedStepStopsThePlan: the first failure stops the plan after its
// wave, the rest is skipped, nothing is retried, and the message says what
// happened.
func TestFailedStepStopsThePlan(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	h := newRB(t, nil, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	if plan.GetWaves() != 4 {
		t.Fatalf("%d waves, want one move per wave", plan.GetWaves())
	}
	victim := plan.GetSteps()[1].GetInstanceId()
	m.fail[victim] = "No valid host was found"
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId(), Execute: true}); err != nil {
		t.Fatal(err)
	}
	done := h.wait(t, plan.GetId())
	var got []ecraev1.StepStatus
	for _, st := range done.GetSteps() {
		got = append(got, st.GetStatus())
	}
	want := []ecraev1.StepStatus{ecraev1.StepStatus_STEP_STATUS_DONE, ecraev1.StepStatus_STEP_STATUS_FAILED,
		ecraev1.StepStatus_STEP_STATUS_SKIPPED, ecraev1.StepStatus_STEP_STATUS_SKIPPED}
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_FAILED || !slices.Equal(got, want) {
		t.Fatalf("plan %v, steps %v; want failed, %v", done.GetStatus(), got, want)
	}
	if e := done.GetSteps()[1].GetError(); e != "No valid host was found" {
		t.Errorf("step error %q", e)
	}
	for _, s := range []string{"step 2 (" /* the second step, numbered from 1 as everywhere */, victim, "No valid host was found", "1 done, 1 failed, 2 skipped", "nothing was retried"} {
		if !strings.Contains(done.GetMessage(), s) {
			t.Errorf("message %q does not say %q", done.GetMessage(), s)
		}
	}
	if m.callCount() != 2 {
		t.Errorf("%d migrations asked, want 2 (no retry, nothing after the failure)", m.callCount())
	}
}

// TestStalePlanStepFails: an instance no longer where the plan expects it
// fails its step before any migration is asked; the dry run says so first.
func TestStalePlanStepFails(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	h := newRB(t, nil, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := p.GetPlan().GetSteps()[0]
	m.at[first.GetInstanceId()] = "elsewhere"
	dry, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.GetProblems()) != 1 || !strings.Contains(dry.GetProblems()[0], "is on elsewhere, not on "+first.GetFromHost()) {
		t.Errorf("problems %v", dry.GetProblems())
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{Execute: true}); err != nil {
		t.Fatal(err)
	}
	done := h.wait(t, p.GetPlan().GetId())
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_FAILED || !strings.Contains(done.GetSteps()[0].GetError(), "out of date") || m.callCount() != 0 {
		t.Errorf("plan %v, step 0 error %q, %d migrations", done.GetStatus(), done.GetSteps()[0].GetError(), m.callCount())
	}
}

// TestInterruptedExecutionVisible: a service stopping mid-migration leaves
// the plan interrupted, the in-flight step unknown, the rest skipped.
func TestInterruptedExecutionVisible(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	m.hang = make(chan struct{})
	h := newRB(t, nil, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{Execute: true}); err != nil {
		t.Fatal(err)
	}
	<-m.started
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{Execute: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a second execution while one runs: %v", err)
	}
	h.rb.Close() // the service stops
	got, err := h.plans.Get(ctx, p.GetPlan().GetId())
	if err != nil {
		t.Fatal(err)
	}
	var st []string
	for _, s := range got.Steps {
		st = append(st, s.Status)
	}
	if got.Status != planstore.StatusInterrupted || !slices.Equal(st, []string{"unknown", "skipped", "skipped", "skipped"}) ||
		!strings.Contains(got.Message, "interrupted") {
		t.Fatalf("plan %s %v: %s", got.Status, st, got.Message)
	}
}

// liveView builds a view of the four hosts and eight instances of spread.
func liveView(t *testing.T) *hostview.View {
	t.Helper()
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for j := range 4 {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: fmt.Sprintf("h%d", j), Nodename: fmt.Sprintf("h%d", j),
			ISA: "x86_64", State: "up", Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	for i := range 8 {
		inv.Instances = append(inv.Instances, hostview.Instance{UUID: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("vm%d", i),
			Host: fmt.Sprintf("h%d", i%4), Node: fmt.Sprintf("h%d", i%4), State: "active", PowerState: "running",
			Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: 2048, RootGB: 10}})
	}
	view.Reconcile(inv)
	return view
}

// TestPlanAndExecuteOnLiveView: the plan comes from the live view, and each
// done step is confirmed by the view's notification too.
func TestPlanAndExecuteOnLiveView(t *testing.T) {
	view := liveView(t)
	m := newFakeMigrator(placement(spread()))
	m.view = view
	h := newRB(t, view, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	if plan.GetSource() != SourceLive || len(plan.GetHostsFreed()) != 2 || len(plan.GetSteps()) != 4 {
		t.Fatalf("plan %v", plan)
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{Execute: true}); err != nil {
		t.Fatal(err)
	}
	done := h.wait(t, plan.GetId())
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED {
		t.Fatalf("%v: %s", done.GetStatus(), done.GetMessage())
	}
	for _, st := range done.GetSteps() {
		if !strings.Contains(st.GetConfirmedBy(), "live view") {
			t.Errorf("step %d confirmed by %q", st.GetIndex(), st.GetConfirmedBy())
		}
	}
	for _, f := range done.GetHostsFreed() {
		if n := len(view.Instances(f)); n != 0 {
			t.Errorf("the view still has %d instances on freed host %s", n, f)
		}
	}
}

// TestPeriodicExecutesAboveThreshold: the periodic mode plans on the live
// view and executes when the saving passes the threshold, not otherwise.
func TestPeriodicExecutesAboveThreshold(t *testing.T) {
	for _, c := range []struct {
		threshold float64
		execute   bool
	}{{1e6, false}, {10, true}} {
		view := liveView(t)
		m := newFakeMigrator(placement(spread()))
		m.view = view
		h := newRB(t, view, m)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- h.rb.RunPeriodic(ctx, PeriodicConfig{Interval: 20 * time.Millisecond, MinSavingW: c.threshold, Execute: true})
		}()
		// Watch every stored plan, not the latest: the loop keeps planning
		// while the test polls.
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, err := h.periodicPlan(c.execute)
			if err != nil {
				t.Fatal(err)
			}
			if p != nil {
				if p.Source != rebalance.SourcePeriodic {
					t.Errorf("source %q", p.Source)
				}
				if c.execute && p.ExecutedBy != rebalance.ExecutedByPeriodic {
					t.Errorf("executed by %q, want %q", p.ExecutedBy, rebalance.ExecutedByPeriodic)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("threshold %v: no plan stored, or none executed", c.threshold)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		h.rb.Close()
		if got := m.callCount() > 0; got != c.execute {
			t.Errorf("threshold %v W: executed %v, want %v", c.threshold, got, c.execute)
		}
	}
}

// periodicPlan returns a stored plan that succeeded (or, when !executed, any
// stored plan), nil when there is none yet.
func (h *rbHarness) periodicPlan(executed bool) (*planstore.Plan, error) {
	ctx := context.Background()
	ids, err := h.plans.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		p, err := h.plans.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if !executed || p.Status == planstore.StatusSucceeded {
			return p, nil
		}
	}
	return nil, nil
}

// TestEmptyPlanNotStored: a plan with nothing to move is returned, not
// stored.
func TestEmptyPlanNotStored(t *testing.T) {
	h := newRB(t, nil, nil)
	ctx := context.Background()
	packed := spread()
	packed.Instances = packed.Instances[:1] // one instance on h0: nothing to gain
	resp, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: packed, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetPlan(); p.GetId() != "" || len(p.GetSteps()) != 0 || p.GetNote() == "" {
		t.Fatalf("plan %v: want no id, no steps, a note", p)
	}
	if ids, err := h.plans.List(ctx, 0); err != nil || len(ids) != 0 {
		t.Fatalf("stored %v (%v), want none", ids, err)
	}
}

func TestExecuteWithoutMigrator(t *testing.T) {
	h := newRB(t, nil, nil)
	ctx := context.Background()
	if _, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: spread()}); err != nil {
		t.Fatal(err)
	}
	dry, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{})
	if err != nil || !dry.GetDryRun() || len(dry.GetProblems()) != 1 || !strings.Contains(dry.GetProblems()[0], "no Nova connection") {
		t.Errorf("dry run: %v, %v", dry, err)
	}
	_, err = h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{Execute: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no Nova connection") {
		t.Errorf("execute: %v", err)
	}
}

// boot lands a new instance on host in the view, as Nova's notification
// of a finished boot would.
func boot(view *hostview.View, id, host string) {
	view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Type: "instance.create.end",
		MessageID: "boot-" + id, Timestamp: time.Now(), Publisher: host,
		Instance: hostview.InstanceChange{HasFlavor: true, Instance: hostview.Instance{UUID: id, Name: id, Host: host, Node: host,
			State: "active", PowerState: "running", Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: 2048, RootGB: 10}}}})
}

func draining(view *hostview.View) map[string]string {
	m := map[string]string{}
	s := view.Snapshot()
	for _, h := range s.Hosts {
		if h.Draining != "" {
			m[h.Name] = h.Draining
		}
	}
	return m
}

// TestBootOnFreedHostStopsPlan: a boot lands on a host the plan frees
// while its first wave runs; the next wave's check stops the plan with
// that reason, nothing more migrates, and the host is not reported freed.
// The hosts were marked draining while the plan ran, and are no more.
// (The fake migrator stands in for Nova, which cannot run in Go tests.)
func TestBootOnFreedHostStopsPlan(t *testing.T) {
	view := liveView(t)
	m := newFakeMigrator(placement(spread()))
	m.view = view
	m.hang = make(chan struct{})
	h := newRB(t, view, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	if len(plan.GetHostsFreed()) != 2 || plan.GetWaves() != 4 {
		t.Fatalf("plan frees %v in %d waves; want 2 hosts, one move per wave", plan.GetHostsFreed(), plan.GetWaves())
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId(), Execute: true}); err != nil {
		t.Fatal(err)
	}
	<-m.started // wave 0 in flight
	freed := plan.GetHostsFreed()[1]
	if d := draining(view); d[plan.GetHostsFreed()[0]] != plan.GetId() || d[freed] != plan.GetId() || len(d) != 2 {
		t.Errorf("draining while running: %v, want both freed hosts marked %s", d, plan.GetId())
	}
	boot(view, "intruder", freed)
	close(m.hang)
	done := h.wait(t, plan.GetId())
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_FAILED {
		t.Fatalf("plan %v: %s; want failed", done.GetStatus(), done.GetMessage())
	}
	for _, want := range []string{"out of date", "host " + freed + " to be freed now holds intruder", "1 done, 3 skipped"} {
		if !strings.Contains(done.GetMessage(), want) {
			t.Errorf("message %q does not say %q", done.GetMessage(), want)
		}
	}
	if strings.Contains(done.GetMessage(), "hosts freed") {
		t.Errorf("message %q reports hosts freed", done.GetMessage())
	}
	if n := m.callCount(); n != 1 {
		t.Errorf("%d migrations, want 1 (none after the boot)", n)
	}
	if d := draining(view); len(d) != 0 {
		t.Errorf("draining after the end: %v", d)
	}
}

// TestFreedHostToldBetweenWaves: the plan empties its hosts one after the
// other, and the power manager hears of the first while the second still
// drains, then of the second when the plan succeeded; each once.
func TestFreedHostToldBetweenWaves(t *testing.T) {
	view := liveView(t)
	m := newFakeMigrator(placement(spread()))
	m.view = view
	m.hang, m.free = make(chan struct{}), 2 // the third migration waits
	h := newRB(t, view, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	st := plan.GetSteps()
	if len(plan.GetHostsFreed()) != 2 || len(st) != 4 || st[0].GetFromHost() != st[1].GetFromHost() || st[2].GetFromHost() != st[3].GetFromHost() {
		t.Fatalf("plan frees %v by %v; want 2 hosts, emptied one after the other", plan.GetHostsFreed(), st)
	}
	first, second := st[0].GetFromHost(), st[2].GetFromHost()
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId(), Execute: true}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-m.started // the third is in flight, and waits
	}
	if got := h.freed.await(1); len(got) != 1 || !slices.Equal(got[0], []string{first}) {
		t.Fatalf("told %v while wave 3 runs, want [[%s]]", got, first)
	}
	close(m.hang)
	done := h.wait(t, plan.GetId())
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED {
		t.Fatalf("plan %v: %s", done.GetStatus(), done.GetMessage())
	}
	if got := h.freed.await(2); len(got) != 2 || !slices.Equal(got[1], []string{second}) {
		t.Errorf("told %v, want [[%s] [%s]]", got, first, second)
	}
}

// TestBootAfterLastWaveNotFreed: every step done, but a boot landed on a
// freed host meanwhile: the plan fails saying the host is not freed.
func TestBootAfterLastWaveNotFreed(t *testing.T) {
	view := liveView(t)
	m := newFakeMigrator(placement(spread()))
	m.view = view
	m.hang = make(chan struct{})
	h := newRB(t, view, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Seed: 1, MaxParallel: 8, MaxPerHost: 8})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	if plan.GetWaves() != 1 {
		t.Fatalf("%d waves, want 1", plan.GetWaves())
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId(), Execute: true}); err != nil {
		t.Fatal(err)
	}
	<-m.started
	freed := plan.GetHostsFreed()[0]
	boot(view, "late", freed)
	close(m.hang)
	done := h.wait(t, plan.GetId())
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_FAILED || !strings.Contains(done.GetMessage(), "host "+freed+" is not freed: it holds late") ||
		!strings.Contains(done.GetMessage(), "4 done") {
		t.Fatalf("plan %v: %s", done.GetStatus(), done.GetMessage())
	}
}

// TestAbortFinishesStepInFlight: AbortPlan during the first wave lets its
// migration finish and starts no other; the plan ends aborted.
func TestAbortFinishesStepInFlight(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	m.hang = make(chan struct{})
	h := newRB(t, nil, m)
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := p.GetPlan().GetId()
	if _, err := h.client.AbortPlan(ctx, &ecraev1.AbortPlanRequest{PlanId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("abort of a planned plan: %v, want FailedPrecondition", err)
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true}); err != nil {
		t.Fatal(err)
	}
	<-m.started
	ab, err := h.client.AbortPlan(ctx, &ecraev1.AbortPlanRequest{PlanId: id})
	if err != nil || !ab.GetPlan().GetAbortRequested() {
		t.Fatalf("abort: %v, %v", ab, err)
	}
	close(m.hang)
	done := h.wait(t, id)
	var got []ecraev1.StepStatus
	for _, st := range done.GetSteps() {
		got = append(got, st.GetStatus())
	}
	want := []ecraev1.StepStatus{ecraev1.StepStatus_STEP_STATUS_DONE, ecraev1.StepStatus_STEP_STATUS_SKIPPED,
		ecraev1.StepStatus_STEP_STATUS_SKIPPED, ecraev1.StepStatus_STEP_STATUS_SKIPPED}
	if done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_ABORTED || !slices.Equal(got, want) || !strings.Contains(done.GetMessage(), "aborted") {
		t.Fatalf("plan %v %v: %s; want aborted, %v", done.GetStatus(), got, done.GetMessage(), want)
	}
	if n := m.callCount(); n != 1 {
		t.Errorf("%d migrations, want 1", n)
	}
	if by := done.GetExecutedBy(); !strings.HasPrefix(by, "unauthenticated@") {
		t.Errorf("executed_by %q, want the gRPC peer", by)
	}
}

// TestPlanExpires: a plan not started within the TTL cannot start and is
// listed expired. The clock is real time plus an offset the test moves.
func TestPlanExpires(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	var mu sync.Mutex
	var offset time.Duration
	h := newRBWith(t, nil, m, func(c *RebalanceConfig) {
		c.PlanTTL = 15 * time.Minute
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	})
	ctx := context.Background()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.GetPlan()
	// expires_at = created_at + 15 min.
	if got := plan.GetExpiresAt().AsTime().Sub(plan.GetCreatedAt().AsTime()); got != 15*time.Minute {
		t.Errorf("expires %s after creation, want 15m", got)
	}
	mu.Lock()
	offset = 16 * time.Minute
	mu.Unlock()
	dry, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId()})
	if err != nil || !slices.ContainsFunc(dry.GetProblems(), func(s string) bool { return strings.Contains(s, "expired") }) {
		t.Errorf("dry run after the TTL: %v, %v; want a problem saying expired", dry.GetProblems(), err)
	}
	_, err = h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: plan.GetId(), Execute: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("execute after the TTL: %v, want FailedPrecondition saying expired", err)
	}
	l, err := h.client.ListPlans(ctx, &ecraev1.ListPlansRequest{})
	if err != nil || len(l.GetPlans()) != 1 || l.GetPlans()[0].GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_EXPIRED {
		t.Fatalf("list: %v, %v", l, err)
	}
	if m.callCount() != 0 {
		t.Errorf("%d migrations of an expired plan", m.callCount())
	}
}

// TestPlansPrunedAndListed: with keep 3, five plans leave the newest
// three; the list has no steps; a cancelled plan cannot run.
func TestPlansPrunedAndListed(t *testing.T) {
	snap := spread()
	h := newRBWith(t, nil, newFakeMigrator(placement(snap)), func(c *RebalanceConfig) { c.Keep = 3 })
	ctx := context.Background()
	for range 5 {
		if _, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := h.client.ListPlans(ctx, &ecraev1.ListPlansRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range l.GetPlans() {
		ids = append(ids, p.GetId())
		if len(p.GetSteps()) != 0 {
			t.Errorf("plan %s listed with its steps", p.GetId())
		}
	}
	if !slices.Equal(ids, []string{"p5", "p4", "p3"}) {
		t.Fatalf("listed %v, want [p5 p4 p3]", ids)
	}
	if _, err := h.client.GetPlan(ctx, &ecraev1.GetPlanRequest{PlanId: "p1"}); status.Code(err) != codes.NotFound {
		t.Errorf("pruned p1: %v, want NotFound", err)
	}
	c, err := h.client.CancelPlan(ctx, &ecraev1.CancelPlanRequest{PlanId: "p4"})
	if err != nil || c.GetPlan().GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_CANCELLED {
		t.Fatalf("cancel: %v, %v", c, err)
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: "p4", Execute: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("execute a cancelled plan: %v, want FailedPrecondition", err)
	}
	if _, err := h.client.CancelPlan(ctx, &ecraev1.CancelPlanRequest{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "plan_id") {
		t.Errorf("cancel without id: %v", err)
	}
}

// TestFixedInstancesGrouped: 400 instances on 100 stale hosts cannot move;
// the plan stores one group (count 400, 10 examples), not 400 entries.
func TestFixedInstancesGrouped(t *testing.T) {
	h := newRB(t, nil, nil)
	s := spread()
	for j := range 100 {
		s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: fmt.Sprintf("stale%d", j), Architecture: "old", Vcpus: 10,
			MemoryMb: 16384, DiskGb: 500, State: ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_STALE})
	}
	for i := range 400 {
		s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: fmt.Sprintf("f%03d", i), Host: fmt.Sprintf("stale%d", i%100),
			Vcpus: 1, MemoryMb: 512, DiskGb: 1})
	}
	resp, err := h.client.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{Snapshot: s, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.plans.Get(context.Background(), resp.GetPlan().GetId())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Fixed) != 0 || len(p.FixedGroups) != 1 || p.FixedGroups[0].Count != 400 || len(p.FixedGroups[0].Examples) != planstore.MaxFixedExamples ||
		p.FixedGroups[0].Examples[0] != "f000" {
		t.Fatalf("fixed %d entries, groups %+v", len(p.Fixed), p.FixedGroups)
	}
	if g := resp.GetPlan().GetFixedGroups(); len(g) != 1 || g[0].GetCount() != 400 {
		t.Errorf("proto fixed_groups %v", g)
	}
}

// TestRunOwnsExecutions: an execution started while Run runs stops when
// Run's context ends, and Run returns only after it is recorded
// interrupted.
func TestRunOwnsExecutions(t *testing.T) {
	snap := spread()
	m := newFakeMigrator(placement(snap))
	m.hang = make(chan struct{})
	h := newRB(t, nil, m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- h.rb.Run(ctx) }()
	p, err := h.client.PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: p.GetPlan().GetId(), Execute: true}); err != nil {
		t.Fatal(err)
	}
	<-m.started
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	got, err := h.plans.Get(context.Background(), p.GetPlan().GetId())
	if err != nil || got.Status != planstore.StatusInterrupted {
		t.Fatalf("plan after Run ended: %+v, %v; want interrupted", got, err)
	}
	// Stopped: nothing starts any more.
	bg := context.Background()
	p2, err := h.client.PlanRebalance(bg, &ecraev1.PlanRebalanceRequest{Snapshot: snap, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ExecutePlan(bg, &ecraev1.ExecutePlanRequest{PlanId: p2.GetPlan().GetId(), Execute: true}); status.Code(err) != codes.Unavailable {
		t.Errorf("execute after Run ended: %v, want Unavailable", err)
	}
}

// TestPeriodicExecutesRepair: Watcher's scenario_3 on the live view (1, 2,
// 4 and 8 vCPUs on a 10-vCPU host: 15 > 10) is repaired by the periodic
// mode although the plan saves nothing (the threshold is out of reach).
// TestRelieveKeepsBusyHost: a request's relieve reaches the plan. Two
// "old" hosts of 10 threads; h0 holds three 3-vCPU instances of tag
// capped (ceiling 0.8) measured fully busy: 9 of 10 threads, past the
// ceiling (8). Relieving to the ceiling moves one to h1 (6 and 3); with
// relieve 0.9 h0 keeps its 9 and the plan moves nothing.
func TestRelieveKeepsBusyHost(t *testing.T) {
	h := newRB(t, nil, nil)
	snap := func() *ecraev1.ClusterSnapshot {
		s := &ecraev1.ClusterSnapshot{}
		for _, n := range []string{"h0", "h1"} {
			s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: n, Architecture: "old", Vcpus: 10, MemoryMb: 16384, DiskGb: 500})
		}
		for i := range 3 {
			u := 1.0
			s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: fmt.Sprintf("i%d", i), Host: "h0", Tag: "capped",
				Vcpus: 3, MemoryMb: 2048, DiskGb: 10, CpuUtilization: &u})
		}
		return s
	}
	for _, c := range []struct {
		relieve  float64
		steps    int
		repaired int
	}{{0, 1, 1}, {0.9, 0, 0}} {
		resp, err := h.client.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{Snapshot: snap(), Seed: 1, Relieve: c.relieve})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPlan()
		if len(p.GetSteps()) != c.steps || len(p.GetRepairedHosts()) != c.repaired || len(p.GetOverloadedHosts()) != 0 || p.GetRelieve() != c.relieve {
			t.Errorf("relieve %g: %d steps, repaired %v, overloaded %v, relieve %g echoed; want %d steps, %d repaired, none overloaded, the request's relieve",
				c.relieve, len(p.GetSteps()), p.GetRepairedHosts(), p.GetOverloadedHosts(), p.GetRelieve(), c.steps, c.repaired)
		}
	}
}

func TestPeriodicExecutesRepair(t *testing.T) {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for _, n := range []string{"h0", "h1"} {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: n, Nodename: n, ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 65536, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	at := map[string]string{}
	for i, v := range []int{1, 2, 4, 8} {
		id := fmt.Sprintf("i%d", i)
		at[id] = "h0"
		inv.Instances = append(inv.Instances, hostview.Instance{UUID: id, Name: id, Host: "h0", Node: "h0", State: "active", PowerState: "running",
			Flavor: hostview.Flavor{Name: "f", VCPUs: v, MemoryMB: 2048, RootGB: 10}})
	}
	view.Reconcile(inv)
	m := newFakeMigrator(at)
	m.view = view
	h := newRB(t, view, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- h.rb.RunPeriodic(ctx, PeriodicConfig{Interval: 20 * time.Millisecond, MinSavingW: 1e6, Execute: true})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps, err := h.plans.Plans(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Status == planstore.StatusSucceeded {
				if !slices.Equal(p.Repaired, []string{"h0"}) {
					t.Errorf("repaired %v, want [h0]", p.Repaired)
				}
				if n := m.callCount(); n == 0 {
					t.Error("no migration")
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no repair plan executed; plans: %d", len(ps))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextStart is the instance of the next migration asked, within a
// generous deadline.
func (f *fakeMigrator) nextStart(t *testing.T) string {
	t.Helper()
	select {
	case id := <-f.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no migration started within 10 s")
		return ""
	}
}

// oneEach: n hosts of memMB, one 2 GB instance on each.
func oneEach(n int, memMB int64) *ecraev1.ClusterSnapshot {
	s := &ecraev1.ClusterSnapshot{}
	for j := range n {
		u := 0.5
		s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: fmt.Sprintf("p%d", j), Architecture: "old", Vcpus: 10, MemoryMb: memMB, DiskGb: 500})
		s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: fmt.Sprintf("j%d", j), Name: fmt.Sprintf("vm%d", j),
			Host: fmt.Sprintf("p%d", j), Vcpus: 2, MemoryMb: 2048, DiskGb: 10, CpuUtilization: &u})
	}
	return s
}

// planStepwise plans req on its snapshot for an executor whose migrator
// starts a step and ends it only when the test releases it.
func planStepwise(t *testing.T, req *ecraev1.PlanRebalanceRequest) (*rbHarness, *fakeMigrator, *ecraev1.Plan) {
	t.Helper()
	m := newFakeMigrator(placement(req.GetSnapshot()))
	m.stepwise = true
	h := newRB(t, nil, m)
	p, err := h.client.PlanRebalance(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return h, m, p.GetPlan()
}

// TestStepStartsWhenItsHostsAreFree: with two migrations at a time, the
// second wave's first move starts as soon as a first-wave move has ended,
// while the other is still in flight (its hosts are not the same); with
// the wave barrier it waited for both.
func TestStepStartsWhenItsHostsAreFree(t *testing.T) {
	// Eight hosts with room for two instances each (memory), one on each:
	// consolidation moves one instance of each pair of hosts onto the
	// other, four moves on disjoint hosts.
	h, m, plan := planStepwise(t, &ecraev1.PlanRebalanceRequest{Snapshot: oneEach(8, 4096), Seed: 1, MaxParallel: 2})
	hosts := map[string]bool{}
	for _, st := range plan.GetSteps() {
		hosts[st.GetFromHost()], hosts[st.GetToHost()] = true, true
	}
	if plan.GetWaves() != 2 || len(plan.GetSteps()) != 4 || len(hosts) != 8 {
		t.Fatalf("plan %v in %d waves; want two waves of two moves on eight hosts", plan.GetSteps(), plan.GetWaves())
	}
	thirdStartsBeforeSecondEnds(t, h, m, plan.GetId())
}

// thirdStartsBeforeSecondEnds executes a four-step plan with a stepwise
// migrator: two steps start; once the first ends, a third starts while
// the second is still in flight; then all end and the plan succeeds.
func thirdStartsBeforeSecondEnds(t *testing.T, h *rbHarness, m *fakeMigrator, id string) {
	t.Helper()
	if _, err := h.client.ExecutePlan(context.Background(), &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true}); err != nil {
		t.Fatal(err)
	}
	first, other := m.nextStart(t), m.nextStart(t)
	m.release(first)
	third := m.nextStart(t)
	if third == other || third == first {
		t.Fatalf("third start %s", third)
	}
	m.release(other)
	m.release(third)
	m.release(m.nextStart(t))
	if done := h.wait(t, id); done.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED {
		t.Fatalf("plan %v: %s", done.GetStatus(), done.GetMessage())
	}
}

// TestArrivalsDoNotWaitForEachOther: five hosts with one instance each
// empty into one, two migrations per host at a time. The destination's
// third arrival (a later wave) starts as soon as one of its first two has
// ended, while the other is still in flight: arrivals need no order among
// themselves (optimizer.Gate). Before, it waited for both.
func TestArrivalsDoNotWaitForEachOther(t *testing.T) {
	h, m, plan := planStepwise(t, &ecraev1.PlanRebalanceRequest{Snapshot: oneEach(5, 16384), Seed: 1, MaxPerHost: 2})
	to := map[string]int{}
	for _, st := range plan.GetSteps() {
		to[st.GetToHost()]++
	}
	if len(plan.GetSteps()) != 4 || len(to) != 1 || plan.GetWaves() != 2 {
		t.Fatalf("plan %v in %d waves; want four moves to one host, in two waves", plan.GetSteps(), plan.GetWaves())
	}
	thirdStartsBeforeSecondEnds(t, h, m, plan.GetId()) // before: the third waited for the second
}

// TestDemandPastCapacityIsRelieved: an agent's cpu_demand above 1 makes a
// host busier than its cores in the plan, so that relieve 1 sheds what it
// lacks; the busy share alone stops at 1, and the same host then looks
// merely full. h0 (10 cores, 2 vCPUs a core) runs four 4-vCPU instances
// tagged capped (ceiling 0.8). Utilisation 1: 10 busy cores, 2.5 each,
// within relieve 1: nothing moves. Demand 1.5: 15 cores asked for, 3.75
// each: two move to h1 (7.5 busy there, under its 8-core ceiling; 7.5 left).
func TestDemandPastCapacityIsRelieved(t *testing.T) {
	for _, c := range []struct {
		demand   float64 // 0: the agent reports none
		steps    int
		repaired []string
	}{{0, 0, nil}, {1.5, 2, []string{"h0"}}} {
		view := hostview.New(hostview.Options{StaleAfter: time.Hour})
		now := time.Now()
		inv := hostview.Inventory{At: now}
		for _, n := range []string{"h0", "h1"} {
			inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: n, Nodename: n, ISA: "x86_64", State: "up",
				Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 2, MemoryMB: 65536, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
		}
		for i := range 4 {
			id := fmt.Sprintf("i%d", i)
			inv.Instances = append(inv.Instances, hostview.Instance{UUID: id, Name: id, Host: "h0", Node: "h0", State: "active", PowerState: "running",
				Tag: "capped", Flavor: hostview.Flavor{Name: "f", VCPUs: 4, MemoryMB: 2048, RootGB: 10}})
		}
		view.Reconcile(inv)
		s := hostview.PowerSample{Host: "h0", At: now, Utilization: 1, HasUtil: true}
		if c.demand > 0 {
			s.Demand, s.HasDemand = c.demand, true
		}
		view.Apply(1, &hostview.Event{Kind: hostview.KindPower, Type: "ecrae.metrics", Timestamp: now, Power: s})
		view.Apply(2, &hostview.Event{Kind: hostview.KindPower, Type: "ecrae.metrics", Timestamp: now,
			Power: hostview.PowerSample{Host: "h1", At: now, Utilization: 0, HasUtil: true}})
		h := newRB(t, view, nil)
		resp, err := h.client.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{Seed: 1, Relieve: 1})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPlan()
		if len(p.GetSteps()) != c.steps || !slices.Equal(p.GetRepairedHosts(), c.repaired) || len(p.GetOverloadedHosts()) != 0 {
			t.Errorf("demand %g: %d steps, repaired %v, overloaded %v; want %d steps, repaired %v, none overloaded",
				c.demand, len(p.GetSteps()), p.GetRepairedHosts(), p.GetOverloadedHosts(), c.steps, c.repaired)
		}
	}
}
