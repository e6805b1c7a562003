package sim

import (
	"context"
	"math"
	"testing"

	"github.com/ecrae/ecrae/optimizer"
)

// linear is a power curve from idle to idle+span watts, straight: P(u) =
// idle + span·u, easy to check by hand.
func linear(idle, span float64) optimizer.PowerCurve {
	var c optimizer.PowerCurve
	for i := range c {
		c[i] = idle + span*float64(i)/10
	}
	return c
}

// tinySetup is n hosts of one 1000-MIPS PE, P(u) = 100 + 100u W, 1 Gbit/s
// (a 625 MB VM migrates in 10 s), 8 GB; one VM type of 1000 MIPS, 625 MB.
// Steps fall on whole multiples of 300 s (no CloudSim 0.1 s offset), so a
// trace's samples are read exactly, without interpolation.
func tinySetup(n int) Setup {
	s := Setup{
		Name:     "tiny",
		Models:   []HostModel{{Name: "box", ISA: "x86_64", PEs: 1, PEMIPS: 1000, RAMMB: 8192, BandwidthMbps: 1000, Curve: linear(100, 100)}},
		VMTypes:  []VMType{{Name: "vm", PEs: 1, MIPS: 1000, RAMMB: 625, BandwidthMbps: 100}},
		Mode:     ModeCloudSim,
		Interval: 300,
	}
	s.RoundRobinHosts(n)
	return s
}

// genDay makes a day of n VMs whose CPU % at sample k is pct(vm, k).
func genDay(n int, pct func(vm, k int) int) *Day {
	d := &Day{Dir: "gen"}
	for i := range n {
		t := Trace{Name: "vm" + string(rune('a'+i%26)) + string(rune('0'+i/26)), Percent: make([]uint8, SamplesPerDay)}
		for k := range t.Percent {
			t.Percent[k] = uint8(pct(i, k))
		}
		d.Traces = append(d.Traces, t)
	}
	return d
}

func constant(p int) func(int, int) int { return func(int, int) int { return p } }

// scripted is a test policy: VM i starts on host place[i]; at step k the
// moves in steps[k] start.
type scripted struct {
	start []int
	steps map[int][]move
	step  int
}

func (*scripted) nonPowerAware() bool             { return false }
func (*scripted) init(*engine) error              { return nil }
func (p *scripted) place(_ *engine, vi int32) int { return p.start[vi] }
func (p *scripted) optimize(*engine, float64) ([]move, error) {
	p.step++
	return p.steps[p.step], nil
}

func mustRun(t *testing.T, s Setup, d *Day, p policy) *Result {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := run(context.Background(), &s, d, p, Options{check: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRunSpec(t *testing.T, s Setup, d *Day, spec string) *Result {
	t.Helper()
	p, err := ParsePolicy(spec)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), s, d, p, Options{Seed: 1, check: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
