package server

import (
	"context"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/hostview"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rulesKBFull puts the model among the architectures, the tag among the
// tags and the host among the hosts (testKB's sections end in that order).
func rulesKBFull() string {
	kb := strings.Replace(testKB, "tags:\n", "  - {name: dell-r740-xeon-8280, isa: x86_64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,\n     power_watts: [60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160], source: test}\ntags:\n", 1)
	kb = strings.Replace(kb, "flavors:\n", "  - name: web-frontend\n    mode: hint\n    candidates: [{architecture: arm, performance_factor: 1}]\nflavors:\n", 1)
	return kb + "  - {name: h-dell, architecture: dell-r740-xeon-8280}\n  - {name: h-dell2, architecture: dell-r740-xeon-8280}\n  - {name: h-arm2, architecture: arm}\n"
}

// TestLiveMigrationStaysOnCandidates: Nova asks EcraeFilter about a live
// migration whose call holds the one requested host. The instance runs on
// its hint's candidate (arm) and another arm host has room: a move to a
// dell is refused, although a boot offered a dell alone relaxes the hint.
// Once no candidate of the cluster can take it, a move off a non-candidate
// is relaxed again.
func TestLiveMigrationStaysOnCandidates(t *testing.T) {
	h := newLiveHarnessKB(t, rulesKBFull())
	up := func(name, isa string) hostview.HostInventory {
		return hostview.HostInventory{Name: name, State: "up", ISA: isa,
			Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 65536, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}}
	}
	web := hostview.Flavor{Name: "small", VCPUs: 1, MemoryMB: 1024, RootGB: 10}
	h.view.Reconcile(hostview.Inventory{At: t0,
		Hosts: []hostview.HostInventory{up("h-arm", "aarch64"), up("h-arm2", "aarch64"), up("h-dell", "x86_64"), up("h-dell2", "x86_64")},
		Instances: []hostview.Instance{
			{UUID: "on-arm", Host: "h-arm", Flavor: web, Tag: "web-frontend", State: "active"},
			{UUID: "on-dell", Host: "h-dell", Flavor: web, Tag: "web-frontend", State: "active"},
		}})
	req := func(uuid string, move bool) *ecraev1.FilterHostsRequest {
		in := small("web-frontend")
		in.InstanceUuid, in.Move = uuid, move
		return &ecraev1.FilterHostsRequest{Instance: in, Hosts: []*ecraev1.HostState{novaHost("h-dell2", "x86_64", 1, 1)}}
	}
	ctx := context.Background()
	verdict := func(r *ecraev1.FilterHostsRequest) *ecraev1.HostVerdict {
		t.Helper()
		resp, err := h.place.FilterHosts(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetVerdicts()[0]
	}
	if v := verdict(req("on-arm", true)); v.GetPassed() || v.GetFilter() != "candidates" {
		t.Errorf("live migration of on-arm to h-dell2: %v, want refused by candidates", v)
	}
	if v := verdict(req("on-arm", false)); !v.GetPassed() {
		t.Errorf("a boot offered h-dell2 alone: %v, want passed (hint relaxed in the call)", v)
	}
	if v := verdict(req("on-dell", true)); v.GetPassed() {
		t.Errorf("on-dell to h-dell2 while h-arm2 has room: %v, want refused", v)
	}
	// The arm hosts are disabled: no candidate can take it; a move off the
	// dell may relax (to another non-candidate), one off arm still not.
	h.view.Reconcile(hostview.Inventory{At: t0,
		Hosts: []hostview.HostInventory{
			func() hostview.HostInventory { x := up("h-arm", "aarch64"); x.Disabled = true; return x }(),
			func() hostview.HostInventory { x := up("h-arm2", "aarch64"); x.Disabled = true; return x }(),
			up("h-dell", "x86_64"), up("h-dell2", "x86_64")},
		Instances: []hostview.Instance{
			{UUID: "on-arm", Host: "h-arm", Flavor: web, Tag: "web-frontend", State: "active"},
			{UUID: "on-dell", Host: "h-dell", Flavor: web, Tag: "web-frontend", State: "active"},
		}})
	if v := verdict(req("on-dell", true)); !v.GetPassed() {
		t.Errorf("on-dell with every candidate disabled: %v, want passed (relaxed against the cluster)", v)
	}
	if v := verdict(req("on-arm", true)); v.GetPassed() {
		t.Errorf("on-arm leaves its candidate: %v, want refused", v)
	}
	// A host the view knows disabled is refused though Nova offers it.
	r := req("", false)
	r.Hosts = []*ecraev1.HostState{novaHost("h-arm2", "aarch64", 1, 1)}
	if v := verdict(r); v.GetPassed() || v.GetFilter() != "host" {
		t.Errorf("disabled h-arm2: %v, want refused by host", v)
	}
}

// TestFilterServerGroups: the group policy the shim sends is a rule; a bad
// one is InvalidArgument naming the field and quoting at most 100 bytes.
func TestFilterServerGroups(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	hosts := []*ecraev1.HostState{novaHost("h-old", "x86_64", 1, 1), novaHost("h-arm", "aarch64", 1, 1)}
	in := small("")
	in.GroupPolicy, in.GroupHosts = "anti-affinity", []string{"h-old"}
	resp, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: in, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVerdicts(); v[0].GetPassed() || v[0].GetFilter() != "group" || !v[1].GetPassed() {
		t.Errorf("anti-affinity with a member on h-old: %v", v)
	}
	in.GroupPolicy = "affinity"
	resp, err = h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: in, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVerdicts(); !v[0].GetPassed() || v[1].GetPassed() {
		t.Errorf("affinity with the members on h-old: %v", v)
	}
	in.GroupPolicy = "soft-anti-affinity" // a weigher's preference, no rule
	resp, err = h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: in, Hosts: hosts})
	if err != nil || !resp.GetVerdicts()[0].GetPassed() {
		t.Errorf("soft policy: %v %v", resp, err)
	}
	in.GroupPolicy = strings.Repeat("x", 5000)
	_, err = h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: in, Hosts: hosts})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "instance.group_policy") || len(st.Message()) > 300 {
		t.Errorf("bad policy: %v", err)
	}
}

// TestWhatIfKeepsServerGroups: a what-if item's anti-affinity group keeps
// it off the hosts of the group's members.
func TestWhatIfKeepsServerGroups(t *testing.T) {
	h := newHarness(t, testKB)
	in := small("")
	// Each way round, so one of them goes against the scorers' choice.
	for member, want := range map[string]string{"h-old": "h-arm", "h-arm": "h-old"} {
		in.GroupPolicy, in.GroupHosts = "anti-affinity", []string{member}
		resp, err := h.place.WhatIf(context.Background(), &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{in},
			Hosts: []*ecraev1.HostState{novaHost("h-old", "x86_64", 5, 5), novaHost("h-arm", "aarch64", 5, 5)}})
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetPlacements()[0]; p.GetHost() != want {
			t.Errorf("placed on %q, want %s (a member runs on %s)", p.GetHost(), want, member)
		}
	}
	in.GroupPolicy = "bogus"
	_, err := h.place.WhatIf(context.Background(), &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{in}})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "instances[0].group_policy") {
		t.Errorf("bad policy: %v", err)
	}
}
