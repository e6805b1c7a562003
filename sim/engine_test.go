package sim

import (
	"testing"
)

// The day: steps at t = 300, 600, ..., 86100 s (287 steps; the one at
// 86400 s is the end). Energy is integrated from one update to the next and
// is 0 over [0, 300] (no host was on before the first step), so a host busy
// all day counts 286 intervals of 300 s = 85800 s. Hosts: 1 PE of 1000
// MIPS, P(u) = 100 + 100u W. VMs: 1000 MIPS, 625 MB (10 s to migrate).
func TestEnergyAndSLA(t *testing.T) {
	const kWh = 3.6e6
	alternate := func(_, k int) int { // 20 % on even samples, 60 % on odd
		if k%2 == 0 {
			return 20
		}
		return 60
	}
	pause := func(_, k int) int { // on, off for 50 samples, on again
		if k >= 100 && k < 150 {
			return 0
		}
		return 50
	}
	tests := []struct {
		name  string
		hosts int
		vms   int
		pct   func(vm, k int) int
		mode  Mode
		pes   int // PEs of the host (its MIPS split among them), 0 = 1
		pol   *scripted
		// want
		energyJ               float64
		slatah, pdm, overall  float64
		migrations, shutdowns int
	}{
		{
			// 286 intervals × 300 s × P(0.5) = 150 W.
			name: "constant 50 %", hosts: 1, vms: 1, pct: constant(50), pol: &scripted{start: []int{0}},
			energyJ: 286 * 300 * 150,
		},
		{
			// Every interval runs from 20 % to 60 % or back: the trapezoid
			// is (P(0.2) + P(0.6)) / 2 = (120 + 160) / 2 = 140 W.
			name: "trapezoid", hosts: 1, vms: 1, pct: alternate, pol: &scripted{start: []int{0}},
			energyJ: 286 * 300 * 140,
		},
		{
			// CloudSim mode: at t = 30000 s the VM asks for 0 and leaves for
			// good. 98 intervals at 150 W up to 29700 s, then one from 150
			// W down to P(0) = 100 W: 125 W × 300 s; then the host is off.
			// Its last entry is inactive: one shutdown.
			name: "a VM at 0 % leaves (cloudsim)", hosts: 1, vms: 1, pct: pause, pol: &scripted{start: []int{0}},
			energyJ: 98*300*150 + 125*300, shutdowns: 1,
		},
		{
			// Strict mode: the VM stays and comes back at 45000 s; the
			// interval into it starts from an idle host (0 W), then 137
			// intervals at 150 W up to 86100 s.
			name: "a VM at 0 % stays (strict)", hosts: 1, vms: 1, pct: pause, mode: ModeStrict, pol: &scripted{start: []int{0}},
			energyJ: 98*300*150 + 125*300 + 137*300*150, shutdowns: 1,
		},
		{
			// Two VMs ask for 600 MIPS each of 1000: each gets 500 (scaled
			// by 1000/1200); the host runs at 100 % (200 W) and is short all
			// the time it is active: SLATAH 1; 200 of 1200 MIPS are missing.
			name: "oversubscribed", hosts: 1, vms: 2, pct: constant(60), pol: &scripted{start: []int{0, 0}},
			energyJ: 286 * 300 * 200, slatah: 1, overall: 200.0 / 1200,
		},
		{
			// 2 PEs of 500 MIPS: the VM's one PE asks for 800 and gets a host
			// PE's 500: the host runs at 50 % (150 W) and is short.
			name: "capped at a host PE", hosts: 1, vms: 1, pct: constant(80), pes: 2, pol: &scripted{start: []int{0}},
			energyJ: 286 * 300 * 150, slatah: 1, overall: 300.0 / 800,
		},
		{
			// At the first step (300 s) the VM (500 MIPS) migrates from host
			// 0 to host 1, for 625 MB / 62.5 MB/s = 10 s. Meanwhile the
			// source still runs it (0.9 × 500 granted, counted back to 500:
			// P = 150 W) and the destination reserves 10 %: 50 MIPS, P =
			// 105 W. Energy: 10 s × (150 + 105) W, then the source is off,
			// the destination at 150 W for 290 s and 285 more intervals.
			// SLATAH: the destination grants 50 of the 500 it is asked for
			// during the 10 s; active time is the source's 10 s plus the
			// destination's 85800 s. PDM: the VM lacks 50 MIPS for 10 s
			// out of 500 MIPS over 85800 s. The source ends off: one
			// shutdown; host 1's first entry is already active.
			name: "one live migration", hosts: 2, vms: 1, pct: constant(50),
			pol:     &scripted{start: []int{0}, steps: map[int][]move{1: {{vm: 0, to: 1}}}},
			energyJ: 10*(150+105) + 290*150 + 285*300*150,
			slatah:  10.0 / 85810, pdm: 50.0 * 10 / (500 * 85800), overall: 50.0 * 10 / (500 * 85800),
			migrations: 1, shutdowns: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tinySetup(tc.hosts)
			s.Mode = tc.mode
			if tc.pes > 1 {
				s.Models[0].PEs, s.Models[0].PEMIPS = tc.pes, 1000/float64(tc.pes)
			}
			r := mustRun(t, s, genDay(tc.vms, tc.pct), tc.pol)
			if !near(r.EnergyKWh, tc.energyJ/kWh) {
				t.Errorf("energy %.9f kWh, want %.9f", r.EnergyKWh, tc.energyJ/kWh)
			}
			if !near(r.SLATAH, tc.slatah) || !near(r.PDM, tc.pdm) || !near(r.OverallSLA, tc.overall) {
				t.Errorf("SLATAH %g PDM %g overall %g, want %g %g %g", r.SLATAH, r.PDM, r.OverallSLA, tc.slatah, tc.pdm, tc.overall)
			}
			if !near(r.SLAV, r.SLATAH*r.PDM) || !near(r.ESV, r.EnergyKWh*r.SLAV) {
				t.Errorf("SLAV %g ESV %g inconsistent", r.SLAV, r.ESV)
			}
			if r.Migrations != tc.migrations || r.HostShutdowns != tc.shutdowns {
				t.Errorf("migrations %d shutdowns %d, want %d %d", r.Migrations, r.HostShutdowns, tc.migrations, tc.shutdowns)
			}
			if len(r.Series) != 287 {
				t.Errorf("%d samples, want 287", len(r.Series))
			}
		})
	}
}

// The floor: 500 MIPS all day on the best watts per MIPS at full load
// (200 W / 1000 MIPS) over 85800 s.
func TestFloor(t *testing.T) {
	r := mustRun(t, tinySetup(1), genDay(1, constant(50)), &scripted{start: []int{0}})
	if want := 500 * 0.2 * 85800 / 3.6e6; !near(r.FloorKWh, want) {
		t.Fatalf("floor %g kWh, want %g", r.FloorKWh, want)
	}
}

// CloudSim's data center starts its clock at 0.1 s: steps at 300.1 s ...,
// where a trace is interpolated between two samples.
func TestInterpolation(t *testing.T) {
	s := CloudSimSetup()
	e := newEngine(&s, genDay(1, func(_, k int) int { return 10 * (k % 2) }))
	v := &e.vms[0]
	for _, tc := range []struct{ t, want float64 }{
		{0, 0}, {300, 0.1}, {450, 0.05}, {300.1, 0.1 - 0.1*0.1/300}, {86399, 0.1},
	} {
		if got := e.utilAt(v, tc.t); !near(got, tc.want) {
			t.Errorf("u(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestSetupValidate(t *testing.T) {
	s := CloudSimSetup()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Setup){
		func(s *Setup) { s.Hosts = nil },
		func(s *Setup) { s.VMTypes = nil },
		func(s *Setup) { s.Interval = 0 },
		func(s *Setup) { s.Offset = 300 },
		func(s *Setup) { s.Models[0].PEs = 0 },
		func(s *Setup) { s.Models[0].Curve[3] = 1 }, // decreasing
		func(s *Setup) { s.Hosts[0] = 7 },
		func(s *Setup) { s.VMTypes[0].MIPS = 0 },
	}
	for i, f := range bad {
		s := CloudSimSetup()
		f(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
	if vmTypeOf(0, 1052, 4) != 0 || vmTypeOf(262, 1052, 4) != 0 || vmTypeOf(263, 1052, 4) != 1 || vmTypeOf(1051, 1052, 4) != 3 {
		t.Error("vmTypeOf: want CloudSim's quarters of ceil(1052/4) = 263")
	}
}

// TestLaterWaveStartsEarly: a plan's second-wave move starts when
// optimizer.Gate lets it (the executor's rule), not once the whole first
// wave has ended. At the step at 300 s, wave 0 moves the big VM from host 0
// to 1 (18,438 MB / 62.5 MB/s ≈ 295 s); the wave-1 move is a small VM (10
// s). Started at once it ends by 320 s; after the big move it would start
// at 595 s and, unable to end before the next step (600 s), be dropped:
// one migration fewer.
func TestLaterWaveStartsEarly(t *testing.T) {
	for _, c := range []struct {
		name  string
		moves []move
		want  int
	}{
		// Wave 0 also moves a small VM from 2 to 3 (ends at 310 s); wave 1
		// moves another from 3 to 2: its hosts are free then.
		{"its hosts are free", []move{{vm: 2, to: 1}, {vm: 0, to: 3}, {vm: 1, to: 2, wave: 1}}, 3},
		// Wave 1 moves a small VM from 2 to 1, beside the big arrival:
		// arrivals do not wait for one another.
		{"arrival beside an arrival", []move{{vm: 2, to: 1}, {vm: 0, to: 1, wave: 1}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := tinySetup(4)
			s.Models[0].RAMMB = 32768
			s.VMTypes = append(s.VMTypes, VMType{Name: "big", PEs: 1, MIPS: 1000, RAMMB: 18438, BandwidthMbps: 100})
			// Types by CloudSim's rule, 2 VMs a type (3 / 2 rounded up):
			// VMs 0 and 1 small on hosts 2 and 3, 2 big on host 0.
			pol := &scripted{start: []int{2, 3, 0}, steps: map[int][]move{1: c.moves}}
			if r := mustRun(t, s, genDay(3, constant(10)), pol); r.Migrations != c.want {
				t.Errorf("%d migrations, want %d (the second wave's started early)", r.Migrations, c.want)
			}
		})
	}
}

// TestMigrationOutlastingItsStep: a migration that the step's first wave
// started and that ends after the next step (25,000 MB / 62.5 MB/s = 400
// s, from 300 s to 700 s) ends nothing in the next step's plan, whose
// moves are numbered afresh (it was move 1 of its plan; the next plan has
// only a move 0).
func TestMigrationOutlastingItsStep(t *testing.T) {
	s := tinySetup(4)
	s.Models[0].RAMMB = 65536
	s.VMTypes = append(s.VMTypes, VMType{Name: "big", PEs: 1, MIPS: 1000, RAMMB: 25000, BandwidthMbps: 100})
	// VMs 0 and 1 small, 2 big (2 VMs a type).
	pol := &scripted{start: []int{0, 1, 2}, steps: map[int][]move{
		1: {{vm: 0, to: 3}, {vm: 2, to: 3}},
		2: {{vm: 1, to: 0}},
	}}
	r := mustRun(t, s, genDay(3, constant(10)), pol)
	if r.Migrations != 3 {
		t.Errorf("%d migrations, want 3", r.Migrations)
	}
}
