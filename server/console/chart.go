package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// The fleet power chart, drawn here as SVG: no JavaScript chart library,
// nothing fetched by the browser.

const (
	chartW, chartH         = 720.0, 260.0
	padL, padR, padT, padB = 60.0, 170.0, 16.0, 32.0
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// series is one line: an architecture's measured or model watts over time.
type series struct {
	name, color string
	dashed      bool
	points      [][2]float64 // (unix seconds, watts)
}

// PowerChart draws measured and model watts per architecture over the
// samples. Model lines are dashed; measured lines are left out for an
// architecture none of whose
// hosts ever had a reading.
func PowerChart(samples []Sample) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="power-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="fleet power over time" data-samples="%d">`,
		chartW, chartH, chartW, chartH, len(samples))
	if len(samples) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" class="empty">no samples yet</text></svg>`, padL, chartH/2)
		return template.HTML(b.String())
	}
	var all []series
	for i, arch := range Architectures(samples) {
		color := palette[i%len(palette)]
		model := series{name: arch + " model", color: color, dashed: true}
		meas := series{name: arch + " measured", color: color}
		for _, s := range samples {
			w, ok := s.ByArch[arch]
			if !ok {
				continue
			}
			t := float64(s.At.UnixNano()) / 1e9
			model.points = append(model.points, [2]float64{t, w.Model})
			if w.MeasuredHosts > 0 {
				meas.points = append(meas.points, [2]float64{t, w.Measured})
			}
		}
		all = append(all, model)
		if len(meas.points) > 0 {
			all = append(all, meas)
		}
	}
	t0, t1 := float64(samples[0].At.UnixNano())/1e9, float64(samples[len(samples)-1].At.UnixNano())/1e9
	if t1 <= t0 {
		t1 = t0 + 1 // one sample: a dot at the left edge
	}
	ymax := 0.0
	for _, s := range all {
		for _, p := range s.points {
			ymax = math.Max(ymax, p[1])
		}
	}
	ymax = niceCeil(ymax)
	x := func(t float64) float64 { return padL + (t-t0)/(t1-t0)*(chartW-padL-padR) }
	y := func(w float64) float64 { return chartH - padB - w/ymax*(chartH-padT-padB) }
	// Axes and grid: five steps of ymax/5.
	for i := 0; i <= 5; i++ {
		w := ymax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" class="grid"/><text x="%g" y="%.1f" class="ylabel" text-anchor="end">%s</text>`,
			padL, y(w), chartW-padR, y(w), padL-6, y(w)+4, wattsLabel(w))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="xlabel">%s</text><text x="%g" y="%g" class="xlabel" text-anchor="end">%s</text>`,
		padL, chartH-8, samples[0].At.UTC().Format(time.TimeOnly), chartW-padR, chartH-8, samples[len(samples)-1].At.UTC().Format(time.TimeOnly))
	for i, s := range all {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" data-points="%d" fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`,
			template.HTMLEscapeString(s.name), len(s.points), s.color, dash, strings.Join(pts, " "))
		if len(s.points) == 1 { // a line of one point draws nothing
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x(s.points[0][0]), y(s.points[0][1]), s.color)
		}
		ly := padT + 14 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/><text x="%g" y="%g" class="legend">%s</text>`,
			chartW-padR+10, ly-4, chartW-padR+34, ly-4, s.color, dash, chartW-padR+40, ly, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten (at least 10 W), so
// the grid's labels are round numbers.
func niceCeil(v float64) float64 {
	if v <= 10 {
		return 10
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func wattsLabel(w float64) string {
	if w >= 1000 {
		return fmt.Sprintf("%g kW", math.Round(w/100)/10)
	}
	return fmt.Sprintf("%g W", math.Round(w))
}
