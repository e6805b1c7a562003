package optimizer

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// with applies edits to a copy of h.
func with(h Host, edit func(*Host)) Host {
	edit(&h)
	return h
}

func TestFilterHostsOneHost(t *testing.T) {
	pass := Verdict{Passed: true}
	tests := []struct {
		name string
		req  Request
		prof Profile
		h    Host
		want Verdict
	}{
		// capacity. small needs 4 vCPUs, 4096 MB RAM, 40 GB disk.
		{"fits", small, Profile{}, host("a", xeon, 8), pass}, // 16×1 − 8 = 8 free vCPUs
		{"vCPUs", small, Profile{}, host("a", xeon, 14),
			Verdict{Filter: "capacity", Reason: "needs 4 vCPUs, 2 free of 16×1.0"}}, // 16×1 − 14 = 2
		{"vCPU ratio 0 means 1", small, Profile{}, with(host("a", xeon, 14), func(h *Host) { h.CPURatio = 0 }),
			Verdict{Filter: "capacity", Reason: "needs 4 vCPUs, 2 free of 16×1.0"}},
		{"vCPU overcommit short", small, Profile{}, with(host("a", xeon, 30), func(h *Host) { h.CPURatio = 2 }),
			Verdict{Filter: "capacity", Reason: "needs 4 vCPUs, 2 free of 16×2.0"}}, // 16×2 − 30 = 2
		{"vCPU overcommit fits", small, Profile{}, with(host("a", xeon, 28), func(h *Host) { h.CPURatio = 2 }), pass}, // 32 − 28 = 4
		{"RAM", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.TotalRAMMB, h.FreeRAMMB = 16384, 2048 }),
			Verdict{Filter: "capacity", Reason: "needs 4096 MB RAM, 2048 MB free of 16384 MB×1.0"}},
		{"RAM ratio 1.5", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.TotalRAMMB, h.FreeRAMMB, h.RAMRatio = 16384, 2048, 1.5 }),
			pass}, // 2048 + 16384×0.5 = 10240 ≥ 4096
		{"RAM ratio 0 means 1", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.TotalRAMMB, h.FreeRAMMB, h.RAMRatio = 16384, 2048, 0 }),
			Verdict{Filter: "capacity", Reason: "needs 4096 MB RAM, 2048 MB free of 16384 MB×1.0"}},
		{"disk", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.TotalDiskGB, h.FreeDiskMB = 100, 20480 }),
			Verdict{Filter: "capacity", Reason: "needs 40 GB disk, 20.0 GB free of 100 GB×1.0"}}, // 20480 MB = 20 GB
		{"disk ratio 1.5", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.TotalDiskGB, h.FreeDiskMB, h.DiskRatio = 100, 20480, 1.5 }),
			pass}, // 20480 + 100×1024×0.5 = 71680 MB ≥ 40960
		{"NaN ratio means 1", small, Profile{}, with(host("a", xeon, 14), func(h *Host) { h.CPURatio = nan }),
			Verdict{Filter: "capacity", Reason: "needs 4 vCPUs, 2 free of 16×1.0"}},
		{"zero-size request fits a full host", Request{}, Profile{}, host("a", xeon, 16), pass},

		// isa
		{"image amd64 on x86_64", Request{ImageISA: "amd64"}, Profile{}, host("a", xeon, 8), pass},
		{"image arm64 on aarch64", Request{ImageISA: "arm64"}, Profile{}, host("a", altra, 8), pass},
		{"image x86_64 on aarch64", Request{ImageISA: "x86_64"}, Profile{}, host("a", altra, 8),
			Verdict{Filter: "isa", Reason: "image needs x86_64, host is aarch64"}},
		{"host ISA beats model ISA", Request{ImageISA: "x86_64"}, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.ISA = "ppc64el" }),
			Verdict{Filter: "isa", Reason: "image needs x86_64, host is ppc64le"}},
		{"host ISA unknown", Request{ImageISA: "x86_64"}, Profile{}, host("a", &Model{Cores: 16}, 8),
			Verdict{Filter: "isa", Reason: "image needs x86_64, host ISA unknown"}},
		{"image without ISA runs anywhere", Request{}, Profile{}, host("a", &Model{}, 8), pass},

		// candidates (hint relaxation needs several hosts: see below)
		{"no candidate list: every host", small, Profile{Tag: "any"}, host("a", xeon, 8), pass},
		{"exact by architecture", small, Profile{Tag: "arm", Mode: ModeExact, Candidates: []Candidate{{Architecture: "altra"}}},
			host("a", altra, 8), pass},
		{"exact by ISA", small, Profile{Tag: "x", Mode: ModeExact, Candidates: []Candidate{{ISA: "x64"}}}, host("a", xeon, 8), pass},
		{"exact rejects others", small, Profile{Tag: "arm", Mode: ModeExact, Candidates: []Candidate{{Architecture: "altra"}, {ISA: "ppc64le"}}},
			host("a", xeon, 8), Verdict{Filter: "candidates", Reason: "not a candidate for tag arm (exact: altra, any ppc64le)"}},

		// ceiling. xeon 16 threads, small adds Δu = 0.25.
		{"profile ceiling", small, web, measured(host("a", xeon, 8), 0.7),
			Verdict{Filter: "ceiling", Reason: "would reach 95.0% CPU, over the 80.0% ceiling for tag web"}}, // 0.7 + 0.25 > 0.8
		{"exactly at the ceiling", small, web, measured(host("a", xeon, 8), 0.55), pass},                    // 0.55 + 0.25 = 0.8
		{"candidate ceiling overrides the profile's", small, web, measured(host("a", altra, 8), 0.6), pass}, // 0.85 ≤ 0.9
		{"candidate ceiling", small, web, measured(host("a", altra, 8), 0.7),
			Verdict{Filter: "ceiling", Reason: "would reach 95.0% CPU, over the 90.0% ceiling for tag web"}},
		{"no ceiling", small, Profile{}, measured(host("a", xeon, 8), 0.99), pass},

		// host state: what may receive at all.
		{"disabled", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.Disabled = true }),
			Verdict{Filter: "host", Reason: "host is disabled or down"}},
		{"draining", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.Draining = "p-1" }),
			Verdict{Filter: "host", Reason: "host is being emptied by rebalance plan p-1"}},
		// Stale passes: Nova's call carries the host's resources (a plan,
		// on the view alone, refuses it: TestReceives).
		{"stale boots", small, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.Stale = true }), pass},
		{"stale takes a move", Request{VCPUs: 4}, Profile{}, with(host("a", xeon, 8), func(h *Host) { h.Stale = true }), pass},

		// server groups: the hosts of the other members.
		{"anti-affinity: a member here", Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAntiAffinity, Hosts: []string{"b", "a"}}}, Profile{},
			host("a", xeon, 8), Verdict{Filter: "group", Reason: "anti-affinity group: another member runs here"}},
		{"anti-affinity: none here", Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAntiAffinity, Hosts: []string{"b"}}}, Profile{},
			host("a", xeon, 8), pass},
		{"affinity: members elsewhere", Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAffinity, Hosts: []string{"b"}}}, Profile{},
			host("a", xeon, 8), Verdict{Filter: "group", Reason: "affinity group: its other members run elsewhere"}},
		{"affinity: members here", Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAffinity, Hosts: []string{"a"}}}, Profile{},
			host("a", xeon, 8), pass},
		{"affinity: first member", Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAffinity}}, Profile{}, host("a", xeon, 8), pass},

		// a known busy share replaces vCPUs × CPU load: 1.6 busy cores
		// add 1.6/16 = 0.1, 0.65 + 0.1 ≤ 0.8.
		{"measured busy share", Request{VCPUs: 4, Busy: 1.6, BusyKnown: true}, web, measured(host("a", xeon, 8), 0.65), pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FilterHosts(tc.req, tc.prof, []Host{tc.h})
			if d := cmp.Diff([]Verdict{tc.want}, got); d != "" {
				t.Errorf("FilterHosts (-want +got):\n%s", d)
			}
			// The quiet form decides the same, and says nothing.
			quiet := tc.want
			quiet.Reason = ""
			if d := cmp.Diff([]Verdict{quiet}, FilterHostsQuiet(tc.req, tc.prof, []Host{tc.h})); d != "" {
				t.Errorf("FilterHostsQuiet (-want +got):\n%s", d)
			}
		})
	}
}

func TestFilterHostsHint(t *testing.T) {
	full := host("arm-full", altra, 16)             // 0 vCPUs free
	hot := measured(host("arm-hot", altra, 8), 0.8) // 0.8 + 0.25 = 1.05 > its 0.9 ceiling
	arm := host("arm", altra, 8)
	x86 := host("x86", xeon, 8)
	ppc := with(host("ppc", xeon, 8), func(h *Host) { h.ISA = "ppc64le" })
	armOnly := []Candidate{{Architecture: "altra", PerformanceFactor: 0.7, UtilizationCeiling: 0.9}}
	hint := Profile{Tag: "arm", Candidates: armOnly}
	exact := Profile{Tag: "arm", Mode: ModeExact, Candidates: armOnly}
	relaxed := Verdict{Passed: true, Reason: "hint relaxed: no candidate architecture can take it"}
	notCand := Verdict{Filter: "candidates", Reason: "not a candidate for tag arm; a candidate (altra) can take it"}
	noRoom := Verdict{Filter: "capacity", Reason: "needs 4 vCPUs, 0 free of 16×1.0"}
	tooHot := Verdict{Filter: "ceiling", Reason: "would reach 105.0% CPU, over the 90.0% ceiling for tag arm"}
	tests := []struct {
		name  string
		prof  Profile
		req   Request
		hosts []Host
		want  []Verdict
	}{
		{"a candidate can take it: the others are rejected", hint, small,
			[]Host{x86, arm, ppc}, []Verdict{notCand, {Passed: true}, notCand}},
		{"the candidate is full: the hint is relaxed", hint, small,
			[]Host{x86, full, ppc}, []Verdict{relaxed, noRoom, relaxed}},
		// The ceiling stage comes after candidates, but a candidate that
		// would break its ceiling cannot take the instance either.
		{"the candidate is over its ceiling: the hint is relaxed", hint, small,
			[]Host{x86, hot}, []Verdict{relaxed, tooHot}},
		{"the candidate has the wrong ISA: the hint is relaxed", hint, Request{VCPUs: 4, ImageISA: "x86_64"},
			[]Host{x86, arm}, []Verdict{relaxed, {Filter: "isa", Reason: "image needs x86_64, host is aarch64"}}},
		{"a relaxed host still meets the profile ceiling", Profile{Tag: "arm", Candidates: armOnly, UtilizationCeiling: 0.8}, small,
			[]Host{measured(x86, 0.7), full}, []Verdict{{Filter: "ceiling", Reason: "would reach 95.0% CPU, over the 80.0% ceiling for tag arm"}, noRoom}},
		{"exact never relaxes", exact, small,
			[]Host{x86, full}, []Verdict{{Filter: "candidates", Reason: "not a candidate for tag arm (exact: altra)"}, noRoom}},
		{"unknown mode counts as hint", Profile{Tag: "arm", Mode: Mode(7), Candidates: armOnly}, small,
			[]Host{x86, full}, []Verdict{relaxed, noRoom}},
		{"no hosts", hint, small, nil, []Verdict{}},

		// A move's call may hold the requested destination alone: the
		// call does not decide the relax, the request does (MoveRelax).
		{"a move never relaxes on its own call", hint, Request{VCPUs: 4, Relax: RelaxNever},
			[]Host{x86}, []Verdict{{Filter: "candidates", Reason: "not a candidate for tag arm; a move keeps to the candidates (altra)"}}},
		{"a move relaxed by the cluster", hint, Request{VCPUs: 4, Relax: RelaxAllowed},
			[]Host{x86, arm}, []Verdict{relaxed, {Passed: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FilterHosts(tc.req, tc.prof, tc.hosts)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("FilterHosts (-want +got):\n%s", d)
			}
			quiet := make([]Verdict, len(tc.want))
			for i, v := range tc.want {
				quiet[i] = Verdict{Passed: v.Passed, Filter: v.Filter}
			}
			if d := cmp.Diff(quiet, FilterHostsQuiet(tc.req, tc.prof, tc.hosts)); d != "" {
				t.Errorf("FilterHostsQuiet (-want +got):\n%s", d)
			}
		})
	}
}

// TestGroupManyHosts: a group with many member hosts is looked up in a set;
// it decides as the scan does.
func TestGroupManyHosts(t *testing.T) {
	var members []string
	for i := range 40 {
		members = append(members, fmt.Sprint("m", i))
	}
	hosts := []Host{host("m7", xeon, 8), host("free", xeon, 8)}
	for _, n := range []int{3, 40} { // scanned, then a set
		anti := FilterHosts(Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAntiAffinity, Hosts: members[:n]}}, Profile{}, hosts)
		aff := FilterHosts(Request{VCPUs: 4, Group: GroupRule{Policy: PolicyAffinity, Hosts: members[:n]}}, Profile{}, hosts)
		if anti[0].Passed == (n > 7) || !anti[1].Passed || aff[0].Passed != (n > 7) || aff[1].Passed {
			t.Errorf("%d members: anti-affinity %+v, affinity %+v", n, anti, aff)
		}
	}
}

// TestStageThatDoesNotApplyPassesEverything: a stage runFilters skips for a
// request (applies is false) would have passed every host without a word,
// whatever the host: over requests with and without a group, an image ISA,
// candidates, ceilings, a zero size; and hosts busy, full, disabled, of
// either model or none.
func TestStageThatDoesNotApplyPassesEverything(t *testing.T) {
	reqs := []Request{small, {Name: "empty"}, {Name: "arm", VCPUs: 2, ImageISA: "arm64"},
		{Name: "group", VCPUs: 1, Group: GroupRule{Policy: PolicyAntiAffinity, Hosts: []string{"b"}}}}
	profs := []Profile{web, {Tag: "open"}, {Tag: "capped", UtilizationCeiling: 0.5},
		{Tag: "exact", Mode: ModeExact, Candidates: []Candidate{{Architecture: "xeon"}}},
		{Tag: "candidate-ceiling", Candidates: []Candidate{{Architecture: "xeon", UtilizationCeiling: 0.5}}}}
	hosts := []Host{host("a", xeon, 0), host("b", altra, 15), measured(host("c", xeon, 8), 0.95),
		with(host("d", altra, 2), func(h *Host) { h.Disabled = true }), with(host("e", nil, 40), func(h *Host) { h.VCPUsTotal = 4 })}
	skipped := 0
	for _, r := range reqs {
		for _, p := range profs {
			st := newState(r, p)
			for _, fl := range filterChain() {
				if fl.applies(st) {
					continue
				}
				skipped++
				for i := range hosts {
					var f fit
					u, m := hosts[i].CurrentUtilization()
					st.fit(&hosts[i], u, m, &f)
					if ok, why := fl.filter(st, &f, nil); !ok || len(why) > 0 {
						t.Errorf("%s for %s/%s on %s: passed %v, %q", fl.name(), r.Name, p.Tag, hosts[i].Name, ok, why)
					}
				}
			}
		}
	}
	if skipped < 10 {
		t.Fatalf("only %d stages skipped: the cases do not test applies", skipped)
	}
}
