package sim

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"image/png"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, n := range PolicyNames() {
		spec, err := ParsePolicy(n)
		if err != nil || spec.String() != n || PolicyHelp(n) == "" {
			t.Errorf("%s: %v %q", n, err, spec.String())
		}
	}
	spec, err := ParsePolicy("thr-mmt:threshold=0.9")
	if err != nil || spec.Params["threshold"] != 0.9 || spec.String() != "thr-mmt:threshold=0.9" {
		t.Fatalf("%v %+v", err, spec)
	}
	if CloudSimName(spec) != "THR-MMT-0.9" {
		t.Errorf("CloudSim name %q", CloudSimName(spec))
	}
	lr, _ := ParsePolicy("lr-mmt")
	if CloudSimName(lr) != "LR-MMT-1.2" {
		t.Errorf("CloudSim name %q", CloudSimName(lr))
	}
	for _, bad := range []string{"nope", "thr-mmt:x=1", "thr-mmt:threshold", "thr-mmt:threshold=abc", "dvfs:a=1", "lr-mmt:safety=-1", "ecrae:ceiling=2", "ecrae:relieve=1.5", "ecrae:relieve=-1"} {
		spec, err := ParsePolicy(bad)
		if err == nil {
			_, err = spec.build(&Setup{}, 1)
		}
		if !errors.Is(err, ErrPolicy) {
			t.Errorf("%q: %v, want ErrPolicy", bad, err)
		}
	}
}

const resultsMD = `# results

| day | policy | VMs | energy kWh | migrations | SLATAH % | PDM % (printed) | PDM % (=SLAV/SLATAH) | SLAV % | ESV=E*SLAV (x1e-3) | overall SLA viol % | host shutdowns |
|---|---|---|---|---|---|---|---|---|---|---|---|
| d1 | NPA | 10 | 100.50 | 0 | 0.00 | 0.00 | 0.0000 | 0.00000 | 0.000 | 0.00 | 4 |
| d1 | LR-MMT-1.2 | 10 | 12.5 | 300 | 5.00 | 0.08 | 0.0755 | 0.00432 | 7.250 | 0.13 | 51 |
`

func TestParseReferences(t *testing.T) {
	refs, err := ParseReferences("r.md", strings.NewReader(resultsMD))
	if err != nil {
		t.Fatal(err)
	}
	lr, _ := ParsePolicy("lr-mmt")
	ref, ok := refs.Lookup("d1", lr)
	if !ok || ref.EnergyKWh != 12.5 || ref.Migrations != 300 || !near(ref.SLATAH, 0.05) ||
		!near(ref.PDM, 0.000755) || !near(ref.SLAV, 0.0000432) || !near(ref.ESV, 0.00725) || ref.HostShutdowns != 51 || ref.VMs != 10 {
		t.Fatalf("%+v %v", ref, ok)
	}
	ecrae, _ := ParsePolicy("ecrae")
	if _, ok := refs.Lookup("d1", ecrae); ok {
		t.Error("CloudSim has no ecrae row")
	}
	if _, err := ParseReferences("r.md", strings.NewReader("no table\n")); !errors.Is(err, ErrResults) {
		t.Errorf("no table: %v", err)
	}
	bad := strings.Replace(resultsMD, "12.5", "twelve", 1)
	if _, err := ParseReferences("r.md", strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "r.md:6") {
		t.Errorf("bad number: %v", err)
	}
}

// twoModels is 12 hosts of two models (the slower PEs cannot take the big
// VM type) and 24 VMs whose demand waves through the day.
func twoModels() (Setup, *Day) {
	s := Setup{
		Name: "two",
		Models: []HostModel{
			{Name: "slow", ISA: "x86_64", PEs: 2, PEMIPS: 1000, RAMMB: 4096, BandwidthMbps: 1000, Curve: linear(80, 60)},
			{Name: "fast", ISA: "x86_64", PEs: 2, PEMIPS: 2000, RAMMB: 4096, BandwidthMbps: 1000, Curve: linear(90, 60)},
		},
		VMTypes: []VMType{
			{Name: "big", PEs: 1, MIPS: 1500, RAMMB: 1024, BandwidthMbps: 100},
			{Name: "small", PEs: 1, MIPS: 500, RAMMB: 512, BandwidthMbps: 100},
		},
		Mode: ModeCloudSim, Interval: 300, Offset: 0.1,
	}
	s.RoundRobinHosts(12)
	d := genDay(24, func(vm, k int) int { return 5 + (vm*7+k*3)%60 })
	return s, d
}

func TestPoliciesRun(t *testing.T) {
	s, d := twoModels()
	npa := mustRunSpec(t, s, d, "npa")
	// NPA: every host at full power from 0 to the last step (86100.1 s).
	if want := 6 * (140.0 + 150) * 86100.1 / 3.6e6; !near(npa.EnergyKWh, want) {
		t.Errorf("npa %g kWh, want %g", npa.EnergyKWh, want)
	}
	dvfs := mustRunSpec(t, s, d, "dvfs")
	spread := mustRunSpec(t, s, d, "nova-spread")
	for _, spec := range []string{"thr-mmt", "iqr-mmt", "mad-mmt", "lr-mmt", "ecrae"} {
		r := mustRunSpec(t, s, d, spec)
		if r.Unplaced != 0 || r.EnergyKWh <= r.FloorKWh || r.EnergyKWh >= npa.EnergyKWh {
			t.Errorf("%s: %+v", spec, r)
		}
		if spec != "ecrae" && r.Migrations == 0 {
			t.Errorf("%s: no migrations", spec)
		}
	}
	if dvfs.Migrations != 0 || spread.Migrations != 0 || dvfs.EnergyKWh >= npa.EnergyKWh {
		t.Errorf("dvfs %+v spread %+v", dvfs, spread)
	}
	ecrae := mustRunSpec(t, s, d, "ecrae")
	if ecrae.EnergyKWh >= spread.EnergyKWh {
		t.Errorf("ecrae %.3f kWh, nova-spread %.3f: consolidation saves nothing", ecrae.EnergyKWh, spread.EnergyKWh)
	}
}

// The same seed gives the same result, bit for bit.
func TestDeterministic(t *testing.T) {
	s, d := twoModels()
	for _, spec := range []string{"ecrae", "lr-mmt"} {
		a, b := mustRunSpec(t, s, d, spec), mustRunSpec(t, s, d, spec)
		a.Seconds, b.Seconds = 0, 0
		var ja, jb bytes.Buffer
		if err := WriteSVG(&ja, a); err != nil {
			t.Fatal(err)
		}
		if err := WriteSVG(&jb, b); err != nil {
			t.Fatal(err)
		}
		if a.EnergyKWh != b.EnergyKWh || a.Migrations != b.Migrations || a.SLAV != b.SLAV || ja.String() != jb.String() {
			t.Errorf("%s: two runs differ: %+v / %+v", spec, a, b)
		}
	}
}

// Strict mode: RAM binds every move, so no host ever holds more than its
// RAM; CloudSim mode lets VMs pile up after the start.
func TestStrictRAM(t *testing.T) {
	s, d := twoModels()
	s.Mode = ModeStrict
	for _, spec := range []string{"lr-mmt", "ecrae"} {
		p, _ := ParsePolicy(spec)
		pol, err := p.build(&s, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = run(context.Background(), &s, d, &ramChecker{policy: pol, t: t}, Options{check: true})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ramChecker wraps a policy and checks every host's RAM at every step.
type ramChecker struct {
	policy
	t *testing.T
}

func (c *ramChecker) optimize(e *engine, t float64) ([]move, error) {
	for h := range e.hosts {
		used := int64(0)
		for _, vi := range e.hosts[h].vms {
			used += e.vms[vi].ram
		}
		if used > e.hosts[h].model.RAMMB || e.hosts[h].freeRAM != e.hosts[h].model.RAMMB-used {
			c.t.Fatalf("t=%v host %d: %d MB used of %d, free %d", t, h, used, e.hosts[h].model.RAMMB, e.hosts[h].freeRAM)
		}
	}
	return c.policy.optimize(e, t)
}

func TestPlots(t *testing.T) {
	s, d := twoModels()
	r := mustRunSpec(t, s, d, "lr-mmt")
	var svg, img bytes.Buffer
	if err := WriteSVG(&svg, r); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not XML: %v", err)
			}
			break
		}
	}
	if err := WritePNG(&img, r); err != nil {
		t.Fatal(err)
	}
	m, err := png.Decode(&img)
	if err != nil || m.Bounds().Dx() != plotW {
		t.Fatalf("PNG: %v", err)
	}
}
