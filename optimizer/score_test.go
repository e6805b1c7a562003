package optimizer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeColumn(t *testing.T) {
	tests := []struct {
		name          string
		raw           []float64
		lowerIsBetter bool
		want          []float64
	}{
		{"higher is better", []float64{10, 20, 30}, false, []float64{0, 50, 100}},        // (x−10)/(30−10)×100
		{"reverse: lower is better", []float64{10, 20, 30}, true, []float64{100, 50, 0}}, // 100 − the above
		{"all equal", []float64{5, 5, 5}, true, []float64{100, 100, 100}},
		{"all equal, higher is better", []float64{0, 0}, false, []float64{100, 100}},
		{"one host", []float64{42}, true, []float64{100}},
		{"quarter", []float64{0, 25, 100}, true, []float64{100, 75, 0}},
		{"NaN and Inf are worst and left out of min-max", []float64{10, nan, 30, inf, -inf}, true, []float64{100, 0, 0, 0, 0}},
		{"only non-finite", []float64{nan, inf}, false, []float64{0, 0}},
		{"extremes do not overflow", []float64{-math.MaxFloat64, 0, math.MaxFloat64}, false, []float64{0, 50, 100}},
		{"no hosts", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Two columns, host-major, as WeighHosts lays them out: the
			// column under test is the second, with weight 2.
			comps := make([]Component, 2*len(tc.raw))
			for i, r := range tc.raw {
				comps[2*i] = Component{Raw: -1, Weight: 1}
				comps[2*i+1] = Component{Raw: r, Weight: 2}
			}
			normalizeColumn(comps, 1, 2, tc.lowerIsBetter)
			var got []float64
			for i := range tc.raw {
				c := comps[2*i+1]
				got = append(got, c.Normalized)
				if c.Weighted != 2*c.Normalized {
					t.Errorf("host %d: Weighted = %v, want 2 × %v", i, c.Weighted, c.Normalized)
				}
				if comps[2*i].Normalized != 0 {
					t.Errorf("host %d: other column touched", i)
				}
			}
			if d := diffApprox(tc.want, got); d != "" {
				t.Errorf("Normalized (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateWeights(t *testing.T) {
	tests := []struct {
		name    string
		w       map[string]float64
		wantErr string // substring; "" = valid
	}{
		{"nil", nil, ""},
		{"defaults", DefaultWeights(), ""},
		{"zero disables", map[string]float64{"consolidation": 0}, ""},
		{"unknown name", map[string]float64{"energy": 1, "enrgy": 2}, `unknown scorer "enrgy" (known: energy, consolidation)`},
		{"negative", map[string]float64{"energy": -1}, `scorer "energy": weight must be a finite number >= 0, got -1`},
		{"NaN", map[string]float64{"consolidation": nan}, "got NaN"},
		{"Inf", map[string]float64{"energy": inf}, "got +Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateWeights(tc.w)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("ValidateWeights = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("ValidateWeights = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	w := DefaultWeights()
	w["energy"] = 5
	if DefaultWeights()["energy"] != 1 {
		t.Error("DefaultWeights shares its map between calls")
	}
}

func TestWeighHosts(t *testing.T) {
	// web: altra 0.7x (ceiling 0.9), any x86_64 1.0x; profile ceiling 0.8.
	// small adds Δu = 4/16 = 0.25 on both models.
	//
	// busy xeon, u = 8/16 = 0.5 (estimated): 125 − 100 = 25 W, ÷ 1.0 = 25
	// empty altra: W(0.25) − W(0) + idle = 12.5 + 20 = 32.5 W, ÷ 0.7 = 46.43
	// energy (lower is better): xeon 100, altra 0
	// consolidation: xeon 0.75 / 0.8 = 0.9375, altra empty = 0: xeon 100, altra 0
	// score = energy × 1 + consolidation × 0.5: xeon 150, altra 0
	hosts := []Host{host("x", xeon, 8), host("a", altra, 0)}
	want := []Scored{
		{Score: 150, MarginalWatts: 25, Factor: 1, Components: []Component{
			{Scorer: "energy", Raw: 25, Normalized: 100, Weight: 1, Weighted: 100,
				Explanation: "xeon does 1.00x the work of the reference for tag web at 25.0 W marginal (25.0 W per unit of work); utilisation 50% estimated"},
			{Scorer: "consolidation", Raw: 0.9375, Normalized: 100, Weight: 0.5, Weighted: 50,
				Explanation: "host at 50% → 75% of its 80% ceiling"},
		}},
		{Score: 0, MarginalWatts: 32.5, Factor: 0.7, Components: []Component{
			{Scorer: "energy", Raw: 32.5 / 0.7, Normalized: 0, Weight: 1, Weighted: 0,
				Explanation: "altra does 0.70x the work of the reference for tag web at 32.5 W marginal, 20.0 W of it idle to wake the empty host (46.4 W per unit of work); utilisation 0% estimated"},
			{Scorer: "consolidation", Raw: 0, Normalized: 0, Weight: 0.5, Weighted: 0,
				Explanation: "host is empty: choosing it wakes it, 0% → 25% of its 90% ceiling"},
		}},
	}
	got := WeighHosts(small, web, hosts, nil)
	if d := diffApprox(want, got); d != "" {
		t.Errorf("WeighHosts (-want +got):\n%s", d)
	}
}

func TestWeighHostsCases(t *testing.T) {
	dflt := &Model{Name: "default-x86_64", ISA: "x86_64", Cores: 16, Curve: line(50, 150), Default: true}
	tests := []struct {
		name    string
		prof    Profile
		weights map[string]float64
		hosts   []Host
		want    []Scored // compared on Score and, per component, Scorer, Normalized, Explanation
	}{
		{"consolidation disabled: energy only", web, map[string]float64{"consolidation": 0},
			// energy raw: xeon 25, altra 46.43 → 100, 0
			[]Host{host("x", xeon, 8), host("a", altra, 0)},
			[]Scored{{Score: 100, Components: []Component{{Scorer: "energy", Normalized: 100}}}, {Score: 0, Components: []Component{{Scorer: "energy", Normalized: 0}}}}},
		{"both disabled: no components, score 0", web, map[string]float64{"energy": 0, "consolidation": 0},
			[]Host{host("x", xeon, 8)}, []Scored{{Components: []Component{}}}},
		{"a weight map leaving a scorer out keeps its default", web, map[string]float64{"energy": 2},
			// xeon busy both scorers best: 100 × 2 + 100 × 0.5
			[]Host{host("x", xeon, 8), host("a", altra, 0)},
			[]Scored{{Score: 250, Components: []Component{{Scorer: "energy", Normalized: 100}, {Scorer: "consolidation", Normalized: 100}}},
				{Score: 0, Components: []Component{{Scorer: "energy"}, {Scorer: "consolidation"}}}}},
		{"default model, measured, no tag", Profile{}, map[string]float64{"consolidation": 0},
			// measured u = 0.3: W(0.55) − W(0.3) = 25 W
			[]Host{measured(host("d", dflt, 8), 0.3)},
			[]Scored{{Score: 100, Components: []Component{{Scorer: "energy", Normalized: 100,
				Explanation: "default model for x86_64 does 1.00x the work of the reference (no tag) at 25.0 W marginal (25.0 W per unit of work); utilisation 30% measured"}}}}},
		{"tag without candidates", Profile{Tag: "misc"}, map[string]float64{"energy": 0},
			[]Host{host("x", xeon, 8)},
			[]Scored{{Score: 50, Components: []Component{{Scorer: "consolidation", Normalized: 100, Explanation: "host at 50% → 75%, no ceiling"}}}}},
		{"non-candidate in a relaxed hint: factor assumed 1", Profile{Tag: "arm", Candidates: []Candidate{{Architecture: "altra", PerformanceFactor: 0.5}}},
			map[string]float64{"consolidation": 0}, []Host{host("x", xeon, 8)},
			[]Scored{{Score: 100, Components: []Component{{Scorer: "energy", Normalized: 100,
				Explanation: "xeon does 1.00x the work of the reference (assumed: not a candidate for tag arm) at 25.0 W marginal (25.0 W per unit of work); utilisation 50% estimated"}}}}},
		{"factor ranks an efficient host first", Profile{Tag: "t", Candidates: []Candidate{{Architecture: "xeon", PerformanceFactor: 1}, {Architecture: "altra", PerformanceFactor: 2}}},
			map[string]float64{"consolidation": 0},
			// both busy at 0.5: xeon 25 W ÷ 1 = 25; altra W(0.75)−W(0.5) = 12.5 W ÷ 2 = 6.25 → 0, 100
			[]Host{host("x", xeon, 8), host("a", altra, 8)},
			[]Scored{{Score: 0, Components: []Component{{Scorer: "energy"}}}, {Score: 100, Components: []Component{{Scorer: "energy", Normalized: 100}}}}},
	}
	trim := func(ss []Scored) []Scored {
		out := make([]Scored, len(ss))
		for i, s := range ss {
			out[i].Score = s.Score
			out[i].Components = []Component{}
			for _, c := range s.Components {
				out[i].Components = append(out[i].Components, Component{Scorer: c.Scorer, Normalized: c.Normalized, Explanation: c.Explanation})
			}
		}
		return out
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := trim(WeighHosts(small, tc.prof, tc.hosts, tc.weights))
			want := trim(tc.want)
			for i := range want { // an unspecified explanation is not checked
				for j := range want[i].Components {
					if want[i].Components[j].Explanation == "" && j < len(got[i].Components) {
						got[i].Components[j].Explanation = ""
					}
				}
			}
			if d := diffApprox(want, got); d != "" {
				t.Errorf("WeighHosts (-want +got):\n%s", d)
			}
		})
	}
}

// randomHosts builds n varied hosts of several models, ISAs and loads.
func randomHosts(r *rand.Rand, n int) []Host {
	models := []*Model{
		{Name: "xeon-gold", ISA: "x86_64", Cores: 48, Curve: PowerCurve{98, 140, 162, 181, 199, 218, 240, 262, 287, 314, 340}},
		{Name: "epyc", ISA: "x86_64", Cores: 64, Curve: PowerCurve{75, 120, 141, 160, 178, 195, 214, 235, 258, 280, 303}},
		{Name: "altra", ISA: "aarch64", Cores: 80, Curve: PowerCurve{60, 85, 100, 113, 125, 137, 150, 163, 176, 190, 204}},
		{Name: "default-ppc64le", ISA: "ppc64le", Cores: 32, Curve: line(150, 400), Default: true},
	}
	hosts := make([]Host, n)
	for i := range hosts {
		m := models[r.IntN(len(models))]
		h := Host{
			Name: "h" + string(rune('a'+i%26)), Model: m,
			VCPUsTotal: m.Cores, CPURatio: []float64{0, 1, 2, 4}[r.IntN(4)],
			TotalRAMMB: 256 * 1024, RAMRatio: 1.5, TotalDiskGB: 2000, DiskRatio: 1,
		}
		if r.IntN(5) > 0 { // one host in five is empty
			h.VCPUsUsed = r.IntN(m.Cores*2 + 1)
			h.NumInstances = 1 + h.VCPUsUsed/4
		}
		h.FreeRAMMB = h.TotalRAMMB - int64(h.VCPUsUsed)*4096
		h.FreeDiskMB = h.TotalDiskGB*1024 - int64(h.VCPUsUsed)*20*1024
		if r.IntN(2) == 0 { // measured: around the vCPU estimate
			u := float64(h.VCPUsUsed) / float64(m.Cores) * (0.3 + 0.7*r.Float64())
			h.Utilization, h.UtilizationMeasured = min(1, u), true
		}
		if r.IntN(4) == 0 {
			h.ISA = []string{"amd64", "arm64", "ppc64el", "x86_64"}[r.IntN(4)]
		}
		hosts[i] = h
	}
	return hosts
}

// benchProfile is web-frontend: hint, altra 0.7x with a 0.8 ceiling, then any
// x86_64 at 1.0x; profile ceiling 0.85, CPU load 0.6.
var benchProfile = Profile{
	Tag: "web-frontend", Mode: ModeHint, UtilizationCeiling: 0.85, CPULoad: 0.6,
	Candidates: []Candidate{
		{Architecture: "altra", PerformanceFactor: 0.7, UtilizationCeiling: 0.8},
		{ISA: "x86_64", PerformanceFactor: 1},
	},
}

func TestDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hosts := randomHosts(r, 300)
	req := Request{VCPUs: 4, MemoryMB: 8192, DiskGB: 40}
	scored := WeighHosts(req, benchProfile, hosts, nil)
	verdicts := FilterHosts(req, benchProfile, hosts)

	perm := r.Perm(len(hosts))
	shuffled := make([]Host, len(hosts))
	for i, p := range perm {
		shuffled[i] = hosts[p]
	}
	scored2 := WeighHosts(req, benchProfile, shuffled, nil)
	verdicts2 := FilterHosts(req, benchProfile, shuffled)
	for i, p := range perm {
		if d := cmp.Diff(scored[p], scored2[i]); d != "" {
			t.Fatalf("host %d scores differently when shuffled (-first +shuffled):\n%s", p, d)
		}
		if d := cmp.Diff(verdicts[p], verdicts2[i]); d != "" {
			t.Fatalf("host %d filters differently when shuffled (-first +shuffled):\n%s", p, d)
		}
	}
	if d := cmp.Diff(scored, WeighHosts(req, benchProfile, hosts, nil)); d != "" {
		t.Errorf("second call differs:\n%s", d)
	}
}

func TestNoMutation(t *testing.T) {
	hosts := randomHosts(rand.New(rand.NewPCG(3, 4)), 50)
	before := make([]Host, len(hosts))
	copy(before, hosts)
	prof := benchProfile
	prof.Candidates = append([]Candidate(nil), benchProfile.Candidates...)
	FilterHosts(small, prof, hosts)
	WeighHosts(small, prof, hosts, nil)
	WhatIf([]WhatIfItem{{small, prof}, {small, prof}, {small, prof}}, hosts, nil, 3)
	if d := cmp.Diff(before, hosts); d != "" {
		t.Errorf("hosts changed (-before +after):\n%s", d)
	}
	if d := cmp.Diff(benchProfile, prof); d != "" {
		t.Errorf("profile changed (-before +after):\n%s", d)
	}
}

// WeighHostsQuiet must give exactly WeighHosts' numbers, with no text.
func TestWeighHostsQuietMatches(t *testing.T) {
	hosts := randomHosts(rand.New(rand.NewPCG(3, 4)), 200)
	loud := WeighHosts(benchRequest, benchProfile, hosts, nil)
	quiet := WeighHostsQuiet(benchRequest, benchProfile, hosts, nil)
	for i := range loud {
		if loud[i].Score != quiet[i].Score || loud[i].MarginalWatts != quiet[i].MarginalWatts || len(loud[i].Components) != len(quiet[i].Components) {
			t.Fatalf("host %d: %+v vs %+v", i, loud[i], quiet[i])
		}
		for j, c := range quiet[i].Components {
			l := loud[i].Components[j]
			if c.Explanation != "" || c.Raw != l.Raw || c.Normalized != l.Normalized || c.Weighted != l.Weighted {
				t.Fatalf("host %d component %d: %+v vs %+v", i, j, c, l)
			}
		}
	}
}

// TestScoresHonest: no credit past the ceiling, and a rejected host gets no
// score at all, nor a say in the others' normalisation.
func TestScoresHonest(t *testing.T) {
	// web on xeon: profile ceiling 0.8; small adds Δu = 4/16 = 0.25.
	//   hot:  measured 0.7 → 0.95, past 0.8: consolidation raw 0
	//   warm: measured 0.5 → 0.75 ≤ 0.8: raw 0.75 / 0.8 = 0.9375
	//   none: no ceiling (no tag), measured 0.9 → 1.15, past 100 %: raw 0
	hot := measured(host("hot", xeon, 8), 0.7)
	warm := measured(host("warm", xeon, 8), 0.5)
	cons := map[string]float64{"energy": 0}
	got := WeighHosts(small, web, []Host{hot, warm}, cons)
	if r := got[0].Components[0].Raw; r != 0 {
		t.Errorf("host past its ceiling: consolidation raw %v, want 0", r)
	}
	if e := got[0].Components[0].Explanation; e != "no credit, past the ceiling: 70% → 95% of its 80% ceiling" {
		t.Errorf("explanation %q", e)
	}
	if r := got[1].Components[0].Raw; math.Abs(r-0.9375) > 1e-9 {
		t.Errorf("warm host: raw %v, want 0.9375", r)
	}
	if r := WeighHosts(small, Profile{}, []Host{measured(host("full", xeon, 8), 0.9)}, cons)[0].Components[0].Raw; r != 0 {
		t.Errorf("host past 100%% busy without a ceiling: raw %v, want 0", r)
	}

	// FilterWeigh: hot is rejected (ceiling); warm alone is normalised:
	// energy and consolidation both 100 → 100 × 1 + 100 × 0.5 = 150.
	for _, explain := range []bool{true, false} {
		v, s := FilterWeigh(small, web, []Host{hot, warm}, nil, explain)
		if v[0].Passed || v[0].Filter != "ceiling" || !v[1].Passed {
			t.Fatalf("verdicts %+v", v)
		}
		if s[0].Score != 0 || s[0].Components != nil || s[0].MarginalWatts != 0 {
			t.Errorf("rejected host scored: %+v", s[0])
		}
		if math.Abs(s[1].Score-150) > 1e-9 || len(s[1].Components) != 2 {
			t.Errorf("passed host: %+v, want score 150", s[1])
		}
	}
}

// TestFilterWeighMatchesSeparateCalls: FilterWeigh decides as
// FilterHostsQuiet and scores as WeighHosts over the hosts that passed.
func TestFilterWeighMatchesSeparateCalls(t *testing.T) {
	rejected, scored := 0, 0
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 3))
		hosts := randomHosts(r, 5+r.IntN(60))
		req := Request{VCPUs: 1 + r.IntN(16), MemoryMB: 1024 * int64(1+r.IntN(32)), DiskGB: 20, ImageISA: []string{"", "x86_64", "aarch64"}[r.IntN(3)]}
		prof := []Profile{{}, web, {Tag: "arm", Mode: ModeExact, Candidates: []Candidate{{ISA: "aarch64", UtilizationCeiling: 0.6}}}}[r.IntN(3)]
		v, s := FilterWeigh(req, prof, hosts, nil, true)
		if d := cmp.Diff(FilterHostsQuiet(req, prof, hosts), v); d != "" {
			t.Fatalf("seed %d: verdicts (-FilterHostsQuiet +FilterWeigh):\n%s", seed, d)
		}
		var passed []Host
		var idx []int
		for i, x := range v {
			if x.Passed {
				passed = append(passed, hosts[i])
				idx = append(idx, i)
			} else if s[i].Score != 0 || s[i].Components != nil {
				t.Fatalf("seed %d: rejected host %d scored %+v", seed, i, s[i])
			}
		}
		rejected, scored = rejected+len(hosts)-len(passed), scored+len(passed)
		want := WeighHosts(req, prof, passed, nil)
		for k, i := range idx {
			if d := diffApprox(want[k], s[i]); d != "" {
				t.Fatalf("seed %d host %d (-WeighHosts +FilterWeigh):\n%s", seed, i, d)
			}
		}
	}
	if rejected == 0 || scored == 0 {
		t.Fatalf("%d rejected, %d scored: the cases test nothing", rejected, scored)
	}
}

// TestFilterWeighScoresIsFilterWeigh: on random hosts (some full, measured,
// disabled, without a model, with NaN utilisation) and requests, under
// random weights (a scorer disabled too), FilterWeighScores answers each
// host's FilterWeigh Score, bit for bit; and so does a Scratch used call
// after call over clusters of other sizes, whose FilterPassed answers as
// FilterHostsQuiet.
func TestFilterWeighScoresIsFilterWeigh(t *testing.T) {
	var sc Scratch
	rng := rand.New(rand.NewPCG(15, 1))
	models := []*Model{xeon, altra, nil}
	profs := []Profile{web, {Tag: "open"}, {Tag: "capped", UtilizationCeiling: 0.5, CPULoad: 0.3},
		{Tag: "exact", Mode: ModeExact, Candidates: []Candidate{{Architecture: "xeon", PerformanceFactor: 1.3}}}}
	for round := range 200 {
		hosts := make([]Host, 1+rng.IntN(60))
		for i := range hosts {
			h := host(fmt.Sprintf("h%d", i), models[rng.IntN(len(models))], rng.IntN(20))
			switch rng.IntN(6) {
			case 0:
				h = measured(h, rng.Float64())
			case 1:
				h = measured(h, math.NaN())
			case 2:
				h.Disabled = true
			case 3:
				h.FreeRAMMB = 100
			}
			hosts[i] = h
		}
		req := Request{Name: "r", VCPUs: 1 + rng.IntN(8), MemoryMB: 512, DiskGB: int64(rng.IntN(50))}
		prof := profs[rng.IntN(len(profs))]
		weights := map[string]float64{ScorerEnergy: float64(rng.IntN(3)), ScorerConsolidation: rng.Float64()}
		_, scored := FilterWeigh(req, prof, hosts, weights, false)
		got := FilterWeighScores(req, prof, hosts, weights)
		again := sc.FilterWeighScores(req, prof, hosts, weights)
		for i := range hosts {
			if math.Float64bits(got[i]) != math.Float64bits(scored[i].Score) || math.Float64bits(again[i]) != math.Float64bits(got[i]) {
				t.Fatalf("round %d host %d: %v (scratch %v), FilterWeigh %v", round, i, got[i], again[i], scored[i].Score)
			}
		}
		verdicts := FilterHostsQuiet(req, prof, hosts)
		flags, passed := sc.FilterPassed(req, prof, hosts)
		n := 0
		for i := range hosts {
			if flags[i] != verdicts[i].Passed {
				t.Fatalf("round %d host %d: FilterPassed %v, FilterHostsQuiet %+v", round, i, flags[i], verdicts[i])
			}
			if flags[i] {
				n++
			}
		}
		if passed != n {
			t.Fatalf("round %d: %d passed, %d flags", round, passed, n)
		}
	}
}
