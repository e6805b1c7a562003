package sim

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
)

// day makes a synthetic run: a start-up spike of spikeKW at t=0, then
// flatKW for the rest of the day, every 5 minutes.
func day(policy string, spikeKW, flatKW float64, hosts int) *Result {
	r := &Result{Policy: policy, Day: "traces/20110303", Mode: "cloudsim", EnergyKWh: 24 * flatKW}
	for t := 0.0; t <= 86400; t += 300 {
		s := Sample{Time: t, PowerW: flatKW * 1000, ActiveHosts: hosts}
		if t == 0 {
			s.PowerW, s.ActiveHosts = spikeKW*1000, 4*hosts
		}
		r.Series = append(r.Series, s)
	}
	return r
}

// The y-axes leave out the first hour: a spike of 40 kW at t=0 over a day
// at 3 kW gives a 5 kW axis (niceMax(3) = 5), not 50 kW.
func TestPlotAxisIgnoresTransient(t *testing.T) {
	l := newLayout([]*Result{day("npa", 40, 3, 10)})
	if got := l.panels[0].ymax; got != 5 {
		t.Errorf("power axis %v kW, want 5", got)
	}
	if got := l.panels[1].ymax; got != 10 { // 10 active hosts after the spike of 40
		t.Errorf("hosts axis %v, want 10", got)
	}
	p := l.panels[0]
	if y := p.y(40); y != float64(p.top) { // clipped to the top
		t.Errorf("spike at y=%v, want the panel's top %d", y, p.top)
	}
}

// --compare --plot: every policy on one chart, labelled with its energy
// in kWh, power in kW.
func TestPlotComparesPolicies(t *testing.T) {
	rs := []*Result{day("npa", 40, 3, 10), day("ecrae", 30, 2, 6)}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, rs...); err != nil {
		t.Fatal(err)
	}
	out := svg.String()
	for _, want := range []string{"2 policies on 20110303", "npa 72.0 kWh", "ecrae 48.0 kWh", "power (kW)", "active hosts"} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if n := strings.Count(out, "<polyline"); n != 4 { // 2 policies × (power, hosts)
		t.Errorf("%d lines, want 4", n)
	}
	var img bytes.Buffer
	if err := WritePNG(&img, rs...); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Fatal(err)
	}
	if err := WriteSVG(&svg); err == nil {
		t.Error("a plot of no run: want an error")
	}
}

// Units keep their case in the PNG's font: kWh and kW, not "kwh".
func TestPlotFontUnits(t *testing.T) {
	k, okK := glyph('K')
	w, okW := glyph('W')
	lk, _ := glyph('k')
	lw, _ := glyph('w')
	if !okK || !okW || k == lk || w == lw {
		t.Errorf("no upper-case K and W glyphs")
	}
}
