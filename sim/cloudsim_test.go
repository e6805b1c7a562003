package sim

import (
	"math"
	"testing"
)

// THR-MMT on three hosts of 1000 MIPS (P(u) = 100 + 100u) with two VMs of
// 1000 MIPS at 30 %, by hand:
//
//   - time 0, PABFD: every host is empty, so VM 0 goes to the first (host
//     0); host 0 has no MIPS left for VM 1's full size, which goes to host 1.
//   - 300 s: nothing is above 80 %. Underloaded: hosts 0 and 1 at 30 %, host
//     2 off (excluded). Host 0 comes first; its VM (300 MIPS) may not go to
//     host 0 (being emptied) nor host 2 (off): host 1 takes it, at 60 % ≤ 80 %.
//     Host 1 has received a VM, so nothing is left to empty: one migration.
//   - later steps: host 1 alone, its VMs have nowhere to go.
//
// Energy: 10 s of migration with the source at 30 % (130 W) and host 1 at
// 30 % + 10 % of 300 MIPS = 33 % (133 W); then host 1 at 60 % (160 W) for
// 290 s and 285 intervals of 300 s. SLATAH: host 1 grants 330 of 600 MIPS for
// 10 s, out of 10 + 85800 s of active host time. PDM: VM 0 lacks 30 of 300
// MIPS for 10 s, out of 2 × 300 MIPS over 85800 s.
func TestThrMmtByHand(t *testing.T) {
	r := mustRunSpec(t, tinySetup(3), genDay(2, constant(30)), "thr-mmt")
	wantJ := 10*(130+133) + 290*160 + 285*300*160.0
	if !near(r.EnergyKWh, wantJ/3.6e6) {
		t.Errorf("energy %.9f kWh, want %.9f", r.EnergyKWh, wantJ/3.6e6)
	}
	if r.Migrations != 1 {
		t.Errorf("%d migrations, want 1", r.Migrations)
	}
	if want := 10.0 / 85810; !near(r.SLATAH, want) {
		t.Errorf("SLATAH %g, want %g", r.SLATAH, want)
	}
	if want := 30.0 * 10 / (2 * 300 * 85800); !near(r.PDM, want) {
		t.Errorf("PDM %g, want %g", r.PDM, want)
	}
}

// An overloaded host sheds its smallest-RAM VM (MMT) to the host whose power
// grows least; the policy's tentative moves are undone before the
// migrations start.
func TestThrMmtOverload(t *testing.T) {
	s := tinySetup(3)
	s.VMTypes = []VMType{
		{Name: "big", PEs: 1, MIPS: 1000, RAMMB: 2000, BandwidthMbps: 100},
		{Name: "small", PEs: 1, MIPS: 1000, RAMMB: 500, BandwidthMbps: 100},
	}
	// VM 0 (big) and 1 (small) start on host 0 and 1 (time 0 takes full
	// sizes); from the first step VM 0 asks 50 %, VM 1 40 %, and the
	// scripted start puts both on host 0: 90 % > 80 %.
	d := genDay(2, func(vm, _ int) int { return 50 - 10*vm })
	pol := &migrationPolicy{det: thrDetector{0.8}}
	e := newEngine(&s, d)
	for i, h := range []int{0, 0} {
		e.vms[i].req = e.vms[i].total
		e.create(h, int32(i))
		e.vms[i].req = 0
	}
	e.atStep = true
	e.update(300)
	moves, err := pol.optimize(e, 300)
	if err != nil {
		t.Fatal(err)
	}
	// VM 1 (500 MB) leaves; host 1 and 2 are empty and alike: host 1.
	if len(moves) != 1 || moves[0].vm != 1 || moves[0].to != 1 {
		t.Fatalf("moves %+v, want VM 1 to host 1", moves)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if got := e.hosts[0].vms; len(got) != 2 {
		t.Fatalf("host 0 lists %v after optimize, want both VMs back", got)
	}
}

func TestDetectorsMath(t *testing.T) {
	// A straight line is fitted exactly.
	y := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
	b0, b1 := simpleRegression(y)
	if math.Abs(b0) > 1e-12 || math.Abs(b1-0.1) > 1e-12 {
		t.Errorf("regression %g + %g x, want 0 + 0.1 x", b0, b1)
	}
	data := []float64{7, 1, 3, 5, 9, 11, 2, 4, 6, 8, 10, 12}
	// Sorted 1..12: q1 = round(0.25 × 13) - 1 = 2 → 3; q3 = round(9.75) - 1
	// = 9 → 10.
	if got := iqr(data); got != 7 {
		t.Errorf("iqr %g, want 7", got)
	}
	// Median of 1..12 (legacy estimation, position 6.5) = 6.5; deviations
	// 0.5, 0.5, 1.5, 1.5, ... 5.5, 5.5: median 3.
	if got := mad(data); got != 3 {
		t.Errorf("mad %g, want 3", got)
	}
	if got := percentile([]float64{1, 2, 3, 4}, 25); got != 1.25 {
		t.Errorf("25th percentile %g, want 1.25 (position 1.25)", got)
	}
}

// The history detectors fall back to THR 0.7 while the history is short,
// then decide on it.
func TestHistoryDetectors(t *testing.T) {
	s := tinySetup(1)
	e := newEngine(&s, genDay(1, constant(75)))
	e.create(0, 0)
	v := &e.vms[0]
	v.req = 750
	lr := lrDetector{safety: 1.2, fallback: thrDetector{0.7}}
	if !lr.over(e, 0) {
		t.Error("short history: 75 % > 70 % fallback, want overloaded")
	}
	// Rising 50 %, 52 %, ... 68 % (latest first in the history): the line
	// predicts 70 % one step ahead; × 1.2 = 84 % < 100 %.
	for k := range 10 {
		copy(v.hist[1:], v.hist[:histLen-1])
		v.hist[0] = 0.5 + 0.02*float64(k)
		v.histN = k + 1
	}
	e.touch(0) // as updateHost does once its VMs' histories moved on
	if lr.over(e, 0) {
		t.Error("LR predicts 84 %, want not overloaded")
	}
	if !(lrDetector{safety: 1.5, fallback: thrDetector{0.7}}).over(e, 0) {
		t.Error("LR with safety 1.5 predicts 105 %, want overloaded")
	}
	mad := madDetector{safety: 2.5, fallback: thrDetector{0.9}}
	if mad.over(e, 0) {
		t.Error("MAD: 10 values < 12, fallback 90 % > 75 %: want not overloaded")
	}
}
