package optimizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestMoveRelax: the observed bug. A web instance runs on its candidate
// (altra); Nova asks about a live migration to one requested host, an x86
// host that is no candidate. Judged on that call alone, the hint would
// relax (no candidate in the call); judged against the cluster, it must
// not while a candidate can take the instance, nor ever for an instance
// already on a candidate.
func TestMoveRelax(t *testing.T) {
	armOnly := Profile{Tag: "arm", Candidates: []Candidate{{Architecture: "altra", UtilizationCeiling: 0.9}}}
	arm, arm2 := host("arm", altra, 8), host("arm2", altra, 8)
	armFull := host("arm-full", altra, 16)
	x86, x86b := host("x86", xeon, 8), host("x86b", xeon, 8)
	req := Request{VCPUs: 4}
	tests := []struct {
		name    string
		prof    Profile
		from    *Host
		cluster []Host
		want    HintRelax
	}{
		{"on a candidate: never", armOnly, &arm, []Host{arm, x86, x86b}, RelaxNever},
		{"on a candidate, no other candidate has room: still never", armOnly, &arm, []Host{arm, armFull, x86}, RelaxNever},
		{"off the candidates, one can take it", armOnly, &x86, []Host{x86, arm2, x86b}, RelaxNever},
		{"off the candidates, none can take it", armOnly, &x86, []Host{x86, armFull, x86b}, RelaxAllowed},
		{"no known host, none can take it", armOnly, nil, []Host{armFull, x86b}, RelaxAllowed},
		{"exact: nothing to relax", Profile{Tag: "arm", Mode: ModeExact, Candidates: armOnly.Candidates}, &x86, []Host{x86, armFull}, RelaxNever},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MoveRelax(req, tc.prof, tc.from, tc.cluster); got != tc.want {
				t.Errorf("MoveRelax = %d, want %d", got, tc.want)
			}
		})
	}
	// The live migration call itself: one requested host, x86b.
	r := req
	r.Relax = MoveRelax(req, armOnly, &arm, []Host{arm, arm2, x86, x86b})
	if v := FilterHosts(r, armOnly, []Host{x86b}); v[0].Passed {
		t.Errorf("live migration of an instance on its candidate to non-candidate x86b passed: %+v", v[0])
	}
	// A boot given the same single host relaxes, as before: Nova's call for
	// a boot holds every host it considers.
	if v := FilterHosts(Request{VCPUs: 4}, armOnly, []Host{x86b}); !v[0].Passed {
		t.Errorf("boot on the only host of the call: %+v", v[0])
	}
}

// webFrontend hints at small-x86 alone: big-x86 has its ISA but is no
// candidate.
var webFrontend = Profile{Tag: "web-frontend", Mode: ModeHint, UtilizationCeiling: 0.85, CPULoad: 0.6,
	Candidates: []Candidate{{Architecture: "small-x86", PerformanceFactor: 1}}}

// TestPlanStepsPassFilterHosts: one rule set. For plans from random
// clusters (tags in hint and exact mode, some instances started off their
// hint's candidates, ceilings, server groups, disabled, stale, down,
// excluded and draining hosts, two ISAs, pinned instances, tight limits),
// every step, replayed in plan order, passes FilterHosts for its instance
// on the state before the step, judged as Nova judges a live migration.
func TestPlanStepsPassFilterHosts(t *testing.T) {
	gen := clusterGen{states: true, groups: true, ceilings: true, pinned: true}
	algos := []string{"", "ffd-l2", "bfd-l1-avg", "norm-l2+ls", "pabfd+ls", "pso+ls", "current+ls"}
	n := 80
	if testing.Short() {
		n = 20
	}
	steps := 0
	for k := range n {
		r := rand.New(rand.NewPCG(uint64(k), 11))
		c := gen.draw(r, 3+r.IntN(14), 5+r.IntN(60))
		if r.IntN(3) == 0 {
			c.Hosts[r.IntN(len(c.Hosts))].Draining = "plan-0"
		}
		// A hint that leaves out a model of the same ISA (the observed
		// bug: web-frontend onto a dell of its ISA but not its list). The
		// instances keep their hosts, some of them off the candidates, as a
		// relaxed boot may have left them.
		for i := range c.Instances {
			if r.IntN(3) == 0 && !c.Instances[i].Pinned && c.Instances[i].Group == "" {
				c.Instances[i].Profile = webFrontend
			}
		}
		algo := algos[k%len(algos)]
		opts := ConsolidateOptions{Algorithm: algo, Seed: uint64(k), MaxPerHost: 1 + r.IntN(2), MaxParallel: 1 + r.IntN(6),
			Budget: Budget{MaxIterations: 2000}}
		if k%6 == 0 {
			opts.MaxMigrations = 1 + r.IntN(5)
		}
		p, err := Consolidate(c, opts)
		if err != nil {
			t.Fatalf("case %d (%s): %v", k, algo, err)
		}
		at := make([]int, len(c.Instances))
		for i, in := range c.Instances {
			for j, h := range c.Hosts {
				if h.Name == in.Host {
					at[i] = j
				}
			}
		}
		for s, mv := range p.Moves {
			if at[mv.Instance] != mv.From {
				t.Fatalf("case %d (%s) step %d: %s is on %s, the step moves it from %s", k, algo, s,
					c.Instances[mv.Instance].ID, c.Hosts[at[mv.Instance]].Name, c.Hosts[mv.From].Name)
			}
			hosts := c.FilterState(at)
			req := c.MoveRequest(at, hosts, mv.Instance)
			v := FilterHosts(req, c.Instances[mv.Instance].Profile, hosts)[mv.To]
			if !v.Passed {
				t.Fatalf("case %d (%s) step %d: %s (tag %q) %s → %s is refused by FilterHosts: %s: %s", k, algo, s,
					c.Instances[mv.Instance].ID, c.Instances[mv.Instance].Profile.Tag, c.Hosts[mv.From].Name, c.Hosts[mv.To].Name, v.Filter, v.Reason)
			}
			// An operator's move is judged as this step: JudgeMove agrees.
			cc := c
			cc.Instances = slices.Clone(c.Instances)
			for k := range cc.Instances {
				cc.Instances[k].Host = c.Hosts[at[k]].Name
			}
			if jv := cc.JudgeMove(mv.Instance, mv.To); !jv.Passed {
				t.Fatalf("case %d (%s) step %d: JudgeMove refuses it: %s: %s", k, algo, s, jv.Filter, jv.Reason)
			}
			at[mv.Instance] = mv.To
			steps++
		}
	}
	if steps < n {
		// The property says nothing if the plans move nothing.
		t.Fatalf("only %d steps in %d plans", steps, n)
	}
	t.Logf("%d steps of %d plans replayed", steps, n)
}

// TestHintInstanceStaysOnCandidates: the observed bug in a plan. web
// instances on their candidate would pack onto one non-candidate host
// (cheaper, roomier); the plan may only use candidates.
func TestHintInstanceStaysOnCandidates(t *testing.T) {
	cand := &Model{Name: "cand", ISA: "x86_64", Cores: 16, Curve: line(100, 300)}
	other := &Model{Name: "dell-r740-xeon-8280", ISA: "x86_64", Cores: 112, Curve: line(60, 200)}
	prof := Profile{Tag: "web-frontend", Candidates: []Candidate{{Architecture: "cand"}}}
	c := Cluster{Hosts: []ClusterHost{
		{Name: "c0", Model: cand, VCPUs: 16, MemoryMB: 65536, DiskGB: 1000},
		{Name: "c1", Model: cand, VCPUs: 16, MemoryMB: 65536, DiskGB: 1000},
		{Name: "dell", Model: other, VCPUs: 112, MemoryMB: 1 << 20, DiskGB: 10000},
	}}
	for i := range 6 {
		c.Instances = append(c.Instances, ClusterInstance{ID: fmt.Sprint("w", i), Host: fmt.Sprint("c", i%2),
			VCPUs: 2, MemoryMB: 2048, DiskGB: 20, Profile: prof})
	}
	p, err := Consolidate(c, ConsolidateOptions{Budget: Budget{MaxIterations: 2000}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Moves) == 0 {
		t.Fatalf("no moves: %s (the candidates can be packed onto one)", p.Note)
	}
	for _, mv := range p.Moves {
		if c.Hosts[mv.To].Name == "dell" {
			t.Fatalf("%s moves to the non-candidate dell", c.Instances[mv.Instance].ID)
		}
	}
}

// TestReceives: what a plan may move to. The filter lets a stale host pass
// (Nova's call carries its state); a plan, on the view alone, does not.
func TestReceives(t *testing.T) {
	tests := []struct {
		name string
		h    ClusterHost
		want bool
	}{
		{"up", ClusterHost{State: HostUp}, true},
		{"disabled", ClusterHost{State: HostDisabled}, false},
		{"down", ClusterHost{State: HostDown}, false},
		{"stale", ClusterHost{State: HostStale}, false},
		{"excluded", ClusterHost{NoTarget: true}, false},
		{"draining", ClusterHost{Draining: "p-1"}, false},
	}
	for _, tc := range tests {
		if got := tc.h.Receives(); got != tc.want {
			t.Errorf("%s: Receives = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestJudgeMove: an operator's move is judged as a plan step, and each
// refusal names its rule. Cluster: a and b x86 "cand" hosts of 16 vCPUs,
// arm an aarch64 host, stale and drain x86 hosts that receive nothing,
// o an x86 host of another model with 32 vCPUs.
func TestJudgeMove(t *testing.T) {
	cand := &Model{Name: "cand", ISA: "x86_64", Cores: 16, Curve: line(100, 300)}
	other := &Model{Name: "other", ISA: "x86_64", Cores: 16, Curve: line(100, 300)}
	arm := &Model{Name: "arm", ISA: "aarch64", Cores: 16, Curve: line(20, 70)}
	host := func(name string, m *Model) ClusterHost {
		return ClusterHost{Name: name, ISA: m.ISA, Model: m, VCPUs: 16, MemoryMB: 65536, DiskGB: 1000}
	}
	c := Cluster{
		Hosts:  []ClusterHost{host("a", cand), host("b", cand), host("arm", arm), host("stale", cand), host("drain", cand), host("o", other)},
		Groups: []ServerGroup{{Name: "g", Policy: PolicyAntiAffinity}},
	}
	c.Hosts[3].State = HostStale
	c.Hosts[4].Draining = "plan-1"
	c.Hosts[5].VCPUs = 32 // o: room beside big
	exact := Profile{Tag: "exact-cand", Mode: ModeExact, Candidates: []Candidate{{Architecture: "cand"}}}
	c.Instances = []ClusterInstance{
		{ID: "free", Host: "a", VCPUs: 2, MemoryMB: 2048},                  // 0
		{ID: "pinned", Host: "a", VCPUs: 2, MemoryMB: 2048, Pinned: true},  // 1
		{ID: "g1", Host: "a", VCPUs: 2, MemoryMB: 2048, Group: "g"},        // 2
		{ID: "g2", Host: "b", VCPUs: 2, MemoryMB: 2048, Group: "g"},        // 3
		{ID: "exact", Host: "a", VCPUs: 2, MemoryMB: 2048, Profile: exact}, // 4
		{ID: "big", Host: "o", VCPUs: 16, MemoryMB: 2048},                  // 5: 16 vCPUs, b has 16 - 2 (g2) = 14 free
	}
	idx := map[string]int{}
	for j, h := range c.Hosts {
		idx[h.Name] = j
	}
	for _, tc := range []struct {
		inst   int
		to     string
		filter string // "" = passes
	}{
		{0, "b", ""},
		{0, "o", ""}, // no tag: any host of its ISA
		{1, "b", "pinned"},
		{0, "a", "placement"},
		{0, "stale", "host state"},
		{0, "drain", "host state"},
		{0, "arm", "isa"},
		{2, "b", "group"}, // g2 is on b
		{4, "b", ""},
		{4, "o", "candidates"}, // exact: cand only
		{5, "b", "capacity"},   // 16 vCPUs onto 14 free
	} {
		v := c.JudgeMove(tc.inst, idx[tc.to])
		if v.Passed != (tc.filter == "") || (tc.filter != "" && !strings.Contains(v.Filter, tc.filter)) {
			t.Errorf("%s → %s: %+v, want filter %q", c.Instances[tc.inst].ID, tc.to, v, tc.filter)
		}
	}
}
