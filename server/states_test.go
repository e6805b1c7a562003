package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// withDigest is h as the shim sends it the first time: the state and its
// digest.
func withDigest(h *ecraev1.HostState, d uint64) *ecraev1.HostState {
	h = proto.Clone(h).(*ecraev1.HostState)
	h.StateDigest = d
	return h
}

// ref is the reference to a novaHost state (whose nodename is its name).
func ref(host string, d uint64) *ecraev1.HostState {
	return &ecraev1.HostState{Host: host, Nodename: host, StateRef: d}
}

// A pass that names unchanged hosts by reference gets the answers the same
// pass with full states gets, over gRPC; every answer says the service holds
// the states (clients send references only then).
func TestStateRefsAnswerAsFullStates(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	full := []*ecraev1.HostState{withDigest(novaHost("h-old", "x86_64", 5, 5), 11), withDigest(novaHost("h-arm", "aarch64", 2, 2), 12), withDigest(novaHost("full", "x86_64", 10, 10), 13)}
	first, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: full, PassedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetStatesHeld() {
		t.Error("FilterHosts does not say it holds the states")
	}
	// Two references and one host sent again in full (it changed: one more
	// vCPU used), with a new digest.
	changed := withDigest(novaHost("h-arm", "aarch64", 3, 3), 14)
	refs := []*ecraev1.HostState{ref("h-old", 11), changed, ref("full", 13)}
	again, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: refs, PassedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// h-old and h-arm have room, full has none, as before.
	if got, want := again.GetPassed(), first.GetPassed(); len(got) != 3 || len(want) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[2] {
		t.Errorf("with references: %v, with full states: %v", got, want)
	}
	plain := []*ecraev1.HostState{full[0], changed, full[2]}
	wantScores, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: plain, ScoresOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	gotScores, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{ref("h-old", 11), ref("h-arm", 14), ref("full", 13)}, ScoresOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !gotScores.GetStatesHeld() || len(gotScores.GetScoreValues()) != 3 || len(wantScores.GetScoreValues()) != 3 {
		t.Fatalf("scores by reference %v (held %v), in full %v", gotScores.GetScoreValues(), gotScores.GetStatesHeld(), wantScores.GetScoreValues())
	}
	for i, s := range wantScores.GetScoreValues() {
		if gotScores.GetScoreValues()[i] != s {
			t.Errorf("host %d: %v by reference, %v in full", i, gotScores.GetScoreValues()[i], s)
		}
	}
	// The full verdicts name the hosts the references stand for.
	verdicts, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{ref("full", 13)}})
	if err != nil {
		t.Fatal(err)
	}
	if v := verdicts.GetVerdicts()[0]; v.GetHost() != "full" || v.GetNodename() != "full" || v.GetFilter() != "capacity" {
		t.Errorf("verdict for a reference: %v", v)
	}
}

// A state sent by reference is converted once per KB revision: after a KB
// write maps the host to another architecture, its reference scores as the
// new architecture.
func TestStateRefFollowsKBChanges(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	arch := func(hs *ecraev1.HostState) string {
		t.Helper()
		resp, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{hs}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetScores()[0].GetArchitecture()
	}
	// h-new is in no KB host entry: the x86_64 default (the only x86 model).
	if got := arch(withDigest(novaHost("h-new", "x86_64", 1, 1), 31)); got != "default-x86_64" {
		t.Fatalf("first call: %q", got)
	}
	if got := arch(ref("h-new", 31)); got != "default-x86_64" {
		t.Fatalf("by reference: %q", got)
	}
	if _, err := h.kb.CreateHost(ctx, &ecraev1.CreateHostRequest{Host: &ecraev1.Host{Name: "h-new", Architecture: "old"}}); err != nil {
		t.Fatal(err)
	}
	if got := arch(ref("h-new", 31)); got != "old" {
		t.Errorf("by reference after the KB write: %q, want old", got)
	}
}

// A digest already held stands for the held state only when the state sent
// with it is that state: otherwise the new one replaces it, is checked, and
// is what the call (and later references) see.
func TestReusedDigestTakesTheNewState(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	filter := func(hs ...*ecraev1.HostState) (*ecraev1.FilterHostsResponse, error) {
		return h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: hs})
	}
	if _, err := filter(withDigest(novaHost("h-old", "x86_64", 0, 0), 7)); err != nil {
		t.Fatal(err)
	}
	// Digest 7 again, for the same host now full (10 of 10 vCPUs used).
	resp, err := filter(withDigest(novaHost("h-old", "x86_64", 10, 10), 7))
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVerdicts()[0]; v.GetPassed() || v.GetFilter() != "capacity" {
		t.Errorf("the full host passed on the held state's conversion: %v", v)
	}
	if resp, err = filter(ref("h-old", 7)); err != nil || resp.GetVerdicts()[0].GetPassed() {
		t.Errorf("a reference must now stand for the full host: %v %v", err, resp.GetVerdicts())
	}
	// Digest 7 for another host: answered as that host, not as h-old.
	if resp, err = filter(withDigest(novaHost("h-arm", "aarch64", 0, 0), 7)); err != nil || resp.GetVerdicts()[0].GetHost() != "h-arm" {
		t.Errorf("answered as %v (%v)", resp.GetVerdicts(), err)
	}
	// ...and an invalid state is refused even with a held digest.
	bad := withDigest(novaHost("h-arm", "aarch64", 0, 0), 7)
	bad.VcpusTotal = -1
	if _, err := filter(bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid state with a held digest: %v", err)
	}
}

// A reference the service does not hold, or one that names another node
// than the state it stands for, is FAILED_PRECONDITION naming the entry: the
// shim then sends full states. The caller's request is left as it was; a
// call over the host limit is refused before any state is remembered.
func TestUnknownStateRefIsFailedPrecondition(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	if _, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{withDigest(novaHost("h-old", "x86_64", 0, 0), 21)}}); err != nil {
		t.Fatal(err)
	}
	otherNode := ref("h-old", 21)
	otherNode.Nodename = "h-old-2"
	for _, c := range []struct {
		name  string
		hosts []*ecraev1.HostState
		want  string
	}{
		{"never sent", []*ecraev1.HostState{ref("h-old", 21), ref("h-arm", 99)}, `hosts[1].state_ref: state 0000000000000063 of host "h-arm" (node "h-arm") is not held here`},
		{"another host's state", []*ecraev1.HostState{ref("h-arm", 21)}, `hosts[0].state_ref: state 0000000000000015 of host "h-arm"`},
		{"another node's state", []*ecraev1.HostState{otherNode}, `hosts[0].state_ref: state 0000000000000015 of host "h-old" (node "h-old-2")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: c.hosts})
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), c.want) {
				t.Errorf("err = %v, want FailedPrecondition with %q", err, c.want)
			}
		})
	}
	hosts := []*ecraev1.HostState{ref("h-old", 21)}
	if _, _, err := h.srv.states.resolve(hosts, h.srv.stats); err != nil || hosts[0].GetVcpusTotal() != 0 || hosts[0].GetStateRef() != 21 {
		t.Errorf("resolve changed its input or failed: %v %v", err, hosts[0])
	}

	srv, err := New(Config{MaxHosts: 2}, h.store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	three := []*ecraev1.HostState{withDigest(novaHost("a", "x86_64", 0, 0), 1), withDigest(novaHost("b", "x86_64", 0, 0), 2), withDigest(novaHost("c", "x86_64", 0, 0), 3)}
	if _, err := srv.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: three}); status.Code(err) != codes.InvalidArgument || len(srv.states.states) != 0 {
		t.Errorf("oversized call: %v, %d states remembered", err, len(srv.states.states))
	}
}

// The cache keeps the statesPerNode most recently used states of a node
// (host and nodename: an Ironic compute host has many nodes), and at most
// its limit in all, past which the least recently used quarter goes.
// References to what went fail as unknown.
func TestStateCacheIsBounded(t *testing.T) {
	stats := NewMetrics(nil)
	send := func(c *stateCache, hs ...*ecraev1.HostState) error {
		_, _, err := c.resolve(hs, stats)
		return err
	}
	known := func(c *stateCache, hs *ecraev1.HostState) bool {
		_, _, err := c.resolve([]*ecraev1.HostState{hs}, stats)
		return status.Code(err) != codes.FailedPrecondition
	}

	// Nine states of one node: the oldest goes, unless it was used since.
	c := newStateCache(100)
	for d := uint64(1); d <= statesPerNode; d++ {
		if err := send(c, withDigest(novaHost("h", "x86_64", int32(d), 0), d)); err != nil {
			t.Fatal(err)
		}
	}
	if !known(c, ref("h", 1)) { // used again: 2 is now the least recent
		t.Fatal("state 1 lost before the node had more than statesPerNode")
	}
	if err := send(c, withDigest(novaHost("h", "x86_64", 9, 0), 9)); err != nil {
		t.Fatal(err)
	}
	if len(c.states) != statesPerNode || !known(c, ref("h", 1)) || known(c, ref("h", 2)) || !known(c, ref("h", 9)) {
		t.Errorf("%d states held; want the %d most recently used of node h, without state 2", len(c.states), statesPerNode)
	}
	// Sending a held state again keeps one copy.
	if err := send(c, withDigest(novaHost("h", "x86_64", 3, 0), 3)); err != nil || len(c.states) != statesPerNode || len(c.recent[node{"h", "h"}].digests) != statesPerNode {
		t.Errorf("a state sent twice: %v, %d held, %d recent", err, len(c.states), len(c.recent[node{"h", "h"}].digests))
	}

	// Twenty Ironic nodes under one compute host: all held, all usable.
	c = newStateCache(100)
	var nodes []*ecraev1.HostState
	for i := range 20 {
		n := novaHost("ironic-conductor", "x86_64", 0, 0)
		n.Nodename = fmt.Sprintf("node-%02d", i)
		nodes = append(nodes, withDigest(n, uint64(100+i)))
	}
	if err := send(c, nodes...); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if !known(c, &ecraev1.HostState{Host: n.GetHost(), Nodename: n.GetNodename(), StateRef: uint64(100 + i)}) {
			t.Errorf("node %s lost", n.GetNodename())
		}
	}

	// Nine hosts in a cache of eight: the ninth makes room by dropping the
	// 8/4 = 2 least recently used (h2 and h4: h1 and h3 were used since).
	c = newStateCache(8)
	for d := uint64(1); d <= 8; d++ {
		if err := send(c, withDigest(novaHost(fmt.Sprintf("h%d", d), "x86_64", 0, 0), d)); err != nil {
			t.Fatal(err)
		}
	}
	if !known(c, ref("h1", 1)) || !known(c, ref("h3", 3)) {
		t.Fatal("h1, h3 lost")
	}
	if err := send(c, withDigest(novaHost("h9", "x86_64", 0, 0), 9)); err != nil {
		t.Fatal(err)
	}
	var lost []string
	for d := uint64(1); d <= 9; d++ {
		if name := fmt.Sprintf("h%d", d); !known(c, ref(name, d)) {
			lost = append(lost, name)
		}
	}
	if fmt.Sprint(lost) != "[h2 h4]" || len(c.states) != 7 || len(c.recent) != 7 {
		t.Errorf("lost %v with %d states of %d nodes held; want [h2 h4], 7 of 7", lost, len(c.states), len(c.recent))
	}
}

// TestStateRefsResolveConcurrently: calls made only of references resolve
// under the read lock while other calls remember new states of the same
// nodes (which makes the first path give way to the locked one): every
// answer is the state its digest was sent with, or FailedPrecondition once
// the node's ring has let it go.
func TestStateRefsResolveConcurrently(t *testing.T) {
	c := newStateCache(64)
	stats := NewMetrics(nil)
	hosts := benchHosts(16)
	for i, h := range hosts {
		h.StateDigest = uint64(i + 1)
	}
	if _, _, err := c.resolve(hosts, stats); err != nil {
		t.Fatal(err)
	}
	refs := make([]*ecraev1.HostState, len(hosts))
	for i, h := range hosts {
		refs[i] = &ecraev1.HostState{Host: h.GetHost(), Nodename: h.GetNodename(), StateRef: h.GetStateDigest()}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				out, memo, err := c.resolve(refs, stats)
				if err != nil {
					continue // evicted by the writer below: the shim resends
				}
				for i, h := range out {
					if h.GetStateDigest() != refs[i].GetStateRef() || memo[i] == nil || memo[i].state != h {
						t.Errorf("ref %d resolved to digest %d", refs[i].GetStateRef(), h.GetStateDigest())
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for k := range 200 {
			h := proto.Clone(hosts[k%len(hosts)]).(*ecraev1.HostState)
			h.VcpusUsed++
			h.StateDigest = uint64(1000 + k)
			if _, _, err := c.resolve([]*ecraev1.HostState{h}, stats); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
