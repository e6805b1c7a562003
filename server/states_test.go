package server

import (
	"context"
	"fmt"
	"strings"
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

func ref(host string, d uint64) *ecraev1.HostState {
	return &ecraev1.HostState{Host: host, StateRef: d}
}

// A pass that names unchanged hosts by reference gets the answers the same
// pass with full states gets, over gRPC.
func TestStateRefsAnswerAsFullStates(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	full := []*ecraev1.HostState{withDigest(novaHost("h-old", "x86_64", 5, 5), 11), withDigest(novaHost("h-arm", "aarch64", 2, 2), 12), withDigest(novaHost("full", "x86_64", 10, 10), 13)}
	first, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: full, PassedOnly: true})
	if err != nil {
		t.Fatal(err)
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
	if got, want := again.GetPassed(), first.GetPassed(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[2] {
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

// A reference the service does not hold, or one that names another host
// than the state it stands for, is FAILED_PRECONDITION naming the entry: the
// shim then sends full states. The caller's request is left as it was.
func TestUnknownStateRefIsFailedPrecondition(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	if _, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{withDigest(novaHost("h-old", "x86_64", 0, 0), 21)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		hosts []*ecraev1.HostState
		want  string
	}{
		{"never sent", []*ecraev1.HostState{ref("h-old", 21), ref("h-arm", 99)}, `hosts[1].state_ref: state 0000000000000063 of host "h-arm" is not held here`},
		{"another host's state", []*ecraev1.HostState{ref("h-arm", 21)}, `hosts[0].state_ref: state 0000000000000015 of host "h-arm"`},
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
}

// The cache keeps the newest statesPerHost states of a host, and at most its
// limit in all: past it a quarter goes. References to what went fail as
// unknown.
func TestStateCacheIsBounded(t *testing.T) {
	stats := NewMetrics(nil)
	unknown := func(c *stateCache, host string, d uint64) bool {
		_, _, err := c.resolve([]*ecraev1.HostState{ref(host, d)}, stats)
		return status.Code(err) == codes.FailedPrecondition
	}

	// Nine states of one host (nine compute reports, say): the first goes.
	c := newStateCache(100)
	for d := uint64(1); d <= statesPerHost+1; d++ {
		if _, _, err := c.resolve([]*ecraev1.HostState{withDigest(novaHost("h", "x86_64", int32(d), 0), d)}, stats); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.states) != statesPerHost || !unknown(c, "h", 1) || unknown(c, "h", 2) || unknown(c, "h", statesPerHost+1) {
		t.Errorf("%d states held; want the newest %d of host h", len(c.states), statesPerHost)
	}
	// Sending a held state again keeps one copy.
	if _, _, err := c.resolve([]*ecraev1.HostState{withDigest(novaHost("h", "x86_64", 2, 0), 2)}, stats); err != nil || len(c.states) != statesPerHost || len(c.recent["h"]) != statesPerHost {
		t.Errorf("a state sent twice: %v, %d held, %d recent", err, len(c.states), len(c.recent["h"]))
	}

	// Nine hosts in a cache of eight: the ninth makes room by dropping
	// 8/4 = 2 of the others, so seven are held.
	c = newStateCache(8)
	var sent []*ecraev1.HostState
	for d := uint64(1); d <= 9; d++ {
		sent = append(sent, withDigest(novaHost(fmt.Sprintf("h%d", d), "x86_64", 0, 0), d))
	}
	if _, _, err := c.resolve(sent, stats); err != nil {
		t.Fatal(err)
	}
	if len(c.states) != 7 || len(c.recent) != 7 {
		t.Fatalf("%d states of %d hosts held, want 7 of 7", len(c.states), len(c.recent))
	}
	missing := 0
	for d := uint64(1); d <= 9; d++ {
		if unknown(c, fmt.Sprintf("h%d", d), d) {
			missing++
		}
	}
	if missing != 2 || unknown(c, "h9", 9) {
		t.Errorf("%d references unknown, want the 2 evicted (and the newest held)", missing)
	}
}
