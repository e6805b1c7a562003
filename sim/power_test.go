package sim

import (
	"slices"
	"strings"
	"testing"
)

func transitionsSetup(n int) Setup {
	s := tinySetup(n)
	s.Transitions = Transitions{Enabled: true, Boot: 300, Shutdown: 30, StandbyW: 10}
	return s
}

// One VM at 50 % on host 0 all day, DVFS (no migration), 3 hosts. Updates
// at 300, 600, ..., 86100 s. Without transitions host 0 counts from the
// first update (286 × 300 s at P(0.5) = 150 W) and the empty hosts nothing.
// With them host 0 is on from time 0 ((P(0) + P(0.5)) / 2 = 125 W over the
// first 300 s) and hosts 1 and 2 are off all day at 10 W.
func TestTransitionsStandby(t *testing.T) {
	day := genDay(1, constant(50))
	plain := mustRunSpec(t, tinySetup(3), day, "dvfs")
	if want := 286 * 300 * 150.0; !near(plain.EnergyKWh, want/3.6e6) || plain.StandbyKWh != 0 || plain.HostBoots != 0 {
		t.Errorf("no transitions: %.6f kWh, standby %g, boots %d; want %.6f, 0, 0", plain.EnergyKWh, plain.StandbyKWh, plain.HostBoots, want/3.6e6)
	}
	r := mustRunSpec(t, transitionsSetup(3), day, "dvfs")
	standby := 2 * 10 * 86100.0
	want := 125*300 + 286*300*150.0 + standby
	if !near(r.EnergyKWh, want/3.6e6) || !near(r.StandbyKWh, standby/3.6e6) || r.HostBoots != 0 {
		t.Errorf("transitions: %.6f kWh, standby %.6f, boots %d; want %.6f, %.6f, 0", r.EnergyKWh, r.StandbyKWh, r.HostBoots, want/3.6e6, standby/3.6e6)
	}
	// The series: host 0 at P(0.5), the two others in standby.
	if got := r.Series[5].PowerW; got != 150+2*10 {
		t.Errorf("power at step 6: %g W, want 170", got)
	}
	if r.Transitions != "realistic:boot=300,shutdown=30,standby=10" || plain.Transitions != "none" {
		t.Errorf("transitions %q and %q", r.Transitions, plain.Transitions)
	}
}

// A move to a host that is off does not start: the host boots (300 s at
// P(1) = 200 W). Scripted: at 300 s VM 0 is sent to host 1 (off), at 600 s
// nothing is asked, so host 1, booted and empty, shuts down (30 s at 100 W)
// and is off again. Host 1: 300 s standby, 300 s booting, 30 s shutting
// down, then standby until 86100 s. Host 0 as in TestTransitionsStandby.
func TestTransitionsBootDropsMove(t *testing.T) {
	pol := &scripted{start: []int{0}, steps: map[int][]move{1: {{vm: 0, to: 1}}}}
	r := mustRun(t, transitionsSetup(2), genDay(1, constant(50)), pol)
	if r.Migrations != 0 || r.HostBoots != 1 {
		t.Fatalf("%d migrations, %d boots; want 0, 1", r.Migrations, r.HostBoots)
	}
	standby := 10 * (300 + 270 + (86100 - 900.0))
	host1 := 300*200 + 30*100 + standby
	host0 := 125*300 + 286*300*150.0
	if !near(r.EnergyKWh, (host0+host1)/3.6e6) || !near(r.StandbyKWh, standby/3.6e6) {
		t.Errorf("%.6f kWh (standby %.6f), want %.6f (%.6f)", r.EnergyKWh, r.StandbyKWh, (host0+host1)/3.6e6, standby/3.6e6)
	}
	// Of it, booting 300 s × 200 W; on with no VM, the shutdown's 30 s ×
	// 100 W.
	if !near(r.BootKWh, 300*200/3.6e6) || !near(r.IdleKWh, 30*100/3.6e6) {
		t.Errorf("boot %.6f kWh, idle %.6f; want %.6f, %.6f", r.BootKWh, r.IdleKWh, 300*200/3.6e6, 30*100/3.6e6)
	}
	// Asked again once it is up (600 s), the move runs.
	pol = &scripted{start: []int{0}, steps: map[int][]move{1: {{vm: 0, to: 1}}, 2: {{vm: 0, to: 1}}}}
	r = mustRun(t, transitionsSetup(2), genDay(1, constant(50)), pol)
	if r.Migrations != 1 || r.HostBoots != 1 {
		t.Fatalf("%d migrations, %d boots; want 1, 1", r.Migrations, r.HostBoots)
	}
}

// A host a migration empties goes off when the migration ends, not at the
// next step. VM 0 on host 0, VM 1 on host 1 (30 % each); at 300 s VM 1
// moves to host 0: 625 MB at 1 Gbit/s / 2 = 10 s, so host 1 is empty at
// 310 s, shuts down until 340 s and is in standby from then to the last
// update at 86100 s: 10 W × 85760 s. (At the next step it would have been
// 10 W × (86100 − 630) s.)
func TestTransitionsOffWhenEmptied(t *testing.T) {
	pol := &scripted{start: []int{0, 1}, steps: map[int][]move{1: {{vm: 1, to: 0}}}}
	r := mustRun(t, transitionsSetup(2), genDay(2, constant(30)), pol)
	if r.Migrations != 1 || r.HostBoots != 0 {
		t.Fatalf("%d migrations, %d boots; want 1, 0", r.Migrations, r.HostBoots)
	}
	if want := 10 * (86100 - 340.0) / 3.6e6; !near(r.StandbyKWh, want) {
		t.Errorf("standby %.6f kWh, want %.6f", r.StandbyKWh, want)
	}
}

// With a hold, an emptied host stays on (idle) until it has been empty
// that long. As in TestTransitionsOffWhenEmptied, host 1 is empty from
// 310 s; hold 400 s: still empty at 600 s (290 s) and at 900 s (590 s ≥
// 400), so it shuts down at 900 s until 930 s: standby 10 W × (86100 − 930)
// s, and idle 100 W from 310 to 900 s instead of standby.
func TestTransitionsHold(t *testing.T) {
	s := transitionsSetup(2)
	s.Transitions.Hold = 400
	pol := &scripted{start: []int{0, 1}, steps: map[int][]move{1: {{vm: 1, to: 0}}}}
	r := mustRun(t, s, genDay(2, constant(30)), pol)
	if want := 10 * (86100 - 930.0) / 3.6e6; !near(r.StandbyKWh, want) || r.HostBoots != 0 {
		t.Errorf("standby %.6f kWh, %d boots; want %.6f, 0", r.StandbyKWh, r.HostBoots, want)
	}
}

// ECRAE under transitions powers the emptied hosts off down to the
// service's default headroom (power.DefaultHeadroom: one empty host, 10 %
// free), never one that holds a VM, and wakes hosts when the headroom is
// short. 6 hosts of 1000 MIPS: hosts 0 and 1 asked for 600 each, hosts
// 2..5 empty: 4 empty, 4800 of 6000 free. Off from the last: 5 (3 empty,
// 3800/5000), 4 (2, 2800/4000), 3 (1, 1800/3000); not 2 (0 empty).
func TestEcraeHeadroom(t *testing.T) {
	s := transitionsSetup(6)
	spec, err := ParsePolicy("ecrae")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := spec.build(&s, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(&s, genDay(2, constant(60)))
	if err := pol.init(e); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		e.vms[i].req = 600
		e.create(i, int32(i))
	}
	off, wake := pol.(powerer).power(e, 300, []int{2, 3, 4, 5})
	if !slices.Equal(off, []int{5, 4, 3}) || len(wake) != 0 {
		t.Errorf("off %v, wake %v; want [5 4 3], none", off, wake)
	}
	// All but the busy hosts off (0 empty, 800 of 2000 free): the first in
	// host order wakes (1 empty, 1800 of 3000), and that is enough.
	for h := 2; h < 6; h++ {
		e.hosts[h].pstate = powerOff
	}
	off, wake = pol.(powerer).power(e, 300, nil)
	if len(off) != 0 || !slices.Equal(wake, []int{2}) {
		t.Errorf("off %v, wake %v; want none, [2]", off, wake)
	}
	// A host booting counts as on (capacity on its way): nothing more wakes.
	e.hosts[2].pstate = powerBooting
	if off, wake = pol.(powerer).power(e, 300, nil); len(off)+len(wake) != 0 {
		t.Errorf("with host 2 booting: off %v, wake %v; want none", off, wake)
	}
}

func TestParseTransitions(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"none", "none", ""},
		{"realistic", "realistic:boot=300,shutdown=30,standby=10", ""},
		{"realistic:boot=600,standby=5", "realistic:boot=600,shutdown=30,standby=5", ""},
		{"realistic:hold=480", "realistic:boot=300,shutdown=30,standby=10,hold=480", ""},
		{"realistic:hold=0", "realistic:boot=300,shutdown=30,standby=10", ""},
		{"fast", "", `transitions "fast"`},
		{"realistic:boot=-1", "", `"boot=-1"`},
		{"realistic:watts=3", "", `unknown option "watts"`},
		{"none:boot=1", "", "takes no options"},
	}
	for _, tc := range tests {
		got, err := ParseTransitions(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%q: %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseTransitions(f *testing.F) {
	for _, s := range []string{"none", "realistic", "realistic:boot=1e3,shutdown=0,standby=7.5", "realistic:x", "realistic:boot=NaN", "realistic:hold=480"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTransitions(s)
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		back, err := ParseTransitions(tr.String())
		if err != nil || back != tr {
			t.Fatalf("%q: %+v does not read back (%+v, %v)", s, tr, back, err)
		}
		if tr.Enabled && !(tr.Boot >= 0 && tr.Shutdown >= 0 && tr.StandbyW >= 0 && tr.Hold >= 0) {
			t.Fatalf("%q: %+v", s, tr)
		}
	})
}

// Every migrating policy under transitions on a random day: no VM is ever
// on a host that is not on (checked at every step), hosts do boot, and the
// standby is part of the energy.
func TestTransitionsInvariants(t *testing.T) {
	for _, name := range []string{"thr-mmt", "lr-mmt", "ecrae"} {
		s := CloudSimSetup()
		s.RoundRobinHosts(40)
		s.Transitions = RealisticTransitions()
		r := mustRunSpec(t, s, walkDay(56, 3), name)
		if r.HostBoots == 0 || r.Migrations == 0 || !(r.StandbyKWh > 0 && r.StandbyKWh < r.EnergyKWh) {
			t.Errorf("%s: %d boots, %d migrations, standby %g of %g kWh", name, r.HostBoots, r.Migrations, r.StandbyKWh, r.EnergyKWh)
		}
	}
}
