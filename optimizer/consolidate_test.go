package optimizer

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Models of the consolidation tests: straight-line curves (see line).
var (
	bigX86   = &Model{Name: "big-x86", ISA: "x86_64", Cores: 32, Curve: line(200, 400)}
	smallX86 = &Model{Name: "small-x86", ISA: "x86_64", Cores: 16, Curve: line(90, 180)}
	arm64    = &Model{Name: "arm", ISA: "aarch64", Cores: 32, Curve: line(40, 120)}
)

// clusterGen draws random clusters whose current placement is feasible.
type clusterGen struct {
	states   bool // some hosts disabled, stale, down or excluded
	groups   bool // server groups
	ceilings bool // tags with utilisation ceilings, one exact tag
	pinned   bool
}

func (g clusterGen) draw(r *rand.Rand, nHosts, nInst int) Cluster {
	var c Cluster
	models := []*Model{bigX86, smallX86, arm64}
	for j := range nHosts {
		m := models[r.IntN(len(models))]
		h := ClusterHost{
			Name: fmt.Sprintf("h%d", j), Model: m,
			VCPUs: m.Cores, MemoryMB: int64(m.Cores) * 4096, DiskGB: 2000,
			CPURatio: []float64{1, 2, 4}[r.IntN(3)], RAMRatio: 1, DiskRatio: 1,
		}
		if r.IntN(4) == 0 {
			h.ReservedMemoryMB = 2048
		}
		if g.states {
			switch r.IntN(12) {
			case 0:
				h.State = HostDisabled
			case 1:
				h.State = HostStale
			case 2:
				h.State = HostDown
			case 3:
				h.NoTarget = true
			}
		}
		c.Hosts = append(c.Hosts, h)
	}
	profiles := []Profile{{Tag: "default"}}
	if g.ceilings {
		profiles = append(profiles,
			Profile{Tag: "web", UtilizationCeiling: 0.8, CPULoad: 0.5},
			Profile{Tag: "batch", CPULoad: 1},
			Profile{Tag: "arm-only", Mode: ModeExact, Candidates: []Candidate{{Architecture: "arm", UtilizationCeiling: 0.7}}},
			Profile{Tag: "hinted", Mode: ModeHint, UtilizationCeiling: 0.9,
				Candidates: []Candidate{{Architecture: "small-x86", UtilizationCeiling: 0.6}, {ISA: "x86_64"}}},
		)
	}
	if g.groups {
		c.Groups = []ServerGroup{{Name: "anti-a", Policy: PolicyAntiAffinity}, {Name: "anti-b", Policy: PolicyAntiAffinity},
			{Name: "aff", Policy: PolicyAffinity}, {Name: "none", Policy: PolicyNone}}
	}
	// Place each instance on a random host that can hold it now.
	used := make([][4]float64, nHosts)
	members := map[string]map[int]bool{}
	affHost := -1
	for i := 0; i < nInst; i++ {
		in := ClusterInstance{
			ID: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("vm-%d", i),
			VCPUs: []int{1, 2, 2, 4, 8}[r.IntN(5)], MemoryMB: []int64{1024, 2048, 4096, 8192, 16384}[r.IntN(5)],
			DiskGB: []int64{10, 20, 40, 80}[r.IntN(4)], Profile: profiles[r.IntN(len(profiles))],
		}
		if r.IntN(3) > 0 {
			in.CPUUtil, in.CPUUtilKnown = r.Float64(), true
		}
		if g.pinned && r.IntN(15) == 0 {
			in.Pinned = true
		}
		if g.groups && r.IntN(6) == 0 {
			in.Group = c.Groups[r.IntN(len(c.Groups))].Name
		}
		placed := false
		for _, j := range r.Perm(nHosts) {
			h := &c.Hosts[j]
			if in.Group == "aff" && affHost >= 0 && j != affHost {
				continue
			}
			if !initialFit(h, &in, used[j]) {
				continue
			}
			if in.Group != "" && in.Group != "aff" && in.Group != "none" && members[in.Group][j] {
				continue
			}
			in.Host = h.Name
			used[j][0] += float64(in.VCPUs)
			used[j][1] += float64(in.MemoryMB)
			used[j][2] += float64(in.DiskGB)
			used[j][3] += in.Busy()
			if in.Group != "" {
				if members[in.Group] == nil {
					members[in.Group] = map[int]bool{}
				}
				members[in.Group][j] = true
				if in.Group == "aff" {
					affHost = j
				}
			}
			placed = true
			break
		}
		if placed {
			c.Instances = append(c.Instances, in)
		}
	}
	return c
}

// initialFit: room in every dimension and under the ceilings, the host's
// ISA for exact tags.
func initialFit(h *ClusterHost, in *ClusterInstance, used [4]float64) bool {
	ok, ceil := in.AllowedOn(h.hostISA(), h)
	if !ok && in.Profile.Mode == ModeHint {
		// A boot may have relaxed the hint: start some instances off
		// their candidates, as Nova may have placed them.
		ok, ceil = true, in.Profile.UtilizationCeiling
	}
	if !ok {
		return false
	}
	v, m, d := h.HostCapacity()
	if used[0]+float64(in.VCPUs) > v || used[1]+float64(in.MemoryMB) > m || used[2]+float64(in.DiskGB) > d {
		return false
	}
	// Keep the start under 70 % busy everywhere so ceilings hold.
	return used[3]+in.Busy() <= 0.7*h.Cores() && (ceil == 0 || used[3]+in.Busy() <= ceil*h.Cores())
}

// checkPlan replays a plan on the cluster, wave by wave, with its own
// bookkeeping (not the solver's), and fails on any broken rule: moves of
// instances that may not move, destinations that may not receive, another
// ISA or a refused architecture, a wave over its concurrency limits, and,
// with every arrival of a wave counted on top of what its destination held
// when the wave began, capacity, ceilings and anti-affinity.
func checkPlan(t *testing.T, c *Cluster, p *Plan, perHost, parallel int) {
	t.Helper()
	checkPlanRelieve(t, c, p, perHost, parallel, 0)
}

// checkPlanRelieve is checkPlan for a plan made with
// ConsolidateOptions.Relieve: a host's own instances may keep it busy past
// their ceiling, up to relieve of its cores, without it being overloaded.
func checkPlanRelieve(t *testing.T, c *Cluster, p *Plan, perHost, parallel int, relieve float64) {
	t.Helper()
	hostIdx := map[string]int{}
	for j, h := range c.Hosts {
		hostIdx[h.Name] = j
	}
	policy := map[string]GroupPolicy{}
	for _, g := range c.Groups {
		policy[g.Name] = g.Policy
	}
	size := map[string]int{}
	for _, in := range c.Instances {
		if in.Group != "" {
			size[in.Group]++
		}
	}
	at := make([]int, len(c.Instances))
	for i, in := range c.Instances {
		at[i] = hostIdx[in.Host]
	}
	isa := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		isa[i] = NormalizeISA(in.ISA)
		if isa[i] == "" {
			isa[i] = c.Hosts[at[i]].hostISA()
		}
	}
	// ceilingOn is the instance's ceiling on host h (0 = none), by the
	// placement filter's rules, written out again here.
	ceilingOn := func(in *ClusterInstance, h *ClusterHost) (bool, float64) {
		for _, cd := range in.Profile.Candidates {
			if (cd.Architecture != "" && cd.Architecture == h.Model.Name) || (cd.Architecture == "" && NormalizeISA(cd.ISA) == h.hostISA()) {
				if cd.UtilizationCeiling > 0 {
					return true, cd.UtilizationCeiling
				}
				return true, in.Profile.UtilizationCeiling
			}
		}
		if in.Profile.Mode == ModeExact && len(in.Profile.Candidates) > 0 {
			return false, 0
		}
		return true, in.Profile.UtilizationCeiling
	}
	usage := func(j int) (v, m, d, busy float64, members map[string]int, minCeil float64) {
		members = map[string]int{}
		minCeil = math.Inf(1)
		for i := range c.Instances {
			if at[i] != j {
				continue
			}
			in := &c.Instances[i]
			v += float64(in.VCPUs)
			m += float64(in.MemoryMB)
			d += float64(in.DiskGB)
			busy += in.Busy()
			if in.Group != "" {
				members[in.Group]++
			}
			if _, ce := ceilingOn(in, &c.Hosts[j]); ce > 0 {
				minCeil = min(minCeil, ce)
			}
		}
		return
	}
	// overloaded lists the hosts over a capacity or busy past the lowest
	// ceiling of their instances, with the total excess (vCPUs + GB of
	// RAM + GB of disk + busy cores: a rough sum, enough to compare).
	keep := make([]float64, len(c.Hosts)) // busy cores kept past the ceiling, from the start
	for j := range c.Hosts {
		_, _, _, busy, _, _ := usage(j)
		keep[j] = min(busy, relieve*c.Hosts[j].Cores())
	}
	overloaded := func() (hosts []int, excess float64) {
		const tol = 1e-6
		for j := range c.Hosts {
			v, m, d, busy, _, minCeil := usage(j)
			cv, cm, cd := c.Hosts[j].HostCapacity()
			ex := max(0, v-cv-tol) + max(0, m-cm-tol)/1024 + max(0, d-cd-tol)
			if !math.IsInf(minCeil, 1) {
				ex += max(0, busy-max(minCeil*c.Hosts[j].Cores(), keep[j])-tol)
			}
			if ex > 0 {
				hosts = append(hosts, j)
				excess += ex
			}
		}
		return hosts, excess
	}
	overBefore, excessBefore := overloaded()
	defer func() {
		if t.Failed() {
			return
		}
		overAfter, excessAfter := overloaded()
		if !slices.Equal(overAfter, p.Overloaded) {
			t.Errorf("overloaded after the plan: %v, the plan says %v", overAfter, p.Overloaded)
		}
		for _, j := range overAfter {
			if !slices.Contains(overBefore, j) {
				t.Errorf("the plan overloads %s", c.Hosts[j].Name)
			}
		}
		var repaired []int
		for _, j := range overBefore {
			if !slices.Contains(overAfter, j) {
				repaired = append(repaired, j)
			}
		}
		if !slices.Equal(repaired, p.Repaired) {
			t.Errorf("repaired %v, the plan says %v", repaired, p.Repaired)
		}
		if excessAfter > excessBefore+1e-6 {
			t.Errorf("overload grows: %.3f → %.3f", excessBefore, excessAfter)
		}
		if (len(overAfter) > 0) != (p.InfeasibleReason != "") {
			t.Errorf("%d hosts overloaded after, infeasible reason %q", len(overAfter), p.InfeasibleReason)
		}
		if p.PowerAfterW > p.PowerBeforeW+1e-6 && excessAfter >= excessBefore-1e-6 {
			t.Errorf("power rises (%.1f → %.1f W) and no overload is removed", p.PowerBeforeW, p.PowerAfterW)
		}
	}()
	if !slices.IsSortedFunc(p.Moves, func(a, b Move) int { return a.Wave - b.Wave }) {
		t.Fatalf("moves are not in wave order")
	}
	for w := 0; w < p.Waves; w++ {
		var wave []Move
		for _, mv := range p.Moves {
			if mv.Wave == w {
				wave = append(wave, mv)
			}
		}
		if len(wave) == 0 {
			t.Fatalf("wave %d is empty", w)
		}
		if len(wave) > parallel {
			t.Fatalf("wave %d has %d moves, limit %d", w, len(wave), parallel)
		}
		perHostCount := map[int]int{}
		seen := map[int]bool{}
		arrivals := map[int][]int{}
		for _, mv := range wave {
			in := &c.Instances[mv.Instance]
			to := &c.Hosts[mv.To]
			switch {
			case seen[mv.Instance]:
				t.Fatalf("wave %d moves %s twice", w, in.ID)
			case at[mv.Instance] != mv.From:
				t.Fatalf("wave %d: %s is on %s, the move says from %s", w, in.ID, c.Hosts[at[mv.Instance]].Name, c.Hosts[mv.From].Name)
			case mv.From == mv.To:
				t.Fatalf("wave %d: %s moves to where it is", w, in.ID)
			case in.Pinned:
				t.Fatalf("wave %d: pinned %s moves", w, in.ID)
			case c.Hosts[hostIdx[in.Host]].State == HostStale || c.Hosts[hostIdx[in.Host]].State == HostDown:
				t.Fatalf("wave %d: %s moves off a stale or down host", w, in.ID)
			case policy[in.Group] == PolicyAffinity && size[in.Group] > 1:
				t.Fatalf("wave %d: %s of an affinity group moves", w, in.ID)
			case to.State != HostUp || to.NoTarget:
				t.Fatalf("wave %d: %s moves to %s, which may not receive (%v, excluded %v)", w, in.ID, to.Name, to.State, to.NoTarget)
			case to.hostISA() != isa[mv.Instance]:
				t.Fatalf("wave %d: %s (%s) moves to %s (%s)", w, in.ID, isa[mv.Instance], to.Name, to.hostISA())
			}
			if ok, _ := ceilingOn(in, to); !ok {
				t.Fatalf("wave %d: %s moves to %s, an architecture its exact tag refuses", w, in.ID, to.Name)
			}
			seen[mv.Instance] = true
			perHostCount[mv.From]++
			perHostCount[mv.To]++
			arrivals[mv.To] = append(arrivals[mv.To], mv.Instance)
		}
		for j, n := range perHostCount {
			if n > perHost {
				t.Fatalf("wave %d: %d migrations touch %s, limit %d", w, n, c.Hosts[j].Name, perHost)
			}
		}
		for j, arr := range arrivals {
			h := &c.Hosts[j]
			v, m, d, busy, members, minCeil := usage(j)
			for _, i := range arr {
				in := &c.Instances[i]
				v += float64(in.VCPUs)
				m += float64(in.MemoryMB)
				d += float64(in.DiskGB)
				busy += in.Busy()
				if _, ce := ceilingOn(in, h); ce > 0 {
					minCeil = min(minCeil, ce)
				}
				if in.Group != "" && policy[in.Group] == PolicyAntiAffinity {
					if members[in.Group] > 0 {
						t.Fatalf("wave %d: %s joins another member of anti-affinity group %s on %s", w, in.ID, in.Group, h.Name)
					}
					members[in.Group]++
				}
			}
			cv, cm, cd := h.HostCapacity()
			const tol = 1e-6
			if v > cv+tol || m > cm+tol || d > cd+tol {
				t.Fatalf("wave %d: %s holds %.0f vCPUs %.0f MB %.0f GB with its arrivals, capacity %.0f %.0f %.0f", w, h.Name, v, m, d, cv, cm, cd)
			}
			if !math.IsInf(minCeil, 1) && busy > minCeil*h.Cores()+tol {
				t.Fatalf("wave %d: %s would be %.1f%% busy, ceiling %.0f%%", w, h.Name, 100*busy/h.Cores(), 100*minCeil)
			}
		}
		for _, mv := range wave {
			at[mv.Instance] = mv.To
		}
	}
	if !slices.Equal(at, p.Placement) {
		t.Fatalf("the moves end in another placement than the plan's")
	}
	// Power after, recomputed.
	busy := make([]float64, len(c.Hosts))
	count := make([]int, len(c.Hosts))
	for i, j := range at {
		busy[j] += c.Instances[i].Busy()
		count[j]++
	}
	after := 0.0
	for j := range c.Hosts {
		if count[j] > 0 {
			after += c.Hosts[j].Model.Curve.Watts(busy[j] / c.Hosts[j].Cores())
		}
	}
	if math.Abs(after-p.PowerAfterW) > 1e-6*max(1, after) {
		t.Fatalf("power after %.3f W, the plan says %.3f W", after, p.PowerAfterW)
	}
	for _, j := range p.HostsFreed {
		if count[j] != 0 {
			t.Fatalf("freed host %s holds %d instances", c.Hosts[j].Name, count[j])
		}
	}
}

// TestConsolidateProperty: plans from random clusters, with every kind of
// constraint and tight concurrency limits, are valid at every step, never
// add overload, and raise the power only to remove overload.
func TestConsolidateProperty(t *testing.T) {
	gen := clusterGen{states: true, groups: true, ceilings: true, pinned: true}
	algos := []string{"", "ffd-l2", "bfd-l1-avg", "dot-product+ls", "norm-l2", "pabfd+ls", "pso", "current+ls"}
	n := 60
	if testing.Short() {
		n = 20
	}
	for k := range n {
		r := rand.New(rand.NewPCG(uint64(k), 99))
		c := gen.draw(r, 4+r.IntN(16), 5+r.IntN(80))
		perHost, parallel := 1+r.IntN(2), 1+r.IntN(6)
		algo := algos[k%len(algos)]
		opts := ConsolidateOptions{Algorithm: algo, Seed: uint64(k), MaxPerHost: perHost, MaxParallel: parallel,
			Budget: Budget{MaxIterations: 3000}}
		if k%5 == 0 {
			opts.MaxMigrations = 1 + r.IntN(6)
		}
		p, err := Consolidate(c, opts)
		if err != nil {
			t.Fatalf("case %d (%s): %v", k, algo, err)
		}
		t.Run(fmt.Sprintf("case%d-%s", k, algo), func(t *testing.T) {
			// checkPlan allows the power to rise only for a repair.
			checkPlan(t, &c, p, perHost, parallel)
			if opts.MaxMigrations > 0 && len(p.Moves) > opts.MaxMigrations {
				t.Errorf("%d moves, cap %d", len(p.Moves), opts.MaxMigrations)
			}
		})
	}
}

// TestConsolidateDeterministic: the same seed gives the same plan.
func TestConsolidateDeterministic(t *testing.T) {
	c := clusterGen{ceilings: true, groups: true}.draw(rand.New(rand.NewPCG(5, 5)), 16, 80)
	for _, algo := range []string{"", "pso+ls"} {
		opts := ConsolidateOptions{Algorithm: algo, Seed: 42, Budget: Budget{MaxIterations: 2000}}
		a, err := Consolidate(c, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Consolidate(c, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffApprox(a, b); d != "" {
			t.Errorf("%s: two runs differ (-first +second):\n%s", algo, d)
		}
		if len(a.Moves) == 0 {
			t.Errorf("%s: no moves on a spread-out cluster", algo)
		}
	}
}

// TestConsolidateEmptiesHosts: a spread-out homogeneous cluster is packed
// onto the fewest hosts the bound allows, and the freed hosts are reported.
func TestConsolidateEmptiesHosts(t *testing.T) {
	var c Cluster
	for j := range 6 {
		c.Hosts = append(c.Hosts, ClusterHost{Name: fmt.Sprintf("h%d", j), Model: smallX86, VCPUs: 16, MemoryMB: 65536, DiskGB: 1000})
	}
	// 12 instances of 4 vCPUs, two per host: 48 vCPUs fit on 3 hosts.
	for i := range 12 {
		c.Instances = append(c.Instances, ClusterInstance{ID: fmt.Sprintf("i%d", i), Host: fmt.Sprintf("h%d", i%6),
			VCPUs: 4, MemoryMB: 4096, DiskGB: 10, CPUUtil: 0.5, CPUUtilKnown: true})
	}
	p, err := Consolidate(c, ConsolidateOptions{Seed: 1, MaxParallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, &c, p, 1, 4)
	if p.Bounds.Bins != 3 || len(p.HostsFreed) != 3 || len(p.Moves) != 6 {
		t.Errorf("bound %d, freed %v, %d moves; want 3 hosts left, 3 freed by 6 moves", p.Bounds.Bins, p.HostsFreed, len(p.Moves))
	}
	// Power: 6 hosts at 25 % busy (2×4×0.5 of 16 cores) → 3 at 50 %:
	// 6 × (90 + 90×0.25) = 675 W → 3 × (90 + 90×0.5) = 405 W.
	if math.Abs(p.PowerBeforeW-675) > 1e-9 || math.Abs(p.PowerAfterW-405) > 1e-9 {
		t.Errorf("power %.2f → %.2f W, want 675 → 405", p.PowerBeforeW, p.PowerAfterW)
	}
}

// TestSequenceBreaksCycle: two full hosts must swap instances; only a
// detour through a third host with room makes it possible.
func TestSequenceBreaksCycle(t *testing.T) {
	p := &problem{d: 1, n: 2, m: 3, util: -1,
		size: []float64{10, 10}, cap: []float64{10, 10, 10},
		home: []int32{0, 1}, mig: []float64{1, 1}}
	p.finish()
	steps, final, dropped := sequence(p, []int32{1, 0}, newMeter(Budget{}))
	if len(dropped) != 0 || !slices.Equal(final, []int32{1, 0}) || len(steps) != 3 || !steps[0].detour {
		t.Fatalf("steps %+v, final %v, dropped %v; want a detour then two moves", steps, final, dropped)
	}
	// Without the third host nothing can move: the plan stops short and
	// says why.
	p2 := &problem{d: 1, n: 2, m: 2, util: -1, size: []float64{10, 10}, cap: []float64{10, 10},
		home: []int32{0, 1}, mig: []float64{1, 1}}
	p2.finish()
	steps, final, dropped = sequence(p2, []int32{1, 0}, newMeter(Budget{}))
	if len(steps) != 0 || !slices.Equal(final, []int32{0, 1}) || len(dropped) != 2 || dropped[0].Reason != ReasonBlocked {
		t.Fatalf("steps %+v, final %v, dropped %+v; want nothing moved, both unreachable", steps, final, dropped)
	}
}

// TestWavesRespectOrder: a move into a host that another move must empty
// first waits for the next wave.
func TestWavesRespectOrder(t *testing.T) {
	p := &problem{d: 1, n: 2, m: 3, util: -1, size: []float64{6, 6}, cap: []float64{10, 10, 10},
		home: []int32{1, 0}, mig: []float64{1, 1}}
	p.finish()
	// Item 0 (on bin 1) goes to bin 2; item 1 (on bin 0) goes to bin 1,
	// which has room only once item 0 left.
	steps, _, _ := sequence(p, []int32{2, 1}, newMeter(Budget{}))
	ws := waves(p, steps, limits{perHost: 2, parallel: 8}, newMeter(Budget{}))
	if len(ws) != 2 || ws[0].item != 0 || ws[0].wave != 0 || ws[1].item != 1 || ws[1].wave != 1 {
		t.Fatalf("waves %+v: want item 0 in wave 0, item 1 in wave 1", ws)
	}
}

// TestWavesEmptyHostsOneAfterAnother: the moves out of hosts the plan
// frees run host by host, so each wave leaves hosts empty (and free to
// power off) instead of every host only at the last wave.
func TestWavesEmptyHostsOneAfterAnother(t *testing.T) {
	// Bins 0–3 each hold a big (4) and a small (1) item; all go to bins 4
	// (from 0 and 1) and 5 (from 2 and 3), two arrivals per host a wave.
	// Largest first across hosts (the order before) moved the four bigs in
	// wave 0 and emptied no host until wave 1; host by host, wave 0 empties
	// bins 0 and 2 (4 arrivals: 0's two to bin 4, 2's two to bin 5).
	p := &problem{d: 1, n: 8, m: 6, util: -1,
		size: []float64{4, 1, 4, 1, 4, 1, 4, 1}, cap: []float64{10, 10, 10, 10, 10, 10},
		home: []int32{0, 0, 1, 1, 2, 2, 3, 3}, mig: []float64{1, 1, 1, 1, 1, 1, 1, 1}}
	p.finish()
	steps, _, dropped := sequence(p, []int32{4, 4, 4, 4, 5, 5, 5, 5}, newMeter(Budget{}))
	if len(dropped) != 0 {
		t.Fatalf("dropped %+v", dropped)
	}
	ws := waves(p, steps, limits{perHost: 2, parallel: 8}, newMeter(Budget{}))
	emptyAfter := map[int32]int{} // source bin → the wave of its last move
	for _, st := range ws {
		emptyAfter[st.from] = max(emptyAfter[st.from], st.wave)
	}
	want := map[int32]int{0: 0, 1: 1, 2: 0, 3: 1}
	if !maps.Equal(emptyAfter, want) {
		t.Fatalf("hosts emptied after waves %v, want %v (steps %+v)", emptyAfter, want, ws)
	}
}

// TestConsolidateMigrationCap: the cap bounds the moves.
func TestConsolidateMigrationCap(t *testing.T) {
	c := clusterGen{}.draw(rand.New(rand.NewPCG(9, 9)), 20, 120)
	for _, cap := range []int{1, 3, 10} {
		p, err := Consolidate(c, ConsolidateOptions{Seed: 1, MaxMigrations: cap, MaxParallel: 8, Budget: Budget{MaxIterations: 5000}})
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, &c, p, 1, 8)
		if len(p.Moves) > cap {
			t.Errorf("cap %d: %d moves", cap, len(p.Moves))
		}
		if len(p.Moves) > 0 && p.PowerAfterW >= p.PowerBeforeW {
			t.Errorf("cap %d: moves that save nothing", cap)
		}
	}
}

// TestConsolidateBadSnapshot: invalid snapshots are refused with a reason.
func TestConsolidateBadSnapshot(t *testing.T) {
	h := ClusterHost{Name: "h", Model: smallX86, VCPUs: 16, MemoryMB: 1000, DiskGB: 10}
	cases := map[string]Cluster{
		"unknown host":   {Hosts: []ClusterHost{h}, Instances: []ClusterInstance{{ID: "a", Host: "x"}}},
		"duplicate id":   {Hosts: []ClusterHost{h}, Instances: []ClusterInstance{{ID: "a", Host: "h"}, {ID: "a", Host: "h"}}},
		"no model":       {Hosts: []ClusterHost{{Name: "h"}}},
		"unknown group":  {Hosts: []ClusterHost{h}, Instances: []ClusterInstance{{ID: "a", Host: "h", Group: "g"}}},
		"duplicate host": {Hosts: []ClusterHost{h, h}},
	}
	for name, c := range cases {
		if _, err := Consolidate(c, ConsolidateOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Consolidate(Cluster{Hosts: []ClusterHost{h}}, ConsolidateOptions{Algorithm: "nope"}); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

// TestConsolidateTimeBudget: a deadline in the past stops the search at
// once, and the plan is still valid.
func TestConsolidateTimeBudget(t *testing.T) {
	c := clusterGen{}.draw(rand.New(rand.NewPCG(3, 3)), 40, 300)
	past := time.Unix(0, 0)
	p, err := Consolidate(c, ConsolidateOptions{Budget: Budget{Now: func() time.Time { return past.Add(time.Hour) }, Deadline: past}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stopped != StoppedTime {
		t.Errorf("stopped %q, want %q", p.Stopped, StoppedTime)
	}
	checkPlan(t, &c, p, DefaultMaxPerHost, DefaultMaxParallel)
}

// FuzzConsolidate: plans from fuzzed clusters and limits are valid at
// every step (checkPlan).
func FuzzConsolidate(f *testing.F) {
	f.Add(uint64(1), uint8(8), uint8(40), uint8(0xff), uint8(1), uint8(4), uint8(0))
	f.Add(uint64(2), uint8(3), uint8(12), uint8(0), uint8(2), uint8(1), uint8(3))
	f.Add(uint64(3), uint8(20), uint8(90), uint8(0x0f), uint8(1), uint8(8), uint8(5))
	f.Fuzz(func(t *testing.T, seed uint64, nh, ni, flags, perHost, parallel, cap uint8) {
		gen := clusterGen{states: flags&1 != 0, groups: flags&2 != 0, ceilings: flags&4 != 0, pinned: flags&8 != 0}
		r := rand.New(rand.NewPCG(seed, uint64(flags)))
		c := gen.draw(r, 1+int(nh%24), int(ni%120))
		ph, par := 1+int(perHost%3), 1+int(parallel%10)
		algos := Algorithms()
		algo := algos[int(seed%uint64(len(algos)))]
		p, err := Consolidate(c, ConsolidateOptions{Algorithm: algo, Seed: seed, MaxPerHost: ph, MaxParallel: par,
			MaxMigrations: int(cap % 8), Budget: Budget{MaxIterations: 500}})
		if err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		checkPlan(t, &c, p, ph, par)
		if cap%8 > 0 && len(p.Moves) > int(cap%8) {
			t.Fatalf("%d moves, cap %d", len(p.Moves), cap%8)
		}
	})
}
