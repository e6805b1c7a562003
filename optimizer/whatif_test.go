package optimizer

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// placed is the part of a Placement most tests check.
type placed struct {
	Host          int
	MarginalWatts float64
}

func summary(res WhatIfResult) []placed {
	out := make([]placed, len(res.Placements))
	for i, p := range res.Placements {
		out[i] = placed{p.Host, p.MarginalWatts}
	}
	return out
}

func TestWhatIf(t *testing.T) {
	six := Request{Name: "six", VCPUs: 6}
	two := Request{Name: "two", VCPUs: 2}
	tests := []struct {
		name      string
		items     []WhatIfItem
		hosts     []Host
		want      []placed
		wantTotal float64
	}{
		{
			// Each 6-vCPU instance fits either host alone (8 free), not two on
			// one. Both hosts are busy xeons at u = 0.5: each instance adds
			// Δu = 6/16 = 0.375, W(0.875) − W(0.5) = 37.5 W.
			name:  "two that fit alone but not together go to different hosts",
			items: []WhatIfItem{{six, Profile{}}, {six, Profile{}}},
			hosts: []Host{host("a", xeon, 8), host("b", xeon, 8)},
			want:  []placed{{0, 37.5}, {1, 37.5}}, wantTotal: 75,
		},
		{
			// Two empty xeons. 2 vCPUs: Δu = 2/16 = 0.125.
			// First: tie, so the first host; W(0.125) − W(0) + idle 50 = 62.5 W.
			// Second: host 0 is now awake at 0.125: W(0.25) − W(0.125) = 12.5 W
			// against 62.5 W on the still-empty host 1.
			name:  "the second instance on a woken host does not pay idle again",
			items: []WhatIfItem{{two, Profile{}}, {two, Profile{}}},
			hosts: []Host{host("a", xeon, 0), host("b", xeon, 0)},
			want:  []placed{{0, 62.5}, {0, 12.5}}, wantTotal: 75,
		},
		{
			// Estimated utilisation carries the tag's load, not load 1: the
			// host is empty, load 0.5: Δu = 8 × 0.5 / 16 = 0.25 each.
			// First: W(0.25) − W(0) + 50 = 75. Second: W(0.5) − W(0.25) = 25.
			// (Re-estimating from 8 vCPUs at load 1 would start at 0.5.)
			name:  "utilisation carries the placed load",
			items: []WhatIfItem{{Request{VCPUs: 8}, Profile{CPULoad: 0.5}}, {Request{VCPUs: 8}, Profile{CPULoad: 0.5}}},
			hosts: []Host{host("a", xeon, 0)},
			want:  []placed{{0, 75}, {0, 25}}, wantTotal: 100,
		},
		{
			// Ceiling 0.8: the first 6 vCPUs take the busy host from 0.25 to
			// 0.625; the second would reach 1.0 and goes to the empty one.
			name:  "ceiling sees the placed load",
			items: []WhatIfItem{{six, Profile{UtilizationCeiling: 0.8}}, {six, Profile{UtilizationCeiling: 0.8}}},
			hosts: []Host{host("empty", xeon, 0), host("busy", xeon, 4)},
			// busy: W(0.625) − W(0.25) = 37.5; empty: W(0.375) − W(0) + 50 = 87.5
			want: []placed{{1, 37.5}, {0, 87.5}}, wantTotal: 125,
		},
		{
			name:  "nothing fits",
			items: []WhatIfItem{{Request{VCPUs: 100}, Profile{}}, {two, Profile{}}},
			hosts: []Host{host("a", xeon, 8)},
			want:  []placed{{-1, 0}, {0, 12.5}}, wantTotal: 12.5, // W(0.625) − W(0.5)
		},
		{name: "no items", hosts: []Host{host("a", xeon, 8)}, want: []placed{}},
		{name: "no hosts", items: []WhatIfItem{{two, Profile{}}}, want: []placed{{-1, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := WhatIf(tc.items, tc.hosts, nil, 3)
			if d := diffApprox(tc.want, summary(res)); d != "" {
				t.Errorf("placements (-want +got):\n%s", d)
			}
			if d := diffApprox(tc.wantTotal, res.TotalMarginalWatts); d != "" {
				t.Errorf("total (-want +got):\n%s", d)
			}
			unplaced := 0
			for _, p := range res.Placements {
				if p.Host < 0 {
					unplaced++
					if len(p.Verdicts) != len(tc.hosts) {
						t.Errorf("unplaced item has %d verdicts, want %d", len(p.Verdicts), len(tc.hosts))
					}
				} else if p.Verdicts != nil {
					t.Errorf("placed item has verdicts %v", p.Verdicts)
				}
			}
			if res.Unplaced != unplaced {
				t.Errorf("Unplaced = %d, want %d", res.Unplaced, unplaced)
			}
		})
	}
}

func TestWhatIfDetails(t *testing.T) {
	// Four busy xeons; with consolidation off, energy alone ranks them.
	// small adds Δu = 4/16 = 0.25; on a straight line every host pays 25 W
	// except one near full load, where the clamp at 1 cuts the marginal.
	hosts := []Host{
		host("a", xeon, 8), // u 0.5: W(0.75) − W(0.5) = 25 W
		// u 0.875: W(1) − W(0.875) = 12.5 W: best (ratio 2: 32 − 14 = 18 free)
		with(host("b", xeon, 14), func(h *Host) { h.CPURatio = 2 }),
		host("c", xeon, 8), // 25 W, ties with a: a ranks first
		host("d", xeon, 4), // u 0.25: W(0.5) − W(0.25) = 25 W
	}
	weights := map[string]float64{"consolidation": 0}
	res := WhatIf([]WhatIfItem{{small, Profile{}}}, hosts, weights, 2)
	p := res.Placements[0]
	// energy raw: a 25, b 12.5, c 25, d 25 → normalised a 0, b 100, c 0, d 0.
	want := Placement{
		Host: 1, Score: 100, MarginalWatts: 12.5, Factor: 1,
		Components: []Component{{Scorer: "energy", Raw: 12.5, Normalized: 100, Weight: 1, Weighted: 100,
			Explanation: "xeon does 1.00x the work of the reference (no tag) at 12.5 W marginal (12.5 W per unit of work); utilisation 88% estimated"}},
		Alternatives: []Alternative{{Host: 0, Score: 0, MarginalWatts: 25}, {Host: 2, Score: 0, MarginalWatts: 25}},
	}
	if d := diffApprox(want, p); d != "" {
		t.Errorf("placement (-want +got):\n%s", d)
	}

	if alts := WhatIf([]WhatIfItem{{small, Profile{}}}, hosts, weights, 0).Placements[0].Alternatives; alts != nil {
		t.Errorf("maxAlternatives 0: got %v", alts)
	}
	if alts := WhatIf([]WhatIfItem{{small, Profile{}}}, hosts, weights, 10).Placements[0].Alternatives; len(alts) != 3 {
		t.Errorf("maxAlternatives 10 over 4 hosts: got %d alternatives, want 3", len(alts))
	}

	// Nothing passes: every host's verdict, with reasons.
	res = WhatIf([]WhatIfItem{{Request{VCPUs: 100}, Profile{}}}, hosts[:2], nil, 2)
	wantV := []Verdict{
		{Filter: "capacity", Reason: "needs 100 vCPUs, 8 free of 16×1.0"},
		{Filter: "capacity", Reason: "needs 100 vCPUs, 18 free of 16×2.0"},
	}
	if d := cmp.Diff(wantV, res.Placements[0].Verdicts); d != "" {
		t.Errorf("verdicts (-want +got):\n%s", d)
	}
}

// TestWhatIfAlternativesSorted checks both alternative paths (insertion for
// few, sort for many) against each other.
func TestWhatIfAlternativesSorted(t *testing.T) {
	hosts := randomHosts(rand.New(rand.NewPCG(5, 6)), 200)
	items := []WhatIfItem{{Request{VCPUs: 2, MemoryMB: 2048}, benchProfile}}
	few := WhatIf(items, hosts, nil, 20).Placements[0]
	many := WhatIf(items, hosts, nil, 100).Placements[0]
	if few.Host < 0 || len(many.Alternatives) < 40 {
		t.Fatalf("setup: host %d, %d alternatives", few.Host, len(many.Alternatives))
	}
	if d := cmp.Diff(few.Alternatives, many.Alternatives[:20]); d != "" {
		t.Errorf("insertion and sort disagree (-few +many):\n%s", d)
	}
	for i := 1; i < len(many.Alternatives); i++ {
		a, b := many.Alternatives[i-1], many.Alternatives[i]
		if a.Score < b.Score || (a.Score == b.Score && a.Host > b.Host) {
			t.Fatalf("alternatives %d and %d out of order: %+v, %+v", i-1, i, a, b)
		}
	}
	if many.Alternatives[0].Score > few.Score {
		t.Errorf("an alternative beats the choice: %v > %v", many.Alternatives[0].Score, few.Score)
	}
}
